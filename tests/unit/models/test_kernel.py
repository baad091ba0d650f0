"""Tests of the embedding component's additive kernel ridge, on small arrays built here (no encoder involved)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from pricewise.models import EmbeddingKernelRidge, EmbeddingParams


def problem(
    seed: int = 0, n_train: int = 80
) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray, np.ndarray, sp.csr_matrix]:
    """Dense RBF inputs and sparse design rows for n_train training and 15 new rows, and training targets."""
    rng = np.random.default_rng(seed)
    n = n_train + 15
    dense = rng.normal(size=(n, 6)).astype(np.float32)
    design = sp.random(n, 40, density=0.15, format="csr", random_state=seed, dtype=np.float64)
    signal = dense[:n_train, 0] + np.asarray(design[:n_train].sum(axis=1)).ravel()
    target = 2.5 + signal + rng.normal(0, 0.1, n_train)
    return dense[:n_train], design[:n_train], target, dense[n_train:], design[n_train:]


@pytest.mark.parametrize(
    ("sparse_weight", "n_train"),
    # 2,500 rows: the Gram matrix is added in several blocks of rows.
    [(0.0, 80), (0.2, 80), (1.5, 80), (0.2, 2500)],
)
def test_predicts_what_kernel_ridge_on_the_summed_kernel_predicts(sparse_weight: float, n_train: int) -> None:
    inputs, design, target, new_inputs, new_design = problem(n_train=n_train)
    params = EmbeddingParams(enabled=True, alpha=0.4, gamma=0.8, sparse_weight=sparse_weight)
    model = EmbeddingKernelRidge(params).fit(inputs, design, target)
    gamma = 0.8 / len(params.texts)

    def kernel(a: np.ndarray, a_rows: sp.csr_matrix) -> np.ndarray:
        linear = (a_rows @ design.T).toarray()
        return (
            rbf_kernel(a.astype(np.float64), inputs.astype(np.float64), gamma=gamma) + sparse_weight * linear
        )

    reference = KernelRidge(alpha=0.4, kernel="precomputed").fit(
        kernel(inputs, design), target - target.mean()
    )
    expected = reference.predict(kernel(new_inputs, new_design)) + target.mean()

    np.testing.assert_allclose(model.predict(new_inputs, new_design), expected, rtol=1e-9, atol=1e-9)


def test_the_sparse_kernel_changes_the_fit() -> None:
    inputs, design, target, new_inputs, new_design = problem()
    alone = EmbeddingKernelRidge(EmbeddingParams(sparse_weight=0.0)).fit(inputs, design, target)
    both = EmbeddingKernelRidge(EmbeddingParams(sparse_weight=1.0)).fit(inputs, design, target)
    assert np.max(np.abs(alone.predict(new_inputs, new_design) - both.predict(new_inputs, new_design))) > 0.01


def test_survives_pickling() -> None:
    inputs, design, target, new_inputs, new_design = problem()
    model = EmbeddingKernelRidge(EmbeddingParams()).fit(inputs, design, target)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        restored.predict(new_inputs, new_design), model.predict(new_inputs, new_design)
    )


def test_a_component_pickled_with_the_rbf_kernel_alone_still_predicts_as_before() -> None:
    inputs, _, target, new_inputs, new_design = problem()
    params = EmbeddingParams(gamma=1.0, alpha=0.3)
    offset = float(target.mean())
    # The state such a component pickled: its params, encoders, sklearn's KernelRidge and the target mean.
    legacy = KernelRidge(alpha=0.3, kernel="rbf", gamma=0.5).fit(inputs.astype(np.float64), target - offset)
    state = {"params": params, "encoders": EmbeddingKernelRidge(params).encoders, "model_": legacy}
    restored = EmbeddingKernelRidge.__new__(EmbeddingKernelRidge)
    restored.__setstate__({**state, "offset_": offset})

    expected = legacy.predict(new_inputs.astype(np.float64)) + offset
    np.testing.assert_allclose(restored.predict(new_inputs, new_design), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "bad", [{"sparse_weight": -0.1}, {"alpha": 0.0}, {"gamma": -1.0}, {"texts": ()}, {"texts": ("title",)}]
)
def test_bad_hyperparameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"embedding\."):
        EmbeddingParams(**bad)  # type: ignore[arg-type]

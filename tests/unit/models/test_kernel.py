"""Tests of the embedding component's additive kernel ridge, on small arrays built here (the encoder only where
the component's inputs are built from listings)."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from pricewise.models import EmbeddingKernelRidge, EmbeddingParams
from pricewise.models.features.text import listing_fields


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


def with_codes(dense: np.ndarray, condition: np.ndarray, shipping: np.ndarray, scale: float) -> np.ndarray:
    """Dense rows followed by the scaled one-hot condition (1..5, 0 = unknown) and shipping columns, as
    `EmbeddingKernelRidge.inputs` lays them out."""
    one_hot = np.array([[c == v for v in range(1, 6)] for c in condition], dtype=np.float32)
    ship = np.array([[s == v for v in (0, 1)] for s in shipping], dtype=np.float32)
    return np.hstack([dense, np.float32(scale) * one_hot, np.float32(scale) * ship]).astype(np.float32)


def test_prices_every_condition_as_predict_does_in_that_condition() -> None:
    dense, design, target, new_dense, _ = problem()
    rng = np.random.default_rng(3)
    # Training rows with every condition, an unknown one (0) among them.
    condition, shipping = rng.integers(0, 6, dense.shape[0]), rng.integers(0, 2, dense.shape[0])
    params = EmbeddingParams(tabular_scale=0.7, gamma=0.9, sparse_weight=0.3)
    inputs = with_codes(dense, condition, shipping, params.tabular_scale)
    model = EmbeddingKernelRidge(params).fit(inputs, design, target + 0.3 * condition)
    n_new = new_dense.shape[0]
    new_shipping = rng.integers(0, 2, n_new)
    # Design rows that differ by condition, condition-major as the ensemble stacks them.
    designs = [sp.random(n_new, 40, density=0.15, format="csr", random_state=c) for c in range(1, 6)]
    own = with_codes(new_dense, rng.integers(1, 6, n_new), new_shipping, params.tabular_scale)

    priced = model.predict_conditions(own, sp.vstack(designs, format="csr"))

    expected = np.column_stack(
        [
            model.predict(
                with_codes(new_dense, np.full(n_new, c), new_shipping, params.tabular_scale), designs[c - 1]
            )
            for c in range(1, 6)
        ]
    )
    assert priced.shape == (n_new, 5)
    np.testing.assert_allclose(priced, expected, rtol=1e-12, atol=1e-12)
    # The conditions do move these prices: the check above compares more than one column five times.
    assert np.ptp(expected, axis=1).min() > 1e-3


def test_inputs_tell_the_texts_encoded_across_both_views_and_are_unchanged_by_it() -> None:
    frame = pd.DataFrame(
        {
            "name": [f"air max {i}" for i in range(70)],
            "brand_name": ["Nike"] * 70,
            "category_name": ["Men/Shoes/Athletic"] * 70,
            "item_condition_id": [1 + i % 5 for i in range(70)],
            "shipping": [i % 2 for i in range(70)],
            "item_description": [f"size {i % 12}" for i in range(70)],
        }
    )
    component = EmbeddingKernelRidge(EmbeddingParams(enabled=True))
    fields = listing_fields(frame)
    told: list[tuple[int, int]] = []

    watched = component.inputs(fields, lambda done, total: told.append((done, total)))

    assert told, "the encoder reports as it goes"
    assert {total for _, total in told} == {140}, "two views of 70 listings"
    assert [done for done, _ in told] == sorted(done for done, _ in told)
    assert told[-1] == (140, 140)
    np.testing.assert_array_equal(watched, component.inputs(fields))

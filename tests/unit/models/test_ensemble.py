"""Tests of the main model (sparse TF-IDF ensemble) and its sparse MLP component."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pricewise.models import (
    EmbeddingKernelRidge,
    EmbeddingParams,
    SparseMLPParams,
    SparseMLPRegressor,
    SparseTextEnsemble,
    SparseTextEnsembleParams,
)
from pricewise.models.features import FeatureParams
from pricewise.models.sparse_mlp import NUMPY_MAX_ROWS

BRANDS = ["Nike", "Apple", "Coach", None]
ITEMS = ["shoes", "phone case", "handbag", "t-shirt", "necklace"]


def listings(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Listings whose log price depends on brand, item word and condition, plus noise."""
    rng = np.random.default_rng(seed)
    brand = rng.integers(0, len(BRANDS), n)
    item = rng.integers(0, len(ITEMS), n)
    condition = rng.integers(1, 6, n)
    frame = pd.DataFrame(
        {
            "name": [
                f"{BRANDS[b] or ''} {ITEMS[i]} lot {k}" for b, i, k in zip(brand, item, range(n), strict=True)
            ],
            "brand_name": [BRANDS[b] for b in brand],
            "category_name": [f"Top{i % 2}/Mid/{ITEMS[i]}" for i in item],
            "item_condition_id": condition,
            "shipping": rng.integers(0, 2, n),
            "item_description": rng.choice(["great", "No description yet", "used, works", ""], n),
        }
    )
    log_price = 2.0 + 0.8 * (brand < 3) + 0.4 * item - 0.1 * condition + rng.normal(0, 0.1, n)
    return frame, log_price


def small_params(seed: int = 0) -> SparseTextEnsembleParams:
    return SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=200, text_max_features=200),
        mlp=SparseMLPParams(hidden=16, hidden2=8, epochs=3),
        n_mlp=1,
        n_binary_mlp=1,
        lgbm_rounds=30,
        seed=seed,
    )


@pytest.fixture(scope="module")
def fitted() -> SparseTextEnsemble:
    frame, log_price = listings(600, seed=0)
    valid, valid_log = listings(150, seed=1)
    return SparseTextEnsemble(small_params()).fit(frame, log_price, valid, valid_log)


def test_predicts_one_finite_positive_price_per_row_and_learns(fitted: SparseTextEnsemble) -> None:
    test, test_log = listings(200, seed=2)
    predicted = fitted.predict(test)
    assert predicted.shape == (200,)
    assert np.all(np.isfinite(predicted))
    assert np.all(np.expm1(predicted) > 0)
    error = np.sqrt(np.mean((predicted - test_log) ** 2))
    assert error < 0.5 * np.std(test_log)


def test_blend_weights_are_convex(fitted: SparseTextEnsemble) -> None:
    weights = fitted.component_weights
    assert set(weights) == {"ridge", "mlp_0", "mlp_binary_0", "lgbm"}
    assert all(w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)


def test_is_invariant_to_case_and_whitespace(fitted: SparseTextEnsemble) -> None:
    test, _ = listings(50, seed=3)
    noisy = test.copy()
    for column in ("name", "brand_name", "category_name", "item_description"):
        noisy[column] = [f" {v.upper()}  " if isinstance(v, str) else v for v in noisy[column]]
    np.testing.assert_array_equal(fitted.predict(test), fitted.predict(noisy))


def test_same_seed_same_predictions_other_seed_differs() -> None:
    frame, log_price = listings(300, seed=4)
    test, _ = listings(40, seed=5)
    first = SparseTextEnsemble(small_params(seed=7)).fit(frame, log_price).predict(test)
    second = SparseTextEnsemble(small_params(seed=7)).fit(frame, log_price).predict(test)
    third = SparseTextEnsemble(small_params(seed=8)).fit(frame, log_price).predict(test)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


def test_fixed_weights_without_validation_data() -> None:
    frame, log_price = listings(200, seed=6)
    params = SparseTextEnsembleParams(**{**small_params().__dict__, "weights": (1.0, 0.0, 0.0, 0.0)})
    model = SparseTextEnsemble(params).fit(frame, log_price)
    np.testing.assert_allclose(model.predict(frame[:10]), model.predict_components(frame[:10])["ridge"])
    wrong = SparseTextEnsembleParams(**{**small_params().__dict__, "weights": (1.0,)})
    with pytest.raises(ValueError, match="weights"):
        SparseTextEnsemble(wrong).fit(frame, log_price)


def test_survives_pickling(fitted: SparseTextEnsemble) -> None:
    test, _ = listings(20, seed=7)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(test), fitted.predict(test))


def test_unfitted_models_refuse_to_predict() -> None:
    test, _ = listings(5, seed=8)
    with pytest.raises(RuntimeError, match="not fitted"):
        SparseTextEnsemble().predict(test)
    with pytest.raises(RuntimeError, match="not fitted"):
        SparseMLPRegressor().predict(np.zeros((1, 1)))


def test_mlp_keeps_best_epoch_on_validation_data() -> None:
    rng = np.random.default_rng(0)
    features = sp.random(400, 50, density=0.1, format="csr", dtype=np.float32, random_state=1)
    target = np.asarray(features @ rng.normal(size=50)).ravel()
    model = SparseMLPRegressor(SparseMLPParams(hidden=8, hidden2=4, epochs=4), seed=0)
    model.fit(features[:300], target[:300], features[300:], target[300:])
    assert len(model.valid_rmse_) == 4
    best = np.sqrt(np.mean((model.predict(features[300:]) - target[300:]) ** 2))
    assert best == pytest.approx(min(model.valid_rmse_), rel=1e-6)


@pytest.mark.parametrize("binary", [False, True], ids=["tfidf-input", "binary-input"])
def test_small_batches_match_the_torch_forward_pass(binary: bool) -> None:
    features = sp.random(200, 60, density=0.1, format="csr", dtype=np.float32, random_state=2)
    target = np.asarray(features @ np.random.default_rng(1).normal(size=60)).ravel()
    params = SparseMLPParams(hidden=16, hidden2=8, epochs=2, binary_input=binary)
    model = SparseMLPRegressor(params, seed=0).fit(features, target)
    through_torch = model.predict(features)  # larger than NUMPY_MAX_ROWS: one torch forward pass
    assert features.shape[0] > NUMPY_MAX_ROWS
    for start in range(0, 48, NUMPY_MAX_ROWS):
        block = model.predict(features[start : start + NUMPY_MAX_ROWS])
        np.testing.assert_allclose(block, through_torch[start : start + NUMPY_MAX_ROWS], rtol=1e-6, atol=1e-6)
    for row in range(5):
        np.testing.assert_allclose(
            model.predict(features[row]), through_torch[row : row + 1], rtol=1e-6, atol=1e-6
        )
    assert model.predict(features[:0]).shape == (0,)


def test_a_single_listing_gets_the_price_of_its_row_in_a_batch(fitted: SparseTextEnsemble) -> None:
    test, _ = listings(60, seed=9)
    batch = fitted.predict(test)
    singles = np.concatenate([fitted.predict(test.iloc[[row]]) for row in range(len(test))])
    np.testing.assert_allclose(singles, batch, rtol=1e-6, atol=1e-6)


def test_blend_is_the_weighted_sum_of_component_predictions(fitted: SparseTextEnsemble) -> None:
    test, _ = listings(30, seed=10)
    components = fitted.predict_components(test)
    blended = sum(components[name] * weight for name, weight in fitted.component_weights.items())
    np.testing.assert_allclose(fitted.predict(test), blended, rtol=1e-9, atol=1e-9)
    some_zero = pickle.loads(pickle.dumps(fitted))
    some_zero.weights_ = np.array([0.0, 0.6, 0.4, 0.0])
    expected = 0.6 * components["mlp_0"] + 0.4 * components["mlp_binary_0"]
    np.testing.assert_allclose(some_zero.predict(test), expected, rtol=1e-9, atol=1e-9)


def test_ridge_component_predicts_what_sklearn_predicts(fitted: SparseTextEnsemble) -> None:
    test, _ = listings(30, seed=11)
    ridge = fitted.components_["ridge"]
    expected = ridge.predict(fitted.builder_.transform(test))
    np.testing.assert_array_equal(fitted.predict_components(test)["ridge"], expected)


def embedding_params(max_train_rows: int = 1000, static: bool = False) -> SparseTextEnsembleParams:
    """The Ridge and the embedding component, its texts embedded by MiniLM or, when static, by the table."""
    texts = EmbeddingParams().texts
    return SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=200, text_max_features=200),
        n_mlp=0,
        n_binary_mlp=0,
        lgbm_rounds=0,
        embedding=EmbeddingParams(
            enabled=True, max_train_rows=max_train_rows, static_texts=texts if static else ()
        ),
    )


@pytest.fixture(scope="module", params=[False, True], ids=["minilm", "static"])
def with_embedding(request: pytest.FixtureRequest) -> SparseTextEnsemble:
    """The Ridge and the embedding component, with each sentence encoder."""
    frame, log_price = listings(300, seed=0)
    valid, valid_log = listings(100, seed=1)
    return SparseTextEnsemble(embedding_params(static=request.param)).fit(frame, log_price, valid, valid_log)


def test_embedding_component_is_fitted_blended_and_learns(with_embedding: SparseTextEnsemble) -> None:
    assert set(with_embedding.component_weights) == {"ridge", "embedding"}
    assert isinstance(with_embedding.components_["embedding"], EmbeddingKernelRidge)
    test, test_log = listings(100, seed=2)
    parts = with_embedding.predict_components(test)
    # The kernel ridge alone explains most of the variance of these listings' prices.
    assert np.sqrt(np.mean((parts["embedding"] - test_log) ** 2)) < 0.5 * np.std(test_log)
    weights = with_embedding.component_weights
    blended = weights["ridge"] * parts["ridge"] + weights["embedding"] * parts["embedding"]
    np.testing.assert_allclose(with_embedding.predict(test), blended, rtol=1e-12)


def test_embedding_model_survives_pickling_and_scores_one_row_like_a_batch(
    with_embedding: SparseTextEnsemble,
) -> None:
    test, _ = listings(20, seed=3)
    restored = pickle.loads(pickle.dumps(with_embedding))
    batch = restored.predict(test)
    np.testing.assert_allclose(batch, with_embedding.predict(test), rtol=1e-12)
    one = restored.predict(test.iloc[[7]].reset_index(drop=True))
    assert one[0] == pytest.approx(batch[7], abs=1e-5)


def test_embedding_model_is_invariant_to_case_and_whitespace(with_embedding: SparseTextEnsemble) -> None:
    test, _ = listings(30, seed=4)
    noisy = test.copy()
    for column in ("name", "brand_name", "category_name"):
        noisy[column] = [f"  {v.upper()} " if isinstance(v, str) else v for v in noisy[column]]
    np.testing.assert_array_equal(with_embedding.predict(test), with_embedding.predict(noisy))


def test_embedding_component_is_left_out_above_its_row_limit(caplog: pytest.LogCaptureFixture) -> None:
    frame, log_price = listings(120, seed=0)
    with caplog.at_level("INFO"):
        model = SparseTextEnsemble(embedding_params(max_train_rows=100)).fit(frame, log_price)
    assert set(model.component_weights) == {"ridge"}
    assert "embedding component left out: 120 training rows" in caplog.text


def test_only_a_model_that_runs_the_encoder_is_priced_off_the_event_loop(fitted: SparseTextEnsemble) -> None:
    from pricewise.models import ConformalPriceRanges
    from pricewise.models.suggester import PriceSuggester
    from pricewise.serving.model_holder import ServedModel

    def served(model: SparseTextEnsemble) -> ServedModel:
        suggester = PriceSuggester(model=model, ranges=ConformalPriceRanges(0.8), kind="SparseTextEnsemble")
        return ServedModel(suggester, "pricewise", "1", None, "registry", "now", None, None, ())

    # Without validation data the blend weights are equal, so the encoder always runs.
    frame, log_price = listings(300, seed=0)
    with_embedding = SparseTextEnsemble(embedding_params()).fit(frame, log_price)

    assert with_embedding.component_weights["embedding"] > 0
    assert with_embedding.encodes_text
    assert not served(with_embedding).prices_on_loop
    assert not fitted.encodes_text
    assert served(fitted).prices_on_loop
    # The static table encodes in microseconds: its model is priced on the loop like the sparse one.
    with_table = SparseTextEnsemble(embedding_params(static=True)).fit(frame, log_price)
    assert with_table.component_weights["embedding"] > 0
    assert not with_table.encodes_text
    assert served(with_table).prices_on_loop


def every_component_weighted(model: SparseTextEnsemble) -> SparseTextEnsemble:
    """A copy of the model blending all its components equally (fitted weights may leave some out)."""
    copy: SparseTextEnsemble = pickle.loads(pickle.dumps(model))
    copy.weights_ = np.full(len(copy.components_), 1.0 / len(copy.components_))
    return copy


def test_prices_every_condition_as_predict_does_in_that_condition(fitted: SparseTextEnsemble) -> None:
    assert_prices_every_condition_as_predict(fitted)


def test_prices_every_condition_as_predict_does_with_embeddings(with_embedding: SparseTextEnsemble) -> None:
    assert_prices_every_condition_as_predict(with_embedding)


def assert_prices_every_condition_as_predict(fitted: SparseTextEnsemble) -> None:
    model = every_component_weighted(fitted)
    test, _ = listings(40, seed=12)
    priced = model.predict_conditions(test)
    expected = np.column_stack([model.predict(test.assign(item_condition_id=c)) for c in range(1, 6)])
    assert priced.shape == (40, 5)
    np.testing.assert_allclose(priced, expected, rtol=0, atol=1e-12)
    assert np.ptp(expected, axis=1).min() > 1e-3  # the condition does move these prices
    # A listing alone gets the prices of its row among others.
    alone = np.vstack([model.predict_conditions(test.iloc[[row]]) for row in (0, 17, 39)])
    np.testing.assert_allclose(alone, priced[[0, 17, 39]], rtol=0, atol=1e-6)


def test_condition_prices_do_not_outlive_a_refit() -> None:
    frame, log_price = listings(200, seed=0)
    model = SparseTextEnsemble(small_params()).fit(frame, log_price)
    model.predict_conditions(frame.head(3))
    # Refitted on listings of conditions 1..4 only: condition 5 no longer has a design column of its own.
    fewer = frame["item_condition_id"] < 5
    model.fit(frame[fewer], log_price[fewer.to_numpy()])
    test, _ = listings(10, seed=13)
    expected = np.column_stack([model.predict(test.assign(item_condition_id=c)) for c in range(1, 6)])
    np.testing.assert_allclose(model.predict_conditions(test), expected, rtol=0, atol=1e-6)

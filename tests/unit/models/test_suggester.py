"""Tests of the pyfunc's input cleaning, of one listing against the same listing in a batch, of prices that never
rise in a worse condition, and of the serving reference it carries."""

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from pricewise.columns import FEATURE_COLUMNS
from pricewise.models import (
    ConformalPriceRanges,
    SparseMLPParams,
    SparseTextEnsemble,
    SparseTextEnsembleParams,
)
from pricewise.models.features import FeatureParams
from pricewise.models.features.text import Listings, text_values
from pricewise.models.reference import ServingReference
from pricewise.models.suggester import PriceSuggester, clean_input, clean_records, non_increasing
from tests.support.models import ridge_only_params


def reference_clean(frame: pd.DataFrame) -> pd.DataFrame:
    """The cleaning rules written as whole-column pandas operations."""
    out = pd.DataFrame(index=range(len(frame)))
    for column in ("name", "brand_name", "category_name", "item_description"):
        values = frame[column] if column in frame.columns else pd.Series([""] * len(frame))
        out[column] = values.fillna("").astype(str).to_numpy()
    for column in ("item_condition_id", "shipping"):
        out[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype("int64").to_numpy()
    return out[list(FEATURE_COLUMNS)]


def odd_listings() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["Nike shoes", None, 3, np.nan, pd.NA],
            "brand_name": [b"x", "Nike", "a b", 1.5, None],
            "category_name": ["Men/Shoes", None, "x", "", "w/"],
            "item_condition_id": [1, None, "3", "x", 2.0],
            "shipping": [0, 1, np.nan, 1, 0],
            "item_description": ["No description yet", "", None, "x", "y"],
            "extra": [1, 2, 3, 4, 5],
        },
        index=[10, 11, 12, 13, 14],
    )


def test_clean_input_matches_the_column_rules() -> None:
    frame = odd_listings()
    plain = pd.DataFrame(
        {
            "name": ["a", "b"],
            "brand_name": ["c", None],
            "category_name": [None, "d"],
            "item_condition_id": [1, 3],
            "shipping": [0, 1],
            "item_description": ["e", "f"],
        }
    )
    for case in (
        frame,
        plain,
        plain.iloc[[1]],
        frame.drop(columns=["brand_name", "item_description"]),
        plain[:0],
    ):
        pd.testing.assert_frame_equal(clean_input(case), reference_clean(case))


def test_clean_records_cleans_like_a_frame_of_the_records() -> None:
    records = [
        {"name": "Nike", "item_condition_id": 2, "shipping": 1},
        {"name": None, "brand_name": "Apple", "item_condition_id": None, "shipping": True, "extra": 1},
        {
            "name": 7,
            "category_name": "A/B",
            "item_condition_id": 2.7,
            "shipping": "1",
            "item_description": None,
        },
        {"item_condition_id": 1, "shipping": 0, "item_description": "Worn once"},
    ]
    for case in (records, records[:1], records[1:3]):
        pd.testing.assert_frame_equal(clean_records(case), clean_input(pd.DataFrame(case)))
        pd.testing.assert_frame_equal(clean_records(case), reference_clean(pd.DataFrame(case)))


def test_clean_input_names_every_missing_required_column() -> None:
    with pytest.raises(ValueError, match="name, item_condition_id"):
        clean_input(odd_listings().drop(columns=["name", "item_condition_id"]))
    with pytest.raises(ValueError, match="name, shipping"):
        clean_records([{"item_condition_id": 1}])


def test_one_listing_gets_the_suggestion_of_its_row_in_a_batch() -> None:
    rng = np.random.default_rng(0)
    n = 300
    words = np.array(["nike", "shoes", "apple", "phone", "case", "coach", "bag", "size", "new", "used"])
    frame = pd.DataFrame(
        {
            "name": [" ".join(rng.choice(words, 3)) for _ in range(n)],
            "brand_name": rng.choice(["Nike", "Apple", None], n),
            "category_name": rng.choice(["Men/Shoes", "Electronics/Phones", "Women/Bags"], n),
            "item_condition_id": rng.integers(1, 6, n),
            "shipping": rng.integers(0, 2, n),
            "item_description": [" ".join(rng.choice(words, 8)) for _ in range(n)],
        }
    )
    log_price = 2.0 + 0.5 * frame["name"].str.contains("apple").to_numpy() + rng.normal(0, 0.1, n)
    params = SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=100, text_max_features=100),
        mlp=SparseMLPParams(hidden=8, hidden2=4, epochs=1),
        n_mlp=1,
        n_binary_mlp=0,
        lgbm_rounds=0,
        weights=(0.5, 0.5),
    )
    model = SparseTextEnsemble(params).fit(frame[:200], log_price[:200])
    ranges = ConformalPriceRanges(0.8).calibrate(model.predict(frame[200:]), log_price[200:])
    suggester = PriceSuggester(model, ranges, "SparseTextEnsemble")
    batch = suggester.suggest(frame)
    singles = pd.concat([suggester.suggest(frame.iloc[[row]]) for row in range(40)], ignore_index=True)
    pd.testing.assert_frame_equal(singles, batch.head(40), atol=0.011, rtol=0)
    records = frame.head(40).to_dict("records")
    as_records = pd.DataFrame(suggester.suggest_records(records), columns=["price", "low", "high"])
    pd.testing.assert_frame_equal(as_records, batch.head(40), atol=0.011, rtol=0)
    one_by_one = [suggester.suggest_records([record])[0] for record in records[:10]]
    assert one_by_one == [tuple(row) for row in singles.head(10).itertuples(index=False)]


def small_suggester() -> tuple[PriceSuggester, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    n = 160
    words = np.array(["nike", "shoes", "apple", "phone", "case", "coach", "bag", "size"])
    frame = pd.DataFrame(
        {
            "name": [" ".join(rng.choice(words, 3)) for _ in range(n)],
            "brand_name": rng.choice(["Nike", "Apple", ""], n),
            "category_name": rng.choice(["Men/Shoes", "Electronics/Phones", "Women/Bags"], n),
            "item_condition_id": rng.integers(1, 6, n),
            "shipping": rng.integers(0, 2, n),
            "item_description": [" ".join(rng.choice(words, 6)) for _ in range(n)],
        }
    )
    log_price = 2.0 + 0.5 * frame["name"].str.contains("coach").to_numpy() + rng.normal(0, 0.1, n)
    params = ridge_only_params(100)
    model = SparseTextEnsemble(params).fit(frame[:120], log_price[:120])
    ranges = ConformalPriceRanges(0.8).calibrate(model.predict(frame[120:]), log_price[120:])
    return PriceSuggester(model, ranges, "SparseTextEnsemble"), frame, np.expm1(log_price)


def test_the_suggester_carries_its_reference_without_changing_a_price() -> None:
    bare, frame, price = small_suggester()
    reference = ServingReference.build(bare.model, frame[:120], frame, price)
    carrying = bare.with_reference(reference)
    assert bare.reference is None
    assert carrying.reference is reference
    assert carrying.reference.categories == ("Electronics/Phones", "Men/Shoes", "Women/Bags")
    pd.testing.assert_frame_equal(carrying.suggest(frame), bare.suggest(frame), check_exact=True)


def test_the_reference_survives_the_pickle_mlflow_writes() -> None:
    bare, frame, price = small_suggester()
    suggester = bare.with_reference(ServingReference.build(bare.model, frame[:120], frame, price))
    loaded = cloudpickle.loads(cloudpickle.dumps(suggester))
    assert loaded.reference is not None
    assert loaded.reference.categories == suggester.reference.categories
    assert loaded.reference.comparables is not None
    query = frame.iloc[[3]]
    assert loaded.reference.comparables.nearest(query, 5) == suggester.reference.comparables.nearest(query, 5)
    # One builder, pickled once: the index uses the very feature builder the model prices with.
    assert loaded.reference.comparables.builder is loaded.model.builder_
    pd.testing.assert_frame_equal(loaded.suggest(frame), suggester.suggest(frame), check_exact=True)


def test_a_suggester_pickled_before_it_carried_a_reference_still_suggests() -> None:
    suggester, frame, _ = small_suggester()
    del suggester.__dict__["reference"]  # the state an older pickle holds: no reference attribute at all
    old = cloudpickle.loads(cloudpickle.dumps(suggester))
    assert "reference" not in vars(old)
    assert old.reference is None
    scored = old.suggest(frame.head(5))
    assert (scored["price"] > 0).all()
    pd.testing.assert_frame_equal(scored, suggester.suggest(frame.head(5)), check_exact=True)


# Log-price steps per condition 1..5 that a seller would find absurd: like new above new, poor above fair.
ZIGZAG = np.array([0.0, 0.2, -0.1, -0.4, -0.3])


class ZigzagModel:
    """A price model that prices listings out of condition order, and counts its calls and rows."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, frame: Listings) -> np.ndarray:
        names = text_values(frame["name"])
        condition = np.asarray(frame["item_condition_id"], dtype=np.int64)
        self.calls.append(len(names))
        base = 2.0 + 0.1 * np.array([len(name) for name in names], dtype=float)
        steps = np.where((condition >= 1) & (condition <= 5), ZIGZAG[np.clip(condition, 1, 5) - 1], 0.5)
        return base + steps


class FixedRanges:
    coverage = 0.8

    def interval(self, log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.expm1(log_price - 0.2), np.expm1(log_price + 0.2)


def zigzag_listings(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [f"item {'x' * (i % 7)}" for i in range(n)],
            "item_condition_id": [1 + i % 5 for i in range(n)],
            "shipping": [i % 2 for i in range(n)],
        }
    )


def test_non_increasing_is_the_least_squares_fit_and_keeps_ordered_rows() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(300, 5))
    projected = non_increasing(values)
    isotonic = IsotonicRegression(increasing=False)
    expected = np.array([isotonic.fit_transform(np.arange(5), row) for row in values])
    np.testing.assert_allclose(projected, expected, rtol=0, atol=1e-12)
    assert (np.diff(projected, axis=1) <= 0).all()
    ordered = -np.sort(-values, axis=1)
    np.testing.assert_array_equal(non_increasing(ordered), ordered)


def test_every_listing_is_priced_lower_or_equal_in_a_worse_condition() -> None:
    model = ZigzagModel()
    suggester = PriceSuggester(model, FixedRanges(), "Zigzag")
    frame = zigzag_listings(20)
    prices = np.column_stack(
        [suggester.suggest(frame.assign(item_condition_id=c))["price"].to_numpy() for c in range(1, 6)]
    )
    raw = np.column_stack([model.predict(frame.assign(item_condition_id=c)) for c in range(1, 6)])
    assert (np.diff(raw, axis=1) > 0).any(axis=1).all()  # the model alone breaks the order for every listing
    assert (np.diff(prices, axis=1) <= 0).all()
    # The least-squares order of the zigzag's steps, around each listing's own level.
    expected = raw[:, :1] + non_increasing(ZIGZAG[None, :])
    np.testing.assert_allclose(prices, np.round(np.expm1(expected), 2), rtol=0, atol=0.006)
    scored = suggester.suggest(frame)
    assert (scored["low"] <= scored["price"]).all()
    assert (scored["price"] <= scored["high"]).all()


def test_the_model_is_called_once_with_every_listing_in_every_condition() -> None:
    model = ZigzagModel()
    PriceSuggester(model, FixedRanges(), "Zigzag").suggest(zigzag_listings(7))
    assert model.calls == [35]


def test_a_listing_in_an_unknown_condition_is_priced_as_the_model_prices_it() -> None:
    model = ZigzagModel()
    suggester = PriceSuggester(model, FixedRanges(), "Zigzag")
    frame = zigzag_listings(6).assign(item_condition_id=[1, 0, 3, None, 5, 7])
    price = suggester.suggest(frame)["price"].to_numpy()
    unknown = [1, 3, 5]
    expected = np.round(np.expm1(model.predict(clean_input(frame.iloc[unknown]))), 2)
    np.testing.assert_array_equal(price[unknown], expected)


@pytest.mark.parametrize("kind", ["zigzag", "ensemble"])
def test_a_listing_alone_gets_the_price_it_gets_among_others(kind: str) -> None:
    if kind == "zigzag":
        suggester, frame = PriceSuggester(ZigzagModel(), FixedRanges(), "Zigzag"), zigzag_listings(30)
    else:
        suggester, frame, _ = small_suggester()
    shuffled = frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
    batch = suggester.suggest(shuffled)
    records = shuffled.to_dict("records")
    for row in (0, 11, len(shuffled) - 1):
        alone = suggester.suggest(shuffled.iloc[[row]])
        pd.testing.assert_frame_equal(alone, batch.iloc[[row]].reset_index(drop=True), check_exact=True)
        assert suggester.suggest_records([records[row]]) == [tuple(batch.iloc[row])]


def test_the_ensemble_prices_conditions_as_any_model_would() -> None:
    suggester, frame, _ = small_suggester()

    class PredictOnly:
        """The same model seen only through `predict`: the suggester scores the five conditions' rows itself."""

        def predict(self, listings: Listings) -> np.ndarray:
            return np.asarray(suggester.model.predict(listings))

    generic = PriceSuggester(PredictOnly(), suggester.ranges, "PredictOnly")
    pd.testing.assert_frame_equal(generic.suggest(frame), suggester.suggest(frame), check_exact=True)

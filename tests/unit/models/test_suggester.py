"""Tests of the pyfunc's input cleaning, of one listing against the same listing in a batch, and of the serving
reference it carries."""

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from pricewise.columns import FEATURE_COLUMNS
from pricewise.models import (
    ConformalPriceRanges,
    SparseMLPParams,
    SparseTextEnsemble,
    SparseTextEnsembleParams,
)
from pricewise.models.features import FeatureParams
from pricewise.models.reference import ServingReference
from pricewise.models.suggester import PriceSuggester, clean_input, clean_records


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
    params = SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=100, text_max_features=100),
        n_mlp=0,
        n_binary_mlp=0,
        lgbm_rounds=0,
    )
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

"""Tests of the comparables index: built from plain frames with the model's own features, nearest first."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from pricewise.models import RulesBaseline, SparseTextEnsemble, SparseTextEnsembleParams
from pricewise.models.comparables import ComparablesIndex
from pricewise.models.features import FeatureParams

WORDS = np.array(["nike", "shoes", "apple", "phone", "case", "coach", "bag", "size", "red", "blue", "lamp"])


def listings(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "name": [" ".join(rng.choice(WORDS, 3)) for _ in range(n)],
            "brand_name": rng.choice(["Nike", "Apple", ""], n),
            "category_name": rng.choice(["Men/Shoes", "Electronics/Phones", "Women/Bags"], n),
            "item_condition_id": rng.integers(1, 6, n),
            "shipping": rng.integers(0, 2, n),
            "item_description": [" ".join(rng.choice(WORDS, 6)) for _ in range(n)],
        }
    )
    return frame, 2.0 + rng.normal(0, 0.3, n)


@pytest.fixture(scope="module")
def model() -> SparseTextEnsemble:
    frame, log_price = listings(200, seed=0)
    params = SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=200, text_max_features=200),
        n_mlp=0,
        n_binary_mlp=0,
        lgbm_rounds=0,
    )
    return SparseTextEnsemble(params).fit(frame, log_price)


def reference_listings() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(
        {
            "name": ["zebra lamp", "nike running shoes", "apple phone case", "coach leather bag"],
            "brand_name": ["", "Nike", "Apple", "Coach"],
            "category_name": ["Home/Lamps", "Men/Shoes", "Electronics/Phones", "Women/Bags"],
            "item_condition_id": [1, 2, 3, 4],
            "shipping": [0, 1, 0, 1],
            "item_description": ["a zebra lamp", "worn twice", "fits the phone", "soft leather"],
        }
    )
    return frame, np.array([30.0, 45.0, 9.5, 120.0])


def test_build_takes_plain_frames_and_finds_the_closest_listing_first(model: SparseTextEnsemble) -> None:
    frame, price = reference_listings()
    index = ComparablesIndex.build(model, frame, price)
    assert index is not None
    assert len(index) == 4
    query = frame.iloc[[1]].assign(item_description="like new")
    nearest = index.nearest(query, k=2)
    assert nearest, "a listing that shares words with a reference listing has comparables"
    assert nearest[0].name == "nike running shoes"
    assert nearest[0].price == 45.0
    assert nearest[0].brand_name == "Nike"
    assert nearest[0].item_condition_id == 2
    assert 0 < nearest[0].similarity <= 1
    assert [n.similarity for n in nearest] == sorted((n.similarity for n in nearest), reverse=True)


def test_a_listing_sharing_no_word_has_no_comparables(model: SparseTextEnsemble) -> None:
    frame, price = reference_listings()
    index = ComparablesIndex.build(model, frame, price)
    assert index is not None
    unrelated = frame.iloc[[0]].assign(name="qqq", brand_name="", category_name="", item_description="")
    assert index.nearest(unrelated, k=3) == []
    assert index.nearest(frame.iloc[[1]], k=0) == []


def test_words_in_most_listings_are_not_searched(model: SparseTextEnsemble) -> None:
    frame, price = listings(100, seed=1)
    searched = ComparablesIndex.from_frame(model.builder_, frame, price, max_df_share=0.05)
    everything = ComparablesIndex.from_frame(model.builder_, frame, price, max_df_share=1.0)
    assert searched.searchable.sum() < everything.searchable.sum()


def test_a_model_without_text_features_has_no_index() -> None:
    frame, log_price = listings(50, seed=2)
    baseline = RulesBaseline(min_group_size=2).fit(frame, log_price)
    assert ComparablesIndex.build(baseline, frame, np.expm1(log_price)) is None


def test_the_index_survives_pickling(model: SparseTextEnsemble) -> None:
    frame, price = reference_listings()
    index = ComparablesIndex.build(model, frame, price)
    assert index is not None
    copy = pickle.loads(pickle.dumps(index))
    query = frame.iloc[[2]]
    assert copy.nearest(query, k=3) == index.nearest(query, k=3)

"""Tests of the comparables index: built from plain frames with the model's own features, nearest first."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from pricewise.models import RulesBaseline, SparseTextEnsemble
from pricewise.models.comparables import ComparablesIndex
from tests.support.models import ridge_only_params

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
    params = ridge_only_params(200)
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


PHONES = "Electronics/Cell Phones & Accessories/Cell Phones & Smartphones"
CASES = "Electronics/Cell Phones & Accessories/Cases, Covers & Skins"
CHARGERS = "Electronics/Cell Phones & Accessories/Chargers & Cradles"
HEADPHONES = "Electronics/TV, Audio & Surveillance/Headphones"


def kind_listings() -> tuple[pd.DataFrame, np.ndarray]:
    """iPhones among iPhone cases, chargers and headphones that share most of their words."""
    rows = [
        ("iphone x 256gb case black", "Apple", CASES, 1, 10.0),
        ("iphone x case 256gb black clear", "", CASES, 1, 8.0),
        ("iphone x case black", "OtterBox", CASES, 2, 12.0),
        ("iphone x 256gb unlocked", "Apple", PHONES, 2, 320.0),
        ("iphone x 64gb unlocked black", "Apple", PHONES, 3, 260.0),
        ("iphone x charger cable", "Anker", CHARGERS, 1, 9.0),
        ("iphone x headphones black", "Apple", HEADPHONES, 1, 25.0),
    ]
    frame = pd.DataFrame(
        {
            "name": [r[0] for r in rows],
            "brand_name": [r[1] for r in rows],
            "category_name": [r[2] for r in rows],
            "item_condition_id": [r[3] for r in rows],
            "shipping": [1] * len(rows),
            "item_description": ["works great"] * len(rows),
        }
    )
    return frame, np.array([r[4] for r in rows])


@pytest.fixture(scope="module")
def kind_index() -> ComparablesIndex:
    frame, price = kind_listings()
    repeated = pd.concat([frame] * 20, ignore_index=True)
    params = ridge_only_params(300)
    model = SparseTextEnsemble(params).fit(repeated, np.log1p(np.tile(price, 20)))
    return ComparablesIndex.from_frame(model.builder_, frame, price, max_df_share=1.0)


def query(name: str, category: str = "", brand: str = "") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "name": name,
                "brand_name": brand,
                "category_name": category,
                "item_condition_id": 2,
                "shipping": 1,
                "item_description": "",
            }
        ]
    )


def test_an_iphone_gets_iphones_not_cases_even_when_cases_share_more_words(
    kind_index: ComparablesIndex,
) -> None:
    listing = query("iPhone X 256GB case black", category=PHONES)
    text_only = kind_index.matrix @ np.ones(kind_index.matrix.shape[1])  # every reference row shares words
    assert (np.asarray(text_only) > 0).all()
    nearest = kind_index.nearest(listing, k=2)
    assert [n.category_name for n in nearest] == [PHONES, PHONES]
    assert all(n.price > 100 for n in nearest)


def test_other_kinds_only_fill_up_to_k_the_same_top_two_levels_first(kind_index: ComparablesIndex) -> None:
    listing = query("iPhone X 256GB black headphones", category=PHONES)
    nearest = kind_index.nearest(listing, k=6)
    categories = [n.category_name for n in nearest]
    assert categories.count(PHONES) == 2
    assert HEADPHONES not in categories, "the same top two levels fill up before any other category"
    assert len(nearest) == 6
    everything = kind_index.nearest(listing, k=7)
    assert HEADPHONES in [n.category_name for n in everything]
    assert [n.similarity for n in everything] == sorted((n.similarity for n in everything), reverse=True)


def test_without_a_category_the_kind_is_the_most_similar_neighbours_category(
    kind_index: ComparablesIndex,
) -> None:
    match = kind_index.search(query("iPhone X case clear black"), k=3)
    assert match.kind == CASES
    assert match.kind_guessed
    assert [n.category_name for n in match.neighbours] == [CASES] * 3
    assert match.brand in {"Apple", "OtterBox"}
    phone = kind_index.search(query("iPhone X 64GB unlocked"), k=2)
    assert phone.kind == PHONES
    assert phone.brand == "Apple", "the most common brand among the comparables of that kind"


def test_a_given_category_is_the_kind_even_when_unknown_to_the_index(kind_index: ComparablesIndex) -> None:
    given = kind_index.search(
        query(
            "iphone x black", category="electronics / cell phones & accessories / cell phones & smartphones"
        ),
        k=1,
    )
    assert given.kind == PHONES, (
        "matched as the model reads categories: case and spaces around '/' do not count"
    )
    assert not given.kind_guessed
    unknown = kind_index.search(
        query("iphone x black", category="Electronics/Cell Phones & Accessories/Foo"), k=3
    )
    assert unknown.kind == "Electronics/Cell Phones & Accessories/Foo"
    assert unknown.brand is None
    assert HEADPHONES not in [n.category_name for n in unknown.neighbours]


def test_comparables_say_their_condition_in_words(kind_index: ComparablesIndex) -> None:
    nearest = kind_index.nearest(query("iphone x", category=PHONES), k=7)
    words = {n.item_condition_id: n.condition for n in nearest}
    assert words == {1: "New", 2: "Like new", 3: "Good"}


def test_an_index_pickled_before_categories_were_coded_still_searches(kind_index: ComparablesIndex) -> None:
    old = pickle.loads(pickle.dumps(kind_index))
    coded = ("category_codes", "top_two_of", "category_keys", "top_two_keys", "category_labels")
    for attribute in (*coded, "brand_codes", "brand_labels"):
        del old.__dict__[attribute]
    old = pickle.loads(pickle.dumps(old))
    assert old.category_codes is None
    listing = query("iPhone X 256GB case black", category=PHONES)
    assert old.nearest(listing, k=3) == kind_index.nearest(listing, k=3)

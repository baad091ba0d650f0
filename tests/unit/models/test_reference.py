"""Tests of the serving reference: the seller page's category and brand lists and the comparables a model
carries."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from pricewise.models import RulesBaseline, SparseTextEnsemble
from pricewise.models.reference import MAX_CATEGORIES, ServingReference, top_brands, top_categories
from tests.support.models import ridge_only_params


def test_top_categories_keeps_the_most_common_non_empty_ones_sorted() -> None:
    names = pd.Series(["b"] * 5 + ["a"] * 4 + ["c"] * 3 + [""] * 6 + [None] * 9 + ["d"])
    assert top_categories(names) == ("a", "b", "c", "d")
    # The empty category is counted among the most common (and then not offered), as the page always did.
    assert top_categories(names, limit=3) == ("a", "b")
    assert top_categories(pd.Series([], dtype=object)) == ()


def test_the_category_list_has_every_category_up_to_its_cap() -> None:
    names = pd.Series([f"cat{i:04d}" for i in range(2100) for _ in range(1 + i % 3)])
    categories = top_categories(names)
    assert len(categories) == MAX_CATEGORIES == 2000
    assert list(categories) == sorted(categories)
    assert "cat0002" in categories  # three listings: among the most common
    # Fewer categories than the cap, as in the shared sample's 590: all of them are offered, rare ones too.
    assert len(top_categories(pd.Series([f"cat{i}" for i in range(590)]))) == 590


def test_top_brands_keeps_the_most_common_non_empty_brands_sorted() -> None:
    names = pd.Series(["Nike"] * 5 + ["Apple"] * 4 + ["Coach"] * 3 + ["", "  "] * 6 + [None] * 9 + ["Zara"])
    assert top_brands(names) == ("Apple", "Coach", "Nike", "Zara")
    # Blank brands never take a place among the most common: the two kept are the two most common brands.
    assert top_brands(names, limit=2) == ("Apple", "Nike")
    assert top_brands(pd.Series([], dtype=object)) == ()


def test_brands_tied_at_the_cut_are_chosen_the_same_whatever_the_row_order() -> None:
    names = pd.Series(["b", "a", "c", "c", "d"])
    assert top_brands(names, limit=2) == ("a", "c")
    assert top_brands(names[::-1].reset_index(drop=True), limit=2) == ("a", "c")


def test_the_brand_list_has_at_most_2000_entries() -> None:
    names = pd.Series([f"brand{i:04d}" for i in range(2500) for _ in range(1 + (i >= 2400))])
    brands = top_brands(names)
    assert len(brands) == 2000
    assert list(brands) == sorted(brands)
    assert "brand2450" in brands, "listed twice: among the most common"


def test_a_reference_pickled_before_it_carried_brands_loads_with_none() -> None:
    old = object.__new__(ServingReference)
    # The state a reference had before brands travelled with it: categories and comparables only.
    object.__setattr__(old, "__dict__", {"categories": ("Men/Shoes",), "comparables": None})
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.categories == ("Men/Shoes",)
    assert loaded.brands == ()


def frame_of(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    words = np.array(["nike", "shoes", "apple", "phone", "case", "coach", "bag"])
    frame = pd.DataFrame(
        {
            "name": [" ".join(rng.choice(words, 3)) for _ in range(n)],
            "brand_name": rng.choice(["Nike", "Apple", ""], n),
            "category_name": rng.choice(["Men/Shoes", "Electronics/Phones", "Women/Bags", ""], n),
            "item_condition_id": rng.integers(1, 6, n),
            "shipping": rng.integers(0, 2, n),
            "item_description": [" ".join(rng.choice(words, 5)) for _ in range(n)],
        }
    )
    return frame, 2.0 + rng.normal(0, 0.3, n)


def test_the_main_model_gets_categories_and_comparables_the_baseline_categories_only() -> None:
    frame, log_price = frame_of(150)
    params = ridge_only_params(100)
    main = SparseTextEnsemble(params).fit(frame[:100], log_price[:100])
    baseline = RulesBaseline(min_group_size=2).fit(frame[:100], log_price[:100])
    price = np.expm1(log_price)

    reference = ServingReference.build(main, frame[:100], frame, price)
    assert reference.categories == ("Electronics/Phones", "Men/Shoes", "Women/Bags")
    assert reference.brands == ("Apple", "Nike"), "the empty brand is not offered"
    assert reference.comparables is not None
    assert len(reference.comparables) == 150, "comparables come from every priced listing given"

    fallback = ServingReference.build(baseline, frame[:100], frame, price)
    assert fallback.categories == reference.categories
    assert fallback.brands == reference.brands
    assert fallback.comparables is None

"""Tests of the serving reference: the seller page's category list and the comparables a model carries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricewise.models import RulesBaseline, SparseTextEnsemble, SparseTextEnsembleParams
from pricewise.models.features import FeatureParams
from pricewise.models.reference import ServingReference, top_categories


def test_top_categories_keeps_the_most_common_non_empty_ones_sorted() -> None:
    names = pd.Series(["b"] * 5 + ["a"] * 4 + ["c"] * 3 + [""] * 6 + [None] * 9 + ["d"])
    assert top_categories(names) == ("a", "b", "c", "d")
    # The empty category is counted among the most common (and then not offered), as the page always did.
    assert top_categories(names, limit=3) == ("a", "b")
    assert top_categories(pd.Series([], dtype=object)) == ()


def test_the_category_list_has_at_most_300_entries() -> None:
    names = pd.Series([f"cat{i:03d}" for i in range(400) for _ in range(1 + i % 3)])
    categories = top_categories(names)
    assert len(categories) == 300
    assert list(categories) == sorted(categories)
    assert "cat002" in categories  # three listings: among the most common


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
    params = SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=100, text_max_features=100),
        n_mlp=0,
        n_binary_mlp=0,
        lgbm_rounds=0,
    )
    main = SparseTextEnsemble(params).fit(frame[:100], log_price[:100])
    baseline = RulesBaseline(min_group_size=2).fit(frame[:100], log_price[:100])
    price = np.expm1(log_price)

    reference = ServingReference.build(main, frame[:100], frame, price)
    assert reference.categories == ("Electronics/Phones", "Men/Shoes", "Women/Bags")
    assert reference.comparables is not None
    assert len(reference.comparables) == 150, "comparables come from every priced listing given"

    fallback = ServingReference.build(baseline, frame[:100], frame, price)
    assert fallback.categories == reference.categories
    assert fallback.comparables is None

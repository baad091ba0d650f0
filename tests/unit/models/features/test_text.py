"""Tests of listing normalisation and the sparse feature builder."""

import numpy as np
import pandas as pd
import pytest

from pricewise.models.features import FeatureParams, SparseFeatureBuilder, normalize_listings, normalize_text


def listings() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["Nike Air Max shoes", "iPhone 7 case", None, "Lularoe leggings TC"],
            "brand_name": ["Nike", None, np.nan, "LuLaRoe"],
            "category_name": ["Men/Shoes/Athletic", "Electronics/Cases/Phone", None, "Women/Pants/Leggings"],
            "item_condition_id": [1, 3, 2, np.nan],
            "shipping": [0, 1, 1, 0],
            "item_description": ["Worn twice, size 10", "No description yet", "", "One size, new"],
        }
    )


def shouted(frame: pd.DataFrame) -> pd.DataFrame:
    """Same listings with upper case and messy whitespace."""
    out = frame.copy()
    for column in ("name", "brand_name", "category_name", "item_description"):
        out[column] = [
            f"  {v.upper().replace(' ', '   ')}\t " if isinstance(v, str) else v for v in out[column]
        ]
    return out


def test_normalize_text_lowercases_and_collapses_whitespace() -> None:
    values = pd.Series(["  Hello\tWORLD  ", None, np.nan, ""])
    assert normalize_text(values).tolist() == ["hello world", "", "", ""]


def test_placeholder_description_is_dropped_and_missing_codes_are_empty() -> None:
    fields = normalize_listings(listings())
    assert fields["description"].tolist() == ["worn twice, size 10", "", "", "one size, new"]
    assert fields["condition"].tolist() == ["1", "3", "2", ""]
    assert fields["category_top"].tolist() == ["men", "electronics", "", "women"]


def test_missing_column_is_an_error() -> None:
    with pytest.raises(KeyError, match="shipping"):
        normalize_listings(listings().drop(columns="shipping"))


def test_features_are_invariant_to_case_and_whitespace() -> None:
    builder = SparseFeatureBuilder(FeatureParams(name_max_features=50, text_max_features=50)).fit(listings())
    plain = builder.transform(listings())
    noisy = builder.transform(shouted(listings()))
    assert plain.shape == noisy.shape
    assert plain.nnz > 0
    assert abs(plain - noisy).max() == 0


def test_feature_rows_are_l2_normalised_text_plus_one_hot() -> None:
    builder = SparseFeatureBuilder(FeatureParams(name_max_features=50, text_max_features=50)).fit(listings())
    matrix = builder.transform(listings())
    assert matrix.shape == (4, builder.n_features)
    assert matrix.dtype == np.float32
    name_block = matrix[:, : builder.name_tfidf_.columns_.size].toarray()
    np.testing.assert_allclose(np.linalg.norm(name_block[[0, 1, 3]], axis=1), 1.0, rtol=1e-5)


def test_unseen_words_and_categories_do_not_fail() -> None:
    builder = SparseFeatureBuilder(FeatureParams(name_max_features=50, text_max_features=50)).fit(listings())
    new = listings().assign(name="zzz qqq", brand_name="Unknown Brand", category_name="A/B/C")
    matrix = builder.transform(new)
    assert matrix.shape[0] == 4
    assert np.isfinite(matrix.toarray()).all()


def test_max_features_bounds_the_vocabulary() -> None:
    builder = SparseFeatureBuilder(FeatureParams(name_max_features=3, text_max_features=5)).fit(listings())
    assert builder.name_tfidf_.columns_.size == 3
    assert builder.text_tfidf_.columns_.size == 5

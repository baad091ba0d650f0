"""The sparse feature builder against a reference built from plain pandas and sklearn calls.

The builder works on lists and index arrays (one listing per request must be cheap); these tests pin its output
to the straightforward pandas + sklearn formulation, bit for bit, for batches and single rows.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from pricewise.models.features import FeatureParams, SparseFeatureBuilder, normalize_listings, normalize_text
from pricewise.models.features.sparse import ROW_PATH_MAX_ROWS, HashedTfidf

CATEGORICAL = ["brand", "category", "category_top", "condition", "shipping"]
WORDS = [
    "Nike",
    "air",
    "MAX",
    "size",
    "10",
    "iPhone",
    "case",
    "Lularoe",
    "TC",
    "é",
    "Straße",
    "İstanbul",
    "s",
]


def raw_listings(n: int, seed: int) -> pd.DataFrame:
    """Listings with repeated and rare words, odd whitespace, missing values and unseen-looking codes."""
    rng = np.random.default_rng(seed)

    def text(max_words: int) -> str:
        words = rng.choice(WORDS, rng.integers(0, max_words + 1))
        return rng.choice([" ", "  ", "\t", "\u00a0", "\x1c"]).join(words)

    return pd.DataFrame(
        {
            "name": [text(6) for _ in range(n)],
            "brand_name": rng.choice(
                ["Nike", "Apple", "LuLaRoe", None, "Rare Brand"], n, p=[0.3, 0.3, 0.2, 0.15, 0.05]
            ),
            "category_name": rng.choice(["Men/Shoes/Athletic", "Electronics / Cases", None, "Women/Tops"], n),
            "item_condition_id": rng.choice([1, 2, 3, 4, 5], n),
            "shipping": rng.integers(0, 2, n),
            "item_description": [
                rng.choice(["No description yet", None, text(30)], p=[0.2, 0.1, 0.7]) for _ in range(n)
            ],
        }
    )


def reference_normalize_text(values: pd.Series) -> pd.Series:
    text = values.astype(object).where(values.notna(), "").astype(str)
    return text.str.lower().str.split().str.join(" ").fillna("")


def reference_fields(frame: pd.DataFrame) -> pd.DataFrame:
    text = {
        f: reference_normalize_text(frame[f])
        for f in ("name", "brand_name", "category_name", "item_description")
    }
    category = text["category_name"].str.replace(" / ", "/", regex=False)

    def codes(values: pd.Series) -> list[str]:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return [str(int(code)) if np.isfinite(code) else "" for code in numbers]

    return pd.DataFrame(
        {
            "name": text["name"],
            "brand": text["brand_name"],
            "category": category,
            "category_top": category.str.split("/", n=1).str[0].fillna(""),
            "description": text["item_description"].where(
                text["item_description"] != "no description yet", ""
            ),
            "condition": pd.Series(codes(frame["item_condition_id"]), index=frame.index, dtype=object),
            "shipping": pd.Series(codes(frame["shipping"]), index=frame.index, dtype=object),
        },
        index=frame.index,
    )


def reference_tfidf(tfidf: HashedTfidf, documents: pd.Series) -> sp.csr_matrix:
    hasher = HashingVectorizer(
        n_features=2**22,
        ngram_range=(1, tfidf.ngram_max),
        token_pattern=r"(?u)\b\w+\b",
        lowercase=False,
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )
    counts = sp.csr_matrix(hasher.transform(documents))[:, tfidf.columns_]
    weighted = sp.csr_matrix(counts.multiply(tfidf.idf_[np.newaxis, :]), dtype=np.float32)
    return sp.csr_matrix(normalize(weighted, norm="l2", copy=False), dtype=np.float32)


def reference_transform(builder: SparseFeatureBuilder, frame: pd.DataFrame) -> sp.csr_matrix:
    fields = reference_fields(frame)
    name = fields["name"] + " " + fields["brand"]
    text = name + " " + fields["category"].str.replace("/", " ", regex=False) + " " + fields["description"]
    blocks = [
        reference_tfidf(builder.name_tfidf_, name),
        reference_tfidf(builder.text_tfidf_, text),
        sp.csr_matrix(builder.one_hot_.transform(fields[CATEGORICAL]), dtype=np.float32),
    ]
    return sp.csr_matrix(sp.hstack(blocks, format="csr"), dtype=np.float32)


def assert_same_matrix(actual: sp.csr_matrix, expected: sp.csr_matrix) -> None:
    expected = expected.copy()
    expected.sort_indices()
    assert actual.has_sorted_indices or actual.nnz == 0
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual.indptr, expected.indptr)
    np.testing.assert_array_equal(actual.indices, expected.indices)
    np.testing.assert_array_equal(actual.data, expected.data)


@pytest.fixture(scope="module", params=[1, 3], ids=["all-categories", "infrequent-grouped"])
def builder(request: pytest.FixtureRequest) -> SparseFeatureBuilder:
    params = FeatureParams(name_max_features=40, text_max_features=60, min_category_count=request.param)
    return SparseFeatureBuilder(params).fit(raw_listings(300, seed=0))


def test_normalised_fields_match_the_pandas_formulation() -> None:
    frame = raw_listings(200, seed=1)
    odd = pd.DataFrame(
        {
            "name": ["A", None, 3, np.nan, pd.NA, "İ  x"],
            "brand_name": [b"x", "İ", "a\x1cb", 1.5, None, "\u00a0"],
            "category_name": ["A / B/C", None, "x", "", "w/", "/"],
            "item_condition_id": [1, None, "3", "x", 2.0, np.inf],
            "shipping": [0, 1, np.nan, 1, 0, 1],
            "item_description": ["No description yet", " NO  DESCRIPTION yet", None, "x", "y", ""],
        }
    )
    for case in (frame, odd, frame.iloc[[7]], frame.iloc[:0]):
        pd.testing.assert_frame_equal(normalize_listings(case), reference_fields(case))
    values = pd.Series(["  Hello\tWORLD ", None, np.nan, 4, "İ", "a\u2028b"], index=[5, 4, 3, 2, 1, 0])
    pd.testing.assert_series_equal(normalize_text(values), reference_normalize_text(values))
    # Few ASCII strings are lower-cased by Python, many (or any non-ASCII) by Arrow: the same strings either way.
    every_ascii = "".join(chr(code) for code in range(128))
    for ascii_values in ([every_ascii, every_ascii[::-1], "MiXeD Case 123"], [every_ascii] * 100):
        series = pd.Series(ascii_values)
        pd.testing.assert_series_equal(normalize_text(series), reference_normalize_text(series))


def test_batch_transform_is_bit_identical_to_the_reference(builder: SparseFeatureBuilder) -> None:
    frame = raw_listings(250, seed=2)
    frame.loc[frame.index[:5], "brand_name"] = "Brand Never Seen"
    frame.loc[frame.index[5:10], "category_name"] = "New/Category/Here"
    assert_same_matrix(builder.transform(frame), reference_transform(builder, frame))


def test_single_rows_are_bit_identical_to_their_batch_rows(builder: SparseFeatureBuilder) -> None:
    frame = raw_listings(40, seed=3)
    batch = builder.transform(frame)
    for row in range(len(frame)):
        one = frame.iloc[[row]]
        assert_same_matrix(builder.transform(one), batch[row])
        assert_same_matrix(builder.transform(one), reference_transform(builder, one))


@pytest.mark.parametrize("n_rows", [1, 2, ROW_PATH_MAX_ROWS, ROW_PATH_MAX_ROWS + 1])
def test_both_transform_paths_match_the_reference_around_the_switch(
    builder: SparseFeatureBuilder, n_rows: int
) -> None:
    """Up to ROW_PATH_MAX_ROWS listings are built row by row, more as one matrix per block: same bits."""
    for seed in range(10, 16):
        frame = raw_listings(n_rows, seed=seed)
        frame.loc[frame.index[:1], "brand_name"] = "Brand Never Seen"
        assert_same_matrix(builder.transform(frame), reference_transform(builder, frame))
    rows = builder.transform_rows(frame)
    matrix = builder.transform(frame)
    assert len(rows) == n_rows
    for row, (columns, values) in enumerate(rows):
        np.testing.assert_array_equal(columns, matrix[row].indices)
        np.testing.assert_array_equal(values, matrix[row].data)


def test_empty_frame_and_rows_without_known_words(builder: SparseFeatureBuilder) -> None:
    empty = builder.transform(raw_listings(5, seed=4).iloc[:0])
    assert empty.shape == (0, builder.n_features)
    blank = raw_listings(3, seed=5).assign(
        name="zzz", brand_name=None, item_description=None, category_name=None
    )
    assert_same_matrix(builder.transform(blank), reference_transform(builder, blank))
    nothing = blank.assign(name="")  # no tokens at all: an all-zero text block, no division by a zero norm
    assert_same_matrix(builder.transform(nothing), reference_transform(builder, nothing))


def _as_pickled_before_caching(obj: object) -> object:
    """The object as unpickled from a pickle written before lookup caches existed: fitted state only."""
    clone = type(obj).__new__(type(obj))
    clone.__dict__.update(obj.__getstate__())  # type: ignore[attr-defined]
    return clone


def test_pickles_carry_fitted_state_only_and_old_pickles_still_load(builder: SparseFeatureBuilder) -> None:
    frame = raw_listings(30, seed=6)
    fresh = SparseFeatureBuilder(builder.params).fit(raw_listings(300, seed=0))
    size_before_use = len(pickle.dumps(fresh))
    expected = fresh.transform(frame)
    assert len(pickle.dumps(fresh)) == size_before_use
    legacy = _as_pickled_before_caching(fresh)
    assert isinstance(legacy, SparseFeatureBuilder)
    legacy.name_tfidf_ = _as_pickled_before_caching(fresh.name_tfidf_)  # type: ignore[assignment]
    legacy.text_tfidf_ = _as_pickled_before_caching(fresh.text_tfidf_)  # type: ignore[assignment]
    restored = pickle.loads(pickle.dumps(legacy))
    assert_same_matrix(restored.transform(frame), expected)


def test_refitting_rebuilds_the_category_lookup() -> None:
    builder = SparseFeatureBuilder(FeatureParams(name_max_features=20, text_max_features=20))
    first = raw_listings(100, seed=7)
    builder.fit(first).transform(first)
    second = raw_listings(100, seed=8).assign(brand_name="Only Brand")
    builder.fit(second)
    assert_same_matrix(builder.transform(second), reference_transform(builder, second))


def test_columns_by_name_give_the_features_of_the_frame(builder: SparseFeatureBuilder) -> None:
    frame = raw_listings(30, seed=9)
    frame.loc[frame.index[0], "item_condition_id"] = None  # mixed codes go through pandas' own coercion
    as_lists = {column: frame[column].tolist() for column in frame.columns}
    as_arrays = {column: frame[column].to_numpy() for column in frame.columns}
    expected = builder.transform(frame)
    assert_same_matrix(builder.transform(as_lists), expected)
    assert_same_matrix(builder.transform(as_arrays), expected)
    pd.testing.assert_frame_equal(
        normalize_listings(as_lists), normalize_listings(frame.reset_index(drop=True))
    )

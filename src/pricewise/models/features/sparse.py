"""Normalised listing fields in, one sparse float32 CSR matrix out (hashed TF-IDF n-grams + one-hot codes).

A model scores one listing per request as well as 50,000-row chunks, so the transform works on plain lists and
index arrays: a binary search replaces column-indexing the 4M-bucket hash space, and a dict replaces the
encoder's per-call validation. For the few listings of one request, `transform_rows` computes the same rows as
(column indices, values) pairs without building any sparse matrix, whose construction and validation cost more
than the features themselves. The fitted state (kept buckets, IDF, encoder) is what gets pickled; the lookup
tables derived from it are rebuilt on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction._hash import _hashing_transform
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from pricewise.models.features.text import ListingFields, Listings, listing_fields, n_listings

# Hash space before pruning: 4M buckets keeps collisions rare even for the full data's bigram vocabulary,
# and pruning to the most frequent columns bounds the model size without ever holding a vocabulary dict.
_HASH_BUCKETS = 2**22
# Single-character tokens are kept: sizes ("s", "m") and counts matter for prices.
_WORD_PATTERN = r"(?u)\b\w+\b"

_CATEGORICAL_COLUMNS: tuple[str, ...] = ("brand", "category", "category_top", "condition", "shipping")

# Up to this many listings, `transform` computes rows one by one and builds one matrix from them: for the few
# listings of a request that costs less than building and stacking a matrix per feature block.
ROW_PATH_MAX_ROWS = 4

# One row of the design matrix: sorted column indices (int64) and their float32 values.
SparseRow = tuple[np.ndarray, np.ndarray]
_NO_COLUMNS = np.empty(0, dtype=np.int64)
_NO_VALUES = np.empty(0, dtype=np.float32)


@dataclass(frozen=True)
class FeatureParams:
    """Hyperparameters of the sparse feature builder.

    Attributes:
        name_max_features: Columns kept for the name (+ brand) n-grams.
        text_max_features: Columns kept for the full-text (name, brand, category, description) n-grams.
        ngram_max: Longest word n-gram.
        min_df: Minimum number of training documents an n-gram must occur in to get a column.
        min_category_count: Rarer brand/category values share the encoder's "infrequent" column.
    """

    name_max_features: int = 100_000
    text_max_features: int = 100_000
    ngram_max: int = 2
    min_df: int = 1
    min_category_count: int = 1


class HashedTfidf:
    """TF-IDF over word n-grams with hashed columns, pruned to the most frequent ones seen in training.

    Hashing makes the transform stateless apart from a column lookup, so fitting on millions of rows never
    builds a Python vocabulary, and memory stays bounded by the bucket count.
    """

    def __init__(self, ngram_max: int, max_features: int, min_df: int) -> None:
        """Set up the hasher.

        Args:
            ngram_max: Longest word n-gram.
            max_features: Number of columns kept after pruning.
            min_df: Minimum document frequency of a kept column.
        """
        self.ngram_max = ngram_max
        self.max_features = max_features
        self.min_df = min_df
        self.columns_: np.ndarray = np.empty(0, dtype=np.int64)
        self.idf_: np.ndarray = np.empty(0, dtype=np.float32)
        self._hasher_cache: HashingVectorizer | None = None
        self._analyzer_cache: Callable[[str], list[str]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The fitted state, without the hasher and analyzer (rebuilt on first use)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_hasher_cache", "_analyzer_cache")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the fitted state (also from pickles made before the hasher was cached)."""
        self.__dict__.update(state)
        self._hasher_cache = None
        self._analyzer_cache = None

    def hasher(self) -> HashingVectorizer:
        """The n-gram hasher (stateless, so one instance serves every call and thread)."""
        if self._hasher_cache is None:
            self._hasher_cache = HashingVectorizer(
                n_features=_HASH_BUCKETS,
                ngram_range=(1, self.ngram_max),
                token_pattern=_WORD_PATTERN,
                lowercase=False,
                alternate_sign=False,
                norm=None,
                dtype=np.float32,
            )
        return self._hasher_cache

    def analyzer(self) -> Callable[[str], list[str]]:
        """The function that turns one document into its n-grams, exactly as they are hashed."""
        if self._analyzer_cache is None:
            self._analyzer_cache = self.hasher().build_analyzer()
        return self._analyzer_cache

    def fit(self, documents: Iterable[str]) -> Self:
        """Choose the kept columns and their IDF weights from training documents.

        Args:
            documents: Normalised strings.

        Returns:
            self.
        """
        counts = sp.csr_matrix(self.hasher().transform(documents))
        doc_freq = np.bincount(counts.indices, minlength=_HASH_BUCKETS)
        candidates = np.flatnonzero(doc_freq >= self.min_df)
        # Stable sort on -df so ties resolve by bucket index: the kept set is a pure function of the data.
        order = np.argsort(-doc_freq[candidates], kind="stable")[: self.max_features]
        self.columns_ = np.sort(candidates[order])
        n_docs = counts.shape[0]
        self.idf_ = (np.log((1.0 + n_docs) / (1.0 + doc_freq[self.columns_])) + 1.0).astype(np.float32)
        return self

    def columns_of(self, buckets: np.ndarray) -> np.ndarray:
        """Column of each hash bucket in the fitted block, -1 for a bucket that was pruned."""
        buckets = np.asarray(buckets, dtype=np.int64)
        if self.columns_.size == 0:
            return np.full(buckets.size, -1, dtype=np.int64)
        positions = np.minimum(np.searchsorted(self.columns_, buckets), self.columns_.size - 1)
        return np.where(self.columns_[positions] == buckets, positions, -1)

    def transform(self, documents: Iterable[str]) -> sp.csr_matrix:
        """Hash, keep the fitted columns, weight by IDF and L2-normalise each row.

        Args:
            documents: Normalised strings.

        Returns:
            CSR float32 matrix of shape (len(documents), number of kept columns), column indices sorted.
        """
        documents = documents if isinstance(documents, list) else list(documents)
        if not documents:
            return sp.csr_matrix((0, self.columns_.size), dtype=np.float32)
        counts = self.hasher().transform(documents)  # CSR, indices sorted and summed per row
        # A binary search in the sorted kept buckets instead of column-indexing the 4M-wide count matrix, which
        # allocates and scans the whole bucket range on every call. Bucket order is column order, so each row
        # stays sorted.
        columns = self.columns_of(counts.indices)
        kept = columns >= 0
        kept_before = np.concatenate(([0], np.cumsum(kept)))
        columns = columns[kept]
        matrix = sp.csr_matrix(
            (
                (counts.data[kept] * self.idf_[columns]).astype(np.float32, copy=False),
                columns.astype(np.int32),
                kept_before[counts.indptr].astype(np.int32),
            ),
            shape=(counts.shape[0], self.columns_.size),
        )
        inplace_csr_row_normalize_l2(matrix)
        return matrix

    def transform_one(self, document: str) -> SparseRow:
        """`transform([document])`'s only row as (columns, values), bit for bit, without a sparse matrix.

        The n-grams are hashed by the same routine HashingVectorizer uses, and the L2 norm is accumulated in the
        same order and precision as sklearn's in-place normalisation (float32 squares summed in float64).
        """
        tokens = self.analyzer()(document)
        if not tokens:
            return _NO_COLUMNS, _NO_VALUES
        buckets, _, _ = _hashing_transform(
            [((token, 1) for token in tokens)], _HASH_BUCKETS, np.float32, False, 0
        )
        buckets.sort()  # then each distinct bucket once, with its count (np.unique's work, without its overhead)
        starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
        counts = np.diff(np.append(starts, buckets.size))
        buckets = buckets[starts]
        columns = self.columns_of(buckets)
        kept = columns >= 0
        columns = columns[kept]
        values = counts[kept].astype(np.float32) * self.idf_[columns]
        squares = (values * values).astype(np.float64)
        norm = float(np.cumsum(squares)[-1]) if squares.size else 0.0
        if norm != 0.0:  # divided in float64, rounded to float32, as C does for `float /= double`
            values = (values.astype(np.float64) / math.sqrt(norm)).astype(np.float32)
        return columns, values


class _OneHotLookup:
    """The fitted encoder as one dict per column: value -> output column, and the column unseen values get."""

    def __init__(self, encoder: OneHotEncoder) -> None:
        categories: list[np.ndarray] = list(encoder.categories_)
        infrequent: list[np.ndarray | None] = list(
            getattr(encoder, "infrequent_categories_", [None] * len(categories))
        )
        self.n_columns = len(encoder.get_feature_names_out())
        # Every known value through the encoder itself, so frequent/infrequent grouping comes from sklearn.
        n_rows = max(len(values) for values in categories)
        probe = pd.DataFrame(
            {
                column: [values[min(row, len(values) - 1)] for row in range(n_rows)]
                for column, values in zip(_CATEGORICAL_COLUMNS, categories, strict=True)
            }
        )
        encoded = sp.csr_matrix(encoder.transform(probe))
        if not np.all(np.diff(encoded.indptr) == len(categories)):
            raise ValueError("expected exactly one output column per categorical column and value")
        codes = encoded.indices.reshape(n_rows, len(categories))
        self.maps: list[dict[str, int]] = []
        self.unseen: list[int] = []
        for index, values in enumerate(categories):
            mapping = {str(value): int(codes[row, index]) for row, value in enumerate(values)}
            self.maps.append(mapping)
            rare = infrequent[index]
            self.unseen.append(mapping[str(rare[0])] if rare is not None and len(rare) else -1)

    def transform(self, columns: list[list[str]]) -> sp.csr_matrix:
        """One row per listing, one 1.0 per categorical column whose value (or "infrequent") has a column."""
        n_rows = len(columns[0]) if columns else 0
        codes = np.array(
            [
                [mapping.get(value, unseen) for value in values]
                for mapping, unseen, values in zip(self.maps, self.unseen, columns, strict=True)
            ],
            dtype=np.int64,
        ).reshape(len(columns), n_rows)
        # Row-major over (row, column): each row's entries come out in column-block order, i.e. sorted.
        codes = codes.T
        kept = codes >= 0
        indptr = np.concatenate(([0], np.cumsum(kept.sum(axis=1))))
        indices = codes[kept]
        return sp.csr_matrix(
            (np.ones(indices.size, dtype=np.float32), indices.astype(np.int32), indptr.astype(np.int32)),
            shape=(n_rows, self.n_columns),
        )

    def columns_one(self, values: list[str]) -> np.ndarray:
        """The output columns of one listing (one value per categorical column), sorted."""
        codes = [
            mapping.get(value, unseen)
            for mapping, unseen, value in zip(self.maps, self.unseen, values, strict=True)
        ]
        return np.array([code for code in codes if code >= 0], dtype=np.int64)


class SparseFeatureBuilder:
    """Raw listing frame in, sparse design matrix out; fit learns the kept n-grams, IDF and category codes."""

    def __init__(self, params: FeatureParams | None = None) -> None:
        """Create an unfitted builder.

        Args:
            params: Feature hyperparameters; defaults when None.
        """
        self.params = params or FeatureParams()
        self.name_tfidf_ = HashedTfidf(2, self.params.name_max_features, self.params.min_df)
        self.text_tfidf_ = HashedTfidf(
            self.params.ngram_max, self.params.text_max_features, self.params.min_df
        )
        self.one_hot_ = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=self.params.min_category_count if self.params.min_category_count > 1 else None,
            dtype=np.float32,
        )
        self._one_hot_cache: _OneHotLookup | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The fitted state, without the one-hot lookup (rebuilt on first use)."""
        return {key: value for key, value in self.__dict__.items() if key != "_one_hot_cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the fitted state (also from pickles made before the lookup was cached)."""
        self.__dict__.update(state)
        self._one_hot_cache = None

    @staticmethod
    def documents(fields: ListingFields) -> tuple[list[str], list[str]]:
        """Build the two text documents per listing: short (name + brand) and long (everything).

        Args:
            fields: Normalised listing fields (``pricewise.models.features.text.listing_fields``).

        Returns:
            (name documents, full-text documents), one string per listing each.
        """
        name = [f"{title} {brand}" for title, brand in zip(fields.name, fields.brand, strict=True)]
        text = [
            f"{short} {category.replace('/', ' ')} {description}"
            for short, category, description in zip(name, fields.category, fields.description, strict=True)
        ]
        return name, text

    @staticmethod
    def _categorical(fields: ListingFields) -> list[list[str]]:
        return [getattr(fields, column) for column in _CATEGORICAL_COLUMNS]

    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn the vocabulary, IDF weights and category codes from training listings.

        Args:
            frame: Raw listing fields (see ``pricewise.models.features.text.FEATURE_COLUMNS``).

        Returns:
            self.
        """
        fields = listing_fields(frame)
        name, text = self.documents(fields)
        self.name_tfidf_.fit(name)
        self.text_tfidf_.fit(text)
        categorical = self._categorical(fields)
        self.one_hot_.fit(
            pd.DataFrame(
                {
                    column: pd.Series(values, dtype=object)
                    for column, values in zip(_CATEGORICAL_COLUMNS, categorical, strict=True)
                }
            )
        )
        self._one_hot_cache = None
        return self

    def _one_hot(self) -> _OneHotLookup:
        if self._one_hot_cache is None:
            self._one_hot_cache = _OneHotLookup(self.one_hot_)
        return self._one_hot_cache

    def transform(self, frame: Listings) -> sp.csr_matrix:
        """Turn listings into the design matrix.

        Args:
            frame: Raw listing fields (a frame, or columns by name).

        Returns:
            CSR float32 matrix with one row per listing.
        """
        if n_listings(frame) <= ROW_PATH_MAX_ROWS:
            return self._matrix_of_rows(self.transform_rows(frame))
        fields = listing_fields(frame)
        name, text = self.documents(fields)
        blocks = [
            self.name_tfidf_.transform(name),
            self.text_tfidf_.transform(text),
            self._one_hot().transform(self._categorical(fields)),
        ]
        matrix = sp.hstack(blocks, format="csr")  # CSR blocks: stays float32 csr_matrix, rows sorted
        return matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(matrix, dtype=np.float32)

    def transform_rows(self, frame: Listings) -> list[SparseRow]:
        """The rows of `transform(frame)` as (columns, values) pairs, for a handful of listings.

        Args:
            frame: Raw listing fields (a frame, or columns by name).

        Returns:
            One (sorted int64 column indices, float32 values) pair per listing, equal to that listing's row of
            the design matrix.
        """
        fields = listing_fields(frame)
        names, texts = self.documents(fields)
        categorical = self._categorical(fields)
        one_hot = self._one_hot()
        text_offset = self.name_tfidf_.columns_.size
        one_hot_offset = text_offset + self.text_tfidf_.columns_.size
        rows = []
        for row, (name, text) in enumerate(zip(names, texts, strict=True)):
            name_columns, name_values = self.name_tfidf_.transform_one(name)
            text_columns, text_values = self.text_tfidf_.transform_one(text)
            codes = one_hot.columns_one([values[row] for values in categorical])
            columns = np.concatenate((name_columns, text_columns + text_offset, codes + one_hot_offset))
            values = np.concatenate((name_values, text_values, np.ones(codes.size, dtype=np.float32)))
            rows.append((columns, values))
        return rows

    def _matrix_of_rows(self, rows: list[SparseRow]) -> sp.csr_matrix:
        indptr = np.zeros(len(rows) + 1, dtype=np.int32)
        indptr[1:] = np.cumsum([columns.size for columns, _ in rows])
        indices = np.concatenate([columns for columns, _ in rows]).astype(np.int32) if rows else _NO_COLUMNS
        data = np.concatenate([values for _, values in rows]) if rows else _NO_VALUES
        return sp.csr_matrix((data, indices, indptr), shape=(len(rows), self.n_features))

    @property
    def n_features(self) -> int:
        """Number of columns of the design matrix (after fit)."""
        n_one_hot = self._one_hot().n_columns
        return int(self.name_tfidf_.columns_.size + self.text_tfidf_.columns_.size + n_one_hot)

"""Normalised listing fields in, one sparse float32 CSR matrix out (hashed TF-IDF n-grams + one-hot codes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import OneHotEncoder, normalize

from pricewise.features.text import normalize_listings

# Hash space before pruning: 4M buckets keeps collisions rare even for the full data's bigram vocabulary,
# and pruning to the most frequent columns bounds the model size without ever holding a vocabulary dict.
_HASH_BUCKETS = 2**22
# Single-character tokens are kept: sizes ("s", "m") and counts matter for prices.
_WORD_PATTERN = r"(?u)\b\w+\b"

_CATEGORICAL_COLUMNS: tuple[str, ...] = ("brand", "category", "category_top", "condition", "shipping")


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

    def _hasher(self) -> HashingVectorizer:
        return HashingVectorizer(
            n_features=_HASH_BUCKETS,
            ngram_range=(1, self.ngram_max),
            token_pattern=_WORD_PATTERN,
            lowercase=False,
            alternate_sign=False,
            norm=None,
            dtype=np.float32,
        )

    def fit(self, documents: pd.Series) -> Self:
        """Choose the kept columns and their IDF weights from training documents.

        Args:
            documents: Normalised strings.

        Returns:
            self.
        """
        counts = sp.csr_matrix(self._hasher().transform(documents))
        doc_freq = np.bincount(counts.indices, minlength=_HASH_BUCKETS)
        candidates = np.flatnonzero(doc_freq >= self.min_df)
        # Stable sort on -df so ties resolve by bucket index: the kept set is a pure function of the data.
        order = np.argsort(-doc_freq[candidates], kind="stable")[: self.max_features]
        self.columns_ = np.sort(candidates[order])
        n_docs = counts.shape[0]
        self.idf_ = (np.log((1.0 + n_docs) / (1.0 + doc_freq[self.columns_])) + 1.0).astype(np.float32)
        return self

    def transform(self, documents: pd.Series) -> sp.csr_matrix:
        """Hash, keep the fitted columns, weight by IDF and L2-normalise each row.

        Args:
            documents: Normalised strings.

        Returns:
            CSR float32 matrix of shape (len(documents), number of kept columns).
        """
        counts = sp.csr_matrix(self._hasher().transform(documents))[:, self.columns_]
        weighted = sp.csr_matrix(counts.multiply(self.idf_[np.newaxis, :]), dtype=np.float32)
        return sp.csr_matrix(normalize(weighted, norm="l2", copy=False), dtype=np.float32)


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

    @staticmethod
    def _documents(fields: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """Build the two text documents per listing: short (name + brand) and long (everything)."""
        name = fields["name"] + " " + fields["brand"]
        text = (
            name + " " + fields["category"].str.replace("/", " ", regex=False) + " " + fields["description"]
        )
        return name, text

    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn the vocabulary, IDF weights and category codes from training listings.

        Args:
            frame: Raw listing fields (see ``pricewise.features.text.RAW_COLUMNS``).

        Returns:
            self.
        """
        fields = normalize_listings(frame)
        name, text = self._documents(fields)
        self.name_tfidf_.fit(name)
        self.text_tfidf_.fit(text)
        self.one_hot_.fit(fields[list(_CATEGORICAL_COLUMNS)])
        return self

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        """Turn listings into the design matrix.

        Args:
            frame: Raw listing fields.

        Returns:
            CSR float32 matrix with one row per listing.
        """
        fields = normalize_listings(frame)
        name, text = self._documents(fields)
        blocks = [
            self.name_tfidf_.transform(name),
            self.text_tfidf_.transform(text),
            sp.csr_matrix(self.one_hot_.transform(fields[list(_CATEGORICAL_COLUMNS)]), dtype=np.float32),
        ]
        return sp.csr_matrix(sp.hstack(blocks, format="csr"), dtype=np.float32)

    @property
    def n_features(self) -> int:
        """Number of columns of the design matrix (after fit)."""
        n_one_hot = len(self.one_hot_.get_feature_names_out())
        return int(self.name_tfidf_.columns_.size + self.text_tfidf_.columns_.size + n_one_hot)

"""A fitted main model and priced reference listings in, the most similar priced listings to a new one out.

Similarity is the cosine of the model's own TF-IDF text features (name + brand and full text), so "similar"
means what the model sees. The index is the reference matrix in column-major form: a query touches only the
posting lists of its own words, and words carried by more than `max_df_share` of listings are left out of the
search (they say little about similarity and would make every query scan most rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from pricewise.models.features.sparse import SparseFeatureBuilder
from pricewise.models.suggester import LogPriceModel, clean_input

DISPLAY_COLUMNS = ("name", "brand_name", "category_name", "item_condition_id")
TRANSFORM_CHUNK = 100_000


@dataclass(frozen=True)
class Neighbour:
    """A reference listing, its price and its similarity to the query (0..1)."""

    name: str
    brand_name: str
    category_name: str
    item_condition_id: int
    price: float
    similarity: float


class ComparablesIndex:
    """Nearest training listings by cosine similarity of TF-IDF features."""

    def __init__(
        self, builder: SparseFeatureBuilder, matrix: sp.csc_matrix, listings: pd.DataFrame, price: np.ndarray
    ) -> None:
        """Hold a built index (use `build` or `from_frame`).

        Args:
            builder: The model's fitted feature builder.
            matrix: Reference rows x text-feature columns, rows L2-normalised, common columns zeroed, CSC.
            listings: Display fields of the reference rows.
            price: Their prices.
        """
        self.builder = builder
        self.matrix = matrix
        self.listings = listings
        self.price = price
        self.n_text_columns = matrix.shape[1]
        self.searchable = np.diff(matrix.indptr) > 0

    @classmethod
    def from_frame(
        cls, builder: SparseFeatureBuilder, frame: pd.DataFrame, price: np.ndarray, max_df_share: float = 0.05
    ) -> ComparablesIndex:
        """Index reference listings with a fitted builder.

        Args:
            builder: The model's fitted feature builder.
            frame: Raw listing fields of the reference listings.
            price: Their prices.
            max_df_share: Columns present in more than this share of rows are not searched.

        Returns:
            The index.
        """
        clean = clean_input(frame)
        n_text = int(builder.name_tfidf_.columns_.size + builder.text_tfidf_.columns_.size)
        blocks = [
            sp.csr_matrix(builder.transform(clean.iloc[start : start + TRANSFORM_CHUNK]))[:, :n_text]
            for start in range(0, len(clean), TRANSFORM_CHUNK)
        ]
        matrix = sp.csr_matrix(normalize(sp.vstack(blocks, format="csr"), norm="l2"), dtype=np.float32)
        matrix = sp.csc_matrix(matrix)
        doc_freq = np.diff(matrix.indptr)
        too_common = np.flatnonzero(doc_freq > max(1, int(max_df_share * matrix.shape[0])))
        if too_common.size:
            keep = np.ones(matrix.shape[1], dtype=np.float32)
            keep[too_common] = 0.0
            matrix = sp.csc_matrix(matrix @ sp.diags(keep))
            matrix.eliminate_zeros()
        listings = clean[list(DISPLAY_COLUMNS)].reset_index(drop=True)
        return cls(builder, matrix, listings, np.asarray(price, dtype=np.float64))

    @classmethod
    def build(cls, model: LogPriceModel, frame: pd.DataFrame, price: np.ndarray) -> ComparablesIndex | None:
        """Index reference listings with the model's own builder.

        Args:
            model: A fitted price model.
            frame: Raw listing fields of the reference listings.
            price: Their prices.

        Returns:
            The index, or None for a model without a sparse feature builder (its features say nothing about
            text similarity).
        """
        builder = getattr(model, "builder_", None)
        if not isinstance(builder, SparseFeatureBuilder):
            return None
        return cls.from_frame(builder, frame, price)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def nearest(self, listing: pd.DataFrame, k: int) -> list[Neighbour]:
        """The k most similar reference listings to the first listing of a frame, most similar first."""
        if k <= 0 or len(self) == 0:
            return []
        query = sp.csr_matrix(self.builder.transform(clean_input(listing.head(1))))[:, : self.n_text_columns]
        columns = query.indices[self.searchable[query.indices]]
        if columns.size == 0:
            return []
        values = query[0, columns].toarray().ravel()
        norm = float(np.linalg.norm(values))
        scores = np.asarray(self.matrix[:, columns] @ (values / norm)).ravel()
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        out = []
        for i in top.tolist():
            if scores[i] <= 0:
                break
            row = self.listings.iloc[i]
            out.append(
                Neighbour(
                    name=str(row["name"]),
                    brand_name=str(row["brand_name"]),
                    category_name=str(row["category_name"]),
                    item_condition_id=int(row["item_condition_id"]),
                    price=float(self.price[i]),
                    similarity=round(float(scores[i]), 4),
                )
            )
        return out

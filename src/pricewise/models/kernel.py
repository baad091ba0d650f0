"""Listing fields and their sparse design rows in, log prices out: kernel ridge on sentence embeddings + TF-IDF.

The sparse components learn every word's price effect from the training rows alone. A pretrained sentence
encoder already knows that "iphone 7 plus 128gb" and "apple phone" are close, which matters when the training
set is small. The kernel adds the two views of a listing: an RBF kernel on the sentence embeddings (with one-hot
condition and shipping), plus `sparse_weight` times the linear kernel of the ensemble's TF-IDF and one-hot design
rows. One model that sees both views prices better than a blend of one model per view.

Exact kernel ridge keeps the whole (n x n) kernel in memory, so the component is only fitted up to
`max_train_rows` listings; the ensemble leaves it out above that (with a million listings the sparse components
have the words they need, and encoding every listing would exceed the time budgets). Predicting needs no
training design rows: the linear part of the kernel folds into one primal weight vector, X_train^T @ dual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from pricewise.models.features.sentences import TEXTS, make_encoder
from pricewise.models.features.text import ListingFields

_CONDITIONS = ("1", "2", "3", "4", "5")
_SHIPPING = ("0", "1")
# Rows of the sparse Gram matrix computed at once: bounds the sparse product's memory to a slice of the kernel.
_GRAM_BLOCK_ROWS = 2048


@dataclass(frozen=True)
class EmbeddingParams:
    """Hyperparameters of the embedding component.

    Attributes:
        enabled: Whether the main model includes the component at all.
        max_train_rows: Training sets larger than this leave the component out (exact kernel ridge is O(n^2)
            memory and O(n^3) time).
        alpha: L2 strength of the kernel ridge.
        gamma: Width of the RBF kernel, exp(-gamma * |a - b|^2), on unit-length embeddings.
        tabular_scale: Weight of the one-hot condition and shipping columns appended to the embeddings.
        sparse_weight: Weight of the linear kernel on the ensemble's sparse design rows, added to the RBF
            kernel; 0 leaves the kernel on embeddings alone.
        texts: Which texts of a listing are embedded (names in `pricewise.models.features.sentences.TEXTS`); their
            embeddings are concatenated, and gamma is divided by their number so the kernel's scale stays put.
        static_texts: Which of those texts are embedded by the word-piece table distilled from MiniLM
            (microseconds a text) rather than by MiniLM itself (milliseconds); see
            `pricewise.models.features.static_embedding`.
    """

    enabled: bool = False
    max_train_rows: int = 15_000
    alpha: float = 0.3
    gamma: float = 1.0
    tabular_scale: float = 0.3
    sparse_weight: float = 0.2
    texts: tuple[str, ...] = ("brand_category_name", "name_description")
    static_texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        stray = [t for t in self.static_texts if t not in self.texts]
        if stray:
            raise ValueError(
                f"embedding.static_texts must name some of embedding.texts {list(self.texts)}, got {stray}"
            )
        unknown = [t for t in self.texts if t not in TEXTS]
        if unknown or not self.texts:
            raise ValueError(f"embedding.texts must name some of {sorted(TEXTS)}, got {list(self.texts)}")
        if self.sparse_weight < 0 or self.alpha <= 0 or self.gamma <= 0:
            raise ValueError("embedding.alpha and embedding.gamma must be positive, sparse_weight at least 0")


def _squared_norms(rows: np.ndarray) -> np.ndarray:
    """|row|^2 of every row (float64)."""
    return np.asarray(np.einsum("ij,ij->i", rows, rows), dtype=np.float64)


def _rbf(a: np.ndarray, b: np.ndarray, gamma: float, b_norms: np.ndarray) -> np.ndarray:
    """exp(-gamma * |a_i - b_j|^2) for every pair of rows (float64), computed in place in one (n x m) array.

    b_norms are b's squared row norms: the training rows' are computed once at fit, not at every prediction.
    """
    kernel: np.ndarray = a @ b.T
    kernel *= -2.0
    kernel += _squared_norms(a)[:, None]
    kernel += b_norms[None, :]
    np.maximum(kernel, 0.0, out=kernel)  # rounding can make a distance a hair below zero
    kernel *= -gamma
    return np.asarray(np.exp(kernel, out=kernel))


def _add_gram(kernel: np.ndarray, design: sp.csr_matrix, weight: float) -> None:
    """kernel += weight * design @ design.T, a block of rows at a time (the product of one-hot rows is dense)."""
    for start in range(0, design.shape[0], _GRAM_BLOCK_ROWS):
        block = design[start : start + _GRAM_BLOCK_ROWS]
        kernel[start : start + block.shape[0]] += weight * (block @ design.T).toarray()


class EmbeddingKernelRidge:
    """Kernel ridge with the kernel RBF([embedding, one-hot codes]) + sparse_weight * <design row, design row>."""

    def __init__(self, params: EmbeddingParams) -> None:
        """Create an unfitted component.

        Args:
            params: Hyperparameters.
        """
        self.params = params
        self.encoders = {
            text: make_encoder("static" if text in params.static_texts else "minilm", TEXTS[text][1])
            for text in params.texts
        }
        self.gamma_ = params.gamma / len(params.texts)
        self.train_inputs_: np.ndarray = np.empty((0, 0))
        self.train_norms_: np.ndarray = np.empty(0)
        self.dual_: np.ndarray = np.empty(0)
        self.sparse_coef_: np.ndarray = np.empty(0)
        self.offset_ = 0.0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a fitted component, also one pickled when the kernel was the RBF alone (sklearn's KernelRidge)."""
        legacy = state.pop("model_", None)
        self.__dict__.update(state)
        if legacy is not None:
            self.gamma_ = float(legacy.gamma)
            self.train_inputs_ = np.asarray(legacy.X_fit_, dtype=np.float64)
            self.dual_ = np.asarray(legacy.dual_coef_, dtype=np.float64)
            self.sparse_coef_ = np.empty(0)
            self.train_norms_ = _squared_norms(self.train_inputs_)

    def inputs(
        self, fields: ListingFields, on_encoded: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """The RBF kernel's input matrix for normalised listing fields (float32, one row per listing).

        Args:
            fields: Normalised listing fields.
            on_encoded: Called with (texts encoded so far, texts in all) as the sentence encoder works through
                them: each listing has one text per embedded view. For progress lines only.
        """
        total = len(fields.condition) * len(self.encoders)
        done = 0

        def count(n: int) -> None:
            nonlocal done
            done += n
            if on_encoded is not None:
                on_encoded(done, total)

        embedded = [
            encoder.encode(TEXTS[text][0](fields), count if on_encoded is not None else None)
            for text, encoder in self.encoders.items()
        ]
        scale = np.float32(self.params.tabular_scale)
        condition = np.array([[c == v for v in _CONDITIONS] for c in fields.condition], dtype=np.float32)
        shipping = np.array([[s == v for v in _SHIPPING] for s in fields.shipping], dtype=np.float32)
        return np.hstack([*embedded, scale * condition.reshape(-1, 5), scale * shipping.reshape(-1, 2)])

    def fit(self, inputs: np.ndarray, features: sp.csr_matrix, log_price: np.ndarray) -> EmbeddingKernelRidge:
        """Fit on log1p prices (centred, so the kernel models deviations from the mean).

        Args:
            inputs: The training rows' matrix from `inputs`.
            features: The same rows' sparse design matrix (the ensemble's features).
            log_price: log1p(price) per row.

        Returns:
            self.
        """
        target = np.asarray(log_price, dtype=np.float64)
        self.offset_ = float(target.mean())
        self.train_inputs_ = np.asarray(inputs, dtype=np.float64)
        self.train_norms_ = _squared_norms(self.train_inputs_)
        kernel = _rbf(self.train_inputs_, self.train_inputs_, self.gamma_, self.train_norms_)
        weight = self.params.sparse_weight
        design = sp.csr_matrix(features, dtype=np.float64)
        if weight > 0:
            _add_gram(kernel, design, weight)
        kernel[np.diag_indices_from(kernel)] += self.params.alpha
        factor = scipy.linalg.cho_factor(kernel, lower=True, overwrite_a=True, check_finite=False)
        self.dual_ = scipy.linalg.cho_solve(factor, target - self.offset_, check_finite=False)
        self.sparse_coef_ = weight * np.asarray(design.T @ self.dual_) if weight > 0 else np.empty(0)
        return self

    def predict(self, inputs: np.ndarray, features: sp.csr_matrix) -> np.ndarray:
        """log1p(price) for rows given by their `inputs` matrix and sparse design rows."""
        rows = np.asarray(inputs, dtype=np.float64)
        predicted = _rbf(rows, self.train_inputs_, self.gamma_, self.train_norms_) @ self.dual_
        if self.sparse_coef_.size:
            predicted += features @ self.sparse_coef_
        return np.asarray(predicted + self.offset_, dtype=np.float64)

    def predict_conditions(self, inputs: np.ndarray, features: sp.csr_matrix) -> np.ndarray:
        """log1p(price) of every listing in each condition 1..5, with one kernel row per listing.

        The condition enters the RBF only through its one-hot columns, so the kernel of a listing in condition c
        is its kernel with no condition, times exp(-gamma * (s^2 - 2 s t_c)) per training row (t that row's
        scaled one-hot condition, s the tabular scale): the embedding distances are computed once, not once
        per condition.

        Args:
            inputs: The listings' matrix from `inputs` (their own conditions are ignored).
            features: Their sparse design rows in each condition, condition-major: the n rows in condition 1,
                then the n rows in condition 2, and so on.

        Returns:
            float64 array of shape (n, 5): column j is the prediction in condition j + 1.
        """
        rows = np.array(inputs, dtype=np.float64)
        block = self._condition_block(rows.shape[1])
        rows[:, block] = 0.0
        scale = float(np.float32(self.params.tabular_scale))
        shift = scale * scale - 2.0 * scale * self.train_inputs_[:, block]
        # Training rows x conditions: each condition's dual coefficients weighted by its kernel factor.
        weights = self.dual_[:, None] * np.exp(-self.gamma_ * shift)
        predicted = _rbf(rows, self.train_inputs_, self.gamma_, self.train_norms_) @ weights
        if self.sparse_coef_.size:
            predicted += np.asarray(features @ self.sparse_coef_).reshape(len(_CONDITIONS), -1).T
        return np.asarray(predicted + self.offset_, dtype=np.float64)

    @staticmethod
    def _condition_block(n_columns: int) -> slice:
        """The one-hot condition columns of an `inputs` matrix (just before the two shipping columns)."""
        start = n_columns - len(_CONDITIONS) - len(_SHIPPING)
        return slice(start, start + len(_CONDITIONS))

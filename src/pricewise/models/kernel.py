"""Listing fields in, log prices out: kernel ridge regression on sentence embeddings of the listing's texts.

The sparse components learn every word's price effect from the training rows alone. A pretrained sentence
encoder already knows that "iphone 7 plus 128gb" and "apple phone" are close, which matters when the training
set is small. Exact kernel ridge keeps the whole (n x n) kernel in memory, so the component is only fitted up to
`max_train_rows` listings; the ensemble leaves it out above that (with a million listings the sparse components
have the words they need, and encoding every listing would exceed the time budgets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.kernel_ridge import KernelRidge

from pricewise.features.embedding import TEXTS, SentenceEncoder
from pricewise.features.text import ListingFields

_CONDITIONS = ("1", "2", "3", "4", "5")
_SHIPPING = ("0", "1")


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
        texts: Which texts of a listing are embedded (names in `pricewise.features.embedding.TEXTS`); their
            embeddings are concatenated, and gamma is divided by their number so the kernel's scale stays put.
    """

    enabled: bool = False
    max_train_rows: int = 15_000
    alpha: float = 0.3
    gamma: float = 1.0
    tabular_scale: float = 0.3
    texts: tuple[str, ...] = ("brand_category_name", "name_description")

    def __post_init__(self) -> None:
        unknown = [t for t in self.texts if t not in TEXTS]
        if unknown or not self.texts:
            raise ValueError(f"embedding.texts must name some of {sorted(TEXTS)}, got {list(self.texts)}")


class EmbeddingKernelRidge:
    """RBF kernel ridge on [sentence embedding, scaled one-hot condition and shipping]."""

    def __init__(self, params: EmbeddingParams) -> None:
        """Create an unfitted component.

        Args:
            params: Hyperparameters.
        """
        self.params = params
        self.encoders = {text: SentenceEncoder(max_tokens=TEXTS[text][1]) for text in params.texts}
        gamma = params.gamma / len(params.texts)
        self.model_ = KernelRidge(alpha=params.alpha, kernel="rbf", gamma=gamma)
        self.offset_ = 0.0

    def inputs(self, fields: ListingFields) -> np.ndarray:
        """The component's input matrix for normalised listing fields (float32, one row per listing)."""
        embedded = [encoder.encode(TEXTS[text][0](fields)) for text, encoder in self.encoders.items()]
        scale = np.float32(self.params.tabular_scale)
        condition = np.array([[c == v for v in _CONDITIONS] for c in fields.condition], dtype=np.float32)
        shipping = np.array([[s == v for v in _SHIPPING] for s in fields.shipping], dtype=np.float32)
        return np.hstack([*embedded, scale * condition.reshape(-1, 5), scale * shipping.reshape(-1, 2)])

    def fit(self, inputs: np.ndarray, log_price: np.ndarray) -> EmbeddingKernelRidge:
        """Fit on an input matrix from `inputs` and log1p prices (centred, so the kernel models deviations)."""
        target = np.asarray(log_price, dtype=np.float64)
        self.offset_ = float(target.mean())
        self.model_.fit(inputs.astype(np.float64), target - self.offset_)
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """log1p(price) for rows of an input matrix from `inputs`."""
        return np.asarray(self.model_.predict(inputs.astype(np.float64)), dtype=np.float64) + self.offset_

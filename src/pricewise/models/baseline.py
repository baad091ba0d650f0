"""Raw listing frame + log prices in, median log price per category x brand x condition (with back-off) out."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from pricewise.models.features.text import Listings, normalize_listings

# Most specific grouping first; each prediction uses the first level whose group is large enough.
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("category", "brand", "condition"),
    ("category", "brand"),
    ("category",),
    ("category_top",),
)


class RulesBaseline:
    """Median log price of the most specific sufficiently large group, down to the global median."""

    def __init__(self, min_group_size: int = 5) -> None:
        """Create an unfitted baseline.

        Args:
            min_group_size: Fewest training listings a group needs before its median is trusted.

        Raises:
            ValueError: if ``min_group_size`` is below 1.
        """
        if min_group_size < 1:
            raise ValueError("min_group_size must be at least 1")
        self.min_group_size = min_group_size
        self.tables_: list[dict[tuple[str, ...], float]] = []
        self.global_median_: float = 0.0

    def fit(self, frame: pd.DataFrame, log_price: np.ndarray) -> Self:
        """Compute group medians.

        Args:
            frame: Raw listing fields.
            log_price: log1p(price) per listing.

        Returns:
            self.

        Raises:
            ValueError: if lengths differ or there is no row.
        """
        target = np.asarray(log_price, dtype=np.float64)
        if len(frame) != target.size or target.size == 0:
            raise ValueError("frame and log_price must be non-empty and of equal length")
        fields = normalize_listings(frame).reset_index(drop=True)
        fields["target"] = target
        self.global_median_ = float(np.median(target))
        self.tables_ = []
        for keys in _LEVELS:
            stats = fields.groupby(list(keys), sort=True)["target"].agg(["median", "size"])
            kept = stats[stats["size"] >= self.min_group_size]["median"]
            self.tables_.append({_as_key(index): float(value) for index, value in kept.items()})
        return self

    def predict(self, frame: Listings) -> np.ndarray:
        """Predict log prices.

        Args:
            frame: Raw listing fields (a frame, or columns by name).

        Returns:
            float64 array of log1p(price), one per row.
        """
        fields = normalize_listings(frame)
        prediction = np.full(len(fields), np.nan)
        for keys, table in zip(_LEVELS, self.tables_, strict=True):
            todo = np.isnan(prediction)
            if not todo.any():
                break
            rows = fields.loc[todo, list(keys)].itertuples(index=False, name=None)
            prediction[todo] = [table.get(tuple(row), np.nan) for row in rows]
        return np.where(np.isnan(prediction), self.global_median_, prediction)


def _as_key(index: object) -> tuple[str, ...]:
    """groupby labels are scalars for one key and tuples for several; make them all tuples."""
    if isinstance(index, tuple):
        return tuple(str(part) for part in index)
    return (str(index),)

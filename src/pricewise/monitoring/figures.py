"""Suggested prices and ranges with the prices items sold for in; the accuracy figures (RMSLE, coverage) out.

`pricewise monitor` and the server's monitoring page both judge suggestions with `accuracy`, so a run's figures
and the page's agree on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pricewise.models import metrics


@dataclass(frozen=True)
class Accuracy:
    """How well suggestions priced the items that sold."""

    sold: int  # suggestions with a sold price and a suggested price
    rmsle: float | None  # None when nothing sold
    coverage: float | None  # share of sold prices inside the suggested [low, high]


def accuracy(rows: pd.DataFrame) -> Accuracy:
    """RMSLE and range coverage of suggestions against sold prices.

    Args:
        rows: Columns price, low, high and sold_price; rows without a sold price or a suggested price do not
            count.

    Returns:
        The figures; rmsle and coverage are None when no row counts.
    """
    if rows.empty or "price" not in rows:
        return Accuracy(0, None, None)
    counted = rows[rows["sold_price"].notna() & rows["price"].notna()]
    if counted.empty:
        return Accuracy(0, None, None)
    sold = counted["sold_price"].to_numpy(float)
    return Accuracy(
        sold=len(counted),
        rmsle=metrics.rmsle(sold, counted["price"].to_numpy(float)),
        coverage=metrics.coverage(sold, counted["low"].to_numpy(float), counted["high"].to_numpy(float)),
    )


def accuracy_by(rows: pd.DataFrame, key: pd.Series) -> list[tuple[object, Accuracy]]:
    """`accuracy` of each group of rows sharing a key (a time bucket, a model version), ordered by key.

    Args:
        rows: As for `accuracy`.
        key: One key per row, aligned with `rows`; a missing key is a group of its own, last.
    """
    groups = rows.groupby(key.rename("key"), sort=True, dropna=False)
    return [(None if _missing(k) else k, accuracy(part)) for k, part in groups]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))

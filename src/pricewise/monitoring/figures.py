"""Suggested prices and ranges with the prices items sold for (or the prices sellers chose) in; the accuracy
figures (RMSLE, coverage) and the sellers' response (acceptance, chosen/suggested ratio) out.

`pricewise monitor` and the server's monitoring page both judge suggestions with `accuracy`, so a run's figures
and the page's agree on the same rows. `seller_response` is the immediate signal: sellers choose a price the
moment they list, long before anything sells.
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


# A seller who rounds the suggestion (23.47 -> 23) still accepted it.
ACCEPT_RELATIVE = 0.01
ACCEPT_ABSOLUTE = 0.50


@dataclass(frozen=True)
class SellerResponse:
    """What sellers did with the suggestions they answered on the page."""

    answered: int  # suggestions with a chosen price and a suggested price
    acceptance_rate: float | None  # share that kept the suggested price (within rounding)
    within_range: float | None  # share whose chosen price lies inside the suggested [low, high]
    median_ratio: float | None  # median of chosen / suggested price


def seller_response(rows: pd.DataFrame) -> SellerResponse:
    """How sellers answered suggestions: kept them, stayed inside the range, or priced higher or lower.

    A seller accepted a suggestion when the chosen price is within 1% or 50 cents of it, whichever is wider.

    Args:
        rows: Columns price, low, high and chosen_price; rows without both prices do not count.

    Returns:
        The figures; the rates and the ratio are None when no row counts.
    """
    if rows.empty or "chosen_price" not in rows:
        return SellerResponse(0, None, None, None)
    counted = rows[rows["chosen_price"].notna() & rows["price"].notna() & (rows["price"] > 0)]
    if counted.empty:
        return SellerResponse(0, None, None, None)
    chosen = counted["chosen_price"].to_numpy(float)
    price = counted["price"].to_numpy(float)
    tolerance = np.maximum(ACCEPT_RELATIVE * price, ACCEPT_ABSOLUTE)
    inside = (chosen >= counted["low"].to_numpy(float)) & (chosen <= counted["high"].to_numpy(float))
    return SellerResponse(
        answered=len(counted),
        acceptance_rate=float(np.mean(np.abs(chosen - price) <= tolerance)),
        within_range=float(np.mean(inside)),
        median_ratio=float(np.median(chosen / price)),
    )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))

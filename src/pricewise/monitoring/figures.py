"""Suggested prices and ranges with the prices items sold for (or the prices sellers chose), and HTTP status
counts, in; the accuracy figures (RMSLE, coverage, offline against live RMSLE per model version), the sellers'
response (acceptance, chosen/suggested ratio) and the error rates out.

`pricewise monitor` and the server's monitoring page both judge suggestions with `accuracy`, so a run's figures
and the page's agree on the same rows; accuracy is judged from `monitor.min_feedback_rows` sold prices on, and
`shortfall` says what a figure below its minimum count still lacks. `seller_response` is the immediate
signal: sellers choose a price the moment they list, long before anything sells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


# The MLflow run metric a version was evaluated with when it was trained (its test split's RMSLE): the offline
# RMSLE that retraining compares live accuracy with.
OFFLINE_RMSLE_METRIC = "test_rmsle"


def shortfall(counted: int, needed: int, what: str = "sold prices") -> str | None:
    """Why a figure is not judged yet: "needs N <what>, has M" while `counted` is below `needed`, else None.

    Args:
        counted: Rows the figure would rest on.
        needed: The minimum (for accuracy, `monitor.min_feedback_rows`).
        what: What is counted, plural.
    """
    return f"needs {needed} {what}, has {counted}" if counted < needed else None


ModelKey = tuple[str | None, str | None]  # (registered model name, version)


@dataclass(frozen=True)
class OfflineVsLive:
    """One model version's RMSLE at evaluation (offline) beside its RMSLE on the sold prices of a window (live)."""

    model_name: str | None
    model_version: str | None
    sold: int  # the window's suggestions of this version with a sold price
    offline_rmsle: float | None  # None when the registry holds no evaluation of it
    live_rmsle: float | None  # None below the minimum count (see `shortfall`)
    coverage: float | None  # live range coverage, None below the minimum count
    excess: float | None  # live - offline, when both are known
    note: str | None  # why live is not shown, when it is not


def accuracy_by_model(rows: pd.DataFrame) -> list[tuple[ModelKey, Accuracy]]:
    """`accuracy` per (model_name, model_version), ordered by them.

    Args:
        rows: As for `accuracy`, with columns model_name and model_version.
    """
    groups = rows.groupby(["model_name", "model_version"], sort=True, dropna=False)
    return [
        ((None if _missing(name) else str(name), None if _missing(version) else str(version)), accuracy(part))
        for (name, version), part in groups
    ]


def offline_vs_live(
    live: Sequence[tuple[ModelKey, Accuracy]], offline: Mapping[ModelKey, float | None], min_sold: int
) -> list[OfflineVsLive]:
    """Each model version's offline RMSLE beside its live one; live figures only from `min_sold` sold prices on.

    Args:
        live: `accuracy_by_model` of a window's sold suggestions.
        offline: The evaluated RMSLE of each (model name, version); missing or None when unknown.
        min_sold: The sold prices a live figure needs (`monitor.min_feedback_rows`, as `pricewise monitor` and
            retraining judge accuracy).

    Returns:
        One row per model version in `live`, in its order.
    """
    rows = []
    for (name, version), part in live:
        note = shortfall(part.sold, min_sold)
        judged = note is None and part.rmsle is not None
        reference = offline.get((name, version))
        live_rmsle = part.rmsle if judged else None
        rows.append(
            OfflineVsLive(
                model_name=name,
                model_version=version,
                sold=part.sold,
                offline_rmsle=reference,
                live_rmsle=live_rmsle,
                coverage=part.coverage if judged else None,
                excess=None if live_rmsle is None or reference is None else live_rmsle - reference,
                note=note,
            )
        )
    return rows


CLIENT_CLOSED = 499  # the client left before any response: neither its error nor the server's


@dataclass(frozen=True)
class ErrorRates:
    """Shares of answered requests by status class."""

    requests: int  # requests counted, those whose client left included
    client_errors: float | None  # share with a 4xx status (499 excluded)
    server_errors: float | None  # share with a 5xx status
    client_closed: float | None  # share whose client left before any response (logged as 499)


def error_rates(statuses: Mapping[int, int]) -> ErrorRates:
    """The 4xx, 5xx and client-closed shares of requests counted by status code.

    Args:
        statuses: Requests per HTTP status code.

    Returns:
        The shares; None when no request was counted.
    """
    total = sum(statuses.values())
    if total == 0:
        return ErrorRates(0, None, None, None)
    closed = statuses.get(CLIENT_CLOSED, 0)
    client = sum(n for code, n in statuses.items() if 400 <= code < 500 and code != CLIENT_CLOSED)
    server = sum(n for code, n in statuses.items() if code >= 500)
    return ErrorRates(total, client / total, server / total, closed / total)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))

"""A price-suggesting function and sample listings in; pass/fail behaviour checks a model must meet out.

Checks: prices positive and finite with low <= price <= high; letter case and whitespace in text do not move
the price; a worse condition (higher item_condition_id) does not raise the price on average, nor any single
listing's price.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from pricewise.columns import TEXT_COLUMNS

Suggest = Callable[[pd.DataFrame], pd.DataFrame]


class CheckThresholds(Protocol):
    """The thresholds of the checks (the behaviour section of the config has them); a Protocol, so this module
    travels inside the logged model without the config module."""

    @property
    def sample_size(self) -> int: ...

    @property
    def invariance_tolerance(self) -> float: ...

    @property
    def condition_tolerance(self) -> float: ...


@dataclass(frozen=True)
class BehaviourCheck:
    """One behaviour check and the figure it was judged on."""

    name: str
    passed: bool
    value: float
    detail: str


def _log(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(np.log1p(frame["price"].to_numpy(dtype=float)), dtype=float)


def perturb_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The same listings written carelessly: other letter case, doubled and padding whitespace."""
    out = frame.copy()
    for i, column in enumerate(TEXT_COLUMNS):
        values = out[column].fillna("").astype(str)
        values = values.str.upper() if i % 2 == 0 else values.str.lower()
        out[column] = "  " + values.str.replace(" ", "   ", regex=False) + " \t"
    return out


def positive_and_finite(suggest: Suggest, sample: pd.DataFrame) -> BehaviourCheck:
    """Every price is finite and > 0, and every range holds its price."""
    scored = suggest(sample)
    price, low, high = (scored[c].to_numpy(dtype=float) for c in ("price", "low", "high"))
    ok = (
        np.isfinite(price)
        & (price > 0)
        & np.isfinite(low)
        & np.isfinite(high)
        & (low <= price)
        & (price <= high)
    )
    bad = int((~ok).sum())
    return BehaviourCheck(
        "positive_and_finite", bad == 0, float(bad), f"{bad} of {len(sample)} suggestions invalid"
    )


def text_invariance(suggest: Suggest, sample: pd.DataFrame, tolerance: float) -> BehaviourCheck:
    """Letter case and whitespace changes move the log price by at most `tolerance`."""
    shift = float(np.max(np.abs(_log(suggest(perturb_text(sample))) - _log(suggest(sample)))))
    return BehaviourCheck(
        "text_invariance",
        shift <= tolerance,
        shift,
        f"largest |change| of log price {shift:.5f} (max {tolerance})",
    )


def condition_prices(suggest: Suggest, sample: pd.DataFrame) -> np.ndarray:
    """Every listing's price in each condition 1 (new) .. 5 (poor): shape (listings, 5)."""
    return np.column_stack(
        [suggest(sample.assign(item_condition_id=c))["price"].to_numpy(dtype=float) for c in range(1, 6)]
    )


def condition_order(
    suggest: Suggest, sample: pd.DataFrame, tolerance: float, prices: np.ndarray | None = None
) -> BehaviourCheck:
    """A worse condition does not raise the price on average.

    Every listing is priced at each condition 1 (new) .. 5 (poor); the least-squares slope of the mean log price
    over the condition must not exceed `tolerance`. The slope, not each step, is judged because condition 5 is
    rare (about 0.2% of listings) and a single step between thin groups is mostly noise; the per-step means are
    reported in the detail.

    Args:
        suggest: The price-suggesting function.
        sample: Listings.
        tolerance: Largest slope that passes.
        prices: `condition_prices(suggest, sample)` when already computed.
    """
    if prices is None:
        prices = condition_prices(suggest, sample)
    means = np.log1p(prices).mean(axis=0)
    slope = float(np.polyfit(np.arange(1, 6), means, 1)[0])
    return BehaviourCheck(
        "condition_order",
        slope <= tolerance,
        slope,
        f"slope {slope:.4f} of mean log price over condition 1..5 (max {tolerance}): "
        + ", ".join(f"{m:.3f}" for m in means),
    )


def listing_condition_order(
    suggest: Suggest, sample: pd.DataFrame, prices: np.ndarray | None = None
) -> BehaviourCheck:
    """No listing is priced higher in a worse condition than in a better one (condition 1 = new ... 5 = poor).

    Stricter than `condition_order`: every listing's own prices over the five conditions must never rise, not
    only their average; what a seller sees when trying the conditions of one listing.

    Args:
        suggest: The price-suggesting function.
        sample: Listings.
        prices: `condition_prices(suggest, sample)` when already computed.
    """
    if prices is None:
        prices = condition_prices(suggest, sample)
    rises = np.diff(prices, axis=1)
    bad = int(np.any(rises > 0, axis=1).sum())
    largest = float(max(rises.max(initial=0.0), 0.0))
    return BehaviourCheck(
        "listing_condition_order",
        bad == 0,
        float(bad),
        f"{bad} of {len(sample)} listings priced higher in a worse condition (largest rise ${largest:.2f})",
    )


def run_checks(suggest: Suggest, sample: pd.DataFrame, config: CheckThresholds) -> list[BehaviourCheck]:
    """All behaviour checks on a sample of listings."""
    sample = sample.head(config.sample_size).reset_index(drop=True)
    prices = condition_prices(suggest, sample)
    return [
        positive_and_finite(suggest, sample),
        text_invariance(suggest, sample, config.invariance_tolerance),
        condition_order(suggest, sample, config.condition_tolerance, prices),
        listing_condition_order(suggest, sample, prices),
    ]

"""Held-out predicted/true log prices in, split-conformal low/high price ranges for new predictions out."""

from __future__ import annotations

from typing import Self

import numpy as np


class ConformalPriceRanges:
    """Split-conformal intervals on log price, optionally with a separate quantile per predicted-price band.

    Absolute residuals of log price on a held-out set give a symmetric interval in log space, which is a
    multiplicative (relative) range in price. Bands (Mondrian conformal) let cheap and expensive items get
    different relative widths while keeping the coverage guarantee inside each band.
    """

    def __init__(self, coverage: float = 0.8, n_bands: int = 1) -> None:
        """Create an uncalibrated range model.

        Args:
            coverage: Target probability that the true price lies in [low, high].
            n_bands: Number of predicted-price bands (equal-count on the calibration set).

        Raises:
            ValueError: for a coverage outside (0, 1) or fewer than one band.
        """
        if not 0.0 < coverage < 1.0:
            raise ValueError("coverage must be in (0, 1)")
        if n_bands < 1:
            raise ValueError("n_bands must be at least 1")
        self.coverage = coverage
        self.n_bands = n_bands
        self.band_edges_: np.ndarray = np.empty(0)
        self.half_widths_: np.ndarray = np.empty(0)

    def calibrate(self, predicted_log_price: np.ndarray, true_log_price: np.ndarray) -> Self:
        """Learn the interval half-width(s) from held-out predictions.

        Args:
            predicted_log_price: Model predictions (log1p price) on rows not used to fit the model.
            true_log_price: The observed log1p(price) of the same rows.

        Returns:
            self.

        Raises:
            ValueError: if the arrays differ in length or a band would hold fewer than one row.
        """
        predicted = np.asarray(predicted_log_price, dtype=np.float64)
        residual = np.abs(np.asarray(true_log_price, dtype=np.float64) - predicted)
        if predicted.size != residual.size or predicted.size < self.n_bands:
            raise ValueError("need equal-length arrays with at least one row per band")
        inner = np.quantile(predicted, np.linspace(0.0, 1.0, self.n_bands + 1)[1:-1])
        self.band_edges_ = inner
        bands = np.searchsorted(inner, predicted, side="right")
        self.half_widths_ = np.array(
            [_conformal_quantile(residual[bands == b], self.coverage) for b in range(self.n_bands)]
        )
        return self

    def interval_log(self, predicted_log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Low/high log1p prices around predictions.

        Args:
            predicted_log_price: Predictions (log1p price).

        Returns:
            (low, high) float64 arrays of log1p(price).

        Raises:
            RuntimeError: if called before calibrate.
        """
        if self.half_widths_.size == 0:
            raise RuntimeError("ConformalPriceRanges is not calibrated")
        predicted = np.asarray(predicted_log_price, dtype=np.float64)
        half = self.half_widths_[np.searchsorted(self.band_edges_, predicted, side="right")]
        return predicted - half, predicted + half

    def interval(self, predicted_log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Low/high prices (same currency as the training prices) around log-price predictions.

        Args:
            predicted_log_price: Predictions (log1p price).

        Returns:
            (low, high) float64 arrays of prices, low >= 0.

        Raises:
            RuntimeError: if called before calibrate.
        """
        low, high = self.interval_log(predicted_log_price)
        return np.maximum(np.expm1(low), 0.0), np.expm1(high)


def _conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """Finite-sample conformal quantile: the ceil((n + 1) * coverage)-th smallest score."""
    if scores.size == 0:
        return float("inf")
    rank = int(np.ceil((scores.size + 1) * coverage))
    if rank > scores.size:
        return float("inf")
    return float(np.sort(scores)[rank - 1])


def coverage_and_width(low: np.ndarray, high: np.ndarray, price: np.ndarray) -> tuple[float, float]:
    """Empirical coverage and mean relative width ((high - low) / price) of price ranges.

    Args:
        low: Lower prices.
        high: Upper prices.
        price: Observed prices (> 0).

    Returns:
        (coverage, mean relative width).
    """
    price = np.asarray(price, dtype=np.float64)
    inside = (price >= low) & (price <= high)
    return float(inside.mean()), float(np.mean((high - low) / price))

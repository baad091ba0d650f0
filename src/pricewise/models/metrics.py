"""Predicted and true prices in, the figures pricewise is judged by (RMSLE, MAE, range coverage, width) out."""

from __future__ import annotations

import numpy as np


def rmsle(price: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error of log1p prices, the competition metric."""
    return float(np.sqrt(np.mean((np.log1p(predicted) - np.log1p(price)) ** 2)))


def mae(price: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error in dollars."""
    return float(np.mean(np.abs(predicted - price)))


def coverage(price: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of true prices inside [low, high]."""
    return float(np.mean((price >= low) & (price <= high)))


def relative_width(price: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Mean of (high - low) / true price: how wide ranges are relative to what items sell for."""
    return float(np.mean((high - low) / np.maximum(price, 1.0)))


def summary(price: np.ndarray, predicted: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, float]:
    """All four figures, keyed by name."""
    return {
        "rmsle": rmsle(price, predicted),
        "mae": mae(price, predicted),
        "coverage": coverage(price, low, high),
        "relative_width": relative_width(price, low, high),
    }

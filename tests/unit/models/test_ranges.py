"""Tests of split-conformal price ranges."""

import numpy as np
import pytest

from pricewise.models import ConformalPriceRanges, coverage_and_width


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and truths whose noise grows with the predicted log price (heteroscedastic)."""
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(1.0, 6.0, n)
    truth = predicted + rng.normal(0.0, 0.1 + 0.1 * predicted, n)
    return predicted, truth


@pytest.mark.parametrize(("coverage", "bands"), [(0.8, 1), (0.8, 4), (0.9, 1), (0.5, 3)])
def test_reaches_stated_coverage_on_fresh_data(coverage: float, bands: int) -> None:
    calibration = synthetic(4000, seed=1)
    predicted, truth = synthetic(20000, seed=2)
    ranges = ConformalPriceRanges(coverage, n_bands=bands).calibrate(*calibration)
    low, high = ranges.interval(predicted)
    measured, width = coverage_and_width(low, high, np.expm1(truth))
    assert abs(measured - coverage) < 0.02
    assert width > 0


def test_bands_narrow_cheap_items_under_heteroscedastic_noise() -> None:
    ranges = ConformalPriceRanges(0.8, n_bands=4).calibrate(*synthetic(4000, seed=3))
    assert np.all(np.diff(ranges.half_widths_) > 0)
    low, high = ranges.interval_log(np.array([1.5, 5.5]))
    assert high[0] - low[0] < high[1] - low[1]


def test_prices_are_ordered_and_non_negative() -> None:
    ranges = ConformalPriceRanges(0.8).calibrate(*synthetic(500, seed=4))
    low, high = ranges.interval(np.array([0.0, 0.5, 3.0]))
    assert np.all(low >= 0)
    assert np.all(high > low)


def test_rejects_bad_arguments_and_uncalibrated_use() -> None:
    with pytest.raises(ValueError, match="coverage"):
        ConformalPriceRanges(1.0)
    with pytest.raises(RuntimeError, match="not calibrated"):
        ConformalPriceRanges().interval(np.array([1.0]))

"""Direct loss estimation: the loss model learns where the champion errs, estimates a window's RMSLE without sold
prices, travels as a run artifact, and reaches the monitoring result."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricewise import monitor
from pricewise.errors import PricewiseError
from pricewise.monitoring import loss_estimate
from pricewise.monitoring.windows import ComparedWindow

TOPS = ("Women", "Beauty", "Electronics")


def listings(n: int, rng: np.random.Generator) -> pd.DataFrame:
    tops = rng.choice(TOPS, size=n)
    return pd.DataFrame(
        {
            "name": [f"item {i}" for i in range(n)],
            "brand_name": rng.choice(["Nike", ""], size=n),
            "category_name": [f"{t}/Sub/Leaf" for t in tops],
            "item_condition_id": rng.integers(1, 6, size=n),
            "shipping": rng.integers(0, 2, size=n),
            "item_description": rng.choice(["Great", "Like new, worn twice"], size=n),
        }
    )


def suggested_and_sold(frame: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Suggestions at 20; Electronics sell with a log error of sd 1.0, the rest with sd 0.2."""
    price = np.full(len(frame), 20.0)
    sd = np.where(frame["category_name"].str.startswith("Electronics"), 1.0, 0.2)
    sold = np.expm1(np.log1p(price) + rng.normal(0.0, sd))
    return price, sold


def fitted(seed: int = 0, n: int = 3000) -> loss_estimate.LossModel:
    rng = np.random.default_rng(seed)
    frame = listings(n, rng)
    price, sold = suggested_and_sold(frame, rng)
    return loss_estimate.fit(frame, price, price * 0.7, price * 1.4, sold)


def realized(price: np.ndarray, sold: np.ndarray) -> float:
    return math.sqrt(float(np.mean((np.log1p(price) - np.log1p(sold)) ** 2)))


@pytest.mark.parametrize("top", ["Electronics", "Women"])
def test_the_estimate_follows_a_window_shifted_to_where_the_champion_errs_more_or_less(top: str) -> None:
    model = fitted()
    rng = np.random.default_rng(1)
    window = listings(3000, rng)
    window["category_name"] = f"{top}/Sub/Leaf"
    price, sold = suggested_and_sold(window, rng)

    estimate = model.estimate(window, price, price * 0.7, price * 1.4)

    assert estimate is not None
    truth = realized(price, sold)
    assert abs(estimate.rmsle - truth) < 0.05
    assert abs(estimate.rmsle - truth) < abs(model.reference_rmsle - truth) / 3  # far better than offline
    assert estimate.low < estimate.rmsle < estimate.high
    assert estimate.rows == 3000


def test_the_interval_narrows_with_more_rows() -> None:
    model = fitted()
    rng = np.random.default_rng(2)
    small, large = listings(100, rng), listings(2500, rng)
    widths = []
    for frame in (small, large):
        price = np.full(len(frame), 20.0)
        estimate = model.estimate(frame, price, price * 0.7, price * 1.4)
        assert estimate is not None
        widths.append(estimate.high - estimate.low)
    assert widths[1] < widths[0] / 3


def test_the_model_reads_back_from_json_with_the_same_estimates() -> None:
    model = fitted()
    frame = listings(200, np.random.default_rng(3))
    price = np.full(len(frame), 20.0)

    again = loss_estimate.LossModel.from_json(model.to_json())

    assert again.estimate(frame, price, price, price) == model.estimate(frame, price, price, price)
    assert again.categories == model.categories == tuple(sorted(TOPS))


def test_log_rows_with_description_lengths_give_the_estimate_of_the_full_text() -> None:
    model = fitted()
    frame = listings(300, np.random.default_rng(4))
    logged = frame.drop(columns="item_description").assign(
        description_chars=frame["item_description"].str.len()
    )
    price = np.full(len(frame), 20.0)

    assert model.estimate(logged, price, price, price) == model.estimate(frame, price, price, price)


def test_an_unseen_top_category_and_an_empty_window_are_handled() -> None:
    model = fitted()
    frame = listings(50, np.random.default_rng(5)).assign(category_name="Garden/Tools/Rakes")
    price = np.full(len(frame), 20.0)

    estimate = model.estimate(frame, price, price, price)

    assert estimate is not None
    assert math.isfinite(estimate.rmsle)
    assert model.estimate(frame.head(0), price[:0], price[:0], price[:0]) is None


def test_too_few_or_mismatched_rows_are_refused() -> None:
    frame = listings(40, np.random.default_rng(6))
    price = np.full(len(frame), 20.0)
    with pytest.raises(ValueError, match="at least 50 held-out rows"):
        loss_estimate.fit(frame, price, price, price, price)
    frame = listings(60, np.random.default_rng(6))
    with pytest.raises(ValueError, match="same length"):
        loss_estimate.fit(frame, np.full(60, 20.0), np.full(60, 20.0), np.full(60, 20.0), np.full(59, 20.0))


def test_text_that_is_not_a_loss_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not a loss model"):
        loss_estimate.LossModel.from_json('{"booster": 1}')


def test_monitor_reads_the_loss_model_logged_with_a_run_and_estimates_the_window(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = fitted()
    experiment = mlflow.create_experiment("loss", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as with_model:
        mlflow.log_text(model.to_json(), loss_estimate.ARTIFACT)
    with mlflow.start_run(experiment_id=experiment) as without_model:
        mlflow.log_text("{}", "other.json")
    with mlflow.start_run(experiment_id=experiment) as broken:
        mlflow.log_text("not json", loss_estimate.ARTIFACT)
    window = listings(500, np.random.default_rng(7)).assign(price=20.0, low=14.0, high=28.0)
    window.loc[:9, "price"] = np.nan  # a suggestion the log lacks a price for is left out

    loaded = monitor.load_loss_model(with_model.info.run_id)
    estimate = monitor.estimate_rmsle(loaded, window)

    assert estimate is not None
    assert estimate.rows == 490
    assert estimate == model.estimate(
        window.iloc[10:], window["price"][10:], window["low"][10:], window["high"][10:]
    )
    assert monitor.load_loss_model(without_model.info.run_id) is None
    assert monitor.estimate_rmsle(None, window) is None
    with pytest.raises(PricewiseError, match="unreadable"):
        monitor.load_loss_model(broken.info.run_id)


def test_the_monitoring_summary_carries_the_estimate_beside_the_realized_rmsle() -> None:
    result = monitor.MonitorResult(
        "r",
        datetime.now(UTC),
        ComparedWindow.last_hours(1),
        "ok",
        "fine",
        rmsle=0.5,
        estimated_rmsle=0.52,
        estimated_rmsle_low=0.49,
        estimated_rmsle_high=0.55,
    )

    summary = result.summary()

    assert (summary["rmsle"], summary["estimated_rmsle"]) == (0.5, 0.52)
    assert (summary["estimated_rmsle_low"], summary["estimated_rmsle_high"]) == (0.49, 0.55)
    assert dataclasses.is_dataclass(result)

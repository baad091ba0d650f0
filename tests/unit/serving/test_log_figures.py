"""A real SQLite prediction log in; the page's time buckets and its accuracy section, which must agree with the
figures `pricewise monitor` computes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricewise.monitoring import figures
from pricewise.serving import log_figures
from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url
from tests.support.logged import log_suggestions


def test_buckets_are_the_narrowest_width_that_fits() -> None:
    assert log_figures.bucket_seconds(0, 59) == 60
    assert log_figures.bucket_seconds(0, 119 * 60) == 60
    assert log_figures.bucket_seconds(0, 120 * 60) == 300
    assert log_figures.bucket_seconds(0, 10**9) == 86_400, "a day at most"


def test_the_accuracy_section_is_the_monitor_figure_per_bucket_and_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    log_suggestions(settings, range(10), sold={i: [10.0 + i] for i in range(6)})
    log_suggestions(settings, range(10, 14), sold={10: [30.0], 11: [12.0]}, model_version="2")
    log = PredictionLog(default_url(settings))
    try:
        section = log_figures.accuracy(log)
        expected = figures.accuracy(log.sold_suggestions(with_inputs=False))
    finally:
        log.close()
    assert section.state == "ok"
    assert (section.sold, section.rmsle, section.coverage) == (8, expected.rmsle, expected.coverage)
    assert section.stated_coverage == pytest.approx(0.8)
    assert sum(b.sold for b in section.buckets) == 8
    assert [(m.model_version, m.sold) for m in section.by_model] == [("1", 6), ("2", 2)]
    assert section.bucket_seconds == 60


def test_without_sold_prices_accuracy_is_empty_and_says_how_they_arrive(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    log_suggestions(settings, range(3))
    log = PredictionLog(default_url(settings))
    try:
        section = log_figures.accuracy(log)
        traffic = log_figures.traffic(log)
    finally:
        log.close()
    assert section.state == "empty"
    assert "POST /v1/feedback" in str(section.message)
    assert (traffic.state, traffic.total_requests) == ("ok", 3)

"""A real SQLite prediction log in; the page's time buckets and its accuracy section, which must agree with the
figures `pricewise monitor` computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
    assert "POST /v1/outcomes" in str(section.message), "sold prices come only from the trusted sources"
    assert "pricewise outcomes import" in str(section.message)
    assert (traffic.state, traffic.total_requests) == ("ok", 3)


def test_the_sellers_section_counts_choices_per_model_against_the_suggestions_logged(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    log_suggestions(settings, range(6), price=20.0)
    log_suggestions(settings, range(6, 10), price=10.0, model_version="2")
    log = PredictionLog(default_url(settings))
    try:
        assert log.record_feedback("req-0", 20.0)  # accepted
        assert log.record_feedback("req-1", 30.0)  # priced higher, at the top of [13.3, 30]
        assert log.record_feedback("req-1", 20.2)  # the seller's latest choice is the one that counts
        assert log.record_feedback("req-2", 14.0)
        assert log.record_feedback("req-6", 12.0)
        section = log_figures.sellers(log)
        choices = log.seller_choices()
    finally:
        log.close()
    assert section.state == "ok"
    assert (section.suggestions, section.answered) == (10, 4)
    assert section.response_rate == pytest.approx(0.4)
    assert section.acceptance_rate == pytest.approx(0.5), "req-0 and req-1 (20.2) kept the suggestion"
    assert section.median_ratio == pytest.approx(np.median([1.0, 1.01, 0.7, 1.2]))
    assert list(choices["chosen_price"]) == [20.0, 20.2, 14.0, 12.0]
    assert [(m.model_version, m.answered, m.acceptance_rate) for m in section.by_model] == [
        ("1", 3, pytest.approx(2 / 3)),
        ("2", 1, 0.0),
    ]


def test_without_choices_the_sellers_section_is_empty_and_counts_the_suggestions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    log = PredictionLog(default_url(settings))
    try:
        assert log_figures.sellers(log).state == "empty"
    finally:
        log.close()
    log_suggestions(settings, range(3))
    log = PredictionLog(default_url(settings))
    try:
        section = log_figures.sellers(log)
    finally:
        log.close()
    assert (section.state, section.suggestions, section.answered) == ("empty", 3, 0)
    assert "3 suggestions" in str(section.message)

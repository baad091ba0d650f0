"""Judged rules, request counts, fallback counts, log buckets and an unreachable registry in; the monitoring
page's sections (words, rates, gaps, offline against live RMSLE) out, without a server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from pricewise.errors import PricewiseError
from pricewise.monitoring import figures
from pricewise.serving import log_figures, monitoring_view
from pricewise.serving.log_figures import FallbackSection, LogSections, TrafficSeries
from pricewise.serving.schemas import (
    AccuracySection,
    ChampionSection,
    SellerResponseSection,
    TrafficBucket,
)


def test_a_rule_in_words_names_its_value_threshold_and_verdict_without_paths(tmp_path: Path) -> None:
    drift = monitoring_view.rule_words(
        {"rule": "drift", "value": 0.6, "threshold": 0.5, "triggered": True, "detail": "60% drifted"}
    )
    assert (drift.rule, drift.triggered) == ("drift", True)
    assert drift.words == "input drift triggered: 60% drifted (retrains from 50%)"
    accuracy = monitoring_view.rule_words(
        {"rule": "accuracy", "value": 0.08, "threshold": 0.05, "triggered": True, "detail": "RMSLE 0.6"}
    )
    assert accuracy.words == "accuracy triggered: RMSLE 0.6 (live - offline +0.0800; retrains above +0.0500)"
    leaky = monitoring_view.rule_words(
        {"rule": "new_rule", "triggered": False, "detail": f"read {tmp_path}/data/x.db"}, (tmp_path,)
    )
    assert leaky.words.startswith("new_rule not triggered: read ")
    assert str(tmp_path) not in leaky.words


def fallbacks(suggestions: int, fallback: int) -> FallbackSection:
    return FallbackSection(
        state="ok",
        window_start="2026-12-01T00:00:00+00:00",
        window_end="2026-12-01T01:00:00+00:00",
        suggestions=suggestions,
        fallback=fallback,
    )


def test_rates_are_shown_each_from_its_minimum_count() -> None:
    both = monitoring_view.rates_section({200: 8, 422: 1, 503: 1}, fallbacks(10, 3), min_rows=10)
    assert (both.state, both.message) == ("ok", None)
    assert (both.client_error_rate, both.server_error_rate, both.client_closed_rate) == (0.1, 0.1, 0.0)
    assert both.fallback_rate == pytest.approx(0.3)
    few_requests = monitoring_view.rates_section({200: 3}, fallbacks(10, 0), min_rows=10)
    assert few_requests.state == "ok"
    assert few_requests.message == "error rates: needs 10 suggestion requests, has 3"
    assert (few_requests.requests, few_requests.client_error_rate) == (3, None)
    assert few_requests.fallback_rate == 0.0
    neither = monitoring_view.rates_section({}, fallbacks(2, 1), min_rows=10)
    assert neither.state == "empty"
    assert neither.message == (
        "error rates: needs 10 suggestion requests, has 0; fallback rate: needs 10 suggestions, has 2"
    )
    assert neither.fallback_rate is None
    failed = FallbackSection(state="error", message="could not compute fallbacks: OperationalError")
    broken = monitoring_view.rates_section({}, failed, min_rows=10)
    assert broken.state == "error"
    assert "fallback rate: could not compute fallbacks" in str(broken.message)


def bucket(start: str, requests: int) -> TrafficBucket:
    return TrafficBucket(
        start=start, requests=requests, per_minute=requests, p50_ms=2.0, p95_ms=3.0, p99_ms=4.0
    )


def test_the_series_fills_buckets_without_requests_with_null_latencies() -> None:
    points = log_figures.series(
        [bucket("2026-12-01T10:00:00+00:00", 2), bucket("2026-12-01T10:15:00+00:00", 1)], width=300
    )
    assert [p.start[11:16] for p in points] == ["10:00", "10:05", "10:10", "10:15"]
    assert [p.requests for p in points] == [2, 0, 0, 1]
    assert [p.p95_ms for p in points] == [3.0, None, None, 3.0]
    assert log_figures.series([], width=60) == []


def sections(live: list[tuple[figures.ModelKey, figures.Accuracy]]) -> LogSections:
    return LogSections(
        traffic=TrafficSeries(state="empty"),
        accuracy=AccuracySection(state="empty"),
        sellers=SellerResponseSection(state="empty"),
        fallbacks=FallbackSection(state="empty"),
        live=live,
    )


CHAMPION = ChampionSection(state="ok", registered_model="pricewise", version="3")


def test_offline_against_live_lists_the_champion_even_before_its_first_sale() -> None:
    asked: list[figures.ModelKey] = []

    def offline(keys: Iterable[figures.ModelKey]) -> Mapping[figures.ModelKey, float | None]:
        asked.extend(keys)
        return {("pricewise", "3"): 0.41, ("pricewise", "2"): 0.45}

    live = [(("pricewise", "2"), figures.Accuracy(40, 0.52, 0.8))]
    section = monitoring_view.versions_section(
        sections(live), offline, CHAMPION, min_sold=30, rmsle_margin=0.05
    )
    assert section.state == "ok"
    assert [(r.model_version, r.champion, r.sold) for r in section.rows] == [("3", True, 0), ("2", False, 40)]
    assert section.rows[0].note == "needs 30 sold prices, has 0"
    assert section.rows[0].offline_rmsle == 0.41
    assert section.rows[1].excess == pytest.approx(0.07)
    assert section.rows[1].over_margin is True
    assert asked == [("pricewise", "3"), ("pricewise", "2")]


def test_an_unreachable_registry_leaves_the_live_figures_and_says_why(tmp_path: Path) -> None:
    def offline(keys: Iterable[figures.ModelKey]) -> Mapping[figures.ModelKey, float | None]:
        raise PricewiseError(f"cannot reach the MLflow tracking server (store {tmp_path}/mlflow.db)")

    live = [(("pricewise", "3"), figures.Accuracy(31, 0.5, 0.7))]
    section = monitoring_view.versions_section(
        sections(live), offline, CHAMPION, min_sold=30, rmsle_margin=0.05, roots=(tmp_path,)
    )
    assert section.state == "ok"
    assert str(section.message).startswith("the offline RMSLE is unavailable: cannot reach the MLflow")
    assert str(tmp_path) not in str(section.message)
    assert [(r.live_rmsle, r.offline_rmsle, r.excess) for r in section.rows] == [(0.5, None, None)]

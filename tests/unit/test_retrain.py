"""The retraining policy on small typed rows (each rule triggers and does not), and `retrain.run --check` on a
real decision store that judges the newest compared monitoring run."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pricewise import retrain
from pricewise.config import Config, MonitorConfig, RetrainConfig
from pricewise.monitoring.windows import Champion
from pricewise.settings import Settings
from pricewise.store import decisions
from pricewise.store.decisions import MonitoringRun

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
POLICY = RetrainConfig(drift_share=0.5, rmsle_margin=0.05, max_age_days=30, on_target_drift=True)
MONITOR = MonitorConfig(min_feedback_rows=30)


def champion(age_days: float = 1.0, offline_rmsle: float | None = 0.5) -> Champion:
    return Champion("pricewise", "3", "run-3", ("b1",), offline_rmsle, NOW - timedelta(days=age_days))


def run(**values: object) -> MonitoringRun:
    row: dict[str, object] = {
        "run_id": "r1",
        "created_at": NOW - timedelta(hours=1),
        "window_kind": "predictions",
        "window_start": NOW - timedelta(hours=25),
        "window_end": NOW - timedelta(hours=1),
        "batch_id": None,
        "model_version": "3",
        "status": "ok",
        "reference_rows": 1000,
        "current_rows": 500,
        "compared_rows": 500,
        "drift_share": 0.25,
        "drifted_columns": ["name_chars", "has_brand"],
        "prediction_drift": False,
        "target_drift": False,
        "feedback_rows": 100,
        "rmsle": 0.52,
        "coverage": 0.8,
        "message": "",
        "report_html": None,
        "report_json": None,
        **values,
    }
    return MonitoringRun(**row)  # type: ignore[arg-type]


def rules(
    best: Champion | None, latest: MonitoringRun | None, policy: RetrainConfig = POLICY
) -> dict[str, retrain.Rule]:
    judged = retrain.judge(policy, MONITOR, best, latest, NOW)
    return {r.rule: r for r in judged}


def test_a_calm_run_and_a_young_champion_trigger_nothing() -> None:
    judged = rules(champion(), run())
    assert set(judged) == {"drift", "accuracy", "target_drift", "age"}
    assert not any(r.triggered for r in judged.values())
    assert judged["drift"].value == 0.25
    assert judged["accuracy"].value == pytest.approx(0.02)
    assert judged["age"].value == pytest.approx(1.0)


def test_no_champion_triggers_and_age_is_not_judged() -> None:
    judged = rules(None, run())
    assert judged["no_champion"].triggered
    assert "age" not in judged
    assert not judged["accuracy"].triggered
    assert judged["accuracy"].detail == "no offline RMSLE of a champion"


@pytest.mark.parametrize(("share", "triggered"), [(0.49, False), (0.5, True), (0.75, True)])
def test_drift_triggers_from_the_configured_share_on(share: float, triggered: bool) -> None:
    judged = rules(champion(), run(drift_share=share))["drift"]
    assert judged.triggered is triggered
    assert (judged.value, judged.threshold) == (share, 0.5)
    assert "in run r1" in judged.detail


@pytest.mark.parametrize(("rmsle", "triggered"), [(0.54, False), (0.56, True)])
def test_accuracy_triggers_beyond_the_margin_over_the_offline_rmsle(rmsle: float, triggered: bool) -> None:
    judged = rules(champion(offline_rmsle=0.5), run(rmsle=rmsle))["accuracy"]
    assert judged.triggered is triggered
    assert judged.value == pytest.approx(rmsle - 0.5)


def test_accuracy_is_not_judged_on_too_few_sold_prices() -> None:
    judged = rules(champion(), run(feedback_rows=29, rmsle=2.0))["accuracy"]
    assert not judged.triggered
    assert judged.value is None
    assert judged.detail == "29 trusted sold prices, 30 needed to judge accuracy"


@pytest.mark.parametrize(("drifted", "triggered"), [(True, True), (False, False), (None, False)])
def test_target_drift_triggers_when_sold_prices_drifted(drifted: bool | None, triggered: bool) -> None:
    judged = rules(champion(), run(target_drift=drifted))["target_drift"]
    assert judged.triggered is triggered
    if drifted is None:
        assert judged.detail == "no sold prices compared yet"


def test_target_drift_is_not_a_rule_when_the_policy_turns_it_off() -> None:
    off = POLICY.model_copy(update={"on_target_drift": False})
    assert "target_drift" not in rules(champion(), run(target_drift=True), off)


@pytest.mark.parametrize(("age", "triggered"), [(29.9, False), (30.1, True)])
def test_age_triggers_past_the_maximum(age: float, triggered: bool) -> None:
    judged = rules(champion(age_days=age), run())["age"]
    assert judged.triggered is triggered
    assert judged.detail.startswith("champion pricewise v3 trained")


def test_without_a_compared_run_only_the_champion_rules_can_trigger() -> None:
    judged = rules(champion(age_days=40), None)
    assert [r.rule for r in judged.values() if r.triggered] == ["age"]
    assert judged["drift"].detail == "no monitoring run compared any data yet"
    assert judged["accuracy"].detail == "0 trusted sold prices, 30 needed to judge accuracy"


def test_check_judges_the_newest_compared_run_and_records_a_frozen_decision(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    store = decisions.open_store(settings)
    try:
        store.record(run(run_id="compared", created_at=NOW - timedelta(hours=2), drift_share=0.9))
        store.record(
            run(run_id="empty-later", created_at=NOW - timedelta(hours=1), status="empty", drift_share=None)
        )
    finally:
        store.close()

    outcome = retrain.run(Config(), settings, "check")

    assert outcome.action == "check"
    assert outcome.monitoring_run_id == "compared"
    assert outcome.due is True
    assert {r.rule for r in outcome.reasons if r.triggered} == {"no_champion", "drift"}
    assert outcome.message.startswith("retraining due: no champion yet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.action = "trained"  # type: ignore[misc]
    store = decisions.open_store(settings)
    try:
        [decision] = store.retrain_decisions()
    finally:
        store.close()
    assert (decision.action, decision.due, decision.monitoring_run_id) == ("check", True, "compared")
    assert decision.message == outcome.message
    assert [r["rule"] for r in decision.reasons] == [r.rule for r in outcome.reasons]
    assert outcome.summary()["reasons"][0] == dataclasses.asdict(outcome.reasons[0])

"""Decision rows in a real SQLite file: round trips, the newest compared run, and the one-time copy of the
decision tables out of an older DuckDB warehouse."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import decisions, warehouse
from pricewise.store.decisions import DecisionStore, MonitoringRun, Promotion
from pricewise.store.schema import VERSIONS_TABLE
from tests.support.logged import monitoring_run, retrain_decision

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# The three tables as warehouses made before the decision store held them (column order matters: the old code
# inserted positionally).
OLD_TABLES = """
CREATE TABLE promotions (
    decided_at TIMESTAMP NOT NULL, registered_model VARCHAR NOT NULL, action VARCHAR NOT NULL,
    champion_before VARCHAR, challenger VARCHAR, champion_after VARCHAR, metrics VARCHAR NOT NULL,
    reason VARCHAR NOT NULL
);
CREATE TABLE monitoring_runs (
    run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, window_kind VARCHAR NOT NULL,
    window_start TIMESTAMP, window_end TIMESTAMP, batch_id VARCHAR, model_version VARCHAR, status VARCHAR NOT NULL,
    reference_rows BIGINT NOT NULL, current_rows BIGINT NOT NULL, compared_rows BIGINT NOT NULL,
    drift_share DOUBLE, drifted_columns VARCHAR NOT NULL, prediction_drift BOOLEAN, target_drift BOOLEAN,
    feedback_rows BIGINT NOT NULL, rmsle DOUBLE, coverage DOUBLE, message VARCHAR NOT NULL, report_html VARCHAR,
    report_json VARCHAR
);
CREATE TABLE retrain_decisions (
    decided_at TIMESTAMP NOT NULL, monitoring_run_id VARCHAR, due BOOLEAN NOT NULL, reasons VARCHAR NOT NULL,
    action VARCHAR NOT NULL, challenger_version VARCHAR, promotion_action VARCHAR, message VARCHAR NOT NULL
);
"""


def settings_in(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")


def run_row(run_id: str, created_at: datetime, status: str = "ok", **values: object) -> MonitoringRun:
    figures: dict[str, object] = {
        "drift_share": 0.25,
        "drifted_columns": ["name_chars"],
        "feedback_rows": 12,
        "rmsle": 0.5,
        "coverage": 0.8,
        "message": "one column drifted",
    }
    return monitoring_run(run_id, created_at, status=status, **{**figures, **values})


def promotion(decided_at: datetime, action: str = "first", after: str | None = "1") -> Promotion:
    return Promotion(
        decided_at=decided_at,
        registered_model="pricewise",
        action=action,  # type: ignore[arg-type]
        champion_before=None,
        challenger="1",
        champion_after=after,
        figures={"challenger_rmsle": 0.61, "behaviour": [{"name": "positive", "passed": True}]},
        reason="no champion yet",
    )


@pytest.fixture
def store(tmp_path: Path) -> DecisionStore:
    opened = decisions.open_store(settings_in(tmp_path))
    yield opened  # type: ignore[misc]
    opened.close()


def test_rows_come_back_as_they_were_recorded_with_utc_times(store: DecisionStore, tmp_path: Path) -> None:
    first = promotion(T0)
    run = run_row("r1", T0 + timedelta(minutes=5))
    decision = retrain_decision(T0 + timedelta(minutes=6))
    store.record(first)
    store.record(run)
    store.record(decision)

    assert store.promotions() == [first]
    assert store.monitoring_run("r1") == run
    assert store.monitoring_run("no-such-run") is None
    assert store.retrain_decisions() == [decision]
    assert store.monitoring_runs()[0].created_at.tzinfo is not None
    assert (tmp_path / "data" / "decisions.db").is_file(), "SQLite under the data directory by default"


def test_promotions_are_oldest_first_and_limit_keeps_the_newest(store: DecisionStore) -> None:
    for minutes, action in enumerate(("first", "refuse", "promote")):
        store.record(promotion(T0 + timedelta(minutes=minutes), action=action))
    assert [p.action for p in store.promotions()] == ["first", "refuse", "promote"]
    assert [p.action for p in store.promotions(limit=2)] == ["refuse", "promote"]
    assert store.promotions("another-model") == []


def test_latest_compared_run_skips_empty_and_failed_runs(store: DecisionStore) -> None:
    assert store.latest_compared_run() is None
    store.record(run_row("old-ok", T0, "ok"))
    store.record(run_row("drift", T0 + timedelta(hours=1), "drift"))
    store.record(run_row("empty", T0 + timedelta(hours=2), "empty"))
    store.record(run_row("error", T0 + timedelta(hours=3), "error"))

    latest = store.latest_compared_run()

    assert latest is not None
    assert latest.run_id == "drift"
    assert [r.run_id for r in store.monitoring_runs()] == ["error", "empty", "drift", "old-ok"]


def test_a_duplicate_run_id_is_a_clear_error_and_records_nothing(store: DecisionStore) -> None:
    store.record(run_row("r1", T0))
    with pytest.raises(PricewiseError, match="cannot record the MonitoringRun decision"):
        store.record(run_row("r1", T0 + timedelta(hours=1)))
    with pytest.raises(PricewiseError, match="cannot record 2 decisions"):
        store.record_all([promotion(T0), run_row("r1", T0)])
    assert store.promotions() == [], "record_all is one transaction"


def test_the_url_setting_points_the_store_elsewhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "decisions.sqlite"
    settings = Settings(
        data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml", decisions_url=f"sqlite:///{elsewhere}"
    )
    store = decisions.open_store(settings)
    try:
        store.record(promotion(T0))
    finally:
        store.close()
    with sqlite3.connect(elsewhere) as con:
        assert con.execute("SELECT action, champion_after FROM promotions").fetchall() == [("first", "1")]
    assert not (tmp_path / "data" / "decisions.db").exists()


def old_warehouse(settings: Settings) -> None:
    """A warehouse of the current schema plus the old decision tables, filled as the old stages wrote them."""
    with warehouse.connect(settings) as con:
        con.execute(OLD_TABLES)
        naive = T0.replace(tzinfo=None)
        con.execute(
            "INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                naive,
                "pricewise",
                "first",
                None,
                "1",
                "1",
                json.dumps({"challenger_rmsle": 0.6}),
                "first model",
            ],
        )
        con.execute(
            "INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [naive + timedelta(days=1), "pricewise", "refuse", "1", "2", "1", "{}", "not better"],
        )
        con.execute(
            "INSERT INTO monitoring_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                "run-1",
                naive + timedelta(days=2),
                "predictions",
                naive + timedelta(days=1),
                naive + timedelta(days=2),
                None,
                "1",
                "drift",
                6400,
                500,
                500,
                0.5,
                json.dumps(["name_chars", "has_brand"]),
                True,
                None,
                40,
                0.7,
                0.6,
                "drifted: name_chars, has_brand",
                "/reports/monitoring/run-1/report.html",
                "/reports/monitoring/run-1/report.json",
            ],
        )
        con.execute(
            "INSERT INTO retrain_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                naive + timedelta(days=3),
                "run-1",
                True,
                json.dumps(
                    [{"rule": "drift", "value": 0.5, "threshold": 0.5, "triggered": True, "detail": "d"}]
                ),
                "trained",
                "2",
                "refuse",
                "retrained",
            ],
        )


def test_an_older_warehouse_is_copied_once_into_an_empty_store(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    old_warehouse(settings)

    store = decisions.open_batch_store(settings)
    try:
        promotions = store.promotions()
        [run] = store.monitoring_runs()
        [decision] = store.retrain_decisions()
        again = decisions.migrate_from_warehouse(store, settings)
    finally:
        store.close()

    assert [(p.action, p.champion_before, p.champion_after, p.reason) for p in promotions] == [
        ("first", None, "1", "first model"),
        ("refuse", "1", "1", "not better"),
    ]
    assert promotions[0].decided_at == T0
    assert promotions[0].figures == {"challenger_rmsle": 0.6}
    assert run.run_id == "run-1"
    assert run.created_at == T0 + timedelta(days=2)
    assert run.window_start == T0 + timedelta(days=1)
    assert (run.status, run.drift_share, run.drifted_columns) == ("drift", 0.5, ["name_chars", "has_brand"])
    assert (run.prediction_drift, run.target_drift, run.feedback_rows) == (True, None, 40)
    assert run.report_html == "/reports/monitoring/run-1/report.html"
    assert decision.reasons[0]["rule"] == "drift"
    assert (decision.action, decision.challenger_version, decision.promotion_action) == (
        "trained",
        "2",
        "refuse",
    )
    assert again == 0, "a store that holds rows is never copied into again"
    reopened = decisions.open_batch_store(settings)
    try:
        assert len(reopened.promotions()) == 2
    finally:
        reopened.close()


def test_a_store_in_use_is_not_copied_into(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    old_warehouse(settings)
    store = decisions.open_store(settings)
    try:
        store.record(promotion(T0 + timedelta(days=9), action="first", after="7"))
        assert decisions.migrate_from_warehouse(store, settings) == 0
        assert [p.champion_after for p in store.promotions()] == ["7"]
    finally:
        store.close()


def test_the_servers_store_does_not_copy_from_the_warehouse(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    old_warehouse(settings)
    store = decisions.open_store(settings)
    try:
        assert store.is_empty(), "only the batch side (open_batch_store) copies the old rows"
    finally:
        store.close()


def test_without_a_warehouse_or_old_tables_nothing_is_copied(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    store = decisions.open_batch_store(settings)
    try:
        assert store.is_empty()
        assert not settings.warehouse.exists()
        with warehouse.connect(settings):
            pass  # the current schema: no decision tables in DuckDB
        assert decisions.migrate_from_warehouse(store, settings) == 0
    finally:
        store.close()
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert tables.isdisjoint({"promotions", "monitoring_runs", "retrain_decisions"})


def test_a_version_1_store_gains_the_estimate_columns_and_keeps_its_runs(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    made = decisions.open_store(settings)
    made.record(run_row("old", T0))
    made.close()
    # Bring the file back to what version 1 wrote: no estimate columns, version 1 recorded.
    path = settings.data_dir / "decisions.db"
    with sqlite3.connect(path) as connection:
        for column in decisions.ESTIMATE_COLUMNS:
            connection.execute(f"ALTER TABLE monitoring_runs DROP COLUMN {column}")
        connection.execute(f"UPDATE {VERSIONS_TABLE} SET version = 1 WHERE component = 'decisions'")
    with sqlite3.connect(path) as connection:
        assert "estimated_rmsle" not in {
            row[1] for row in connection.execute("PRAGMA table_info(monitoring_runs)")
        }

    store = decisions.open_store(settings)
    try:
        store.record(
            run_row(
                "new",
                T0 + timedelta(hours=1),
                estimated_rmsle=0.52,
                estimated_rmsle_low=0.47,
                estimated_rmsle_high=0.58,
            )
        )
        runs = {run.run_id: run for run in store.monitoring_runs()}
    finally:
        store.close()
    assert (runs["old"].estimated_rmsle, runs["old"].rmsle) == (None, 0.5), "the older run is kept as it was"
    assert (
        runs["new"].estimated_rmsle,
        runs["new"].estimated_rmsle_low,
        runs["new"].estimated_rmsle_high,
    ) == (
        0.52,
        0.47,
        0.58,
    )
    with sqlite3.connect(path) as connection:
        version = connection.execute(
            f"SELECT version FROM {VERSIONS_TABLE} WHERE component = 'decisions'"
        ).fetchone()
    assert version == (decisions.SCHEMA_VERSION,) == (2,)

"""The prediction log and the decision tables on a real PostgreSQL server: the same rows as on SQLite, two
processes writing and preparing one database at once, a server that is down or refuses the credentials, a
schema made by an older version, and a running API whose database restarts under it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from pricewise.errors import PricewiseError
from pricewise.store.decisions import DecisionStore, MonitoringRun, Promotion
from pricewise.store.prediction_log import LoggedSuggestion, Outcome, PredictionLog
from pricewise.store.schema import ADVISORY_LOCK_KEY, VERSIONS_TABLE
from pricewise.store.sql import StoreUnavailableError, parse_url
from tests.support.logged import monitoring_run, retrain_decision
from tests.support.postgres import PostgresCluster
from tests.support.servers import LISTING, PRICEWISE, free_port, start_server
from tests.support.workspaces import Workspace, clone_workspace

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ROWS = [
    LoggedSuggestion("r1", None, "pricewise", "1", "run-a", False,
                     {"name": "Blue dress", "brand_name": None, "item_condition_id": 3, "shipping": 0},
                     {"price": 9.5, "low": 6.0, "high": 14.0, "coverage": 0.8}, 2.5),
    LoggedSuggestion("r2", "b1", "pricewise", None, None, True,
                     {"name": "é ü \u2028 \"quoted\"", "item_description": "x" * 300},
                     {"price": 20.0, "low": 10.0, "high": 30.0}, 0.25),
]  # fmt: skip


@pytest.fixture
def database_url(postgres: PostgresCluster) -> str:
    """An empty database of its own for each test."""
    return postgres.fresh_database()


def _tables(url: str) -> set[str]:
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as connection:
            return {
                str(r[0])
                for r in connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            }
    finally:
        engine.dispose()


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _exercise_log(url: str) -> dict[str, Any]:
    """Everything the stages read back from a log after the same writes (times left out: they differ)."""
    log = PredictionLog(url)
    try:
        log.record_suggestions(ROWS)
        feedback = (log.record_feedback("r1", 9.0), log.record_feedback("nope", 9.0))
        first = log.record_outcomes([Outcome("r1", 11.0, T0)], source="api")
        again = log.record_outcomes([Outcome("r1", 11.0)], source="export:sales.csv:0123")
        refused = log.record_outcomes(
            [Outcome("r2", 5.0), Outcome("r1", 99.0), Outcome("x", 1.0)], source="api"
        )
        log.mark_harvested(["r1"], "batch-1")
        sold = log.sold_suggestions()
        window = log.suggestions_between(None, None).sort_values("request_id", ignore_index=True)
        choices = log.seller_choices()
        assert sold["created_at"].dt.tz is not None
        return {
            "ids": log.logged_request_ids(),
            "count": log.count(),
            "since": log.count_since(T0),
            "feedback": feedback,
            "receipts": (first, again, refused),
            "sources": (log.outcome_sources(), log.outcome_sources("batch-1")),
            "sold": sold.drop(columns=["created_at"]),
            "window": window.drop(columns=["created_at"]),
            "choices": choices.drop(columns=["created_at"]),
            "write_problem": log.write_problem(),
        }
    finally:
        log.close()


def test_the_prediction_log_on_postgres_reads_back_what_sqlite_does(
    database_url: str, tmp_path: Path
) -> None:
    assert _tables(database_url) == set()

    on_postgres = _exercise_log(database_url)
    on_sqlite = _exercise_log(f"sqlite:///{tmp_path / 'log.db'}")

    assert _tables(database_url) == {"predictions", "feedback", "outcomes", VERSIONS_TABLE}
    assert _query(database_url, f"SELECT component, version FROM {VERSIONS_TABLE}") == [("prediction_log", 2)]
    assert on_postgres["ids"] == {"r1", "r2"}
    assert (on_postgres["count"], on_postgres["since"]) == (2, 2)
    assert on_postgres["feedback"] == (True, False)
    first, again, refused = on_postgres["receipts"]
    assert (first.stored, again.already_recorded) == (1, 1)
    assert (refused.stored, refused.unknown, refused.conflicting) == (0, ("x",), ("r1",))
    assert on_postgres["sources"] == ({"api": 1}, {"api": 1})
    assert on_postgres["sold"][["request_id", "sold_price", "label_source", "price"]].to_dict("records") == [
        {"request_id": "r1", "sold_price": 11.0, "label_source": "api", "price": 9.5}
    ]
    assert on_postgres["window"]["description_chars"].tolist() == [0, 300]
    assert on_postgres["write_problem"] is None
    for key in ("ids", "count", "since", "feedback", "receipts", "sources", "write_problem"):
        assert on_postgres[key] == on_sqlite[key], key
    for key in ("sold", "window", "choices"):
        pd.testing.assert_frame_equal(on_postgres[key], on_sqlite[key], check_dtype=False, obj=key)


def _promotion(decided_at: datetime, action: str = "first") -> Promotion:
    return Promotion(
        decided_at=decided_at,
        registered_model="pricewise",
        action=action,  # type: ignore[arg-type]
        champion_before=None,
        challenger="1",
        champion_after="1",
        figures={"challenger_rmsle": 0.61, "behaviour": [{"name": "positive", "passed": True}]},
        reason="no champion yet",
    )


def _run(run_id: str, created_at: datetime, status: str = "ok", **values: object) -> MonitoringRun:
    figures: dict[str, object] = {"drift_share": 0.25, "drifted_columns": ["name_chars"], "rmsle": 0.5}
    return monitoring_run(run_id, created_at, status=status, **{**figures, **values})


def test_the_decision_tables_on_postgres_come_back_as_recorded(database_url: str) -> None:
    decision = retrain_decision(T0 + timedelta(minutes=6), detail="é")
    store = DecisionStore(database_url)
    try:
        assert store.is_empty()
        for minutes, action in enumerate(("first", "refuse", "promote")):
            store.record(_promotion(T0 + timedelta(minutes=minutes), action))
        run = _run("r1", T0 + timedelta(minutes=5), estimated_rmsle=0.52)
        store.record(run)
        store.record(_run("empty", T0 + timedelta(hours=2), "empty"))
        store.record(decision)

        assert [p.action for p in store.promotions()] == ["first", "refuse", "promote"]
        assert [p.action for p in store.promotions(limit=2)] == ["refuse", "promote"]
        assert store.promotions()[0] == _promotion(T0)
        assert store.monitoring_run("r1") == run
        assert store.monitoring_run("no-such-run") is None
        assert store.latest_compared_run() == run
        assert store.retrain_decisions() == [decision]
        assert store.monitoring_runs()[0].created_at.tzinfo is not None
        with pytest.raises(PricewiseError, match="cannot record the MonitoringRun decision"):
            store.record(replace(run, created_at=T0 + timedelta(hours=3)))
        with pytest.raises(PricewiseError, match="cannot record 2 decisions"):
            store.record_all([_promotion(T0 + timedelta(days=1)), run])
        assert len(store.promotions()) == 3, "record_all is one transaction"
    finally:
        store.close()
    assert _query(database_url, f"SELECT component, version FROM {VERSIONS_TABLE}") == [("decisions", 2)]


WRITER = textwrap.dedent(
    """
    import sys, time
    from pricewise.store.prediction_log import LoggedSuggestion, PredictionLog
    url, name, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))
    log = PredictionLog(url)
    for batch in range(40):
        log.record_suggestions([
            LoggedSuggestion(f"{name}-{batch}-{i}", None, "pricewise", "1", "run", False, {"name": name},
                             {"price": 1.0}, 1.0)
            for i in range(5)
        ])
    log.close()
    """
)


def test_two_processes_prepare_and_write_one_log_at_once(database_url: str) -> None:
    start_at = time.time() + 2.0  # both open the empty database at the same moment, past their imports
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, database_url, name, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in ("a", "b")
    ]
    outputs = [w.communicate(timeout=60)[0].decode(errors="replace") for w in writers]

    assert [w.returncode for w in writers] == [0, 0], outputs
    expected = {f"{name}-{batch}-{i}" for name in ("a", "b") for batch in range(40) for i in range(5)}
    rows = _query(database_url, "SELECT request_id FROM predictions")
    assert len(rows) == len(expected) == 400, "no row lost, none twice"
    assert {r[0] for r in rows} == expected
    assert _query(database_url, f"SELECT component, version FROM {VERSIONS_TABLE}") == [("prediction_log", 2)]


def test_preparing_waits_for_the_advisory_lock_so_only_one_process_creates(database_url: str) -> None:
    holder = create_engine(parse_url(database_url))
    opened: list[PredictionLog] = []
    try:
        with holder.connect() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            opener = threading.Thread(target=lambda: opened.append(PredictionLog(database_url)))
            opener.start()
            opener.join(1.5)
            assert opener.is_alive(), "another process holds the lock: preparing must wait for it"
            assert "predictions" not in _tables(database_url)
            connection.rollback()
        opener.join(10)
        assert not opener.is_alive()
        assert len(opened) == 1
        assert {"predictions", "feedback", "outcomes"} <= _tables(database_url)
        again = PredictionLog(database_url)  # finds it done
        again.close()
        assert _query(database_url, f"SELECT count(*) FROM {VERSIONS_TABLE}") == [(1,)]
    finally:
        for log in opened:
            log.close()
        holder.dispose()


SECRET = "s3cret-Passw0rd"


def _serve(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`pricewise serve` with the prediction log at `url`; it checks the log before starting any worker."""
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(tmp_path / "data"),
        "PRICEWISE_CONFIG_PATH": str(tmp_path / "none.yaml"),
        "PRICEWISE_SERVE_PORT": str(free_port()),
        "PRICEWISE_PREDICTION_LOG_URL": url,
    }
    return subprocess.run(
        [str(PRICEWISE), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("fault", ["down", "wrong password", "unknown database"])
def test_an_unreachable_or_refusing_database_is_one_clear_line_without_the_password(
    fault: str, postgres: PostgresCluster, tmp_path: Path
) -> None:
    port = free_port() if fault == "down" else postgres.port
    database = "no_such_database" if fault == "unknown database" else "postgres"
    password = postgres.password if fault == "unknown database" else SECRET
    url = f"postgresql://pricewise:{password}@127.0.0.1:{port}/{database}"
    shown = f"postgresql://pricewise:***@127.0.0.1:{port}/{database}"
    said = {
        "down": "Connection refused",
        "wrong password": 'password authentication failed for user "pricewise"',
        "unknown database": 'database "no_such_database" does not exist',
    }[fault]

    for opener, what in ((PredictionLog, "the prediction log"), (DecisionStore, "the decision tables")):
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as raised:
            opener(url)
        assert time.monotonic() - started < 10, "a connect timeout, not a hang"
        message = str(raised.value)
        assert message.startswith(f"cannot open {what} at {shown}: "), message
        assert said in message
        assert password not in message

    served = _serve(url, tmp_path)
    output = served.stdout + served.stderr
    assert served.returncode == 2, output
    assert f"cannot open the prediction log at {shown}" in output
    assert said in output
    assert password not in output
    assert "Traceback" not in output


PREDICTIONS_V1 = """
CREATE TABLE predictions (
    request_id VARCHAR(64) PRIMARY KEY, batch_id VARCHAR(64), created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    model_name VARCHAR(200) NOT NULL, model_version VARCHAR(50), model_run_id VARCHAR(64), fallback BOOLEAN NOT NULL,
    inputs JSON NOT NULL, outputs JSON NOT NULL, latency_ms FLOAT NOT NULL
);
CREATE INDEX ix_predictions_batch_id ON predictions (batch_id);
CREATE INDEX ix_predictions_created_at ON predictions (created_at);
CREATE TABLE feedback (
    id SERIAL PRIMARY KEY, request_id VARCHAR(64) NOT NULL REFERENCES predictions (request_id),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, chosen_price FLOAT, sold_price FLOAT
);
CREATE INDEX ix_feedback_request_id ON feedback (request_id);
INSERT INTO predictions VALUES
    ('old-1', NULL, '2026-11-01 10:00:00+00', 'pricewise', '1', 'run-1', false, '{"name": "Old lamp"}',
     '{"price": 15.0, "low": 10.0, "high": 22.0}', 3.0);
INSERT INTO feedback (request_id, created_at, chosen_price, sold_price)
    VALUES ('old-1', '2026-11-01 10:05:00+00', 14.0, 13.0);
"""

DECISIONS_V1 = f"""
CREATE TABLE promotions (
    id SERIAL PRIMARY KEY, decided_at TIMESTAMP WITH TIME ZONE NOT NULL, registered_model VARCHAR(200) NOT NULL,
    action VARCHAR(20) NOT NULL, champion_before VARCHAR(50), challenger VARCHAR(50), champion_after VARCHAR(50),
    figures JSON NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE monitoring_runs (
    run_id VARCHAR(64) PRIMARY KEY, created_at TIMESTAMP WITH TIME ZONE NOT NULL, window_kind VARCHAR(20) NOT NULL,
    window_start TIMESTAMP WITH TIME ZONE, window_end TIMESTAMP WITH TIME ZONE, batch_id VARCHAR(64),
    model_version VARCHAR(50), status VARCHAR(20) NOT NULL, reference_rows INTEGER NOT NULL,
    current_rows INTEGER NOT NULL, compared_rows INTEGER NOT NULL, drift_share FLOAT, drifted_columns JSON NOT NULL,
    prediction_drift BOOLEAN, target_drift BOOLEAN, feedback_rows INTEGER NOT NULL, rmsle FLOAT, coverage FLOAT,
    message TEXT NOT NULL, report_html TEXT, report_json TEXT
);
CREATE TABLE retrain_decisions (
    id SERIAL PRIMARY KEY, decided_at TIMESTAMP WITH TIME ZONE NOT NULL, monitoring_run_id VARCHAR(64),
    due BOOLEAN NOT NULL, reasons JSON NOT NULL, action VARCHAR(20) NOT NULL, challenger_version VARCHAR(50),
    promotion_action VARCHAR(20), message TEXT NOT NULL
);
CREATE TABLE {VERSIONS_TABLE} (
    component VARCHAR(64) PRIMARY KEY, version INTEGER NOT NULL, updated_at TIMESTAMP WITH TIME ZONE NOT NULL
);
INSERT INTO {VERSIONS_TABLE} VALUES ('decisions', 1, '2026-11-01 00:00:00+00');
INSERT INTO monitoring_runs VALUES
    ('old-run', '2026-11-01 12:00:00+00', 'predictions', NULL, NULL, NULL, '1', 'ok', 100, 50, 50, 0.0, '[]',
     false, NULL, 5, 0.55, 0.8, 'calm', NULL, NULL);
"""


def test_a_version_1_prediction_log_made_before_versions_were_recorded_is_migrated(database_url: str) -> None:
    _query(database_url, PREDICTIONS_V1)

    log = PredictionLog(database_url)
    try:
        assert log.logged_request_ids() == {"old-1"}
        assert log.sold_suggestions().empty, "a seller-reported sold price of version 1 is never a label"
        assert log.record_outcomes([Outcome("old-1", 16.0)], source="api").stored == 1
        log.record_suggestions(ROWS[:1])
        assert log.sold_suggestions()["request_id"].tolist() == ["old-1"]
    finally:
        log.close()
    assert "outcomes" in _tables(database_url)
    assert _query(database_url, f"SELECT component, version FROM {VERSIONS_TABLE}") == [("prediction_log", 2)]


def test_version_1_decision_tables_gain_the_estimate_columns_and_keep_their_runs(database_url: str) -> None:
    _query(database_url, DECISIONS_V1)

    store = DecisionStore(database_url)
    try:
        store.record(
            _run("new", T0, estimated_rmsle=0.52, estimated_rmsle_low=0.47, estimated_rmsle_high=0.58)
        )
        runs = {run.run_id: run for run in store.monitoring_runs()}
    finally:
        store.close()
    assert (runs["old-run"].rmsle, runs["old-run"].estimated_rmsle) == (0.55, None)
    assert (runs["new"].estimated_rmsle_low, runs["new"].estimated_rmsle_high) == (0.47, 0.58)
    assert _query(database_url, f"SELECT component, version FROM {VERSIONS_TABLE}") == [("decisions", 2)]


def test_a_newer_or_unknown_schema_is_refused_and_left_as_it_was(database_url: str) -> None:
    _query(database_url, DECISIONS_V1 + f"UPDATE {VERSIONS_TABLE} SET version = 3;")
    with pytest.raises(PricewiseError, match="has schema version 3, newer than the 2 this pricewise knows"):
        DecisionStore(database_url)
    assert "estimated_rmsle" not in {
        r[0] for r in _query(database_url, "SELECT column_name FROM information_schema.columns")
    }

    # A predictions table without the outputs column: no step makes that; preparing is one transaction, so the
    # outcomes table it created before finding out is gone again.
    _query(database_url, PREDICTIONS_V1.split("INSERT", maxsplit=1)[0].replace("outputs JSON NOT NULL, ", ""))
    with pytest.raises(
        PricewiseError, match=r"cannot migrate \(version 1, missing columns predictions: outputs\)"
    ):
        PredictionLog(database_url)
    assert "outcomes" not in _tables(database_url)
    assert ("prediction_log",) not in _query(database_url, f"SELECT component FROM {VERSIONS_TABLE}")


@pytest.fixture
def pg_server(
    light_champion_workspace: Workspace, postgres: PostgresCluster, tmp_path: Path
) -> Iterator[tuple[Any, str]]:
    """A real `pricewise serve` on a clone of the light champion, its prediction log on PostgreSQL."""
    url = postgres.fresh_database()
    ws = clone_workspace(light_champion_workspace, tmp_path / "ws")
    running = start_server(ws, tmp_path, PRICEWISE_PREDICTION_LOG_URL=url)
    yield running, url
    running.stop()


def test_a_server_answers_503_while_postgres_restarts_and_loses_no_suggestion(
    pg_server: tuple[Any, str], postgres: PostgresCluster
) -> None:
    server, url = pg_server
    answers: list[tuple[float, int, dict[str, Any], str | None]] = []
    stop = threading.Event()

    def client() -> None:
        with server.client(timeout=15) as http:
            while not stop.is_set():
                try:
                    response = http.post("/v1/suggestions", json=LISTING)
                    retry_after = response.headers.get("retry-after")
                    answers.append((time.monotonic(), response.status_code, response.json(), retry_after))
                except httpx.TimeoutException:
                    answers.append((time.monotonic(), 0, {}, None))
                time.sleep(0.01)

    with ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(client) for _ in range(2)]
        time.sleep(1.0)
        postgres.stop()
        time.sleep(1.0)
        with server.client() as http:
            ready = http.get("/ready")
        time.sleep(0.5)
        postgres.start()
        restarted = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for running in clients:
            running.result()

    codes = {code for _, code, _, _ in answers}
    assert codes <= {200, 503}, f"only suggestions or 503 (no 500, no hang): {codes}"
    refused = [(body, retry) for _, code, body, retry in answers if code == 503]
    assert refused, "requests while the database was down were refused"
    for body, retry in refused:
        assert "the prediction log at postgresql://pricewise:***@127.0.0.1" in body["detail"], body
        assert body["detail"].endswith("; retry shortly")
        assert retry == "1"
        assert postgres.password not in body["detail"]
    assert ready.status_code == 503
    assert ready.json()["detail"].startswith("the prediction log cannot be written: the last write failed")
    after = [code for at, code, _, _ in answers if at > restarted + 1.0]
    assert after, "requests ran after the restart"
    assert set(after) == {200}, "recovered by itself"
    served = {body["request_id"] for _, code, body, _ in answers if code == 200}
    log = PredictionLog(url)
    try:
        assert served <= log.logged_request_ids(), "every suggestion a client received is in the log"
    finally:
        log.close()
    with server.client() as http:
        assert http.get("/ready").status_code == 200

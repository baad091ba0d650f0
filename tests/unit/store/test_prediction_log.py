"""Suggestions and feedback in; rows in a real SQLite prediction log (WAL, chosen durability) out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pricewise.store.prediction_log import LoggedSuggestion, PredictionLog

LISTING: dict[str, Any] = {"name": "Blue dress", "item_condition_id": 3, "shipping": 0}


def test_prediction_log_is_wal_normal_and_feedback_needs_a_logged_suggestion(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        with log.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        log.record_suggestions(
            [LoggedSuggestion("r1", None, "pricewise", "1", "run", False, LISTING, {"price": 10.0}, 3.5)]
        )
        assert log.logged_request_ids() == {"r1"}
        assert log.record_feedback("r1", 9.0, None) is True
        assert log.record_feedback("nope", 9.0, None) is False
    finally:
        log.close()


def test_sqlite_log_rows_are_stored_exactly_as_the_generic_insert_stores_them(tmp_path: Path) -> None:
    """SQLite logs insert through a precompiled statement; every column must be stored as SQLAlchemy's own
    INSERT stores it (timestamps as naive UTC text, JSON as text, booleans as 0/1), so readers see no difference."""
    rows = [
        LoggedSuggestion("r1", None, "pricewise", "1", "run", False, {**LISTING, "brand_name": None}, {"price": 9.5}, 2.5),
        LoggedSuggestion("r2", "b1", "pricewise", None, None, True, {"name": "é ü \u2028"}, {"low": 1.0}, 0.25),
    ]  # fmt: skip
    fast = PredictionLog(f"sqlite:///{tmp_path / 'fast.db'}")
    generic = PredictionLog(f"sqlite:///{tmp_path / 'generic.db'}")
    generic._sqlite_insert = None  # the SQLAlchemy Core INSERT every other database uses
    stored = []
    try:
        for log in (fast, generic):
            log.record_suggestions(rows)
            with log.engine.connect() as connection:
                stored.append(
                    connection.exec_driver_sql("SELECT * FROM predictions ORDER BY request_id").all()
                )
            assert log.logged_request_ids() == {"r1", "r2"}
            assert log.record_feedback("r2", 7.0, 8.0) is True
    finally:
        fast.close()
        generic.close()
    as_fast, as_generic = stored
    created_at = 2
    for fast_row, generic_row in zip(as_fast, as_generic, strict=True):
        assert fast_row[:created_at] + fast_row[created_at + 1 :] == (
            generic_row[:created_at] + generic_row[created_at + 1 :]
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", fast_row[created_at])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", generic_row[created_at])


def test_prediction_log_can_fsync_every_commit_to_survive_power_loss(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", synchronous="FULL")
    try:
        with log.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        log.close()

"""Suggestions, feedback and outcomes in; rows in a real SQLite prediction log (WAL, chosen durability) out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pricewise.store.prediction_log import LoggedSuggestion, Outcome, PredictionLog

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
        assert log.record_feedback("r1", 9.0) is True
        assert log.record_feedback("nope", 9.0) is False
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
            assert log.record_feedback("r2", 7.0) is True
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


def _logged(tmp_path: Path, *ids: str) -> PredictionLog:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    log.record_suggestions(
        [
            LoggedSuggestion(i, None, "pricewise", "1", "run", False, LISTING, {"price": 10.0}, 1.0)
            for i in ids
        ]
    )
    return log


def _stored(log: PredictionLog) -> dict[str, tuple[float, str]]:
    with log.engine.connect() as connection:
        rows = connection.execute(
            select(log.outcomes.c.request_id, log.outcomes.c.sold_price, log.outcomes.c.source)
        )
        return {str(r): (float(p), str(s)) for r, p, s in rows}


def test_outcomes_keep_their_source_and_a_retried_delivery_is_harmless(tmp_path: Path) -> None:
    log = _logged(tmp_path, "a1", "a2")
    try:
        first = log.record_outcomes([Outcome("a1", 20.0), Outcome("a2", 30.0)], source="api")
        again = log.record_outcomes([Outcome("a1", 20.0)], source="export:sales.csv:0123")
        assert (first.stored, first.already_recorded, first.refused) == (2, 0, False)
        assert (again.stored, again.already_recorded, again.refused) == (0, 1, False)
        assert _stored(log) == {"a1": (20.0, "api"), "a2": (30.0, "api")}
        log.mark_harvested(["a1"], "batch-1")
        assert log.outcome_sources("batch-1") == {"api": 1}
    finally:
        log.close()


def test_outcomes_for_unknown_or_already_labelled_ids_store_nothing(tmp_path: Path) -> None:
    log = _logged(tmp_path, "b1", "b2")
    try:
        assert log.record_outcomes([Outcome("b1", 20.0)], source="api").stored == 1
        unknown = log.record_outcomes([Outcome("b2", 5.0), Outcome("nope", 5.0)], source="api")
        assert unknown.refused
        assert unknown.unknown == ("nope",)
        assert unknown.stored == 0
        relabel = log.record_outcomes([Outcome("b2", 5.0), Outcome("b1", 99.0)], source="api")
        assert relabel.refused
        assert relabel.conflicting == ("b1",)
        assert _stored(log) == {"b1": (20.0, "api")}  # b2 was in both refused groups: not stored
        with pytest.raises(ValueError, match="more than once"):
            log.record_outcomes([Outcome("b2", 5.0), Outcome("b2", 6.0)], source="api")
    finally:
        log.close()


def test_seller_feedback_is_never_a_sold_price(tmp_path: Path) -> None:
    log = _logged(tmp_path, "c1")
    try:
        assert log.record_feedback("c1", 42.0)
        assert log.sold_suggestions().empty
    finally:
        log.close()

"""Units of the serving layer: request schemas, config limits, ECS log lines, the body limit and the log store."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from pricewise.config import ServeConfig
from pricewise.serving.batching import BatcherStoppedError, MicroBatcher
from pricewise.serving.limits import check_listings, patch_openapi
from pricewise.serving.middleware import BodySizeLimit
from pricewise.serving.observability import EcsJsonFormatter
from pricewise.serving.routes import admin_token
from pricewise.serving.schemas import FeedbackRequest, Listing
from pricewise.settings import Settings
from pricewise.store.prediction_log import LoggedSuggestion, PredictionLog

LISTING: dict[str, Any] = {"name": "Blue dress", "item_condition_id": 3, "shipping": 0}


def test_listing_accepts_minimal_and_unicode_fields() -> None:
    listing = Listing.model_validate({**LISTING, "item_description": "très belle robe 👗\nline two"})
    assert listing.brand_name is None
    assert listing.item_description is not None
    assert listing.item_description.endswith("line two")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"item_condition_id": 6}, "item_condition_id"),
        ({"item_condition_id": True}, "item_condition_id"),
        ({"shipping": "1"}, "shipping"),
        ({"name": ""}, "name"),
        ({"name": "a\x1bb"}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_listing_rejects_bad_fields_by_name(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Listing.model_validate({**LISTING, **override})
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_feedback_needs_a_price() -> None:
    with pytest.raises(ValidationError, match="chosen_price, sold_price or both"):
        FeedbackRequest.model_validate({"request_id": "abc123"})
    assert FeedbackRequest.model_validate({"request_id": "abc123", "sold_price": 0}).sold_price == 0


def test_config_limits_name_every_failing_field() -> None:
    serve = ServeConfig(max_name_chars=5, max_description_chars=10, max_batch=2)
    long_one = Listing.model_validate({**LISTING, "item_description": "x" * 11})
    with pytest.raises(RequestValidationError) as caught:
        check_listings([long_one, long_one, long_one], serve, batch=True)
    locations = [tuple(e["loc"]) for e in caught.value.errors()]
    assert ("body", "listings") in locations
    assert ("body", "listings", 0, "name") in locations
    assert ("body", "listings", 2, "item_description") in locations
    check_listings([Listing.model_validate({**LISTING, "name": "short"})], serve, batch=False)


def test_openapi_shows_configured_limits() -> None:
    schema = {
        "components": {
            "schemas": {
                "Listing": {
                    "properties": {
                        "name": {"type": "string", "maxLength": 1000},
                        "item_description": {"anyOf": [{"type": "string", "maxLength": 9}, {"type": "null"}]},
                    }
                },
                "BatchRequest": {"properties": {"listings": {"maxItems": 1000}}},
            }
        }
    }
    patched = patch_openapi(schema, ServeConfig(max_name_chars=50, max_description_chars=70, max_batch=7))
    props = patched["components"]["schemas"]["Listing"]["properties"]
    assert props["name"]["maxLength"] == 50
    assert props["item_description"]["anyOf"][0]["maxLength"] == 70
    assert patched["components"]["schemas"]["BatchRequest"]["properties"]["listings"]["maxItems"] == 7


def test_ecs_formatter_emits_one_json_object_with_ecs_names() -> None:
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "WARNING", "msg": "slow %s", "args": ("call",), "trace.id": "t1"}
    )
    line = EcsJsonFormatter().format(record)
    document = json.loads(line)
    assert "\n" not in line
    assert document["message"] == "slow call"
    assert document["log.level"] == "warning"
    assert document["trace.id"] == "t1"
    assert document["@timestamp"].endswith("+00:00")


def _run_limit(body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen["body"] = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": headers}
    asyncio.run(BodySizeLimit(app, max_bytes=10)(scope, receive, send))
    return int(sent[0]["status"]), seen.get("body", b"")


def test_body_limit_passes_small_bodies_whole_and_stops_large_ones() -> None:
    assert _run_limit([b"12345", b"678"], []) == (200, b"12345678")
    assert _run_limit([b"123456", b"789012"], [])[0] == 413
    assert _run_limit([b"1"], [(b"content-length", b"11")])[0] == 413
    assert _run_limit([b"1"], [(b"content-length", b"x")])[0] == 400


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


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("  ", None), ("s3cret", "s3cret")]
)
def test_a_blank_admin_token_turns_admin_off(value: str | None, expected: str | None) -> None:
    assert admin_token(Settings(admin_token=value)) == expected


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


def test_micro_batcher_groups_waiting_items_and_keeps_order() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def double(items: list[int]) -> list[int]:
        gate.wait(5)
        calls.append(items)
        return [2 * i for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch=100, name="test")
    batcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(batcher.submit, i) for i in range(8)]
            time.sleep(0.2)  # all eight queue up behind the first call, which waits on the gate
            gate.set()
            results = [f.result(timeout=5) for f in futures]
    finally:
        batcher.stop()
    assert results == [2 * i for i in range(8)]
    assert sum(len(c) for c in calls) == 8
    assert len(calls) < 8, "waiting items were processed together"


def test_micro_batcher_hands_a_failure_to_every_item_of_the_call() -> None:
    def broken(items: list[int]) -> list[int]:
        raise ValueError("model exploded")

    batcher: MicroBatcher[int, int] = MicroBatcher(broken, max_batch=10, name="test")
    with pytest.raises(BatcherStoppedError):
        batcher.submit(1)
    batcher.start()
    try:
        with pytest.raises(ValueError, match="model exploded"):
            batcher.submit(1)
    finally:
        batcher.stop()

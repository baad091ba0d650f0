"""The suggestion API on a real uvicorn server: request bodies streamed over a socket, the access log the server
writes, and a soak of concurrent clients.

Everything that needs no separate process (each route's contract: fields, ranges, limits, 4xx naming the field,
admin, docs) is tested in-process in tests/unit/serving/; what stays here needs a real server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.servers import LISTING, Server

pytestmark = pytest.mark.integration


def test_a_body_streamed_in_chunks_over_the_limit_gets_413_and_the_connection_serves_on(
    server: Server,
) -> None:
    # In-process, the test client hands the app the whole body in one message; only a real server delivers
    # a chunked upload piece by piece, so only here is the limit checked while the body is still arriving.
    huge = json.dumps({**LISTING, "item_description": "x" * 1_100_000}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    with server.client() as client:
        declared = client.post("/v1/suggestions", content=huge, headers={"content-type": "application/json"})
        streamed = client.post(
            "/v1/suggestions", content=chunks(), headers={"content-type": "application/json"}
        )
        still_fine = client.post("/v1/suggestions", json=LISTING)
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert still_fine.status_code == 200


def access_lines(server: Server, trace: str, wait_seconds: float = 10.0) -> list[dict[str, Any]]:
    """The server's JSON log lines carrying a trace id; the access line is written once the response is sent, so
    it may land a moment after the client has its answer."""
    deadline = time.monotonic() + wait_seconds
    while True:
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        assert lines, "no JSON log lines"
        found = [line for line in lines if line.get("trace.id") == trace]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_server_logs_are_ecs_json_lines(server: Server) -> None:
    trace = uuid.uuid4().hex
    with server.client() as client:
        response = client.post(
            "/v1/suggestions", json=LISTING, headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"}
        )
    assert response.headers["x-trace-id"] == trace
    access = access_lines(server, trace)
    assert access, "the W3C trace id is carried into the access log"
    entry = access[-1]
    assert {"@timestamp", "log.level", "message", "event.duration", "ecs.version"} <= entry.keys()
    assert entry["log.logger"] == "pricewise.serving.access"
    assert entry["url.path"] == "/v1/suggestions"
    assert entry["http.response.status_code"] == 200
    assert entry["event.duration"] > 0


def test_soak_of_thousands_of_requests_without_errors(server: Server) -> None:
    total, concurrency = 2000, 8
    log = server.prediction_log()
    before = log.count()

    def worker(n: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for i in range(n):
                listing = {**LISTING, "name": f"{LISTING['name']} #{i}", "item_condition_id": 1 + i % 5}
                statuses.append(client.post("/v1/suggestions", json=listing).status_code)
        return statuses

    with ThreadPoolExecutor(concurrency) as pool:
        statuses = [s for chunk in pool.map(worker, [total // concurrency] * concurrency) for s in chunk]
    try:
        assert statuses.count(200) == total, {s: statuses.count(s) for s in set(statuses)}
        assert log.count() - before == total
    finally:
        log.close()

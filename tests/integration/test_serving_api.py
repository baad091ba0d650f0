"""The suggestion API on a real uvicorn server: request bodies streamed over a socket, slow and idle connections on
raw sockets, the access log the server writes, and a soak of concurrent clients.

Everything that needs no separate process (each route's contract: fields, ranges, limits, 4xx naming the field,
admin, docs) is tested in-process in tests/unit/serving/; what stays here needs a real server.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml

from tests.support.servers import LISTING, Server, start_server
from tests.support.workspaces import Workspace, clone_workspace

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


@pytest.fixture(scope="module")
def strict_server(
    light_champion_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server whose connection limits are short enough to watch: 1 s idle, 1 s for a head, 2 s for a body,
    4 KiB heads."""
    root = tmp_path_factory.mktemp("strict")
    ws = clone_workspace(light_champion_workspace, root / "ws")
    raw = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    raw["serve"].update(
        {
            "keep_alive_seconds": 1,
            "header_timeout_seconds": 1,
            "body_timeout_seconds": 2,
            "max_header_bytes": 4096,
        }
    )
    config_path = root / "strict.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    running = start_server(Workspace(ws.settings, config_path), root)
    yield running
    running.stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(connection: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def _metric_value(server: Server, series: str) -> float:
    with server.client() as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
    return 0.0


def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive_time(strict_server: Server) -> None:
    with _connect(strict_server) as connection:
        received, waited = _read_all(connection)
    assert received == b""
    assert 0.8 < waited < 5, "closed after keep_alive_seconds (1 s), not left open"


def test_a_request_head_sent_too_slowly_gets_408_and_is_closed(strict_server: Server) -> None:
    with _connect(strict_server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: pricewise\r\n")  # and never the blank line
        received, waited = _read_all(connection)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert 0.8 < waited < 5


def test_a_request_head_trickled_byte_by_byte_is_cut_off(strict_server: Server) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: pricewise\r\nX-Slow: " + b"a" * 200
    with _connect(strict_server) as connection:
        started = time.monotonic()
        sent = 0
        try:
            for byte in head:
                connection.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except OSError:
            pass  # the server closed the connection while bytes were still coming
        received, _ = _read_all(connection)
    assert sent < len(head), "the server did not wait for the whole trickle"
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert time.monotonic() - started < 5


def test_a_request_head_over_the_limit_gets_431(strict_server: Server) -> None:
    with _connect(strict_server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: pricewise\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        received, _ = _read_all(connection)
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]


def test_a_body_that_does_not_arrive_in_time_gets_408_with_the_reason(strict_server: Server) -> None:
    before = _metric_value(
        strict_server, 'pricewise_http_requests_total{method="POST",route="unmatched",status="408"}'
    )
    with _connect(strict_server) as connection:
        connection.sendall(
            b"POST /v1/suggestions HTTP/1.1\r\nHost: pricewise\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n\r\n" + b'{"name": "Nike'
        )
        received, waited = _read_all(connection)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received[:300]
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": "request body not received within 2 s"}
    assert 1.8 < waited < 6
    after = _metric_value(
        strict_server, 'pricewise_http_requests_total{method="POST",route="unmatched",status="408"}'
    )
    assert after == before + 1


def test_a_client_that_gives_up_mid_upload_is_counted_as_499_not_as_a_server_error(
    strict_server: Server,
) -> None:
    aborted = 'pricewise_http_errors_total{kind="client_closed",route="unmatched"}'
    server_errors = 'pricewise_http_errors_total{kind="5xx",route="unmatched"}'
    before_aborted = _metric_value(strict_server, aborted)
    before_errors = _metric_value(strict_server, server_errors)
    trace = uuid.uuid4().hex
    with _connect(strict_server) as connection:
        connection.sendall(
            b"POST /v1/suggestions HTTP/1.1\r\nHost: pricewise\r\nContent-Type: application/json\r\n"
            + f"traceparent: 00-{trace}-b7ad6b7169203331-01\r\n".encode()
            + b"Content-Length: 500\r\n\r\n"
            + b'{"name": "Nike'
        )
        time.sleep(0.3)
    entry = access_lines(strict_server, trace)[-1]
    assert entry["http.response.status_code"] == 499
    assert "client closed" in entry["event.reason"]
    assert _metric_value(strict_server, aborted) == before_aborted + 1
    assert _metric_value(strict_server, server_errors) == before_errors
    with strict_server.client() as client:
        assert client.post("/v1/suggestions", json=LISTING).status_code == 200, "the server serves on"

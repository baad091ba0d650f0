"""URIs, error texts and log records in; the same text with every secret masked, and log lines without them out;
and a tracking URI with credentials that still reaches its server."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from pricewise.errors import PricewiseError
from pricewise.logs import RedactingFormatter, redact, writes_json
from pricewise.serving.observability import EcsJsonFormatter
from pricewise.settings import Settings
from pricewise.store import tracking

MASKED = [
    ("http://user:secret@mlflow.internal:5000", "http://user:***@mlflow.internal:5000"),
    ("postgresql+psycopg://app:s3cr%40t@db/pricewise", "postgresql+psycopg://app:***@db/pricewise"),
    ("https://u:p@ss@host/api", "https://u:***@host/api"),
    ("https://ghp_abc123@github.com/x.git", "https://***@github.com/x.git"),
    (
        "cannot reach http://user:secret@h:1 (refused); and postgresql://a:b@c/d too",
        "cannot reach http://user:***@h:1 (refused); and postgresql://a:***@c/d too",
    ),
    ("s3://bucket/model?X-Amz-Signature=abc&region=eu", "s3://bucket/model?X-Amz-Signature=***&region=eu"),
    ("https://h/x?token=t0k3n", "https://h/x?token=***"),
    ("postgresql://db/x?user=a&password=hunter2", "postgresql://db/x?user=a&password=***"),
]
UNCHANGED = [
    "models:/pricewise@champion",
    "models:/pricewise/3",
    "sqlite:////srv/pricewise/predictions.db",
    "http://127.0.0.1:5000",
    "https://host/path@v2/x",
    "write to me@example.com",
    "RMSLE 0.52, coverage 0.80",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_secrets_in_uris_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def _record_with_error(message: str, *args: object) -> logging.LogRecord:
    try:
        raise PricewiseError("cannot reach the MLflow tracking server at http://user:secret@h:5000")  # noqa: TRY301 - a record with a real traceback
    except PricewiseError as exc:
        error = (type(exc), exc, exc.__traceback__)
    return logging.LogRecord("x", logging.WARNING, __file__, 1, message, args, error)


def test_log_lines_of_both_formatters_carry_no_secret() -> None:
    record = _record_with_error("champion unavailable (%s)", "http://user:secret@h:5000")
    record.__dict__["url.full"] = "postgresql://app:secret@db/log"
    plain = RedactingFormatter("%(levelname)s %(message)s").format(record)
    ecs = json.loads(EcsJsonFormatter().format(record))
    assert "secret" not in plain
    assert "http://user:***@h:5000" in plain
    assert "secret" not in json.dumps(ecs)
    assert ecs["message"] == "champion unavailable (http://user:***@h:5000)"
    assert ecs["url.full"] == "postgresql://app:***@db/log"
    assert "user:***@h:5000" in ecs["error.message"]
    assert "Traceback" in ecs["error.stack_trace"]


class _Auth(BaseHTTPRequestHandler):
    """/health answers 200 only with the Basic credentials user:s3cret (an MLflow server behind auth)."""

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(b"user:s3cret").decode()
        ok = self.path == "/health" and self.headers.get("Authorization") == expected
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def guarded_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Auth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_tracking_uri_with_credentials_reaches_its_server_and_errors_hide_them(
    guarded_server: str, tmp_path: Path
) -> None:
    good = Settings(data_dir=tmp_path, mlflow_tracking_uri=f"http://user:s3cret@{guarded_server}")
    assert tracking.configure(good) == f"http://user:s3cret@{guarded_server}"
    wrong = Settings(data_dir=tmp_path, mlflow_tracking_uri=f"http://user:wrong-s3cret@{guarded_server}")
    with pytest.raises(PricewiseError) as refused:
        tracking.configure(wrong)
    assert "s3cret" not in str(refused.value)
    assert f"http://user:***@{guarded_server}" in str(refused.value)


def test_json_lines_are_recognised_by_what_a_handler_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = logging.StreamHandler()
    plain.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ecs = logging.StreamHandler()
    ecs.setFormatter(EcsJsonFormatter())
    root = logging.getLogger()

    monkeypatch.setattr(root, "handlers", [plain])
    assert not writes_json()
    monkeypatch.setattr(root, "handlers", [plain, ecs])
    assert writes_json()
    monkeypatch.setattr(root, "handlers", [])
    assert not writes_json()

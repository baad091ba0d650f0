"""Steps of a stage in, progress lines out (on a terminal, as log records otherwise, never between JSON lines);
the CLI's switches for the libraries' bars and warnings; and "serving on" said only once /ready answers."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from typer.testing import CliRunner

from pricewise import progress
from pricewise.cli import app
from pricewise.logs import RedactingFormatter
from pricewise.progress import Progress
from pricewise.serving import server
from pricewise.serving.observability import EcsJsonFormatter
from pricewise.serving.server import Readiness

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTerminal(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_level_caches() -> Iterator[None]:
    """Loggers remember whether a level is on until a level is set with `setLevel`; the tests here set the root's
    level as an attribute (restored afterwards), so each starts from cleared caches and leaves them cleared."""
    root = logging.getLogger()
    root.setLevel(root.level)
    yield
    root.setLevel(root.level)


@pytest.fixture
def root_writes(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The root logger with one handler of plain lines (what `logs.configure` installs) writing here."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    return sink


def test_lines_count_steps_with_elapsed_time_and_the_time_left() -> None:
    clock = FakeClock()
    stage = Progress("train", total=5, unit="components", stream=FakeTerminal(False), clock=clock)

    assert stage.line("features") == "train: 0/5 components, features ... 0s elapsed"
    clock.now += 190
    stage.done = 2
    # 95 s per component so far, three to go.
    assert stage.line("mlp 1 of 2") == "train: 2/5 components, mlp 1 of 2 ... 3m10s elapsed, about 5m left"
    assert stage.seconds_left() == pytest.approx(285)
    stage.done = 4
    assert stage.line("lgbm").endswith("3m10s elapsed, under a minute left")
    stage.done = 5
    assert stage.line() == "train: 5/5 components ... 3m10s elapsed"
    assert Progress("monitor", stream=FakeTerminal(False), clock=clock).line("drift") == (
        "monitor: drift ... 0s elapsed"
    )
    assert [progress.format_seconds(s) for s in (0, 59.6, 61, 3725)] == ["0s", "1m00s", "1m01s", "1h02m"]


def test_a_part_of_a_stage_shows_the_stages_elapsed_time_and_estimates_from_its_own_steps() -> None:
    clock = FakeClock()
    stage = Progress("train", stream=FakeTerminal(False), clock=clock)
    clock.now += 120  # the baseline and the data took two minutes
    part = stage.part(total=4, unit="components")
    clock.now += 30
    part.done = 1

    assert part.line("mlp 1 of 2") == "train: 1/4 components, mlp 1 of 2 ... 2m30s elapsed, about 2m left"


def test_on_a_terminal_with_plain_logs_lines_go_to_the_terminal_not_to_the_log(
    root_writes: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A colour terminal, whatever the environment running the tests says.
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    terminal = FakeTerminal(True)
    stage = Progress("monitor", total=4, stream=terminal, clock=FakeClock())

    stage.step("load", done=0)
    stage.finish()

    drawn = terminal.getvalue()
    assert ANSI.sub("", drawn).splitlines() == [
        "monitor: 0/4 steps, load ... 0s elapsed",
        "monitor: done in 0s",
    ]
    assert drawn != ANSI.sub("", drawn)  # styled for the terminal
    assert root_writes.getvalue() == ""


def test_off_a_terminal_lines_are_info_records_of_the_existing_logging(root_writes: io.StringIO) -> None:
    terminal = FakeTerminal(False)
    stage = Progress("monitor", total=4, stream=terminal, clock=FakeClock())

    stage.step("load", done=0)

    assert terminal.getvalue() == ""
    assert root_writes.getvalue() == "INFO pricewise.progress: monitor: 0/4 steps, load ... 0s elapsed\n"


def test_with_json_logs_nothing_is_drawn_on_the_terminal_and_each_line_is_a_json_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(EcsJsonFormatter())
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    terminal = FakeTerminal(True)

    Progress("tune", total=3, unit="trials", stream=terminal, clock=FakeClock()).step("")

    assert terminal.getvalue() == ""
    record = json.loads(sink.getvalue())
    assert record["message"] == "tune: 0/3 trials ... 0s elapsed"
    assert record["log.level"] == "info"


def test_advance_reports_a_chunk_at_most_every_interval_and_always_the_last(root_writes: io.StringIO) -> None:
    clock = FakeClock()
    rows = Progress(
        "predict", total=400, unit="rows", stream=FakeTerminal(False), clock=clock, min_interval=5
    )

    for _ in range(4):
        rows.advance(100)
        clock.now += 3

    lines = root_writes.getvalue().splitlines()
    # Chunks end at 0, 3, 6 and 9 s: the one at 3 s is too soon after the first, the last is always told.
    assert [line.split(" ... ")[0] for line in lines] == [
        "INFO pricewise.progress: predict: 100/400 rows",
        "INFO pricewise.progress: predict: 300/400 rows",
        "INFO pricewise.progress: predict: 400/400 rows",
    ]


@pytest.fixture
def switches_unset(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    """MLflow's switches unset and its pyfunc logger without filters, restored after the test."""
    monkeypatch.delenv(progress.MLFLOW_PROGRESS_BAR, raising=False)
    monkeypatch.delenv(progress.MLFLOW_CONFIGURE_LOGGING, raising=False)
    pyfunc = logging.getLogger("mlflow.pyfunc")
    monkeypatch.setattr(pyfunc, "filters", [])
    return pyfunc


@pytest.mark.usefixtures("switches_unset")
def test_the_cli_turns_off_mlflows_download_bars_and_own_log_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()  # the CLI configures logging: restored after the test
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    with warnings.catch_warnings():  # the CLI's warning filters stay inside this test
        result = CliRunner().invoke(app, ["data", "--help"])

    assert result.exit_code == 0, result.output
    assert os.environ[progress.MLFLOW_PROGRESS_BAR] == "false"
    assert os.environ[progress.MLFLOW_CONFIGURE_LOGGING] == "false"


def test_alembics_start_up_lines_are_quiet_but_its_warnings_show(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    alembic = logging.getLogger("alembic")
    monkeypatch.setattr(alembic, "level", logging.NOTSET)
    with warnings.catch_warnings():
        progress.quiet_libraries()
    migration = logging.getLogger("alembic.runtime.migration")

    with caplog.at_level(logging.INFO):
        migration.info("Context impl SQLiteImpl.")
        migration.warning("a migration is missing")

    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == [
        "a migration is missing"
    ]


@pytest.mark.usefixtures("switches_unset")
def test_the_bar_switch_set_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.MLFLOW_PROGRESS_BAR, "true")
    with warnings.catch_warnings():
        progress.quiet_libraries()

    assert os.environ[progress.MLFLOW_PROGRESS_BAR] == "true"


@pytest.mark.usefixtures("switches_unset")
def test_only_the_named_library_warnings_are_hidden() -> None:
    frame = pd.DataFrame({"name": ["a", "b"], "price": [1.0, 2.0]})
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        progress.quiet_libraries()
        from_pandas(frame, source="/tmp/warehouse.duckdb", name="train", targets="price")
        infer_signature(pd.DataFrame({"item_condition_id": [1, 3]}))
        warnings.warn(
            "The specified dataset source can be interpreted in multiple ways", UserWarning, stacklevel=1
        )
        warnings.warn("something else", UserWarning, stacklevel=1)

    messages = [str(w.message) for w in shown]
    # MLflow's own warning is gone; the same text from another module, and any other warning, still show.
    assert not any(w.filename.endswith("dataset_source_registry.py") for w in shown)
    assert not any(m.startswith("Hint: Inferred schema contains integer") for m in messages)
    assert "The specified dataset source can be interpreted in multiple ways" in messages
    assert "something else" in messages


def test_only_mlflows_pickle_notice_is_dropped_from_its_log(
    switches_unset: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    progress.quiet_libraries()
    progress.quiet_libraries()  # a second entry point in the same process adds nothing
    with caplog.at_level(logging.WARNING):
        switches_unset.warning("Passing a Python object as `python_model` causes it to be serialized ...")
        switches_unset.warning("Model dependencies mismatch")

    assert [r.getMessage() for r in caplog.records] == ["Model dependencies mismatch"]
    assert len(switches_unset.filters) == 1


def test_serving_on_is_said_only_after_ready_answers_200() -> None:
    answers = iter(
        [Readiness(None), Readiness(None), Readiness(503, "no model loaded"), Readiness(503), Readiness(200)]
    )
    asked: list[Readiness] = []
    said: list[tuple[str, int]] = []

    def probe() -> Readiness:
        asked.append(next(answers))
        return asked[-1]

    ready = server.watch_readiness(
        probe, lambda line: said.append((line, len(asked))), "http://127.0.0.1:8000", threading.Event(), 0
    )

    assert ready
    assert said == [
        ("http://127.0.0.1:8000 answers but is not ready yet: no model loaded", 3),
        ("serving on http://127.0.0.1:8000", 5),
    ]


def test_a_server_stopped_before_it_was_ready_is_never_announced() -> None:
    stop = threading.Event()
    said: list[str] = []

    def probe() -> Readiness:
        stop.set()  # the server stops while nothing answers
        return Readiness(None)

    assert not server.watch_readiness(probe, said.append, "http://127.0.0.1:8000", stop, 0)
    assert said == []


class _ReadyAfterTwo(BaseHTTPRequestHandler):
    """/ready answers 503 with a reason twice, then 200."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        ready = type(self).calls > 2
        body = json.dumps(
            {"status": "ready" if ready else "not ready", "detail": None if ready else "loading"}
        )
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_probe_reads_status_and_reason_of_a_real_ready_route() -> None:
    httpd = HTTPServer(("127.0.0.1", 0), _ReadyAfterTwo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        said: list[str] = []
        assert server.watch_readiness(
            lambda: server.probe_ready(url), said.append, url, threading.Event(), 0.01
        )
    finally:
        httpd.shutdown()
        httpd.server_close()

    assert said == [f"{url} answers but is not ready yet: loading", f"serving on {url}"]
    assert server.probe_ready(url, timeout=0.5) == Readiness(None)  # nothing listens any more
    assert server.base_url("::", 8000) == "http://[::]:8000"


def test_a_chunked_stage_gets_one_function_to_call_per_chunk(root_writes: io.StringIO) -> None:
    report = progress.per_chunk("predict", total_rows=250)

    for rows in (100, 100, 50):
        report(rows)

    heads = [line.split(" ... ")[0] for line in root_writes.getvalue().splitlines()]
    # The second chunk comes within the interval of the first; the last one is always told.
    assert heads == [
        "INFO pricewise.progress: predict: 100/250 rows",
        "INFO pricewise.progress: predict: 250/250 rows",
    ]

"""`monitor.run` on a real warehouse, prediction log, MLflow store and decision store (no champion yet, so no
model is trained): empty, compared and failed runs, each recorded as a decisions.MonitoringRun."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pricewise import monitor
from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from pricewise.monitoring import drift, figures
from pricewise.monitoring.windows import ComparedWindow, prediction_log
from pricewise.settings import Settings
from pricewise.store import decisions
from tests.support.logged import log_suggestions, small_workspace
from tests.support.workspaces import Workspace

SOLD_AT = 40.0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """400 validated listings; 100 logged suggestions at 12, 60 of them sold at 40 (far above any training price)."""
    ws = small_workspace(tmp_path_factory.mktemp("monitor"))
    log_suggestions(ws.settings, range(1000, 1100), sold={i: [SOLD_AT] for i in range(1000, 1060)})
    return ws


def config_of(ws: Workspace) -> Config:
    return load_config(ws.config_path)


def recorded(settings: Settings, run_id: str) -> decisions.MonitoringRun:
    store = decisions.open_store(settings)
    try:
        row = store.monitoring_run(run_id)
    finally:
        store.close()
    assert row is not None, f"run {run_id} was not recorded"
    return row


def test_an_empty_window_has_nothing_to_compare_and_is_recorded(workspace: Workspace) -> None:
    window = ComparedWindow(
        "predictions", start=datetime(2000, 1, 1, tzinfo=UTC), end=datetime(2000, 1, 2, tzinfo=UTC)
    )

    result = monitor.run(config_of(workspace), workspace.settings, window)

    assert result.status == "empty"
    assert result.message.startswith("nothing to compare: 0 rows in suggestions logged from 2000-01-01")
    assert result.reference_rows > 0
    row = recorded(workspace.settings, result.run_id)
    assert (row.status, row.current_rows, row.window_kind) == ("empty", 0, "predictions")
    assert row.window_start == window.start
    assert row == result.as_row()
    summary = json.loads(Path(str(result.report_json)).read_text(encoding="utf-8"))
    assert summary["run"]["status"] == "empty"


def test_sold_prices_far_above_the_training_prices_are_target_drift(workspace: Workspace) -> None:
    result = monitor.run(config_of(workspace), workspace.settings, ComparedWindow.last_hours(1))

    assert result.status == "drift"
    assert result.target_drift is True
    assert result.prediction_drift is None, "no champion: nothing scores the reference"
    assert (result.current_rows, result.compared_rows, result.feedback_rows) == (100, 100, 60)
    assert result.model_version is None
    assert result.rmsle == pytest.approx(abs(math.log1p(12.0) - math.log1p(SOLD_AT)))
    assert result.coverage == 0.0, "40 is outside [8, 18]"
    assert "drifted:" in result.message
    assert "target" in result.message
    assert f"RMSLE {result.rmsle:.4f}" in result.message
    assert result.drift_share is not None
    assert 0.0 <= result.drift_share <= 1.0
    assert Path(str(result.report_html)).is_file()
    report = json.loads(Path(str(result.report_json)).read_text(encoding="utf-8"))
    assert report["run"]["run_id"] == result.run_id
    assert report["run"]["drifted_columns"] == list(result.drifted_columns)
    assert recorded(workspace.settings, result.run_id) == result.as_row()


def test_the_runs_accuracy_is_the_figure_the_page_computes_from_the_log(workspace: Workspace) -> None:
    result = monitor.run(config_of(workspace), workspace.settings, ComparedWindow("predictions"))
    log = prediction_log(workspace.settings)
    try:
        page = figures.accuracy(log.sold_suggestions(with_inputs=False))
    finally:
        log.close()
    assert (result.feedback_rows, result.rmsle, result.coverage) == (page.sold, page.rmsle, page.coverage)


def test_the_result_is_frozen(workspace: Workspace) -> None:
    result = monitor.MonitorResult("r", datetime.now(UTC), ComparedWindow.last_hours(1), "ok", "fine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "drift"  # type: ignore[misc]


def test_no_warehouse_is_an_error_recorded_as_such(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    with pytest.raises(PricewiseError, match="no warehouse at"):
        monitor.run(Config(), settings, ComparedWindow.last_hours(1))
    store = decisions.open_store(settings)
    try:
        [run] = store.monitoring_runs()
    finally:
        store.close()
    assert run.status == "error"
    assert "no warehouse at" in run.message


def test_an_unwritable_report_directory_fails_clearly_and_is_recorded(
    workspace: Workspace, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    settings = workspace.settings.model_copy(update={"reports_dir": blocker / "reports"})
    with pytest.raises(PricewiseError, match="cannot write monitoring reports") as failure:
        monitor.run(config_of(workspace), settings, ComparedWindow.last_hours(1))
    store = decisions.open_store(settings)
    try:
        latest = store.monitoring_runs(limit=1)[0]
    finally:
        store.close()
    assert (latest.status, latest.message) == ("error", str(failure.value))


def test_an_evidently_failure_is_recorded_and_reported_clearly(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> drift.DriftReport:
        raise ValueError("Evidently could not compute drift")

    monkeypatch.setattr(drift, "evidently_report", broken)
    with pytest.raises(
        PricewiseError, match="monitoring failed: ValueError: Evidently could not compute drift"
    ):
        monitor.run(config_of(workspace), workspace.settings, ComparedWindow.last_hours(1))
    store = decisions.open_store(workspace.settings)
    try:
        latest = store.monitoring_runs(limit=1)[0]
    finally:
        store.close()
    assert latest.status == "error"
    assert "Evidently could not compute drift" in latest.message


def test_a_run_that_cannot_be_recorded_says_why_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: the decision tables are unreachable, and the run's own error is what is reported.
    unreachable = "postgresql://pricewise:hunter2@127.0.0.1:1/pricewise"
    settings = Settings(data_dir=tmp_path / "data", decisions_url=unreachable)
    failed = monitor.MonitorResult("r1", datetime.now(UTC), ComparedWindow("predictions"), "error", "no rows")
    with caplog.at_level("WARNING", logger="pricewise"):
        monitor._record_quietly(settings, failed)
    [said] = [r for r in caplog.records if "could not record failed monitoring run r1" in r.getMessage()]
    assert said.exc_info is None, "a traceback was logged"
    assert "cannot open" in said.getMessage()
    assert "127.0.0.1:1" in said.getMessage()
    assert "hunter2" not in caplog.text

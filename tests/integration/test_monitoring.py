"""`pricewise monitor` and `pricewise retrain` on a real warehouse, MLflow store, prediction log and server.

The drift scenario runs end to end: a real server suggests prices for the unpriced sample, sold prices come back
through the feedback API with one top-level category 40% dearer, monitoring detects the drift, and retraining
runs and records the gate's decision with its reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner, Result

from pricewise.cli import app
from pricewise.monitoring import drift
from pricewise.settings import Settings
from tests.support.servers import Server, start_server
from tests.support.workspaces import TEST_SAMPLE, Workspace, clone_workspace, light_config_text

SHIFTED_CATEGORY = "Women"
SHIFT = 1.4
OUTCOMES_TOKEN = "drift-scenario-outcomes-token"
FIELDS = ["name", "brand_name", "category_name", "item_condition_id", "shipping", "item_description"]


def run_cli(ws: Workspace, *args: str, **env: str) -> Result:
    environment = {
        "PRICEWISE_DATA_DIR": str(ws.settings.data_dir),
        "PRICEWISE_CONFIG_PATH": str(ws.config_path),
        **env,
    }
    return CliRunner().invoke(app, list(args), env=environment, catch_exceptions=False)


def rows(ws: Workspace, sql: str) -> list[tuple[object, ...]]:
    """Rows of the decision tables (promotions, monitoring_runs, retrain_decisions), read from their SQLite file."""
    path = ws.settings.data_dir / "decisions.db"
    assert path.is_file(), f"no decision tables at {path}"
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def last_json(result: Result) -> dict[str, object]:
    """The JSON summary: the last line of stdout (MLflow's own messages go to stderr)."""
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def workspace(light_champion_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A promoted workspace of this module's own: monitoring records runs and retraining adds model versions."""
    return clone_workspace(light_champion_workspace, tmp_path_factory.mktemp("monitoring"))


@pytest.fixture(scope="module")
def server(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(workspace, tmp_path_factory.mktemp("monitoring-server"))
    yield running
    running.stop()


def test_an_empty_window_has_nothing_to_compare_and_is_recorded(workspace: Workspace) -> None:
    result = run_cli(
        workspace, "monitor", "--since", "2000-01-01T00:00:00", "--until", "2000-01-02T00:00:00", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["status"] == "empty"
    assert "nothing to compare" in str(summary["message"])
    recorded = rows(
        workspace, f"SELECT status, current_rows FROM monitoring_runs WHERE run_id = '{summary['run_id']}'"
    )
    assert recorded == [("empty", 0)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "not an ISO 8601 time"),
        (["--since", "2026-01-02", "--until", "2026-01-01"], "is not before"),
        (["--batch", "b1", "--last-hours", "2"], "does not combine"),
        (["--last-hours", "2", "--since", "2026-01-01"], "either --last-hours or --since"),
        (["--batch", "no-such-batch"], "no batch 'no-such-batch'"),
    ],
)
def test_bad_monitor_arguments_get_a_clear_error(workspace: Workspace, args: list[str], message: str) -> None:
    result = run_cli(workspace, "monitor", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_reference_with_no_rows_is_an_error_recorded_as_such(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "data", config_path=tmp_path / "c.yaml"), tmp_path / "c.yaml")
    ws.config_path.write_text(light_config_text(), encoding="utf-8")
    assert ws.cli("ingest", str(TEST_SAMPLE)).exit_code == 0  # unpriced listings only: no training data
    assert ws.cli("validate").exit_code == 0
    result = run_cli(ws, "monitor", "--last-hours", "1")
    assert result.exit_code == 2
    assert "the reference has no rows" in result.output
    assert rows(ws, "SELECT status FROM monitoring_runs") == [("error",)]


def test_an_unwritable_report_directory_fails_clearly_and_is_recorded(
    workspace: Workspace, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    before = rows(workspace, "SELECT count(*) FROM monitoring_runs WHERE status = 'error'")[0][0]
    result = run_cli(
        workspace, "monitor", "--last-hours", "1", PRICEWISE_REPORTS_DIR=str(blocker / "reports")
    )
    assert result.exit_code == 2
    assert "cannot write monitoring reports" in result.output
    after = rows(workspace, "SELECT count(*) FROM monitoring_runs WHERE status = 'error'")[0][0]
    assert after == before + 1


def _serve_and_feed_back(server: Server) -> tuple[int, float]:
    """Suggest prices for the unpriced sample through the API; feed back shifted sold prices.

    Sold price: the suggestion times log-normal noise whose spread is the champion's offline RMSLE (a sold
    price is as far from the suggestion as the model's test error says), times SHIFT in SHIFTED_CATEGORY.
    """
    listings = pd.read_csv(TEST_SAMPLE, sep="\t")[FIELDS]
    listings = listings.astype(object).where(listings.notna(), None)
    rng = np.random.default_rng(5)
    client_rows = listings.to_dict(orient="records")
    fed = 0
    shifted = 0
    with server.client() as client:
        for start in range(0, len(client_rows), 100):
            batch = client_rows[start : start + 100]
            response = client.post("/v1/suggestions/batch", json={"listings": batch})
            assert response.status_code == 200, response.text
            outcomes = []
            for listing, suggestion in zip(batch, response.json()["suggestions"], strict=True):
                in_category = str(listing["category_name"] or "").startswith(SHIFTED_CATEGORY + "/")
                sold = (
                    suggestion["price"] * float(np.exp(rng.normal(0, 0.56))) * (SHIFT if in_category else 1.0)
                )
                outcomes.append({"request_id": suggestion["request_id"], "sold_price": round(sold, 2)})
                shifted += in_category
            # Sold prices are labels: they arrive through the outcomes scope, never the open feedback route.
            answer = client.post(
                "/v1/outcomes",
                json={"outcomes": outcomes},
                headers={"Authorization": f"Bearer {OUTCOMES_TOKEN}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["stored"] == len(outcomes)
            fed += len(outcomes)
    return fed, shifted / fed


@pytest.fixture
def drifting(light_champion_workspace: Workspace, tmp_path: Path) -> Iterator[tuple[Workspace, Server]]:
    """A promoted workspace and server of the drift scenario's own: its window holds only its own requests."""
    ws = clone_workspace(light_champion_workspace, tmp_path / "drifting")
    running = start_server(ws, tmp_path, PRICEWISE_OUTCOMES_TOKEN=OUTCOMES_TOKEN)
    yield ws, running
    running.stop()


def test_drift_scenario_monitoring_detects_it_and_retraining_records_the_gate(
    drifting: tuple[Workspace, Server],
) -> None:
    workspace, server = drifting
    fed, shifted_share = _serve_and_feed_back(server)
    assert fed == 2001
    assert shifted_share > 0.3  # the shift touches a large part of the window

    result = run_cli(workspace, "monitor", "--last-hours", "1", "--json")
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["status"] == "drift"
    assert summary["target_drift"] is True
    assert summary["current_rows"] == 2001
    assert summary["feedback_rows"] == 2001
    report_html = Path(str(summary["report_html"]))
    assert report_html.is_file()
    html = report_html.read_text(encoding="utf-8")
    assert "vocabulary_share" in html
    assert "log_price" in html
    assert "<script src=" not in html  # self-contained: opens offline
    report = json.loads(Path(str(summary["report_json"])).read_text(encoding="utf-8"))
    assert report["run"]["run_id"] == summary["run_id"]
    assert any(t["status"] == "FAIL" for t in report["evidently"]["tests"])

    # Sold prices 40% above the suggestions in a large category: the suggestions are too low there.
    assert summary["rmsle"] is not None
    assert float(str(summary["rmsle"])) > 0.5

    decision = run_cli(workspace, "retrain", "--check", "--json")
    assert decision.exit_code == 0, decision.output
    checked = last_json(decision)
    assert checked["due"] is True
    assert {r["rule"] for r in checked["reasons"] if r["triggered"]} >= {"target_drift"}  # type: ignore[union-attr]

    retrained = run_cli(workspace, "retrain", "--if-needed", "--json")
    assert retrained.exit_code == 0, retrained.output
    outcome = last_json(retrained)
    assert outcome["action"] == "trained"
    assert outcome["promotion_action"] in ("promote", "refuse")
    assert outcome["harvested_batch"] is not None
    assert outcome["figures"]["harvested_rows"] == 2001  # type: ignore[index]

    decisions = rows(
        workspace, "SELECT action, due, promotion_action, message FROM retrain_decisions ORDER BY decided_at"
    )
    assert [d[0] for d in decisions][-2:] == ["check", "trained"]
    assert decisions[-1][2] == outcome["promotion_action"]
    assert str(outcome["promotion_reason"]) in str(decisions[-1][3])
    gate = rows(
        workspace, "SELECT action, challenger, reason FROM promotions ORDER BY decided_at DESC LIMIT 1"
    )[0]
    assert gate[0] == outcome["promotion_action"]
    assert gate[1] == outcome["challenger_version"]
    assert gate[2] == outcome["promotion_reason"]

    # Harvesting again finds nothing new: every fed-back suggestion is already in the warehouse.
    again = run_cli(workspace, "data", "harvest-feedback")
    assert again.exit_code == 0, again.output
    assert "no new sold prices" in again.output


def test_an_evidently_failure_is_recorded_and_serving_goes_on(
    workspace: Workspace, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> drift.DriftReport:
        raise ValueError("Evidently could not compute drift")

    monkeypatch.setattr(drift, "evidently_report", broken)
    listing = {"name": "Nike shoes", "item_condition_id": 2, "shipping": 1}
    with server.client() as client:  # enough suggestions in the window (monitor.min_rows) to reach Evidently
        assert client.post("/v1/suggestions/batch", json={"listings": [listing] * 40}).status_code == 200
    result = run_cli(workspace, "monitor", "--last-hours", "1")
    assert result.exit_code == 2
    assert "monitoring failed: ValueError: Evidently could not compute drift" in result.output
    assert rows(workspace, "SELECT status FROM monitoring_runs ORDER BY created_at DESC LIMIT 1") == [
        ("error",)
    ]
    with server.client() as client:
        assert client.get("/ready").status_code == 200
        again = client.post(
            "/v1/suggestions", json={"name": "Nike shoes", "item_condition_id": 2, "shipping": 1}
        )
        assert again.status_code == 200
        assert again.json()["price"] > 0


def test_a_training_failure_in_retrain_leaves_the_champion_and_is_recorded(
    workspace: Workspace, tmp_path: Path
) -> None:
    client = MlflowClient(
        tracking_uri=workspace.settings.tracking_uri, registry_uri=workspace.settings.tracking_uri
    )
    champion = client.get_model_version_by_alias("pricewise", "champion").version
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        light_config_text().replace("min_rows_per_split: 20", "min_rows_per_split: 1000000"), encoding="utf-8"
    )
    result = run_cli(workspace, "retrain", PRICEWISE_CONFIG_PATH=str(failing))
    assert result.exit_code == 2
    assert "failed, the champion is unchanged" in result.output
    assert client.get_model_version_by_alias("pricewise", "champion").version == champion
    last = rows(workspace, "SELECT action, message FROM retrain_decisions ORDER BY decided_at DESC LIMIT 1")[
        0
    ]
    assert last[0] == "failed"
    assert "usable training listings" in str(last[1])


def test_retrain_check_and_if_needed_do_not_combine(workspace: Workspace) -> None:
    result = run_cli(workspace, "retrain", "--check", "--if-needed")
    assert result.exit_code == 2
    assert "does not combine" in result.output


def _policy_config(tmp_path: Path, **policy: object) -> str:
    raw = yaml.safe_load(light_config_text())
    raw["retrain"] = {**raw.get("retrain", {}), **policy}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def test_retrain_if_needed_does_nothing_when_no_rule_triggers(workspace: Workspace, tmp_path: Path) -> None:
    client = MlflowClient(
        tracking_uri=workspace.settings.tracking_uri, registry_uri=workspace.settings.tracking_uri
    )
    versions = len(client.search_model_versions("name='pricewise'"))
    config = _policy_config(
        tmp_path, drift_share=1.0, rmsle_margin=10.0, max_age_days=1000, on_target_drift=False
    )
    result = run_cli(workspace, "retrain", "--if-needed", "--json", PRICEWISE_CONFIG_PATH=config)
    assert result.exit_code == 0, result.output
    outcome = last_json(result)
    assert outcome["due"] is False
    assert outcome["action"] == "none"
    assert len(client.search_model_versions("name='pricewise'")) == versions
    last = rows(workspace, "SELECT action, due FROM retrain_decisions ORDER BY decided_at DESC LIMIT 1")
    assert last == [("none", False)]


def test_an_old_champion_makes_retraining_due(workspace: Workspace, tmp_path: Path) -> None:
    config = _policy_config(
        tmp_path, max_age_days=1e-9, on_target_drift=False, drift_share=1.0, rmsle_margin=10.0
    )
    result = run_cli(workspace, "retrain", "--check", "--json", PRICEWISE_CONFIG_PATH=config)
    assert result.exit_code == 0, result.output
    outcome = last_json(result)
    triggered = [r for r in outcome["reasons"] if r["triggered"]]  # type: ignore[union-attr]
    assert [r["rule"] for r in triggered] == ["age"]
    assert outcome["action"] == "check"

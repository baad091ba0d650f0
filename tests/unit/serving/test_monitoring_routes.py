"""Requests to the in-process app in; the contract of the monitoring overview, the monitoring page and the drift
report route out (a champion, its promotion and the logged traffic are shown, latency gaps stay gaps, figures below
their minimum count are hidden with a note, offline against live RMSLE, error and fallback rates and retraining
decisions come from the stores; unknown reports are 404)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from sqlalchemy import update

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings
from pricewise.store import decisions, tracking
from pricewise.store.decisions import RetrainDecision
from pricewise.store.prediction_log import LoggedSuggestion, Outcome, PredictionLog, default_url
from tests.support.logged import listing, log_suggestions, monitoring_run
from tests.support.servers import LISTING
from tests.support.workspaces import Workspace, clone_workspace

SECTIONS = {
    "champion",
    "promotions",
    "traffic",
    "rates",
    "accuracy",
    "versions",
    "sellers",
    "drift",
    "retrain",
}
LOW_MIN_SOLD = 2  # monitor.min_feedback_rows of the `low_min_client` workspace
LOW_MIN_ROWS = 4  # its monitor.min_rows
STATES = {"ok", "empty", "missing", "busy", "unsupported", "error"}


def overview(client: TestClient) -> dict[str, Any]:
    """GET /v1/monitoring, checked to be a 200."""
    response = client.get("/v1/monitoring")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.contract("GET", "/v1/monitoring")
def test_overview_has_every_section_with_a_state(client: TestClient) -> None:
    body = overview(client)
    assert set(body) == {"generated_at", "min_feedback_rows", *SECTIONS}
    assert datetime.fromisoformat(body["generated_at"]).utcoffset() is not None
    for section in SECTIONS:
        assert body[section]["state"] in STATES, (section, body[section])
        assert {"state", "message"} <= set(body[section])


@pytest.mark.contract("GET", "/v1/monitoring")
def test_overview_names_the_champion_its_promotion_and_the_model_serving(client: TestClient) -> None:
    body = overview(client)
    served = client.get("/v1/model").json()
    champion = body["champion"]
    assert champion["state"] == "ok", champion
    assert (champion["registered_model"], champion["version"], champion["promoted_by"]) == (
        "pricewise",
        "1",
        "first",
    )
    assert champion["run_id"] == served["run_id"]
    assert champion["serving"] == served
    promotions = body["promotions"]
    assert promotions["state"] == "ok", promotions
    assert [row["action"] for row in promotions["rows"]] == ["first"]
    assert promotions["rows"][0]["champion_after"] == "1"


@pytest.fixture
def fresh_client(light_champion_workspace: Workspace, tmp_path: Path) -> Iterator[TestClient]:
    """A running app on its own clone of the workspace: an empty prediction log, and no overview computed yet
    (the app reuses its traffic and accuracy figures for a while)."""
    clone = clone_workspace(light_champion_workspace, tmp_path)
    torch_threads = torch.get_num_threads()
    try:
        with TestClient(create_app(clone.settings, load_config(clone.config_path))) as running:
            yield running
    finally:
        torch.set_num_threads(torch_threads)


@pytest.fixture
def low_min_client(light_champion_workspace: Workspace, tmp_path: Path) -> Iterator[TestClient]:
    """As `fresh_client`, with a config whose monitor section needs LOW_MIN_SOLD sold (or chosen) prices and
    LOW_MIN_ROWS requests, so that tiny data is judged."""
    clone = clone_workspace(light_champion_workspace, tmp_path)
    raw = yaml.safe_load(clone.config_path.read_text(encoding="utf-8"))
    raw.setdefault("monitor", {}).update({"min_feedback_rows": LOW_MIN_SOLD, "min_rows": LOW_MIN_ROWS})
    config_path = tmp_path / "low-min.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    settings = Settings(data_dir=clone.settings.data_dir, config_path=config_path)
    torch_threads = torch.get_num_threads()
    try:
        with TestClient(create_app(settings, load_config(config_path))) as running:
            yield running
    finally:
        torch.set_num_threads(torch_threads)


def app_settings(client: TestClient) -> Settings:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return settings


def offline_rmsle(settings: Settings, version: str) -> float:
    """The test-split RMSLE pricewise v`version`'s MLflow run recorded, read from the registry here."""
    tracking.configure(settings)
    client = MlflowClient()
    run_id = client.get_model_version("pricewise", version).run_id
    return float(client.get_run(str(run_id)).data.metrics["test_rmsle"])


def rmsle(pairs: Sequence[tuple[float, float]]) -> float:
    return math.sqrt(sum((math.log1p(p) - math.log1p(s)) ** 2 for p, s in pairs) / len(pairs))


def backdate(settings: Settings, request_ids: Sequence[str], when: datetime) -> None:
    """Move logged suggestions to another time (the log stamps them with the time they were written)."""
    log = PredictionLog(default_url(settings))
    try:
        with log.engine.begin() as connection:
            p = log.predictions
            connection.execute(update(p).where(p.c.request_id.in_(list(request_ids))).values(created_at=when))
    finally:
        log.close()


@pytest.mark.contract("GET", "/v1/monitoring")
@pytest.mark.contract("GET", "/monitoring")
def test_below_their_minimum_counts_accuracy_sellers_and_rates_are_hidden_with_a_note(
    fresh_client: TestClient,
) -> None:
    batch = fresh_client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 3}).json()["suggestions"]
    sold = fresh_client.post("/v1/suggestions", json=LISTING).json()
    log = fresh_client.app.state.prediction_log  # type: ignore[attr-defined]
    assert log.record_outcomes([Outcome(sold["request_id"], 40.0)], source="api").stored == 1
    chosen = {"request_id": batch[0]["request_id"], "chosen_price": batch[0]["price"]}
    assert fresh_client.post("/v1/feedback", json=chosen).status_code == 200
    monitor = load_config(app_settings(fresh_client).config_path).monitor
    needed = monitor.min_feedback_rows
    assert needed > 1, "the shipped minimum is the one `pricewise monitor` judges accuracy by"
    store = decisions.open_store(app_settings(fresh_client))
    try:
        store.record(
            monitoring_run("one-sold", datetime.now(UTC), feedback_rows=1, rmsle=0.973, coverage=0.0)
        )
    finally:
        store.close()
    body = overview(fresh_client)
    assert body["min_feedback_rows"] == needed
    run = body["drift"]["runs"][0]
    assert (run["feedback_rows"], run["rmsle"], run["coverage"]) == (1, None, None), (
        "a run's one sale hides too"
    )

    traffic = body["traffic"]
    assert traffic["state"] == "ok", traffic
    assert traffic["total_requests"] == len(batch) + 1
    assert sum(bucket["requests"] for bucket in traffic["buckets"]) == traffic["total_requests"]
    for bucket in traffic["buckets"]:
        assert set(bucket) == {"start", "requests", "per_minute", "p50_ms", "p95_ms", "p99_ms"}
        assert 0 <= bucket["p50_ms"] <= bucket["p95_ms"] <= bucket["p99_ms"]
    accuracy = body["accuracy"]
    assert accuracy["state"] == "empty", accuracy
    assert accuracy["message"].startswith(f"needs {needed} sold prices, has 1")
    assert (accuracy["sold"], accuracy["rmsle"], accuracy["coverage"]) == (1, None, None)
    assert accuracy["buckets"] == []
    assert accuracy["by_model"] == []
    sellers = body["sellers"]
    assert sellers["state"] == "empty", sellers
    assert sellers["message"].startswith(f"needs {needed} chosen prices, has 1")
    assert (sellers["answered"], sellers["acceptance_rate"]) == (1, None)
    rates = body["rates"]
    assert rates["state"] == "empty", rates
    assert f"error rates: needs {monitor.min_rows} suggestion requests, has 2" in rates["message"]
    assert f"fallback rate: needs {monitor.min_rows} suggestions, has 4" in rates["message"]
    assert (rates["client_error_rate"], rates["fallback_rate"]) == (None, None)
    versions = {row["model_version"]: row for row in body["versions"]["rows"]}
    assert set(versions) == {"1"}
    assert versions["1"]["champion"] is True
    assert versions["1"]["sold"] == 1
    assert versions["1"]["live_rmsle"] is None
    assert versions["1"]["note"] == f"needs {needed} sold prices, has 1"
    assert versions["1"]["offline_rmsle"] == pytest.approx(offline_rmsle(app_settings(fresh_client), "1"))

    html = fresh_client.get("/monitoring").text
    assert f"needs {needed} sold prices, has 1" in html
    assert f"needs {needed} chosen prices, has 1" in html
    assert 'id="accuracy-rmsle"' not in html, "no RMSLE from one sold price"
    assert 'id="accuracy-chart"' not in html
    assert 'id="sellers-acceptance"' not in html
    assert "0.973" not in html


@pytest.mark.contract("GET", "/v1/monitoring")
@pytest.mark.contract("GET", "/monitoring")
def test_accuracy_and_offline_against_live_rmsle_from_the_configured_minimum(
    low_min_client: TestClient,
) -> None:
    settings = app_settings(low_min_client)
    sold = {0: [10.0], 1: [12.0], 2: [20.0], 3: [11.0]}
    log_suggestions(settings, range(4), price=12.0, sold=sold)
    log_suggestions(settings, [4], price=30.0, sold={4: [25.0]}, model_version="2")
    body = overview(low_min_client)

    accuracy = body["accuracy"]
    assert accuracy["state"] == "ok", accuracy
    assert accuracy["sold"] == 5
    assert accuracy["rmsle"] == pytest.approx(
        rmsle([(12.0, 10.0), (12.0, 12.0), (12.0, 20.0), (12.0, 11.0), (30.0, 25.0)])
    )
    section = body["versions"]
    assert section["state"] == "ok", section
    assert section["min_sold"] == LOW_MIN_SOLD
    margin = load_config(settings.config_path).retrain.rmsle_margin
    assert section["rmsle_margin"] == margin
    rows = {row["model_version"]: row for row in section["rows"]}
    champion = rows["1"]
    offline = offline_rmsle(settings, "1")
    live = rmsle([(12.0, 10.0), (12.0, 12.0), (12.0, 20.0), (12.0, 11.0)])
    assert (champion["model_name"], champion["champion"], champion["sold"]) == ("pricewise", True, 4)
    assert champion["offline_rmsle"] == pytest.approx(offline)
    assert champion["live_rmsle"] == pytest.approx(live)
    assert champion["coverage"] == pytest.approx(0.75), "20 is outside [8, 18]"
    assert champion["excess"] == pytest.approx(live - offline)
    assert champion["over_margin"] is (live - offline > margin)
    assert champion["note"] is None
    other = rows["2"]
    assert (other["champion"], other["sold"], other["live_rmsle"]) == (False, 1, None)
    assert other["note"] == f"needs {LOW_MIN_SOLD} sold prices, has 1"
    assert other["offline_rmsle"] is None, "the registry holds no pricewise v2"

    html = low_min_client.get("/monitoring").text
    assert f'<strong id="accuracy-rmsle">{accuracy["rmsle"]:.3f}</strong>' in html
    assert '<table id="versions-table">' in html
    assert f'<td class="live">{live:.3f}</td>' in html
    assert f'<td class="offline">{offline:.3f}</td>' in html
    assert f"needs {LOW_MIN_SOLD} sold prices, has 1" in html


@pytest.mark.contract("GET", "/v1/monitoring")
def test_the_latency_series_breaks_across_minutes_without_requests(fresh_client: TestClient) -> None:
    settings = app_settings(fresh_client)
    ids = log_suggestions(settings, range(3))
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    backdate(settings, ids[:2], minute - timedelta(minutes=3) + timedelta(seconds=10))
    backdate(settings, ids[2:], minute + timedelta(seconds=5))
    traffic = overview(fresh_client)["traffic"]
    assert traffic["state"] == "ok", traffic
    assert traffic["bucket_seconds"] == 60
    assert [b["requests"] for b in traffic["buckets"]] == [2, 1], "buckets hold only minutes with requests"
    series = traffic["series"]
    starts = [datetime.fromisoformat(point["start"]) for point in series]
    assert starts == [minute - timedelta(minutes=3) + timedelta(minutes=i) for i in range(4)]
    assert [point["requests"] for point in series] == [2, 0, 0, 1]
    for gap in series[1:3]:
        assert (gap["p50_ms"], gap["p95_ms"], gap["p99_ms"], gap["per_minute"]) == (None, None, None, 0.0)
    assert series[0]["p50_ms"] == series[3]["p50_ms"] == 3.0
    script = fresh_client.get("/static/monitoring.js").text
    assert "traffic.series" in script, "the chart draws every bucket"
    assert "spanGaps: false" in script, "and breaks its lines at the gaps"


@pytest.mark.contract("GET", "/v1/monitoring")
@pytest.mark.contract("GET", "/monitoring")
def test_error_and_fallback_rates_of_suggestion_requests(low_min_client: TestClient) -> None:
    for _ in range(4):
        assert low_min_client.post("/v1/suggestions", json=LISTING).status_code == 200
    bad = low_min_client.post("/v1/suggestions", json={**LISTING, "item_condition_id": 9})
    assert bad.status_code == 422
    assert low_min_client.get("/health").status_code == 200, "other routes do not count"
    log = PredictionLog(default_url(app_settings(low_min_client)))
    try:
        log.record_suggestions(
            [
                LoggedSuggestion(
                    request_id=f"fallback-{i}",
                    batch_id=None,
                    model_name="pricewise-baseline",
                    model_version="1",
                    model_run_id=None,
                    fallback=True,
                    inputs=listing(i),
                    outputs={"price": 10.0, "low": 5.0, "high": 20.0, "coverage": 0.8},
                    latency_ms=1.0,
                )
                for i in range(2)
            ]
        )
    finally:
        log.close()
    rates = overview(low_min_client)["rates"]
    assert rates["state"] == "ok", rates
    assert rates["requests"] == 5
    assert rates["client_error_rate"] == pytest.approx(1 / 5)
    assert rates["server_error_rate"] == 0.0
    assert rates["client_closed_rate"] == 0.0
    assert (rates["suggestions"], rates["fallback"]) == (6, 2)
    assert rates["fallback_rate"] == pytest.approx(2 / 6)
    assert rates["min_rows"] == LOW_MIN_ROWS
    html = low_min_client.get("/monitoring").text
    assert '<td id="rates-4xx">20.0 %</td>' in html
    assert '<td id="rates-fallback">33.3 %</td>' in html


def retrain_decision(decided_at: datetime, due: bool, **values: Any) -> RetrainDecision:
    """A retraining decision as `pricewise retrain --check` records it: drift judged on a run, the rest calm."""
    share = 0.6 if due else 0.2
    row: dict[str, Any] = {
        "decided_at": decided_at,
        "monitoring_run_id": "run-1",
        "due": due,
        "reasons": [
            {
                "rule": "drift",
                "value": share,
                "threshold": 0.5,
                "triggered": due,
                "detail": f"{share:.0%} of input columns drifted in run run-1",
            },
            {
                "rule": "accuracy",
                "value": None,
                "threshold": 0.05,
                "triggered": False,
                "detail": "3 trusted sold prices, 30 needed to judge accuracy",
            },
            {
                "rule": "age",
                "value": 2.5,
                "threshold": 30.0,
                "triggered": False,
                "detail": "champion pricewise v1 trained 2.5 days ago",
            },
        ],
        "action": "check",
        "challenger_version": None,
        "promotion_action": None,
        "message": "retraining is due" if due else "no rule triggered",
        **values,
    }
    return RetrainDecision(**row)


@pytest.mark.contract("GET", "/v1/monitoring")
@pytest.mark.contract("GET", "/monitoring")
def test_the_latest_retraining_decisions_with_due_action_and_reasons_in_words(
    fresh_client: TestClient,
) -> None:
    assert overview(fresh_client)["retrain"]["state"] == "empty"
    now = datetime.now(UTC)
    store = decisions.open_store(app_settings(fresh_client))
    try:
        store.record_all([retrain_decision(now - timedelta(hours=12 - i), due=False) for i in range(11)])
        store.record(
            retrain_decision(
                now, due=True, action="trained", challenger_version="2", promotion_action="refuse"
            )
        )
    finally:
        store.close()
    section = overview(fresh_client)["retrain"]
    assert section["state"] == "ok", section
    rows = section["rows"]
    assert len(rows) == 10, "the latest ten"
    assert [datetime.fromisoformat(r["decided_at"]) for r in rows] == sorted(
        (datetime.fromisoformat(r["decided_at"]) for r in rows), reverse=True
    )
    newest = rows[0]
    assert (newest["due"], newest["action"], newest["challenger_version"]) == (True, "trained", "2")
    assert newest["action_words"] == "trained a challenger v2; the gate: refuse"
    words = {reason["rule"]: reason for reason in newest["reasons"]}
    assert words["drift"]["triggered"] is True
    assert words["drift"]["words"] == (
        "input drift triggered: 60% of input columns drifted in run run-1 (retrains from 50%)"
    )
    assert words["accuracy"]["words"] == (
        "accuracy not triggered: 3 trusted sold prices, 30 needed to judge accuracy (retrains above +0.0500)"
    )
    assert words["age"]["words"] == (
        "champion age not triggered: champion pricewise v1 trained 2.5 days ago (retrains after 30 days)"
    )
    assert rows[1]["due"] is False
    assert rows[1]["action_words"] == "judged only (--check)"
    html = fresh_client.get("/monitoring").text
    assert '<table id="retrain-decisions">' in html
    assert html.count('<span class="badge badge-ok">not due</span>') == 9
    assert html.count('<span class="badge badge-drift">due</span>') == 1
    assert "input drift triggered: 60% of input columns drifted in run run-1 (retrains from 50%)" in html


@pytest.mark.contract("GET", "/v1/monitoring")
@pytest.mark.contract("GET", "/monitoring")
def test_estimate_beside_realized_rmsle_and_the_sellers_response_are_shown(
    low_min_client: TestClient,
) -> None:
    fresh_client = low_min_client  # two answers are enough there
    suggested = [fresh_client.post("/v1/suggestions", json=LISTING).json() for _ in range(3)]
    for suggestion, factor in zip(suggested[:2], (1.0, 1.5), strict=True):
        chosen = round(suggestion["price"] * factor, 2)
        feedback = fresh_client.post(
            "/v1/feedback", json={"request_id": suggestion["request_id"], "chosen_price": chosen}
        )
        assert feedback.status_code == 200, feedback.text
    now = datetime.now(UTC)
    store = decisions.open_store(fresh_client.app.state.settings)  # type: ignore[attr-defined]
    try:
        store.record(monitoring_run("older", now - timedelta(days=1), rmsle=0.61, feedback_rows=50))
        store.record(
            monitoring_run(
                "newest", now, estimated_rmsle=0.534, estimated_rmsle_low=0.489, estimated_rmsle_high=0.581
            )
        )
    finally:
        store.close()

    body = overview(fresh_client)
    sellers = body["sellers"]
    assert sellers["state"] == "ok", sellers
    assert (sellers["suggestions"], sellers["answered"]) == (3, 2)
    assert sellers["acceptance_rate"] == pytest.approx(0.5), "one kept the suggestion, one asked 50% more"
    assert sellers["median_ratio"] == pytest.approx(1.25, abs=0.01)
    assert [(m["model_version"], m["answered"]) for m in sellers["by_model"]] == [("1", 2)]
    runs = {run["run_id"]: run for run in body["drift"]["runs"]}
    assert (runs["newest"]["estimated_rmsle"], runs["newest"]["rmsle"]) == (0.534, None)
    assert (runs["newest"]["estimated_rmsle_low"], runs["newest"]["estimated_rmsle_high"]) == (0.489, 0.581)
    assert (runs["older"]["estimated_rmsle"], runs["older"]["rmsle"]) == (None, 0.61)

    html = fresh_client.get("/monitoring").text
    assert '<strong id="estimate-rmsle">0.534</strong>' in html
    assert '<span id="estimate-low">0.489</span>' in html
    assert '<span id="estimate-high">0.581</span>' in html
    assert "estimated RMSLE [95%]" in html
    assert '<strong id="sellers-acceptance">50 %</strong>' in html
    assert '<span id="sellers-answered">2</span>' in html


@pytest.mark.contract("GET", "/v1/monitoring")
def test_overview_without_monitoring_runs_or_sold_prices_says_so(client: TestClient) -> None:
    body = overview(client)
    assert body["drift"]["runs"] == []
    assert body["drift"]["state"] == "empty", body["drift"]
    assert body["drift"]["message"]


@pytest.mark.contract("GET", "/monitoring")
def test_monitoring_page_shows_champion_sections_and_local_chart_library(client: TestClient) -> None:
    response = client.get("/monitoring")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<title>pricewise: monitoring</title>" in html
    assert '<strong id="champion-model">pricewise v1</strong>' in html
    for section in SECTIONS:
        assert f'<section id="{section}"' in html, section
    assert 'src="http://testserver/static/vendor/chart-4.6.1.umd.min.js"' in html
    assert "cdn" not in html.lower(), "the page works without the network"


@pytest.mark.contract("GET", "/monitoring/reports/{run_id}")
@pytest.mark.parametrize("run_id", ["no-such-run", "0" * 32, "..%2F..%2Fwarehouse.duckdb", "%2e%2e"])
def test_a_report_of_an_unknown_run_is_404(client: TestClient, run_id: str) -> None:
    response = client.get(f"/monitoring/reports/{run_id}")
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/json"


@pytest.mark.contract("GET", "/monitoring/reports/{run_id}")
def test_a_report_run_id_over_its_limit_is_422_naming_it(client: TestClient) -> None:
    response = client.get(f"/monitoring/reports/{'r' * 201}")
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["path", "run_id"]]

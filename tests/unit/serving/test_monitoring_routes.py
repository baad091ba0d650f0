"""Requests to the in-process app in; the contract of the monitoring overview, the monitoring page and the drift
report route out (a champion, its promotion and the logged traffic are shown; unknown reports are 404)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.store import decisions
from pricewise.store.prediction_log import Outcome
from tests.support.logged import monitoring_run
from tests.support.servers import LISTING
from tests.support.workspaces import Workspace, clone_workspace

SECTIONS = {"champion", "promotions", "traffic", "accuracy", "sellers", "drift"}
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
    assert set(body) == {"generated_at", *SECTIONS}
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


@pytest.mark.contract("GET", "/v1/monitoring")
def test_overview_counts_logged_suggestions_and_scores_sold_prices(fresh_client: TestClient) -> None:
    batch = fresh_client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 3}).json()["suggestions"]
    sold = fresh_client.post("/v1/suggestions", json=LISTING).json()
    log = fresh_client.app.state.prediction_log  # type: ignore[attr-defined]
    assert log.record_outcomes([Outcome(sold["request_id"], 40.0)], source="api").stored == 1
    body = overview(fresh_client)
    traffic = body["traffic"]
    assert traffic["state"] == "ok", traffic
    assert traffic["total_requests"] == len(batch) + 1
    assert sum(bucket["requests"] for bucket in traffic["buckets"]) == traffic["total_requests"]
    for bucket in traffic["buckets"]:
        assert set(bucket) == {"start", "requests", "per_minute", "p50_ms", "p95_ms", "p99_ms"}
        assert 0 <= bucket["p50_ms"] <= bucket["p95_ms"] <= bucket["p99_ms"]
    accuracy = body["accuracy"]
    assert accuracy["state"] == "ok", accuracy
    assert accuracy["sold"] == 1
    assert accuracy["rmsle"] == pytest.approx(abs(math.log1p(sold["price"]) - math.log1p(40.0)), rel=1e-6)
    assert accuracy["coverage"] == (1.0 if sold["low"] <= 40.0 <= sold["high"] else 0.0)
    assert accuracy["stated_coverage"] == pytest.approx(sold["coverage"])
    assert [(m["model_version"], m["sold"]) for m in accuracy["by_model"]] == [("1", 1)]


@pytest.mark.contract("GET", "/v1/monitoring")
@pytest.mark.contract("GET", "/monitoring")
def test_estimate_beside_realized_rmsle_and_the_sellers_response_are_shown(fresh_client: TestClient) -> None:
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

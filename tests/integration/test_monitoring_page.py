"""Suggestions, feedback and recorded monitoring runs on a real server in; the monitoring JSON (with offline
against live RMSLE and the error and fallback rates), its reports and the page drawn in headless Chromium (empty
buckets as gaps) out, also with no runs, a write-locked or missing warehouse (the page never opens it) and
unreadable decision tables."""

from __future__ import annotations

import calendar
import math
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from pricewise.settings import Settings
from pricewise.store import decisions, warehouse
from tests.support.logged import monitoring_run
from tests.support.servers import Server, start_server
from tests.support.workspaces import TRAIN_SAMPLE, Workspace

pytestmark = pytest.mark.integration
SOLD = 30  # monitor.min_feedback_rows of the shipped config: accuracy is shown from this many sold prices on
LISTED = SOLD + 10
OUTCOMES_TOKEN = "monitoring-page-outcomes-token"
LISTING_FIELDS = ["name", "brand_name", "category_name", "item_condition_id", "shipping", "item_description"]


def own_workspace(source: Workspace, root: Path) -> Workspace:
    """The trained session workspace's registry and model cache, with this test's own copy of the warehouse and
    of the decision tables, its own reports directory and its own prediction log (the session server's stay
    untouched)."""
    root.mkdir(parents=True, exist_ok=True)
    warehouse_copy = root / "warehouse.duckdb"
    shutil.copy2(source.settings.warehouse, warehouse_copy)
    decisions_copy = root / "decisions.db"
    with (
        closing(sqlite3.connect(source.settings.data_dir / "decisions.db")) as original,
        closing(sqlite3.connect(decisions_copy)) as copy,
    ):
        original.backup(copy)  # the committed rows, also those still in the write-ahead log
    settings = Settings(
        data_dir=source.settings.data_dir,
        config_path=source.config_path,
        warehouse_path=warehouse_copy,
        reports_dir=root / "reports",
        prediction_log_url=f"sqlite:///{root / 'predictions.db'}",
        decisions_url=f"sqlite:///{decisions_copy}",
    )
    settings.reports.mkdir()
    return Workspace(settings, source.config_path)


def serve(ws: Workspace, log_dir: Path) -> Server:
    """`pricewise serve` on a workspace from `own_workspace` (the overrides travel in the environment)."""
    settings = ws.settings
    assert settings.warehouse_path is not None
    assert settings.reports_dir is not None
    assert settings.prediction_log_url is not None
    assert settings.decisions_url is not None
    return start_server(
        ws,
        log_dir,
        PRICEWISE_WAREHOUSE_PATH=str(settings.warehouse_path),
        PRICEWISE_REPORTS_DIR=str(settings.reports_dir),
        PRICEWISE_PREDICTION_LOG_URL=settings.prediction_log_url,
        PRICEWISE_DECISIONS_URL=settings.decisions_url,
        PRICEWISE_OUTCOMES_TOKEN=OUTCOMES_TOKEN,
    )


def insert_run(
    settings: Settings, run_id: str, created_at: datetime, report: Path | None, **values: Any
) -> None:
    """One monitoring run, recorded in the decision tables as `pricewise monitor` records it."""
    figures: dict[str, Any] = {
        "reference_rows": 6400,
        "current_rows": 23,
        "compared_rows": 23,
        "target_drift": False,
        "feedback_rows": SOLD,
        "rmsle": 0.5,
        "coverage": 0.75,
        "report_html": None if report is None else str(report),
    }
    store = decisions.open_store(settings)
    try:
        store.record(monitoring_run(run_id, created_at, **{**figures, **values}))
    finally:
        store.close()


@dataclass
class Monitored:
    """A server with known suggestions, sold prices and monitoring runs."""

    server: Server
    settings: Settings
    suggestions: list[dict[str, Any]]
    sold: dict[str, float]
    drift_run: str
    ok_run: str
    gone_run: str
    outside_run: str
    report_text: str


@pytest.fixture(scope="module")
def monitored(serving_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    root = tmp_path_factory.mktemp("monitored")
    ws = own_workspace(serving_workspace, root / "ws")
    server = serve(ws, root)
    listings = pd.read_csv(TRAIN_SAMPLE, sep="\t", nrows=2 * LISTED).dropna(subset=["name"]).head(LISTED)
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()} for row in listings.to_dict("records")
    ]
    suggestions: list[dict[str, Any]] = []
    sold: dict[str, float] = {}
    try:
        with server.client() as client:
            for record in records:
                body = {k: record[k] for k in LISTING_FIELDS}
                body["item_condition_id"] = int(body["item_condition_id"])
                body["shipping"] = int(body["shipping"])
                response = client.post("/v1/suggestions", json=body)
                assert response.status_code == 200, response.text
                suggestions.append({**response.json(), "actual": float(record["price"])})
            batch = client.post("/v1/suggestions/batch", json={"listings": [body] * 3})
            assert batch.status_code == 200, batch.text
            outcomes = [
                {"request_id": s["request_id"], "sold_price": s["actual"]} for s in suggestions[:SOLD]
            ]
            recorded = client.post(
                "/v1/outcomes",
                json={"outcomes": outcomes},
                headers={"Authorization": f"Bearer {OUTCOMES_TOKEN}"},
            )
            assert recorded.status_code == 200, recorded.text
            assert recorded.json()["stored"] == SOLD
            sold.update({o["request_id"]: o["sold_price"] for o in outcomes})
            for suggestion in suggestions[SOLD : SOLD + 3]:  # chosen prices only: no sold price, not counted
                chosen = {"request_id": suggestion["request_id"], "chosen_price": suggestion["price"]}
                assert client.post("/v1/feedback", json=chosen).status_code == 200

        reports = ws.settings.reports / "monitoring"
        reports.mkdir()
        report_text = (
            "<!doctype html><html><body><h1>Data drift report</h1><p>2 of 5 columns drifted</p></body></html>"
        )
        (reports / "drift.html").write_text(report_text, encoding="utf-8")
        (reports / "ok.html").write_text("<html><body>no drift</body></html>", encoding="utf-8")
        outside = root / "outside.html"
        outside.write_text("<html><body>not a report of ours</body></html>", encoding="utf-8")
        now = datetime.now(UTC)
        insert_run(ws.settings, "run-ok-1", now - timedelta(hours=3), reports / "ok.html")
        insert_run(
            ws.settings,
            "run-drift-2",
            now - timedelta(hours=1),
            reports / "drift.html",
            status="drift",
            drift_share=0.4,
            drifted_columns=["brand_name", "category_name"],
            prediction_drift=True,
            message="2 of 5 columns drifted",
        )
        insert_run(ws.settings, "run-gone-3", now - timedelta(hours=2), reports / "deleted.html")
        insert_run(ws.settings, "run-outside-4", now - timedelta(hours=4), outside)
        yield Monitored(
            server,
            ws.settings,
            suggestions,
            sold,
            "run-drift-2",
            "run-ok-1",
            "run-gone-3",
            "run-outside-4",
            report_text,
        )
    finally:
        server.stop()


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1]


def test_overview_counts_requests_and_computes_latency_rmsle_and_coverage(monitored: Monitored) -> None:
    with monitored.server.client() as client:
        response = client.get("/v1/monitoring")
    assert response.status_code == 200, response.text
    body = response.json()

    traffic = body["traffic"]
    assert traffic["state"] == "ok"
    assert traffic["total_requests"] == len(monitored.suggestions) + 3
    assert sum(b["requests"] for b in traffic["buckets"]) == traffic["total_requests"]
    width = traffic["bucket_seconds"]
    assert width == 60  # everything was logged within minutes
    log = monitored.server.prediction_log()
    try:
        with log.engine.connect() as connection:
            logged = connection.execute(
                select(log.predictions.c.created_at, log.predictions.c.latency_ms)
            ).all()
    finally:
        log.close()
    by_bucket: dict[int, list[float]] = defaultdict(list)
    for created_at, latency in logged:
        epoch = calendar.timegm(created_at.utctimetuple())
        by_bucket[epoch - epoch % width].append(latency)
    expected = {
        datetime.fromtimestamp(start, UTC).isoformat(): (
            len(values),
            nearest_rank(values, 0.5),
            nearest_rank(values, 0.95),
            nearest_rank(values, 0.99),
        )
        for start, values in by_bucket.items()
    }
    got = {b["start"]: (b["requests"], b["p50_ms"], b["p95_ms"], b["p99_ms"]) for b in traffic["buckets"]}
    assert got.keys() == expected.keys()
    for start, figures in expected.items():
        assert got[start] == pytest.approx(figures), start
    for bucket in traffic["buckets"]:
        assert 0 < bucket["p50_ms"] <= bucket["p95_ms"] <= bucket["p99_ms"] < 10_000
        assert bucket["per_minute"] == pytest.approx(bucket["requests"])

    accuracy = body["accuracy"]
    priced = {s["request_id"]: s for s in monitored.suggestions if s["request_id"] in monitored.sold}
    errors = [
        (math.log1p(priced[rid]["price"]) - math.log1p(sold)) ** 2 for rid, sold in monitored.sold.items()
    ]
    inside = [priced[rid]["low"] <= sold <= priced[rid]["high"] for rid, sold in monitored.sold.items()]
    assert accuracy["state"] == "ok"
    assert accuracy["sold"] == SOLD
    assert accuracy["rmsle"] == pytest.approx(math.sqrt(sum(errors) / len(errors)))
    assert accuracy["coverage"] == pytest.approx(sum(inside) / len(inside))
    assert accuracy["stated_coverage"] == pytest.approx(0.8)
    assert sum(b["sold"] for b in accuracy["buckets"]) == SOLD
    assert [(m["model_version"], m["sold"]) for m in accuracy["by_model"]] == [("1", SOLD)]
    assert accuracy["by_model"][0]["rmsle"] == pytest.approx(accuracy["rmsle"])
    versions = body["versions"]
    assert versions["state"] == "ok", versions
    assert versions["min_sold"] == SOLD
    champion_row = versions["rows"][0]
    assert (champion_row["model_version"], champion_row["champion"], champion_row["sold"]) == (
        "1",
        True,
        SOLD,
    )
    assert champion_row["live_rmsle"] == pytest.approx(accuracy["rmsle"])
    assert champion_row["offline_rmsle"] is not None
    assert champion_row["excess"] == pytest.approx(champion_row["live_rmsle"] - champion_row["offline_rmsle"])

    rates = body["rates"]
    assert rates["state"] == "ok", rates
    assert rates["requests"] == len(monitored.suggestions) + 1, "each single suggestion and the one batch"
    assert (rates["client_error_rate"], rates["server_error_rate"]) == (0.0, 0.0)
    assert (rates["suggestions"], rates["fallback"], rates["fallback_rate"]) == (
        len(monitored.suggestions) + 3,
        0,
        0.0,
    )
    assert body["retrain"]["state"] == "empty"

    champion = body["champion"]
    model = monitored.suggestions[0]["model"]
    assert champion["state"] == "ok"
    assert (champion["registered_model"], champion["version"]) == ("pricewise", "1")
    assert champion["promoted_by"] == "first"
    assert champion["run_id"] == model["run_id"]
    assert champion["since"] is not None
    assert datetime.fromisoformat(champion["since"]) <= datetime.now(UTC)
    assert champion["serving"]["version"] == "1"
    assert body["promotions"]["state"] == "ok"
    assert body["promotions"]["rows"][0]["action"] == "first"
    assert body["promotions"]["rows"][0]["champion_after"] == "1"
    assert "challenger_rmsle" in body["promotions"]["rows"][0]["metrics"]

    drift = body["drift"]
    assert drift["state"] == "ok"
    runs = {run["run_id"]: run for run in drift["runs"]}
    assert [run["run_id"] for run in drift["runs"]] == [
        monitored.drift_run,
        monitored.gone_run,
        monitored.ok_run,
        monitored.outside_run,
    ], "newest first"
    flagged = runs[monitored.drift_run]
    assert flagged["status"] == "drift"
    assert flagged["drift_share"] == pytest.approx(0.4)
    assert flagged["drifted_columns"] == ["brand_name", "category_name"]
    assert flagged["prediction_drift"] is True
    assert flagged["report_url"] == f"/monitoring/reports/{monitored.drift_run}"
    assert runs[monitored.ok_run]["report_url"] == f"/monitoring/reports/{monitored.ok_run}"
    assert runs[monitored.gone_run]["report_url"] is None
    assert runs[monitored.outside_run]["report_url"] is None


def test_reports_are_served_only_for_recorded_runs_with_their_file(monitored: Monitored) -> None:
    with monitored.server.client() as client:
        report = client.get(f"/monitoring/reports/{monitored.drift_run}")
        unknown = client.get("/monitoring/reports/no-such-run")
        gone = client.get(f"/monitoring/reports/{monitored.gone_run}")
        outside = client.get(f"/monitoring/reports/{monitored.outside_run}")
        traversal = client.get("/monitoring/reports/..%2F..%2Fetc%2Fpasswd")
        schema = client.get("/openapi.json").json()
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert report.text == monitored.report_text
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no monitoring run no-such-run"
    assert gone.status_code == 404
    assert "missing" in gone.json()["detail"]
    assert outside.status_code == 404
    assert "not a report of ours" not in outside.text
    assert traversal.status_code == 404
    operation = schema["paths"]["/v1/monitoring"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MonitoringPage"
    }
    assert "/monitoring/reports/{run_id}" in schema["paths"]


PAINTED_PIXELS = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""


def test_page_draws_charts_with_the_local_chart_library_and_lists_champion_and_runs(
    monitored: Monitored, browser: Any
) -> None:
    base = monitored.server.base_url
    page = browser.new_page()
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base + "/")
    page.click("#nav-monitoring")
    page.wait_for_url(base + "/monitoring")
    page.wait_for_selector("body[data-charts='done']", timeout=15_000)

    assert page.title() == "pricewise: monitoring"
    assert page.evaluate("window.Chart.version").startswith("4.")
    assert f"{base}/static/vendor/chart-4.6.1.umd.min.js" in requested
    for chart in ("traffic-chart", "accuracy-chart"):
        assert page.get_attribute(f"#{chart}", "data-drawn") == "true"
        assert page.evaluate(PAINTED_PIXELS, chart) > 1000, f"{chart} has nothing drawn"
    with monitored.server.client() as client:
        overview = client.get("/v1/monitoring").json()
    labels = page.evaluate("window.Chart.getChart('traffic-chart').data.labels.length")
    assert labels == len(overview["traffic"]["series"]), "every bucket, those without requests included"
    assert page.evaluate("window.Chart.getChart('traffic-chart').data.datasets[1].spanGaps") is False
    plotted = page.evaluate("window.Chart.getChart('accuracy-chart').data.datasets[0].data")
    buckets = overview["accuracy"]["buckets"]
    first, last = (datetime.fromisoformat(buckets[i]["start"]) for i in (0, -1))
    assert len(plotted) == (last - first).total_seconds() // overview["accuracy"]["bucket_seconds"] + 1
    assert [v for v in plotted if v is not None] == pytest.approx([b["rmsle"] for b in buckets]), (
        "gaps are null"
    )

    assert page.inner_text("#champion-model") == "pricewise v1"
    assert page.inner_text("#champion-run") == monitored.suggestions[0]["model"]["run_id"]
    assert page.inner_text("#traffic-total") == str(len(monitored.suggestions) + 3)
    assert page.inner_text("#accuracy-sold") == str(SOLD)
    assert page.inner_text("#accuracy-rmsle") == f"{overview['accuracy']['rmsle']:.3f}"
    champion_row = page.locator("#versions-table tr[data-version='1']")
    assert champion_row.locator("td.live").inner_text() == f"{overview['accuracy']['rmsle']:.3f}"
    offline = overview["versions"]["rows"][0]["offline_rmsle"]
    assert offline is not None
    assert champion_row.locator("td.offline").inner_text() == f"{offline:.3f}"
    drift_row = page.locator(f"#drift-runs tr[data-run-id='{monitored.drift_run}']")
    assert drift_row.locator(".badge").inner_text() == "drift"
    assert "brand_name, category_name" in drift_row.inner_text()
    assert page.locator("#drift-runs tbody tr").count() == 4
    history = page.locator("#promotion-history tbody tr").all_inner_texts()
    assert len(history) == 1
    assert "first" in history[0]
    assert page.locator("#chart-error").is_hidden()

    page.goto(base + drift_row.locator("a.report-link").get_attribute("href"))
    assert page.inner_text("h1") == "Data drift report"
    page.go_back()
    page.click("#nav-seller")
    page.wait_for_url(base + "/")
    page.close()

    # On a phone: the same page in one column, wide tables scrolled inside their box, never the page sideways.
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.on("pageerror", lambda error: errors.append(str(error)))
    phone.goto(base + "/monitoring")
    phone.wait_for_selector("body[data-charts='done']", timeout=15_000)
    wide = phone.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 390)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390, wide
    for chart in ("traffic-chart", "accuracy-chart"):
        box = phone.locator(f"#{chart}").bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390, f"{chart} fits the phone's width"
        assert phone.evaluate(PAINTED_PIXELS, chart) > 1000, f"{chart} has nothing drawn at 390 px"
    phone.close()
    assert errors == []
    assert all(url.startswith(base + "/") for url in requested), "nothing may load from another host"


def test_without_runs_with_a_locked_or_missing_warehouse_or_unreadable_decisions_the_page_answers(
    serving_workspace: Workspace, tmp_path: Path, browser: Any
) -> None:
    ws = own_workspace(serving_workspace, tmp_path / "ws")
    server = serve(ws, tmp_path)
    try:
        with server.client() as client:
            empty = client.get("/v1/monitoring")
            empty_page = client.get("/monitoring")
        assert empty.status_code == 200, empty.text
        body = empty.json()
        assert body["drift"] == {"state": "empty", "message": body["drift"]["message"], "runs": []}
        assert "no monitoring runs yet" in body["drift"]["message"]
        assert body["traffic"]["state"] == "empty"
        assert body["traffic"]["buckets"] == []
        assert body["accuracy"]["state"] == "empty"
        assert body["sellers"]["state"] == "empty"
        assert body["champion"]["state"] == "ok"
        assert empty_page.status_code == 200
        for message in ("no monitoring runs yet", "no suggestions logged yet", "no sold prices yet"):
            assert message in empty_page.text

        page = browser.new_page()
        page.goto(server.base_url + "/monitoring")
        page.wait_for_selector("body[data-charts='done']", timeout=15_000)
        assert page.locator("canvas").count() == 0
        assert page.inner_text("#drift-state").startswith("no monitoring runs yet")
        assert page.locator("#chart-error").is_hidden()
        page.close()

        # A batch command holding the warehouse's write lock does not reach the page: it never opens the file.
        with warehouse.connect(ws.settings) as writer, server.client() as client:
            writer.execute("SELECT count(*) FROM batches").fetchone()
            locked = client.get("/v1/monitoring")
            locked_page = client.get("/monitoring")
            locked_report = client.get("/monitoring/reports/any-run")
            suggestion = client.post(
                "/v1/suggestions",
                json={"name": "Nike Air Max 90 size 10", "item_condition_id": 2, "shipping": 1},
            )
        assert locked.status_code == 200, locked.text
        assert locked.json()["champion"] == body["champion"]
        assert locked.json()["promotions"] == body["promotions"]
        assert locked.json()["promotions"]["state"] == "ok"
        assert locked.json()["drift"]["state"] == "empty"
        assert locked_page.status_code == 200
        assert "busy" not in locked_page.text
        assert locked_report.status_code == 404
        assert locked_report.json()["detail"] == "no monitoring run any-run"
        assert suggestion.status_code == 200, suggestion.text

        moved = ws.settings.warehouse.with_suffix(".away")
        ws.settings.warehouse.rename(moved)
        try:
            with server.client() as client:
                missing = client.get("/v1/monitoring")
        finally:
            moved.rename(ws.settings.warehouse)
        assert missing.status_code == 200
        assert missing.json()["promotions"]["state"] == "ok"
        assert missing.json()["champion"]["version"] == "1"

        # Decision tables that cannot be read: those sections say so; the champion still comes from the alias.
        assert ws.settings.decisions_url is not None
        store_file = Path(ws.settings.decisions_url.removeprefix("sqlite:///"))
        for path in store_file.parent.glob(store_file.name + "*"):
            path.unlink()
        store_file.mkdir()
        with server.client() as client:
            unreadable = client.get("/v1/monitoring")
            unreadable_page = client.get("/monitoring")
            unreadable_report = client.get("/monitoring/reports/any-run")
        sections = unreadable.json()
        assert unreadable.status_code == 200
        for name in ("drift", "promotions"):
            assert sections[name]["state"] == "error", sections[name]
            assert "cannot open the decision tables" in sections[name]["message"]
        assert (sections["champion"]["state"], sections["champion"]["version"]) == ("ok", "1")
        assert "the promotion history is unavailable" in sections["champion"]["message"]
        assert sections["champion"]["since"] is None
        assert unreadable_page.status_code == 200
        assert "cannot open the decision tables" in unreadable_page.text
        assert unreadable_report.status_code == 503
        assert "monitoring section" not in server.logs(), "no section failed, they reported their state"
        assert "unhandled error" not in server.logs()
    finally:
        server.stop()

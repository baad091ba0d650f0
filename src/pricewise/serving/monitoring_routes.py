"""HTTP requests in; the monitoring overview as JSON, the monitoring page, and recorded drift reports out.

Nothing here may take serving down: every section of the overview is computed on its own and reports a state
instead of raising, and the handlers are plain functions (FastAPI runs them in its thread pool) because the
decision tables, the registry and the prediction log are blocking I/O. Nothing here opens the warehouse.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from pricewise.config import Config
from pricewise.serving import log_figures, monitoring_view
from pricewise.serving.model_holder import ModelHolder, current_champion_version
from pricewise.serving.observability import Metrics
from pricewise.serving.routes import model_info
from pricewise.settings import Settings

api = APIRouter(prefix="/v1", tags=["monitoring"])
reports = APIRouter(tags=["monitoring"])
page = APIRouter(include_in_schema=False)

RunId = Annotated[
    str, Path(min_length=1, max_length=200, description="The `run_id` of a recorded monitoring run.")
]
REPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown run, a run without a report, or its report file is gone."},
    503: {"description": "The decision tables cannot be read right now; retry shortly."},
}


def _offline_rmsle(request: Request) -> monitoring_view.OfflineRmsle:
    """The app's reader of offline RMSLE, made on first use (it keeps what it read for the app's lifetime)."""
    state = request.app.state
    found: monitoring_view.OfflineRmsle | None = getattr(state, "offline_rmsle", None)
    if found is None:
        found = monitoring_view.OfflineRmsle(state.settings)
        state.offline_rmsle = found
    return found


def _overview(request: Request) -> monitoring_view.MonitoringPage:
    state = request.app.state
    settings: Settings = state.settings
    config: Config = state.config
    figures: log_figures.LogFigures = state.log_figures
    holder: ModelHolder = state.models
    metrics: Metrics = state.metrics
    served = holder.served
    return monitoring_view.overview(
        settings,
        config.train.registered_model,
        figures,
        model_info(served) if served is not None else None,
        lambda: current_champion_version(settings, config),
        lambda run_id: str(request.url_for("monitoring_report", run_id=run_id).path),
        policy=monitoring_view.PagePolicy(config.monitor, config.retrain.rmsle_margin),
        statuses=lambda: monitoring_view.suggestion_statuses(metrics),
        offline=_offline_rmsle(request),
    )


@api.get("/monitoring", response_model=monitoring_view.MonitoringPage)
def monitoring_overview(request: Request) -> monitoring_view.MonitoringPage:
    """The champion and promotion history, request rate and latency percentiles over time (empty buckets as
    gaps), error and fallback rates, RMSLE and range coverage against reported sold prices, offline against live
    RMSLE per model version, the sellers' response, the drift status of each monitoring run and the latest
    retraining decisions.

    Always 200: a section without data, or whose source is unavailable (the registry unreachable, the decision
    tables unreadable), says so in its `state` and `message`; a figure below its minimum count
    (`monitor.min_feedback_rows` sold or chosen prices, `monitor.min_rows` requests) says how many it needs and
    has instead.
    """
    return _overview(request)


@reports.get(
    "/monitoring/reports/{run_id}",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}}, **REPORT_ERRORS},
)
def monitoring_report(run_id: RunId, request: Request) -> FileResponse:
    """The Evidently HTML report recorded for a monitoring run."""
    settings: Settings = request.app.state.settings
    try:
        path = monitoring_view.report_file(settings, run_id)
    except monitoring_view.ReportUnavailableError as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    return FileResponse(
        path, media_type="text/html; charset=utf-8", headers={"X-Content-Type-Options": "nosniff"}
    )


@page.get("/monitoring", response_class=HTMLResponse)
def monitoring_page(request: Request) -> HTMLResponse:
    """The monitoring page: tables rendered here, charts drawn in the browser from /v1/monitoring."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, "monitoring.html", {"overview": _overview(request)})

"""The decision tables, the registry's champion alias and this worker's log figures in; the monitoring overview
(champion, promotions, request rate and latency, accuracy against sold prices beside the estimate made without
them, the sellers' response, drift runs) and the files of recorded drift reports out.

Each section is computed on its own and carries its own state, so one failing source (an unreachable registry,
unreadable decision tables, an empty log) leaves the others intact and the page still answers. Who is champion is
the registry's alias; the promotions table is its history. The time-bucketed sections come from
`serving.log_figures`. The page never opens the warehouse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pricewise.errors import PricewiseError
from pricewise.serving import disclosure
from pricewise.serving.log_figures import LogFigures, guarded
from pricewise.serving.schemas import (
    ChampionSection,
    DriftSection,
    ModelInfo,
    MonitoringOverview,
    MonitoringRunRow,
    PromotionRow,
    PromotionsSection,
    SectionState,
)
from pricewise.settings import Settings
from pricewise.store import decisions
from pricewise.store.decisions import MonitoringRun, Promotion

logger = logging.getLogger(__name__)

MAX_ROWS = 50
CHAMPION_ACTIONS = ("first", "promote", "rollback")
REPORT_SUFFIXES = frozenset({".html", ".htm"})


class ReportUnavailableError(PricewiseError):
    """A run's report cannot be served; `status_code` says why (404 unknown or missing, 503 unreadable)."""

    def __init__(self, status_code: int, detail: str) -> None:
        """Keep the HTTP status the route answers with next to the message."""
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class DecisionFacts:
    """What the monitoring page reads from the decision tables, or why it could not."""

    state: SectionState
    message: str | None = None
    champion_history: list[Promotion] = field(default_factory=list)  # the model's, newest first
    promotions: list[Promotion] = field(default_factory=list)  # every model's, newest first
    runs: list[MonitoringRun] = field(default_factory=list)  # newest first


def _iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 in UTC; naive values are UTC by convention here."""
    if value is None:
        return None
    return _utc(value).isoformat()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def settings_roots(settings: Settings) -> tuple[Path, ...]:
    """The directories of a deployment whose relative spelling public texts must not show either."""
    return (settings.data_dir, settings.reports, settings.warehouse.parent)


def read_decisions(settings: Settings, registered_model: str, limit: int = MAX_ROWS) -> DecisionFacts:
    """Read the promotion history and the monitoring runs from the decision tables.

    Args:
        settings: Where the decision tables are.
        registered_model: The model whose champion history is read.
        limit: Most promotions and runs returned (newest first).

    Returns:
        The rows, or the state 'error' with the reason.
    """
    try:
        store = decisions.open_store(settings)
        try:
            history = list(reversed(store.promotions(registered_model, limit=limit)))
            promotions = list(reversed(store.promotions(limit=limit)))
            runs = store.monitoring_runs(limit=limit)
        finally:
            store.close()
    except PricewiseError as exc:
        logger.warning("monitoring: cannot read the decision tables: %s", exc)
        return DecisionFacts("error", disclosure.public(str(exc), settings_roots(settings)))
    return DecisionFacts("ok", None, history, promotions, runs)


def servable_report(settings: Settings, recorded: str | None) -> Path | None:
    """The recorded report file if it may be served: an existing HTML file inside the reports directory."""
    if not recorded:
        return None
    path = Path(recorded).resolve()  # a relative path was recorded from the same working directory
    if not path.is_relative_to(settings.reports.resolve()) or path.suffix.lower() not in REPORT_SUFFIXES:
        return None
    return path if path.is_file() else None


def champion_section(
    registered_model: str,
    version: str | None,
    facts: DecisionFacts,
    serving: ModelInfo | None,
) -> ChampionSection:
    """The champion as the registry's alias names it, annotated from the promotion history.

    Args:
        registered_model: The model name the promotion gate works on.
        version: The version the champion alias points at (None when there is none).
        facts: The decision tables' rows; the newest champion-moving record says since when and why.
        serving: The model answering in this worker.
    """
    if version is None:
        return ChampionSection(
            state="empty",
            message=f"{registered_model} has no champion yet (the command pricewise promote makes one)",
            registered_model=registered_model,
            serving=serving,
        )
    moved = next((p for p in facts.champion_history if p.action in CHAMPION_ACTIONS), None)
    recorded = moved is not None and moved.champion_after == version
    serves_champion = serving is not None and serving.name == registered_model and serving.version == version
    notes = []
    if facts.state != "ok":
        notes.append(f"the promotion history is unavailable: {facts.message}")
    elif not recorded:
        notes.append(f"the champion alias was moved to v{version} outside pricewise promote")
    if serving is None:
        notes.append("no model is loaded in this worker yet")
    elif not serves_champion:
        notes.append(
            f"this worker serves {serving.name} v{serving.version or '-'} ({serving.source}); "
            f"it picks up v{version} at its next reload"
        )
    return ChampionSection(
        state="ok",
        message="; ".join(notes) or None,
        registered_model=registered_model,
        version=version,
        since=_iso(moved.decided_at) if recorded and moved is not None else None,
        promoted_by=moved.action if recorded and moved is not None else None,
        run_id=serving.run_id if serving is not None and serves_champion else None,
        serving=serving,
    )


def _promotions_section(facts: DecisionFacts) -> PromotionsSection:
    if facts.state != "ok":
        return PromotionsSection(state=facts.state, message=facts.message)
    if not facts.promotions:
        return PromotionsSection(
            state="empty", message="no promotion decisions yet (the command pricewise promote makes them)"
        )
    rows = [
        PromotionRow(
            decided_at=_iso(p.decided_at) or "",
            registered_model=p.registered_model,
            action=p.action,
            champion_before=p.champion_before,
            challenger=p.challenger,
            champion_after=p.champion_after,
            metrics=p.figures,
            reason=p.reason,
        )
        for p in facts.promotions
    ]
    return PromotionsSection(state="ok", rows=rows)


def _drift_section(
    facts: DecisionFacts, settings: Settings, report_url: Callable[[str], str]
) -> DriftSection:
    if facts.state != "ok":
        return DriftSection(state=facts.state, message=facts.message)
    if not facts.runs:
        return DriftSection(
            state="empty", message="no monitoring runs yet (the command pricewise monitor records them)"
        )
    runs = [
        MonitoringRunRow(
            run_id=run.run_id,
            created_at=_iso(run.created_at) or "",
            status=run.status,
            window_kind=run.window_kind,
            window_start=_iso(run.window_start),
            window_end=_iso(run.window_end),
            batch_id=run.batch_id,
            model_version=run.model_version,
            drift_share=run.drift_share,
            drifted_columns=[str(c) for c in run.drifted_columns],
            prediction_drift=run.prediction_drift,
            target_drift=run.target_drift,
            feedback_rows=run.feedback_rows,
            rmsle=run.rmsle,
            coverage=run.coverage,
            estimated_rmsle=run.estimated_rmsle,
            estimated_rmsle_low=run.estimated_rmsle_low,
            estimated_rmsle_high=run.estimated_rmsle_high,
            message=disclosure.public(run.message, settings_roots(settings)) or "",
            report_url=report_url(run.run_id) if servable_report(settings, run.report_html) else None,
        )
        for run in facts.runs
    ]
    return DriftSection(state="ok", runs=runs)


def overview(
    settings: Settings,
    registered_model: str,
    log_figures: LogFigures,
    serving: ModelInfo | None,
    champion_version: Callable[[], str | None],
    report_url: Callable[[str], str],
) -> MonitoringOverview:
    """Everything the monitoring page shows.

    Args:
        settings: Where the decision tables and the reports are.
        registered_model: The model name the promotion gate works on (`train.registered_model`).
        log_figures: Traffic and accuracy of this worker's prediction log.
        serving: The model answering in this worker, or None before one is loaded.
        champion_version: Asks the registry which version the champion alias points at.
        report_url: Maps a run id to the URL of its report on this server.

    Returns:
        The overview; a section that cannot be computed says so in its state and message.
    """
    try:
        facts = read_decisions(settings, registered_model)
    except Exception as exc:
        logger.exception("monitoring: reading the decision tables failed")
        facts = DecisionFacts("error", f"could not read the decision tables: {type(exc).__name__}")
    traffic_section, accuracy_section, sellers_section = log_figures.get()
    return MonitoringOverview(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        champion=guarded(
            "the champion",
            lambda: champion_section(registered_model, champion_version(), facts, serving),
            lambda message: ChampionSection(
                state="error", message=message, registered_model=registered_model, serving=serving
            ),
        ),
        promotions=guarded(
            "promotions",
            lambda: _promotions_section(facts),
            lambda message: PromotionsSection(state="error", message=message),
        ),
        traffic=traffic_section,
        accuracy=accuracy_section,
        sellers=sellers_section,
        drift=guarded(
            "drift runs",
            lambda: _drift_section(facts, settings, report_url),
            lambda message: DriftSection(state="error", message=message),
        ),
    )


def report_file(settings: Settings, run_id: str) -> Path:
    """The Evidently HTML report recorded for a monitoring run.

    Only the path recorded with the run (`MonitoringRun.report_html`) is ever returned, and only when it is an
    existing HTML file inside the reports directory.

    Raises:
        ReportUnavailableError: 404 for an unknown run, a run without a report, or a report file that is gone or
            outside the reports directory; 503 when the decision tables cannot be read.
    """
    try:
        store = decisions.open_store(settings)
        try:
            run = store.monitoring_run(run_id)
        finally:
            store.close()
    except PricewiseError as exc:
        shown = disclosure.public(str(exc), settings_roots(settings))
        raise ReportUnavailableError(503, f"cannot read the decision tables: {shown}") from exc
    except Exception as exc:
        logger.exception("monitoring: looking up the report of run %s failed", run_id)
        raise ReportUnavailableError(503, f"cannot read the decision tables: {type(exc).__name__}") from exc
    if run is None:
        raise ReportUnavailableError(404, f"no monitoring run {run_id}")
    if not run.report_html:
        raise ReportUnavailableError(404, f"monitoring run {run_id} recorded no report")
    path = servable_report(settings, run.report_html)
    if path is None:
        raise ReportUnavailableError(
            404,
            f"the report of monitoring run {run_id} is missing (or not an HTML file in the reports directory)",
        )
    return path

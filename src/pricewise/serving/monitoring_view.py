"""The decision tables, the registry (champion alias, each version's offline RMSLE), this server's request
counts and its log figures in; the monitoring overview (champion, promotions, request rate and latency, error and
fallback rates, accuracy against sold prices beside the estimate made without them, offline against live RMSLE
per model version, the sellers' response, drift runs, retraining decisions) and the files of recorded drift
reports out.

Each section is computed on its own and carries its own state, so one failing source (an unreachable registry,
unreadable decision tables, an empty log) leaves the others intact and the page still answers. Who is champion is
the registry's alias; the promotions table is its history. The time-bucketed sections come from
`serving.log_figures`. A figure that rests on fewer rows than its minimum (`monitor.min_feedback_rows` sold
prices or chosen prices, `monitor.min_rows` requests) is not shown; its section says how many it needs and has.
The page never opens the warehouse.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prometheus_client import CollectorRegistry, multiprocess
from pydantic import BaseModel, Field

from pricewise.config import MonitorConfig
from pricewise.errors import PricewiseError
from pricewise.monitoring import figures
from pricewise.serving import disclosure
from pricewise.serving.log_figures import FallbackSection, LogFigures, LogSections, TrafficSeries, guarded
from pricewise.serving.observability import Metrics, multiprocess_dir
from pricewise.serving.schemas import (
    AccuracySection,
    ChampionSection,
    DriftSection,
    ModelInfo,
    MonitoringOverview,
    MonitoringRunRow,
    MonitoringSection,
    PromotionRow,
    PromotionsSection,
    SectionState,
    SellerResponseSection,
)
from pricewise.settings import Settings
from pricewise.store import decisions, tracking
from pricewise.store.decisions import MonitoringRun, Promotion, RetrainDecision

logger = logging.getLogger(__name__)

MAX_ROWS = 50
RETRAIN_ROWS = 10  # the latest retraining decisions shown
SUGGESTION_ROUTES = frozenset({"/v1/suggestions", "/v1/suggestions/batch"})
REQUESTS_METRIC = "pricewise_http_requests"
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
    retrains: list[RetrainDecision] = field(default_factory=list)  # newest first


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
    """Read the promotion history, the monitoring runs and the latest retraining decisions.

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
            retrains = store.retrain_decisions(limit=min(limit, RETRAIN_ROWS))
        finally:
            store.close()
    except PricewiseError as exc:
        logger.warning("monitoring: cannot read the decision tables: %s", exc)
        return DecisionFacts("error", disclosure.public(str(exc), settings_roots(settings)))
    return DecisionFacts("ok", None, history, promotions, runs, retrains)


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
    facts: DecisionFacts, settings: Settings, report_url: Callable[[str], str], min_sold: int = 1
) -> DriftSection:
    """The monitoring runs; a run's RMSLE and coverage only when it had `min_sold` sold prices or more (a run
    records them from any number; retraining judges them from `monitor.min_feedback_rows` on)."""
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
            rmsle=run.rmsle if run.feedback_rows >= min_sold else None,
            coverage=run.coverage if run.feedback_rows >= min_sold else None,
            estimated_rmsle=run.estimated_rmsle,
            estimated_rmsle_low=run.estimated_rmsle_low,
            estimated_rmsle_high=run.estimated_rmsle_high,
            message=disclosure.public(run.message, settings_roots(settings)) or "",
            report_url=report_url(run.run_id) if servable_report(settings, run.report_html) else None,
        )
        for run in facts.runs
    ]
    return DriftSection(state="ok", runs=runs)


class RatesSection(MonitoringSection):
    """Error and fallback rates: how often suggestion requests failed, and how often the rules baseline priced."""

    requests: int = Field(
        default=0,
        description=(
            "Suggestion requests (POST /v1/suggestions and /v1/suggestions/batch) answered since this server "
            "started, every worker counted."
        ),
    )
    client_error_rate: float | None = Field(default=None, description="Share of them answered with a 4xx.")
    server_error_rate: float | None = Field(default=None, description="Share of them answered with a 5xx.")
    client_closed_rate: float | None = Field(
        default=None, description="Share whose client left before any response (logged as 499)."
    )
    errors_note: str | None = Field(
        default=None, description="Why the error rates are not shown, if they are not."
    )
    window_start: str | None = Field(default=None, description="Start of the prediction log's window.")
    window_end: str | None = Field(default=None, description="Latest logged suggestion.")
    suggestions: int = Field(default=0, description="Suggestions logged in the window.")
    fallback: int = Field(default=0, description="Of them, made by the rules baseline (`fallback: true`).")
    fallback_rate: float | None = Field(default=None, description="fallback / suggestions.")
    fallback_note: str | None = Field(
        default=None, description="Why the fallback rate is not shown, if it is not."
    )
    min_rows: int = Field(default=0, description="Requests or suggestions a rate needs (`monitor.min_rows`).")


class OfflineVsLiveRow(BaseModel):
    """One model version: the RMSLE it was evaluated with beside its RMSLE on the window's sold prices."""

    model_name: str | None
    model_version: str | None
    champion: bool = Field(description="Whether the champion alias points at this version.")
    sold: int = Field(description="The window's suggestions of this version with a sold price.")
    offline_rmsle: float | None = Field(description="The version's test-split RMSLE, from its MLflow run.")
    live_rmsle: float | None = Field(description="RMSLE on the sold prices; None below the minimum count.")
    coverage: float | None = Field(description="Live range coverage; None below the minimum count.")
    excess: float | None = Field(description="live_rmsle - offline_rmsle.")
    over_margin: bool | None = Field(
        description="Whether the excess is above `retrain.rmsle_margin` (the accuracy rule of retraining)."
    )
    note: str | None = Field(description="Why live figures are not shown, if they are not.")


class OfflineVsLiveSection(MonitoringSection):
    """Offline against live RMSLE per model version."""

    min_sold: int = Field(
        default=0, description="Sold prices a live figure needs (`monitor.min_feedback_rows`)."
    )
    rmsle_margin: float | None = Field(default=None, description="`retrain.rmsle_margin`.")
    rows: list[OfflineVsLiveRow] = Field(default_factory=list)


class RetrainReason(BaseModel):
    """One rule of the retraining policy as it was judged."""

    rule: str
    triggered: bool
    words: str = Field(description="The rule, its value and its threshold in words.")


class RetrainRow(BaseModel):
    """One retraining decision."""

    decided_at: str
    due: bool
    action: str = Field(description="'none', 'check', 'trained' or 'failed'.")
    action_words: str
    monitoring_run_id: str | None
    challenger_version: str | None
    promotion_action: str | None
    message: str
    reasons: list[RetrainReason]


class RetrainSection(MonitoringSection):
    """The latest retraining decisions, newest first."""

    rows: list[RetrainRow] = Field(default_factory=list)


class MonitoringPage(MonitoringOverview):
    """Everything the monitoring page shows; each section carries its own state."""

    min_feedback_rows: int = Field(
        description="Sold (or chosen) prices an accuracy (or sellers') figure needs: `monitor.min_feedback_rows`."
    )
    traffic: TrafficSeries
    rates: RatesSection
    versions: OfflineVsLiveSection
    retrain: RetrainSection


RULE_NAMES = {
    "no_champion": "no champion",
    "drift": "input drift",
    "accuracy": "accuracy",
    "target_drift": "sold-price drift",
    "age": "champion age",
}
ACTION_WORDS = {
    "none": "no retraining",
    "check": "judged only (--check)",
    "trained": "trained a challenger",
    "failed": "training failed; the champion stayed",
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _limit_words(rule: str, value: float | None, threshold: float | None) -> str:
    if threshold is None:
        return ""
    if rule == "drift":
        return f" (retrains from {threshold:.0%})"
    if rule == "accuracy":
        measured = "" if value is None else f"live - offline {value:+.4f}; "
        return f" ({measured}retrains above +{threshold:.4f})"
    if rule == "age":
        return f" (retrains after {threshold:g} days)"
    return ""


def rule_words(reason: Mapping[str, Any], roots: tuple[Path, ...] = ()) -> RetrainReason:
    """A judged rule, as `pricewise retrain` records it (rule, value, threshold, triggered, detail), in words."""
    rule = str(reason.get("rule") or "unknown rule")
    triggered = bool(reason.get("triggered"))
    detail = disclosure.public(str(reason.get("detail") or ""), roots) or ""
    limit = _limit_words(rule, _number(reason.get("value")), _number(reason.get("threshold")))
    verdict = "triggered" if triggered else "not triggered"
    return RetrainReason(
        rule=rule, triggered=triggered, words=f"{RULE_NAMES.get(rule, rule)} {verdict}: {detail}{limit}"
    )


def _retrain_section(facts: DecisionFacts, settings: Settings) -> RetrainSection:
    if facts.state != "ok":
        return RetrainSection(state=facts.state, message=facts.message)
    if not facts.retrains:
        return RetrainSection(
            state="empty", message="no retraining decisions yet (the command pricewise retrain makes them)"
        )
    roots = settings_roots(settings)
    rows = []
    for decision in facts.retrains:
        words = ACTION_WORDS.get(decision.action, decision.action)
        if decision.challenger_version:
            words += f" v{decision.challenger_version}"
        if decision.promotion_action:
            words += f"; the gate: {decision.promotion_action}"
        rows.append(
            RetrainRow(
                decided_at=_iso(decision.decided_at) or "",
                due=decision.due,
                action=decision.action,
                action_words=words,
                monitoring_run_id=decision.monitoring_run_id,
                challenger_version=decision.challenger_version,
                promotion_action=decision.promotion_action,
                message=disclosure.public(decision.message, roots) or "",
                reasons=[rule_words(r, roots) for r in decision.reasons if isinstance(r, Mapping)],
            )
        )
    return RetrainSection(state="ok", rows=rows)


def judged_accuracy(section: AccuracySection, min_sold: int) -> AccuracySection:
    """The accuracy section, or only its count and a note while it rests on fewer than `min_sold` sold prices."""
    note = figures.shortfall(section.sold, min_sold) if section.state == "ok" else None
    if note is None:
        return section
    return AccuracySection(
        state="empty",
        message=f"{note}: accuracy is judged from monitor.min_feedback_rows sold prices on",
        window_start=section.window_start,
        window_end=section.window_end,
        sold=section.sold,
    )


def judged_sellers(section: SellerResponseSection, min_answered: int) -> SellerResponseSection:
    """The sellers' section, or only its counts and a note while fewer than `min_answered` sellers answered."""
    note = (
        figures.shortfall(section.answered, min_answered, "chosen prices") if section.state == "ok" else None
    )
    if note is None:
        return section
    return SellerResponseSection(
        state="empty",
        message=f"{note}: the sellers' response is judged from monitor.min_feedback_rows answers on",
        window_start=section.window_start,
        window_end=section.window_end,
        suggestions=section.suggestions,
        answered=section.answered,
    )


def suggestion_statuses(metrics: Metrics) -> dict[int, int]:
    """Suggestion requests per HTTP status since the server started (every worker's, in multiprocess mode)."""
    directory = multiprocess_dir()
    registry = metrics.registry
    if directory is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    counts: dict[int, int] = {}
    for family in registry.collect():
        if family.name != REQUESTS_METRIC:
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels.get("route") in SUGGESTION_ROUTES:
                status = int(labels["status"])
                counts[status] = counts.get(status, 0) + int(sample.value)
    return counts


def rates_section(statuses: Mapping[int, int], fallbacks: FallbackSection, min_rows: int) -> RatesSection:
    """The 4xx, 5xx and client-closed shares of suggestion requests and the fallback share of suggestions, each
    shown from `min_rows` requests or suggestions on."""
    rates = figures.error_rates(statuses)
    errors_note = figures.shortfall(rates.requests, min_rows, "suggestion requests")
    fallback_note = (
        figures.shortfall(fallbacks.suggestions, min_rows, "suggestions")
        if fallbacks.state == "ok"
        else fallbacks.message
    )
    notes = [
        f"error rates: {errors_note}" if errors_note else None,
        f"fallback rate: {fallback_note}" if fallback_note else None,
    ]
    hidden = [n for n in notes if n]
    shown = len(hidden) < 2
    state: SectionState = "ok" if shown else ("error" if fallbacks.state == "error" else "empty")
    return RatesSection(
        state=state,
        message="; ".join(hidden) or None,
        requests=rates.requests,
        client_error_rate=None if errors_note else rates.client_errors,
        server_error_rate=None if errors_note else rates.server_errors,
        client_closed_rate=None if errors_note else rates.client_closed,
        errors_note=errors_note,
        window_start=fallbacks.window_start,
        window_end=fallbacks.window_end,
        suggestions=fallbacks.suggestions,
        fallback=fallbacks.fallback,
        fallback_rate=(
            fallbacks.fallback / fallbacks.suggestions
            if fallback_note is None and fallbacks.suggestions
            else None
        ),
        fallback_note=fallback_note,
        min_rows=min_rows,
    )


REGISTRY_GONE = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


class OfflineRmsle:
    """Each registered version's offline RMSLE (`figures.OFFLINE_RMSLE_METRIC` of the version's MLflow run),
    read from the registry once: a version's evaluation does not change."""

    def __init__(self, settings: Settings) -> None:
        """Bind to the settings that name the tracking store."""
        self.settings = settings
        self._lock = threading.Lock()
        self._known: dict[figures.ModelKey, float | None] = {}

    def __call__(self, keys: Iterable[figures.ModelKey]) -> dict[figures.ModelKey, float | None]:
        """The offline RMSLE of each (model name, version); None for a version without one (or deleted).

        Raises:
            PricewiseError: The registry cannot be reached or answers with another error.
        """
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            missing = [k for k in wanted if k not in self._known and k[0] and k[1]]
            if missing:
                tracking.configure(self.settings)
                client = MlflowClient()
                for name, version in missing:
                    self._known[(name, version)] = self._read(client, str(name), str(version))
            return {k: self._known.get(k) for k in wanted}

    @staticmethod
    def _read(client: MlflowClient, name: str, version: str) -> float | None:
        try:
            run_id = client.get_model_version(name, version).run_id
            metric = client.get_run(str(run_id)).data.metrics.get(figures.OFFLINE_RMSLE_METRIC)
        except MlflowException as exc:
            if exc.error_code in REGISTRY_GONE:
                return None
            raise PricewiseError(f"cannot read {name} v{version} from the registry: {exc.message}") from exc
        return None if metric is None else float(metric)


def versions_section(
    logged: LogSections,
    offline: Callable[[Iterable[figures.ModelKey]], Mapping[figures.ModelKey, float | None]],
    champion: ChampionSection,
    min_sold: int,
    rmsle_margin: float,
    roots: tuple[Path, ...] = (),
) -> OfflineVsLiveSection:
    """Offline against live RMSLE of each model version with suggestions in the window, and of the champion.

    Live figures are `figures.offline_vs_live`: shown from `min_sold` sold prices on, as retraining judges
    accuracy. When the registry cannot be read, live figures are still shown, without the offline ones.
    """
    if logged.live_error is not None:
        return OfflineVsLiveSection(state="error", message=logged.live_error)
    live = list(logged.live)
    champion_key: figures.ModelKey = (champion.registered_model, champion.version)
    if champion.version is not None and champion_key not in {key for key, _ in live}:
        live.insert(0, (champion_key, figures.Accuracy(0, None, None)))
    if not live:
        return OfflineVsLiveSection(
            state="empty", message="no model version yet", min_sold=min_sold, rmsle_margin=rmsle_margin
        )
    message = None
    try:
        known = dict(offline(key for key, _ in live))
    except PricewiseError as exc:
        logger.warning("monitoring: cannot read offline RMSLE from the registry: %s", exc)
        shown = disclosure.public(str(exc), roots)
        known, message = {}, f"the offline RMSLE is unavailable: {shown}"
    rows = [
        OfflineVsLiveRow(
            model_name=row.model_name,
            model_version=row.model_version,
            champion=(row.model_name, row.model_version) == champion_key,
            sold=row.sold,
            offline_rmsle=row.offline_rmsle,
            live_rmsle=row.live_rmsle,
            coverage=row.coverage,
            excess=row.excess,
            over_margin=None if row.excess is None else row.excess > rmsle_margin,
            note=row.note,
        )
        for row in figures.offline_vs_live(live, known, min_sold)
    ]
    return OfflineVsLiveSection(
        state="ok", message=message, min_sold=min_sold, rmsle_margin=rmsle_margin, rows=rows
    )


@dataclass(frozen=True)
class PagePolicy:
    """The minimum counts and the retraining margin the page judges by (config sections monitor and retrain)."""

    monitor: MonitorConfig
    rmsle_margin: float


def overview(
    settings: Settings,
    registered_model: str,
    log_figures: LogFigures,
    serving: ModelInfo | None,
    champion_version: Callable[[], str | None],
    report_url: Callable[[str], str],
    policy: PagePolicy | None = None,
    statuses: Callable[[], Mapping[int, int]] | None = None,
    offline: Callable[[Iterable[figures.ModelKey]], Mapping[figures.ModelKey, float | None]] | None = None,
) -> MonitoringPage:
    """Everything the monitoring page shows.

    Args:
        settings: Where the decision tables and the reports are.
        registered_model: The model name the promotion gate works on (`train.registered_model`).
        log_figures: Traffic, accuracy, sellers' response and fallbacks of this worker's prediction log.
        serving: The model answering in this worker, or None before one is loaded.
        champion_version: Asks the registry which version the champion alias points at.
        report_url: Maps a run id to the URL of its report on this server.
        policy: Minimum counts and the retraining margin (default: the config's defaults).
        statuses: Suggestion requests per HTTP status since the server started (default: none counted).
        offline: The offline RMSLE of model versions (default: read from the registry each time).

    Returns:
        The overview; a section that cannot be computed says so in its state and message.
    """
    policy = policy or PagePolicy(MonitorConfig(), 0.05)
    roots = settings_roots(settings)
    try:
        facts = read_decisions(settings, registered_model)
    except Exception as exc:
        logger.exception("monitoring: reading the decision tables failed")
        facts = DecisionFacts("error", f"could not read the decision tables: {type(exc).__name__}")
    logged = log_figures.get()
    min_sold = policy.monitor.min_feedback_rows
    champion = guarded(
        "the champion",
        lambda: champion_section(registered_model, champion_version(), facts, serving),
        lambda message: ChampionSection(
            state="error", message=message, registered_model=registered_model, serving=serving
        ),
    )
    return MonitoringPage(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        min_feedback_rows=min_sold,
        champion=champion,
        promotions=guarded(
            "promotions",
            lambda: _promotions_section(facts),
            lambda message: PromotionsSection(state="error", message=message),
        ),
        traffic=logged.traffic,
        rates=guarded(
            "error and fallback rates",
            lambda: rates_section(statuses() if statuses else {}, logged.fallbacks, policy.monitor.min_rows),
            lambda message: RatesSection(state="error", message=message),
        ),
        accuracy=judged_accuracy(logged.accuracy, min_sold),
        versions=guarded(
            "offline against live RMSLE",
            lambda: versions_section(
                logged, offline or OfflineRmsle(settings), champion, min_sold, policy.rmsle_margin, roots
            ),
            lambda message: OfflineVsLiveSection(state="error", message=message),
        ),
        sellers=judged_sellers(logged.sellers, min_sold),
        drift=guarded(
            "drift runs",
            lambda: _drift_section(facts, settings, report_url, min_sold),
            lambda message: DriftSection(state="error", message=message),
        ),
        retrain=guarded(
            "retraining decisions",
            lambda: _retrain_section(facts, settings),
            lambda message: RetrainSection(state="error", message=message),
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

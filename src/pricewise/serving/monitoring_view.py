"""The prediction log and the warehouse in; the monitoring overview (champion, promotions, request rate and
latency, accuracy against sold prices, drift runs) and the files of recorded drift reports out.

Each section is computed on its own and carries its own state, so one failing source (a warehouse another
process is writing, an empty log, a database that lacks a SQL function) leaves the others intact and the page
still answers. The prediction log can hold millions of rows: counts, latency percentiles, RMSLE and coverage are
aggregated in the database, which returns one row per time bucket. Time buckets need a dialect-specific epoch
expression; SQLite and PostgreSQL have one here, other databases get an 'unsupported' section.

The warehouse is opened read-only for a few small queries per call and closed at once: DuckDB lets a writer
in only while no other process has the file open.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Integer, and_, case, cast, extract, func, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.sql.elements import ColumnElement

from pricewise.errors import PricewiseError
from pricewise.serving.schemas import (
    AccuracyBucket,
    AccuracyByModel,
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
    TrafficBucket,
    TrafficSection,
)
from pricewise.settings import Settings
from pricewise.store import warehouse
from pricewise.store.prediction_log import PredictionLog

logger = logging.getLogger(__name__)

MAX_BUCKETS = 120
BUCKET_SECONDS = (60, 5 * 60, 15 * 60, 3600, 3 * 3600, 6 * 3600, 86_400)
MAX_WINDOW = timedelta(seconds=(MAX_BUCKETS - 1) * BUCKET_SECONDS[-1])
LOG_FIGURES_TTL_SECONDS = 10.0
PAGE_LOCK_WAIT_SECONDS = 1.0  # a page waits this long for a batch command holding the write lock
MAX_ROWS = 50
CHAMPION_ACTIONS = ("first", "promote", "rollback")
REPORT_SUFFIXES = frozenset({".html", ".htm"})

SectionT = TypeVar("SectionT", bound=MonitoringSection)


class ReportUnavailableError(PricewiseError):
    """A run's report cannot be served; `status_code` says why (404 unknown or missing, 503 busy)."""

    def __init__(self, status_code: int, detail: str) -> None:
        """Keep the HTTP status the route answers with next to the message."""
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class WarehouseFacts:
    """What the monitoring page reads from the warehouse, or why it could not."""

    state: SectionState
    message: str | None = None
    champion: tuple[Any, ...] | None = None  # (decided_at, action, champion_after)
    promotions: list[tuple[Any, ...]] = field(default_factory=list)
    runs: list[tuple[Any, ...]] = field(default_factory=list)


def _iso(value: Any) -> str | None:
    """A timestamp as ISO 8601 in UTC; naive values (DuckDB TIMESTAMP, SQLite) are UTC by convention here."""
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return str(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_lock_conflict(exc: BaseException) -> bool:
    return "lock" in str(exc).lower()


def _busy_message() -> str:
    return "the warehouse is busy: another process is writing to it; reload in a moment"


def _missing_message(settings: Settings) -> str:
    return f"no warehouse at {settings.warehouse} yet: nothing has been promoted or monitored"


PROMOTION_COLUMNS = (
    "decided_at, registered_model, action, champion_before, challenger, champion_after, metrics, reason"
)
RUN_COLUMNS = (
    "run_id, created_at, status, window_kind, window_start, window_end, batch_id, model_version, drift_share, "
    "drifted_columns, prediction_drift, target_drift, feedback_rows, rmsle, coverage, message, report_html"
)


def read_warehouse(settings: Settings, registered_model: str, limit: int = MAX_ROWS) -> WarehouseFacts:
    """Read the champion, promotions and monitoring runs in one brief read-only connection.

    Args:
        settings: Where the warehouse is.
        registered_model: The model whose champion is reported.
        limit: Most promotions and runs returned (newest first).

    Returns:
        The rows, or a state that says why there are none ('missing', 'busy', 'error').
    """
    if not settings.warehouse.exists():
        return WarehouseFacts("missing", _missing_message(settings))
    try:
        with warehouse.connect(settings, read_only=True, lock_wait_seconds=PAGE_LOCK_WAIT_SECONDS) as con:
            tables = frozenset(
                str(row[0])
                for row in con.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_name IN ('promotions', 'monitoring_runs')"
                ).fetchall()
            )
            champion = None
            promotions: list[tuple[Any, ...]] = []
            runs: list[tuple[Any, ...]] = []
            if "promotions" in tables:
                champion = con.execute(
                    "SELECT decided_at, action, champion_after FROM promotions "
                    "WHERE registered_model = ? AND action IN ('first', 'promote', 'rollback') "
                    "ORDER BY decided_at DESC LIMIT 1",
                    [registered_model],
                ).fetchone()
                promotions = con.execute(
                    f"SELECT {PROMOTION_COLUMNS} FROM promotions ORDER BY decided_at DESC LIMIT ?", [limit]
                ).fetchall()
            if "monitoring_runs" in tables:
                runs = con.execute(
                    f"SELECT {RUN_COLUMNS} FROM monitoring_runs ORDER BY created_at DESC LIMIT ?", [limit]
                ).fetchall()
    except PricewiseError as exc:
        if _is_lock_conflict(exc):
            return WarehouseFacts("busy", _busy_message())
        logger.warning("monitoring: cannot open the warehouse: %s", exc)
        return WarehouseFacts("error", str(exc))
    return WarehouseFacts("ok", None, champion, promotions, runs)


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {"unparsed": str(text)}
    if isinstance(value, dict):
        return value
    return {} if value is None else {"value": value}


def _json_list(text: Any) -> list[str]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return [str(text)]
    if isinstance(value, list):
        return [str(item) for item in value]
    return [] if value is None else [str(value)]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def servable_report(settings: Settings, recorded: str | None) -> Path | None:
    """The recorded report file if it may be served: an existing HTML file inside the reports directory."""
    if not recorded:
        return None
    path = Path(recorded).resolve()  # a relative path was recorded from the same working directory
    if not path.is_relative_to(settings.reports.resolve()) or path.suffix.lower() not in REPORT_SUFFIXES:
        return None
    return path if path.is_file() else None


def _champion_section(
    facts: WarehouseFacts, registered_model: str, serving: ModelInfo | None
) -> ChampionSection:
    if facts.state != "ok":
        return ChampionSection(
            state=facts.state, message=facts.message, registered_model=registered_model, serving=serving
        )
    if facts.champion is None:
        return ChampionSection(
            state="empty",
            message=f"no champion of {registered_model} recorded yet (the command pricewise promote records one)",
            registered_model=registered_model,
            serving=serving,
        )
    decided_at, action, after = facts.champion
    version = _str(after)
    serves_champion = serving is not None and serving.name == registered_model and serving.version == version
    if serving is None:
        message = "no model is loaded in this worker yet"
    elif not serves_champion:
        message = (
            f"this worker serves {serving.name} v{serving.version or '-'} ({serving.source}); "
            f"it picks up v{version} at its next reload"
        )
    else:
        message = None
    return ChampionSection(
        state="ok",
        message=message,
        registered_model=registered_model,
        version=version,
        since=_iso(decided_at),
        promoted_by=str(action),
        run_id=serving.run_id if serving is not None and serves_champion else None,
        serving=serving,
    )


def _promotions_section(facts: WarehouseFacts) -> PromotionsSection:
    if facts.state != "ok":
        return PromotionsSection(state=facts.state, message=facts.message)
    if not facts.promotions:
        return PromotionsSection(
            state="empty", message="no promotion decisions yet (the command pricewise promote makes them)"
        )
    rows = [
        PromotionRow(
            decided_at=_iso(decided_at) or "",
            registered_model=str(model),
            action=str(action),
            champion_before=_str(before),
            challenger=_str(challenger),
            champion_after=_str(after),
            metrics=_json_object(metrics),
            reason=str(reason),
        )
        for decided_at, model, action, before, challenger, after, metrics, reason in facts.promotions
    ]
    return PromotionsSection(state="ok", rows=rows)


def _drift_section(
    facts: WarehouseFacts, settings: Settings, report_url: Callable[[str], str]
) -> DriftSection:
    if facts.state != "ok":
        return DriftSection(state=facts.state, message=facts.message)
    if not facts.runs:
        return DriftSection(
            state="empty", message="no monitoring runs yet (the command pricewise monitor records them)"
        )
    runs = []
    for row in facts.runs:
        (
            run_id,
            created_at,
            status,
            window_kind,
            window_start,
            window_end,
            batch_id,
            model_version,
            drift_share,
            drifted_columns,
            prediction_drift,
            target_drift,
            feedback_rows,
            rmsle,
            coverage,
            message,
            report_html,
        ) = row
        servable = servable_report(settings, report_html)
        runs.append(
            MonitoringRunRow(
                run_id=str(run_id),
                created_at=_iso(created_at) or "",
                status=str(status),
                window_kind=_str(window_kind),
                window_start=_iso(window_start),
                window_end=_iso(window_end),
                batch_id=_str(batch_id),
                model_version=_str(model_version),
                drift_share=_float(drift_share),
                drifted_columns=_json_list(drifted_columns),
                prediction_drift=None if prediction_drift is None else bool(prediction_drift),
                target_drift=None if target_drift is None else bool(target_drift),
                feedback_rows=None if feedback_rows is None else int(feedback_rows),
                rmsle=_float(rmsle),
                coverage=_float(coverage),
                message=str(message or ""),
                report_url=report_url(str(run_id)) if servable is not None else None,
            )
        )
    return DriftSection(state="ok", runs=runs)


def _epoch_seconds(dialect: str, column: Any) -> ColumnElement[int] | None:
    """Whole seconds since 1970 (UTC) of a timestamp column, in the database's own SQL; None if unknown."""
    if dialect == "sqlite":  # SQLAlchemy stores UTC wall-clock text that strftime reads
        return cast(func.strftime("%s", column), Integer)
    if dialect == "postgresql":
        return cast(func.floor(extract("epoch", column)), BigInteger)
    return None


def bucket_seconds(first_epoch: int, last_epoch: int) -> int:
    """The narrowest bucket width whose aligned buckets cover [first, last] in at most MAX_BUCKETS (a day at
    most)."""
    for width in BUCKET_SECONDS:
        if last_epoch // width - first_epoch // width + 1 <= MAX_BUCKETS:
            return width
    return BUCKET_SECONDS[-1]


@dataclass(frozen=True)
class Window:
    """The buckets a section shows: from an aligned start to the latest row."""

    width: int
    start: datetime
    end: datetime


def _window(first: datetime, last: datetime) -> Window:
    first, last = _utc(first), _utc(last)
    first_epoch = int(max(first, last - MAX_WINDOW).timestamp())
    width = bucket_seconds(first_epoch, int(last.timestamp()))
    start_epoch = first_epoch // width * width
    return Window(width, datetime.fromtimestamp(start_epoch, UTC), last)


def _bucket_start(epoch: Any) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def _unsupported(section: type[SectionT], dialect: str) -> SectionT:
    return section(
        state="unsupported",
        message=(
            f"time buckets are computed in SQL on SQLite and PostgreSQL; this prediction log runs on {dialect}"
        ),
    )


def traffic(log: PredictionLog) -> TrafficSection:
    """Suggestions per bucket and nearest-rank latency percentiles, aggregated in the database.

    The percentiles use window functions (SQLite 3.25+, PostgreSQL): rows are ranked by latency within their
    bucket, and p-th percentile is the latency at rank ceil(p * n). One row per bucket comes back.
    """
    predictions = log.predictions
    dialect = log.engine.dialect.name
    with log.engine.connect() as connection:
        total, first, last = connection.execute(
            select(func.count(), func.min(predictions.c.created_at), func.max(predictions.c.created_at))
        ).one()
        if not total:
            return TrafficSection(state="empty", message="no suggestions logged yet")
        epoch = _epoch_seconds(dialect, predictions.c.created_at)
        if epoch is None:
            return _unsupported(TrafficSection, dialect)
        window = _window(first, last)
        bucketed = (
            select((epoch - epoch % window.width).label("bucket"), predictions.c.latency_ms.label("latency"))
            .where(predictions.c.created_at >= window.start)
            .subquery()
        )
        ranked = select(
            bucketed.c.bucket,
            bucketed.c.latency,
            func.row_number().over(partition_by=bucketed.c.bucket, order_by=bucketed.c.latency).label("rank"),
            func.count().over(partition_by=bucketed.c.bucket).label("n"),
        ).subquery()

        def percentile(p: float) -> ColumnElement[Any]:
            return func.min(case((ranked.c.rank >= p * ranked.c.n, ranked.c.latency)))

        rows = connection.execute(
            select(ranked.c.bucket, ranked.c.n, percentile(0.50), percentile(0.95), percentile(0.99))
            .group_by(ranked.c.bucket, ranked.c.n)
            .order_by(ranked.c.bucket)
        ).all()
    minutes = window.width / 60
    buckets = [
        TrafficBucket(
            start=_bucket_start(bucket),
            requests=int(n),
            per_minute=int(n) / minutes,
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
        )
        for bucket, n, p50, p95, p99 in rows
    ]
    return TrafficSection(
        state="ok",
        bucket_seconds=window.width,
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
        total_requests=sum(b.requests for b in buckets),
        buckets=buckets,
    )


def _rmsle(mean_squared: float) -> float:
    return math.sqrt(max(mean_squared, 0.0))


def accuracy(log: PredictionLog) -> AccuracySection:
    """RMSLE and range coverage of logged suggestions against reported sold prices, per suggestion-time bucket.

    A suggestion counts once, with the latest sold price reported for it. RMSLE needs `ln` in SQL (PostgreSQL;
    SQLite builds with math functions, the default since 3.35).
    """
    predictions, feedback = log.predictions, log.feedback
    dialect = log.engine.dialect.name
    latest = (
        select(feedback.c.request_id, func.max(feedback.c.id).label("feedback_id"))
        .where(feedback.c.sold_price.is_not(None))
        .group_by(feedback.c.request_id)
        .subquery()
    )
    price = predictions.c.outputs["price"].as_float()
    sold_rows = (
        select(
            predictions.c.created_at,
            predictions.c.model_version,
            price.label("price"),
            predictions.c.outputs["low"].as_float().label("low"),
            predictions.c.outputs["high"].as_float().label("high"),
            predictions.c.outputs["coverage"].as_float().label("stated"),
            feedback.c.sold_price.label("sold"),
        )
        .select_from(
            predictions.join(latest, latest.c.request_id == predictions.c.request_id).join(
                feedback, feedback.c.id == latest.c.feedback_id
            )
        )
        .where(price.is_not(None))
        .subquery()
    )
    with log.engine.connect() as connection:
        total, first, last = connection.execute(
            select(func.count(), func.min(sold_rows.c.created_at), func.max(sold_rows.c.created_at))
        ).one()
        if not total:
            return AccuracySection(
                state="empty",
                message="no sold prices reported yet: they arrive through POST /v1/feedback with sold_price",
            )
        epoch = _epoch_seconds(dialect, sold_rows.c.created_at)
        if epoch is None:
            return _unsupported(AccuracySection, dialect)
        window = _window(first, last)
        scored = (
            select(
                (epoch - epoch % window.width).label("bucket"),
                sold_rows.c.model_version,
                (func.ln(1.0 + sold_rows.c.price) - func.ln(1.0 + sold_rows.c.sold)).label("log_error"),
                case(
                    (and_(sold_rows.c.low <= sold_rows.c.sold, sold_rows.c.sold <= sold_rows.c.high), 1.0),
                    else_=0.0,
                ).label("inside"),
                sold_rows.c.stated,
            )
            .where(sold_rows.c.created_at >= window.start)
            .subquery()
        )
        figures = (
            func.count(),
            func.avg(scored.c.log_error * scored.c.log_error),
            func.avg(scored.c.inside),
        )
        try:
            by_bucket = connection.execute(
                select(scored.c.bucket, *figures).group_by(scored.c.bucket).order_by(scored.c.bucket)
            ).all()
            by_model = connection.execute(
                select(scored.c.model_version, *figures)
                .group_by(scored.c.model_version)
                .order_by(scored.c.model_version)
            ).all()
            stated = connection.execute(select(func.avg(scored.c.stated))).scalar()
        except (OperationalError, ProgrammingError) as exc:
            if "ln" not in str(exc).lower():
                raise
            return AccuracySection(
                state="unsupported",
                message=f"this {dialect} database has no ln() function, which RMSLE needs",
            )
    buckets = [
        AccuracyBucket(start=_bucket_start(bucket), sold=int(n), rmsle=_rmsle(msq), coverage=float(inside))
        for bucket, n, msq, inside in by_bucket
    ]
    sold = sum(b.sold for b in buckets)
    mean_squared = sum(int(n) * float(msq) for _, n, msq, _ in by_bucket) / sold
    return AccuracySection(
        state="ok",
        bucket_seconds=window.width,
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
        sold=sold,
        rmsle=_rmsle(mean_squared),
        coverage=sum(b.coverage * b.sold for b in buckets) / sold,
        stated_coverage=_float(stated),
        buckets=buckets,
        by_model=[
            AccuracyByModel(
                model_version=_str(version),
                sold=int(n),
                rmsle=_rmsle(msq),
                coverage=float(inside),
            )
            for version, n, msq, inside in by_model
        ],
    )


def _guarded(name: str, compute: Callable[[], SectionT], failed: Callable[[str], SectionT]) -> SectionT:
    """Run one section; a failure becomes that section's 'error' state (logged), never the whole answer's."""
    try:
        return compute()
    except Exception as exc:
        logger.exception("monitoring section %s failed", name)
        return failed(f"could not compute {name}: {type(exc).__name__} (see the server log)")


class LogFigures:
    """Traffic and accuracy of one prediction log, recomputed at most every `ttl_seconds`.

    On SQLite, a million logged rows take seconds to aggregate. A page view asks twice (the page, then its
    charts), and several viewers or refreshes come at once: one computation serves them all, and concurrent
    callers wait for it instead of starting their own. Failed sections are not kept.
    """

    def __init__(self, log: PredictionLog, ttl_seconds: float = LOG_FIGURES_TTL_SECONDS) -> None:
        """Bind to a prediction log.

        Args:
            log: The worker's prediction log.
            ttl_seconds: How long computed figures are reused.
        """
        self.log = log
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._computed_at = -math.inf
        self._figures: tuple[TrafficSection, AccuracySection] | None = None

    def get(self) -> tuple[TrafficSection, AccuracySection]:
        """The traffic and accuracy sections, fresh or at most `ttl_seconds` old."""
        with self._lock:
            if self._figures is not None and time.monotonic() - self._computed_at < self.ttl_seconds:
                return self._figures
            figures = (
                _guarded(
                    "traffic",
                    lambda: traffic(self.log),
                    lambda message: TrafficSection(state="error", message=message),
                ),
                _guarded(
                    "accuracy",
                    lambda: accuracy(self.log),
                    lambda message: AccuracySection(state="error", message=message),
                ),
            )
            if all(section.state != "error" for section in figures):
                self._figures, self._computed_at = figures, time.monotonic()
            return figures


def overview(
    settings: Settings,
    registered_model: str,
    log_figures: LogFigures,
    serving: ModelInfo | None,
    report_url: Callable[[str], str],
) -> MonitoringOverview:
    """Everything the monitoring page shows.

    Args:
        settings: Where the warehouse and the reports are.
        registered_model: The model name the promotion gate works on (`train.registered_model`).
        log_figures: Traffic and accuracy of this worker's prediction log.
        serving: The model answering in this worker, or None before one is loaded.
        report_url: Maps a run id to the URL of its report on this server.

    Returns:
        The overview; a section that cannot be computed says so in its state and message.
    """
    try:
        facts = read_warehouse(settings, registered_model)
    except Exception as exc:
        logger.exception("monitoring: reading the warehouse failed")
        facts = WarehouseFacts("error", f"could not read the warehouse: {type(exc).__name__}")
    traffic_section, accuracy_section = log_figures.get()
    return MonitoringOverview(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        champion=_guarded(
            "the champion",
            lambda: _champion_section(facts, registered_model, serving),
            lambda message: ChampionSection(
                state="error", message=message, registered_model=registered_model, serving=serving
            ),
        ),
        promotions=_guarded(
            "promotions",
            lambda: _promotions_section(facts),
            lambda message: PromotionsSection(state="error", message=message),
        ),
        traffic=traffic_section,
        accuracy=accuracy_section,
        drift=_guarded(
            "drift runs",
            lambda: _drift_section(facts, settings, report_url),
            lambda message: DriftSection(state="error", message=message),
        ),
    )


def report_file(settings: Settings, run_id: str) -> Path:
    """The Evidently HTML report recorded for a monitoring run.

    Only the path recorded in `monitoring_runs.report_html` is ever returned, and only when it is an existing
    HTML file inside the reports directory.

    Raises:
        ReportUnavailableError: 404 for an unknown run, a run without a report, or a report file that is gone or
            outside the reports directory; 503 while another process holds the warehouse's write lock.
    """
    if not settings.warehouse.exists():
        raise ReportUnavailableError(404, f"no monitoring run {run_id}: {_missing_message(settings)}")
    try:
        with warehouse.connect(settings, read_only=True, lock_wait_seconds=PAGE_LOCK_WAIT_SECONDS) as con:
            has_runs = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'monitoring_runs'"
            ).fetchone()
            row = (
                con.execute("SELECT report_html FROM monitoring_runs WHERE run_id = ?", [run_id]).fetchone()
                if has_runs and has_runs[0]
                else None
            )
    except PricewiseError as exc:
        if _is_lock_conflict(exc):
            raise ReportUnavailableError(503, _busy_message()) from exc
        raise ReportUnavailableError(503, f"cannot read the warehouse: {exc}") from exc
    except Exception as exc:
        logger.exception("monitoring: looking up the report of run %s failed", run_id)
        raise ReportUnavailableError(503, f"cannot read the warehouse: {type(exc).__name__}") from exc
    if row is None:
        raise ReportUnavailableError(404, f"no monitoring run {run_id}")
    recorded = row[0]
    if not recorded:
        raise ReportUnavailableError(404, f"monitoring run {run_id} recorded no report")
    path = servable_report(settings, recorded)
    if path is None:
        raise ReportUnavailableError(
            404,
            f"the report of monitoring run {run_id} is missing (or not an HTML file in the reports directory)",
        )
    return path

"""This worker's prediction log in; the monitoring page's log sections out: request rate and latency
percentiles (every bucket of the window, those without requests as gaps), accuracy against sold prices (overall
and per model version, for the offline-against-live comparison), the sellers' response to suggestions and the
share of fallback suggestions, recomputed at most every few seconds.

The prediction log can hold millions of rows: request counts and latency percentiles are aggregated in the
database, which returns one row per time bucket; the buckets need a dialect-specific epoch expression (SQLite and
PostgreSQL have one here, other databases get an 'unsupported' traffic section). Accuracy is computed by
`pricewise.monitoring.figures.accuracy`, the code `pricewise monitor` judges a window with, on the suggestions
that have a sold price.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Connection, Integer, case, cast, extract, func, select
from sqlalchemy.sql.elements import ColumnElement

from pricewise.monitoring import figures
from pricewise.serving.schemas import (
    AccuracyBucket,
    AccuracyByModel,
    AccuracySection,
    MonitoringSection,
    SellerResponseByModel,
    SellerResponseSection,
    TrafficBucket,
    TrafficSection,
)
from pricewise.store.prediction_log import PredictionLog

logger = logging.getLogger(__name__)

MAX_BUCKETS = 120
BUCKET_SECONDS = (60, 5 * 60, 15 * 60, 3600, 3 * 3600, 6 * 3600, 86_400)
MAX_WINDOW = timedelta(seconds=(MAX_BUCKETS - 1) * BUCKET_SECONDS[-1])
LOG_FIGURES_TTL_SECONDS = 10.0

SectionT = TypeVar("SectionT", bound=MonitoringSection)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def guarded(name: str, compute: Callable[[], SectionT], failed: Callable[[str], SectionT]) -> SectionT:
    """Run one section; a failure becomes that section's 'error' state (logged), never the whole answer's."""
    try:
        return compute()
    except Exception as exc:
        logger.exception("monitoring section %s failed", name)
        return failed(f"could not compute {name}: {type(exc).__name__} (see the server log)")


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
class BucketSpan:
    """The time buckets a section shows: their width, from an aligned start to the latest row."""

    width: int
    start: datetime
    end: datetime


def _logged_span(connection: Connection, log: PredictionLog) -> BucketSpan | None:
    """The window of the latest MAX_WINDOW of logged suggestions; None when nothing is logged."""
    p = log.predictions
    first, last = connection.execute(select(func.min(p.c.created_at), func.max(p.c.created_at))).one()
    return None if last is None else _span(first, last)


def _span(first: datetime, last: datetime) -> BucketSpan:
    first, last = _utc(first), _utc(last)
    first_epoch = int(max(first, last - MAX_WINDOW).timestamp())
    width = bucket_seconds(first_epoch, int(last.timestamp()))
    start_epoch = first_epoch // width * width
    return BucketSpan(width, datetime.fromtimestamp(start_epoch, UTC), last)


def _bucket_start(epoch: Any) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def _unsupported(section: type[SectionT], dialect: str) -> SectionT:
    return section(
        state="unsupported",
        message=(
            f"time buckets are computed in SQL on SQLite and PostgreSQL; this prediction log runs on {dialect}"
        ),
    )


class TrafficPoint(BaseModel):
    """One bucket of the latency chart; a bucket without requests has no latency (null), so lines break there."""

    start: str = Field(description="Bucket start (ISO 8601, UTC).")
    requests: int
    per_minute: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class TrafficSeries(TrafficSection):
    """Request rate and latency over time, with every bucket of the window in `series`."""

    series: list[TrafficPoint] = Field(
        default_factory=list,
        description=(
            "Every bucket from the first with requests to the latest; buckets without requests have 0 requests "
            "and null latencies (a gap in the chart, not a line drawn across it)."
        ),
    )


def series(buckets: list[TrafficBucket], width: int) -> list[TrafficPoint]:
    """The buckets with the empty buckets between them filled in: 0 requests, no latency."""
    if not buckets:
        return []
    by_epoch = {int(datetime.fromisoformat(b.start).timestamp()): b for b in buckets}
    first, last = min(by_epoch), max(by_epoch)
    points = []
    for epoch in range(first, last + width, width):
        bucket = by_epoch.get(epoch)
        if bucket is None:
            points.append(
                TrafficPoint(
                    start=_bucket_start(epoch),
                    requests=0,
                    per_minute=0.0,
                    p50_ms=None,
                    p95_ms=None,
                    p99_ms=None,
                )
            )
        else:
            points.append(TrafficPoint(**bucket.model_dump()))
    return points


def traffic(log: PredictionLog) -> TrafficSeries:
    """Suggestions per bucket and nearest-rank latency percentiles, aggregated in the database.

    The percentiles use window functions (SQLite 3.25+, PostgreSQL): rows are ranked by latency within their
    bucket, and p-th percentile is the latency at rank ceil(p * n). One row per bucket with requests comes back;
    `series` adds the buckets without any.
    """
    predictions = log.predictions
    dialect = log.engine.dialect.name
    with log.engine.connect() as connection:
        total, first, last = connection.execute(
            select(func.count(), func.min(predictions.c.created_at), func.max(predictions.c.created_at))
        ).one()
        if not total:
            return TrafficSeries(state="empty", message="no suggestions logged yet")
        epoch = _epoch_seconds(dialect, predictions.c.created_at)
        if epoch is None:
            return _unsupported(TrafficSeries, dialect)
        window = _span(first, last)
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
    return TrafficSeries(
        state="ok",
        bucket_seconds=window.width,
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
        total_requests=sum(b.requests for b in buckets),
        buckets=buckets,
        series=series(buckets, window.width),
    )


def accuracy(log: PredictionLog) -> AccuracySection:
    """RMSLE and range coverage of logged suggestions against reported sold prices, per suggestion-time bucket
    and per model version.

    A suggestion counts once, with the latest sold price reported for it (`PredictionLog.sold_suggestions`); the
    figures are `pricewise.monitoring.figures.accuracy`, as `pricewise monitor` computes them.
    """
    sold = log.sold_suggestions(with_inputs=False)
    sold = sold[sold["price"].notna()]
    if sold.empty:
        return AccuracySection(
            state="empty",
            message=(
                "no sold prices yet: the marketplace sends them to POST /v1/outcomes, or the operator imports its "
                "sales export (pricewise outcomes import)"
            ),
        )
    span = _span(sold["created_at"].min().to_pydatetime(), sold["created_at"].max().to_pydatetime())
    shown = sold[sold["created_at"] >= pd.Timestamp(span.start)]
    epoch = (shown["created_at"] - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(seconds=1)
    overall = figures.accuracy(shown)
    buckets = [
        AccuracyBucket(
            start=_bucket_start(bucket),
            sold=part.sold,
            rmsle=part.rmsle or 0.0,
            coverage=part.coverage or 0.0,
        )
        for bucket, part in figures.accuracy_by(shown, epoch - epoch % span.width)
    ]
    by_model = [
        AccuracyByModel(
            model_version=None if version is None else str(version),
            sold=part.sold,
            rmsle=part.rmsle or 0.0,
            coverage=part.coverage or 0.0,
        )
        for version, part in figures.accuracy_by(shown, shown["model_version"])
    ]
    stated = shown["stated_coverage"].mean()
    return AccuracySection(
        state="ok",
        bucket_seconds=span.width,
        window_start=span.start.isoformat(),
        window_end=span.end.isoformat(),
        sold=overall.sold,
        rmsle=overall.rmsle,
        coverage=overall.coverage,
        stated_coverage=None if pd.isna(stated) else float(stated),
        buckets=buckets,
        by_model=by_model,
    )


def sellers(log: PredictionLog) -> SellerResponseSection:
    """The sellers' response to the suggestions of the window: how many answered, kept the suggestion, and the
    median chosen/suggested ratio, overall and per model version (`pricewise.monitoring.figures.seller_response`).

    The window is the latest MAX_WINDOW of suggestions, as for the other sections.
    """
    with log.engine.connect() as connection:
        span = _logged_span(connection, log)
    if span is None:
        return SellerResponseSection(state="empty", message="no suggestions logged yet")
    choices = log.seller_choices(since=span.start)
    suggestions = log.count_since(span.start)
    if choices.empty:
        return SellerResponseSection(
            state="empty",
            message=f"no seller has chosen a price yet for the {suggestions} suggestions logged (POST /v1/feedback)",
            suggestions=suggestions,
        )
    overall = figures.seller_response(choices)
    by_model = []
    for version, part in choices.groupby(choices["model_version"].rename("key"), sort=True, dropna=False):
        response = figures.seller_response(part)
        if response.answered:
            by_model.append(
                SellerResponseByModel(
                    model_version=None if pd.isna(version) else str(version),
                    answered=response.answered,
                    acceptance_rate=response.acceptance_rate or 0.0,
                    median_ratio=response.median_ratio or 0.0,
                )
            )
    return SellerResponseSection(
        state="ok",
        window_start=span.start.isoformat(),
        window_end=span.end.isoformat(),
        suggestions=suggestions,
        answered=overall.answered,
        response_rate=overall.answered / suggestions if suggestions else None,
        acceptance_rate=overall.acceptance_rate,
        within_range=overall.within_range,
        median_ratio=overall.median_ratio,
        by_model=by_model,
    )


def live_accuracy(log: PredictionLog) -> list[tuple[figures.ModelKey, figures.Accuracy]]:
    """`pricewise.monitoring.figures.accuracy` per model (name and version) over the accuracy section's window:
    the live side of the offline-against-live comparison."""
    sold = log.sold_suggestions(with_inputs=False)
    sold = sold[sold["price"].notna()]
    if sold.empty:
        return []
    span = _span(sold["created_at"].min().to_pydatetime(), sold["created_at"].max().to_pydatetime())
    return figures.accuracy_by_model(sold[sold["created_at"] >= pd.Timestamp(span.start)])


class FallbackSection(MonitoringSection):
    """How many of the window's suggestions the rules baseline made (the main model could not be served)."""

    window_start: str | None = None
    window_end: str | None = None
    suggestions: int = Field(default=0, description="Suggestions logged in the window.")
    fallback: int = Field(
        default=0, description="Of them, suggestions flagged `fallback` (the rules baseline)."
    )


def fallbacks(log: PredictionLog) -> FallbackSection:
    """The suggestions and the fallback suggestions of the latest MAX_WINDOW, counted in the database."""
    p = log.predictions
    with log.engine.connect() as connection:
        span = _logged_span(connection, log)
        if span is None:
            return FallbackSection(state="empty", message="no suggestions logged yet")
        total, fallback = connection.execute(
            select(func.count(), func.coalesce(func.sum(case((p.c.fallback, 1), else_=0)), 0)).where(
                p.c.created_at >= span.start
            )
        ).one()
    return FallbackSection(
        state="ok",
        window_start=span.start.isoformat(),
        window_end=span.end.isoformat(),
        suggestions=int(total),
        fallback=int(fallback),
    )


@dataclass(frozen=True)
class LogSections:
    """Everything the page computes from the prediction log; a live accuracy that failed carries its reason."""

    traffic: TrafficSeries
    accuracy: AccuracySection
    sellers: SellerResponseSection
    fallbacks: FallbackSection
    live: list[tuple[figures.ModelKey, figures.Accuracy]] = field(default_factory=list)
    live_error: str | None = None

    def failed(self) -> bool:
        """Whether any part failed (such figures are not kept for reuse)."""
        parts = (self.traffic, self.accuracy, self.sellers, self.fallbacks)
        return self.live_error is not None or any(section.state == "error" for section in parts)


class LogFigures:
    """The log sections of one prediction log, recomputed at most every `ttl_seconds`.

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
        self._figures: LogSections | None = None

    def get(self) -> LogSections:
        """The log's sections, fresh or at most `ttl_seconds` old."""
        with self._lock:
            if self._figures is not None and time.monotonic() - self._computed_at < self.ttl_seconds:
                return self._figures
            live: list[tuple[figures.ModelKey, figures.Accuracy]] = []
            live_error = None
            try:
                live = live_accuracy(self.log)
            except Exception as exc:
                logger.exception("monitoring section live accuracy failed")
                live_error = f"could not compute live accuracy: {type(exc).__name__} (see the server log)"
            sections = LogSections(
                traffic=guarded(
                    "traffic",
                    lambda: traffic(self.log),
                    lambda message: TrafficSeries(state="error", message=message),
                ),
                accuracy=guarded(
                    "accuracy",
                    lambda: accuracy(self.log),
                    lambda message: AccuracySection(state="error", message=message),
                ),
                sellers=guarded(
                    "seller response",
                    lambda: sellers(self.log),
                    lambda message: SellerResponseSection(state="error", message=message),
                ),
                fallbacks=guarded(
                    "fallbacks",
                    lambda: fallbacks(self.log),
                    lambda message: FallbackSection(state="error", message=message),
                ),
                live=live,
                live_error=live_error,
            )
            if not sections.failed():
                self._figures, self._computed_at = sections, time.monotonic()
            return sections

"""Decisions in, typed rows in a SQLAlchemy database out: promotions, monitoring runs and retraining decisions.

These tables are written by several processes (promote, monitor, retrain, the DAGs) and read by the server's
monitoring page, so they live outside the DuckDB warehouse, which allows one writing process and would make the
page wait for batch work. SQLite under the data directory by default; PostgreSQL or any SQLAlchemy URL through
``PRICEWISE_DECISIONS_URL``. Every statement names its columns.

``promotions`` is history: who is champion now is the registry's alias, nothing else.

The tables carry a schema version (`pricewise.store.schema`, component ``decisions``); version 1 is the three
tables, version 2 adds the monitoring runs' RMSLE estimated without sold prices (three nullable columns, added in
place; older runs keep NULL).

Warehouses made before these tables moved here hold them in DuckDB. The batch commands open the store with
`open_batch_store`, which copies those rows over once, while the store is still empty; the server opens it with
`open_store` and never touches the warehouse.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.schema import Schema, prepare
from pricewise.store.sql import engine_for, is_unavailable, reason, redacted, sqlite_url, unavailable

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
ESTIMATE_COLUMNS = ("estimated_rmsle", "estimated_rmsle_low", "estimated_rmsle_high")
WHAT = "the decision tables"

PromotionAction = Literal["first", "promote", "refuse", "rollback"]
MonitorStatus = Literal["ok", "drift", "empty", "error"]
RetrainAction = Literal["none", "check", "trained", "failed"]
WindowKind = Literal["predictions", "batch"]

# Monitoring runs that compared something, the ones retraining judges.
COMPARED: tuple[MonitorStatus, ...] = ("ok", "drift")


@dataclass(frozen=True)
class Promotion:
    """One decision of the promotion gate, or one rollback."""

    decided_at: datetime
    registered_model: str
    action: PromotionAction
    champion_before: str | None
    challenger: str | None
    champion_after: str | None
    figures: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class MonitoringRun:
    """One monitoring run's summary."""

    run_id: str
    created_at: datetime
    window_kind: WindowKind
    window_start: datetime | None
    window_end: datetime | None
    batch_id: str | None  # the compared batch when window_kind is 'batch'
    model_version: str | None  # the champion when the run was made
    status: MonitorStatus
    reference_rows: int
    current_rows: int
    compared_rows: int  # rows per side handed to Evidently, after sampling
    drift_share: float | None  # share of drifted input columns
    drifted_columns: list[str]
    prediction_drift: bool | None
    target_drift: bool | None
    feedback_rows: int  # suggestions in the window with a sold price
    rmsle: float | None
    coverage: float | None
    message: str
    report_html: str | None
    report_json: str | None
    # The window's RMSLE estimated without sold prices (direct loss estimation), with a ~95% interval.
    estimated_rmsle: float | None = None
    estimated_rmsle_low: float | None = None
    estimated_rmsle_high: float | None = None


@dataclass(frozen=True)
class RetrainDecision:
    """One decision of the retraining policy, with each rule's value and threshold."""

    decided_at: datetime
    monitoring_run_id: str | None
    due: bool
    reasons: list[dict[str, Any]]
    action: RetrainAction
    challenger_version: str | None
    promotion_action: str | None
    message: str


def _tables(metadata: MetaData) -> dict[type, Table]:
    promotions = Table(
        "promotions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("decided_at", DateTime(timezone=True), nullable=False, index=True),
        Column("registered_model", String(200), nullable=False),
        Column("action", String(20), nullable=False),
        Column("champion_before", String(50)),
        Column("challenger", String(50)),
        Column("champion_after", String(50)),
        Column("figures", JSON, nullable=False),
        Column("reason", Text, nullable=False),
    )
    monitoring_runs = Table(
        "monitoring_runs",
        metadata,
        Column("run_id", String(64), primary_key=True),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
        Column("window_kind", String(20), nullable=False),
        Column("window_start", DateTime(timezone=True)),
        Column("window_end", DateTime(timezone=True)),
        Column("batch_id", String(64)),
        Column("model_version", String(50)),
        Column("status", String(20), nullable=False),
        Column("reference_rows", Integer, nullable=False),
        Column("current_rows", Integer, nullable=False),
        Column("compared_rows", Integer, nullable=False),
        Column("drift_share", Float),
        Column("drifted_columns", JSON, nullable=False),
        Column("prediction_drift", Boolean),
        Column("target_drift", Boolean),
        Column("feedback_rows", Integer, nullable=False),
        Column("rmsle", Float),
        Column("coverage", Float),
        Column("message", Text, nullable=False),
        Column("report_html", Text),
        Column("report_json", Text),
        *(Column(name, Float) for name in ESTIMATE_COLUMNS),
    )
    retrain_decisions = Table(
        "retrain_decisions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("decided_at", DateTime(timezone=True), nullable=False, index=True),
        Column("monitoring_run_id", String(64)),
        Column("due", Boolean, nullable=False),
        Column("reasons", JSON, nullable=False),
        Column("action", String(20), nullable=False),
        Column("challenger_version", String(50)),
        Column("promotion_action", String(20)),
        Column("message", Text, nullable=False),
    )
    return {Promotion: promotions, MonitoringRun: monitoring_runs, RetrainDecision: retrain_decisions}


def _add_estimate_columns(connection: Connection) -> None:
    """Version 2: the monitoring runs' estimated RMSLE and its interval, NULL for the runs made before."""
    inspector = inspect(connection)
    if not inspector.has_table("monitoring_runs"):
        return  # created whole, with the columns, right after the steps
    present = {c["name"] for c in inspector.get_columns("monitoring_runs")}
    for name in ESTIMATE_COLUMNS:
        if name not in present:
            connection.execute(text(f"ALTER TABLE monitoring_runs ADD COLUMN {name} FLOAT"))


def default_url(settings: Settings) -> str:
    """The decision tables' SQLAlchemy URL: settings, or SQLite at <data_dir>/decisions.db."""
    return settings.decisions_url or sqlite_url(settings.data_dir / "decisions.db")


def _utc(value: datetime | None) -> datetime | None:
    """Datetimes come back naive from SQLite; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


Row = Promotion | MonitoringRun | RetrainDecision


class DecisionStore:
    """The three decision tables behind one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        """Open (and create if needed) the tables.

        Raises:
            StoreUnavailableError: The database cannot be reached or refuses the credentials.
            PricewiseError: The database cannot be opened or created, or holds a schema this version cannot
                use; messages show the URL without its password.
        """
        self.url = url
        try:
            self.engine: Engine = engine_for(url)
        except OSError as exc:  # the SQLite file's directory cannot be created
            raise PricewiseError(f"cannot open {WHAT} at {redacted(url)}: {exc}") from exc
        self.metadata = MetaData()
        self._tables = _tables(self.metadata)
        try:
            prepare(
                self.engine,
                Schema("decisions", WHAT, SCHEMA_VERSION, self.metadata, steps={2: _add_estimate_columns}),
                url,
            )
        except BaseException:
            self.engine.dispose()
            raise

    def _failed(self, doing: str, exc: SQLAlchemyError) -> PricewiseError:
        """The error for a failed statement: unavailable (the database is out of reach) or the database's reason,
        without the statement or the URL's password."""
        if is_unavailable(exc):
            return unavailable(WHAT, self.url, exc)
        return PricewiseError(f"cannot {doing}: {reason(exc, self.url)}")

    def table(self, kind: type) -> Table:
        """The table that holds rows of `kind` (Promotion, MonitoringRun or RetrainDecision)."""
        return self._tables[kind]

    def record(self, row: Row) -> None:
        """Insert one row (committed when this returns).

        Raises:
            PricewiseError: The database cannot be written.
        """
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(self.table(type(row))).values(**asdict(row)))
        except SQLAlchemyError as exc:
            raise self._failed(f"record the {type(row).__name__} decision", exc) from exc

    def _read(self, kind: type[Any], query: Any) -> list[Any]:
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise self._failed("read the decision tables", exc) from exc
        names = [f.name for f in fields(kind)]
        out = []
        for row in rows:
            values = {name: row[name] for name in names}
            out.append(kind(**{k: _utc(v) if isinstance(v, datetime) else v for k, v in values.items()}))
        return out

    def promotions(self, registered_model: str | None = None, limit: int | None = None) -> list[Promotion]:
        """Promotion decisions, oldest first (the newest `limit` of them when given)."""
        t = self.table(Promotion)
        query = select(t).order_by(t.c.decided_at.desc(), t.c.id.desc())
        if registered_model is not None:
            query = query.where(t.c.registered_model == registered_model)
        if limit is not None:
            query = query.limit(limit)
        return list(reversed(self._read(Promotion, query)))

    def monitoring_runs(
        self, limit: int | None = None, statuses: tuple[str, ...] = ()
    ) -> list[MonitoringRun]:
        """Monitoring runs, newest first, optionally only those with one of `statuses`."""
        t = self.table(MonitoringRun)
        query = select(t).order_by(t.c.created_at.desc())
        if statuses:
            query = query.where(t.c.status.in_(statuses))
        if limit is not None:
            query = query.limit(limit)
        return self._read(MonitoringRun, query)

    def monitoring_run(self, run_id: str) -> MonitoringRun | None:
        """One monitoring run by id."""
        t = self.table(MonitoringRun)
        rows = self._read(MonitoringRun, select(t).where(t.c.run_id == run_id))
        return rows[0] if rows else None

    def latest_compared_run(self) -> MonitoringRun | None:
        """The newest monitoring run that compared something (status ok or drift)."""
        runs = self.monitoring_runs(limit=1, statuses=COMPARED)
        return runs[0] if runs else None

    def retrain_decisions(self, limit: int | None = None) -> list[RetrainDecision]:
        """Retraining decisions, newest first."""
        t = self.table(RetrainDecision)
        query = select(t).order_by(t.c.decided_at.desc(), t.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return self._read(RetrainDecision, query)

    def is_empty(self) -> bool:
        """Whether none of the three tables holds a row."""
        try:
            with self.engine.connect() as connection:
                return all(
                    connection.execute(select(func.count()).select_from(t)).scalar_one() == 0
                    for t in self._tables.values()
                )
        except SQLAlchemyError as exc:
            raise self._failed("read the decision tables", exc) from exc

    def record_all(self, rows: list[Row]) -> None:
        """Insert rows in one transaction: all of them are committed, or none.

        Raises:
            PricewiseError: The database cannot be written.
        """
        try:
            with self.engine.begin() as connection:
                for row in rows:
                    connection.execute(insert(self.table(type(row))).values(**asdict(row)))
        except SQLAlchemyError as exc:
            raise self._failed(f"record {len(rows)} decisions", exc) from exc

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()


def open_store(settings: Settings) -> DecisionStore:
    """The decision tables the settings point at.

    Raises:
        PricewiseError: The database cannot be opened.
    """
    return DecisionStore(default_url(settings))


def open_batch_store(settings: Settings) -> DecisionStore:
    """The decision tables, for a batch command: on first use, rows an older warehouse holds are copied in.

    Raises:
        PricewiseError: The database or the warehouse cannot be opened, or the copy fails (nothing is copied).
    """
    store = open_store(settings)
    try:
        migrate_from_warehouse(store, settings)
    except BaseException:
        store.close()
        raise
    return store


def migrate_from_warehouse(store: DecisionStore, settings: Settings) -> int:
    """Copy promotions, monitoring runs and retraining decisions from the warehouse, once.

    Nothing happens when the store already holds a row (it has been in use, or was migrated) or when the
    warehouse has none of the old tables' rows. The copy is one transaction.

    Returns:
        The number of rows copied.

    Raises:
        PricewiseError: The warehouse cannot be read or the store cannot be written.
    """
    if not store.is_empty():
        return 0
    from pricewise.store import warehouse  # noqa: PLC0415 - the server imports this module, never the warehouse

    legacy = warehouse.legacy_decisions(settings)
    rows: list[Row] = [_legacy_promotion(r) for r in legacy.get("promotions", [])]
    rows += [_legacy_run(r) for r in legacy.get("monitoring_runs", [])]
    rows += [_legacy_retrain(r) for r in legacy.get("retrain_decisions", [])]
    if not rows:
        return 0
    store.record_all(rows)
    logger.info("copied %d decisions from the warehouse %s into %s", len(rows), settings.warehouse, store.url)
    return len(rows)


def _loaded(text: Any, empty: Any) -> Any:
    if text is None:
        return empty
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return {"unparsed": text} if isinstance(empty, dict) else [text]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _aware(value: Any) -> datetime | None:
    """The warehouse stored UTC wall-clock time without a zone."""
    return _utc(value) if isinstance(value, datetime) else None


def _required_time(row: dict[str, Any], column: str) -> datetime:
    value = _aware(row.get(column))
    if value is None:
        raise PricewiseError(f"a decision row in the warehouse has no {column}: {row}")
    return value


def _legacy_promotion(row: dict[str, Any]) -> Promotion:
    decided_at = _required_time(row, "decided_at")
    return Promotion(
        decided_at=decided_at,
        registered_model=str(row["registered_model"]),
        action=row["action"],
        champion_before=_text(row.get("champion_before")),
        challenger=_text(row.get("challenger")),
        champion_after=_text(row.get("champion_after")),
        figures=dict(_loaded(row.get("metrics"), {})),
        reason=str(row["reason"]),
    )


def _legacy_run(row: dict[str, Any]) -> MonitoringRun:
    created_at = _required_time(row, "created_at")
    return MonitoringRun(
        run_id=str(row["run_id"]),
        created_at=created_at,
        window_kind=row["window_kind"],
        window_start=_aware(row.get("window_start")),
        window_end=_aware(row.get("window_end")),
        batch_id=_text(row.get("batch_id")),
        model_version=_text(row.get("model_version")),
        status=row["status"],
        reference_rows=int(row["reference_rows"]),
        current_rows=int(row["current_rows"]),
        compared_rows=int(row["compared_rows"]),
        drift_share=None if row.get("drift_share") is None else float(row["drift_share"]),
        drifted_columns=[str(c) for c in _loaded(row.get("drifted_columns"), [])],
        prediction_drift=row.get("prediction_drift"),
        target_drift=row.get("target_drift"),
        feedback_rows=int(row["feedback_rows"]),
        rmsle=None if row.get("rmsle") is None else float(row["rmsle"]),
        coverage=None if row.get("coverage") is None else float(row["coverage"]),
        message=str(row["message"]),
        report_html=_text(row.get("report_html")),
        report_json=_text(row.get("report_json")),
    )


def _legacy_retrain(row: dict[str, Any]) -> RetrainDecision:
    decided_at = _required_time(row, "decided_at")
    return RetrainDecision(
        decided_at=decided_at,
        monitoring_run_id=_text(row.get("monitoring_run_id")),
        due=bool(row["due"]),
        reasons=list(_loaded(row.get("reasons"), [])),
        action=row["action"],
        challenger_version=_text(row.get("challenger_version")),
        promotion_action=_text(row.get("promotion_action")),
        message=str(row["message"]),
    )


def json_ready(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as JSON can store them: numbers stay numbers, anything else becomes its string."""
    return dict(json.loads(json.dumps(figures, default=str)))

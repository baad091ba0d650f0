"""Served suggestions, seller feedback and trusted outcomes in, durable rows in a SQLAlchemy database (SQLite
WAL by default) out; and the reads made of them: the sold price per suggestion (one query, which monitoring, the
harvest of sold listings and the monitoring page share), the sold suggestions, and a window of suggestions.

Two kinds of answer come back about a suggestion. Feedback is what the seller did on the page (the price they
accepted); anyone who holds a request id can send it, so it is never a label. Outcomes are sold prices from a
trusted source (the authenticated outcomes endpoint or the marketplace's sales export); each row keeps its
source, one outcome per suggestion, and only outcomes are sold prices to monitoring, the harvest and the page.

Durability: `record_suggestions` commits before the route returns, so a suggestion a client received is in the
database. On SQLite the database runs in WAL mode with ``synchronous=NORMAL`` by default: COMMIT returns once
the transaction is written to the write-ahead log file, i.e. handed to the operating system, so a committed
row survives a killed server process, whatever the signal. It does not survive an OS crash or power cut that
comes before the OS writes the file out; ``serve.log_synchronous: FULL`` closes that gap by fsyncing the log
on every commit, at the price of one fsync per group of requests (0.3 ms on an idle disk here, several on a
busy one). WAL lets the worker processes read while one writes; writers wait for each other through the busy
timeout instead of failing.

On PostgreSQL (``PRICEWISE_PREDICTION_LOG_URL=postgresql://...``, psycopg 3) several API processes on several hosts
write one log; COMMIT returns once the server has flushed its WAL (the server's ``synchronous_commit``). When the
database is down or restarting, writes raise `StoreUnavailableError` at once (the API answers 503) and the next
write after it is back reconnects; nothing was committed for a write that raised, so nothing returned is lost.

Whether a suggestion can be logged right now (`write_problem`, behind /ready): the last write failed and a probe
write still fails, or a SQLite file's disk is read-only or has less free space than the caller asks for.

The tables carry a schema version (`pricewise.store.schema`): version 1 is predictions and feedback, version 2
adds outcomes (a new table: nothing to migrate in place).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql import Subquery

from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.schema import Schema, prepare
from pricewise.store.sql import (
    Synchronous,
    engine_for,
    is_unavailable,
    parse_url,
    reason,
    redacted,
    sqlite_url,
    unavailable,
)

SCHEMA_VERSION = 2
WHAT = "the prediction log"
OUTCOME_ATTEMPTS = 3
# What a probe writes next to a SQLite file: more than one group commit of suggestions.
PROBE_BYTES = 64 * 1024


def _tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    predictions = Table(
        "predictions",
        metadata,
        Column("request_id", String(64), primary_key=True),
        Column("batch_id", String(64), nullable=True, index=True),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),  # monitoring windows
        Column("model_name", String(200), nullable=False),
        Column("model_version", String(50), nullable=True),
        Column("model_run_id", String(64), nullable=True),
        Column("fallback", Boolean, nullable=False),
        Column("inputs", JSON, nullable=False),
        Column("outputs", JSON, nullable=False),
        Column("latency_ms", Float, nullable=False),
    )
    feedback = Table(
        "feedback",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", String(64), ForeignKey("predictions.request_id"), nullable=False, index=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("chosen_price", Float, nullable=True),
        # Logs written before outcomes existed hold seller-reported sold prices here; nothing reads them.
        Column("sold_price", Float, nullable=True),
    )
    outcomes = Table(
        "outcomes",
        metadata,
        Column("request_id", String(64), ForeignKey("predictions.request_id"), primary_key=True),
        Column("sold_price", Float, nullable=False),
        Column("sold_at", DateTime(timezone=True), nullable=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
        Column("source", String(300), nullable=False),  # 'api' or 'export:<file name>:<sha256 prefix>'
        Column("harvested_batch", String(64), nullable=True, index=True),
    )
    return predictions, feedback, outcomes


@dataclass(frozen=True)
class Outcome:
    """A sold price for a logged suggestion, from a trusted source."""

    request_id: str
    sold_price: float
    sold_at: datetime | None = None


@dataclass(frozen=True)
class OutcomeReceipt:
    """What recording a group of outcomes did: all of them stored, or none (with the ids that stopped it)."""

    stored: int
    already_recorded: (
        int  # the same sold price for the same suggestion again (a retried delivery): not an error
    )
    unknown: tuple[str, ...]  # request ids no suggestion was logged with
    conflicting: tuple[str, ...]  # request ids that already have a different sold price

    @property
    def refused(self) -> bool:
        """Whether nothing was stored because some outcomes are unknown or conflict."""
        return bool(self.unknown or self.conflicting)


@dataclass(frozen=True)
class LoggedSuggestion:
    """One suggestion as it is written to the log."""

    request_id: str
    batch_id: str | None
    model_name: str
    model_version: str | None
    model_run_id: str | None
    fallback: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float


def default_url(settings: Settings) -> str:
    """The prediction log's SQLAlchemy URL: settings, or SQLite under <data_dir>/serving/predictions.db."""
    if settings.prediction_log_url:
        return settings.prediction_log_url
    return sqlite_url(settings.data_dir / "serving" / "predictions.db")


def _positional_insert(engine: Engine, table: Table) -> tuple[str, list[tuple[str, Callable[[Any], Any]]]]:
    """A table's INSERT compiled for a positional DBAPI, and per parameter its column and bind conversion."""
    compiled = insert(table).compile(dialect=engine.dialect)
    if not compiled.positional or compiled.positiontup is None:
        raise ValueError(f"{engine.dialect.name} does not take positional parameters")
    columns: list[tuple[str, Callable[[Any], Any]]] = []
    for name in compiled.positiontup:
        processor = table.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        columns.append((name, processor if processor is not None else _unchanged))
    return str(compiled), columns


def _unchanged(value: Any) -> Any:
    return value


class PredictionLog:
    """The prediction and feedback tables behind one SQLAlchemy engine (one per worker process)."""

    def __init__(self, url: str, synchronous: Synchronous = "NORMAL") -> None:
        """Open (and create if needed) the log.

        Args:
            url: Any SQLAlchemy URL; SQLite files get WAL mode.
            synchronous: SQLite's synchronous level (see the module docstring); other databases ignore it.

        Raises:
            StoreUnavailableError: The database cannot be reached or refuses the credentials.
            PricewiseError: The database cannot be opened or created, or holds a schema this version cannot
                use (newer, or not migratable); messages show the URL without its password.
        """
        self.url = url
        try:
            self.engine: Engine = engine_for(url, synchronous)
        except OSError as exc:  # the SQLite file's directory cannot be created
            raise PricewiseError(f"cannot open {WHAT} at {redacted(url)}: {exc}") from exc
        self.metadata = MetaData()
        self.predictions, self.feedback, self.outcomes = _tables(self.metadata)
        try:
            prepare(self.engine, Schema("prediction_log", WHAT, SCHEMA_VERSION, self.metadata), url)
        except BaseException:
            self.engine.dispose()
            raise
        self._sqlite_insert = (
            _positional_insert(self.engine, self.predictions)
            if self.engine.dialect.name == "sqlite"
            else None
        )
        database = parse_url(url).database if self.engine.dialect.name == "sqlite" else None
        self._directory = Path(database).parent if database and database != ":memory:" else None
        # Why the last write of suggestions failed (database-side, without the URL), until one succeeds again.
        self._write_failure: str | None = None

    def record_suggestions(self, rows: Sequence[LoggedSuggestion]) -> None:
        """Insert suggestions in one transaction and return only once it is committed (durable)."""
        now = datetime.now(UTC)
        values = [
            {
                "request_id": r.request_id,
                "batch_id": r.batch_id,
                "created_at": now,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "model_run_id": r.model_run_id,
                "fallback": r.fallback,
                "inputs": r.inputs,
                "outputs": r.outputs,
                "latency_ms": r.latency_ms,
            }
            for r in rows
        ]
        try:
            with self.engine.begin() as connection:
                if self._sqlite_insert is None:
                    connection.execute(insert(self.predictions), values)
                else:
                    # The compiled INSERT with the column types' own conversions applied here: the same rows as
                    # the statement above, without compiling and caching it again for each request's commit.
                    sql, columns = self._sqlite_insert
                    connection.exec_driver_sql(
                        sql, [tuple(convert(row[name]) for name, convert in columns) for row in values]
                    )
        except SQLAlchemyError as exc:
            if is_unavailable(exc):
                self._write_failure = reason(exc, self.url)
                raise unavailable(WHAT, self.url, exc) from exc
            raise
        self._write_failure = None

    def write_problem(self, min_free_bytes: int = 0) -> str | None:
        """Why suggestions cannot be logged right now, or None when the log looks writable (for /ready).

        Cheap enough for every readiness probe: for a SQLite file, one statvfs of its directory; only after a
        write failed, one probe (a small file written next to the SQLite file, or a round trip to the database
        server) tells whether the cause is gone, so the log recovers without a suggestion having to succeed.

        Args:
            min_free_bytes: A SQLite file whose disk has less free space than this counts as full (0: no check).

        Returns:
            A one-line reason without paths or the URL, or None.
        """
        if self._directory is not None:
            try:
                disk = os.statvfs(self._directory)
            except OSError as exc:
                return f"its directory cannot be read: {exc.strerror}"
            if disk.f_flag & os.ST_RDONLY:
                return "its file system is read-only"
            free = disk.f_bavail * disk.f_frsize
            if free < min_free_bytes:
                return f"its disk is full ({free // 1024} KiB free, {min_free_bytes // 1024} KiB needed)"
        failure = self._write_failure
        if failure is None:
            return None
        probe = self._probe_write()
        if probe is None:
            self._write_failure = None
            return None
        return f"the last write failed ({failure}) and a probe write fails ({probe})"

    def _probe_write(self) -> str | None:
        """Write something where the log writes (None when that works, else why not)."""
        if self._directory is not None:
            try:
                with tempfile.TemporaryFile(dir=self._directory, prefix=".pricewise-probe-") as handle:
                    handle.write(b"\0" * PROBE_BYTES)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                return exc.strerror or type(exc).__name__
            return None
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return reason(exc, self.url)
        return None

    def record_groups(self, groups: list[list[LoggedSuggestion]]) -> list[None]:
        """Commit the rows of several requests in one transaction (group commit: one fsync for all of them).

        Returns:
            One None per group, for the batcher; returns only after the commit.
        """
        self.record_suggestions([row for group in groups for row in group])
        return [None] * len(groups)

    def record_feedback(self, request_id: str, chosen_price: float) -> bool:
        """Store the price a seller accepted for a logged suggestion (never a label: anyone can send it).

        Returns:
            False when no suggestion with that request id was logged (nothing is written).
        """
        with self.engine.begin() as connection:
            known = connection.execute(
                select(self.predictions.c.request_id).where(self.predictions.c.request_id == request_id)
            ).first()
            if known is None:
                return False
            try:
                connection.execute(
                    insert(self.feedback).values(
                        request_id=request_id,
                        created_at=datetime.now(UTC),
                        chosen_price=chosen_price,
                        sold_price=None,
                    )
                )
            except IntegrityError:
                return False
        return True

    def record_outcomes(self, outcomes: Sequence[Outcome], source: str) -> OutcomeReceipt:
        """Store trusted sold prices, all in one transaction or none of them.

        An outcome for an unknown request id, or a different sold price for a suggestion that already has one,
        refuses the whole group (nothing is written) and names the ids; the same price again is counted as
        already recorded, so a retried delivery is harmless.

        Args:
            outcomes: Sold prices per request id (each id at most once).
            source: Where they come from ('api', or 'export:<file>:<digest>'), kept on every row.

        Raises:
            ValueError: A request id appears twice in `outcomes`.
        """
        ids = [o.request_id for o in outcomes]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"request ids given more than once: {', '.join(twice[:5])}")
        for attempt in range(OUTCOME_ATTEMPTS):
            try:
                return self._store_outcomes(outcomes, ids, source)
            except IntegrityError:
                # Another process stored one of these outcomes between our read and our insert (a retried
                # delivery racing the first one): the next attempt sees it and judges it like any other.
                if attempt == OUTCOME_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _store_outcomes(self, outcomes: Sequence[Outcome], ids: list[str], source: str) -> OutcomeReceipt:
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            known: set[str] = set()
            existing: dict[str, float] = {}
            for start in range(0, len(ids), 500):  # bounded IN lists
                part = ids[start : start + 500]
                known.update(
                    str(r[0])
                    for r in connection.execute(
                        select(self.predictions.c.request_id).where(self.predictions.c.request_id.in_(part))
                    )
                )
                existing.update(
                    (str(r[0]), float(r[1]))
                    for r in connection.execute(
                        select(self.outcomes.c.request_id, self.outcomes.c.sold_price).where(
                            self.outcomes.c.request_id.in_(part)
                        )
                    )
                )
            unknown = tuple(i for i in ids if i not in known)
            conflicting = tuple(
                o.request_id
                for o in outcomes
                if o.request_id in existing and abs(existing[o.request_id] - o.sold_price) > 1e-9
            )
            fresh = [o for o in outcomes if o.request_id not in existing]
            if unknown or conflicting:
                return OutcomeReceipt(0, 0, unknown, conflicting)
            if fresh:
                connection.execute(
                    insert(self.outcomes),
                    [
                        {
                            "request_id": o.request_id,
                            "sold_price": o.sold_price,
                            "sold_at": o.sold_at,
                            "recorded_at": now,
                            "source": source,
                            "harvested_batch": None,
                        }
                        for o in fresh
                    ],
                )
        return OutcomeReceipt(len(fresh), len(outcomes) - len(fresh), (), ())

    def mark_harvested(self, request_ids: Sequence[str], batch_id: str) -> None:
        """Note the warehouse batch that outcomes became training listings in (their lineage)."""
        with self.engine.begin() as connection:
            for start in range(0, len(request_ids), 500):
                connection.execute(
                    update(self.outcomes)
                    .where(self.outcomes.c.request_id.in_(list(request_ids[start : start + 500])))
                    .values(harvested_batch=batch_id)
                )

    def outcome_sources(self, batch_id: str | None = None) -> dict[str, int]:
        """Outcomes per source: of one harvested batch, or all of them (None)."""
        o = self.outcomes
        query = select(o.c.source, func.count()).group_by(o.c.source)
        if batch_id is not None:
            query = query.where(o.c.harvested_batch == batch_id)
        with self.engine.connect() as connection:
            return {str(source): int(n) for source, n in connection.execute(query)}

    def latest_sold_prices(self) -> Subquery:
        """A subquery of (request_id, sold_price): the trusted sold price of each suggestion that has one.

        Only outcomes count; prices sellers typed on the page never do. Monitoring, the harvest of sold listings
        and the monitoring page all join this one subquery.
        """
        o = self.outcomes
        return select(o.c.request_id, o.c.sold_price, o.c.source).subquery("latest_sold_prices")

    def sold_suggestions(self, with_inputs: bool = True) -> pd.DataFrame:
        """Every logged suggestion with a sold price fed back, one row per suggestion.

        Args:
            with_inputs: Also return each request's listing (the harvest needs it; figures do not).

        Returns:
            Columns request_id, created_at (UTC), model_version, model_name and fallback (the rules baseline's
            versions are numbered on their own: the name tells its version 1 from the main model's), inputs (the
            request's listing, when asked for), price, low, high, stated_coverage (the coverage the range
            promised), sold_price (the trusted outcome) and label_source (where that outcome came from); price is
            NaN for a suggestion that logged none. Oldest first.
        """
        p = self.predictions
        sold = self.latest_sold_prices()
        query = (
            select(
                *self._suggested(p.c.model_name, p.c.fallback, *([p.c.inputs] if with_inputs else [])),
                p.c.outputs["coverage"].as_float().label("stated_coverage"),
                sold.c.sold_price,
                sold.c.source.label("label_source"),
            )
            .join(sold, sold.c.request_id == p.c.request_id)
            .order_by(p.c.created_at, p.c.request_id)
        )
        with self.engine.connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for column in ("price", "low", "high", "stated_coverage", "sold_price"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    def suggestions_between(
        self, start: datetime | None, end: datetime | None, chunk_rows: int = 50_000
    ) -> pd.DataFrame:
        """Suggestions logged in [start, end) with their inputs, outputs and, where fed back, the latest sold
        price.

        Text comes back as lengths where only the length is compared, so a window of a million suggestions stays
        small in memory; rows are read `chunk_rows` at a time.

        Returns:
            Columns request_id, created_at, model_version, name, brand_name, category_name, item_condition_id,
            shipping, description_chars, price, low, high and sold_price (NaN without feedback).
        """
        p = self.predictions
        sold = self.latest_sold_prices()
        query = select(
            *self._suggested(
                p.c.inputs["name"].as_string().label("name"),
                p.c.inputs["brand_name"].as_string().label("brand_name"),
                p.c.inputs["category_name"].as_string().label("category_name"),
                p.c.inputs["item_condition_id"].as_integer().label("item_condition_id"),
                p.c.inputs["shipping"].as_integer().label("shipping"),
                func.coalesce(func.length(p.c.inputs["item_description"].as_string()), 0).label(
                    "description_chars"
                ),
            ),
            sold.c.sold_price,
        ).select_from(p.outerjoin(sold, sold.c.request_id == p.c.request_id))
        if start is not None:
            query = query.where(p.c.created_at >= start)
        if end is not None:
            query = query.where(p.c.created_at < end)
        chunks: list[pd.DataFrame] = []
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=chunk_rows).execute(query)
            columns = list(result.keys())
            for part in result.partitions():
                chunks.append(pd.DataFrame(part, columns=columns))
        if not chunks:
            return pd.DataFrame(columns=columns)
        frame = pd.concat(chunks, ignore_index=True)
        for column in ("price", "low", "high", "sold_price"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame

    def _suggested(self, *extra: Any) -> list[Any]:
        """The columns of a logged suggestion every read returns: request_id, created_at, model_version, then
        `extra`, then the suggested price, low and high."""
        p = self.predictions
        return [
            p.c.request_id,
            p.c.created_at,
            p.c.model_version,
            *extra,
            p.c.outputs["price"].as_float().label("price"),
            p.c.outputs["low"].as_float().label("low"),
            p.c.outputs["high"].as_float().label("high"),
        ]

    def seller_choices(self, since: datetime | None = None) -> pd.DataFrame:
        """The price each seller chose for a suggestion on the page (their latest choice), beside the suggestion.

        Args:
            since: Only suggestions made at or after this time.

        Returns:
            Columns request_id, created_at (UTC, of the suggestion), model_version, price, low, high and
            chosen_price; one row per suggestion that has a choice.
        """
        p, f = self.predictions, self.feedback
        latest = (
            select(func.max(f.c.id).label("id"))
            .where(f.c.chosen_price.is_not(None))
            .group_by(f.c.request_id)
            .subquery("latest_choice")
        )
        query = (
            select(*self._suggested(), f.c.chosen_price)
            .select_from(f.join(latest, latest.c.id == f.c.id).join(p, p.c.request_id == f.c.request_id))
            .order_by(p.c.created_at, p.c.request_id)
        )
        if since is not None:
            query = query.where(p.c.created_at >= since)
        with self.engine.connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for column in ("price", "low", "high", "chosen_price"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    def count_since(self, since: datetime) -> int:
        """Number of suggestions logged at or after `since`."""
        p = self.predictions
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(p).where(p.c.created_at >= since)
                ).scalar_one()
            )

    def logged_request_ids(self) -> set[str]:
        """Every request id in the log (for audits and tests)."""
        with self.engine.connect() as connection:
            return {str(r[0]) for r in connection.execute(select(self.predictions.c.request_id))}

    def count(self) -> int:
        """Number of logged suggestions."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(self.predictions)).scalar_one())

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

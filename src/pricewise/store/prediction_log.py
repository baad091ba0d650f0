"""Served suggestions and seller feedback in, durable rows in a SQLAlchemy database (SQLite WAL by default) out;
and the reads made of them: the latest sold price per suggestion (one query, which monitoring, the harvest of
sold listings and the monitoring page share), the sold suggestions, and a window of suggestions.

Durability: `record_suggestions` commits before the route returns, so a suggestion a client received is in the
database. On SQLite the database runs in WAL mode with ``synchronous=NORMAL`` by default: COMMIT returns once
the transaction is written to the write-ahead log file, i.e. handed to the operating system, so a committed
row survives a killed server process, whatever the signal. It does not survive an OS crash or power cut that
comes before the OS writes the file out; ``serve.log_synchronous: FULL`` closes that gap by fsyncing the log
on every commit, at the price of one fsync per group of requests (0.3 ms on an idle disk here, several on a
busy one). WAL lets the worker processes read while one writes; writers wait for each other through the busy
timeout instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Subquery

from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.sql import Synchronous, engine_for, sqlite_url


def _tables(metadata: MetaData) -> tuple[Table, Table]:
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
        Column("sold_price", Float, nullable=True),
    )
    return predictions, feedback


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
            PricewiseError: The database cannot be opened or created.
        """
        self.url = url
        self.engine: Engine = engine_for(url, synchronous)
        self.metadata = MetaData()
        self.predictions, self.feedback = _tables(self.metadata)
        try:
            self.metadata.create_all(self.engine, checkfirst=True)
            for index in self.predictions.indexes:  # logs created before the index existed get it now
                index.create(self.engine, checkfirst=True)
        except Exception as exc:
            raise PricewiseError(f"cannot open the prediction log at {url}: {exc}") from exc
        self._sqlite_insert = (
            _positional_insert(self.engine, self.predictions)
            if self.engine.dialect.name == "sqlite"
            else None
        )

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
        with self.engine.begin() as connection:
            if self._sqlite_insert is None:
                connection.execute(insert(self.predictions), values)
            else:
                # The compiled INSERT with the column types' own conversions applied here: the same rows as the
                # statement above, without compiling and caching it again for each request's commit.
                sql, columns = self._sqlite_insert
                connection.exec_driver_sql(
                    sql, [tuple(convert(row[name]) for name, convert in columns) for row in values]
                )

    def record_groups(self, groups: list[list[LoggedSuggestion]]) -> list[None]:
        """Commit the rows of several requests in one transaction (group commit: one fsync for all of them).

        Returns:
            One None per group, for the batcher; returns only after the commit.
        """
        self.record_suggestions([row for group in groups for row in group])
        return [None] * len(groups)

    def record_feedback(self, request_id: str, chosen_price: float | None, sold_price: float | None) -> bool:
        """Store feedback for a logged suggestion.

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
                        sold_price=sold_price,
                    )
                )
            except IntegrityError:
                return False
        return True

    def latest_sold_prices(self) -> Subquery:
        """A subquery of (request_id, sold_price): the latest sold price fed back for each suggestion.

        A seller may correct a report; the latest one counts, and a suggestion counts once. Monitoring, the
        harvest of sold listings and the monitoring page all join this one subquery.
        """
        f = self.feedback
        latest = (
            select(func.max(f.c.id).label("feedback_id"))
            .where(f.c.sold_price.is_not(None))
            .group_by(f.c.request_id)
            .subquery()
        )
        return (
            select(f.c.request_id, f.c.sold_price)
            .join(latest, latest.c.feedback_id == f.c.id)
            .subquery("latest_sold_prices")
        )

    def sold_suggestions(self, with_inputs: bool = True) -> pd.DataFrame:
        """Every logged suggestion with a sold price fed back, one row per suggestion.

        Args:
            with_inputs: Also return each request's listing (the harvest needs it; figures do not).

        Returns:
            Columns request_id, created_at (UTC), model_version, inputs (the request's listing, when asked for),
            price, low, high, stated_coverage (the coverage the range promised) and sold_price (the latest one
            reported); price is NaN for a suggestion that logged none.
        """
        p = self.predictions
        sold = self.latest_sold_prices()
        query = (
            select(
                p.c.request_id,
                p.c.created_at,
                p.c.model_version,
                *([p.c.inputs] if with_inputs else []),
                p.c.outputs["price"].as_float().label("price"),
                p.c.outputs["low"].as_float().label("low"),
                p.c.outputs["high"].as_float().label("high"),
                p.c.outputs["coverage"].as_float().label("stated_coverage"),
                sold.c.sold_price,
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
            p.c.request_id,
            p.c.created_at,
            p.c.model_version,
            p.c.inputs["name"].as_string().label("name"),
            p.c.inputs["brand_name"].as_string().label("brand_name"),
            p.c.inputs["category_name"].as_string().label("category_name"),
            p.c.inputs["item_condition_id"].as_integer().label("item_condition_id"),
            p.c.inputs["shipping"].as_integer().label("shipping"),
            func.coalesce(func.length(p.c.inputs["item_description"].as_string()), 0).label(
                "description_chars"
            ),
            p.c.outputs["price"].as_float().label("price"),
            p.c.outputs["low"].as_float().label("low"),
            p.c.outputs["high"].as_float().label("high"),
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

"""A store's tables and schema version in; its database created, migrated from an older version, or refused with
a message that says why out. The version of each store lives in the table ``pricewise_schema``.

A database without that table but with the store's tables was made by a pricewise from before versions were
recorded: that is version 1. Each newer version names what it adds; new tables and indexes are created for
every version, and a version that changes existing tables brings its own step. A database whose version is newer
than this pricewise knows, or whose tables lack columns this version needs and no step adds, is refused: writing
to it could lose or garble rows.

Several processes may open one database at once (API workers starting together, a batch command beside them):
preparing takes a lock first (PostgreSQL's advisory lock, SQLite's write lock), so one of them creates or migrates
and the others find it done. On PostgreSQL the whole preparation is one transaction: a failed migration leaves the
database as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from pricewise.errors import PricewiseError
from pricewise.store.sql import StoreUnavailableError, is_unavailable, reason, redacted

logger = logging.getLogger(__name__)

VERSIONS_TABLE = "pricewise_schema"
# One key for every pricewise store: preparing is rare and quick, so serialising all of them costs nothing.
ADVISORY_LOCK_KEY = 0x70726963_65776973 & 0x7FFF_FFFF_FFFF_FFFF  # "pricewis"

Step = Callable[[Connection], None]


@dataclass(frozen=True)
class Schema:
    """What a store expects of its database.

    Attributes:
        component: The store's key in ``pricewise_schema`` (e.g. ``prediction_log``).
        what: How messages name the store (e.g. ``the prediction log``).
        version: The version this code writes.
        metadata: The store's tables.
        steps: For a version that changes existing tables, the step that brings the database to it from the
            version before (new tables and indexes need none).
    """

    component: str
    what: str
    version: int
    metadata: MetaData
    steps: Mapping[int, Step] = field(default_factory=dict)


def _versions_table() -> Table:
    return Table(
        VERSIONS_TABLE,
        MetaData(),
        Column("component", String(64), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def _lock(connection: Connection) -> None:
    """Take the lock that serialises preparation across processes, held until the transaction ends."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        # pysqlite opens no transaction before DDL; BEGIN IMMEDIATE takes the write lock now, so DDL and the
        # version row commit together and a second process waits (busy timeout) instead of racing.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _stored_version(connection: Connection, schema: Schema, versions: Table) -> tuple[int | None, bool]:
    """The database's version of the store and whether it is recorded: (recorded version, True), (1, False) for
    the store's tables without a record, (None, False) for a database without them."""
    names = set(inspect(connection).get_table_names())
    if VERSIONS_TABLE in names:
        row = connection.execute(
            select(versions.c.version).where(versions.c.component == schema.component)
        ).first()
        if row is not None:
            return int(row[0]), True
    return (1 if names & set(schema.metadata.tables) else None), False


def _missing_columns(connection: Connection, schema: Schema) -> dict[str, list[str]]:
    inspector = inspect(connection)
    missing = {}
    for name, table in schema.metadata.tables.items():
        present = {c["name"] for c in inspector.get_columns(name)}
        lacking = [c.name for c in table.columns if c.name not in present]
        if lacking:
            missing[name] = lacking
    return missing


def _prepare(connection: Connection, schema: Schema, url: str) -> int | None:
    versions = _versions_table()
    _lock(connection)
    found, recorded = _stored_version(connection, schema, versions)
    where = f"{schema.what} at {redacted(url)}"
    if found is not None and found > schema.version:
        raise PricewiseError(
            f"{where} has schema version {found}, newer than the {schema.version} this pricewise knows: "
            "upgrade pricewise, or point it at another database"
        )
    for version in range(found + 1 if found is not None else schema.version + 1, schema.version + 1):
        step = schema.steps.get(version)
        if step is not None:
            step(connection)
    schema.metadata.create_all(connection, checkfirst=True)
    for table in schema.metadata.tables.values():
        for index in table.indexes:  # tables made before an index existed get it now
            index.create(connection, checkfirst=True)
    missing = _missing_columns(connection, schema)
    if missing:
        listed = "; ".join(f"{table}: {', '.join(columns)}" for table, columns in missing.items())
        raise PricewiseError(
            f"{where} has tables this pricewise cannot migrate (version {found}, missing columns {listed}): "
            "it was not made by pricewise, or by a version whose steps are unknown here; nothing was changed"
        )
    versions.create(connection, checkfirst=True)
    now = datetime.now(UTC)
    if not recorded:
        connection.execute(
            insert(versions).values(component=schema.component, version=schema.version, updated_at=now)
        )
    elif found != schema.version:
        connection.execute(
            update(versions)
            .where(versions.c.component == schema.component)
            .values(version=schema.version, updated_at=now)
        )
    return found


def prepare(engine: Engine, schema: Schema, url: str) -> None:
    """Create the store's tables, or migrate them from an older version, or refuse the database.

    Args:
        engine: The store's engine.
        schema: Its tables, version and migration steps.
        url: The database URL, for messages (shown without its password).

    Raises:
        StoreUnavailableError: The database cannot be reached or refuses the credentials.
        PricewiseError: The schema is newer than this version, or cannot be migrated, or the database fails
            otherwise; the database is left as it was.
    """
    try:
        with engine.connect() as connection:
            try:
                found = _prepare(connection, schema, url)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
    except PricewiseError:
        raise
    except SQLAlchemyError as exc:
        if is_unavailable(exc):
            raise StoreUnavailableError(
                f"cannot open {schema.what} at {redacted(url)}: {reason(exc, url)}"
            ) from exc
        raise PricewiseError(f"cannot open {schema.what} at {redacted(url)}: {reason(exc, url)}") from exc
    if found is not None and found != schema.version:
        logger.info(
            "migrated %s at %s from version %d to %d", schema.what, redacted(url), found, schema.version
        )

"""The DuckDB warehouse: a settings object in, an open connection with the pricewise schema out.

This is the only module that opens DuckDB. Tables:

- ``batches``: lineage of every ingested file (source, content sha256, rows, time, schema version).
- ``raw_listings``: every parsed row exactly as read, all text; immutable once ingested.
- ``parse_rejects``: records the reader could not split into the expected columns, with the raw line.
- ``listings``: rows that passed validation, typed, with their split; priced rows are training listings.
- ``rejects``: rows that failed validation, with reason codes; accepted + rejected = read for every batch.
- ``validations`` and ``batch_profiles``: the result of every validation run and each batch's profile.

Promotions, monitoring runs and retraining decisions are not here: they are the decision tables of
``store/decisions.py`` (SQLite at <data_dir>/decisions.db, or ``PRICEWISE_DECISIONS_URL``), which the server reads
without waiting for batch work. Warehouses made before that still hold those three tables; `legacy_decisions`
reads them once so the decision store can take them over.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pricewise.errors import OUT_OF_SPACE_ERRNOS, PricewiseError, is_out_of_space
from pricewise.settings import Settings

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
LOCK_WAIT_SECONDS = 15.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,              -- 'priced' (training listings) or 'unpriced' (listings to score)
    source_name VARCHAR NOT NULL,       -- file name, with the archive member after '!' when extracted
    source_path VARCHAR NOT NULL,
    file_format VARCHAR NOT NULL,
    content_sha256 VARCHAR NOT NULL UNIQUE,
    row_count BIGINT NOT NULL,          -- rows read: parsed rows + records the reader could not parse
    parse_rejected BIGINT NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    schema_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS raw_listings (
    batch_id VARCHAR NOT NULL,
    source_id VARCHAR,
    name VARCHAR,
    item_condition_id VARCHAR,
    category_name VARCHAR,
    brand_name VARCHAR,
    price VARCHAR,
    shipping VARCHAR,
    item_description VARCHAR
);
CREATE TABLE IF NOT EXISTS parse_rejects (
    batch_id VARCHAR NOT NULL,
    source_line BIGINT,
    error_type VARCHAR NOT NULL,
    message VARCHAR,
    raw_line VARCHAR
);
CREATE TABLE IF NOT EXISTS listings (
    listing_id VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    source_id BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    item_condition_id TINYINT NOT NULL,
    category_name VARCHAR,
    brand_name VARCHAR,
    price DOUBLE,
    shipping TINYINT NOT NULL,
    item_description VARCHAR,
    usable_for_training BOOLEAN NOT NULL,
    split VARCHAR
);
CREATE TABLE IF NOT EXISTS rejects (
    batch_id VARCHAR NOT NULL,
    source_line BIGINT,
    source_id VARCHAR,
    reasons VARCHAR[] NOT NULL,
    name VARCHAR,
    item_condition_id VARCHAR,
    category_name VARCHAR,
    brand_name VARCHAR,
    price VARCHAR,
    shipping VARCHAR,
    item_description VARCHAR,
    raw_line VARCHAR
);
CREATE TABLE IF NOT EXISTS validations (
    validation_id VARCHAR PRIMARY KEY,
    batch_id VARCHAR NOT NULL,
    validated_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,            -- 'pass', 'warn' or 'fail'
    rows_read BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    unusable_for_training BIGINT NOT NULL,
    reference_batch_id VARCHAR,
    report_json VARCHAR NOT NULL,
    report_html VARCHAR NOT NULL,
    checks VARCHAR NOT NULL             -- JSON list of batch checks
);
CREATE TABLE IF NOT EXISTS batch_profiles (
    batch_id VARCHAR PRIMARY KEY,
    profile VARCHAR NOT NULL            -- JSON
);
CREATE OR REPLACE VIEW latest_validations AS
    SELECT * FROM validations
    QUALIFY row_number() OVER (PARTITION BY batch_id ORDER BY validated_at DESC) = 1;
CREATE OR REPLACE VIEW training_listings AS
    SELECT l.* FROM listings l
    JOIN latest_validations v USING (batch_id)
    WHERE l.kind = 'priced' AND l.usable_for_training AND v.status <> 'fail';
"""


def _limit_resources(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Cap DuckDB's memory and threads as settings say."""
    con.execute(f"SET memory_limit = {sql_literal(settings.duckdb_memory_limit)}")
    con.execute(f"SET threads = {settings.duckdb_threads}")
    # Insertion order is not meaningful in the warehouse; dropping it lets large reads stream.
    con.execute("SET preserve_insertion_order = false")


def _open(path: Path, read_only: bool, lock_wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """Connect, waiting up to `lock_wait_seconds` while another process holds a conflicting lock.

    DuckDB allows one writing process or several reading ones; the server's brief reads and the batch commands
    meet there, and a short wait turns a collision into a delay instead of a failure.
    """
    deadline = time.monotonic() + lock_wait_seconds
    pause = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            locked = "lock" in str(exc).lower()
            if not locked or time.monotonic() + pause > deadline:
                raise PricewiseError(f"cannot open warehouse {path}: {exc}") from exc
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


@contextmanager
def connect(
    settings: Settings, *, read_only: bool = False, lock_wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, creating the file and schema on first write.

    Args:
        settings: Where the warehouse lives and how much memory and how many threads DuckDB may use.
        read_only: Open without taking the write lock; the file must exist.
        lock_wait_seconds: How long to wait while another process holds a conflicting lock.

    Yields:
        An open connection; it is closed on exit.

    Raises:
        PricewiseError: The warehouse cannot be opened (missing in read-only mode, locked, not DuckDB).
    """
    path = settings.warehouse
    if "?" in str(path.absolute()):
        # DuckDB takes what follows a '?' in a database path for options and puts its write-ahead log elsewhere,
        # so every commit would fail.
        raise PricewiseError(
            f"the warehouse path {path} contains '?', which DuckDB cannot keep a database under: "
            "choose PRICEWISE_DATA_DIR (or PRICEWISE_WAREHOUSE_PATH) without it"
        )
    if read_only and not path.exists():
        raise PricewiseError(f"no warehouse at {path}: run `pricewise ingest PATH` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    spill_dir = settings.scratch / "duckdb_spill"
    con = _open(path, read_only, lock_wait_seconds)
    try:
        _limit_resources(con, settings)
        if not read_only:
            spill_dir.mkdir(parents=True, exist_ok=True)
            con.execute(f"SET temp_directory = {sql_literal(str(spill_dir))}")
            con.execute(SCHEMA)
        yield con
    finally:
        con.close()


@contextmanager
def connect_scratch(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open an in-memory database with the pricewise schema, for work that must not touch the warehouse."""
    con = duckdb.connect(":memory:")
    try:
        _limit_resources(con, settings)
        # What does not fit in memory spills to scratch space, not to `.tmp` in the working directory.
        con.execute(f"SET temp_directory = {sql_literal(str(settings.scratch / 'duckdb'))}")
        con.execute(SCHEMA)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run a block atomically: everything it wrote is committed together, or rolled back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        _rollback(con)
        raise
    try:
        con.execute("COMMIT")
    except duckdb.Error:
        _rollback(con)
        raise


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, keeping the error that caused it: DuckDB may have ended the transaction itself already (a
    failed commit) or refuse all work after a write error, and that second error would hide the first."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        logger.debug("rollback after a failed transaction", exc_info=True)


def table_digest(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of every pricewise table, used to show that a failed step changed nothing."""
    tables = [
        "batches",
        "raw_listings",
        "parse_rejects",
        "listings",
        "rejects",
        "validations",
        "batch_profiles",
    ]
    counts: dict[str, int] = {}
    for table in tables:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def training_split_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Usable training listings per split (only the splits that have any)."""
    rows = con.execute("SELECT split, count(*) FROM training_listings GROUP BY split").fetchall()
    return {str(name): int(n) for name, n in rows}


def training_listings(con: duckdb.DuckDBPyConnection, columns: Sequence[str]) -> pd.DataFrame:
    """Usable training listings in listing-id order.

    Args:
        con: An open warehouse connection.
        columns: Listing columns to read besides listing_id, split, batch_id and price.

    Returns:
        One row per listing: listing_id, split, batch_id, the given columns, price.
    """
    selected = ", ".join(["listing_id", "split", "batch_id", *columns, "price"])
    return con.execute(f"SELECT {selected} FROM training_listings ORDER BY listing_id").df()


def training_lineage(con: duckdb.DuckDBPyConnection) -> str:
    """The content digests of the batches training listings come from, in batch order, comma-separated."""
    row = con.execute(
        "SELECT string_agg(content_sha256, ',' ORDER BY batch_id) FROM batches "
        "WHERE batch_id IN (SELECT DISTINCT batch_id FROM training_listings)"
    ).fetchone()
    return str((row[0] if row else "") or "")


def sql_literal(text: str) -> str:
    """Quote text as a DuckDB SQL string literal (for paths and names DuckDB cannot take as parameters)."""
    return "'" + text.replace("'", "''") + "'"


GLOB_CHARACTERS = frozenset("*?[")


def file_literal(path: Path) -> str:
    """A DuckDB SQL string literal that names exactly one file, for read_csv and read_parquet.

    DuckDB's readers take a path as a glob pattern (`*`, `?`, `[...]`, `**`) and expand a leading `~`. Each glob
    character is put in a bracket expression of its own (`[*]` matches only `*`), and the path is made absolute,
    so it never starts with `~` or reads as a URL.

    Args:
        path: A file; relative paths are taken from the working directory.
    """
    text = str(path.absolute())
    return sql_literal("".join(f"[{ch}]" if ch in GLOB_CHARACTERS else ch for ch in text))


# DuckDB reports the operating system's message inside its own exception types; these are the ones that carry
# write failures (not the parser's, whose messages quote the input's text).
_WRITE_ERRORS = (
    duckdb.IOException,
    duckdb.TransactionException,
    duckdb.FatalException,
    duckdb.OutOfMemoryException,
)
_OUT_OF_SPACE_MESSAGES = tuple(os.strerror(code) for code in OUT_OF_SPACE_ERRNOS)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error from the warehouse or the files around it says a disk or quota is full.

    Args:
        exc: Any exception; DuckDB errors, OSErrors and errors raised from either are recognised.
    """
    if is_out_of_space(exc):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _WRITE_ERRORS) and any(m in str(current) for m in _OUT_OF_SPACE_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


LEGACY_DECISION_TABLES = ("promotions", "monitoring_runs", "retrain_decisions")


def legacy_decisions(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """The rows of the decision tables an older warehouse still holds, by table, with named columns.

    Returns:
        Table name to rows (column name to value) for each of promotions, monitoring_runs and
        retrain_decisions that exists with rows; empty when there is no warehouse or none of them.

    Raises:
        PricewiseError: The warehouse cannot be opened.
    """
    if not settings.warehouse.exists():
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    with connect(settings, read_only=True) as con:
        present = {
            str(row[0])
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_name IN (?, ?, ?)",
                list(LEGACY_DECISION_TABLES),
            ).fetchall()
        }
        for table in LEGACY_DECISION_TABLES:
            if table in present:
                result = con.execute(f"SELECT * FROM {table}")  # a name from the tuple above
                columns = [d[0] for d in result.description]
                rows = [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
                if rows:
                    out[table] = rows
    return out


def batch_listings(settings: Settings, batch_id: str) -> pd.DataFrame:
    """The accepted listings of one ingested batch, with their prices as sold_price (NaN when unpriced).

    Returns:
        Columns name, brand_name, category_name, item_condition_id, shipping, item_description, sold_price.

    Raises:
        PricewiseError: No warehouse, or no such batch.
    """
    with connect(settings, read_only=True) as con:
        known = con.execute("SELECT kind FROM batches WHERE batch_id = ?", [batch_id]).fetchone()
        if known is None:
            raise PricewiseError(f"no batch {batch_id!r} in the warehouse (see `pricewise data status`)")
        return con.execute(
            "SELECT name, brand_name, category_name, item_condition_id, shipping, item_description, "
            "price AS sold_price FROM listings WHERE batch_id = ?",
            [batch_id],
        ).df()


def source_ids_from(settings: Settings, lowest: int) -> set[int]:
    """Numeric source ids at or above `lowest` of every ingested row, validated or not (empty without a
    warehouse).

    Raises:
        PricewiseError: The warehouse cannot be opened.
    """
    if not settings.warehouse.exists():
        return set()
    with connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT TRY_CAST(source_id AS HUGEINT) AS id FROM raw_listings "
            "WHERE TRY_CAST(source_id AS HUGEINT) >= ?",
            [lowest],
        ).fetchall()
    return {int(r[0]) for r in rows if r[0] is not None}

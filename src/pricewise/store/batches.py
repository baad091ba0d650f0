"""A warehouse connection in; each batch's lineage, validations and profile written and read back as typed rows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any

import duckdb

# Lineage columns added after the first schema: a warehouse made before them gets them on its next write (NULL
# for its earlier batches), and reading one that has not been written since sees NULL.
ADDED_BATCH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mapping_name", "VARCHAR"),
    ("mapping_sha256", "VARCHAR"),
)


@dataclass(frozen=True)
class BatchRecord:
    """One row of ``batches``: where a batch came from and how many rows it had (fields are the columns).

    ``mapping_name`` and ``mapping_sha256`` name the marketplace mapping the file was read with (None for a file
    in Kaggle's layout).
    """

    batch_id: str
    kind: str
    source_name: str
    source_path: str
    file_format: str
    content_sha256: str
    row_count: int
    parse_rejected: int
    ingested_at: datetime
    schema_version: int
    mapping_name: str | None = None
    mapping_sha256: str | None = None


@dataclass(frozen=True)
class ValidationRecord:
    """One row of ``validations``: the outcome of validating a batch once (fields are the columns)."""

    validation_id: str
    batch_id: str
    validated_at: datetime
    status: str
    rows_read: int
    accepted: int
    rejected: int
    unusable_for_training: int
    reference_batch_id: str | None
    report_json: str
    report_html: str
    checks: str  # JSON list of batch checks


@dataclass(frozen=True)
class BatchSummary:
    """One batch with its latest validation, if any, as `pricewise data status` lists it."""

    batch_id: str
    kind: str
    source_name: str
    file_format: str
    rows: int
    ingested_at: str
    status: str | None
    accepted: int | None
    rejected: int | None
    report_html: str | None


def _insert(con: duckdb.DuckDBPyConnection, table: str, row: BatchRecord | ValidationRecord) -> None:
    """Insert a typed row, naming every column, so the statement does not depend on the table's column order."""
    columns = [f.name for f in fields(row)]
    placeholders = ", ".join("?" for _ in columns)
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", list(astuple(row)))


def add_lineage_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Give a ``batches`` table made before them the lineage columns added since (a no-op when it has them)."""
    for name, sql_type in ADDED_BATCH_COLUMNS:
        con.execute(f"ALTER TABLE batches ADD COLUMN IF NOT EXISTS {name} {sql_type}")


def _present_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'batches'")
    return {str(r[0]) for r in rows.fetchall()}


def _batch_columns(con: duckdb.DuckDBPyConnection) -> str:
    """The SELECT list of BatchRecord's fields; a column an older warehouse lacks reads as NULL."""
    present = _present_columns(con)
    return ", ".join(f.name if f.name in present else f"NULL AS {f.name}" for f in fields(BatchRecord))


def record_batch(con: duckdb.DuckDBPyConnection, record: BatchRecord) -> None:
    """Record a batch's lineage.

    Args:
        con: An open warehouse connection, usually inside the transaction that loaded the batch's rows.
        record: The batch's lineage row.
    """
    add_lineage_columns(con)
    _insert(con, "batches", record)


def find_batch(con: duckdb.DuckDBPyConnection, batch_id: str) -> BatchRecord | None:
    """The lineage of one batch.

    Args:
        con: An open warehouse connection.
        batch_id: The batch to look up.

    Returns:
        The batch's row, or None when the warehouse has no such batch.
    """
    row = con.execute(f"SELECT {_batch_columns(con)} FROM batches WHERE batch_id = ?", [batch_id]).fetchone()
    return BatchRecord(*row) if row is not None else None


def batch_ids_by_content(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str | None]]:
    """Every ingested content digest with the batch holding it and the digest of the mapping it was read through
    (None for a file in Kaggle's layout), so the same content is not ingested twice."""
    mapping = "mapping_sha256" if "mapping_sha256" in _present_columns(con) else "NULL"
    rows = con.execute(f"SELECT content_sha256, batch_id, {mapping} FROM batches").fetchall()
    return {
        str(sha): (str(batch_id), None if mapped is None else str(mapped)) for sha, batch_id, mapped in rows
    }


def unvalidated_batch_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Batches never validated: priced ones first (they are the reference), then in ingest order."""
    rows = con.execute(
        "SELECT batch_id FROM batches WHERE batch_id NOT IN (SELECT batch_id FROM validations) "
        "ORDER BY kind = 'unpriced', ingested_at, batch_id"
    ).fetchall()
    return [str(r[0]) for r in rows]


def record_validation(con: duckdb.DuckDBPyConnection, record: ValidationRecord) -> None:
    """Record one validation of a batch; earlier validations stay as history (the latest one counts).

    Args:
        con: An open warehouse connection, inside the transaction that wrote the batch's verdict.
        record: The validation row.
    """
    _insert(con, "validations", record)


def replace_profile(con: duckdb.DuckDBPyConnection, batch_id: str, profile: Mapping[str, Any]) -> None:
    """Store a batch's profile (JSON), replacing the one an earlier validation stored.

    Args:
        con: An open warehouse connection.
        batch_id: The profiled batch.
        profile: A JSON-serialisable summary of the batch's accepted rows.
    """
    con.execute("DELETE FROM batch_profiles WHERE batch_id = ?", [batch_id])
    con.execute(
        "INSERT INTO batch_profiles (batch_id, profile) VALUES (?, ?)", [batch_id, json.dumps(profile)]
    )


def read_profile(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any] | None:
    """A batch's stored profile, or None when it has none (never validated)."""
    row = con.execute("SELECT profile FROM batch_profiles WHERE batch_id = ?", [batch_id]).fetchone()
    return json.loads(row[0]) if row is not None else None


def first_passing_priced_profile(
    con: duckdb.DuckDBPyConnection, excluding: str
) -> tuple[str, dict[str, Any]] | None:
    """The profile of the earliest ingested priced batch whose latest validation did not fail.

    Args:
        con: An open warehouse connection.
        excluding: A batch not to choose (the one being validated).

    Returns:
        That batch's id and profile, or None when there is no such batch.
    """
    row = con.execute(
        """
        SELECT b.batch_id, p.profile FROM batches b
        JOIN batch_profiles p USING (batch_id)
        JOIN latest_validations v USING (batch_id)
        WHERE b.kind = 'priced' AND v.status <> 'fail' AND b.batch_id <> ?
        ORDER BY b.ingested_at, b.batch_id LIMIT 1
        """,
        [excluding],
    ).fetchone()
    return (str(row[0]), json.loads(row[1])) if row is not None else None


def batch_summaries(con: duckdb.DuckDBPyConnection) -> tuple[BatchSummary, ...]:
    """Every batch in ingest order with its latest validation's status, counts and report."""
    rows: Sequence[tuple[Any, ...]] = con.execute(
        """
        SELECT b.batch_id, b.kind, b.source_name, b.file_format, b.row_count,
               strftime(b.ingested_at, '%Y-%m-%d %H:%M:%S'), v.status, v.accepted, v.rejected, v.report_html
        FROM batches b LEFT JOIN latest_validations v USING (batch_id)
        ORDER BY b.ingested_at, b.batch_id
        """
    ).fetchall()
    return tuple(BatchSummary(*row) for row in rows)

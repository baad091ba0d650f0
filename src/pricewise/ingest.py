"""Raw listing files in, new batches in the warehouse (raw rows, unparseable records, lineage) out.

One call is one transaction: every file of the call lands, or none does (a disk that fills up included).
Content already in the warehouse is recognised by its sha256 and skipped, so ingesting the same data twice is a
no-op. Another marketplace's export is read through its mapping (`inputs.source_mapping`), whose name and sha256
the batch's lineage records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pricewise.columns import FIELD_COLUMNS
from pricewise.config import Config
from pricewise.errors import DiskFullError, InputFileError
from pricewise.inputs import source_mapping
from pricewise.inputs.listing_files import TableSource, open_sources
from pricewise.inputs.source_mapping import LoadedMapping
from pricewise.settings import Settings
from pricewise.store import batches, warehouse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to one table source."""

    batch_id: str
    source_name: str
    kind: str
    rows: int
    parse_rejected: int
    already_ingested: bool


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one ingest call, one entry per table source."""

    batches: tuple[BatchOutcome, ...]

    @property
    def new_batches(self) -> tuple[BatchOutcome, ...]:
        """Batches this call added."""
        return tuple(b for b in self.batches if not b.already_ingested)


def batch_id_for(content_sha256: str) -> str:
    """Batch ids derive from content, so the same content always has the same id."""
    return f"b{content_sha256[:12]}"


def _reader_sql(source: TableSource, rejects_table: str, config: Config) -> str:
    path = warehouse.file_literal(source.read_path)
    if source.table_format == "parquet":
        return f"read_parquet({path})"
    columns = ", ".join(f"'{name}': 'VARCHAR'" for name in source.columns)
    delimiter = warehouse.sql_literal(source.delimiter or "\t")
    return (
        f"read_csv({path}, delim={delimiter}, header=true, quote='\"', escape='\"', all_varchar=true, "
        f"auto_detect=false, columns={{{columns}}}, compression='{'gzip' if source.gzipped else 'none'}', "
        f"strict_mode=true, null_padding=false, max_line_size={config.ingest.max_line_bytes}, "
        f"store_rejects=true, rejects_table='{rejects_table}', rejects_scan='{rejects_table}_scan')"
    )


def load_source(
    con: duckdb.DuckDBPyConnection, source: TableSource, batch_id: str, config: Config, n: int
) -> BatchOutcome:
    """Read one table source into raw_listings and parse_rejects, and record its batch.

    Args:
        con: An open warehouse (or scratch) connection, inside a transaction.
        source: The checked table source.
        batch_id: The id the rows are stored under.
        config: Stage parameters (the ingest section is used).
        n: A number unique within the transaction, naming the reader's temporary rejects table.

    Returns:
        The batch's outcome.

    Raises:
        InputFileError: The file cannot be read, or has a header but no rows.
        DiskFullError: The disk filled up while the rows were written.
    """
    rejects_table = f"ingest_rejects_{n}"
    if source.mapping is not None:
        columns = source.mapping.select_sql(source.kind)
    else:
        price = '"price"' if source.kind == "priced" else "NULL"
        fields = ", ".join(f'CAST("{col}" AS VARCHAR)' for col in FIELD_COLUMNS)
        columns = f'CAST("{source.id_column}" AS VARCHAR), {fields}, CAST({price} AS VARCHAR)'
    logger.info("loading %s into batch %s", source.source_name, batch_id)
    try:
        con.execute(
            f"""
            INSERT INTO raw_listings
                (batch_id, source_id, name, item_condition_id, category_name, brand_name, shipping,
                 item_description, price)
            SELECT ?, {columns}
            FROM {_reader_sql(source, rejects_table, config)}
            """,
            [batch_id],
        )
    except duckdb.Error as exc:
        if warehouse.is_disk_full(exc):
            raise DiskFullError(
                f"no space left on device while loading {source.source_name} ({exc}); nothing of this call "
                "was kept: free space on the disk of the database and its scratch space and run again"
            ) from exc
        mapped = source_mapping.mapping_error(str(exc))
        if mapped is not None:
            raise InputFileError(f"{source.source_name}: {mapped}; nothing of this call was kept") from exc
        raise InputFileError(f"{source.source_name}: cannot be read as a listings table ({exc})") from exc
    row = con.execute("SELECT count(*) FROM raw_listings WHERE batch_id = ?", [batch_id]).fetchone()
    parsed = int(row[0]) if row else 0
    parse_rejected = 0
    if source.table_format == "delimited":
        con.execute(
            f"""
            INSERT INTO parse_rejects (batch_id, source_line, error_type, message, raw_line)
            SELECT ?, line, min(error_type), string_agg(DISTINCT error_message, '; '), min(csv_line)
            FROM {rejects_table} GROUP BY line
            """,
            [batch_id],
        )
        row = con.execute("SELECT count(*) FROM parse_rejects WHERE batch_id = ?", [batch_id]).fetchone()
        parse_rejected = int(row[0]) if row else 0
        con.execute(f"DROP TABLE IF EXISTS {rejects_table}; DROP TABLE IF EXISTS {rejects_table}_scan")
    if parsed + parse_rejected == 0:
        raise InputFileError(f"{source.source_name}: the file has a header but no rows")
    batches.record_batch(
        con,
        batches.BatchRecord(
            batch_id=batch_id,
            kind=source.kind,
            source_name=source.source_name,
            source_path=str(source.source_path.resolve()),
            file_format=source.file_format,
            content_sha256=source.content_sha256,
            row_count=parsed + parse_rejected,
            parse_rejected=parse_rejected,
            ingested_at=datetime.now(UTC).replace(tzinfo=None),
            schema_version=warehouse.SCHEMA_VERSION,
            mapping_name=source.mapping.name if source.mapping else None,
            mapping_sha256=source.mapping.sha256 if source.mapping else None,
        ),
    )
    return BatchOutcome(
        batch_id, source.source_name, source.kind, parsed + parse_rejected, parse_rejected, False
    )


def load_mapping(settings: Settings, mapping: str) -> LoadedMapping:
    """A marketplace mapping named on the command line: a name in ``sources/`` beside the stage config
    (``configs/sources/NAME.yaml``), or the path of a YAML file.

    Raises:
        PricewiseError: No such mapping, or the file is not a valid mapping (named with the wrong field).
    """
    return source_mapping.load_mapping(mapping, settings.config_path.parent / "sources")


def run(config: Config, settings: Settings, paths: list[Path], mapping: str | None = None) -> IngestResult:
    """Ingest listing files into the warehouse.

    Args:
        config: Stage parameters (the ingest section is used).
        settings: Where the warehouse and scratch space are.
        paths: Files or directories in any supported format.
        mapping: Another marketplace's mapping (name or path) the files are read with; None for Kaggle's layout.

    Returns:
        One outcome per table found, new or already ingested.

    Raises:
        InputFileError: A file cannot be read as a listings table (or through the mapping: a column it reads is
            missing, a value it cannot translate; the message names the mapping); nothing was written.
        PricewiseError: The mapping does not exist or is invalid; nothing was read.
        DiskFullError: A disk filled up; nothing was written.
    """
    loaded = load_mapping(settings, mapping) if mapping is not None else None
    try:
        return _ingest(config, settings, paths, loaded)
    except DiskFullError:
        raise
    except (OSError, duckdb.Error) as exc:
        if not warehouse.is_disk_full(exc):
            raise
        raise DiskFullError(
            f"no space left on device while ingesting ({exc}); the warehouse {settings.warehouse} is unchanged: "
            f"free space on the disk of {settings.data_dir} and run again"
        ) from exc


def _check_read_the_same_way(source: TableSource, known: tuple[str, str | None]) -> None:
    """A file already in the warehouse is skipped only when it was read the same way (the same mapping, or none):
    otherwise its rows there are not the rows this call would give, and skipping would hide that.

    Raises:
        InputFileError: It was read through another mapping (or without one).
    """
    batch_id, mapping_sha256 = known
    wanted = source.mapping.sha256 if source.mapping else None
    if mapping_sha256 == wanted:
        return
    earlier = f"mapping sha256 {mapping_sha256[:12]}" if mapping_sha256 else "Kaggle's layout (no mapping)"
    now = f"mapping {source.mapping.name!r}" if source.mapping else "Kaggle's layout (no mapping)"
    raise InputFileError(
        f"{source.source_name}: already in the warehouse as batch {batch_id}, read through {earlier}; this call "
        f"reads it through {now}, which gives other rows. Nothing of this call was kept; ingest it as it was "
        "read before, or into a new warehouse (PRICEWISE_DATA_DIR)"
    )


def _ingest(
    config: Config, settings: Settings, paths: list[Path], mapping: LoadedMapping | None
) -> IngestResult:
    outcomes: list[BatchOutcome] = []
    with open_sources(paths, settings.scratch, mapping) as sources, warehouse.connect(settings) as con:
        seen = batches.batch_ids_by_content(con)
        with warehouse.transaction(con):
            for n, source in enumerate(sources):
                batch_id = batch_id_for(source.content_sha256)
                if source.content_sha256 in seen:
                    _check_read_the_same_way(source, seen[source.content_sha256])
                    known = batches.find_batch(con, batch_id)
                    kind, rows, rejected = (
                        (known.kind, known.row_count, known.parse_rejected) if known else (source.kind, 0, 0)
                    )
                    logger.info("%s is already in the warehouse as batch %s", source.source_name, batch_id)
                    outcomes.append(BatchOutcome(batch_id, source.source_name, kind, rows, rejected, True))
                    continue
                outcomes.append(load_source(con, source, batch_id, config, n))
                seen[source.content_sha256] = (batch_id, source.mapping.sha256 if source.mapping else None)
    return IngestResult(tuple(outcomes))

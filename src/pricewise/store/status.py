"""The warehouse in, a summary of its batches (rows, accepted, rejected, last validation) and splits out."""

from __future__ import annotations

from dataclasses import dataclass

from pricewise.settings import Settings
from pricewise.store import warehouse


@dataclass(frozen=True)
class BatchStatus:
    """One batch with its latest validation, if any."""

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


@dataclass(frozen=True)
class DataStatus:
    """All batches, and the usable training listings per split."""

    warehouse: str
    batches: tuple[BatchStatus, ...]
    training_splits: dict[str, int]


def run(settings: Settings) -> DataStatus:
    """Summarise what the warehouse holds.

    Args:
        settings: Where the warehouse is.

    Returns:
        The batches in ingest order and the training listings per split.
    """
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            """
            SELECT b.batch_id, b.kind, b.source_name, b.file_format, b.row_count,
                   strftime(b.ingested_at, '%Y-%m-%d %H:%M:%S'), v.status, v.accepted, v.rejected, v.report_html
            FROM batches b LEFT JOIN latest_validations v USING (batch_id)
            ORDER BY b.ingested_at, b.batch_id
            """
        ).fetchall()
        splits = dict(con.execute("SELECT split, count(*) FROM training_listings GROUP BY split").fetchall())
    return DataStatus(
        warehouse=str(settings.warehouse),
        batches=tuple(BatchStatus(*row) for row in rows),
        training_splits={str(k): int(v) for k, v in splits.items()},
    )

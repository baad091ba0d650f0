"""Fixtures for the validation parts: tiny tables ingested into a real DuckDB warehouse in tmp, and judged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pricewise import ingest
from pricewise.config import Config
from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from pricewise.validation import row_rules
from tests.support.workspaces import PRICED_HEADER, write_table

IngestRows = Callable[..., str]
Judge = Callable[..., row_rules.RowVerdict]
Rejected = Callable[[str], dict[str, list[str]]]


@pytest.fixture
def ingest_rows(settings: Settings, tmp_path: Path) -> IngestRows:
    """Write rows as a TSV and ingest it; returns the new batch's id."""
    counter = iter(range(1_000))

    def ingest_(rows: Sequence[Sequence[object]], header: Sequence[str] = PRICED_HEADER) -> str:
        path = write_table(tmp_path / "tables" / f"batch{next(counter)}.tsv", rows, header)
        return ingest.run(Config(), settings, [path]).batches[0].batch_id

    return ingest_


@pytest.fixture
def judge(settings: Settings) -> Judge:
    """Apply the row rules to an ingested batch and commit the verdict."""

    def judge_(batch_id: str, config: Config | None = None) -> row_rules.RowVerdict:
        with warehouse.connect(settings) as con:
            batch = batches.find_batch(con, batch_id)
            assert batch is not None
            with warehouse.transaction(con):
                return row_rules.apply(con, batch_id, batch.kind, batch.row_count, config or Config())

    return judge_


@pytest.fixture
def rejected(settings: Settings) -> Rejected:
    """Reason codes of a batch's rejected rows by their raw id (rows without an id are left out)."""

    def rejected_(batch_id: str) -> dict[str, list[str]]:
        with warehouse.connect(settings, read_only=True) as con:
            rows = con.execute(
                "SELECT source_id, reasons FROM rejects WHERE batch_id = ? AND source_id IS NOT NULL",
                [batch_id],
            ).fetchall()
        return {str(source_id): list(reasons) for source_id, reasons in rows}

    return rejected_

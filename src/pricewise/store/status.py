"""The warehouse in, a summary of its batches (rows, accepted, rejected, last validation) and splits out."""

from __future__ import annotations

from dataclasses import dataclass

from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from pricewise.store.batches import BatchSummary


@dataclass(frozen=True)
class DataStatus:
    """All batches, and the usable training listings per split."""

    warehouse: str
    batches: tuple[BatchSummary, ...]
    training_splits: dict[str, int]


def run(settings: Settings) -> DataStatus:
    """Summarise what the warehouse holds.

    Args:
        settings: Where the warehouse is.

    Returns:
        The batches in ingest order and the training listings per split.
    """
    with warehouse.connect(settings, read_only=True) as con:
        summaries = batches.batch_summaries(con)
        splits = warehouse.training_split_counts(con)
    return DataStatus(warehouse=str(settings.warehouse), batches=summaries, training_splits=splits)

"""Accepted priced listings in, a stable train/valid/test assignment (stored in the warehouse) out.

A listing's split is a pure function of its id (md5 of the listing id, mapped to [0, 1)), so it never
changes as new batches arrive, and the same id lands in the same split on every machine.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from pricewise.config import Config, SplitConfig
from pricewise.settings import Settings
from pricewise.store import warehouse

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def bucket_sql(column: str) -> str:
    """SQL for a listing id's position in [0, 1): the first 32 bits of its md5."""
    return f"(('0x' || substr(md5({column}), 1, 8))::UBIGINT / 4294967296.0)"


def assign_sql(column: str, config: SplitConfig) -> str:
    """SQL expression naming the split of the listing id held in `column`."""
    bucket = bucket_sql(column)
    return (
        f"CASE WHEN {bucket} < {config.train} THEN 'train' "
        f"WHEN {bucket} < {config.train + config.valid} THEN 'valid' ELSE 'test' END"
    )


def bucket(listing_id: str) -> float:
    """A listing id's position in [0, 1); the same value as bucket_sql computes in the warehouse."""
    return int(hashlib.md5(listing_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:8], 16) / 2**32


def assign(listing_id: str, config: SplitConfig) -> str:
    """The split of one listing id; the same rule as assign_sql, for code outside the warehouse."""
    position = bucket(listing_id)
    if position < config.train:
        return "train"
    return "valid" if position < config.train + config.valid else "test"


@dataclass(frozen=True)
class SplitResult:
    """Counts of usable training listings per split."""

    counts: dict[str, int]


def run(config: Config, settings: Settings) -> SplitResult:
    """(Re)assign splits to every priced listing with the configured shares, and count them.

    Args:
        config: Stage parameters (the split section is used).
        settings: Where the warehouse is.

    Returns:
        Usable training listings per split.
    """
    with warehouse.connect(settings) as con, warehouse.transaction(con):
        con.execute(
            f"UPDATE listings SET split = {assign_sql('listing_id', config.split)} WHERE kind = 'priced'"
        )
        counts = dict.fromkeys(SPLITS, 0) | warehouse.training_split_counts(con)
    logger.info("split counts %s", counts)
    return SplitResult(counts)

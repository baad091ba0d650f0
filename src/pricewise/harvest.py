"""Sold prices fed back to the API in; a priced batch of those listings, ingested (validation comes next), out.

Suggestions whose seller reported a sold price become priced listings, written as a Kaggle-style file under
<data_dir>/feedback and ingested like any other file, so a batch that fails validation never reaches training.
Each gets an id from FEEDBACK_ID_BASE up, far above marketplace ids, derived from the request id: harvesting the
same suggestion twice gives the same id, and listings already in the warehouse are left out.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pricewise import ingest
from pricewise.columns import FEATURE_COLUMNS, PRICED_COLUMNS
from pricewise.config import Config
from pricewise.monitoring.windows import prediction_log
from pricewise.settings import Settings
from pricewise.store import warehouse

logger = logging.getLogger(__name__)

# Ids stay below 2**53: ingest reads numbers through DOUBLE, which holds integers exactly only up to there.
FEEDBACK_ID_BASE = 8 * 10**15
FEEDBACK_ID_SPAN = 10**15


@dataclass(frozen=True)
class HarvestResult:
    """What `pricewise data harvest-feedback` found and ingested."""

    sold: int  # suggestions in the log with a sold price
    harvested: int  # of those, listings not in the warehouse yet: the new batch's rows
    path: Path | None  # the written file, None when nothing was new
    batch_id: str | None  # the ingested batch, None when nothing was new

    @property
    def empty(self) -> bool:
        """Whether nothing new was harvested."""
        return self.batch_id is None


def feedback_listing_id(request_id: str) -> int:
    """The listing id a harvested suggestion gets: stable for a request id, in the feedback id range."""
    digest = hashlib.md5(request_id.encode(), usedforsecurity=False).hexdigest()
    return FEEDBACK_ID_BASE + int(digest, 16) % FEEDBACK_ID_SPAN


def new_listings(sold: pd.DataFrame, seen: set[int]) -> list[dict[str, Any]]:
    """Priced listing rows (Kaggle's train columns) of the sold suggestions whose id is not in `seen`.

    Args:
        sold: Rows of `PredictionLog.sold_suggestions` (request_id, inputs, sold_price).
        seen: Listing ids already in the warehouse.
    """
    rows = []
    for request_id, inputs, sold_price in sold[["request_id", "inputs", "sold_price"]].itertuples(
        index=False
    ):
        listing_id = feedback_listing_id(str(request_id))
        if listing_id in seen:
            continue
        fields = inputs if isinstance(inputs, dict) else json.loads(inputs)
        row: dict[str, Any] = {"train_id": listing_id, "price": float(sold_price)}
        for column in FEATURE_COLUMNS:
            value = fields.get(column)
            row[column] = value if column in ("item_condition_id", "shipping") else (value or "")
        rows.append({column: row[column] for column in PRICED_COLUMNS})
    return rows


def _one_line(value: Any) -> Any:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ") if isinstance(value, str) else value


def write_listings(settings: Settings, rows: list[dict[str, Any]]) -> Path:
    """Write priced listing rows as a gzipped TSV under <data_dir>/feedback (atomically) and return its path."""
    directory = settings.data_dir / "feedback"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"feedback-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.tsv.gz"
    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=list(PRICED_COLUMNS),
            delimiter="\t",
            lineterminator="\n",
            quoting=csv.QUOTE_NONE,
            escapechar="\\",
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _one_line(v) for k, v in row.items()})
    partial.replace(path)
    return path


def run(config: Config, settings: Settings) -> HarvestResult:
    """Harvest new sold prices into a file and ingest it as a priced batch.

    Args:
        config: Stage parameters (ingest's are used for the new file).
        settings: Where the prediction log, the warehouse and the data directory are.

    Returns:
        The counts, the file and the new batch id (None for both when no new sold price was fed back).

    Raises:
        PricewiseError: The prediction log or the warehouse cannot be read, or ingesting fails.
    """
    log = prediction_log(settings)
    try:
        sold = log.sold_suggestions()
    finally:
        log.close()
    if sold.empty:
        return HarvestResult(0, 0, None, None)
    rows = new_listings(sold, warehouse.source_ids_from(settings, FEEDBACK_ID_BASE))
    if not rows:
        return HarvestResult(len(sold), 0, None, None)
    path = write_listings(settings, rows)
    batch_id = ingest.run(config, settings, [path]).batches[0].batch_id
    logger.info("harvested %d sold listings from feedback into batch %s", len(rows), batch_id)
    return HarvestResult(len(sold), len(rows), path, batch_id)

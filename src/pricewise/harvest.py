"""Trusted outcomes (sold prices) in; a priced batch of those listings, ingested (validation comes next), out.

Suggestions with an outcome from a trusted source (the authenticated outcomes endpoint or an imported sales
export; never the seller's open feedback) become priced listings, written as a Kaggle-style file under
<data_dir>/feedback and ingested like any other file, so a batch that fails validation never reaches training.
Each gets an id from FEEDBACK_ID_BASE up, far above marketplace ids, derived from the request id: harvesting the
same suggestion twice gives the same id, and listings already in the warehouse are left out. The outcomes
table records the batch each outcome went into, so every training row's label can be traced to its source.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
from dataclasses import dataclass, field
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
from pricewise.store.training_data import OUTCOME_ID_BASE

logger = logging.getLogger(__name__)

# Ids stay below 2**53: ingest reads numbers through DOUBLE, which holds integers exactly only up to there.
FEEDBACK_ID_BASE = OUTCOME_ID_BASE
FEEDBACK_ID_SPAN = 10**15


@dataclass(frozen=True)
class HarvestResult:
    """What `pricewise data harvest-feedback` found and ingested."""

    sold: int  # suggestions in the log with a trusted sold price
    harvested: int  # of those, listings not in the warehouse yet: the new batch's rows
    path: Path | None  # the written file, None when nothing was new
    batch_id: str | None  # the ingested batch, None when nothing was new
    sources: dict[str, int] = field(default_factory=dict)  # the new batch's rows per outcome source

    def sources_text(self) -> str:
        """The sources of the new batch's labels, e.g. 'api: 120, export:sales.csv:ab12: 40'."""
        return ", ".join(f"{source}: {n}" for source, n in sorted(self.sources.items())) or "none"

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
        seen: Listing ids already in the warehouse; the ids returned are added to it.
    """
    rows = []
    for request_id, inputs, sold_price in sold[["request_id", "inputs", "sold_price"]].itertuples(
        index=False
    ):
        listing_id = feedback_listing_id(str(request_id))
        if listing_id in seen:
            continue
        seen.add(listing_id)
        fields = inputs if isinstance(inputs, dict) else json.loads(inputs)
        row: dict[str, Any] = {"train_id": listing_id, "price": float(sold_price)}
        for column in FEATURE_COLUMNS:
            value = fields.get(column)
            row[column] = value if column in ("item_condition_id", "shipping") else (value or "")
        rows.append({column: row[column] for column in PRICED_COLUMNS})
    return rows


def write_listings(settings: Settings, rows: list[dict[str, Any]]) -> Path:
    """Write priced listing rows as a gzipped TSV under <data_dir>/feedback (atomically) and return its path.

    Text fields are quoted the way ingest reads them (RFC 4180: wrapped in double quotes, a quote inside doubled),
    so every character of a listing's text comes back as it was sent. Every text field is quoted, not only those
    the csv module thinks need it: it leaves a lone carriage return bare, which the reader takes for a line end.
    """
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
            quoting=csv.QUOTE_NONNUMERIC,
            doublequote=True,
        )
        writer.writeheader()
        writer.writerows(rows)
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
        if sold.empty:
            return HarvestResult(0, 0, None, None)
        seen = warehouse.source_ids_from(settings, FEEDBACK_ID_BASE)
        rows = new_listings(sold, set(seen))
        if not rows:
            return HarvestResult(len(sold), 0, None, None)
        fresh = sold[[feedback_listing_id(str(r)) not in seen for r in sold["request_id"]]]
        fresh = fresh.drop_duplicates("request_id")
        path = write_listings(settings, rows)
        batch_id = ingest.run(config, settings, [path]).batches[0].batch_id
        log.mark_harvested([str(r) for r in fresh["request_id"]], batch_id)
        sources = {str(k): int(v) for k, v in fresh["label_source"].value_counts().items()}
    finally:
        log.close()
    logger.info("harvested %d sold listings from outcomes into batch %s (%s)", len(rows), batch_id, sources)
    return HarvestResult(len(sold), len(rows), path, batch_id, sources)

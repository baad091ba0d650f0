"""The warehouse in, model-ready frames of training listings per split (with their lineage) out; and, once
trusted outcomes have arrived, the newest of them as a recency holdout, and training weights for recent ones.

Listings harvested from trusted outcomes carry ids from OUTCOME_ID_BASE up. The recency holdout is the newest
`train.recency.holdout_share` of them (at most `holdout_max_rows`): whole batches newest first, and within the
batch where the holdout ends, a stable hash sample of its listings (a batch keeps no order of its rows, and a
hash sample of the newest batch is a fair sample of what the market does now). Held-out listings are in no
split, so neither the models nor their ranges nor the early stopping ever see them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from pricewise.columns import FEATURE_COLUMNS
from pricewise.config import RecencyConfig
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import warehouse

# Listings made from trusted outcomes get ids from here up (far above marketplace ids, below 2**53).
OUTCOME_ID_BASE = 8 * 10**15


@dataclass(frozen=True)
class Split:
    """Listings of one split: raw feature columns, their prices and ids."""

    frame: pd.DataFrame
    price: np.ndarray
    weight: np.ndarray | None = None  # whole-number training weights per row; None: every row once

    def weighted(self) -> Split:
        """The rows repeated by their weight: what a model without sample weights fits on (equal to weighting
        for least squares and for minibatch gradient descent in expectation)."""
        if self.weight is None or bool((self.weight == 1).all()):
            return self
        repeat = np.repeat(np.arange(len(self)), self.weight)
        return Split(self.frame.iloc[repeat].reset_index(drop=True), self.price[repeat])

    @property
    def log_price(self) -> np.ndarray:
        """The target the models learn: log1p(price)."""
        return np.asarray(np.log1p(self.price), dtype=float)

    def __len__(self) -> int:
        return len(self.frame)

    def halves(self) -> tuple[Split, Split]:
        """Two disjoint halves (alternate rows; rows are in listing-id hash order, so this is random)."""
        even, odd = np.arange(0, len(self), 2), np.arange(1, len(self), 2)
        return (
            Split(self.frame.iloc[even].reset_index(drop=True), self.price[even]),
            Split(self.frame.iloc[odd].reset_index(drop=True), self.price[odd]),
        )


@dataclass(frozen=True)
class TrainingData:
    """The three splits and where they came from."""

    train: Split
    valid: Split
    test: Split
    batch_ids: tuple[str, ...]
    digest: str
    recent: Split | None = None  # the recency holdout: newest trusted outcomes, in no split
    outcome_rows: int = 0  # usable listings from trusted outcomes, held out or not


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def recency_holdout(outcomes: pd.DataFrame, recency: RecencyConfig) -> set[str]:
    """The listing ids of the recency holdout.

    Args:
        outcomes: Listings from trusted outcomes: listing_id and ingested_at (of their batch).
        recency: The train.recency section.
    """
    if len(outcomes) < recency.min_outcomes or recency.holdout_share <= 0:
        return set()
    size = min(recency.holdout_max_rows, int(recency.holdout_share * len(outcomes)))
    ordered = outcomes.assign(key=outcomes["listing_id"].astype(str).map(_md5)).sort_values(
        ["ingested_at", "key"], ascending=[False, True]
    )
    return set(ordered["listing_id"].astype(str).head(size))


def load(
    settings: Settings,
    min_rows: int = 1,
    recency: RecencyConfig | None = None,
    now: datetime | None = None,
) -> TrainingData:
    """Read usable training listings (priced, accepted, from batches that did not fail validation).

    Args:
        settings: Where the warehouse is.
        min_rows: Fewest rows each split must have.
        recency: With it, the newest trusted outcomes are held out (`TrainingData.recent`) and recent ones
            weighted in the train split; without it, every listing is in its split once.
        now: The time outcomes' recency is measured at (default: now).

    Returns:
        Train, valid and test splits, the recency holdout, the batches they came from, and a digest.

    Raises:
        PricewiseError: No warehouse, or too few usable listings in a split.
    """
    with warehouse.connect(settings, read_only=True) as con:
        frame = warehouse.training_listings(con, FEATURE_COLUMNS)
        lineage = warehouse.training_lineage(con)
        outcomes = con.execute(
            "SELECT l.listing_id, b.ingested_at FROM training_listings l JOIN batches b USING (batch_id) "
            "WHERE l.source_id >= ?",
            [OUTCOME_ID_BASE],
        ).df()
    held = recency_holdout(outcomes, recency) if recency is not None else set()
    recent_since = (now or datetime.now(UTC)).replace(tzinfo=None) - timedelta(
        days=recency.weight_days if recency else 0
    )
    recent_ids = set(
        outcomes.loc[pd.to_datetime(outcomes["ingested_at"]) >= recent_since, "listing_id"].astype(str)
    )
    ids = frame["listing_id"].astype(str)
    in_holdout = ids.isin(held).to_numpy()
    splits = {}
    for name in ("train", "valid", "test"):
        mask = (frame["split"] == name).to_numpy() & ~in_holdout
        part = frame[mask]
        if len(part) < min_rows:
            raise PricewiseError(
                f"the {name} split has {len(part)} usable training listings (at least {min_rows} needed): "
                "ingest and validate a priced batch that passes validation"
            )
        features = part[list(FEATURE_COLUMNS)].reset_index(drop=True)
        weight = None
        if name == "train" and recency is not None and recency.outcome_weight > 1:
            recent = part["listing_id"].astype(str).isin(recent_ids).to_numpy()
            weight = np.where(recent, recency.outcome_weight, 1)
        splits[name] = Split(features, part["price"].to_numpy(dtype=float), weight)
    recent_split = None
    if in_holdout.any():
        part = frame[in_holdout]
        recent_split = Split(
            part[list(FEATURE_COLUMNS)].reset_index(drop=True), part["price"].to_numpy(float)
        )
    batch_ids = tuple(sorted(frame["batch_id"].unique().tolist()))
    return TrainingData(
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        batch_ids=batch_ids,
        digest=hashlib.sha256(lineage.encode()).hexdigest()[:16],
        recent=recent_split,
        outcome_rows=len(outcomes),
    )


def reference_sample(
    settings: Settings, batch_ids: tuple[str, ...] | None, max_rows: int, seed: int
) -> tuple[pd.DataFrame, int]:
    """A uniform sample of the training split of some batches (of all usable training listings when None).

    Args:
        settings: Where the warehouse is.
        batch_ids: The batches a model was trained on, or None for every batch.
        max_rows: Most rows returned; DuckDB's reservoir sample picks them.
        seed: The sample's seed, so the same reference comes back for the same data.

    Returns:
        The sample (feature columns and price) and the number of rows it was drawn from.

    Raises:
        PricewiseError: No warehouse.
    """
    columns = ", ".join((*FEATURE_COLUMNS, "price"))
    where = "split = 'train'"
    if batch_ids:
        where += " AND batch_id IN (" + ", ".join(warehouse.sql_literal(b) for b in batch_ids) + ")"
    with warehouse.connect(settings, read_only=True) as con:
        count_row = con.execute(f"SELECT count(*) FROM training_listings WHERE {where}").fetchone()
        total = int(count_row[0]) if count_row else 0
        sample = f"USING SAMPLE reservoir({int(max_rows)} ROWS) REPEATABLE ({int(seed)})" if total else ""
        frame = con.execute(
            f"SELECT {columns} FROM (SELECT * FROM training_listings WHERE {where}) {sample}"
        ).df()
    return frame, total

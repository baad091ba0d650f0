"""The warehouse in, model-ready frames of training listings per split (with their lineage) out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pricewise.columns import FEATURE_COLUMNS
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import warehouse


@dataclass(frozen=True)
class Split:
    """Listings of one split: raw feature columns, their prices and ids."""

    frame: pd.DataFrame
    price: np.ndarray

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


def load(settings: Settings, min_rows: int = 1) -> TrainingData:
    """Read usable training listings (priced, accepted, from batches that did not fail validation).

    Args:
        settings: Where the warehouse is.
        min_rows: Fewest rows each split must have.

    Returns:
        Train, valid and test splits, the batches they came from, and a digest of their content.

    Raises:
        PricewiseError: No warehouse, or too few usable listings in a split.
    """
    with warehouse.connect(settings, read_only=True) as con:
        frame = warehouse.training_listings(con, FEATURE_COLUMNS)
        lineage = warehouse.training_lineage(con)
    splits = {}
    for name in ("train", "valid", "test"):
        part = frame[frame["split"] == name]
        if len(part) < min_rows:
            raise PricewiseError(
                f"the {name} split has {len(part)} usable training listings (at least {min_rows} needed): "
                "ingest and validate a priced batch that passes validation"
            )
        features = part[list(FEATURE_COLUMNS)].reset_index(drop=True)
        splits[name] = Split(features, part["price"].to_numpy(dtype=float))
    batch_ids = tuple(sorted(frame["batch_id"].unique().tolist()))
    return TrainingData(
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        batch_ids=batch_ids,
        digest=hashlib.sha256(lineage.encode()).hexdigest()[:16],
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

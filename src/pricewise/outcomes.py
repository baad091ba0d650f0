"""The marketplace's sales export (CSV or TSV, optionally gzipped) in; its sold prices stored as trusted outcomes
of logged suggestions, with the file as their source, out.

The export is the batch form of `POST /v1/outcomes`: one row per sold listing that got a suggestion, with the
columns ``request_id`` and ``sold_price`` (in currency units), optionally ``sold_at`` (ISO 8601) and
``currency`` (only ``USD``). A file is imported whole or not at all: a missing column, a price column in cents,
a row whose price is not a positive number, a request id with no logged suggestion or one that already has a
different sold price each refuse the file with a message naming the problem. Importing the same file again
stores nothing new.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.prediction_log import Outcome, PredictionLog, default_url

logger = logging.getLogger(__name__)

REQUIRED = ("request_id", "sold_price")
OPTIONAL = ("sold_at", "currency")
CURRENCY = "USD"
# A median sold/suggested ratio this large is a unit error (cents), not a market: no market moves 20x.
CENTS_RATIO = 20.0


@dataclass(frozen=True)
class ImportResult:
    """What `pricewise outcomes import` stored."""

    path: Path
    source: str
    rows: int
    stored: int
    already_recorded: int


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def read_export(path: Path) -> pd.DataFrame:
    """Read and schema-check a sales export.

    Returns:
        Columns request_id (str), sold_price (float) and sold_at (UTC timestamps, NaT when not given).

    Raises:
        PricewiseError: The file cannot be read or its schema, unit or values are wrong (the message says which).
    """
    if not path.is_file():
        raise PricewiseError(f"no sales export at {path}")
    name = path.name.lower()  # exports from some systems are named SALES.CSV
    separator = "," if name.removesuffix(".gz").endswith(".csv") else "\t"
    try:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            frame = pd.read_csv(handle, sep=separator, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PricewiseError(f"cannot read the sales export {path}: {exc}") from exc
    columns = [str(c).strip().lower() for c in frame.columns]
    frame.columns = pd.Index(columns)
    cents = [c for c in columns if "cent" in c]
    if cents:
        raise PricewiseError(
            f"the sales export {path.name} has prices in cents (column {cents[0]}); export sold_price in "
            f"{CURRENCY} units, e.g. 12.50 for 1250 cents"
        )
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"lacks column {', '.join(missing)}")
        if unknown:
            problems.append(f"has unexpected column {', '.join(unknown)}")
        raise PricewiseError(
            f"the sales export {path.name} {' and '.join(problems)}: expected request_id, sold_price "
            f"and optionally sold_at, currency"
        )
    if frame.empty:
        raise PricewiseError(f"the sales export {path.name} has no rows")
    if "currency" in frame:
        other = sorted(set(frame["currency"].str.strip().str.upper()) - {CURRENCY})
        if other:
            unit = " (prices in cents)" if any("CENT" in o for o in other) else ""
            raise PricewiseError(
                f"the sales export {path.name} has currency {', '.join(other[:3])}{unit}; only {CURRENCY} "
                "prices in currency units are accepted"
            )
    price = pd.to_numeric(frame["sold_price"].str.strip(), errors="coerce")
    bad = ~(price > 0) | ~np.isfinite(price.fillna(np.nan))
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + 2).tolist()[:5]  # +2: the header is line 1
        raise PricewiseError(
            f"the sales export {path.name} has sold_price values that are not positive numbers on line "
            f"{', '.join(map(str, lines))}"
        )
    ids = frame["request_id"].str.strip()
    if (ids == "").any():
        line = int(np.flatnonzero((ids == "").to_numpy())[0]) + 2
        raise PricewiseError(f"the sales export {path.name} has an empty request_id on line {line}")
    twice = ids[ids.duplicated()]
    if not twice.empty:
        raise PricewiseError(f"the sales export {path.name} lists request id {twice.iloc[0]} more than once")
    sold_at = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    if "sold_at" in frame:
        given = frame["sold_at"].str.strip()
        parsed = pd.to_datetime(given.where(given != ""), utc=True, errors="coerce", format="ISO8601")
        broken = parsed.isna() & (given != "")
        if broken.any():
            line = int(np.flatnonzero(broken.to_numpy())[0]) + 2
            raise PricewiseError(
                f"the sales export {path.name} has a sold_at that is not ISO 8601 on line {line}"
            )
        sold_at = parsed
    return pd.DataFrame({"request_id": ids, "sold_price": price.astype(float), "sold_at": sold_at})


def suggested_prices(log: PredictionLog, request_ids: list[str]) -> pd.Series:
    """The suggested price of each logged request id (missing ids are left out)."""
    from sqlalchemy import select  # noqa: PLC0415 - only the import needs it

    p = log.predictions
    found: dict[str, float] = {}
    with log.engine.connect() as connection:
        for start in range(0, len(request_ids), 500):
            query = select(p.c.request_id, p.c.outputs["price"].as_float()).where(
                p.c.request_id.in_(request_ids[start : start + 500])
            )
            found.update((str(r), float(v)) for r, v in connection.execute(query) if v is not None)
    return pd.Series(found, dtype=float)


def run(config: Config, settings: Settings, path: Path) -> ImportResult:
    """Import a sales export's sold prices as trusted outcomes, all or nothing.

    Args:
        config: Stage parameters (unused today; every stage takes them).
        settings: Where the prediction log is.
        path: The export file.

    Returns:
        The source recorded on its rows and how many outcomes were new.

    Raises:
        PricewiseError: The file is refused (schema, unit, values, unknown or conflicting request ids); nothing
            was stored.
    """
    del config
    frame = read_export(path)
    source = f"export:{path.name}:{_digest(path)[:12]}"
    log = PredictionLog(default_url(settings))
    try:
        suggested = suggested_prices(log, frame["request_id"].tolist())
        ratio = frame.set_index("request_id")["sold_price"].div(suggested).dropna()
        if len(ratio) and float(ratio.median()) > CENTS_RATIO:
            raise PricewiseError(
                f"the sales export {path.name} looks like it is in cents: its sold prices are "
                f"{float(ratio.median()):.0f}x the suggested prices (median); export {CURRENCY} units"
            )
        outcomes = [
            Outcome(str(r), float(p), None if pd.isna(t) else t.to_pydatetime())
            for r, p, t in frame[["request_id", "sold_price", "sold_at"]].itertuples(index=False)
        ]
        receipt = log.record_outcomes(outcomes, source)
    finally:
        log.close()
    if receipt.unknown:
        raise PricewiseError(
            f"the sales export {path.name} has {len(receipt.unknown)} request ids with no logged suggestion "
            f"(e.g. {', '.join(receipt.unknown[:3])}); nothing was imported"
        )
    if receipt.conflicting:
        raise PricewiseError(
            f"the sales export {path.name} gives {len(receipt.conflicting)} suggestions a sold price different "
            f"from the one already recorded (e.g. {', '.join(receipt.conflicting[:3])}); nothing was imported"
        )
    logger.info("imported %d outcomes from %s", receipt.stored, path)
    return ImportResult(path, source, len(frame), receipt.stored, receipt.already_recorded)

"""A batch's accepted rows and row verdict in; its profile, and checks against a reference profile, out."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import duckdb

from pricewise.columns import OPTIONAL_COLUMNS
from pricewise.config import Threshold, ValidateConfig
from pricewise.errors import PricewiseError
from pricewise.store import batches
from pricewise.validation.row_rules import RowVerdict

ValidationStatus = Literal["pass", "warn", "fail"]
STATUS_ORDER: dict[ValidationStatus, int] = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class BatchCheck:
    """One batch check: a measured value against warn and fail thresholds."""

    name: str
    value: float | None
    warn: float | None
    fail: float | None
    status: ValidationStatus
    detail: str


@dataclass(frozen=True)
class BatchProfile:
    """Summary of a batch's accepted rows that later batches are compared with (stored as JSON)."""

    rows: int
    null_share: dict[str, float]  # optional column -> share of rows without a value
    priced_rows: int  # rows with a price above 0
    mean_log_price: float | None  # of log1p(price) over priced rows
    std_log_price: float | None
    categories: tuple[str, ...]
    brands: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The profile as a JSON-serialisable dict (the form stored in batch_profiles)."""
        data = asdict(self)
        data["categories"], data["brands"] = list(self.categories), list(self.brands)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchProfile:
        """Read a stored profile back."""
        return cls(
            rows=int(data["rows"]),
            null_share={str(k): float(v) for k, v in data["null_share"].items()},
            priced_rows=int(data["priced_rows"]),
            mean_log_price=data["mean_log_price"],
            std_log_price=data["std_log_price"],
            categories=tuple(data["categories"]),
            brands=tuple(data["brands"]),
        )


@dataclass(frozen=True)
class ReferenceProfile:
    """The profile a batch is compared with, and the batch it describes."""

    batch_id: str
    profile: BatchProfile


def profile(con: duckdb.DuckDBPyConnection, batch_id: str) -> BatchProfile:
    """Profile a batch's accepted rows.

    Args:
        con: An open warehouse connection, after the batch's verdict was written.
        batch_id: The batch to profile.

    Returns:
        Row counts, null shares of the optional columns, log-price moments, categories and brands.
    """
    null_shares = ", ".join(f"avg(CASE WHEN {c} IS NULL THEN 1.0 ELSE 0.0 END)" for c in OPTIONAL_COLUMNS)
    row = con.execute(
        f"""
        SELECT count(*), {null_shares},
               count(price) FILTER (WHERE price > 0),
               avg(ln(1 + price)) FILTER (WHERE price > 0),
               stddev_samp(ln(1 + price)) FILTER (WHERE price > 0)
        FROM listings WHERE batch_id = ?
        """,
        [batch_id],
    ).fetchone()
    assert row is not None  # an aggregate always returns one row
    categories = con.execute(
        "SELECT DISTINCT category_name FROM listings WHERE batch_id = ? AND category_name IS NOT NULL",
        [batch_id],
    ).fetchall()
    brands = con.execute(
        "SELECT DISTINCT brand_name FROM listings WHERE batch_id = ? AND brand_name IS NOT NULL", [batch_id]
    ).fetchall()
    n_optional = len(OPTIONAL_COLUMNS)
    return BatchProfile(
        rows=int(row[0]),
        null_share={
            c: float(v) if v is not None else 0.0
            for c, v in zip(OPTIONAL_COLUMNS, row[1 : 1 + n_optional], strict=True)
        },
        priced_rows=int(row[1 + n_optional]),
        mean_log_price=float(row[2 + n_optional]) if row[2 + n_optional] is not None else None,
        std_log_price=float(row[3 + n_optional]) if row[3 + n_optional] is not None else None,
        categories=tuple(sorted(str(c[0]) for c in categories)),
        brands=tuple(sorted(str(b[0]) for b in brands)),
    )


def reference(
    con: duckdb.DuckDBPyConnection, batch_id: str, kind: str, own: BatchProfile, config: ValidateConfig
) -> ReferenceProfile | None:
    """The profile a batch is compared with: named in config, else the first accepted priced batch.

    A priced batch validated before any other is its own reference (its drift checks are then skipped).

    Args:
        con: An open warehouse connection, after the batch's own profile was stored.
        batch_id: The batch being validated.
        kind: Its kind, 'priced' or 'unpriced'.
        own: The batch's own profile.
        config: The validate section (reference_batch is used).

    Returns:
        The reference, or None for an unpriced batch when no priced batch has passed yet.

    Raises:
        PricewiseError: The configured reference batch has no profile.
    """
    if config.reference_batch is not None:
        named = batches.read_profile(con, config.reference_batch)
        if named is None:
            raise PricewiseError(
                f"reference batch {config.reference_batch} (validate.reference_batch) has no profile: "
                "ingest and validate it first"
            )
        return ReferenceProfile(config.reference_batch, BatchProfile.from_json(named))
    earliest = batches.first_passing_priced_profile(con, excluding=batch_id)
    if earliest is not None:
        return ReferenceProfile(earliest[0], BatchProfile.from_json(earliest[1]))
    if kind == "priced":
        return ReferenceProfile(batch_id, own)
    return None


def grade(value: float, threshold: Threshold) -> ValidationStatus:
    """Fail from the fail threshold, warn from the warn threshold, pass below."""
    if value >= threshold.fail:
        return "fail"
    return "warn" if value >= threshold.warn else "pass"


def _threshold_check(name: str, value: float, threshold: Threshold, detail: str) -> BatchCheck:
    return BatchCheck(name, round(value, 6), threshold.warn, threshold.fail, grade(value, threshold), detail)


def _unseen_share(
    con: duckdb.DuckDBPyConnection, batch_id: str, column: str, known: tuple[str, ...]
) -> float:
    """Share of the batch's rows whose value of `column` the reference never had."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE known_values AS SELECT unnest($known::VARCHAR[]) AS v",
        {"known": list(known)},
    )
    row = con.execute(
        f"""
        SELECT avg(CASE WHEN l.{column} IS NOT NULL AND k.v IS NULL THEN 1.0 ELSE 0.0 END)
        FROM listings l LEFT JOIN known_values k ON k.v = l.{column}
        WHERE l.batch_id = ?
        """,
        [batch_id],
    ).fetchone()
    con.execute("DROP TABLE known_values")
    return float((row[0] if row else None) or 0.0)


def check(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    verdict: RowVerdict,
    own: BatchProfile,
    ref: ReferenceProfile | None,
    config: ValidateConfig,
) -> tuple[BatchCheck, ...]:
    """Check a batch as a whole: enough accepted rows, few rejects, and (against a reference) no drift.

    Args:
        con: An open warehouse connection, after the batch's verdict was written.
        batch_id: The batch being validated.
        verdict: Its row counts.
        own: Its profile.
        ref: The reference profile; None, or the batch itself, skips the drift checks.
        config: The validate section (the batch thresholds are used).

    Returns:
        The checks in a fixed order: accepted_rows, reject_share, then the drift checks.
    """
    checks = config.batch
    accepted, read = verdict.accepted, verdict.read
    result = [
        BatchCheck(
            "accepted_rows",
            accepted,
            None,
            checks.min_accepted_rows,
            "fail" if accepted < checks.min_accepted_rows else "pass",
            f"{accepted} of {read} rows accepted (at least {checks.min_accepted_rows} needed)",
        ),
        _threshold_check(
            "reject_share", verdict.rejected / read if read else 1.0, checks.reject_share, "rejected / read"
        ),
    ]
    if ref is None or ref.batch_id == batch_id:
        return tuple(result)
    theirs_profile = ref.profile
    for column in OPTIONAL_COLUMNS:
        ours, theirs = own.null_share[column], theirs_profile.null_share[column]
        result.append(
            _threshold_check(
                f"null_share_delta.{column}",
                abs(ours - theirs),
                checks.null_share_delta,
                f"null share {ours:.3f} here vs {theirs:.3f} in reference {ref.batch_id}",
            )
        )
    mean, ref_mean, ref_std = own.mean_log_price, theirs_profile.mean_log_price, theirs_profile.std_log_price
    if mean is not None and ref_mean is not None and ref_std:
        # The standard error shrinks with n; capping n keeps huge batches from failing on tiny shifts.
        n_eff = min(own.priced_rows, checks.zscore_max_n)
        z = abs(mean - ref_mean) / (ref_std / math.sqrt(n_eff))
        result.append(
            _threshold_check(
                "mean_log_price_z",
                z,
                checks.mean_log_price_z,
                f"mean log1p(price) {mean:.4f} vs {ref_mean:.4f} (sd {ref_std:.4f}, n capped at {n_eff})",
            )
        )
    for column, key, known, threshold in (
        ("category_name", "categories", theirs_profile.categories, checks.unseen_category_share),
        ("brand_name", "brands", theirs_profile.brands, checks.unseen_brand_share),
    ):
        share = _unseen_share(con, batch_id, column, known)
        result.append(
            _threshold_check(
                f"unseen_{key}_share",
                share,
                threshold,
                f"share of rows whose {column} is not in {ref.batch_id}",
            )
        )
    return tuple(result)


def overall(checks: tuple[BatchCheck, ...]) -> ValidationStatus:
    """The batch's status: the worst of its checks."""
    return max((c.status for c in checks), key=STATUS_ORDER.__getitem__)

"""A batch's accepted rows and row verdict in; its profile, and checks against a reference profile, out.

Shift versus corruption. A real market shift moves the price level of a segment (a top-level category) as a
whole; corruption (a unit error, garbled or swapped prices, a burst of fake rows) does not look like that. The
check ``segment_shift`` compares each segment's median log price with the reference's (robust: median and MAD,
standard error of the median) and accepts a significant shift as a market shift only when
- its size is plausible (at most ``segment_shift.max_factor``; cents are 100x),
- the segment's spread stayed the same (robust sd within ``max_spread_ratio``): a shifted market keeps its
  shape, corrupted rows widen it,
- both quartiles moved with the median (within ``quantile_tolerance`` of its shift): the whole distribution
  moved, not a part of its rows,
- and each of two disjoint halves of the batch shows it on its own (``half_z``).
A market shift is flagged (warn, with its figures) and the mean-log-price check is then judged on the rows
outside the shifted segments, so the batch reaches training; a shift that fails any of these fails the batch.
Labels come only from trusted sources, so a consistent shift in them is the market, not an attacker.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import duckdb

from pricewise.columns import OPTIONAL_COLUMNS
from pricewise.config import SegmentShift, Threshold, ValidateConfig
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
    # top-level category -> n, mean, median, q25, q75, mad of log1p(price) over its priced rows
    segments: dict[str, dict[str, float]] = field(default_factory=dict)

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
            segments={
                str(k): {str(a): float(b) for a, b in v.items()} for k, v in data.get("segments", {}).items()
            },
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
        segments={
            name: {k: v for k, v in stats.items() if not k.startswith("half")}
            for name, stats in segment_stats(con, batch_id).items()
        },
    )


SEGMENT_STATS = ("n", "mean", "median", "q25", "q75", "mad")
HALF_STATS = ("half0_n", "half0_median", "half0_mad", "half1_n", "half1_median", "half1_mad")


def segment_stats(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, dict[str, float]]:
    """Robust statistics of log1p(price) per top-level category of a batch's priced rows, and of two disjoint
    halves of them (by a hash of the listing id)."""
    rows = con.execute(
        """
        SELECT segment, count(*), avg(lp), median(lp), quantile_cont(lp, 0.25), quantile_cont(lp, 0.75), mad(lp),
               count(*) FILTER (WHERE half = 0), median(lp) FILTER (WHERE half = 0), mad(lp) FILTER (WHERE half = 0),
               count(*) FILTER (WHERE half = 1), median(lp) FILTER (WHERE half = 1), mad(lp) FILTER (WHERE half = 1)
        FROM (
            SELECT split_part(category_name, '/', 1) AS segment, ln(1 + price) AS lp, hash(listing_id) % 2 AS half
            FROM listings WHERE batch_id = ? AND price > 0 AND category_name IS NOT NULL
        )
        GROUP BY segment
        """,
        [batch_id],
    ).fetchall()
    return {
        str(r[0]): {
            name: float(v) if v is not None else 0.0
            for name, v in zip(SEGMENT_STATS + HALF_STATS, r[1:], strict=True)
        }
        for r in rows
    }


ROBUST_SD = 1.4826  # MAD to standard deviation under a normal distribution
MEDIAN_SE = 1.2533  # standard error of a median / (sd / sqrt(n)) under a normal distribution
QUARTILE_SE = 1.3626  # the same for a quartile


@dataclass(frozen=True)
class SegmentVerdict:
    """One top-level category's shift against the reference and whether it is a market shift."""

    segment: str
    rows: int
    shift: float  # of the median log1p(price): log of the price factor
    z: float
    market_shift: bool
    problems: tuple[str, ...]
    detail: str


def _se(sd_a: float, n_a: float, sd_b: float, n_b: float, factor: float) -> float:
    return factor * math.sqrt(sd_a**2 / max(n_a, 1.0) + sd_b**2 / max(n_b, 1.0))


def judge_segments(
    own: dict[str, dict[str, float]], ref: dict[str, dict[str, float]], cfg: SegmentShift
) -> list[SegmentVerdict]:
    """The segments whose price level moved significantly, each judged market shift or not.

    Args:
        own: `segment_stats` of the batch (with halves).
        ref: The reference profile's segments.
        cfg: The validate.batch.segment_shift section.
    """
    verdicts = []
    for name in sorted(own):
        b, r = own[name], ref.get(name)
        if r is None or b["n"] < cfg.min_rows or r["n"] < cfg.min_rows:
            continue
        sd_b, sd_r = max(ROBUST_SD * b["mad"], 1e-6), max(ROBUST_SD * r["mad"], 1e-6)
        shift = b["median"] - r["median"]
        se = _se(sd_b, b["n"], sd_r, r["n"], MEDIAN_SE)
        z = shift / se
        if abs(z) < cfg.z:
            continue
        problems = []
        if abs(shift) > math.log(cfg.max_factor):
            problems.append(f"implausible size x{math.exp(shift):.2f} (at most x{cfg.max_factor})")
        ratio = sd_b / sd_r
        if not 1 / cfg.max_spread_ratio <= ratio <= cfg.max_spread_ratio:
            problems.append(f"spread changed x{ratio:.2f}")
        q_se = _se(sd_b, b["n"], sd_r, r["n"], QUARTILE_SE)
        d25, d75 = b["q25"] - r["q25"], b["q75"] - r["q75"]
        allowed = cfg.quantile_tolerance * abs(shift) + 2 * q_se
        if abs(d25 - shift) > allowed or abs(d75 - shift) > allowed:
            problems.append(
                f"only part of the rows moved (quartiles x{math.exp(d25):.2f}, x{math.exp(d75):.2f})"
            )
        halves = []
        for half in ("half0", "half1"):
            n_h, sd_h = b[f"{half}_n"], max(ROBUST_SD * b[f"{half}_mad"], 1e-6)
            d_h = b[f"{half}_median"] - r["median"]
            z_h = d_h / _se(sd_h, n_h, sd_r, r["n"], MEDIAN_SE) if n_h else 0.0
            halves.append(d_h)
            if math.copysign(1, d_h) != math.copysign(1, shift) or abs(z_h) < cfg.half_z:
                problems.append(f"not in both halves of the batch (x{math.exp(d_h):.2f} in one)")
                break
        detail = (
            f"{name}: prices x{math.exp(shift):.2f} (median log shift {shift:+.3f}, z {z:.1f}, n {int(b['n'])}; "
            f"quartiles x{math.exp(d25):.2f}/x{math.exp(d75):.2f}; spread x{ratio:.2f}"
            + (f"; halves {'/'.join(f'x{math.exp(h):.2f}' for h in halves)}" if len(halves) == 2 else "")
            + ")"
        )
        verdicts.append(SegmentVerdict(name, int(b["n"]), shift, z, not problems, tuple(problems), detail))
    return verdicts


def _segment_check(verdicts: list[SegmentVerdict], compared: int) -> BatchCheck:
    corrupt = [v for v in verdicts if not v.market_shift]
    if corrupt:
        detail = "; ".join(f"{v.detail}: {', '.join(v.problems)}" for v in corrupt)
        return BatchCheck("segment_shift", len(corrupt), None, 1, "fail", f"not a market shift: {detail}")
    if verdicts:
        detail = "; ".join(v.detail for v in verdicts)
        return BatchCheck("segment_shift", len(verdicts), 1, None, "warn", f"market shift (drift): {detail}")
    return BatchCheck(
        "segment_shift",
        0,
        1,
        None,
        "pass",
        f"no top-level category's price level moved ({compared} compared)",
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
    segment_check = None
    market_shifts: list[SegmentVerdict] = []
    if theirs_profile.segments:
        verdicts = judge_segments(segment_stats(con, batch_id), theirs_profile.segments, checks.segment_shift)
        segment_check = _segment_check(verdicts, len(set(own.segments) & set(theirs_profile.segments)))
        if segment_check.status != "fail":
            market_shifts = verdicts
    if mean is not None and ref_mean is not None and ref_std:
        rows, note = own.priced_rows, ""
        if market_shifts:
            # The shifted segments are judged by segment_shift; the rest of the batch must not have moved.
            mean, ref_mean, rows = _outside(con, batch_id, theirs_profile, market_shifts)
            note = f", outside the market shift in {', '.join(v.segment for v in market_shifts)}"
        if mean is not None and ref_mean is not None and rows > 0:
            # The standard error shrinks with n; capping n keeps huge batches from failing on tiny shifts.
            n_eff = min(rows, checks.zscore_max_n)
            z = abs(mean - ref_mean) / (ref_std / math.sqrt(n_eff))
            result.append(
                _threshold_check(
                    "mean_log_price_z",
                    z,
                    checks.mean_log_price_z,
                    f"mean log1p(price) {mean:.4f} vs {ref_mean:.4f} (sd {ref_std:.4f}, n capped at {n_eff}"
                    f"{note})",
                )
            )
    if segment_check is not None:
        result.append(segment_check)
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


def _outside(
    con: duckdb.DuckDBPyConnection, batch_id: str, ref: BatchProfile, shifted: list[SegmentVerdict]
) -> tuple[float | None, float | None, int]:
    """Mean log1p(price) of the batch and of the reference outside the shifted segments, and the batch's rows."""
    names = [v.segment for v in shifted]
    row = con.execute(
        "SELECT avg(ln(1 + price)), count(*) FROM listings WHERE batch_id = ? AND price > 0 "
        "AND (category_name IS NULL OR NOT list_contains(?::VARCHAR[], split_part(category_name, '/', 1)))",
        [batch_id, names],
    ).fetchone()
    mean = float(row[0]) if row and row[0] is not None else None
    rows = int(row[1]) if row else 0
    ref_n = float(ref.priced_rows) - sum(ref.segments[n]["n"] for n in names)
    ref_sum = float(ref.mean_log_price or 0.0) * ref.priced_rows - sum(
        ref.segments[n]["n"] * ref.segments[n]["mean"] for n in names
    )
    return mean, ref_sum / ref_n if ref_n > 0 else None, rows


def overall(checks: tuple[BatchCheck, ...]) -> ValidationStatus:
    """The batch's status: the worst of its checks."""
    return max((c.status for c in checks), key=STATUS_ORDER.__getitem__)

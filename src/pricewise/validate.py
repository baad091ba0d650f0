"""Ingested batches in; accepted listings, quarantined rejects with reasons, and a JSON + HTML report out.

Row rules decide each row (a row may break several, all are recorded). Batch checks compare the accepted
rows with a reference profile (the first accepted priced batch, or one named in config). For every batch,
accepted + rejected = read: nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from jinja2 import Environment, PackageLoader, select_autoescape

from pricewise import split
from pricewise.columns import OPTIONAL_COLUMNS, TEXT_COLUMNS
from pricewise.config import Config, Threshold, ValidateConfig
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import warehouse

logger = logging.getLogger(__name__)

Status = Literal["pass", "warn", "fail"]
STATUS_ORDER: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}
# Control characters other than tab and newlines, and U+FFFD (what a decoder leaves for bytes it could not read).
BROKEN_TEXT = r"[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}\x{FFFD}]"
# UTF-8 read as cp1252 ("mojibake"): 'Ã©' for 'é', 'Â®' for '®', 'â„¢' for '™'. A lead character followed by
# what cp1252 shows for a UTF-8 continuation byte (0x80-0xBF).
_CONTINUATION = r"[\x{80}-\x{BF}€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ]"
MOJIBAKE = rf"[ÂÃ]{_CONTINUATION}|â{_CONTINUATION}{_CONTINUATION}"


@dataclass(frozen=True)
class Check:
    """One batch check: a measured value against warn and fail thresholds."""

    name: str
    value: float | None
    warn: float | None
    fail: float | None
    status: Status
    detail: str


@dataclass(frozen=True)
class BatchValidation:
    """The validation of one batch."""

    batch_id: str
    source_name: str
    kind: str
    status: Status
    rows_read: int
    accepted: int
    rejected: int
    unusable_for_training: int
    reasons: dict[str, int]
    checks: tuple[Check, ...]
    reference_batch_id: str | None
    report_json: Path
    report_html: Path


@dataclass(frozen=True)
class ValidateResult:
    """Every batch validated by one call."""

    batches: tuple[BatchValidation, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> bool:
        """Whether any batch failed its checks."""
        return any(b.status == "fail" for b in self.batches)


def row_rules_sql(kind: str, config: ValidateConfig) -> str:
    """SQL that types each raw row of batch $batch and lists the rules it breaks (an empty list means accepted).

    Args:
        kind: priced rows are also checked for a valid price; unpriced rows are not.
        config: The row rules.
    """
    rules = config.rows
    text_checks = " OR ".join(
        f"regexp_matches(coalesce({col}, ''), '{BROKEN_TEXT}|{MOJIBAKE}')" for col in TEXT_COLUMNS
    )
    price_rules = ""
    if kind == "priced":
        price_rules = f"""
            CASE WHEN price_text IS NULL THEN 'price_missing' END,
            CASE WHEN price_text IS NOT NULL AND price_num IS NULL THEN 'price_not_number' END,
            CASE WHEN price_num IS NOT NULL AND NOT isfinite(price_num) THEN 'price_not_finite' END,
            CASE WHEN isfinite(price_num) AND price_num < 0 THEN 'price_negative' END,
            CASE WHEN isfinite(price_num) AND price_num > {rules.max_price} THEN 'price_above_max' END,"""
    return f"""
        WITH typed AS (
            SELECT
                r.*,
                trim(r.price) AS price_text,
                TRY_CAST(trim(r.price) AS DOUBLE) AS price_num,
                TRY_CAST(trim(r.source_id) AS DOUBLE) AS id_num,
                TRY_CAST(trim(r.item_condition_id) AS DOUBLE) AS condition_num,
                TRY_CAST(trim(r.shipping) AS DOUBLE) AS shipping_num,
                count(*) OVER (PARTITION BY trim(r.source_id)) AS id_copies
            FROM raw_listings r WHERE r.batch_id = $batch
        ),
        earlier AS (
            SELECT DISTINCT source_id FROM listings WHERE kind = 'priced' AND batch_id <> $batch
        )
        SELECT
            t.*,
            list_filter([
                CASE WHEN t.source_id IS NULL THEN 'id_missing' END,
                CASE WHEN t.source_id IS NOT NULL AND (t.id_num IS NULL OR t.id_num < 0
                     OR t.id_num <> floor(t.id_num)) THEN 'id_not_integer' END,
                CASE WHEN t.source_id IS NOT NULL AND t.id_copies > 1 THEN 'duplicate_id_in_batch' END,
                CASE WHEN e.source_id IS NOT NULL THEN 'duplicate_id_across_batches' END,
                CASE WHEN t.name IS NULL OR trim(t.name) = '' THEN 'name_empty' END,
                CASE WHEN length(t.name) > {rules.max_name_chars} THEN 'name_too_long' END,
                CASE WHEN t.condition_num IS NULL OR t.condition_num NOT IN (1, 2, 3, 4, 5)
                     THEN 'condition_invalid' END,
                CASE WHEN t.shipping_num IS NULL OR t.shipping_num NOT IN (0, 1) THEN 'shipping_invalid' END,
                CASE WHEN length(t.category_name) > {rules.max_category_chars} THEN 'category_too_long' END,
                CASE WHEN length(t.brand_name) > {rules.max_brand_chars} THEN 'brand_too_long' END,
                CASE WHEN length(t.item_description) > {rules.max_description_chars}
                     THEN 'description_too_long' END,{price_rules}
                CASE WHEN {text_checks} THEN 'broken_encoding' END
            ], lambda x: x IS NOT NULL) AS reasons
        FROM typed t
        LEFT JOIN earlier e
            ON $kind = 'priced' AND t.id_num IS NOT NULL AND t.id_num = floor(t.id_num)
            AND e.source_id = CAST(t.id_num AS BIGINT)
    """


def _write_rows(con: duckdb.DuckDBPyConnection, batch_id: str, kind: str, config: Config) -> None:
    """Replace the batch's accepted and rejected rows with a fresh verdict (re-validation is allowed)."""
    for table in ("listings", "rejects", "batch_profiles"):
        con.execute(f"DELETE FROM {table} WHERE batch_id = ?", [batch_id])
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked AS {row_rules_sql(kind, config.validate_)}",
        {"batch": batch_id, "kind": kind},
    )
    con.execute(
        """
        INSERT INTO rejects (batch_id, source_line, source_id, reasons, name, item_condition_id, category_name,
                             brand_name, price, shipping, item_description, raw_line)
        SELECT batch_id, NULL, source_id, reasons, name, item_condition_id, category_name, brand_name, price,
               shipping, item_description, NULL
        FROM checked WHERE len(reasons) > 0
        """
    )
    con.execute(
        """
        INSERT INTO rejects (batch_id, source_line, source_id, reasons, raw_line)
        SELECT batch_id, source_line, NULL, ['parse_' || replace(lower(error_type), ' ', '_')], raw_line
        FROM parse_rejects WHERE batch_id = ?
        """,
        [batch_id],
    )
    listing_id = (
        "'train-' || CAST(id_num AS BIGINT)"
        if kind == "priced"
        else "'score-' || batch_id || '-' || CAST(id_num AS BIGINT)"
    )
    split_expr = split.assign_sql(listing_id, config.split) if kind == "priced" else "NULL"
    con.execute(
        f"""
        INSERT INTO listings
        SELECT {listing_id}, batch_id, $kind, CAST(id_num AS BIGINT), trim(name), CAST(condition_num AS TINYINT),
               nullif(trim(category_name), ''), nullif(trim(brand_name), ''),
               CASE WHEN $kind = 'priced' THEN price_num END, CAST(shipping_num AS TINYINT),
               item_description, $kind = 'priced' AND price_num > 0, {split_expr}
        FROM checked WHERE len(reasons) = 0
        """,
        {"kind": kind},
    )
    con.execute("DROP TABLE checked")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> Any:
    row = con.execute(sql, params).fetchone()
    return row[0] if row else None


def _profile(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any]:
    """Summary of a batch's accepted rows that later batches are compared with."""
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
    return {
        "rows": int(row[0]),
        "null_share": {
            c: float(v) if v is not None else 0.0 for c, v in zip(OPTIONAL_COLUMNS, row[1:4], strict=True)
        },
        "priced_rows": int(row[4]),
        "mean_log_price": float(row[5]) if row[5] is not None else None,
        "std_log_price": float(row[6]) if row[6] is not None else None,
        "categories": sorted(str(c[0]) for c in categories),
        "brands": sorted(str(b[0]) for b in brands),
    }


def _grade(value: float, threshold: Threshold) -> Status:
    if value >= threshold.fail:
        return "fail"
    return "warn" if value >= threshold.warn else "pass"


def _threshold_check(name: str, value: float, threshold: Threshold, detail: str) -> Check:
    return Check(name, round(value, 6), threshold.warn, threshold.fail, _grade(value, threshold), detail)


def _unseen_share(con: duckdb.DuckDBPyConnection, batch_id: str, column: str, known: list[str]) -> float:
    """Share of the batch's rows whose value of `column` the reference never had."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE known_values AS SELECT unnest($known::VARCHAR[]) AS v", {"known": known}
    )
    value = _scalar(
        con,
        f"""
        SELECT avg(CASE WHEN l.{column} IS NOT NULL AND k.v IS NULL THEN 1.0 ELSE 0.0 END)
        FROM listings l LEFT JOIN known_values k ON k.v = l.{column}
        WHERE l.batch_id = ?
        """,
        [batch_id],
    )
    con.execute("DROP TABLE known_values")
    return float(value or 0.0)


def _batch_checks(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    counts: dict[str, int],
    profile: dict[str, Any],
    reference: tuple[str, dict[str, Any]] | None,
    config: ValidateConfig,
) -> list[Check]:
    checks = config.batch
    accepted, read = counts["accepted"], counts["read"]
    result = [
        Check(
            "accepted_rows",
            accepted,
            None,
            checks.min_accepted_rows,
            "fail" if accepted < checks.min_accepted_rows else "pass",
            f"{accepted} of {read} rows accepted (at least {checks.min_accepted_rows} needed)",
        ),
        _threshold_check(
            "reject_share", counts["rejected"] / read if read else 1.0, checks.reject_share, "rejected / read"
        ),
    ]
    if reference is None or reference[0] == batch_id:
        return result
    ref_id, ref = reference
    for column in OPTIONAL_COLUMNS:
        ours, theirs = profile["null_share"][column], ref["null_share"][column]
        result.append(
            _threshold_check(
                f"null_share_delta.{column}",
                abs(ours - theirs),
                checks.null_share_delta,
                f"null share {ours:.3f} here vs {theirs:.3f} in reference {ref_id}",
            )
        )
    mean, ref_mean, ref_std = profile["mean_log_price"], ref["mean_log_price"], ref["std_log_price"]
    if mean is not None and ref_mean is not None and ref_std:
        n_eff = min(profile["priced_rows"], checks.zscore_max_n)
        z = abs(mean - ref_mean) / (ref_std / math.sqrt(n_eff))
        result.append(
            _threshold_check(
                "mean_log_price_z",
                z,
                checks.mean_log_price_z,
                f"mean log1p(price) {mean:.4f} vs {ref_mean:.4f} (sd {ref_std:.4f}, n capped at {n_eff})",
            )
        )
    for column, key, threshold in (
        ("category_name", "categories", checks.unseen_category_share),
        ("brand_name", "brands", checks.unseen_brand_share),
    ):
        share = _unseen_share(con, batch_id, column, ref[key])
        result.append(
            _threshold_check(
                f"unseen_{key}_share", share, threshold, f"share of rows whose {column} is not in {ref_id}"
            )
        )
    return result


def _reference(
    con: duckdb.DuckDBPyConnection, batch_id: str, kind: str, config: ValidateConfig
) -> tuple[str, dict[str, Any]] | None:
    """The profile new batches are compared with: named in config, else the first accepted priced batch."""
    if config.reference_batch is not None:
        text = _scalar(con, "SELECT profile FROM batch_profiles WHERE batch_id = ?", [config.reference_batch])
        if text is None:
            raise PricewiseError(
                f"reference batch {config.reference_batch} (validate.reference_batch) has no profile: "
                "ingest and validate it first"
            )
        return config.reference_batch, json.loads(text)
    row = con.execute(
        """
        SELECT b.batch_id, p.profile FROM batches b
        JOIN batch_profiles p USING (batch_id)
        JOIN latest_validations v USING (batch_id)
        WHERE b.kind = 'priced' AND v.status <> 'fail' AND b.batch_id <> ?
        ORDER BY b.ingested_at, b.batch_id LIMIT 1
        """,
        [batch_id],
    ).fetchone()
    if row is not None:
        return str(row[0]), json.loads(row[1])
    if kind == "priced":
        text = _scalar(con, "SELECT profile FROM batch_profiles WHERE batch_id = ?", [batch_id])
        return batch_id, json.loads(text)
    return None


def _render_reports(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / f"{report['validation_id']}.json"
        html_path = directory / f"{report['validation_id']}.html"
        json_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        env = Environment(loader=PackageLoader("pricewise"), autoescape=select_autoescape())
        html_path.write_text(env.get_template("validation_report.html").render(r=report), encoding="utf-8")
    except OSError as exc:
        raise PricewiseError(f"cannot write validation report to {directory}: {exc.strerror}") from exc
    return json_path, html_path


def _validate_batch(
    con: duckdb.DuckDBPyConnection, batch_id: str, config: Config, settings: Settings
) -> BatchValidation:
    meta = con.execute(
        "SELECT kind, source_name, row_count FROM batches WHERE batch_id = ?", [batch_id]
    ).fetchone()
    if meta is None:
        raise PricewiseError(f"no batch {batch_id} in the warehouse (see `pricewise data status`)")
    kind, source_name, rows_read = str(meta[0]), str(meta[1]), int(meta[2])
    validated_at = datetime.now(UTC).replace(tzinfo=None)
    validation_id = f"{batch_id}-{validated_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    with warehouse.transaction(con):
        _write_rows(con, batch_id, kind, config)
        accepted = int(_scalar(con, "SELECT count(*) FROM listings WHERE batch_id = ?", [batch_id]))
        rejected = int(_scalar(con, "SELECT count(*) FROM rejects WHERE batch_id = ?", [batch_id]))
        if accepted + rejected != rows_read:
            raise PricewiseError(
                f"batch {batch_id}: accepted {accepted} + rejected {rejected} != read {rows_read}; nothing written"
            )
        unusable = int(
            _scalar(
                con,
                "SELECT count(*) FROM listings WHERE batch_id = ? AND kind = 'priced' AND NOT usable_for_training",
                [batch_id],
            )
        )
        reasons = dict(
            con.execute(
                "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM rejects WHERE batch_id = ?) "
                "GROUP BY r ORDER BY count(*) DESC, r",
                [batch_id],
            ).fetchall()
        )
        profile = _profile(con, batch_id)
        con.execute("INSERT INTO batch_profiles VALUES (?, ?)", [batch_id, json.dumps(profile)])
        reference = _reference(con, batch_id, kind, config.validate_)
        counts = {"read": rows_read, "accepted": accepted, "rejected": rejected}
        checks = _batch_checks(con, batch_id, counts, profile, reference, config.validate_)
        status: Status = max((c.status for c in checks), key=STATUS_ORDER.__getitem__)
        samples = con.execute(
            "SELECT source_line, source_id, reasons, name, price, coalesce(raw_line, '') FROM rejects "
            "WHERE batch_id = ? ORDER BY source_line NULLS LAST, source_id LIMIT 20",
            [batch_id],
        ).fetchall()
        report = {
            "validation_id": validation_id,
            "batch_id": batch_id,
            "source_name": source_name,
            "kind": kind,
            "validated_at": validated_at.isoformat(),
            "status": status,
            "counts": {**counts, "unusable_for_training": unusable},
            "reasons": reasons,
            "reference_batch_id": reference[0] if reference else None,
            "checks": [asdict(c) for c in checks],
            "sample_rejects": [
                {
                    "line": s[0],
                    "id": s[1],
                    "reasons": list(s[2]),
                    "name": s[3],
                    "price": s[4],
                    "raw": s[5][:300],
                }
                for s in samples
            ],
        }
        json_path, html_path = _render_reports(report, settings.reports / "validation" / batch_id)
        con.execute(
            "INSERT INTO validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                validation_id,
                batch_id,
                validated_at,
                status,
                rows_read,
                accepted,
                rejected,
                unusable,
                report["reference_batch_id"],
                str(json_path),
                str(html_path),
                json.dumps(report["checks"]),
            ],
        )
    logger.info(
        "batch %s: %s (%d accepted, %d rejected of %d)", batch_id, status, accepted, rejected, rows_read
    )
    return BatchValidation(
        batch_id=batch_id,
        source_name=source_name,
        kind=kind,
        status=status,
        rows_read=rows_read,
        accepted=accepted,
        rejected=rejected,
        unusable_for_training=unusable,
        reasons=reasons,
        checks=tuple(checks),
        reference_batch_id=reference[0] if reference else None,
        report_json=json_path,
        report_html=html_path,
    )


def run(config: Config, settings: Settings, batch_id: str | None = None) -> ValidateResult:
    """Validate one batch, or every batch not validated yet (in ingest order).

    Args:
        config: Stage parameters (the validate and split sections are used).
        settings: Where the warehouse and reports are.
        batch_id: A batch to (re)validate; None validates every batch without a validation.

    Returns:
        One validation per batch; `failed` tells whether any batch failed its checks.

    Raises:
        PricewiseError: The batch does not exist or a report cannot be written; that batch's state is unchanged.
    """
    with warehouse.connect(settings) as con:
        if batch_id is not None:
            batch_ids = [batch_id]
        else:
            batch_ids = [
                str(r[0])
                for r in con.execute(
                    "SELECT batch_id FROM batches WHERE batch_id NOT IN (SELECT batch_id FROM validations) "
                    "ORDER BY kind = 'unpriced', ingested_at, batch_id"
                ).fetchall()
            ]
        return ValidateResult(tuple(_validate_batch(con, b, config, settings) for b in batch_ids))

"""Ingested batches in; accepted listings, quarantined rejects with reasons, and a JSON + HTML report out.

Row rules decide each row (a row may break several, all are recorded). Batch checks compare the accepted
rows with a reference profile (the first accepted priced batch, or one named in config). For every batch,
accepted + rejected = read: nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pricewise.config import Config
from pricewise.errors import DiskFullError, PricewiseError
from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from pricewise.validation import batch_checks, reports, row_rules
from pricewise.validation.batch_checks import BatchCheck, ValidationStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchValidation:
    """The validation of one batch."""

    batch_id: str
    source_name: str
    kind: str
    status: ValidationStatus
    rows_read: int
    accepted: int
    rejected: int
    unusable_for_training: int
    reasons: dict[str, int]
    checks: tuple[BatchCheck, ...]
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


def _validate_batch(
    con: duckdb.DuckDBPyConnection, batch_id: str, config: Config, settings: Settings
) -> BatchValidation:
    """Judge a batch's rows, check the batch, write its reports and record the validation, all or nothing."""
    batch = batches.find_batch(con, batch_id)
    if batch is None:
        raise PricewiseError(f"no batch {batch_id} in the warehouse (see `pricewise data status`)")
    validated_at = datetime.now(UTC).replace(tzinfo=None)
    validation_id = f"{batch_id}-{validated_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    with warehouse.transaction(con):
        verdict = row_rules.apply(con, batch_id, batch.kind, batch.row_count, config)
        profile = batch_checks.profile(con, batch_id)
        batches.replace_profile(con, batch_id, profile.as_json())
        reference = batch_checks.reference(con, batch_id, batch.kind, profile, config.validate_)
        checks = batch_checks.check(con, batch_id, verdict, profile, reference, config.validate_)
        status = batch_checks.overall(checks)
        reference_batch_id = reference.batch_id if reference else None
        report = reports.build(
            validation_id=validation_id,
            batch=batch,
            validated_at=validated_at,
            status=status,
            verdict=verdict,
            reference_batch_id=reference_batch_id,
            checks=checks,
            sample_rejects=row_rules.sample_rejects(con, batch_id),
        )
        # The reports are written before the validation is recorded: a recorded validation always has them.
        json_path, html_path = reports.write(report, settings.reports / "validation" / batch_id)
        batches.record_validation(
            con,
            batches.ValidationRecord(
                validation_id=validation_id,
                batch_id=batch_id,
                validated_at=validated_at,
                status=status,
                rows_read=verdict.read,
                accepted=verdict.accepted,
                rejected=verdict.rejected,
                unusable_for_training=verdict.unusable_for_training,
                reference_batch_id=reference_batch_id,
                report_json=str(json_path),
                report_html=str(html_path),
                checks=json.dumps(report["checks"]),
            ),
        )
    logger.info(
        "batch %s: %s (%d accepted, %d rejected of %d)",
        batch_id,
        status,
        verdict.accepted,
        verdict.rejected,
        verdict.read,
    )
    return BatchValidation(
        batch_id=batch_id,
        source_name=batch.source_name,
        kind=batch.kind,
        status=status,
        rows_read=verdict.read,
        accepted=verdict.accepted,
        rejected=verdict.rejected,
        unusable_for_training=verdict.unusable_for_training,
        reasons=verdict.reasons,
        checks=checks,
        reference_batch_id=reference_batch_id,
        report_json=json_path,
        report_html=html_path,
    )


def run(config: Config, settings: Settings, batch_id: str | None = None) -> ValidateResult:
    """Validate one batch, or every batch not validated yet (priced first, then in ingest order).

    Args:
        config: Stage parameters (the validate and split sections are used).
        settings: Where the warehouse and reports are.
        batch_id: A batch to (re)validate; None validates every batch without a validation.

    Returns:
        One validation per batch; `failed` tells whether any batch failed its checks.

    Raises:
        PricewiseError: The batch does not exist or a report cannot be written; that batch's state is unchanged.
        DiskFullError: A disk filled up; the batch being validated is as it was (batches validated before it in
            this call keep their validation).
    """
    done: list[BatchValidation] = []
    try:
        with warehouse.connect(settings) as con:
            batch_ids = [batch_id] if batch_id is not None else batches.unvalidated_batch_ids(con)
            for b in batch_ids:
                done.append(_validate_batch(con, b, config, settings))
    except (OSError, duckdb.Error, PricewiseError) as exc:
        if isinstance(exc, DiskFullError) or not warehouse.is_disk_full(exc):
            raise
        kept = f" ({len(done)} batch(es) validated before it keep their validation)" if done else ""
        raise DiskFullError(
            f"no space left on device while validating ({exc}); the batch's validation was rolled back and the "
            f"warehouse {settings.warehouse} holds what it held before it{kept}: free space on the disk of "
            f"{settings.warehouse.parent} and {settings.reports} and run again"
        ) from exc
    return ValidateResult(tuple(done))

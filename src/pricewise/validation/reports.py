"""A batch's validation (verdict, checks, sample rejects) in; its report as a dict, a JSON file and an HTML page out."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pricewise.errors import PricewiseError
from pricewise.store.batches import BatchRecord
from pricewise.validation.batch_checks import BatchCheck, ValidationStatus
from pricewise.validation.row_rules import RowVerdict

TEMPLATE = "validation_report.html"


def build(
    *,
    validation_id: str,
    batch: BatchRecord,
    validated_at: datetime,
    status: ValidationStatus,
    verdict: RowVerdict,
    reference_batch_id: str | None,
    checks: tuple[BatchCheck, ...],
    sample_rejects: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report of one validation, as written to JSON and rendered to HTML.

    Args:
        validation_id: The validation's id (also the reports' file name).
        batch: The validated batch.
        validated_at: When it was validated (UTC, naive).
        status: The overall status.
        verdict: The row counts and reject reasons.
        reference_batch_id: The batch it was compared with, if any.
        checks: The batch checks.
        sample_rejects: The first rejects, as `row_rules.sample_rejects` returns them.

    Returns:
        A JSON-serialisable dict.
    """
    return {
        "validation_id": validation_id,
        "batch_id": batch.batch_id,
        "source_name": batch.source_name,
        "kind": batch.kind,
        "validated_at": validated_at.isoformat(),
        "status": status,
        "counts": {
            "read": verdict.read,
            "accepted": verdict.accepted,
            "rejected": verdict.rejected,
            "unusable_for_training": verdict.unusable_for_training,
        },
        "reasons": verdict.reasons,
        "reference_batch_id": reference_batch_id,
        "checks": [asdict(c) for c in checks],
        "sample_rejects": sample_rejects,
    }


def write(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write a report as `<validation_id>.json` and `<validation_id>.html` in a directory (created if needed).

    Args:
        report: What `build` returned.
        directory: Where the files go.

    Returns:
        The JSON file and the HTML page.

    Raises:
        PricewiseError: The directory or a file cannot be written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / f"{report['validation_id']}.json"
        html_path = directory / f"{report['validation_id']}.html"
        json_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        env = Environment(loader=PackageLoader("pricewise"), autoescape=select_autoescape())
        html_path.write_text(env.get_template(TEMPLATE).render(r=report), encoding="utf-8")
    except OSError as exc:
        raise PricewiseError(f"cannot write validation report to {directory}: {exc.strerror}") from exc
    return json_path, html_path

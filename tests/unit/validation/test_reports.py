"""The validation report: its fields, the JSON file and HTML page it is written to, and a clean error when it cannot."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pricewise.errors import PricewiseError
from pricewise.store.batches import BatchRecord
from pricewise.validation import reports
from pricewise.validation.batch_checks import BatchCheck
from pricewise.validation.row_rules import RowVerdict

BATCH = BatchRecord(
    "b123", "priced", "train.tsv", "/data/train.tsv", "tsv", "ab" * 32, 12, 1, datetime(2026, 1, 1), 1
)
CHECKS = (
    BatchCheck("accepted_rows", 10, None, 1, "pass", "10 of 12 rows accepted (at least 1 needed)"),
    BatchCheck("reject_share", 0.166667, 0.01, 0.1, "fail", "rejected / read"),
)
SAMPLES = [
    {
        "line": 13,
        "id": None,
        "reasons": ["parse_too_many_columns"],
        "name": None,
        "price": None,
        "raw": "1\t2",
    },
    {"line": None, "id": "7", "reasons": ["price_negative"], "name": "<b>Mug</b>", "price": "-1", "raw": ""},
]


def report() -> dict[str, Any]:
    return reports.build(
        validation_id="b123-20260101T000000-abcdef",
        batch=BATCH,
        validated_at=datetime(2026, 1, 1, 12, 30),
        status="fail",
        verdict=RowVerdict(12, 10, 2, 1, {"parse_too_many_columns": 1, "price_negative": 1}),
        reference_batch_id=None,
        checks=CHECKS,
        sample_rejects=SAMPLES,
    )


def test_the_report_carries_counts_checks_reasons_and_samples() -> None:
    built = report()

    assert list(built) == [
        "validation_id",
        "batch_id",
        "source_name",
        "kind",
        "validated_at",
        "status",
        "counts",
        "reasons",
        "reference_batch_id",
        "checks",
        "sample_rejects",
    ]
    assert built["counts"] == {"read": 12, "accepted": 10, "rejected": 2, "unusable_for_training": 1}
    assert built["validated_at"] == "2026-01-01T12:30:00"
    assert built["checks"][1] == {
        "name": "reject_share",
        "value": 0.166667,
        "warn": 0.01,
        "fail": 0.1,
        "status": "fail",
        "detail": "rejected / read",
    }
    assert built["sample_rejects"] == SAMPLES


def test_the_report_is_written_as_json_and_an_escaped_html_page(tmp_path: Path) -> None:
    json_path, html_path = reports.write(report(), tmp_path / "reports" / "b123")

    assert json_path == tmp_path / "reports" / "b123" / "b123-20260101T000000-abcdef.json"
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(report()))
    page = html_path.read_text()
    assert html_path.suffix == ".html"
    assert "Batch b123" in page
    assert page.count("<table>") >= 3  # rows, checks, reasons (and samples)
    assert "reject_share" in page
    assert "price_negative" in page
    assert "&lt;b&gt;Mug&lt;/b&gt;" in page  # listing text is escaped, never markup
    assert "<b>Mug</b>" not in page


def test_an_unwritable_directory_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where a directory should be")

    with pytest.raises(PricewiseError, match="cannot write validation report to"):
        reports.write(report(), blocker / "b123")

"""Batch profile and checks: each check passes, warns and fails at its thresholds; the reference is chosen right."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from datetime import datetime

import duckdb
import pytest

from pricewise.config import BatchChecks, Threshold, ValidateConfig
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from pricewise.validation import batch_checks, row_rules
from pricewise.validation.batch_checks import BatchProfile, ReferenceProfile
from tests.support.workspaces import listing_row

THRESHOLD = Threshold(warn=0.2, fail=0.5)


def verdict(read: int, accepted: int) -> row_rules.RowVerdict:
    return row_rules.RowVerdict(read, accepted, read - accepted, 0, {})


def reference_profile(**changes: object) -> BatchProfile:
    """A reference: half the rows without a brand, prices around 12, one category and one brand."""
    base = BatchProfile(
        rows=100,
        null_share={"brand_name": 0.5, "category_name": 0.0, "item_description": 0.0},
        priced_rows=100,
        mean_log_price=math.log1p(12.0),
        std_log_price=0.5,
        categories=("A/B/C",),
        brands=("Nike",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def by_name(checks: tuple[batch_checks.BatchCheck, ...]) -> dict[str, batch_checks.BatchCheck]:
    return {c.name: c for c in checks}


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "pass"), (0.19, "pass"), (0.2, "warn"), (0.49, "warn"), (0.5, "fail"), (3.0, "fail")],
)
def test_grade_warns_from_warn_and_fails_from_fail(value: float, status: str) -> None:
    assert batch_checks.grade(value, THRESHOLD) == status


def test_overall_status_is_the_worst_check() -> None:
    def check(status: batch_checks.ValidationStatus) -> batch_checks.BatchCheck:
        return batch_checks.BatchCheck("c", 0.0, None, None, status, "")

    assert batch_checks.overall((check("pass"), check("pass"))) == "pass"
    assert batch_checks.overall((check("pass"), check("warn"))) == "warn"
    assert batch_checks.overall((check("fail"), check("warn"), check("pass"))) == "fail"


@pytest.mark.parametrize(
    ("rejected", "status"), [(0, "pass"), (1, "pass"), (2, "warn"), (4, "warn"), (5, "fail"), (10, "fail")]
)
def test_reject_share_is_graded_against_its_thresholds(
    rejected: int, status: str, settings: Settings
) -> None:
    config = ValidateConfig(batch=BatchChecks(reject_share=THRESHOLD))
    with warehouse.connect(settings) as con:
        checks = batch_checks.check(con, "b1", verdict(10, 10 - rejected), reference_profile(), None, config)

    assert [c.name for c in checks] == ["accepted_rows", "reject_share"]  # no reference: no drift checks
    share = by_name(checks)["reject_share"]
    assert (share.value, share.warn, share.fail, share.status) == (rejected / 10, 0.2, 0.5, status)


@pytest.mark.parametrize(("accepted", "status"), [(2, "fail"), (3, "pass"), (10, "pass")])
def test_too_few_accepted_rows_fail(accepted: int, status: str, settings: Settings) -> None:
    config = ValidateConfig(
        batch=BatchChecks(min_accepted_rows=3, reject_share=Threshold(warn=1.0, fail=1.0))
    )
    with warehouse.connect(settings) as con:
        checks = batch_checks.check(con, "b1", verdict(10, accepted), reference_profile(), None, config)

    check = by_name(checks)["accepted_rows"]
    assert (check.value, check.fail, check.status) == (accepted, 3, status)
    assert check.detail == f"{accepted} of 10 rows accepted (at least 3 needed)"


def test_an_empty_batch_counts_as_all_rejected(settings: Settings) -> None:
    with warehouse.connect(settings) as con:
        checks = batch_checks.check(con, "b1", verdict(0, 0), reference_profile(), None, ValidateConfig())

    assert by_name(checks)["reject_share"].value == 1.0
    assert batch_checks.overall(checks) == "fail"


def test_a_batch_that_is_its_own_reference_skips_the_drift_checks(settings: Settings) -> None:
    own = reference_profile()
    with warehouse.connect(settings) as con:
        checks = batch_checks.check(
            con, "b1", verdict(10, 10), own, ReferenceProfile("b1", own), ValidateConfig()
        )

    assert [c.name for c in checks] == ["accepted_rows", "reject_share"]


@pytest.fixture
def judged(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict]
) -> Callable[..., tuple[str, row_rules.RowVerdict]]:
    """Ingest and judge rows; returns the batch id and its verdict."""

    def judged_(rows: list[list[object]]) -> tuple[str, row_rules.RowVerdict]:
        batch_id = ingest_rows(rows)
        return batch_id, judge(batch_id)

    return judged_


def test_the_profile_summarises_the_accepted_rows(
    judged: Callable[..., tuple[str, row_rules.RowVerdict]], settings: Settings
) -> None:
    batch_id, _ = judged(
        [
            listing_row(0, brand_name="Nike", category_name="B/C/D", price=10),
            listing_row(1, brand_name="", category_name="A/B/C", price=30),
            listing_row(2, brand_name="Apple", category_name="", price=0),
            listing_row(3, brand_name="Nike", category_name="A/B/C", price="bad"),  # rejected: not profiled
        ]
    )

    with warehouse.connect(settings, read_only=True) as con:
        profile = batch_checks.profile(con, batch_id)

    logs = [math.log1p(10), math.log1p(30)]
    assert profile.rows == 3
    assert profile.null_share == pytest.approx(
        {"brand_name": 1 / 3, "category_name": 1 / 3, "item_description": 0.0}
    )
    assert profile.priced_rows == 2  # price 0 is not a price to compare
    assert profile.mean_log_price == pytest.approx(sum(logs) / 2)
    assert profile.std_log_price == pytest.approx(abs(logs[0] - logs[1]) / math.sqrt(2))
    assert profile.categories == ("A/B/C", "B/C/D")
    assert profile.brands == ("Apple", "Nike")
    assert BatchProfile.from_json(json.loads(json.dumps(profile.as_json()))) == profile


def test_drift_checks_grade_null_shares_price_shift_and_unseen_values(
    judged: Callable[..., tuple[str, row_rules.RowVerdict]], settings: Settings
) -> None:
    # 10 rows: 4 without a brand (null share 0.4 vs 0.5), 4 in a category the reference never had (0.4),
    # 6 with a brand the reference never had (0.6), all priced at 20 (the reference's mean is log1p(12)).
    # Thresholds sit between the values, not on them, so float rounding cannot flip a grade.
    rows = [
        listing_row(
            i,
            brand_name="" if i < 4 else "Acme",
            category_name="New/Cat/Egory" if i < 4 else "A/B/C",
            price=20,
        )
        for i in range(10)
    ]
    batch_id, row_verdict = judged(rows)
    config = ValidateConfig(
        batch=BatchChecks(
            null_share_delta=Threshold(warn=0.05, fail=0.2),
            mean_log_price_z=Threshold(warn=1.0, fail=100.0),
            zscore_max_n=4,
            unseen_category_share=Threshold(warn=0.3, fail=0.5),
            unseen_brand_share=Threshold(warn=0.1, fail=0.55),
        )
    )

    with warehouse.connect(settings) as con:
        own = batch_checks.profile(con, batch_id)
        checks = by_name(
            batch_checks.check(
                con, batch_id, row_verdict, own, ReferenceProfile("bref", reference_profile()), config
            )
        )

    assert checks["null_share_delta.brand_name"].value == pytest.approx(0.1)
    assert checks["null_share_delta.brand_name"].status == "warn"
    assert checks["null_share_delta.category_name"].status == "pass"
    z = abs(math.log1p(20) - math.log1p(12)) / (0.5 / math.sqrt(4))  # n capped at zscore_max_n
    assert checks["mean_log_price_z"].value == pytest.approx(z, abs=1e-6)
    assert checks["mean_log_price_z"].status == "warn"
    assert "n capped at 4" in checks["mean_log_price_z"].detail
    assert (checks["unseen_categories_share"].value, checks["unseen_categories_share"].status) == (
        0.4,
        "warn",
    )
    assert (checks["unseen_brands_share"].value, checks["unseen_brands_share"].status) == (0.6, "fail")
    assert "bref" in checks["unseen_brands_share"].detail


def test_no_price_spread_in_the_reference_skips_the_price_check(
    judged: Callable[..., tuple[str, row_rules.RowVerdict]], settings: Settings
) -> None:
    batch_id, row_verdict = judged([listing_row(i) for i in range(5)])
    flat = ReferenceProfile("bref", reference_profile(std_log_price=None))

    with warehouse.connect(settings) as con:
        own = batch_checks.profile(con, batch_id)
        checks = by_name(batch_checks.check(con, batch_id, row_verdict, own, flat, ValidateConfig()))

    assert "mean_log_price_z" not in checks
    assert "unseen_brands_share" in checks


def _store_validation(con: duckdb.DuckDBPyConnection, batch_id: str, status: str) -> None:
    record = batches.ValidationRecord(
        f"{batch_id}-v", batch_id, datetime(2026, 1, 1), status, 1, 1, 0, 0, None, "r.json", "r.html", "[]"
    )
    batches.record_validation(con, record)


def test_the_reference_is_the_first_priced_batch_that_did_not_fail(
    judged: Callable[..., tuple[str, row_rules.RowVerdict]], settings: Settings
) -> None:
    failed, _ = judged([listing_row(i) for i in range(3)])
    passed, _ = judged([listing_row(i) for i in range(10, 14)])
    current, _ = judged([listing_row(i) for i in range(20, 22)])
    with warehouse.connect(settings) as con:
        for batch_id, status in ((failed, "fail"), (passed, "pass")):
            batches.replace_profile(con, batch_id, batch_checks.profile(con, batch_id).as_json())
            _store_validation(con, batch_id, status)
        own = batch_checks.profile(con, current)

        chosen = batch_checks.reference(con, current, "priced", own, ValidateConfig())
        for_unpriced = batch_checks.reference(con, current, "unpriced", own, ValidateConfig())

    assert chosen is not None
    assert chosen.batch_id == passed
    assert chosen.profile.rows == 4
    assert for_unpriced == chosen


def test_without_an_earlier_batch_a_priced_batch_is_its_own_reference_and_an_unpriced_one_has_none(
    judged: Callable[..., tuple[str, row_rules.RowVerdict]], settings: Settings
) -> None:
    batch_id, _ = judged([listing_row(i) for i in range(3)])
    with warehouse.connect(settings) as con:
        own = batch_checks.profile(con, batch_id)

        assert batch_checks.reference(con, batch_id, "priced", own, ValidateConfig()) == ReferenceProfile(
            batch_id, own
        )
        assert batch_checks.reference(con, batch_id, "unpriced", own, ValidateConfig()) is None


def test_a_reference_named_in_config_must_have_a_profile(
    judged: Callable[..., tuple[str, row_rules.RowVerdict]], settings: Settings
) -> None:
    named, _ = judged([listing_row(i) for i in range(3)])
    batch_id, _ = judged([listing_row(i) for i in range(10, 12)])
    with warehouse.connect(settings) as con:
        own = batch_checks.profile(con, batch_id)
        with pytest.raises(PricewiseError, match=r"reference batch bmissing .* has no profile"):
            batch_checks.reference(con, batch_id, "priced", own, ValidateConfig(reference_batch="bmissing"))
        batches.replace_profile(con, named, batch_checks.profile(con, named).as_json())

        chosen = batch_checks.reference(con, batch_id, "unpriced", own, ValidateConfig(reference_batch=named))

    assert chosen is not None
    assert (chosen.batch_id, chosen.profile.rows) == (named, 3)

"""The validate stage on tiny batches in a real warehouse: which batches, what is recorded, all or nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import Result

from pricewise import ingest, validate
from pricewise.columns import UNPRICED_COLUMNS
from pricewise.config import BatchChecks, Config, ValidateConfig
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import warehouse
from tests.support.disks import filled, small_disk
from tests.support.workspaces import PRICED_HEADER, SHIPPED_CONFIG, listing_row, write_table


def ingest_table(
    settings: Settings, path: Path, rows: Sequence[Sequence[object]], header: Sequence[str] = PRICED_HEADER
) -> str:
    return ingest.run(Config(), settings, [write_table(path, rows, header)]).batches[0].batch_id


def unpriced(rows: Sequence[list[object]]) -> list[list[object]]:
    """Priced rows without their price column."""
    return [[row[0], *row[1:5], *row[6:]] for row in rows]


def query(settings: Settings, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    with warehouse.connect(settings, read_only=True) as con:
        return [tuple(r) for r in con.execute(sql, list(params)).fetchall()]


def test_nothing_to_validate_is_an_empty_result(settings: Settings) -> None:
    result = validate.run(Config(), settings)

    assert result.batches == ()
    assert result.failed is False


def test_new_batches_are_validated_priced_first_and_only_once(settings: Settings, tmp_path: Path) -> None:
    scored = ingest_table(
        settings, tmp_path / "test.tsv", unpriced([listing_row(i) for i in range(5)]), UNPRICED_COLUMNS
    )
    priced = ingest_table(settings, tmp_path / "train.tsv", [listing_row(i) for i in range(20)])

    first = validate.run(Config(), settings)
    again = validate.run(Config(), settings)

    assert [b.batch_id for b in first.batches] == [priced, scored]
    assert again.batches == ()
    by_id = {b.batch_id: b for b in first.batches}
    assert (by_id[priced].kind, by_id[priced].rows_read, by_id[priced].accepted) == ("priced", 20, 20)
    # The unpriced batch is compared with the priced one, which is its own reference.
    assert by_id[priced].reference_batch_id == priced
    assert by_id[scored].reference_batch_id == priced
    assert [c.name for c in by_id[priced].checks] == ["accepted_rows", "reject_share"]
    assert "unseen_brands_share" in {c.name for c in by_id[scored].checks}
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.batches[0].status = "fail"  # type: ignore[misc]


def test_the_validation_row_matches_the_result_and_its_reports(settings: Settings, tmp_path: Path) -> None:
    rows = [listing_row(i) for i in range(30)] + [listing_row(90, price="free"), listing_row(91, price=0)]
    batch_id = ingest_table(settings, tmp_path / "train.tsv", rows)

    [checked] = validate.run(Config(), settings).batches

    assert (checked.rows_read, checked.accepted, checked.rejected) == (32, 31, 1)
    assert checked.accepted + checked.rejected == checked.rows_read
    assert checked.unusable_for_training == 1
    assert checked.reasons == {"price_not_number": 1}
    assert (
        checked.status == "warn"
    )  # 1 of 32 rejected: above reject_share's warn (0.01), below its fail (0.10)
    [row] = query(
        settings,
        "SELECT batch_id, status, rows_read, accepted, rejected, unusable_for_training, reference_batch_id, "
        "report_json, report_html, checks FROM validations",
    )
    assert row[:7] == (batch_id, checked.status, 32, 31, 1, 1, batch_id)
    assert (Path(str(row[7])), Path(str(row[8]))) == (checked.report_json, checked.report_html)
    assert json.loads(str(row[9])) == [dataclasses.asdict(c) for c in checked.checks]
    report = json.loads(checked.report_json.read_text())
    assert report["status"] == checked.status
    assert report["counts"] == {"read": 32, "accepted": 31, "rejected": 1, "unusable_for_training": 1}
    assert report["sample_rejects"][0]["id"] == "90"
    assert checked.report_json.parent == settings.reports / "validation" / batch_id
    assert query(settings, "SELECT count(*) FROM batch_profiles") == [(1,)]


def test_revalidating_a_batch_replaces_its_rows_and_keeps_the_earlier_validation(
    settings: Settings, tmp_path: Path
) -> None:
    batch_id = ingest_table(settings, tmp_path / "train.tsv", [listing_row(i) for i in range(10)])
    validate.run(Config(), settings)

    strict = Config(validate=ValidateConfig(batch=BatchChecks(min_accepted_rows=11)))
    result = validate.run(strict, settings, batch_id)

    assert result.failed is True
    assert result.batches[0].status == "fail"
    assert query(settings, "SELECT count(*) FROM listings") == [(10,)]
    assert query(settings, "SELECT count(*) FROM batch_profiles") == [(1,)]
    assert query(settings, "SELECT status FROM validations ORDER BY validated_at") == [("pass",), ("fail",)]
    assert query(settings, "SELECT status FROM latest_validations") == [("fail",)]
    assert query(settings, "SELECT count(*) FROM training_listings") == [
        (0,)
    ]  # a failed batch trains nothing


def test_an_unknown_batch_is_a_clean_error(settings: Settings, tmp_path: Path) -> None:
    ingest_table(settings, tmp_path / "train.tsv", [listing_row(i) for i in range(3)])

    with pytest.raises(PricewiseError, match="no batch bnope in the warehouse"):
        validate.run(Config(), settings, "bnope")


def test_a_report_that_cannot_be_written_leaves_the_warehouse_unchanged(
    settings: Settings, tmp_path: Path
) -> None:
    ingest_table(settings, tmp_path / "train.tsv", [listing_row(i) for i in range(3)])
    with warehouse.connect(settings, read_only=True) as con:
        before = warehouse.table_digest(con)
    settings.reports.mkdir(parents=True)
    (settings.reports / "validation").write_text("a file where a directory should be")

    with pytest.raises(PricewiseError, match="cannot write validation report"):
        validate.run(Config(), settings)

    with warehouse.connect(settings, read_only=True) as con:
        assert warehouse.table_digest(con) == before


@pytest.mark.parametrize(
    ("full", "where"),
    [("data", "warehouse.duckdb"), ("reports", "validation report")],
    ids=["warehouse-disk-full", "reports-disk-full"],
)
def test_a_full_disk_exits_2_and_leaves_the_batch_unvalidated(
    full: str, where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    """A real full disk: the data directory and the reports on small tmpfs mounts of their own, one filled up."""
    with small_disk(tmp_path / "data", "16m") as data, small_disk(tmp_path / "reports", "1m") as reports:
        monkeypatch.setenv("PRICEWISE_DATA_DIR", str(data))
        monkeypatch.setenv("PRICEWISE_REPORTS_DIR", str(reports))
        settings = Settings(data_dir=data, reports_dir=reports, config_path=SHIPPED_CONFIG)
        ingest_table(settings, tmp_path / "train.tsv", [listing_row(i) for i in range(5000)])
        with warehouse.connect(settings, read_only=True) as con:
            before = warehouse.table_digest(con)

        with filled(data if full == "data" else reports):
            result = cli("validate")

            assert result.exit_code == 2, result.output
            assert "no space left on device while validating" in result.output
            assert where in result.output
            assert "unexpected failure" not in result.output
            with warehouse.connect(settings, read_only=True) as con:
                assert warehouse.table_digest(con) == before

        again = cli("validate")
        assert again.exit_code == 0, again.output
        assert query(settings, "SELECT count(*) FROM listings") == [(5000,)]
        assert query(settings, "SELECT count(*) FROM validations") == [(1,)]

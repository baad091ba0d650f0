"""Validation on the real sample and crafted batches: row rules, quarantine, batch checks, reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from pricewise.settings import Settings
from pricewise.store import warehouse
from tests.support.workspaces import listing_row, write_table

pytestmark = pytest.mark.integration


def query(settings: Settings, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    with warehouse.connect(settings, read_only=True) as con:
        return [tuple(r) for r in con.execute(sql, params or []).fetchall()]


def rejects_by_id(settings: Settings) -> dict[str, list[str]]:
    return {
        str(i): list(r) for i, r in query(settings, "SELECT source_id, reasons FROM rejects") if i is not None
    }  # type: ignore[call-overload]


def test_sample_is_accepted_with_a_report_and_a_split(
    train_sample: Path, test_sample: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    assert cli("ingest", str(train_sample), str(test_sample)).exit_code == 0

    result = cli("validate")

    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    rows = query(
        settings,
        "SELECT batch_id, kind, rows_read, accepted, rejected, report_json FROM latest_validations JOIN batches USING (batch_id)",
    )
    assert {r[1] for r in rows} == {"priced", "unpriced"}
    for batch_id, kind, read, accepted, rejected, report_json in rows:
        assert accepted + rejected == read  # type: ignore[operator]
        report = json.loads(Path(str(report_json)).read_text())
        assert report["counts"]["read"] == read
        assert Path(str(report_json)).with_suffix(".html").read_text().count("<table>") >= 2
        if kind == "priced":
            # 19 real listings fall to the semantic rules (0.24%, within the 0.5% false-reject budget): a brand
            # "BCBG" taken for one cut from a longer known brand, three descriptions of only digits or punctuation
            # ("33/30", "."), and 15 names or descriptions ending in a rare word that begins common ones, some of
            # them cut by their sellers ("... Set Collec", "... Bracelet sold sep", "... Car Accessorie").
            assert (accepted, rejected) == (7981, 19)
            reasons = query(
                settings,
                f"SELECT reasons[1], count(*) FROM rejects WHERE batch_id = '{batch_id}' GROUP BY ALL ORDER BY ALL",
            )
            assert reasons == [
                ("brand_truncated", 1),
                ("description_only_digits_or_punctuation", 3),
                ("description_truncated", 7),
                ("name_truncated", 8),
            ]
    [(usable, zero)] = query(
        settings,
        "SELECT count(*) FILTER (WHERE usable_for_training), count(*) FILTER (WHERE price = 0) "
        "FROM listings WHERE kind = 'priced'",
    )
    assert usable == 7981 - zero  # type: ignore[operator]
    splits = dict(query(settings, "SELECT split, count(*) FROM training_listings GROUP BY split"))  # type: ignore[arg-type]
    assert set(splits) == {"train", "valid", "test"}
    assert 0.75 < splits["train"] / sum(splits.values()) < 0.85  # type: ignore[operator]
    status = cli("data", "status")
    assert "pass: 7981 accepted, 19 rejected" in status.output


def test_row_rules_quarantine_with_reasons_and_lose_nothing(
    tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    rows = [listing_row(i) for i in range(40)]
    rows += [
        listing_row(100, price="ten dollars"),
        listing_row(101, price=-5),
        listing_row(102, price=""),
        listing_row(103, price=99999),
        listing_row(104, item_condition_id=7),
        listing_row(105, shipping=2),
        listing_row(106, name="   "),
        listing_row(107, item_description="x" * 6000),
        listing_row(108, name="Caf\ufffd au lait mug"),
        listing_row(109, item_description="SenseCosmeticsâ„¢ cleanser"),
        listing_row(110, price=0),
        listing_row(111, item_description='He said "mint"\tand\ttabs "inside"'),
        listing_row(5),  # duplicate of id 5 inside the batch
        listing_row(112, train_id="abc"),
    ]
    path = write_table(tmp_path / "train.tsv", rows)
    assert cli("ingest", str(path)).exit_code == 0

    cli("validate")

    reasons = rejects_by_id(settings)
    assert reasons["100"] == ["price_not_number"]
    assert reasons["101"] == ["price_negative"]
    assert reasons["102"] == ["price_missing"]
    assert reasons["103"] == ["price_above_max"]
    assert reasons["104"] == ["condition_invalid"]
    assert reasons["105"] == ["shipping_invalid"]
    assert reasons["106"] == ["name_empty"]
    assert reasons["107"] == ["description_too_long"]
    assert reasons["108"] == ["broken_encoding"]
    assert reasons["109"] == ["broken_encoding"]
    assert reasons["5"] == ["duplicate_id_in_batch"]
    assert reasons["abc"] == ["id_not_integer"]
    assert len(query(settings, "SELECT * FROM rejects WHERE source_id = '5'")) == 2
    [(description, usable)] = query(
        settings, "SELECT item_description, usable_for_training FROM listings WHERE source_id = 111"
    )
    assert description == 'He said "mint"\tand\ttabs "inside"'
    assert usable is True
    assert query(settings, "SELECT usable_for_training FROM listings WHERE source_id = 110") == [(False,)]
    [(read, accepted, rejected)] = query(settings, "SELECT rows_read, accepted, rejected FROM validations")
    assert accepted + rejected == read == len(rows)  # type: ignore[operator]


def test_non_utf8_and_malformed_lines_are_quarantined_with_the_raw_line(
    tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    path = write_table(tmp_path / "train.tsv", [listing_row(i) for i in range(50)])
    with path.open("ab") as handle:
        handle.write(b"60\tCaf\xe9 latin-1 mug\t1\tHome/Kitchen/Mugs\t\t9\t1\tnice\n")
        handle.write(b"61\ttoo\tmany\tfields\there\t1\t2\t3\t4\n")
        handle.write(b"62\ttoo few\t1\n")
    assert cli("ingest", str(path)).exit_code == 0

    result = cli("validate")

    rejected = query(settings, "SELECT source_line, reasons, raw_line FROM rejects ORDER BY source_line")
    assert [r[1] for r in rejected] == [
        ["parse_invalid_encoding"],
        ["parse_too_many_columns"],
        ["parse_missing_columns"],
    ]
    assert "latin-1 mug" in str(rejected[0][2])
    assert "too few" in str(rejected[2][2])
    [(read, accepted, n_rejected)] = query(settings, "SELECT rows_read, accepted, rejected FROM validations")
    assert (read, accepted, n_rejected) == (53, 50, 3)
    assert "reject_share" in result.output


def test_duplicate_ids_across_batches_are_rejected(
    tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    first = write_table(tmp_path / "a.tsv", [listing_row(i) for i in range(30)])
    second = write_table(tmp_path / "b.tsv", [listing_row(i, name=f"Other {i}") for i in range(25, 60)])
    assert cli("ingest", str(first)).exit_code == 0
    cli("validate")
    assert cli("ingest", str(second)).exit_code == 0

    cli("validate")

    reasons = rejects_by_id(settings)
    assert sorted(int(i) for i in reasons) == list(range(25, 30))
    assert all(r == ["duplicate_id_across_batches"] for r in reasons.values())


def test_a_shifted_batch_fails_its_checks_and_exits_non_zero(
    train_sample: Path, tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    import pandas as pd

    assert cli("ingest", str(train_sample)).exit_code == 0
    assert cli("validate").exit_code == 0
    frame = pd.read_csv(train_sample, sep="\t", dtype=str, keep_default_na=False).head(2000)
    frame["train_id"] = range(100_000, 102_000)
    frame["price"] = (frame["price"].astype(float) * 3).round(2).astype(str)
    frame["brand_name"] = "Unheard Of Brand"
    shifted = tmp_path / "shifted.tsv"
    frame.to_csv(shifted, sep="\t", index=False)
    assert cli("ingest", str(shifted)).exit_code == 0

    result = cli("validate")

    assert result.exit_code == 1
    [(status, checks)] = query(
        settings,
        "SELECT status, checks FROM validations v JOIN batches b USING (batch_id) WHERE b.source_name LIKE '%shifted%'",
    )
    by_name = {c["name"]: c for c in json.loads(str(checks))}
    assert status == "fail"
    assert by_name["mean_log_price_z"]["status"] == "fail"
    assert by_name["unseen_brands_share"]["status"] == "fail"
    assert by_name["null_share_delta.brand_name"]["status"] == "fail"
    assert by_name["unseen_categories_share"]["status"] == "pass"
    assert query(settings, "SELECT count(*) FROM training_listings WHERE source_id >= 100000") == [(0,)]


def test_unknown_batch_and_unwritable_reports_fail_cleanly(
    train_sample: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    assert cli("ingest", str(train_sample)).exit_code == 0
    missing = cli("validate", "--batch", "bnope")
    assert missing.exit_code == 2
    assert "no batch bnope" in missing.output

    settings.reports.mkdir(parents=True)
    (settings.reports / "validation").write_text("a file where a directory should be")
    blocked = cli("validate")

    assert blocked.exit_code == 2
    assert "cannot write validation report" in blocked.output
    assert query(settings, "SELECT count(*) FROM listings") == [(0,)]
    assert query(settings, "SELECT count(*) FROM validations") == [(0,)]

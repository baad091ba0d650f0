"""The ingest stage on tiny files in a real warehouse: lineage rows, raw text kept as read, no-op re-ingest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pricewise import ingest
from pricewise.config import Config
from pricewise.errors import InputFileError
from pricewise.inputs.listing_files import open_sources
from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from tests.support.workspaces import PRICED_HEADER, listing_row, write_table


def test_batch_ids_derive_from_content() -> None:
    sha = hashlib.sha256(b"listings").hexdigest()

    assert ingest.batch_id_for(sha) == "b" + sha[:12]
    assert ingest.batch_id_for(sha) == ingest.batch_id_for(sha)


def test_a_new_file_lands_as_a_batch_with_its_lineage(settings: Settings, tmp_path: Path) -> None:
    path = write_table(tmp_path / "train.tsv", [listing_row(i) for i in range(4)])
    with path.open("a", encoding="utf-8") as handle:
        handle.write("9\tshort line\n")

    result = ingest.run(Config(), settings, [path])

    [outcome] = result.batches
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert outcome == ingest.BatchOutcome(ingest.batch_id_for(sha), str(path), "priced", 5, 1, False)
    assert result.new_batches == result.batches
    with warehouse.connect(settings, read_only=True) as con:
        record = batches.find_batch(con, outcome.batch_id)
        parse_rejects = con.execute("SELECT source_line, raw_line FROM parse_rejects").fetchall()
    assert record is not None
    assert (record.kind, record.source_name, record.source_path) == ("priced", str(path), str(path.resolve()))
    assert (record.file_format, record.content_sha256) == ("tsv", sha)
    assert (record.row_count, record.parse_rejected, record.schema_version) == (
        5,
        1,
        warehouse.SCHEMA_VERSION,
    )
    assert parse_rejects == [(6, "9\tshort line")]


def test_raw_rows_are_kept_as_text_exactly_as_read(settings: Settings, tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "train.tsv", [listing_row(1, name="  Mug  ", price="12.50", item_condition_id="03")]
    )

    ingest.run(Config(), settings, [path])

    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute("SELECT source_id, name, item_condition_id, price FROM raw_listings").fetchall()
    assert rows == [("1", "  Mug  ", "03", "12.50")]


def test_the_same_content_again_is_a_no_op_that_reports_the_first_batch(
    settings: Settings, tmp_path: Path
) -> None:
    first = write_table(tmp_path / "a" / "train.tsv", [listing_row(i) for i in range(3)])
    copy = write_table(tmp_path / "b" / "copy.tsv", [listing_row(i) for i in range(3)])
    [landed] = ingest.run(Config(), settings, [first]).batches
    with warehouse.connect(settings, read_only=True) as con:
        before = warehouse.table_digest(con)

    again = ingest.run(Config(), settings, [copy])

    [outcome] = again.batches
    assert outcome == ingest.BatchOutcome(landed.batch_id, str(copy), "priced", 3, 0, True)
    assert again.new_batches == ()
    with warehouse.connect(settings, read_only=True) as con:
        assert warehouse.table_digest(con) == before


def test_one_call_is_one_transaction(settings: Settings, tmp_path: Path) -> None:
    good = write_table(tmp_path / "in" / "a.tsv", [listing_row(i) for i in range(3)])
    write_table(tmp_path / "in" / "b.tsv", [], header=PRICED_HEADER)  # a header and no rows

    with pytest.raises(InputFileError, match=r"b\.tsv: the file has a header but no rows"):
        ingest.run(Config(), settings, [good, tmp_path / "in" / "b.tsv"])

    with warehouse.connect(settings, read_only=True) as con:
        assert set(warehouse.table_digest(con).values()) == {0}


def test_load_source_fills_a_scratch_database_without_touching_the_warehouse(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_table(tmp_path / "score.tsv", [listing_row(i) for i in range(2)])

    with open_sources([path], settings.scratch) as sources, warehouse.connect_scratch(settings) as con:
        outcome = ingest.load_source(con, sources[0], "p0", Config(), 0)
        record = batches.find_batch(con, "p0")

    assert (outcome.rows, outcome.already_ingested) == (2, False)
    assert record is not None
    assert record.row_count == 2
    assert not settings.warehouse.exists()

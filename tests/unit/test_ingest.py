"""The ingest stage on tiny files in a real warehouse: lineage rows, raw text kept as read, no-op re-ingest."""

from __future__ import annotations

import errno
import hashlib
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import py7zr
import pytest

from pricewise import ingest
from pricewise.config import Config
from pricewise.errors import DiskFullError, InputFileError, PricewiseError
from pricewise.inputs import listing_files
from pricewise.inputs.listing_files import open_sources
from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from tests.support.workspaces import PRICED_HEADER, SHIPPED_CONFIG, listing_row, write_table


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


def source_ids(settings: Settings, batch_id: str) -> list[str]:
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT source_id FROM raw_listings WHERE batch_id = ? ORDER BY CAST(source_id AS INTEGER)",
            [batch_id],
        ).fetchall()
    return [str(r[0]) for r in rows]


def _rename_over(path: Path, content: bytes) -> None:
    """Publish new content the way producers do: write aside, then rename over the file."""
    aside = path.with_name(path.name + ".next")
    aside.write_bytes(content)
    aside.replace(path)


@pytest.mark.parametrize(
    "change",
    [_rename_over, Path.write_bytes, lambda path, _content: path.unlink()],
    ids=["renamed-over", "rewritten-in-place", "deleted"],
)
def test_the_rows_loaded_are_the_bytes_hashed_when_the_file_changes_meanwhile(
    change: Callable[[Path, bytes], object],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_table(tmp_path / "train.tsv", [listing_row(i) for i in range(3)])
    hashed = hashlib.sha256(path.read_bytes()).hexdigest()
    newer = write_table(tmp_path / "newer.tsv", [listing_row(i) for i in range(10, 15)]).read_bytes()
    open_warehouse = warehouse.connect

    @contextmanager
    def change_then_connect(*args: Any, **kwargs: Any) -> Iterator[duckdb.DuckDBPyConnection]:
        # Ingest has read the file and not loaded it yet: the moment another process may replace it.
        change(path, newer)
        with open_warehouse(*args, **kwargs) as con:
            yield con

    monkeypatch.setattr(warehouse, "connect", change_then_connect)
    [outcome] = ingest.run(Config(), settings, [path]).batches
    monkeypatch.undo()

    assert (outcome.batch_id, outcome.rows) == (ingest.batch_id_for(hashed), 3)
    assert source_ids(settings, outcome.batch_id) == ["0", "1", "2"]
    with warehouse.connect(settings, read_only=True) as con:
        record = batches.find_batch(con, outcome.batch_id)
    assert record is not None
    assert record.content_sha256 == hashed
    if path.exists():
        [later] = ingest.run(Config(), settings, [path]).batches
        assert (later.already_ingested, later.rows) == (False, 5), "the new content is a batch of its own"
        assert source_ids(settings, later.batch_id) == [str(i) for i in range(10, 15)]


@pytest.mark.parametrize(
    ("name", "sibling"),
    [("batch[1].tsv", "batch1.tsv"), ("batch*.tsv", "batch-all.tsv"), ("batch?.tsv", "batchX.tsv")],
)
def test_glob_characters_in_a_file_name_are_taken_literally(
    name: str, sibling: str, settings: Settings, tmp_path: Path
) -> None:
    target = write_table(tmp_path / "in" / name, [listing_row(i) for i in range(2)])
    write_table(tmp_path / "in" / sibling, [listing_row(i) for i in range(100, 107)])

    [outcome] = ingest.run(Config(), settings, [target]).batches

    assert (outcome.source_name, outcome.rows) == (str(target), 2)
    assert source_ids(settings, outcome.batch_id) == ["0", "1"]


def test_glob_characters_in_archive_member_names_are_taken_literally(
    settings: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "batches.7z"
    with py7zr.SevenZipFile(archive, "w") as out:
        out.write(write_table(tmp_path / "a.tsv", [listing_row(i) for i in range(3)]), "batch[1].tsv")
        out.write(write_table(tmp_path / "b.tsv", [listing_row(i) for i in range(50, 54)]), "batch1.tsv")

    outcomes = ingest.run(Config(), settings, [archive]).batches

    assert sorted((o.source_name, o.rows) for o in outcomes) == [
        (f"{archive}!batch1.tsv", 4),
        (f"{archive}!batch[1].tsv", 3),
    ]
    [bracketed] = [o for o in outcomes if o.source_name.endswith("[1].tsv")]
    assert source_ids(settings, bracketed.batch_id) == ["0", "1", "2"]


def test_a_data_directory_with_glob_characters_works(tmp_path: Path) -> None:
    """Archive members are read from scratch space under the data directory, through the escaped path."""
    settings = Settings(data_dir=tmp_path / "data*[1]", config_path=SHIPPED_CONFIG)
    (tmp_path / "data-1").mkdir()  # what the directory's name would match as a pattern
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(write_table(tmp_path / "a.tsv", [listing_row(i) for i in range(3)]), "train.tsv")

    [outcome] = ingest.run(Config(), settings, [archive]).batches

    assert outcome.rows == 3
    assert source_ids(settings, outcome.batch_id) == ["0", "1", "2"]


def test_a_file_to_score_with_glob_characters_is_read_literally(settings: Settings, tmp_path: Path) -> None:
    """Scoring reads its input through the same sources into a scratch database."""
    target = write_table(tmp_path / "score[1].tsv", [listing_row(i) for i in range(2)])
    write_table(tmp_path / "score1.tsv", [listing_row(i) for i in range(100, 109)])

    with open_sources([target], settings.scratch) as sources, warehouse.connect_scratch(settings) as con:
        outcome = ingest.load_source(con, sources[0], "p0", Config(), 0)
        ids = [str(r[0]) for r in con.execute("SELECT source_id FROM raw_listings ORDER BY 1").fetchall()]

    assert outcome.rows == 2
    assert ids == ["0", "1"]


def test_a_warehouse_path_duckdb_cannot_commit_under_is_refused_by_name(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "what?", config_path=SHIPPED_CONFIG)
    path = write_table(tmp_path / "train.tsv", [listing_row(i) for i in range(2)])

    with pytest.raises(PricewiseError, match=r"warehouse path .*what\?.* contains '\?'"):
        ingest.run(Config(), settings, [path])

    assert not settings.warehouse.exists()


def test_scratch_space_running_out_is_a_disk_full_error_that_writes_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC injected where the file is copied (the tmpfs tests in tests/integration fill a real disk, and need
    root to mount one); this one runs anywhere."""
    path = write_table(tmp_path / "train.tsv", [listing_row(i) for i in range(3)])

    def no_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(listing_files.shutil, "copyfileobj", no_space)
    with pytest.raises(
        DiskFullError, match=r"no space left on device while copying .*train\.tsv.* nothing was"
    ):
        ingest.run(Config(), settings, [path])

    assert not settings.warehouse.exists()
    assert list(settings.scratch.iterdir()) == [], "the working directory is removed"

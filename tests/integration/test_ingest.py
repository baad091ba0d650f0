"""Ingest on the real sample and on crafted files: every format, idempotency, atomicity, bad input."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import py7zr
import pytest
from typer.testing import Result

from pricewise.settings import Settings
from pricewise.store import warehouse
from tests.support.disks import filled, small_disk
from tests.support.workspaces import PRICED_HEADER, listing_row, write_table

pytestmark = pytest.mark.integration

SAMPLE_ROWS = 8000


def digest(settings: Settings) -> dict[str, int]:
    """Row counts of every table, or an empty dict when there is no warehouse yet."""
    if not settings.warehouse.exists():
        return {}
    with warehouse.connect(settings, read_only=True) as con:
        return warehouse.table_digest(con)


def batches(settings: Settings) -> list[tuple[str, str, str, int]]:
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT batch_id, kind, file_format, row_count FROM batches ORDER BY batch_id"
        ).fetchall()
    return [(str(a), str(b), str(c), int(d)) for a, b, c, d in rows]


def plain_copy(sample: Path, target: Path) -> Path:
    with gzip.open(sample, "rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


@pytest.mark.parametrize("fmt", ["tsv", "tsv.gz", "csv", "zip", "7z", "parquet", "directory"])
def test_every_kaggle_format_ingests_the_whole_sample(
    fmt: str, train_sample: Path, tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    tsv = plain_copy(train_sample, tmp_path / "train.tsv")
    if fmt == "tsv":
        target = tsv
    elif fmt == "tsv.gz":
        target = train_sample
    elif fmt == "csv":
        target = tmp_path / "train.csv"
        pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False).to_csv(target, index=False)
    elif fmt == "zip":
        target = tmp_path / "train.tsv.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(tsv, "train.tsv")
    elif fmt == "7z":
        target = tmp_path / "train.tsv.7z"
        with py7zr.SevenZipFile(target, "w") as archive:
            archive.write(tsv, "train.tsv")
    elif fmt == "parquet":
        target = tmp_path / "train.parquet"
        pd.read_csv(tsv, sep="\t").to_parquet(target)
    else:
        target = tmp_path / "folder"
        target.mkdir()
        shutil.copy(train_sample, target / "train.tsv.gz")
        (target / "notes.md").write_text("not a table, ignored")

    result = cli("ingest", str(target))

    assert result.exit_code == 0, result.output
    [(_batch_id, kind, file_format, rows)] = batches(settings)
    assert (kind, rows) == ("priced", SAMPLE_ROWS)
    assert file_format == {"directory": "tsv.gz"}.get(fmt, fmt)
    assert digest(settings)["raw_listings"] == SAMPLE_ROWS
    with warehouse.connect(settings, read_only=True) as con:
        row = con.execute(
            "SELECT name, price, item_condition_id FROM raw_listings WHERE source_id = '1'"
        ).fetchone()
    assert row is not None
    assert row[0] == "Razer BlackWidow Chroma Keyboard"
    assert float(row[1]) == 52.0
    assert float(row[2]) == 3.0


def test_same_content_in_another_format_is_a_no_op(
    train_sample: Path, tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    assert cli("ingest", str(train_sample)).exit_code == 0
    before = digest(settings)
    zipped = tmp_path / "train.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(plain_copy(train_sample, tmp_path / "train.tsv"), "train.tsv")

    again = cli("ingest", str(train_sample))
    repackaged = cli("ingest", str(zipped))

    assert again.exit_code == 0
    assert repackaged.exit_code == 0
    assert "already ingested" in again.output
    assert "already ingested" in repackaged.output
    assert digest(settings) == before


def test_lineage_records_source_hash_rows_time_and_schema_version(
    train_sample: Path, test_sample: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    assert cli("ingest", str(train_sample), str(test_sample)).exit_code == 0
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT kind, source_name, content_sha256, row_count, ingested_at, schema_version FROM batches ORDER BY kind"
        ).fetchall()
    assert [(r[0], r[3]) for r in rows] == [("priced", 8000), ("unpriced", 2001)]
    for _kind, source_name, sha, _, ingested_at, schema_version in rows:
        assert source_name.endswith(".tsv.gz")
        assert len(sha) == 64
        assert ingested_at is not None
        assert schema_version == warehouse.SCHEMA_VERSION
    with gzip.open(train_sample, "rb") as handle:
        import hashlib

        assert rows[0][2] == hashlib.sha256(handle.read()).hexdigest()


def _bad_input_cases(tmp_path: Path, train_sample: Path) -> dict[str, tuple[Path, str]]:
    """Each case: a file and a fragment the error message must contain (besides the file name)."""
    ok_rows = [listing_row(i) for i in range(3)]
    cases: dict[str, tuple[Path, str]] = {}
    cases["missing column"] = (
        write_table(tmp_path / "missing.tsv", [r[:-1] for r in ok_rows], PRICED_HEADER[:-1]),
        "missing column(s) item_description",
    )
    cases["extra column"] = (
        write_table(tmp_path / "extra.tsv", [[*r, "x"] for r in ok_rows], [*PRICED_HEADER, "color"]),
        "unexpected column(s) color",
    )
    cases["wrong delimiter"] = (
        write_table(tmp_path / "semicolon.tsv", ok_rows, delimiter=";"),
        "is the delimiter right?",
    )
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    cases["empty file"] = (empty, "the file is empty")
    cases["header only"] = (write_table(tmp_path / "header.tsv", []), "header but no rows")
    junk = tmp_path / "junk.tsv"
    junk.write_bytes(bytes(range(256)) * 64)
    cases["binary junk"] = (junk, "binary content")
    truncated_gz = tmp_path / "truncated.tsv.gz"
    truncated_gz.write_bytes(train_sample.read_bytes()[:100_000])
    cases["truncated gzip"] = (truncated_gz, "truncated or corrupt")
    big_zip = tmp_path / "full.zip"
    with zipfile.ZipFile(big_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(plain_copy(train_sample, tmp_path / "t.tsv"), "train.tsv")
    truncated_zip = tmp_path / "truncated.zip"
    truncated_zip.write_bytes(big_zip.read_bytes()[: big_zip.stat().st_size // 2])
    cases["truncated zip"] = (truncated_zip, "truncated or corrupt")
    big_7z = tmp_path / "full.7z"
    with py7zr.SevenZipFile(big_7z, "w") as archive:
        archive.write(tmp_path / "t.tsv", "train.tsv")
    truncated_7z = tmp_path / "truncated.7z"
    truncated_7z.write_bytes(big_7z.read_bytes()[: big_7z.stat().st_size // 2])
    cases["truncated 7z"] = (truncated_7z, "truncated or corrupt")
    no_table = tmp_path / "notable.zip"
    with zipfile.ZipFile(no_table, "w") as archive:
        archive.writestr("readme.md", "nothing here")
    cases["zip with no table"] = (no_table, "holds no listings table")
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "missing column",
        "extra column",
        "wrong delimiter",
        "empty file",
        "header only",
        "binary junk",
        "truncated gzip",
        "truncated zip",
        "truncated 7z",
        "zip with no table",
    ],
)
def test_unreadable_files_fail_clearly_and_change_nothing(
    case: str, train_sample: Path, tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    assert cli("ingest", str(train_sample)).exit_code == 0
    before = digest(settings)
    path, fragment = _bad_input_cases(tmp_path / "cases", train_sample)[case]

    result = cli("ingest", str(path))

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert path.name in result.output
    assert fragment in result.output
    assert digest(settings) == before


def test_a_bad_file_among_good_ones_lands_nothing(
    train_sample: Path, test_sample: Path, tmp_path: Path, settings: Settings, cli: Callable[..., Result]
) -> None:
    bad = write_table(tmp_path / "header.tsv", [])

    result = cli("ingest", str(test_sample), str(train_sample), str(bad))

    assert result.exit_code == 2
    assert "header.tsv: the file has a header but no rows" in result.output
    assert not any(digest(settings).values())


def test_missing_path_is_named(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("ingest", str(tmp_path / "nope.tsv"))
    assert result.exit_code == 2
    assert "nope.tsv: no such file or directory" in result.output


def test_killed_mid_file_leaves_the_warehouse_as_before(
    train_sample: Path, tmp_path: Path, settings: Settings
) -> None:
    """A real crash: SIGKILL while rows are being inserted; reopening shows the earlier state only."""
    env = {**os.environ, "PRICEWISE_DATA_DIR": str(settings.data_dir)}
    pricewise = str(Path(sys.executable).with_name("pricewise"))
    subprocess.run([pricewise, "ingest", str(train_sample)], env=env, check=True, capture_output=True)
    before = digest(settings)
    frame = pd.read_csv(train_sample, sep="\t", dtype=str, keep_default_na=False)
    big = pd.concat([frame] * 60, ignore_index=True)
    big["train_id"] = range(len(big))
    big_path = tmp_path / "big.tsv"
    big.to_csv(big_path, sep="\t", index=False)

    proc = subprocess.Popen(
        [pricewise, "--verbose", "ingest", str(big_path)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "loading" in line:
            break
    time.sleep(0.3)  # well inside the insert of 480,000 rows, which takes seconds
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert proc.returncode == -signal.SIGKILL, (
        "ingest finished before it could be killed; make the file larger"
    )
    assert digest(settings) == before


@pytest.mark.parametrize(
    ("free_kib", "where"),
    [(0, "scratch space"), (1200, "warehouse.duckdb")],
    ids=["no-room-to-copy-the-file", "no-room-to-commit-the-rows"],
)
def test_a_full_disk_exits_2_with_a_clear_message_and_changes_nothing(
    free_kib: int,
    where: str,
    train_sample: Path,
    test_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Result],
) -> None:
    """A real full disk: the data directory on a 12 MiB tmpfs, filled up to `free_kib` of room."""
    with small_disk(tmp_path / "disk", "12m") as disk:
        monkeypatch.setenv("PRICEWISE_DATA_DIR", str(disk / "data"))
        settings = Settings(data_dir=disk / "data")
        assert cli("ingest", str(test_sample)).exit_code == 0
        before = digest(settings)

        with filled(disk, leave_bytes=free_kib * 1024):
            result = cli("ingest", str(train_sample))

            assert result.exit_code == 2, result.output
            assert "no space left on device" in result.output
            assert where in result.output
            assert "unexpected failure" not in result.output
            assert digest(settings) == before

        again = cli("ingest", str(train_sample))
        assert again.exit_code == 0, again.output
        assert digest(settings)["raw_listings"] == before["raw_listings"] + SAMPLE_ROWS

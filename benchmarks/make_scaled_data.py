"""Mercari sample file in -> N resampled, perturbed rows out as .tsv/.tsv.gz/.csv/.parquet/.zip/.7z, or as a
Parquet dataset (an --out without a suffix: a folder of part files of --rows-per-file rows each)."""

from __future__ import annotations

import argparse
import gzip
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pricewise.columns import OPTIONAL_COLUMNS, PRICED_COLUMNS, TEXT_COLUMNS, UNPRICED_COLUMNS

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared/data/mercari/mercari_train_8k.tsv.gz"
FULL_TRAIN_ROWS = 1_482_535
CHUNK_ROWS = 100_000

TRAIN_COLUMNS = list(PRICED_COLUMNS)
TEST_COLUMNS = list(UNPRICED_COLUMNS)
NO_DESCRIPTION = "No description yet"
PRICE_SIGMA = 0.10  # log-normal multiplicative price jitter


@dataclass(frozen=True)
class PerturbRates:
    """Probabilities of the word-level edits applied to one text column."""

    substitute_per_word: float
    swap: float
    drop: float
    duplicate: float


NAME_RATES = PerturbRates(substitute_per_word=0.08, swap=0.25, drop=0.15, duplicate=0.10)
DESCRIPTION_RATES = PerturbRates(substitute_per_word=0.04, swap=0.40, drop=0.30, duplicate=0.20)


class WordBank:
    """Words of one text column of the source, split on single spaces (joining them restores the text)."""

    def __init__(self, values: pa.StringArray) -> None:
        words = pc.split_pattern(values, " ")
        self.offsets = words.offsets.to_numpy().astype(np.int64)
        self.words: pa.Array = words.flatten()
        self.non_empty = np.flatnonzero(pc.utf8_length(self.words).to_numpy() > 0)

    def perturb(
        self, rows: np.ndarray, frozen: np.ndarray, rates: PerturbRates, rng: np.random.Generator
    ) -> pa.Array:
        """Text of source `rows` with random word edits; rows where `frozen` is true come back unchanged."""
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        row_starts = np.cumsum(lengths) - lengths
        n_words = int(lengths.sum())
        word_row = np.repeat(np.arange(len(rows)), lengths)
        source_word = np.repeat(starts - row_starts, lengths) + np.arange(n_words)

        # Swap in words from other rows of the same column.
        substitute = (rng.random(n_words) < rates.substitute_per_word) & ~frozen[word_row]
        source_word[substitute] = self.non_empty[rng.integers(0, len(self.non_empty), int(substitute.sum()))]

        # Swap two neighbouring words.
        editable = ~frozen & (lengths >= 2)
        position = row_starts + (rng.random(len(rows)) * np.maximum(lengths - 1, 1)).astype(np.int64)
        swap = position[editable & (rng.random(len(rows)) < rates.swap)]
        source_word[swap], source_word[swap + 1] = source_word[swap + 1], source_word[swap].copy()

        # Drop or duplicate one word.
        draw = rng.random(len(rows))
        drop = editable & (draw < rates.drop)
        duplicate = editable & ~drop & (draw < rates.drop + rates.duplicate)
        position = row_starts + (rng.random(len(rows)) * lengths).astype(np.int64)
        repeats = np.ones(n_words, dtype=np.int64)
        repeats[position[drop]] = 0
        repeats[position[duplicate]] = 2

        new_lengths = lengths - drop + duplicate
        offsets = np.concatenate(([0], np.cumsum(new_lengths))).astype(np.int32)
        words = self.words.take(pa.array(np.repeat(source_word, repeats)))
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), " ")


class Source:
    """The sample rows, as strings, plus what is needed to resample them."""

    def __init__(self, path: Path) -> None:
        frame = read_source(path)
        self.table = pa.table({name: pa.array(frame[name].tolist(), pa.string()) for name in frame.columns})
        self.n_rows = len(frame)
        self.names = WordBank(self.table["name"].combine_chunks())
        descriptions = self.table["item_description"].combine_chunks()
        self.descriptions = WordBank(descriptions)
        self.frozen_description = pc.is_in(descriptions, pa.array(["", NO_DESCRIPTION])).to_numpy(
            zero_copy_only=False
        )
        if "price" in frame.columns:
            self.price: np.ndarray | None = pd.to_numeric(frame["price"]).to_numpy(dtype=np.float64)
            positive = self.price[self.price > 0]
            self.min_price = float(positive.min()) if len(positive) else 0.0
        else:
            self.price = None
            self.min_price = 0.0


def read_source(path: Path) -> pd.DataFrame:
    """All columns as strings, empty fields as empty strings (never NaN)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        frame = pd.read_parquet(path).astype("string").fillna("")
    else:
        sep = "," if name.endswith((".csv", ".csv.gz")) else "\t"
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    frame = frame.rename(columns={"test_id": "train_id"})
    missing = {"train_id", *TEST_COLUMNS[1:]} - set(frame.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)}")
    return frame


def format_prices(cents: np.ndarray) -> pa.Array:
    """Prices like Python's repr of a 2-decimal float, as in the Kaggle file: 10.0, 12.5, 12.35."""
    whole = pc.cast(pa.array(cents // 100), pa.string())
    fraction = cents % 100
    fraction_text = pc.if_else(
        pa.array(fraction % 10 == 0),
        pc.cast(pa.array(fraction // 10), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(fraction), pa.string()), 2, "0"),
    )
    return pc.binary_join_element_wise(whole, fraction_text, ".")


def make_chunk(
    source: Source, start_id: int, n_rows: int, kind: str, rng: np.random.Generator
) -> dict[str, pa.Array]:
    """`n_rows` resampled, perturbed rows as string arrays keyed by output column name."""
    rows = rng.integers(0, source.n_rows, n_rows)
    picked = source.table.take(pa.array(rows))
    columns: dict[str, pa.Array] = {name: picked[name].combine_chunks() for name in picked.column_names}
    id_column = "train_id" if kind == "train" else "test_id"
    columns[id_column] = pc.cast(pa.array(np.arange(start_id, start_id + n_rows)), pa.string())
    columns["name"] = source.names.perturb(rows, np.zeros(n_rows, dtype=bool), NAME_RATES, rng)
    columns["item_description"] = source.descriptions.perturb(
        rows, source.frozen_description[rows], DESCRIPTION_RATES, rng
    )
    if kind == "train":
        if source.price is None:
            raise SystemExit("--kind train needs a source with a price column")
        price = source.price[rows] * np.exp(rng.normal(0.0, PRICE_SIGMA, n_rows))
        price = np.where(price > 0, np.maximum(price, source.min_price), 0.0)
        columns["price"] = format_prices(np.rint(price * 100).astype(np.int64))
    return {name: columns[name] for name in (TRAIN_COLUMNS if kind == "train" else TEST_COLUMNS)}


def csv_quote(values: pa.Array, delimiter: str) -> pa.Array:
    """csv.QUOTE_MINIMAL: wrap in double quotes (doubling embedded ones) only if the field needs it."""
    needs_quotes = pc.match_substring_regex(values, f'[{delimiter}"\r\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, values)


def delimited_bytes(columns: dict[str, pa.Array], delimiter: str) -> memoryview:
    """The rows of one chunk as delimited text, each line ending in \\n."""
    fields = [
        csv_quote(values, delimiter) if name in TEXT_COLUMNS else values for name, values in columns.items()
    ]
    lines = pc.binary_join_element_wise(*fields, delimiter)
    lines = pc.binary_join_element_wise(lines, "", "\n")  # line + "\n" + ""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]


def typed_table(columns: dict[str, pa.Array]) -> pa.Table:
    """Columns with the types pandas infers from the Kaggle file; empty text fields become nulls."""
    typed = {}
    for name, values in columns.items():
        if name == "price":
            typed[name] = pc.cast(values, pa.float64())
        elif name in OPTIONAL_COLUMNS:
            typed[name] = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        elif name in TEXT_COLUMNS:
            typed[name] = values
        else:
            typed[name] = pc.cast(values, pa.int64())
    return pa.table(typed)


@contextmanager
def open_text_sink(out: Path, member: str) -> Iterator[IO[bytes]]:
    """A binary stream for delimited text: plain file, gzip file, or a member of a zip archive."""
    name = out.name.lower()
    if name.endswith(".gz"):
        with gzip.open(out, "wb", compresslevel=6) as sink:
            yield sink
    elif name.endswith(".zip"):
        with (
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
            archive.open(member, "w", force_zip64=True) as sink,
        ):
            yield sink
    else:
        with out.open("wb") as sink:
            yield sink


def generate(
    source: Source, n_rows: int, out: Path, kind: str, seed: int, rows_per_file: int = 1_000_000
) -> None:
    """Write `n_rows` rows to `out` in the format its suffix names (no suffix: a folder of Parquet files)."""
    rng = np.random.default_rng(seed)
    if not out.suffix:
        write_dataset(source, n_rows, out, kind, rng, rows_per_file)
        return
    chunks = (
        make_chunk(source, start, min(CHUNK_ROWS, n_rows - start), kind, rng)
        for start in range(0, n_rows, CHUNK_ROWS)
    )
    header = TRAIN_COLUMNS if kind == "train" else TEST_COLUMNS
    member = f"{kind}.tsv"
    name = out.name.lower()
    if name.endswith(".parquet"):
        schema = typed_table(make_chunk(source, 0, 0, kind, np.random.default_rng(seed))).schema
        with pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for columns in chunks:
                writer.write_table(typed_table(columns))
    elif name.endswith(".7z"):
        import py7zr  # noqa: PLC0415 - optional, only for .7z output

        staging = out.with_name(out.name + ".staging.tsv")
        try:
            write_delimited(staging, chunks, header, "\t", member)
            with py7zr.SevenZipFile(out, "w") as archive:
                archive.write(staging, arcname=member)
        finally:
            staging.unlink(missing_ok=True)
    else:
        delimiter = "," if name.endswith((".csv", ".csv.gz")) else "\t"
        if not name.endswith((".tsv", ".tsv.gz", ".csv", ".csv.gz", ".zip")):
            raise SystemExit(f"unsupported output suffix: {out.name}")
        write_delimited(out, chunks, header, delimiter, member)


def write_dataset(
    source: Source, n_rows: int, out: Path, kind: str, rng: np.random.Generator, rows_per_file: int
) -> None:
    """A folder of Parquet files of `rows_per_file` rows each (ids run on across files), written aside and
    renamed into place, so an interrupted run leaves no half dataset that a later run would reuse."""
    partial = out.with_name(f".{out.name}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    schema = typed_table(make_chunk(source, 0, 0, kind, np.random.default_rng(0))).schema
    for n, file_start in enumerate(range(0, n_rows, rows_per_file)):
        file_rows = min(rows_per_file, n_rows - file_start)
        with pq.ParquetWriter(partial / f"part-{n:05d}.parquet", schema, compression="zstd") as writer:
            for start in range(file_start, file_start + file_rows, CHUNK_ROWS):
                size = min(CHUNK_ROWS, file_start + file_rows - start)
                writer.write_table(typed_table(make_chunk(source, start, size, kind, rng)))
    partial.rename(out)


def write_delimited(
    out: Path, chunks: Iterator[dict[str, pa.Array]], header: list[str], delimiter: str, member: str
) -> None:
    with open_text_sink(out, member) as sink:
        sink.write((delimiter.join(header) + "\n").encode())
        for columns in chunks:
            sink.write(delimited_bytes(columns, delimiter))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="sample to resample from")
    parser.add_argument("--rows", type=int, default=FULL_TRAIN_ROWS, help="rows to write")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output; .tsv, .tsv.gz, .csv, .parquet, .zip or .7z; no suffix: a folder of Parquet files",
    )
    parser.add_argument(
        "--rows-per-file", type=int, default=1_000_000, help="rows per file of a folder output"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=["train", "test"], default="train", help="test: no price, test_id")
    args = parser.parse_args()
    if args.rows < 0:
        parser.error("--rows must be >= 0")
    if args.rows_per_file < 1:
        parser.error("--rows-per-file must be >= 1")

    started = time.perf_counter()
    source = Source(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    generate(source, args.rows, args.out, args.kind, args.seed, args.rows_per_file)
    seconds = time.perf_counter() - started
    files = sorted(args.out.glob("*.parquet")) if args.out.is_dir() else [args.out]
    size_mb = sum(f.stat().st_size for f in files) / 1024**2
    print(f"wrote {args.rows:,} rows to {args.out} ({size_mb:,.1f} MiB) in {seconds:.1f} s")


if __name__ == "__main__":
    main()

"""File paths in (tsv, csv, gz, zip, 7z, parquet, or a directory of them), checked table sources out.

Each file the user names is copied into scratch space through the one descriptor it is opened with, and
everything after that (format, header, hash, the warehouse's read) looks at the copy: the hash is of exactly the
bytes loaded, even when the file is renamed over, rewritten or deleted meanwhile. Archives are extracted there too;
all of it is removed afterwards. A source's content hash is taken over the table's bytes as a user would see them
(decompressed), so the same table shipped as .tsv or .7z is one batch.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import py7zr

from pricewise.columns import ID_COLUMNS, PRICED_COLUMNS, UNPRICED_COLUMNS
from pricewise.errors import DiskFullError, InputFileError, is_out_of_space
from pricewise.inputs.source_mapping import LoadedMapping

logger = logging.getLogger(__name__)


SUPPORTED_SUFFIXES = (".tsv", ".csv", ".txt", ".gz", ".zip", ".7z", ".parquet")
# Kaggle ships these beside the listings; they hold no listings and are skipped inside archives and folders.
NON_LISTING_PREFIXES = ("sample_submission",)

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
PARQUET_MAGIC = b"PAR1"
CHUNK = 1 << 20
HEADER_PEEK = 1 << 16

Kind = Literal["priced", "unpriced"]


@dataclass(frozen=True)
class TableSource:
    """One table ready to be read by the warehouse.

    Attributes:
        source_name: The file name, with the archive member after '!' when it came from an archive.
        source_path: The path the user gave (the archive for extracted members).
        read_path: The file the warehouse reads: a private copy in scratch space (of the user's file, or of the
            archive member).
        file_format: How the user shipped it: tsv, csv, tsv.gz, csv.gz, zip, 7z or parquet.
        table_format: How the warehouse reads it: delimited or parquet.
        delimiter: The field separator of a delimited table.
        gzipped: Whether the warehouse must decompress read_path with gzip.
        columns: Column names in file order.
        kind: priced (training listings) or unpriced (listings to score).
        id_column: The column that holds the listing id.
        content_sha256: sha256 of the decompressed table bytes.
        mapping: How another marketplace's columns become listing columns; None for Kaggle's layout.
    """

    source_name: str
    source_path: Path
    read_path: Path
    file_format: str
    table_format: Literal["delimited", "parquet"]
    delimiter: str | None
    gzipped: bool
    columns: tuple[str, ...]
    kind: Kind
    id_column: str
    content_sha256: str
    mapping: LoadedMapping | None = None


def _disk_full(exc: OSError, doing: str, directory: Path) -> DiskFullError:
    return DiskFullError(
        f"no space left on device while {doing} into scratch space {directory} ({exc.strerror}); "
        "nothing was written to the warehouse: free space on that disk and run again"
    )


def _snapshot(path: Path, workdir: Path) -> Path:
    """Copy a user's file into scratch space through one open descriptor, and return the copy.

    Raises:
        InputFileError: The file cannot be read.
        DiskFullError: Scratch space ran out.
    """
    descriptor, name = tempfile.mkstemp(prefix="snapshot-", dir=workdir)
    try:
        with os.fdopen(descriptor, "wb") as copy, path.open("rb") as original:
            shutil.copyfileobj(original, copy, CHUNK)
    except OSError as exc:
        if is_out_of_space(exc):
            raise _disk_full(exc, f"copying {path}", workdir) from exc
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return Path(name)


def _magic(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(8)


def _hash_stream(stream: gzip.GzipFile | IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _hash_file(path: Path, *, gzipped: bool, name: str) -> str:
    try:
        if gzipped:
            with gzip.open(path, "rb") as stream:
                return _hash_stream(stream)
        with path.open("rb") as stream:
            return _hash_stream(stream)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputFileError(f"{name}: the gzip stream is truncated or corrupt ({exc})") from exc


def classify_columns(columns: tuple[str, ...], name: str) -> tuple[Kind, str]:
    """Decide whether a header is a priced or unpriced listings table.

    Args:
        columns: The header's column names.
        name: The file name, for messages.

    Returns:
        The kind of table and the name of its id column.

    Raises:
        InputFileError: Columns are missing or unexpected; the message lists them.
    """
    present = set(columns)
    ids = [c for c in columns if c in ID_COLUMNS]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise InputFileError(f"{name}: duplicated column(s) {', '.join(duplicated)}")
    expected = PRICED_COLUMNS if "price" in present else UNPRICED_COLUMNS
    kind: Kind = "priced" if "price" in present else "unpriced"
    required = [c for c in expected if c not in ID_COLUMNS]
    missing = [c for c in required if c not in present]
    if not ids:
        missing.insert(0, "train_id or test_id")
    extra = [c for c in columns if c not in expected and c not in ID_COLUMNS]
    if len(ids) > 1:
        extra.extend(ids[1:])
    if len(columns) == 1 and missing:
        raise InputFileError(
            f"{name}: the header splits into a single column {columns[0][:80]!r}; "
            "expected tab- or comma-separated columns "
            f"{', '.join(PRICED_COLUMNS)} (is the delimiter right?)"
        )
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(extra)}")
    if problems:
        raise InputFileError(
            f"{name}: {'; '.join(problems)}; a {kind} listings table has columns {', '.join(expected)}"
        )
    return kind, ids[0]


def _read_header(path: Path, *, gzipped: bool, name: str) -> tuple[str, str]:
    """Return the header line and the delimiter of a delimited table."""
    try:
        if gzipped:
            with gzip.open(path, "rb") as stream:
                head = stream.read(HEADER_PEEK)
        else:
            with path.open("rb") as stream:
                head = stream.read(HEADER_PEEK)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputFileError(f"{name}: the gzip stream is truncated or corrupt ({exc})") from exc
    if not head.strip():
        raise InputFileError(f"{name}: the file is empty")
    if b"\x00" in head:
        raise InputFileError(f"{name}: binary content (NUL bytes), not a text table")
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{name}: the header is not UTF-8 text (binary content?)") from exc
    delimiter = "\t" if "\t" in header else ","
    return header, delimiter


def _classify(columns: tuple[str, ...], name: str, mapping: LoadedMapping | None) -> tuple[Kind, str]:
    return mapping.classify(columns, name) if mapping is not None else classify_columns(columns, name)


def _describe_delimited(
    path: Path, source_name: str, source_path: Path, file_format: str, mapping: LoadedMapping | None
) -> TableSource:
    gzipped = _magic(path).startswith(GZIP_MAGIC)
    header, delimiter = _read_header(path, gzipped=gzipped, name=source_name)
    columns = tuple(col.strip().strip('"') for col in header.split(delimiter))
    kind, id_column = _classify(columns, source_name, mapping)
    return TableSource(
        source_name=source_name,
        source_path=source_path,
        read_path=path,
        file_format=file_format,
        table_format="delimited",
        delimiter=delimiter,
        gzipped=gzipped,
        columns=columns,
        kind=kind,
        id_column=id_column,
        content_sha256=_hash_file(path, gzipped=gzipped, name=source_name),
        mapping=mapping,
    )


def _describe_parquet(
    path: Path, source_name: str, source_path: Path, mapping: LoadedMapping | None
) -> TableSource:
    import pyarrow.parquet as pq  # noqa: PLC0415 - pyarrow is heavy and only parquet needs it

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise InputFileError(f"{source_name}: not a readable parquet file ({exc})") from exc
    columns = tuple(str(name) for name in schema.names)
    kind, id_column = _classify(columns, source_name, mapping)
    return TableSource(
        source_name=source_name,
        source_path=source_path,
        read_path=path,
        file_format="parquet",
        table_format="parquet",
        delimiter=None,
        gzipped=False,
        columns=columns,
        kind=kind,
        id_column=id_column,
        content_sha256=_hash_file(path, gzipped=False, name=source_name),
        mapping=mapping,
    )


def _format_of(name: str, magic: bytes) -> str:
    if magic.startswith(ZIP_MAGIC):
        return "zip"
    if magic.startswith(SEVEN_ZIP_MAGIC):
        return "7z"
    if magic.startswith(PARQUET_MAGIC):
        return "parquet"
    stem = Path(name).name.lower().removesuffix(".gz")
    base = "csv" if stem.endswith(".csv") else "tsv"
    return f"{base}.gz" if magic.startswith(GZIP_MAGIC) else base


def _is_listing_member(name: str) -> bool:
    base = Path(name).name.lower()
    return not base.startswith(NON_LISTING_PREFIXES) and base.endswith(SUPPORTED_SUFFIXES)


# An extracted member: its file in scratch space, its label (archive!member) and the member's own name.
Member = tuple[Path, str, str]


def _extract_zip(path: Path, label: str, workdir: Path) -> list[Member]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")
            ]
            out: list[Member] = []
            for member in members:
                if not _is_listing_member(member.filename):
                    continue
                target = workdir / f"member-{len(out)}"
                with archive.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                out.append((target, f"{label}!{member.filename}", member.filename))
    except OSError as exc:
        if is_out_of_space(exc):
            raise _disk_full(exc, f"extracting {label}", workdir) from exc
        raise InputFileError(f"{label}: the zip archive is truncated or corrupt ({exc})") from exc
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise InputFileError(f"{label}: the zip archive is truncated or corrupt ({exc})") from exc
    return out


def _extract_7z(path: Path, label: str, workdir: Path) -> list[Member]:
    try:
        with py7zr.SevenZipFile(path, mode="r") as archive:
            names = [n for n in archive.getnames() if _is_listing_member(n)]
            if names:
                archive.extract(path=workdir, targets=names)
    except OSError as exc:
        if is_out_of_space(exc):
            raise _disk_full(exc, f"extracting {label}", workdir) from exc
        raise InputFileError(f"{label}: the 7z archive is truncated or corrupt ({exc})") from exc
    except Exception as exc:  # py7zr signals corruption with many exception types
        raise InputFileError(f"{label}: the 7z archive is truncated or corrupt ({exc})") from exc
    return [(workdir / name, f"{label}!{name}", name) for name in names if (workdir / name).is_file()]


def _expand(
    path: Path,
    name: str,
    label: str,
    origin: Path,
    workdir: Path,
    mapping: LoadedMapping | None,
    shipped_as: str | None = None,
) -> list[TableSource]:
    """Turn one file (possibly an archive of archives) into table sources.

    Args:
        path: The file to read: the private copy of the user's file, or a member extracted from it.
        name: The file's name as the user knows it (its suffix tells csv from tsv).
        label: Its name in messages and lineage.
        origin: The user's file it came from.
        workdir: Where archive members are extracted.
        mapping: The marketplace mapping the tables are read with, if any.
        shipped_as: The outermost archive format, when path came out of an archive.
    """
    if path.stat().st_size == 0:
        raise InputFileError(f"{label}: the file is empty")
    file_format = _format_of(name, _magic(path))
    if file_format in ("zip", "7z"):
        if label.count("!") >= 2:
            raise InputFileError(f"{label}: archives nested too deeply")
        inner_dir = Path(tempfile.mkdtemp(dir=workdir))
        members = (_extract_zip if file_format == "zip" else _extract_7z)(path, label, inner_dir)
        if not members:
            raise InputFileError(
                f"{label}: the {file_format} archive holds no listings table "
                f"(expected a member ending in {', '.join(SUPPORTED_SUFFIXES)})"
            )
        return [
            source
            for member_path, member_label, member_name in members
            for source in _expand(
                member_path, member_name, member_label, origin, workdir, mapping, shipped_as or file_format
            )
        ]
    if file_format == "parquet":
        return [_describe_parquet(path, label, origin, mapping)]
    return [_describe_delimited(path, label, origin, shipped_as or file_format, mapping)]


def _files_in(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_listing_member(p.name))
        if not files:
            raise InputFileError(
                f"{path}: the directory holds no listings files ({', '.join(SUPPORTED_SUFFIXES)})"
            )
        return files
    if not path.exists():
        raise InputFileError(f"{path}: no such file or directory")
    return [path]


@contextmanager
def open_sources(
    paths: list[Path], scratch: Path, mapping: LoadedMapping | None = None
) -> Iterator[list[TableSource]]:
    """Resolve paths into checked table sources, extracting archives into scratch space.

    Args:
        paths: Files or directories as the user gave them.
        scratch: A directory for the copies of the files and extracted archive members (it needs room for them);
            what is put there is removed when the context exits.
        mapping: Another marketplace's mapping: every table must have the columns it reads (not Kaggle's).

    Yields:
        The table sources, in the order given (directories sorted by name).

    Raises:
        InputFileError: A path is missing, empty, binary, truncated, or not a listings table (or lacks a column
            the mapping reads; the message names the mapping).
        DiskFullError: Scratch space ran out.
    """
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="sources-", dir=scratch))
    except OSError as exc:
        if is_out_of_space(exc):
            raise _disk_full(exc, "making a working directory", scratch) from exc
        raise
    try:
        sources = [
            source
            for given in paths
            for file in _files_in(given)
            for source in _expand(_snapshot(file, workdir), file.name, str(file), file, workdir, mapping)
        ]
        yield sources
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

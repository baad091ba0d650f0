"""A marketplace sales export and a real SQLite prediction log in; its sold prices stored as trusted outcomes with
the file as their source, or the whole file refused with a message naming the problem, out."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import Result

from pricewise import outcomes
from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.prediction_log import LoggedSuggestion, Outcome, PredictionLog, default_url

LISTING: dict[str, Any] = {"name": "Blue dress", "item_condition_id": 3, "shipping": 0}
SUGGESTED = 10.0
IDS = ("r1", "r2", "r3")


@pytest.fixture
def log(settings: Settings) -> Iterator[PredictionLog]:
    """The workspace's own prediction log (where `pricewise outcomes import` writes), with three suggestions."""
    opened = PredictionLog(default_url(settings))
    opened.record_suggestions(
        [
            LoggedSuggestion(i, None, "pricewise", "1", "run", False, LISTING, {"price": SUGGESTED}, 1.0)
            for i in IDS
        ]
    )
    yield opened
    opened.close()


def stored(log: PredictionLog) -> dict[str, tuple[float, datetime | None, str]]:
    o = log.outcomes
    with log.engine.connect() as connection:
        rows = connection.execute(select(o.c.request_id, o.c.sold_price, o.c.sold_at, o.c.source))
        return {str(r): (float(p), t, str(s)) for r, p, t, s in rows}


def write(path: Path, lines: Sequence[str]) -> Path:
    text = "".join(f"{line}\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def refused(settings: Settings, path: Path) -> str:
    with pytest.raises(PricewiseError) as caught:
        outcomes.run(Config(), settings, path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        (
            "sales.csv",
            ["request_id,sold_price,sold_at,currency", "r1,12.50,2026-11-30T10:00:00Z,USD", "r2,8,,usd"],
        ),
        ("sales.tsv.gz", [" Request_ID \tsold_price", "r1\t12.5", " r2 \t 8.00 "]),
        ("SALES.CSV", ["\ufeffrequest_id,sold_price", "r1,12.5", "r2,8"]),  # a spreadsheet's name and BOM
    ],
)
def test_a_good_export_is_stored_with_its_file_as_source_and_a_second_import_stores_nothing(
    settings: Settings, log: PredictionLog, tmp_path: Path, name: str, lines: list[str]
) -> None:
    path = write(tmp_path / "exports" / name, lines)
    result = outcomes.run(Config(), settings, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert result.source == f"export:{name}:{digest}"
    assert (result.rows, result.stored, result.already_recorded) == (2, 2, 0)
    rows = stored(log)
    assert set(rows) == {"r1", "r2"}
    assert rows["r1"][0] == 12.5
    assert rows["r2"][0] == 8.0
    assert {s for _, _, s in rows.values()} == {result.source}
    if "sold_at" in lines[0]:
        sold_at = rows["r1"][1]
        assert sold_at is not None
        assert sold_at.replace(tzinfo=sold_at.tzinfo or UTC) == datetime(2026, 11, 30, 10, tzinfo=UTC)
        assert rows["r2"][1] is None

    again = outcomes.run(Config(), settings, path)
    assert (again.stored, again.already_recorded) == (0, 2)
    assert stored(log) == rows


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("request_id", "lacks column sold_price"),
        ("request_id,price", "lacks column sold_price and has unexpected column price"),
        ("id,sold_price", "lacks column request_id and has unexpected column id"),
        ("request_id,sold_price,notes", "has unexpected column notes"),
    ],
)
def test_an_export_with_a_wrong_schema_is_refused_naming_the_column_and_stores_nothing(
    settings: Settings, log: PredictionLog, tmp_path: Path, header: str, named: str
) -> None:
    width = header.count(",") + 1
    row = ",".join(["r1", "12.5", "junk"][:width])
    message = refused(settings, write(tmp_path / "sales.csv", [header, row]))
    assert f"the sales export sales.csv {named}: expected request_id, sold_price" in message
    assert stored(log) == {}


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        (
            ["request_id,sold_price_cents", "r1,1250", "r2,800"],
            "has prices in cents (column sold_price_cents)",
        ),
        (["request_id,sold_price,currency", "r1,1250,USD_CENTS", "r2,800,USD"], "(prices in cents)"),
        (["request_id,sold_price", "r1,1250", "r2,800", "r3,1100"], "looks like it is in cents"),
    ],
)
def test_prices_in_cents_are_refused_with_a_clear_message_and_nothing_is_stored(
    settings: Settings, log: PredictionLog, tmp_path: Path, lines: list[str], named: str
) -> None:
    message = refused(settings, write(tmp_path / "sales.csv", lines))
    assert named in message, message
    assert "USD" in message, message
    assert stored(log) == {}


def test_the_cents_check_does_not_refuse_a_market_that_moved(
    settings: Settings, log: PredictionLog, tmp_path: Path
) -> None:
    """Sold prices three times the suggestions are a (strong) market, not a unit error: they are stored."""
    path = write(tmp_path / "sales.csv", ["request_id,sold_price", "r1,30", "r2,31", "r3,29"])
    assert outcomes.run(Config(), settings, path).stored == 3
    assert {r: p for r, (p, _, _) in stored(log).items()} == {"r1": 30.0, "r2": 31.0, "r3": 29.0}


@pytest.mark.parametrize(
    ("lines", "named"),
    [
        (["request_id,sold_price", "r1,12.5", "r2,-3", "r3,abc"], "not positive numbers on line 3, 4"),
        (["request_id,sold_price", "r1,12.5", "r2,inf"], "not positive numbers on line 3"),
        (["request_id,sold_price", "r1,12.5", ",8"], "an empty request_id on line 3"),
        (["request_id,sold_price", "r1,12.5", "r1,12.5"], "lists request id r1 more than once"),
        (["request_id,sold_price,sold_at", "r1,12.5,yesterday"], "sold_at that is not ISO 8601 on line 2"),
        (["request_id,sold_price,currency", "r1,12.5,EUR"], "has currency EUR; only USD"),
    ],
)
def test_bad_values_refuse_the_whole_file_naming_the_line(
    settings: Settings, log: PredictionLog, tmp_path: Path, lines: list[str], named: str
) -> None:
    message = refused(settings, write(tmp_path / "sales.csv", lines))
    assert named in message, message
    assert stored(log) == {}


def test_unknown_request_ids_refuse_the_whole_file(
    settings: Settings, log: PredictionLog, tmp_path: Path
) -> None:
    path = write(tmp_path / "sales.csv", ["request_id,sold_price", "r1,12.5", "nope,9", "gone,7"])
    message = refused(settings, path)
    assert "2 request ids with no logged suggestion (e.g. nope, gone); nothing was imported" in message
    assert stored(log) == {}


def test_a_different_price_for_an_already_labelled_id_refuses_the_whole_file(
    settings: Settings, log: PredictionLog, tmp_path: Path
) -> None:
    assert log.record_outcomes([Outcome("r1", 12.5)], source="api").stored == 1
    path = write(tmp_path / "sales.csv", ["request_id,sold_price", "r1,99", "r2,8", "r3,9"])
    message = refused(settings, path)
    assert "gives 1 suggestions a sold price different from the one already recorded (e.g. r1)" in message
    assert stored(log) == {"r1": (12.5, None, "api")}  # r2 and r3 were not stored either

    same = write(tmp_path / "same.csv", ["request_id,sold_price", "r1,12.5", "r2,8"])
    result = outcomes.run(Config(), settings, same)
    assert (result.stored, result.already_recorded) == (1, 1)
    assert stored(log)["r1"] == (12.5, None, "api")  # the first source is kept


@pytest.mark.parametrize(
    ("lines", "named"),
    [([], "cannot read the sales export"), (["request_id,sold_price"], "has no rows")],
    ids=["empty", "header-only"],
)
def test_an_empty_export_is_refused(
    settings: Settings, log: PredictionLog, tmp_path: Path, lines: list[str], named: str
) -> None:
    path = tmp_path / "sales.csv"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    message = refused(settings, path)
    assert named in message, message
    assert "sales.csv" in message
    assert stored(log) == {}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("sales.csv.gz", b"request_id,sold_price\nr1,12.5\n"),
        ("sales.csv", b"request_id,sold_price\nr\xe9,12.5\n"),
    ],
    ids=["not-gzip", "not-utf8"],
)
def test_an_unreadable_export_is_refused_naming_it(
    settings: Settings, log: PredictionLog, tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert refused(settings, path).startswith(f"cannot read the sales export {path}: ")
    assert stored(log) == {}


def test_a_missing_path_is_refused_naming_it(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "sales.csv"
    assert refused(settings, missing) == f"no sales export at {missing}"
    assert refused(settings, tmp_path) == f"no sales export at {tmp_path}"  # a directory is not a file


def test_the_cli_refuses_a_bad_export_with_a_message_on_stderr_and_a_non_zero_exit(
    cli: Callable[..., Result], log: PredictionLog, tmp_path: Path
) -> None:
    path = write(tmp_path / "sales.csv", ["request_id,price", "r1,12.5"])
    result = cli("outcomes", "import", str(path))
    assert result.exit_code == 2
    assert "error: the sales export sales.csv lacks column sold_price" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert stored(log) == {}

    good = write(tmp_path / "good.csv", ["request_id,sold_price", "r1,12.5"])
    imported = cli("outcomes", "import", str(good))
    assert imported.exit_code == 0, imported.output
    assert "1 outcomes stored from good.csv (source export:good.csv:" in imported.stdout
    assert set(stored(log)) == {"r1"}

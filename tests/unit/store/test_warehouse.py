"""The warehouse's reads of training listings: split counts, the frame training reads, and its lineage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import pytest

from pricewise.settings import Settings
from pricewise.store import batches, warehouse


def add_batch(
    con: duckdb.DuckDBPyConnection, batch_id: str, status: str, listings: list[tuple[object, ...]]
) -> None:
    """A validated batch with listings (listing_id, kind, price, usable_for_training, split)."""
    batches.record_batch(
        con,
        batches.BatchRecord(
            batch_id,
            "priced",
            "f.tsv",
            "/f.tsv",
            "tsv",
            f"sha-{batch_id}",
            len(listings),
            0,
            datetime(2026, 1, 1),
            1,
        ),
    )
    batches.record_validation(
        con,
        batches.ValidationRecord(
            f"{batch_id}-v",
            batch_id,
            datetime(2026, 1, 2),
            status,
            1,
            1,
            0,
            0,
            None,
            "r.json",
            "r.html",
            "[]",
        ),
    )
    for n, (listing_id, kind, price, usable, split) in enumerate(listings):
        con.execute(
            "INSERT INTO listings (listing_id, batch_id, kind, source_id, name, item_condition_id, category_name, "
            "brand_name, price, shipping, item_description, usable_for_training, split) "
            "VALUES (?, ?, ?, ?, ?, 1, 'A/B/C', NULL, ?, 0, 'desc', ?, ?)",
            [listing_id, batch_id, kind, n, f"item {listing_id}", price, usable, split],
        )


@pytest.fixture
def con(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse.connect(settings) as connection:
        add_batch(
            connection,
            "b2",
            "pass",
            [
                ("train-3", "priced", 30.0, True, "test"),
                ("train-1", "priced", 10.0, True, "train"),
                ("train-2", "priced", 0.0, False, "train"),  # price 0: kept, not trained on
                ("score-b2-1", "unpriced", None, False, None),
            ],
        )
        add_batch(connection, "b1", "warn", [("train-4", "priced", 40.0, True, "valid")])
        add_batch(
            connection, "b3", "fail", [("train-5", "priced", 50.0, True, "train")]
        )  # failed: not trained on
        yield connection


def test_split_counts_count_only_usable_listings_of_batches_that_did_not_fail(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert warehouse.training_split_counts(con) == {"train": 1, "valid": 1, "test": 1}


def test_training_listings_come_in_listing_id_order_with_the_asked_columns(
    con: duckdb.DuckDBPyConnection,
) -> None:
    frame = warehouse.training_listings(con, ["name", "category_name"])

    assert list(frame.columns) == ["listing_id", "split", "batch_id", "name", "category_name", "price"]
    assert frame["listing_id"].tolist() == ["train-1", "train-3", "train-4"]
    assert frame["price"].tolist() == [10.0, 30.0, 40.0]
    assert frame["batch_id"].tolist() == ["b2", "b2", "b1"]


def test_lineage_lists_the_content_of_the_batches_trained_on_in_batch_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert warehouse.training_lineage(con) == "sha-b1,sha-b2"
    con.execute("DELETE FROM listings")
    assert warehouse.training_lineage(con) == ""
    assert warehouse.training_split_counts(con) == {}


def test_a_scratch_database_spills_to_scratch_space_not_the_working_directory(settings: Settings) -> None:
    with warehouse.connect_scratch(settings) as con:
        row = con.execute("SELECT current_setting('temp_directory')").fetchone()

    assert row is not None
    assert row[0] == str(settings.scratch / "duckdb")

"""Batch bookkeeping in a real warehouse: lineage, validation and profile rows written by column name and read back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import pytest

from pricewise.settings import Settings
from pricewise.store import batches, warehouse


def batch(batch_id: str, kind: str = "priced", hour: int = 0) -> batches.BatchRecord:
    return batches.BatchRecord(
        batch_id=batch_id,
        kind=kind,
        source_name=f"{batch_id}.tsv",
        source_path=f"/in/{batch_id}.tsv",
        file_format="tsv",
        content_sha256=f"sha-{batch_id}",
        row_count=10,
        parse_rejected=1,
        ingested_at=datetime(2026, 1, 1, hour),
        schema_version=warehouse.SCHEMA_VERSION,
    )


def validation(batch_id: str, status: str, minute: int = 0) -> batches.ValidationRecord:
    return batches.ValidationRecord(
        validation_id=f"{batch_id}-{minute}",
        batch_id=batch_id,
        validated_at=datetime(2026, 1, 2, 0, minute),
        status=status,
        rows_read=10,
        accepted=9,
        rejected=1,
        unusable_for_training=0,
        reference_batch_id=None,
        report_json=f"/r/{batch_id}-{minute}.json",
        report_html=f"/r/{batch_id}-{minute}.html",
        checks='[{"name": "reject_share"}]',
    )


@pytest.fixture
def con(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse.connect(settings) as connection:
        yield connection


def test_a_batch_record_round_trips(con: duckdb.DuckDBPyConnection) -> None:
    batches.record_batch(con, batch("b1"))

    assert batches.find_batch(con, "b1") == batch("b1")
    assert batches.find_batch(con, "bnope") is None
    assert batches.batch_ids_by_content(con) == {"sha-b1": ("b1", None)}


def test_rows_are_written_by_column_name_not_position() -> None:
    # A table whose columns are in another order than the dataclass's fields still gets each value in its column.
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE batches (schema_version INTEGER, ingested_at TIMESTAMP, parse_rejected BIGINT, "
        "row_count BIGINT, content_sha256 VARCHAR, file_format VARCHAR, source_path VARCHAR, "
        "source_name VARCHAR, kind VARCHAR, batch_id VARCHAR, extra VARCHAR DEFAULT 'later column')"
    )

    batches.record_batch(con, batch("b1"))

    assert batches.find_batch(con, "b1") == batch("b1")
    assert con.execute("SELECT kind, extra FROM batches").fetchone() == ("priced", "later column")


def test_unvalidated_batches_come_priced_first_then_in_ingest_order(con: duckdb.DuckDBPyConnection) -> None:
    for record in (
        batch("u1", "unpriced", 0),
        batch("p2", hour=2),
        batch("p1", hour=1),
        batch("done", hour=0),
    ):
        batches.record_batch(con, record)
    batches.record_validation(con, validation("done", "pass"))

    assert batches.unvalidated_batch_ids(con) == ["p1", "p2", "u1"]


def test_validations_are_history_and_the_latest_counts(con: duckdb.DuckDBPyConnection) -> None:
    batches.record_batch(con, batch("b1"))
    batches.record_validation(con, validation("b1", "pass", minute=1))
    batches.record_validation(con, validation("b1", "fail", minute=2))

    assert con.execute("SELECT count(*) FROM validations").fetchone() == (2,)
    assert con.execute("SELECT validation_id, status, checks FROM latest_validations").fetchall() == [
        ("b1-2", "fail", '[{"name": "reject_share"}]')
    ]


def test_a_profile_is_replaced_not_duplicated(con: duckdb.DuckDBPyConnection) -> None:
    assert batches.read_profile(con, "b1") is None

    batches.replace_profile(con, "b1", {"rows": 1, "brands": ["Nike"]})
    with warehouse.transaction(con):
        batches.replace_profile(con, "b1", {"rows": 2, "brands": []})

    assert batches.read_profile(con, "b1") == {"rows": 2, "brands": []}
    assert con.execute("SELECT count(*) FROM batch_profiles").fetchone() == (1,)


def test_the_reference_candidate_is_the_earliest_priced_batch_whose_latest_validation_did_not_fail(
    con: duckdb.DuckDBPyConnection,
) -> None:
    cases = [
        ("failed", "priced", 0, "fail"),
        ("scored", "unpriced", 1, "pass"),
        ("first", "priced", 2, "warn"),
        ("later", "priced", 3, "pass"),
    ]
    for batch_id, kind, hour, status in cases:
        batches.record_batch(con, batch(batch_id, kind, hour))
        batches.record_validation(con, validation(batch_id, status))
        batches.replace_profile(con, batch_id, {"rows": hour})

    assert batches.first_passing_priced_profile(con, excluding="later") == ("first", {"rows": 2})
    assert batches.first_passing_priced_profile(con, excluding="first") == ("later", {"rows": 3})
    batches.record_validation(con, validation("first", "fail", minute=5))
    batches.record_validation(con, validation("later", "fail", minute=5))
    assert batches.first_passing_priced_profile(con, excluding="x") is None


def test_summaries_list_every_batch_with_its_latest_validation(con: duckdb.DuckDBPyConnection) -> None:
    batches.record_batch(con, batch("b2", hour=2))
    batches.record_batch(con, batch("b1", hour=1))
    batches.record_validation(con, validation("b1", "pass", minute=1))
    batches.record_validation(con, validation("b1", "warn", minute=2))

    summaries = batches.batch_summaries(con)

    assert summaries == (
        batches.BatchSummary(
            "b1", "priced", "b1.tsv", "tsv", 10, "2026-01-01 01:00:00", "warn", 9, 1, "/r/b1-2.html"
        ),
        batches.BatchSummary(
            "b2", "priced", "b2.tsv", "tsv", 10, "2026-01-01 02:00:00", None, None, None, None
        ),
    )

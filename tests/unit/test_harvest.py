"""`harvest.run` on a real prediction log and warehouse: sold prices become a priced batch once, with stable ids,
the latest sold price, and text that comes back from ingest character for character."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pricewise import harvest, ingest
from pricewise.config import Config, load_config
from pricewise.inputs.listing_files import open_sources
from pricewise.settings import Settings
from pricewise.store import warehouse
from pricewise.store.prediction_log import LoggedSuggestion, Outcome, PredictionLog, default_url
from tests.support.logged import log_suggestions, small_workspace


def test_sold_prices_become_a_priced_batch_once(tmp_path: Path) -> None:
    ws = small_workspace(tmp_path / "ws", rows=200)
    config = load_config(ws.config_path)
    log_suggestions(
        ws.settings, range(500, 540), sold={i: [25.0] for i in range(500, 520)} | {500: [99.0, 21.5]}
    )

    first = harvest.run(config, ws.settings)

    assert (first.sold, first.harvested) == (20, 20)
    assert first.batch_id is not None
    assert first.path is not None
    assert first.path.parent == ws.settings.data_dir / "feedback"
    written = pd.read_csv(first.path, sep="\t")
    assert len(written) == 20
    assert written["train_id"].min() >= harvest.FEEDBACK_ID_BASE
    by_id = written.set_index("train_id")
    assert by_id.loc[harvest.feedback_listing_id("req-500"), "price"] == 21.5, "the latest sold price"
    assert by_id.loc[harvest.feedback_listing_id("req-501"), "name"] == "Item number 501"
    with warehouse.connect(ws.settings, read_only=True) as con:
        kind = con.execute(
            "SELECT kind, row_count FROM batches WHERE batch_id = ?", [first.batch_id]
        ).fetchone()
    assert kind == ("priced", 20)

    again = harvest.run(config, ws.settings)
    assert (again.sold, again.harvested, again.batch_id, again.path) == (20, 0, None, None)
    assert again.empty

    log_suggestions(ws.settings, range(600, 603), sold={600: [18.0], 601: [19.0]})
    later = harvest.run(config, ws.settings)
    assert (later.sold, later.harvested) == (22, 2), "only suggestions not harvested before"
    with pytest.raises(dataclasses.FrozenInstanceError):
        later.harvested = 0  # type: ignore[misc]


def test_nothing_sold_harvests_nothing(tmp_path: Path) -> None:
    ws = small_workspace(tmp_path / "ws", rows=200)
    log_suggestions(ws.settings, range(500, 510))
    result = harvest.run(load_config(ws.config_path), ws.settings)
    assert result == harvest.HarvestResult(0, 0, None, None)
    assert not (ws.settings.data_dir / "feedback").exists()


def test_ids_are_stable_in_the_feedback_range_and_below_two_to_the_53() -> None:
    ids = {harvest.feedback_listing_id(f"req-{i}") for i in range(1000)}
    assert len(ids) == 1000
    assert harvest.feedback_listing_id("req-1") == harvest.feedback_listing_id("req-1")
    assert all(
        harvest.FEEDBACK_ID_BASE <= i < harvest.FEEDBACK_ID_BASE + harvest.FEEDBACK_ID_SPAN for i in ids
    )
    assert max(ids) < 2**53


def test_text_with_tabs_and_newlines_is_written_as_it_was_sent(tmp_path: Path) -> None:
    settings = small_workspace(tmp_path / "ws", rows=200).settings
    log = PredictionLog(default_url(settings))
    try:
        log.record_suggestions(
            [
                LoggedSuggestion(
                    "req-x",
                    None,
                    "pricewise",
                    "1",
                    None,
                    False,
                    {
                        "name": "Red\tdress",
                        "item_condition_id": 2,
                        "shipping": 1,
                        "item_description": "line 1\nline 2",
                    },
                    {"price": 10.0, "low": 5.0, "high": 20.0},
                    2.0,
                )
            ]
        )
        assert log.record_outcomes([Outcome("req-x", 14.0)], source="api").stored == 1
        sold = log.sold_suggestions()
    finally:
        log.close()
    [row] = harvest.new_listings(sold, seen=set())
    assert row["name"] == "Red\tdress"
    assert (row["brand_name"], row["category_name"]) == ("", ""), "missing optional fields are empty"
    path = harvest.write_listings(settings, [row])
    written = pd.read_csv(path, sep="\t")
    assert len(written) == 1, "quoted line breaks do not split the record"
    assert written.loc[0, "name"] == "Red\tdress"
    assert written.loc[0, "item_description"] == "line 1\nline 2"
    assert harvest.new_listings(sold, seen={row["train_id"]}) == []


# Every character a listing request may carry: the API refuses control characters other than tab, newline and
# carriage return, and JSON text cannot hold lone surrogates (UTF-8 cannot encode them).
API_TEXT = st.text(
    st.characters(
        codec="utf-8",
        exclude_characters=[chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + ["\x7f"],
    ),
    max_size=40,
)


def _read_back(settings: Settings, path: Path) -> list[tuple[object, ...]]:
    """The rows ingest's reader makes of a harvested file, as raw_listings stores them."""
    with open_sources([path], settings.scratch) as sources, warehouse.connect_scratch(settings) as con:
        outcome = ingest.load_source(con, sources[0], "h0", Config(), 0)
        assert outcome.parse_rejected == 0
        return con.execute(
            "SELECT CAST(source_id AS BIGINT), name, brand_name, category_name, item_description, "
            "CAST(price AS DOUBLE) FROM raw_listings ORDER BY CAST(source_id AS BIGINT)"
        ).fetchall()


@hypothesis_settings(max_examples=60, deadline=None)
@example(texts=[('5" x 7" photo frame', "C:\\frames\\", "Home/Décor", 'a "quoted"\\n word\t\r\n')])
@given(texts=st.lists(st.tuples(API_TEXT, API_TEXT, API_TEXT, API_TEXT), min_size=1, max_size=4))
def test_harvested_text_comes_back_from_ingest_character_for_character(
    texts: list[tuple[str, str, str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        rows = [
            {
                "train_id": harvest.FEEDBACK_ID_BASE + i,
                "name": name,
                "item_condition_id": 3,
                "category_name": category,
                "brand_name": brand,
                "price": 10.5 + i,
                "shipping": 1,
                "item_description": description,
            }
            for i, (name, brand, category, description) in enumerate(texts)
        ]

        read = _read_back(settings, harvest.write_listings(settings, rows))

    # An empty field is a missing value to the reader, as it is in Kaggle's files.
    expected = [
        (
            r["train_id"],
            r["name"] or None,
            r["brand_name"] or None,
            r["category_name"] or None,
            r["item_description"] or None,
            r["price"],
        )
        for r in rows
    ]
    assert read == expected

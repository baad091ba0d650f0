"""The corruption generator run on the shared sample: the row rules catch corrupted cells, spare clean rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_row_rules import GOAL_DETECTION, GOAL_FALSE_REJECT, measure
from benchmarks.corrupt_listings import corrupt, read_sample
from tests.support.workspaces import TRAIN_SAMPLE

pytestmark = pytest.mark.integration


def test_the_generator_corrupts_about_one_percent_of_each_text_column_reproducibly() -> None:
    frame = read_sample(TRAIN_SAMPLE).head(2000)

    first, done = corrupt(frame, rate=0.01, seed=3)
    again, _ = corrupt(frame, rate=0.01, seed=3)

    assert first.equals(again)
    changed = (first != frame).sum()
    assert {
        c: int(changed[c]) for c in ("train_id", "price", "shipping", "item_condition_id")
    } == dict.fromkeys(("train_id", "price", "shipping", "item_condition_id"), 0)
    for column in ("name", "brand_name", "category_name", "item_description"):
        assert 10 <= changed[column] <= 60  # 20 chosen, swaps from other columns add some, no-op changes drop
    assert {c.kind for c in done} == {"garbage", "blank", "swap", "truncation"}
    # One record per changed cell, from its clean value to its final one.
    assert len({(c.row, c.column) for c in done}) == len(done)
    for c in done:
        position = first.columns.get_loc(c.column)
        assert (frame.iat[c.row, position], first.iat[c.row, position]) == (c.before, c.after)
        assert c.before != c.after


def test_row_rules_catch_corrupted_cells_and_spare_clean_rows(tmp_path: Path) -> None:
    figures = measure(tmp_path, rate=0.01, seed=0)

    assert figures.false_reject_rate <= GOAL_FALSE_REJECT
    # Blanked optional fields are real data: the goal is taken over the other corrupted cells, cut names and
    # descriptions included.
    assert figures.detection_rate >= GOAL_DETECTION
    cut_text = [
        caught
        for c, caught, _ in figures.corruptions
        if c.kind == "truncation" and c.column in ("name", "item_description")
    ]
    assert sum(cut_text) >= 0.4 * len(cut_text)
    garbage = [caught for c, caught, _ in figures.corruptions if c.kind == "garbage"]
    assert len(garbage) >= 20
    assert sum(garbage) == len(garbage)
    cut_paths = [
        caught
        for c, caught, _ in figures.corruptions
        if c.kind == "truncation" and c.column in ("category_name", "brand_name")
    ]
    assert sum(cut_paths) >= 0.85 * len(cut_paths)

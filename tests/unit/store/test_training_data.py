"""A real (tiny) warehouse in; the splits, their lineage and the monitoring reference sample read from it out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricewise.columns import FEATURE_COLUMNS
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.training_data import Split, load, reference_sample
from tests.support.workspaces import Workspace


def test_halves_are_disjoint_alternate_rows_and_the_target_is_log1p() -> None:
    split = Split(pd.DataFrame({"name": list("abcde")}), np.array([0.0, 1.0, 3.0, 7.0, 15.0]))

    first, second = split.halves()

    assert first.frame["name"].tolist() == ["a", "c", "e"]
    assert second.frame["name"].tolist() == ["b", "d"]
    assert first.price.tolist() == [0.0, 3.0, 15.0]
    assert len(first) + len(second) == len(split)
    assert split.log_price == pytest.approx(np.log([1.0, 2.0, 4.0, 8.0, 16.0]))


def test_load_reads_every_usable_listing_into_three_splits_with_lineage(
    tiny_validated_workspace: Workspace,
) -> None:
    data = load(tiny_validated_workspace.settings, min_rows=20)

    sizes = {name: len(getattr(data, name)) for name in ("train", "valid", "test")}
    assert sum(sizes.values()) == 400
    assert sizes["train"] > sizes["valid"] > 0
    assert sizes["test"] > 0
    for name in ("train", "valid", "test"):
        part = getattr(data, name)
        assert list(part.frame.columns) == list(FEATURE_COLUMNS)
        assert len(part.price) == len(part.frame)
        assert (part.price > 0).all()
    assert len(data.batch_ids) == 1
    assert len(data.digest) == 16
    again = load(tiny_validated_workspace.settings)
    assert again.digest == data.digest
    pd.testing.assert_frame_equal(again.test.frame, data.test.frame)


def test_a_split_with_too_few_listings_is_a_clear_error(tiny_validated_workspace: Workspace) -> None:
    with pytest.raises(PricewiseError, match=r"the train split has \d+ usable training listings"):
        load(tiny_validated_workspace.settings, min_rows=10_000)


def test_without_a_warehouse_loading_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PricewiseError, match="run `pricewise ingest PATH` first"):
        load(Settings(data_dir=tmp_path / "data"))


def test_the_reference_sample_is_bounded_repeatable_and_filtered_by_batch(
    tiny_validated_workspace: Workspace,
) -> None:
    settings = tiny_validated_workspace.settings
    train_rows = len(load(settings).train)
    [batch] = load(settings).batch_ids

    sample, total = reference_sample(settings, None, max_rows=50, seed=3)
    same, _ = reference_sample(settings, (batch,), max_rows=50, seed=3)
    whole, whole_total = reference_sample(settings, None, max_rows=10_000, seed=3)
    none, none_total = reference_sample(settings, ("no-such-batch",), max_rows=50, seed=3)

    assert total == whole_total == train_rows
    assert len(sample) == 50
    assert list(sample.columns) == [*FEATURE_COLUMNS, "price"]
    pd.testing.assert_frame_equal(sample, same)
    assert len(whole) == train_rows
    assert none_total == 0
    assert none.empty

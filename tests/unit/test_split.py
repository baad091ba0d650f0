"""The split rule: a pure function of the listing id, the same in Python and in the warehouse."""

from __future__ import annotations

import duckdb

from pricewise.config import SplitConfig
from pricewise.split import assign, assign_sql, bucket, bucket_sql


def test_python_and_sql_agree_and_shares_are_close_to_config() -> None:
    config = SplitConfig()
    ids = [f"train-{i}" for i in range(5000)]
    con = duckdb.connect()
    sql_splits = dict(
        con.execute(
            f"SELECT id, {assign_sql('id', config)} FROM unnest($ids::VARCHAR[]) AS t(id)", {"ids": ids}
        ).fetchall()
    )
    py_splits = [assign(i, config) for i in ids]
    assert [sql_splits[i] for i in ids] == py_splits
    assert 0.77 < py_splits.count("train") / len(ids) < 0.83
    assert 0.08 < py_splits.count("test") / len(ids) < 0.12


def test_assignment_is_stable_and_known() -> None:
    # md5("train-0") starts with e6ef4732 -> 0.9021..., so the test split.
    assert assign("train-0", SplitConfig()) == "test"
    assert assign("train-0", SplitConfig(train=0.5, valid=0.45, test=0.05)) == "valid"
    assert assign("train-0", SplitConfig(train=0.95, valid=0.05, test=0.0)) == "train"
    assert assign("train-1", SplitConfig()) == assign("train-1", SplitConfig())


def test_bucket_is_the_same_number_in_python_and_sql() -> None:
    ids = [f"train-{i}" for i in range(500)] + ["", "é-1", "x" * 300]
    con = duckdb.connect()
    sql = dict(
        con.execute(
            f"SELECT id, {bucket_sql('id')} FROM unnest($ids::VARCHAR[]) AS t(id)", {"ids": ids}
        ).fetchall()
    )
    assert [sql[i] for i in ids] == [bucket(i) for i in ids]
    assert bucket("train-0") == 0xE6EF4732 / 2**32

"""Suggested prices, ranges and sold prices in tiny frames; the accuracy figures, overall and per group."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pricewise.monitoring import figures


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "price": [10.0, 20.0, 30.0, np.nan, 5.0],
            "low": [8.0, 15.0, 31.0, 1.0, 4.0],
            "high": [12.0, 25.0, 40.0, 9.0, 6.0],
            "sold_price": [11.0, 30.0, 30.0, 7.0, np.nan],
            "model": ["1", "1", "2", "2", None],
        }
    )


def test_accuracy_counts_only_rows_with_a_sold_and_a_suggested_price() -> None:
    got = figures.accuracy(rows())
    errors = [math.log1p(10) - math.log1p(11), math.log1p(20) - math.log1p(30), 0.0]
    assert got.sold == 3
    assert got.rmsle == pytest.approx(math.sqrt(sum(e * e for e in errors) / 3))
    assert got.coverage == pytest.approx(1 / 3), "only 11 in [8, 12]; 30 is outside [15, 25] and [31, 40]"


def test_nothing_sold_has_no_figures() -> None:
    assert figures.accuracy(rows().iloc[4:]) == figures.Accuracy(0, None, None)
    assert figures.accuracy(pd.DataFrame()) == figures.Accuracy(0, None, None)
    unpriced = pd.DataFrame({"name": ["x"], "sold_price": [3.0]})  # a batch no champion scored
    assert figures.accuracy(unpriced).sold == 0


def test_accuracy_by_group_matches_accuracy_of_each_group() -> None:
    frame = rows()
    grouped = dict(figures.accuracy_by(frame, frame["model"]))
    assert set(grouped) == {"1", "2", None}
    assert grouped["1"] == figures.accuracy(frame.iloc[:2])
    assert grouped["2"] == figures.accuracy(frame.iloc[2:4])
    assert grouped["2"].sold == 1
    assert grouped[None].sold == 0
    assert sum(a.sold for a in grouped.values()) == figures.accuracy(frame).sold

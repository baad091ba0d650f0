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


def test_seller_response_counts_rounded_choices_as_accepted_and_measures_the_ratio() -> None:
    choices = pd.DataFrame(
        {
            "price": [23.47, 100.0, 10.0, 40.0, 8.0],
            "low": [18.0, 80.0, 8.0, 30.0, 6.0],
            "high": [30.0, 130.0, 13.0, 55.0, 11.0],
            # 23.00 rounds 23.47 (inside 50 cents); 100.9 is inside 1% of 100; 14 and 30 were changed;
            # the last row has no choice and does not count.
            "chosen_price": [23.0, 100.9, 14.0, 30.0, np.nan],
        }
    )
    got = figures.seller_response(choices)
    assert got.answered == 4
    assert got.acceptance_rate == pytest.approx(0.5)
    assert got.within_range == pytest.approx(0.75), "14 is above the range [8, 13]"
    assert got.median_ratio == pytest.approx(np.median([23 / 23.47, 1.009, 1.4, 0.75]))


def test_seller_response_without_choices_has_no_rates() -> None:
    empty = figures.SellerResponse(0, None, None, None)
    assert figures.seller_response(pd.DataFrame()) == empty
    unanswered = pd.DataFrame({"price": [5.0], "low": [4.0], "high": [6.0], "chosen_price": [np.nan]})
    assert figures.seller_response(unanswered) == empty


def test_shortfall_names_what_is_missing_only_below_the_minimum() -> None:
    assert figures.shortfall(1, 30) == "needs 30 sold prices, has 1"
    assert figures.shortfall(2, 5, "chosen prices") == "needs 5 chosen prices, has 2"
    assert figures.shortfall(30, 30) is None
    assert figures.shortfall(31, 30) is None


def models() -> pd.DataFrame:
    frame = rows()
    frame["model_name"] = ["pricewise", "pricewise", "pricewise", "pricewise-baseline", None]
    frame["model_version"] = ["1", "1", "2", "1", None]
    return frame


def test_accuracy_by_model_keeps_a_baseline_version_apart_from_the_main_models() -> None:
    frame = models()
    grouped = dict(figures.accuracy_by_model(frame))
    assert set(grouped) == {("pricewise", "1"), ("pricewise", "2"), ("pricewise-baseline", "1"), (None, None)}
    assert grouped[("pricewise", "1")] == figures.accuracy(frame.iloc[:2])
    assert grouped[("pricewise", "2")] == figures.accuracy(frame.iloc[2:3])
    assert grouped[("pricewise-baseline", "1")].sold == 0, "its only row has no suggested price"


def test_offline_vs_live_shows_live_figures_only_from_the_minimum_count() -> None:
    live = figures.accuracy_by_model(models())
    offline = {("pricewise", "1"): 0.30, ("pricewise", "2"): 0.25}
    got = {(r.model_name, r.model_version): r for r in figures.offline_vs_live(live, offline, min_sold=2)}
    judged = got[("pricewise", "1")]
    expected = figures.accuracy(models().iloc[:2])
    assert (judged.sold, judged.live_rmsle, judged.coverage) == (2, expected.rmsle, expected.coverage)
    assert judged.offline_rmsle == 0.30
    assert expected.rmsle is not None
    assert judged.excess == pytest.approx(expected.rmsle - 0.30)
    assert judged.note is None
    hidden = got[("pricewise", "2")]
    assert (hidden.sold, hidden.live_rmsle, hidden.coverage, hidden.excess) == (1, None, None, None)
    assert hidden.offline_rmsle == 0.25, "the offline figure needs no sold prices"
    assert hidden.note == "needs 2 sold prices, has 1"
    assert got[("pricewise-baseline", "1")].offline_rmsle is None, "no evaluation known"
    assert [(r.model_name, r.model_version) for r in figures.offline_vs_live(live, offline, 2)] == [
        key for key, _ in live
    ]


def test_error_rates_split_4xx_5xx_and_clients_that_left() -> None:
    got = figures.error_rates({200: 14, 422: 3, 413: 1, 500: 1, 503: 0, 499: 1})
    assert got.requests == 20
    assert got.client_errors == pytest.approx(4 / 20), "422 and 413; 499 is not a client error"
    assert got.server_errors == pytest.approx(1 / 20)
    assert got.client_closed == pytest.approx(1 / 20)
    assert figures.error_rates({}) == figures.ErrorRates(0, None, None, None)

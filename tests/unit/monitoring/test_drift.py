"""Tiny listing frames in; the compared descriptors, the reference vocabulary and Evidently's drift verdicts out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricewise.monitoring import drift


def listings(n: int, category: str, words: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "name": [f"{words} {i % 7}" for i in range(n)],
            "brand_name": ["Nike" if i % 2 else "" for i in range(n)],
            "category_name": [f"{category}/Tops" for _ in range(n)],
            "item_condition_id": rng.integers(1, 4, n),
            "shipping": rng.integers(0, 2, n),
            "item_description": ["x" * int(k) for k in rng.integers(5, 50, n)],
        }
    )


def test_describe_measures_text_against_the_reference_vocabulary() -> None:
    frame = pd.DataFrame(
        {
            "name": ["Nike shoes red", "zzz qqq", ""],
            "brand_name": ["Nike", None, " "],
            "category_name": ["Men/Shoes", None, "Women/Tops"],
            "item_condition_id": [1, 3, 5],
            "shipping": [0, 1, 0],
            "item_description": ["abc", None, "x" * 10],
        }
    )
    described = drift.describe(frame, {"nike", "shoes"})
    assert described["vocabulary_share"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert described["name_words"].tolist() == [3.0, 2.0, 0.0]
    assert described["description_chars"].tolist() == [3.0, 0.0, 10.0]
    assert described["has_brand"].tolist() == ["yes", "no", "no"]
    assert described["category_top"].tolist() == ["Men", "(none)", "Women"]
    assert list(described.columns) == list(drift.INPUT_COLUMNS)


def test_describe_takes_a_logged_description_length_instead_of_the_text() -> None:
    frame = (
        listings(3, "Men", "a b", 0).drop(columns="item_description").assign(description_chars=[4, None, 9])
    )
    assert drift.describe(frame, set())["description_chars"].tolist() == [4.0, 0.0, 9.0]


def test_vocabulary_keeps_words_seen_in_enough_names() -> None:
    assert drift.vocabulary(pd.Series(["a b", "a c", "a", None]), 2) == {"a"}
    assert drift.vocabulary(pd.Series(["A a", "b"]), 1) == {"a", "b"}, "a word counts once per name"


def test_a_shifted_side_drifts_and_the_same_data_does_not() -> None:
    reference = listings(400, "Men", "blue shirt", 1)
    known = drift.vocabulary(reference["name"], 2)
    ref = drift.describe(reference, known)
    same = drift.describe(listings(400, "Men", "blue shirt", 2), known)
    shifted = drift.describe(listings(400, "Women", "zzz qqq www", 3), known)

    calm = drift.evidently_report(ref, same, with_prediction=False, with_target=False)
    moved = drift.evidently_report(ref, shifted, with_prediction=False, with_target=False)

    assert set(calm.drifted()) == set(drift.INPUT_COLUMNS)
    assert not calm.drifted()["category_top"]
    assert not calm.drifted()["vocabulary_share"]
    assert moved.drifted()["category_top"]
    assert moved.drifted()["vocabulary_share"]
    assert moved.drifted()["name_words"]


def test_prediction_and_target_are_compared_when_asked() -> None:
    reference = drift.describe(listings(300, "Men", "blue shirt", 1), set())
    current = drift.describe(listings(300, "Men", "blue shirt", 2), set())
    rng = np.random.default_rng(0)
    for frame, shift in ((reference, 0.0), (current, 1.5)):
        frame[drift.PREDICTION] = rng.normal(3.0, 0.2, len(frame))
        frame[drift.TARGET] = rng.normal(3.0 + shift, 0.2, len(frame))

    verdicts = drift.evidently_report(reference, current, with_prediction=True, with_target=True).drifted()

    assert verdicts[drift.PREDICTION] is False
    assert verdicts[drift.TARGET] is True


def test_drifted_columns_reads_value_drift_tests_only() -> None:
    report = {
        "tests": [
            {
                "metric_config": {"params": {"type": "evidently:metric:ValueDrift", "column": "a"}},
                "status": "FAIL",
            },
            {
                "metric_config": {"params": {"type": "evidently:metric:ValueDrift", "column": "b"}},
                "status": "SUCCESS",
            },
            {"metric_config": {"params": {"type": "evidently:metric:DriftedColumnsCount"}}, "status": "FAIL"},
        ]
    }
    assert drift.drifted_columns(report) == {"a": True, "b": False}
    assert drift.drifted_columns({}) == {}

"""Tests of the rules baseline's back-off."""

import numpy as np
import pandas as pd
import pytest

from pricewise.models import RulesBaseline


def frame(rows: list[tuple[str, str | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["item"] * len(rows),
            "brand_name": [brand for _, brand, _ in rows],
            "category_name": [category for category, _, _ in rows],
            "item_condition_id": [condition for _, _, condition in rows],
            "shipping": [0] * len(rows),
            "item_description": [""] * len(rows),
        }
    )


TRAIN = frame(
    [("A/B/C", "X", 1)] * 3 + [("A/B/C", "X", 2)] * 2 + [("A/B/D", None, 1)] * 3 + [("E/F/G", "Y", 1)]
)
LOG_PRICE = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])


def test_backs_off_from_fine_to_coarse_groups() -> None:
    model = RulesBaseline(min_group_size=3).fit(TRAIN, LOG_PRICE)
    queries = frame(
        [
            ("A/B/C", "X", 1),  # full group of 3 -> median 2
            ("A/B/C", "X", 2),  # only 2 rows -> category x brand (5 rows) -> median 3
            ("A/B/D", "Z", 1),  # unseen brand -> category A/B/D -> median 8
            ("A/Q/R", None, 1),  # unseen category -> top level "a" (8 rows) -> median 5.5
            (None, None, 4),  # nothing known -> global median 6
        ]
    )
    np.testing.assert_allclose(model.predict(queries), [2.0, 3.0, 8.0, 5.5, 6.0])


def test_min_group_size_one_uses_the_finest_group() -> None:
    model = RulesBaseline(min_group_size=1).fit(TRAIN, LOG_PRICE)
    np.testing.assert_allclose(model.predict(frame([("E/F/G", "Y", 1), ("A/B/C", "X", 2)])), [10.0, 5.5])


def test_is_invariant_to_case_and_whitespace() -> None:
    model = RulesBaseline(min_group_size=1).fit(TRAIN, LOG_PRICE)
    assert model.predict(frame([(" a/b/c ", "  x", 2)]))[0] == model.predict(frame([("A/B/C", "X", 2)]))[0]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="min_group_size"):
        RulesBaseline(min_group_size=0)
    with pytest.raises(ValueError, match="equal length"):
        RulesBaseline().fit(TRAIN, LOG_PRICE[:-1])


def test_columns_by_name_get_the_prices_of_the_frame() -> None:
    frame = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d"],
            "brand_name": ["Nike", None, "Nike", "Apple"],
            "category_name": ["Men/Shoes", "Men/Shoes", None, "Women/Tops"],
            "item_condition_id": [1, 2, 3, 1],
            "shipping": [0, 1, 0, 1],
            "item_description": ["", None, "x", "y"],
        }
    )
    model = RulesBaseline(min_group_size=1).fit(frame, np.log1p([10.0, 20.0, 30.0, 40.0]))
    columns = {column: frame[column].tolist() for column in frame.columns}
    np.testing.assert_array_equal(model.predict(columns), model.predict(frame))

"""Behaviour checks catch models that misbehave, and pass models that do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pricewise.config import BehaviourConfig
from pricewise.models import behaviour

SAMPLE = pd.DataFrame(
    {
        "name": ["Red Dress", "iPhone 8 case", "Lego set"],
        "brand_name": ["Zara", "", "LEGO"],
        "category_name": ["Women/Dresses/Mini", "Electronics/Cases/Phone", "Kids/Toys/Blocks"],
        "item_condition_id": [1, 3, 2],
        "shipping": [0, 1, 1],
        "item_description": ["Worn once", "No description yet", "All pieces"],
    }
)


def priced(price: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"price": price, "low": price * 0.8, "high": price * 1.2})


def well_behaved(frame: pd.DataFrame) -> pd.DataFrame:
    text = frame["name"].str.lower().str.split().str.join(" ")
    return priced(10.0 + text.str.len().to_numpy() - frame["item_condition_id"].to_numpy())


def test_a_well_behaved_model_passes_everything() -> None:
    assert all(c.passed for c in behaviour.run_checks(well_behaved, SAMPLE, BehaviourConfig()))


def test_case_sensitive_model_fails_invariance() -> None:
    check = behaviour.text_invariance(lambda f: priced(5.0 + f["name"].str.count("[A-Z]")), SAMPLE, 0.01)
    assert not check.passed
    assert check.value > 0.01


def test_model_rewarding_worse_condition_fails() -> None:
    check = behaviour.condition_order(lambda f: priced(5.0 + f["item_condition_id"].to_numpy()), SAMPLE, 0.0)
    assert not check.passed


def test_negative_or_nan_prices_fail() -> None:
    check = behaviour.positive_and_finite(lambda f: priced(np.array([1.0, -1.0, np.nan])), SAMPLE)
    assert not check.passed
    assert check.value == 2


def test_one_listing_priced_higher_in_a_worse_condition_fails_the_strict_check() -> None:
    def one_rises(frame: pd.DataFrame) -> pd.DataFrame:
        # Lower on average in a worse condition, but the Lego set is dearer in condition 4 than in 3.
        condition = frame["item_condition_id"].to_numpy()
        rise = (frame["name"] == "Lego set").to_numpy() & (condition == 4)
        return priced(20.0 - condition + 3.0 * rise)

    assert behaviour.condition_order(one_rises, SAMPLE, 0.0).passed
    check = behaviour.listing_condition_order(one_rises, SAMPLE)
    assert not check.passed
    assert check.value == 1
    assert "1 of 3 listings" in check.detail
    assert "$2.00" in check.detail
    names = {c.name: c.passed for c in behaviour.run_checks(one_rises, SAMPLE, BehaviourConfig())}
    assert names == {
        "positive_and_finite": True,
        "text_invariance": True,
        "condition_order": True,
        "listing_condition_order": False,
    }


def test_equal_prices_across_conditions_pass_the_strict_check() -> None:
    check = behaviour.listing_condition_order(lambda f: priced(np.full(len(f), 7.5)), SAMPLE)
    assert check.passed
    assert check.value == 0

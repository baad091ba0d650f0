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

"""Behaviour of the trained main model (version 1 from the shipped config, on the shared sample)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricewise.config import BehaviourConfig
from pricewise.models import behaviour
from pricewise.models.suggester import PriceSuggester
from pricewise.store.registry import load_suggester
from pricewise.store.training_data import load
from tests.support.workspaces import Workspace

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model(trained_workspace: Workspace) -> PriceSuggester:
    # Both URIs: an earlier test in the session may have pointed the registry at another store.
    mlflow.set_tracking_uri(trained_workspace.settings.tracking_uri)
    mlflow.set_registry_uri(trained_workspace.settings.tracking_uri)
    return load_suggester("models:/pricewise/1")


@pytest.fixture(scope="module")
def test_frame(trained_workspace: Workspace) -> pd.DataFrame:
    return load(trained_workspace.settings).test.frame


def test_prices_are_positive_finite_and_inside_their_range(
    model: PriceSuggester, test_frame: pd.DataFrame
) -> None:
    check = behaviour.positive_and_finite(model.suggest, test_frame)
    assert check.passed, check.detail


def test_case_and_whitespace_do_not_move_the_price(model: PriceSuggester, test_frame: pd.DataFrame) -> None:
    check = behaviour.text_invariance(model.suggest, test_frame, tolerance=1e-6)
    assert check.passed, check.detail


def test_a_worse_condition_does_not_raise_the_price_on_average(
    model: PriceSuggester, test_frame: pd.DataFrame
) -> None:
    check = behaviour.condition_order(model.suggest, test_frame, BehaviourConfig().condition_tolerance)
    assert check.passed, check.detail


def test_no_listing_is_priced_higher_in_a_worse_condition(
    model: PriceSuggester, test_frame: pd.DataFrame
) -> None:
    sample = test_frame.head(300)
    prices = behaviour.condition_prices(model.suggest, sample)
    assert prices.shape == (len(sample), 5)
    assert (np.diff(prices, axis=1) <= 0).all()
    check = behaviour.listing_condition_order(model.suggest, sample, prices)
    assert check.passed, check.detail
    # Each listing's price in its own condition is the one it gets as it is listed.
    own = prices[np.arange(len(sample)), sample["item_condition_id"].to_numpy(dtype=np.int64) - 1]
    np.testing.assert_array_equal(own, model.suggest(sample)["price"].to_numpy())


def test_a_known_brand_outweighs_an_empty_one(model: PriceSuggester, test_frame: pd.DataFrame) -> None:
    handbags = test_frame.assign(
        name="Leather handbag",
        category_name="Women/Women's Handbags/Shoulder Bag",
        item_description="Used a few times",
    ).head(50)
    branded = model.suggest(handbags.assign(brand_name="Louis Vuitton"))["price"].to_numpy()
    unbranded = model.suggest(handbags.assign(brand_name=""))["price"].to_numpy()
    assert np.mean(np.log(branded) - np.log(unbranded)) > 0.3


def test_missing_optional_fields_still_get_a_price(model: PriceSuggester) -> None:
    bare = pd.DataFrame(
        [
            {
                "name": "Phone case",
                "brand_name": None,
                "category_name": None,
                "item_condition_id": 1,
                "shipping": 0,
                "item_description": None,
            }
        ]
    )
    out = model.suggest(bare)
    assert np.isfinite(out["price"]).all()
    assert (out["price"] >= 1.0).all()


def test_missing_required_columns_are_named(model: PriceSuggester) -> None:
    with pytest.raises(ValueError, match=r"missing column\(s\): item_condition_id, shipping"):
        model.suggest(pd.DataFrame([{"name": "x", "brand_name": "", "category_name": ""}]))

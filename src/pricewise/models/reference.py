"""A fitted model and its training listings in; the frozen reference serving shows beside a price out.

The reference is what the seller page and the comparables extra need besides the price model: the category list
offered in the form and the index of similar priced listings. It is built at train time and pickled inside the
logged model, so serving never reads the warehouse to complete a model it loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pricewise.models.comparables import ComparablesIndex
from pricewise.models.suggester import LogPriceModel

MAX_CATEGORIES = 300


def top_categories(category_names: pd.Series, limit: int = MAX_CATEGORIES) -> tuple[str, ...]:
    """The most common categories, sorted by name: what the seller page offers in its category list.

    Args:
        category_names: The category of each training listing (missing or empty values are not offered).
        limit: How many of the most common categories are considered.

    Returns:
        The non-empty categories among the `limit` most common ones, in alphabetical order.
    """
    counts = category_names.dropna().astype(str).value_counts()
    return tuple(sorted(c for c in counts.index[:limit] if c))


@dataclass(frozen=True, eq=False)
class ServingReference:
    """What serving shows beside a price: the category list and, for models with text features, comparables."""

    categories: tuple[str, ...]
    comparables: ComparablesIndex | None

    @classmethod
    def build(
        cls, model: LogPriceModel, train_frame: pd.DataFrame, listings: pd.DataFrame, price: np.ndarray
    ) -> ServingReference:
        """Build the reference of a fitted model.

        Args:
            model: The fitted price model (comparables need its sparse feature builder; a model without one,
                such as the rules baseline, gets categories only).
            train_frame: The training split's raw listing fields (the category list is counted on it).
            listings: Raw listing fields of the priced listings comparables are chosen from.
            price: Their prices.

        Returns:
            The reference.
        """
        return cls(
            categories=top_categories(train_frame["category_name"]),
            comparables=ComparablesIndex.build(model, listings, price),
        )

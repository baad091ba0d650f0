"""A fitted model and its training listings in; the frozen reference serving shows beside a price out.

The reference is what the seller page and the comparables extra need besides the price model: the category and
brand lists offered in the form and the index of similar priced listings. It is built at train time and
pickled inside the logged model, so serving never reads the warehouse to complete a model it loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pricewise.models.comparables import ComparablesIndex
from pricewise.models.suggester import LogPriceModel

# The seller page's searchable category field offers every category of the training data up to this many (the
# full Kaggle file has 1,287), so no category the model knows is flagged there as unknown.
MAX_CATEGORIES = 2000
MAX_BRANDS = 2000


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


def top_brands(brand_names: pd.Series, limit: int = MAX_BRANDS) -> tuple[str, ...]:
    """The most common brands, sorted by name: what the seller page suggests as the seller types a brand.

    Args:
        brand_names: The brand of each training listing (missing, empty or blank values are not counted).
        limit: How many of the most common brands are kept (ties at the cut go to the alphabetically first).

    Returns:
        Up to `limit` non-empty brands, in alphabetical order.
    """
    names = brand_names.dropna().astype(str).str.strip()
    counts = names[names != ""].value_counts()
    # Sorting on (count, name) keeps the cut the same whatever order the listings came in.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(sorted(str(name) for name, _ in ranked[:limit]))


@dataclass(frozen=True, eq=False)
class ServingReference:
    """What serving shows beside a price: the category and brand lists and, for models with text features,
    comparables."""

    categories: tuple[str, ...]
    comparables: ComparablesIndex | None
    # A class-level default: a reference pickled before brands travelled with it unpickles with none.
    brands: tuple[str, ...] = ()

    @classmethod
    def build(
        cls, model: LogPriceModel, train_frame: pd.DataFrame, listings: pd.DataFrame, price: np.ndarray
    ) -> ServingReference:
        """Build the reference of a fitted model.

        Args:
            model: The fitted price model (comparables need its sparse feature builder; a model without one,
                such as the rules baseline, gets categories only).
            train_frame: The training split's raw listing fields (the category and brand lists are counted on
                it).
            listings: Raw listing fields of the priced listings comparables are chosen from.
            price: Their prices.

        Returns:
            The reference.
        """
        return cls(
            categories=top_categories(train_frame["category_name"]),
            comparables=ComparablesIndex.build(model, listings, price),
            brands=top_brands(train_frame["brand_name"]),
        )

"""Raw listing fields (pandas DataFrame) in, normalised text columns out (lower-case, single-spaced)."""

from __future__ import annotations

import numpy as np
import pandas as pd

RAW_COLUMNS: tuple[str, ...] = (
    "name",
    "brand_name",
    "category_name",
    "item_condition_id",
    "shipping",
    "item_description",
)

# Mercari's form fills this in when the seller typed nothing; it carries no information about the item.
DESCRIPTION_PLACEHOLDER = "no description yet"

_TEXT_FIELDS: tuple[str, ...] = ("name", "brand_name", "category_name", "item_description")


def normalize_text(values: pd.Series) -> pd.Series:
    """Normalise free text so that letter case and whitespace cannot change a prediction.

    Args:
        values: Strings; None, NaN and non-string values are allowed.

    Returns:
        A string Series (same index) that is lower-cased, stripped and single-spaced; missing values become "".
    """
    text = values.astype(object).where(values.notna(), "").astype(str)
    return text.str.lower().str.split().str.join(" ").fillna("")


def normalize_listings(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean the raw listing fields into the columns the feature builders read.

    Args:
        frame: Raw listings with the columns in ``RAW_COLUMNS``; text may be None/NaN/empty and the two
            numeric columns may be missing values (they then count as unknown condition / buyer pays).

    Returns:
        A new DataFrame (same index) with columns ``name``, ``brand``, ``category``, ``category_top``,
        ``description``, ``condition`` (str) and ``shipping`` (str), all normalised strings.

    Raises:
        KeyError: if a raw column is missing.
    """
    missing = [column for column in RAW_COLUMNS if column not in frame.columns]
    if missing:
        raise KeyError(f"listing frame lacks columns {missing}")
    text = {field: normalize_text(frame[field]) for field in _TEXT_FIELDS}
    description = text["item_description"].where(text["item_description"] != DESCRIPTION_PLACEHOLDER, "")
    category = text["category_name"].str.replace(" / ", "/", regex=False)
    condition = pd.to_numeric(frame["item_condition_id"], errors="coerce")
    shipping = pd.to_numeric(frame["shipping"], errors="coerce")
    return pd.DataFrame(
        {
            "name": text["name"],
            "brand": text["brand_name"],
            "category": category,
            "category_top": category.str.split("/", n=1).str[0].fillna(""),
            "description": description,
            "condition": _code_to_str(condition),
            "shipping": _code_to_str(shipping),
        },
        index=frame.index,
    )


def _code_to_str(values: pd.Series) -> pd.Series:
    """Turn a small integer code into a categorical string, "" when unknown."""
    codes = values.to_numpy(dtype=np.float64, na_value=np.nan)
    labels = [str(int(code)) if np.isfinite(code) else "" for code in codes]
    return pd.Series(labels, index=values.index, dtype=object)

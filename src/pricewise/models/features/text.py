"""Raw listing fields (a frame, or columns by name) in, normalised text fields out (lower-case, single-spaced)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pricewise.columns import FEATURE_COLUMNS, TEXT_COLUMNS

# Mercari's form fills this in when the seller typed nothing; it carries no information about the item.
DESCRIPTION_PLACEHOLDER = "no description yet"

# Up to this many strings, ASCII text is lower-cased in Python rather than in Arrow (same result, see below).
_PYTHON_LOWER_MAX_VALUES = 64


# Listings as a DataFrame, or as columns (name -> one value per listing) when a DataFrame would cost more to
# build than the features of a single listing; both give the same features.
Listings: TypeAlias = pd.DataFrame | Mapping[str, Sequence[Any] | np.ndarray]


class ListingFields(NamedTuple):
    """Normalised listing fields as plain lists of strings, one entry per listing (see normalize_listings)."""

    name: list[str]
    brand: list[str]
    category: list[str]
    category_top: list[str]
    description: list[str]
    condition: list[str]
    shipping: list[str]


def text_values(values: pd.Series | Sequence[Any] | np.ndarray) -> list[str]:
    """The values as str, "" for missing ones: the same strings as ``values.where(notna, "").astype(str)``.

    Args:
        values: A Series, or a sequence or array of any values (taken as ``pd.Series(values)`` would).

    Returns:
        One str per value, in order.
    """
    out: list[str] = []
    for value in values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values:
        if type(value) is str:
            out.append(value)
        elif value is None or (type(value) is float and math.isnan(value)):
            out.append("")
        else:
            # Anything else (numbers, pd.NA, bytes...) takes pandas' own conversion, value for value alike.
            series = values if isinstance(values, pd.Series) else pd.Series(list(values))
            return series.astype(object).where(series.notna(), "").astype(str).tolist()  # type: ignore[no-any-return]
    return out


def _normalize_strings(values: list[str]) -> list[str]:
    """Lower-case (Unicode rules of Arrow's utf8_lower) and collapse whitespace (Python's str.split)."""
    if not values:
        return []
    # Arrow lower-cases differently from str.lower for a few characters (e.g. "İ"); it is what pandas' string
    # columns used when the models were first trained, so it stays the reference. On ASCII both map exactly
    # A-Z to a-z, and for the few strings of one request str.lower is much cheaper than a round trip to Arrow.
    lowered: list[str]
    if len(values) <= _PYTHON_LOWER_MAX_VALUES and all(value.isascii() for value in values):
        lowered = [value.lower() for value in values]
    else:
        lowered = pc.utf8_lower(pa.array(values, type=pa.large_string())).to_pylist()
    return [" ".join(value.split()) for value in lowered]


def normalize_text(values: pd.Series) -> pd.Series:
    """Normalise free text so that letter case and whitespace cannot change a prediction.

    Args:
        values: Strings; None, NaN and non-string values are allowed.

    Returns:
        A string Series (same index) that is lower-cased, stripped and single-spaced; missing values become "".
    """
    return pd.Series(_normalize_strings(text_values(values)), index=values.index, dtype=object)


def listing_fields(frame: Listings) -> ListingFields:
    """Clean the raw listing fields into the lists the feature builders read.

    Args:
        frame: Raw listings with the columns in ``FEATURE_COLUMNS`` (see normalize_listings); columns given as a
            mapping are read as ``pd.DataFrame(frame)`` would hold them.

    Returns:
        The normalised fields, in row order.

    Raises:
        KeyError: if a raw column is missing.
    """
    missing = [column for column in FEATURE_COLUMNS if column not in frame]
    if missing:
        raise KeyError(f"listing frame lacks columns {missing}")
    n_rows = n_listings(frame)
    # One Arrow call for all four text fields: the per-call overhead dominates for a single listing.
    joined = _normalize_strings([value for field in TEXT_COLUMNS for value in text_values(frame[field])])
    name, brand, category_raw, description_raw = (
        joined[index * n_rows : (index + 1) * n_rows] for index in range(len(TEXT_COLUMNS))
    )
    description = ["" if value == DESCRIPTION_PLACEHOLDER else value for value in description_raw]
    category = [value.replace(" / ", "/") for value in category_raw]
    return ListingFields(
        name=name,
        brand=brand,
        category=category,
        category_top=[value.split("/", 1)[0] for value in category],
        description=description,
        condition=_code_to_str(frame["item_condition_id"]),
        shipping=_code_to_str(frame["shipping"]),
    )


def normalize_listings(frame: Listings) -> pd.DataFrame:
    """Clean the raw listing fields into the columns the feature builders read.

    Args:
        frame: Raw listings with the columns in ``FEATURE_COLUMNS``; text may be None/NaN/empty and the two
            numeric columns may be missing values (they then count as unknown condition / buyer pays).

    Returns:
        A new DataFrame (same index; 0..n-1 for a mapping) with columns ``name``, ``brand``, ``category``, ``category_top``,
        ``description``, ``condition`` (str) and ``shipping`` (str), all normalised strings.

    Raises:
        KeyError: if a raw column is missing.
    """
    fields = listing_fields(frame)
    index = frame.index if isinstance(frame, pd.DataFrame) else pd.RangeIndex(n_listings(frame))
    return pd.DataFrame(
        {column: pd.Series(values, index=index, dtype=object) for column, values in fields._asdict().items()},
        index=index,
    )


def n_listings(frame: Listings) -> int:
    """Number of listings in a frame, or in columns given by name."""
    return len(frame) if isinstance(frame, pd.DataFrame) else len(frame[FEATURE_COLUMNS[0]])


def _code_to_str(values: pd.Series | Sequence[Any] | np.ndarray) -> list[str]:
    """Turn a small integer code into a categorical string, "" when unknown."""
    if isinstance(values, pd.Series | np.ndarray):
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":
            return [str(code) for code in values.tolist()]
    elif all(type(code) is int for code in values):
        return [str(code) for code in values]
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    codes = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return [str(int(code)) if np.isfinite(code) else "" for code in codes]

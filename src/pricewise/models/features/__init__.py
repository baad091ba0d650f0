"""Raw listing fields in, normalised text and sparse model features out.

The names below load on first use (PEP 562): `text` needs only pandas, `sparse` brings in scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pricewise.models.features.sparse import FeatureParams, HashedTfidf, SparseFeatureBuilder
    from pricewise.models.features.text import (
        DESCRIPTION_PLACEHOLDER,
        normalize_listings,
        normalize_text,
    )

_HOMES = {
    "DESCRIPTION_PLACEHOLDER": "text",
    "FeatureParams": "sparse",
    "HashedTfidf": "sparse",
    "SparseFeatureBuilder": "sparse",
    "normalize_listings": "text",
    "normalize_text": "text",
}

__all__ = [
    "DESCRIPTION_PLACEHOLDER",
    "FeatureParams",
    "HashedTfidf",
    "SparseFeatureBuilder",
    "normalize_listings",
    "normalize_text",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)

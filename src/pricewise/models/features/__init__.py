"""Raw listing fields in, normalised text and sparse model features out."""

from pricewise.models.features.sparse import FeatureParams, HashedTfidf, SparseFeatureBuilder
from pricewise.models.features.text import (
    DESCRIPTION_PLACEHOLDER,
    normalize_listings,
    normalize_text,
)

__all__ = [
    "DESCRIPTION_PLACEHOLDER",
    "FeatureParams",
    "HashedTfidf",
    "SparseFeatureBuilder",
    "normalize_listings",
    "normalize_text",
]

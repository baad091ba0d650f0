"""Raw listing fields in, normalised text and sparse model features out."""

from pricewise.features.sparse import FeatureParams, HashedTfidf, SparseFeatureBuilder
from pricewise.features.text import DESCRIPTION_PLACEHOLDER, RAW_COLUMNS, normalize_listings, normalize_text

__all__ = [
    "DESCRIPTION_PLACEHOLDER",
    "RAW_COLUMNS",
    "FeatureParams",
    "HashedTfidf",
    "SparseFeatureBuilder",
    "normalize_listings",
    "normalize_text",
]

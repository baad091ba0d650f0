"""Listings in Kaggle's layout in; the same listings as a Mercari-US-style export (the shape
configs/sources/mercari_us_export.yaml maps) out."""

from __future__ import annotations

import pandas as pd

CONDITION_WORDS = {"1": "New", "2": "Like new", "3": "Good", "4": "Fair", "5": "Poor"}


def as_export(frame: pd.DataFrame, *, priced: bool = True) -> pd.DataFrame:
    """The listings (text columns, Kaggle's names) as the export ships them, with a column no mapping reads.

    Ids get an "m" prefix, conditions are words, categories use " > ", shipping says who pays (mixed case and
    padding: words are matched trimmed, ignoring case) and prices are in cents.
    """
    id_column = "train_id" if "train_id" in frame else "test_id"
    export = pd.DataFrame(
        {
            "item_id": "m" + frame[id_column],
            "title": frame["name"],
            "condition": frame["item_condition_id"].map(CONDITION_WORDS),
            "category": frame["category_name"].str.replace("/", " > ", regex=False),
            "brand": frame["brand_name"],
            "shipping_paid_by": frame["shipping"].map({"1": " Seller", "0": "buyer"}),
            "description": frame["item_description"],
            "seller_id": "s-1",
        }
    )
    if priced:
        export.insert(2, "price_cents", [str(round(float(p) * 100)) for p in frame["price"]])
    return export

"""The listing's columns, declared once: the fields a seller describes, their roles, and Kaggle's file layouts.

Every module that names a listing column takes it from here: the readers, the warehouse schema checks, the row
rules, the model's input cleaning and signature, the serving schemas' field names and the monitoring queries.
"""

from __future__ import annotations

# The fields a seller fills in, in the order the model's signature lists them.
FEATURE_COLUMNS: tuple[str, ...] = (
    "name",
    "brand_name",
    "category_name",
    "item_condition_id",
    "shipping",
    "item_description",
)
# Fields a listing may leave empty; the model reads a missing one as "".
OPTIONAL_COLUMNS: tuple[str, ...] = ("brand_name", "category_name", "item_description")
# Free text, as opposed to the integer codes.
TEXT_COLUMNS: tuple[str, ...] = ("name", "brand_name", "category_name", "item_description")
CODE_COLUMNS: tuple[str, ...] = ("item_condition_id", "shipping")
PRICE_COLUMN = "price"

# Kaggle's train.tsv and test.tsv, column for column.
PRICED_COLUMNS: tuple[str, ...] = (
    "train_id",
    "name",
    "item_condition_id",
    "category_name",
    "brand_name",
    "price",
    "shipping",
    "item_description",
)
UNPRICED_COLUMNS: tuple[str, ...] = tuple(
    "test_id" if c == "train_id" else c for c in PRICED_COLUMNS if c != PRICE_COLUMN
)
ID_COLUMNS: tuple[str, ...] = ("train_id", "test_id", "id")
# The feature columns in the files' order (the raw tables keep it).
FIELD_COLUMNS: tuple[str, ...] = tuple(c for c in UNPRICED_COLUMNS if c != "test_id")

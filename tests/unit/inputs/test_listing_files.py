"""Header classification: priced vs unpriced tables and clear messages for wrong columns."""

from __future__ import annotations

import pytest

from pricewise.columns import PRICED_COLUMNS, UNPRICED_COLUMNS
from pricewise.errors import InputFileError
from pricewise.inputs.listing_files import classify_columns


def test_kaggle_headers_are_recognised() -> None:
    assert classify_columns(PRICED_COLUMNS, "train.tsv") == ("priced", "train_id")
    assert classify_columns(UNPRICED_COLUMNS, "test.tsv") == ("unpriced", "test_id")
    reordered = tuple(reversed(PRICED_COLUMNS))
    assert classify_columns(reordered, "x.csv") == ("priced", "train_id")


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        (PRICED_COLUMNS[1:], "missing column(s) train_id or test_id"),
        ((*UNPRICED_COLUMNS[:-2], "item_description"), "missing column(s) shipping"),
        ((*PRICED_COLUMNS, "seller"), "unexpected column(s) seller"),
        ((*PRICED_COLUMNS, "test_id"), "unexpected column(s) test_id"),
        ((*PRICED_COLUMNS, "name"), "duplicated column(s) name"),
        (("train_id|name|price",), "is the delimiter right?"),
    ],
)
def test_wrong_headers_name_the_problem(columns: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(InputFileError, match=r"^f\.tsv: ") as info:
        classify_columns(columns, "f.tsv")
    assert fragment in str(info.value)

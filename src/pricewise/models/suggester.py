"""A fitted price model and its calibrated ranges in; the MLflow pyfunc that serving and batch scoring load out.

The pyfunc takes raw listing fields only (name, brand_name, category_name, item_condition_id, shipping,
item_description) and returns price, low and high, so no preprocessing can differ between training and serving.
It also carries the serving reference built at train time (category list, comparables index), so what serving
shows beside a price comes from the model it loaded, not from a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from pricewise.columns import CODE_COLUMNS, FEATURE_COLUMNS, OPTIONAL_COLUMNS
from pricewise.models.features.text import Listings, text_values

if TYPE_CHECKING:  # reference.py imports this module (comparables clean their input with clean_input)
    from pricewise.models.reference import ServingReference

MIN_PRICE = 1.0
# The item conditions, from best to worst (1 = new ... 5 = poor): a listing's price never rises along them.
CONDITIONS: tuple[int, ...] = (1, 2, 3, 4, 5)


class LogPriceModel(Protocol):
    """Anything that maps raw listing fields (a frame, or columns by name) to log1p(price)."""

    def predict(self, frame: Listings) -> np.ndarray: ...


class PriceRanges(Protocol):
    """Calibrated low/high prices around a predicted log price."""

    coverage: float

    def interval(self, log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class ConditionPriceModel(Protocol):
    """A price model that prices listings in every condition at once more cheaply than one call per condition."""

    def predict_conditions(self, frame: Listings) -> np.ndarray: ...


def non_increasing(values: np.ndarray) -> np.ndarray:
    """The least-squares non-increasing sequence of each row (isotonic regression, as pool-adjacent-violators).

    Value j of a row is the minimum over i <= j of the maximum over k >= j of the mean of values i..k, computed
    for all rows at once. Rows that never increase already come back unchanged, bit for bit.

    Args:
        values: float array of shape (n, m), one sequence per row.

    Returns:
        float64 array of the same shape whose rows never increase from left to right.
    """
    values = np.asarray(values, dtype=np.float64)
    ordered = np.all(values[:, 1:] <= values[:, :-1], axis=1)
    if ordered.all():
        return values
    out = values.copy()
    out[~ordered] = _isotonic(values[~ordered])
    return out


def _isotonic(values: np.ndarray) -> np.ndarray:
    """`non_increasing` of every row, by the min-max formula (for rows that do increase somewhere)."""
    width = values.shape[1]
    sums = np.concatenate((np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)), axis=1)
    first, last = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    # means[:, i, k] is the mean of values i..k; -inf where k < i, so that it never wins a maximum.
    means = (sums[:, None, 1:] - sums[:, :-1, None]) / np.maximum(last - first + 1, 1)
    means[:, last < first] = -np.inf
    # The maximum over k >= j, then the minimum over i <= j (+inf for i > j).
    tail_max = np.maximum.accumulate(means[:, :, ::-1], axis=2)[:, :, ::-1]
    tail_max[:, first > last] = np.inf
    return np.asarray(tail_max.min(axis=1), dtype=np.float64)


def clean_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce raw listing fields to the types the models expect.

    Args:
        frame: Listings with name, item_condition_id and shipping; brand_name, category_name and
            item_description may be absent. Extra columns are ignored.

    Returns:
        A new frame with exactly the feature columns: text as str ("" when missing), condition and shipping as int.

    Raises:
        ValueError: Required columns are missing (all of them are named).
    """
    return pd.DataFrame(_clean_frame_columns(frame))


def _clean_frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    _require(set(frame.columns))
    columns = {column: frame[column] for column in FEATURE_COLUMNS if column in frame.columns}
    return _clean_columns(columns, len(frame))


def clean_records(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``clean_input(pd.DataFrame(records))``, without building the raw frame.

    Args:
        records: One mapping of raw listing fields per listing; a key absent from a record is a missing value.

    Returns:
        The same frame as clean_input.

    Raises:
        ValueError: Required columns are absent from every record (all of them are named).
    """
    return pd.DataFrame(_clean_record_columns(records))


def _clean_record_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    present = {key for record in records for key in record}
    _require(present)
    columns = {
        column: [record.get(column) for record in records] for column in FEATURE_COLUMNS if column in present
    }
    return _clean_columns(columns, len(records))


def _require(present: set[Any]) -> None:
    missing = [c for c in FEATURE_COLUMNS if c not in present and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")


def _clean_columns(columns: Mapping[str, pd.Series | list[Any]], n_rows: int) -> dict[str, np.ndarray]:
    clean: dict[str, np.ndarray] = {}
    for column in FEATURE_COLUMNS:
        if column in CODE_COLUMNS:
            clean[column] = _codes(columns[column])  # required: present, see _require
        elif column in columns:
            clean[column] = np.array(text_values(columns[column]), dtype=object)
        else:
            clean[column] = np.full(n_rows, "", dtype=object)
    return clean


def _codes(values: pd.Series | list[Any]) -> np.ndarray:
    """Integer codes as int64, 0 when missing or not a number."""
    if isinstance(values, pd.Series):
        if values.dtype == np.int64:
            return np.asarray(values.to_numpy(), dtype=np.int64)
    elif all(type(value) is int for value in values):
        return np.array(values, dtype=np.int64)
    else:
        values = pd.Series(values)
    return np.asarray(
        pd.to_numeric(values, errors="coerce").fillna(0).astype("int64").to_numpy(), dtype=np.int64
    )


class PriceSuggester(PythonModel):
    """The logged model: cleaning, the price model and its ranges, behind MLflow's pyfunc interface."""

    # A class default, so a model pickled before the reference travelled with it unpickles with None.
    reference: ServingReference | None = None

    def __init__(
        self,
        model: LogPriceModel,
        ranges: PriceRanges,
        kind: str,
        reference: ServingReference | None = None,
    ) -> None:
        """Package a fitted price model.

        Args:
            model: Raw listing fields to log1p(price).
            ranges: Calibrated ranges around the model's log price.
            kind: The model's class name, as tracked in MLflow.
            reference: The category list and comparables index serving shows beside a price.
        """
        self.model = model
        self.ranges = ranges
        self.kind = kind
        self.reference = reference

    def with_reference(self, reference: ServingReference) -> PriceSuggester:
        """The same model and ranges carrying a serving reference (prices are unchanged)."""
        return PriceSuggester(self.model, self.ranges, self.kind, reference)

    def _prices(self, clean: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.prices_at(self._log_prices(clean))

    def prices_at(self, log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Price, low and high in dollars (cents rounded) for given log1p prices, with the calibrated ranges."""
        low, high = self.ranges.interval(log_price)
        price = np.maximum(np.expm1(log_price), MIN_PRICE)
        return (
            np.round(price, 2),
            np.round(np.minimum(np.maximum(low, MIN_PRICE), price), 2),
            np.round(np.maximum(high, price), 2),
        )

    def _log_prices(self, clean: Mapping[str, np.ndarray]) -> np.ndarray:
        """Each listing's log price, from its prices in every condition made non-increasing from new to poor.

        The model prices each listing in all five conditions (in one call); `non_increasing` projects those
        five onto an order a seller expects, and the listing gets the value of its own condition. A listing's
        price depends on that listing alone, never on the other rows of its batch. Listings with a condition
        outside 1..5 are priced as they are.
        """
        # The model gets the cleaned columns, not a frame of them: for one listing, building and reading back a
        # DataFrame costs more than computing its features.
        condition = clean["item_condition_id"]
        n_rows = condition.size
        if isinstance(self.model, ConditionPriceModel):
            by_condition = np.asarray(self.model.predict_conditions(clean), dtype=float)
        else:
            variants = {column: np.tile(values, len(CONDITIONS)) for column, values in clean.items()}
            variants["item_condition_id"] = np.repeat(np.array(CONDITIONS, dtype=np.int64), n_rows)
            predicted = np.asarray(self.model.predict(variants), dtype=float)
            by_condition = predicted.reshape(len(CONDITIONS), n_rows).T
        ordered = non_increasing(by_condition)
        known = (condition >= CONDITIONS[0]) & (condition <= CONDITIONS[-1])
        log_price = np.empty(n_rows, dtype=float)
        log_price[known] = ordered[known, condition[known] - CONDITIONS[0]]
        if not known.all():
            unknown = {column: values[~known] for column, values in clean.items()}
            log_price[~known] = np.asarray(self.model.predict(unknown), dtype=float)
        return log_price

    def suggest(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Price, low and high for each listing (same order as the input)."""
        price, low, high = self._prices(_clean_frame_columns(frame))
        return pd.DataFrame({"price": price, "low": low, "high": high})

    def suggest_records(self, records: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, float]]:
        """The suggestions of ``suggest(pd.DataFrame(records))`` as (price, low, high) tuples, without the frames.

        Args:
            records: One mapping of raw listing fields per listing (see clean_records).

        Returns:
            (price, low, high) per record, in order.
        """
        price, low, high = self._prices(_clean_record_columns(records))
        return list(zip(price.tolist(), low.tolist(), high.tolist(), strict=True))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """MLflow's entry point; see suggest."""
        return self.suggest(model_input)


def signature() -> ModelSignature:
    """Input: the raw listing fields (brand, category and description optional); output: price, low, high."""
    inputs = Schema(
        [
            ColSpec("string", "name"),
            ColSpec("string", "brand_name", required=False),
            ColSpec("string", "category_name", required=False),
            ColSpec("long", "item_condition_id"),
            ColSpec("long", "shipping"),
            ColSpec("string", "item_description", required=False),
        ]
    )
    outputs = Schema([ColSpec("double", "price"), ColSpec("double", "low"), ColSpec("double", "high")])
    return ModelSignature(inputs=inputs, outputs=outputs)

"""A fitted price model and its calibrated ranges in; the MLflow pyfunc that serving and batch scoring load out.

The pyfunc takes raw listing fields only (name, brand_name, category_name, item_condition_id, shipping,
item_description) and returns price, low and high, so no preprocessing can differ between training and serving.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from pricewise.dataset import FEATURE_COLUMNS

MIN_PRICE = 1.0
TEXT_COLUMNS = ("name", "brand_name", "category_name", "item_description")
OPTIONAL_COLUMNS = ("brand_name", "category_name", "item_description")


class LogPriceModel(Protocol):
    """Anything that maps a frame of raw listing fields to log1p(price)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...


class PriceRanges(Protocol):
    """Calibrated low/high prices around a predicted log price."""

    coverage: float

    def interval(self, log_price: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    out = pd.DataFrame(index=range(len(frame)))
    for column in TEXT_COLUMNS:
        values = frame[column] if column in frame.columns else pd.Series([""] * len(frame))
        out[column] = values.fillna("").astype(str).to_numpy()
    for column in ("item_condition_id", "shipping"):
        out[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype("int64").to_numpy()
    return out[list(FEATURE_COLUMNS)]


class PriceSuggester(PythonModel):
    """The logged model: cleaning, the price model and its ranges, behind MLflow's pyfunc interface."""

    def __init__(self, model: LogPriceModel, ranges: PriceRanges, kind: str) -> None:
        self.model = model
        self.ranges = ranges
        self.kind = kind

    def suggest(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Price, low and high for each listing (same order as the input)."""
        clean = clean_input(frame)
        log_price = np.asarray(self.model.predict(clean), dtype=float)
        low, high = self.ranges.interval(log_price)
        price = np.maximum(np.expm1(log_price), MIN_PRICE)
        return pd.DataFrame(
            {
                "price": np.round(price, 2),
                "low": np.round(np.minimum(np.maximum(low, MIN_PRICE), price), 2),
                "high": np.round(np.maximum(high, price), 2),
            }
        )

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

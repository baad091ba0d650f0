"""Listings with the champion's suggestions in; an estimate of their RMSLE before any sold price arrives out.

Direct loss estimation (the design of NannyML's DLE): a second model learns the champion's squared log error
from what is known at suggestion time (the suggested price, the width of its range, and embedding-free summaries
of the listing), fitted on held-out rows whose sold prices are known. On a window without sold prices, the
window's RMSLE is estimated as the root of the mean predicted squared error. The interval is the sampling error
of a mean of squared errors over that many rows (the spread measured on the held-out rows), at about 95%.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

FEATURES = (
    "log_price",
    "log_range_width",
    "item_condition_id",
    "shipping",
    "name_chars",
    "name_words",
    "log_description_chars",
    "no_brand",
    "no_category",
    "top_category",
)
Z_95 = 1.96
ARTIFACT = "loss_model.json"  # in the MLflow run of the model it describes
MIN_FIT_ROWS = 50


@dataclass(frozen=True)
class RmsleEstimate:
    """The estimated RMSLE of a window's suggestions, with an interval and the rows it was taken over."""

    rmsle: float
    low: float
    high: float
    rows: int


def features(listings: pd.DataFrame, price: np.ndarray, low: np.ndarray, high: np.ndarray) -> pd.DataFrame:
    """What the loss model reads about each suggestion, all known before the item sells.

    Args:
        listings: Raw listing fields (name, brand_name, category_name, item_condition_id, shipping, and
            item_description or, as the prediction log gives it, its length description_chars); missing values
            are allowed.
        price: The suggested prices.
        low: The suggested ranges' lower ends.
        high: The suggested ranges' upper ends.

    Returns:
        One row per listing with the columns in `FEATURES` (top_category as a pandas category).
    """
    text = {
        c: listings[c].fillna("").astype(str).str.strip() for c in ("name", "brand_name", "category_name")
    }
    if "item_description" in listings:
        description_chars = listings["item_description"].fillna("").astype(str).str.len().to_numpy(float)
    else:
        description_chars = (
            pd.to_numeric(listings["description_chars"], errors="coerce").fillna(0).to_numpy(float)
        )
    frame = pd.DataFrame(
        {
            "log_price": np.log1p(np.asarray(price, float)),
            "log_range_width": np.log1p(np.asarray(high, float)) - np.log1p(np.asarray(low, float)),
            "item_condition_id": pd.to_numeric(listings["item_condition_id"], errors="coerce").to_numpy(
                float
            ),
            "shipping": pd.to_numeric(listings["shipping"], errors="coerce").to_numpy(float),
            "name_chars": text["name"].str.len().to_numpy(float),
            "name_words": text["name"].str.split().str.len().fillna(0).to_numpy(float),
            "log_description_chars": np.log1p(description_chars),
            "no_brand": (text["brand_name"] == "").to_numpy(float),
            "no_category": (text["category_name"] == "").to_numpy(float),
            "top_category": text["category_name"].str.split("/").str[0].to_numpy(),
        }
    )
    frame["top_category"] = frame["top_category"].astype("category")
    return frame


@dataclass(frozen=True)
class LossModel:
    """A fitted model of the champion's squared log error, and what it needs to judge a window."""

    booster: lgb.Booster
    categories: tuple[str, ...]  # top-level categories seen when fitting, in code order
    reference_rmsle: float  # realized RMSLE on the rows it was fitted on
    reference_sd: float  # standard deviation of their squared log errors
    reference_rows: int

    def _frame(
        self, listings: pd.DataFrame, price: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> pd.DataFrame:
        frame = features(listings, price, low, high)
        frame["top_category"] = pd.Categorical(
            frame["top_category"].astype(str), categories=list(self.categories)
        )
        return frame

    def squared_errors(
        self, listings: pd.DataFrame, price: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> np.ndarray:
        """The predicted squared log error of each suggestion (never negative)."""
        if listings.empty:
            return np.zeros(0)
        predicted = np.asarray(self.booster.predict(self._frame(listings, price, low, high)), float)
        return np.asarray(np.clip(predicted, 0.0, None), dtype=float)

    def estimate(
        self, listings: pd.DataFrame, price: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> RmsleEstimate | None:
        """The window's estimated RMSLE with a ~95% interval; None for an empty window."""
        errors = self.squared_errors(listings, price, low, high)
        if errors.size == 0:
            return None
        mean = float(errors.mean())
        half = Z_95 * self.reference_sd / math.sqrt(errors.size)
        return RmsleEstimate(
            rmsle=math.sqrt(mean),
            low=math.sqrt(max(mean - half, 0.0)),
            high=math.sqrt(mean + half),
            rows=int(errors.size),
        )

    def to_json(self) -> str:
        """The model as JSON text (LightGBM's own text format inside), for an MLflow run artifact."""
        return json.dumps(
            {
                "booster": self.booster.model_to_string(),
                "categories": list(self.categories),
                "reference_rmsle": self.reference_rmsle,
                "reference_sd": self.reference_sd,
                "reference_rows": self.reference_rows,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LossModel:
        """Read back what `to_json` wrote.

        Raises:
            ValueError: The text is not a loss model.
        """
        try:
            data = json.loads(text)
            return cls(
                booster=lgb.Booster(model_str=data["booster"]),
                categories=tuple(str(c) for c in data["categories"]),
                reference_rmsle=float(data["reference_rmsle"]),
                reference_sd=float(data["reference_sd"]),
                reference_rows=int(data["reference_rows"]),
            )
        except (KeyError, TypeError, AttributeError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ValueError(f"not a loss model: {exc}") from exc


def fit(
    listings: pd.DataFrame,
    price: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    sold_price: np.ndarray,
    seed: int = 0,
) -> LossModel:
    """Fit the loss model on held-out rows the champion did not train on.

    Args:
        listings: The rows' raw listing fields.
        price: The champion's suggested prices for them.
        low: Lower ends of the suggested ranges.
        high: Upper ends of the suggested ranges.
        sold_price: What they sold for.
        seed: LightGBM's seed.

    Returns:
        The fitted model.

    Raises:
        ValueError: Fewer than 50 rows, or arrays of different lengths.
    """
    sold = np.asarray(sold_price, float)
    if len(listings) < MIN_FIT_ROWS:
        raise ValueError(f"the loss model needs at least {MIN_FIT_ROWS} held-out rows, got {len(listings)}")
    if not len(listings) == len(price) == len(low) == len(high) == len(sold):
        raise ValueError("listings, suggestions and sold prices must have the same length")
    squared = (np.log1p(np.asarray(price, float)) - np.log1p(sold)) ** 2
    frame = features(listings, price, low, high)
    categories = tuple(sorted(str(c) for c in frame["top_category"].cat.categories))
    frame["top_category"] = pd.Categorical(frame["top_category"].astype(str), categories=list(categories))
    # Squared errors are heavy-tailed and noisy per row: shallow trees with large leaves estimate their mean.
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 8,
        "min_data_in_leaf": max(20, len(frame) // 40),
        "lambda_l2": 10.0,
        "feature_fraction": 0.9,
        "verbosity": -1,
        "seed": seed,
        "num_threads": 1,
    }
    booster = lgb.train(params, lgb.Dataset(frame, label=squared, categorical_feature=["top_category"]), 150)
    return LossModel(
        booster=booster,
        categories=categories,
        reference_rmsle=float(math.sqrt(squared.mean())),
        reference_sd=float(squared.std(ddof=1)),
        reference_rows=len(frame),
    )

"""Listings from two sides in; their compared descriptors and Evidently's per-column drift verdicts out.

Compared columns: condition, shipping, top-level category, brand presence, and text descriptors computed here
(name length in characters and words, description length, and the share of the name's words that are in the
reference vocabulary); the suggested log price; and log1p of the sold (or training) price. Evidently decides drift
per column (its defaults pick the test by column type and size).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset

CATEGORICAL = ("item_condition_id", "shipping", "category_top", "has_brand")
NUMERICAL = ("name_chars", "name_words", "description_chars", "vocabulary_share")
INPUT_COLUMNS = CATEGORICAL + NUMERICAL
PREDICTION = "predicted_log_price"
TARGET = "log_price"
WORD = r"\w+"


@dataclass(frozen=True)
class DriftReport:
    """Evidently's run on two described sides: the snapshot (saved as HTML) and its JSON."""

    snapshot: Any
    json: dict[str, Any]

    def drifted(self) -> dict[str, bool]:
        """Per compared column, whether Evidently's drift test failed."""
        return drifted_columns(self.json)


def vocabulary(names: pd.Series, min_count: int) -> set[str]:
    """Lower-cased words found in at least `min_count` of the names."""
    words = names.fillna("").astype(str).str.lower().str.findall(WORD).map(set).explode().dropna()
    counts = words.value_counts()
    return set(counts[counts >= min_count].index.astype(str))


def describe(frame: pd.DataFrame, known_words: set[str]) -> pd.DataFrame:
    """The compared input columns of listings: tabular fields and text descriptors.

    Args:
        frame: Listings with name, brand_name, category_name, item_condition_id, shipping and either
            item_description or description_chars.
        known_words: The reference vocabulary.
    """
    name = frame["name"].fillna("").astype(str)
    words = name.str.lower().str.findall(WORD)
    exploded = words.explode()
    in_vocabulary = exploded.isin(known_words) & exploded.notna()
    word_count = words.str.len().astype(float)
    known = in_vocabulary.groupby(level=0).sum().reindex(frame.index, fill_value=0).astype(float)
    if "description_chars" in frame:
        description_chars = pd.to_numeric(frame["description_chars"], errors="coerce").fillna(0)
    else:
        description_chars = frame["item_description"].fillna("").astype(str).str.len()
    category = frame["category_name"].fillna("").astype(str)
    brand = frame["brand_name"].fillna("").astype(str).str.strip()
    return pd.DataFrame(
        {
            "item_condition_id": frame["item_condition_id"].astype("Int64").astype(str),
            "shipping": frame["shipping"].astype("Int64").astype(str),
            "category_top": category.str.split("/", n=1).str[0].replace("", "(none)"),
            "has_brand": np.where(brand != "", "yes", "no"),
            "name_chars": name.str.len().astype(float),
            "name_words": word_count,
            "description_chars": description_chars.astype(float),
            "vocabulary_share": (known / word_count.where(word_count > 0)).fillna(0.0),
        },
        index=frame.index,
    )


def evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, with_prediction: bool, with_target: bool
) -> DriftReport:
    """Run Evidently on the described sides; nothing is saved yet.

    Args:
        reference: Described reference rows (and PREDICTION / TARGET when compared).
        current: Described window rows, the same columns.
        with_prediction: Compare the suggested log price too.
        with_target: Compare the log sold price too.
    """
    numerical = list(NUMERICAL)
    metrics_: list[Any] = [DataDriftPreset(columns=list(INPUT_COLUMNS))]
    if with_prediction:
        numerical.append(PREDICTION)
        metrics_.append(ValueDrift(column=PREDICTION))
    if with_target:
        numerical.append(TARGET)
        metrics_.append(ValueDrift(column=TARGET))
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=list(CATEGORICAL))
    keep = list(INPUT_COLUMNS) + numerical[len(NUMERICAL) :]
    snapshot = Report(metrics_, include_tests=True).run(
        Dataset.from_pandas(current[keep], data_definition=definition),
        Dataset.from_pandas(reference[keep], data_definition=definition),
    )
    return DriftReport(snapshot, json.loads(snapshot.json()))


def drifted_columns(report: dict[str, Any]) -> dict[str, bool]:
    """Per compared column, whether Evidently's drift test failed (from the report's JSON)."""
    out: dict[str, bool] = {}
    for test in report.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift") and "column" in params:
            out[str(params["column"])] = str(test.get("status")) == "FAIL"
    return out

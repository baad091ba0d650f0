"""What pricing every listing in all five conditions costs and changes: latency, throughput, order, RMSLE.

The suggester prices each listing in conditions 1..5 and makes those prices non-increasing before it takes the
listing's own; "before" is the former pricing (the model's prediction in the listing's own condition alone),
copied into this script. Figures, on a model trained with the shipped config:

- single: latency of `suggest_records` for one listing (each call a listing whose texts the encoder has not
  seen, so the sentence encoder runs as for a new listing; before and after calls interleaved);
- batch: rows per second of `suggest` on 2,000 listings (texts also new to the encoder);
- order: of the first 200 test-split listings, how many are priced higher in some worse condition;
- RMSLE of those 200 listings and of the whole test split.

    python benchmarks/bench_condition_order.py                       # trains the shipped config (~4 min)
    python benchmarks/bench_condition_order.py --data-dir DIR        # a data directory with a trained model
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from pricewise.models.suggester import (
    MIN_PRICE,
    PriceSuggester,
    _clean_frame_columns,
    _clean_record_columns,
)
from pricewise.settings import Settings
from pricewise.store.registry import load_suggester
from pricewise.store.training_data import load

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pricewise.yaml"
SAMPLES = REPO.parent / "shared" / "data" / "mercari"
TRAIN = SAMPLES / "mercari_train_8k.tsv.gz"
UNPRICED = SAMPLES / "mercari_test_head2k_unpriced.tsv.gz"
PRICEWISE = Path(sys.executable).parent / "pricewise"


def old_prices(suggester: PriceSuggester, clean: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """The suggester's pricing before every condition was priced: the model in the listing's own condition."""
    return suggester.prices_at(np.asarray(suggester.model.predict(clean), dtype=float))


def old_suggest_records(
    suggester: PriceSuggester, records: Sequence[Mapping[str, Any]]
) -> list[tuple[float, float, float]]:
    price, low, high = old_prices(suggester, _clean_record_columns(records))
    return list(zip(price.tolist(), low.tolist(), high.tolist(), strict=True))


def old_suggest(suggester: PriceSuggester, frame: pd.DataFrame) -> pd.DataFrame:
    price, low, high = old_prices(suggester, _clean_frame_columns(frame))
    return pd.DataFrame({"price": price, "low": low, "high": high})


def fresh(frame: pd.DataFrame, tag: str) -> pd.DataFrame:
    """The listings with a word added to each description, so the encoder's cache has none of their texts."""
    words = [f"{tag}x{index}" for index in range(len(frame))]
    description = frame["item_description"].fillna("").astype(str)
    return frame.assign(item_description=[f"{d} {w}" for d, w in zip(description, words, strict=True)])


def by_condition(suggest: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [suggest(frame.assign(item_condition_id=c))["price"].to_numpy(dtype=float) for c in range(1, 6)]
    )


def rmsle(price: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log1p(price) - np.log1p(actual)) ** 2)))


def train(work: Path) -> Path:
    env = {**os.environ, "PRICEWISE_DATA_DIR": str(work / "data"), "PRICEWISE_CONFIG_PATH": str(CONFIG)}
    for args in (("ingest", str(TRAIN)), ("validate",), ("train",)):
        started = time.perf_counter()
        subprocess.run([str(PRICEWISE), *args], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"pricewise {args[0]}: {time.perf_counter() - started:.1f} s")
    return work / "data"


def bench(data_dir: Path, single_calls: int, batch_rows: int) -> None:
    settings = Settings(data_dir=data_dir, config_path=CONFIG)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    suggester = load_suggester("models:/pricewise/1")
    print(f"model: {suggester.kind}, components {getattr(suggester.model, 'component_weights', {})}")
    test = load(settings).test
    frame, actual = test.frame.reset_index(drop=True), np.asarray(test.price, dtype=float)

    # Warm up: weights of the encoder loaded, lookup tables built.
    suggester.suggest(frame.head(8))
    old_suggest(suggester, frame.head(8))

    listings = fresh(frame.head(single_calls), "single").to_dict("records")
    times: dict[str, list[float]] = {"before": [], "after": []}
    calls = {"before": lambda r: old_suggest_records(suggester, r), "after": suggester.suggest_records}
    for index, record in enumerate(listings):
        # Interleaved, and each side with its own new texts: neither finds the other's embeddings cached.
        for side in ("before", "after") if index % 2 == 0 else ("after", "before"):
            one = {**record, "item_description": f"{record['item_description']} {side}"}
            started = time.perf_counter()
            calls[side]([one])
            times[side].append(time.perf_counter() - started)
    for side, values in times.items():
        ms = np.array(values) * 1e3
        print(
            f"single suggest_records, {side}: median {np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms"
            f" over {ms.size} listings"
        )

    unpriced = pd.read_csv(UNPRICED, sep="\t").head(batch_rows)
    sides: tuple[tuple[str, Callable[[pd.DataFrame], pd.DataFrame]], ...] = (
        ("before", lambda f: old_suggest(suggester, f)),
        ("after", suggester.suggest),
    )
    for side, suggest in sides:
        rows = fresh(unpriced, f"batch{side}")
        started = time.perf_counter()
        suggest(rows)
        seconds = time.perf_counter() - started
        print(f"suggest on {len(rows)} rows, {side}: {seconds:.2f} s, {len(rows) / seconds:.0f} rows/s")

    held = frame.head(200)
    for side, suggest in sides:
        prices = by_condition(suggest, held)
        rises = np.diff(prices, axis=1) > 0
        print(f"out of condition order, {side}: {int(rises.any(axis=1).sum())} of {len(held)} listings")
    for label, rows in (("200 held-out", slice(0, 200)), (f"test split ({len(frame)})", slice(None))):
        part, truth = frame.iloc[rows], actual[rows]
        before = old_suggest(suggester, part)["price"].to_numpy()
        after = suggester.suggest(part)["price"].to_numpy()
        print(f"RMSLE {label}: before {rmsle(before, truth):.5f}, after {rmsle(after, truth):.5f}")
    # The cheaper projection (mean of the forward running minimum and the backward running maximum), for
    # comparison with the isotonic one the suggester uses.
    if hasattr(suggester.model, "predict_conditions"):
        clean = _clean_frame_columns(frame)
        log_prices = np.asarray(suggester.model.predict_conditions(clean))
        cheap = 0.5 * (
            np.minimum.accumulate(log_prices, axis=1)
            + np.maximum.accumulate(log_prices[:, ::-1], axis=1)[:, ::-1]
        )
        own = clean["item_condition_id"] - 1
        price = np.round(np.maximum(np.expm1(cheap[np.arange(len(frame)), own]), MIN_PRICE), 2)
        print(f"RMSLE test split ({len(frame)}), running min/max mean instead: {rmsle(price, actual):.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, help="a data directory with model pricewise v1 trained")
    parser.add_argument("--single-calls", type=int, default=100)
    parser.add_argument("--batch-rows", type=int, default=2000)
    args = parser.parse_args()
    if args.data_dir is not None:
        bench(args.data_dir, args.single_calls, args.batch_rows)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-condition-order-"))
    try:
        bench(train(work), args.single_calls, args.batch_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

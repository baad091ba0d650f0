"""Mercari sample in, printed test RMSLE / range coverage / fit time / peak memory of each model out."""

from __future__ import annotations

import argparse
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import psutil
from sklearn.linear_model import Ridge

from pricewise.columns import FEATURE_COLUMNS
from pricewise.config import load_config
from pricewise.models import (
    ConformalPriceRanges,
    RulesBaseline,
    SparseTextEnsemble,
    SparseTextEnsembleParams,
)
from pricewise.models.features import SparseFeatureBuilder
from pricewise.models.hyperparams import main_model_params
from pricewise.models.ranges import coverage_and_width

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
T = TypeVar("T")


def split_of(train_id: int) -> str:
    """The project's deterministic split of a listing."""
    u = int(hashlib.md5(f"train-{train_id}".encode()).hexdigest()[:8], 16) / 2**32
    return "train" if u < 0.8 else "valid" if u < 0.9 else "test"


class PeakRss:
    """Samples this process's resident memory in a thread; reports the peak above the starting level."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def measured(action: Callable[[], T]) -> tuple[T, float, PeakRss]:
    """Run an action, returning its result, wall seconds and memory sampler."""
    with PeakRss() as memory:
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
    return result, seconds, memory


def rmsle(predicted_log: np.ndarray, true_log: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted_log - true_log) ** 2)))


def perturb(frame: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """Resample listings to n_rows and perturb text (drop one word, add a random number) so rows differ."""
    rng = np.random.default_rng(seed)
    sample = frame.iloc[rng.integers(0, len(frame), n_rows)].reset_index(drop=True).copy()
    for column in ("name", "item_description"):
        words = sample[column].fillna("").astype(str).str.split()
        drops = rng.integers(0, 8, n_rows)
        extra = rng.integers(0, 10_000, n_rows)
        sample[column] = [
            " ".join([w for i, w in enumerate(ws) if i != d] + [f"x{e}"])
            for ws, d, e in zip(words, drops, extra, strict=True)
        ]
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coverage", type=float, default=0.8)
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "configs" / "pricewise.yaml",
        help="the main model is train.params of this config (the shipped one by default)",
    )
    parser.add_argument("--n-mlp", type=int, help="override n_mlp")
    parser.add_argument("--n-binary-mlp", type=int, help="override n_binary_mlp")
    parser.add_argument("--lgbm-rounds", type=int, help="override lgbm_rounds")
    parser.add_argument(
        "--embedding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override embedding.enabled (the kernel ridge on sentence embeddings and TF-IDF)",
    )
    parser.add_argument(
        "--scale-rows", type=int, default=0, help="also time fit/predict on the sample resampled to this size"
    )
    args = parser.parse_args()

    raw = pd.read_csv(args.data, sep="\t")
    raw = raw[raw["price"] > 0].reset_index(drop=True)
    splits = raw["train_id"].map(split_of)
    parts = {name: raw[splits == name].reset_index(drop=True) for name in ("train", "valid", "test")}
    frames = {name: part[list(FEATURE_COLUMNS)] for name, part in parts.items()}
    target = {name: np.log1p(part["price"].to_numpy(dtype=np.float64)) for name, part in parts.items()}
    print(f"data {args.data}: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))

    rows: list[tuple[str, float, float, float, float, float]] = []

    # As in `pricewise train`: a model that learns from valid rows (early stopping, blend weights) gets the even
    # ones, and its ranges are calibrated on the odd ones; the other models calibrate on all of valid.
    every = np.arange(len(parts["valid"]))
    early_stop, calibration = every[0::2], every[1::2]

    def report(
        name: str,
        valid_pred: np.ndarray,
        test_pred: np.ndarray,
        seconds: float,
        peak: float,
        rows_used: np.ndarray = every,
    ) -> None:
        ranges = ConformalPriceRanges(args.coverage).calibrate(
            valid_pred[rows_used], target["valid"][rows_used]
        )
        cover, width = coverage_and_width(*ranges.interval(test_pred), parts["test"]["price"].to_numpy())
        rows.append((name, rmsle(test_pred, target["test"]), cover, width, seconds, peak))

    baseline, seconds, memory = measured(
        lambda: RulesBaseline(min_group_size=5).fit(frames["train"], target["train"])
    )
    report(
        "rules baseline",
        baseline.predict(frames["valid"]),
        baseline.predict(frames["test"]),
        seconds,
        memory.extra_mb,
    )

    def ridge_alone() -> tuple[SparseFeatureBuilder, Ridge]:
        builder = SparseFeatureBuilder().fit(frames["train"])
        return builder, Ridge(alpha=2.0).fit(builder.transform(frames["train"]), target["train"])

    (builder, ridge), seconds, memory = measured(ridge_alone)
    report(
        "ridge on tf-idf",
        ridge.predict(builder.transform(frames["valid"])),
        ridge.predict(builder.transform(frames["test"])),
        seconds,
        memory.extra_mb,
    )

    overrides = {
        "n_mlp": args.n_mlp,
        "n_binary_mlp": args.n_binary_mlp,
        "lgbm_rounds": args.lgbm_rounds,
        "embedding.enabled": args.embedding,
    }
    values = {**load_config(args.config).train.params}
    values.update({key: value for key, value in overrides.items() if value is not None})
    params = main_model_params(values, seed=args.seed)
    model, seconds, memory = measured(
        lambda: SparseTextEnsemble(params).fit(
            frames["train"],
            target["train"],
            frames["valid"].iloc[early_stop].reset_index(drop=True),
            target["valid"][early_stop],
        )
    )
    valid_parts = model.predict_components(frames["valid"])
    test_parts = model.predict_components(frames["test"])
    for name in model.components_:
        report(
            f"  component {name}",
            valid_parts[name],
            test_parts[name],
            model.fit_seconds_[name],
            float("nan"),
            calibration,
        )
    started = time.perf_counter()
    test_pred = model.predict(frames["test"])
    predict_seconds = time.perf_counter() - started
    valid_main = model.predict(frames["valid"])
    report("main: SparseTextEnsemble", valid_main, test_pred, seconds, memory.extra_mb, calibration)

    print(
        f"\nsplit-conformal ranges at coverage {args.coverage} calibrated on valid (the main model: its odd rows), "
        "measured on test"
    )
    print(
        f"{'model':28s} {'test RMSLE':>10s} {'coverage':>9s} {'rel.width':>9s} {'fit s':>8s} {'+peak MB':>9s}"
    )
    for name, error, cover, width, fit_s, peak in rows:
        print(f"{name:28s} {error:10.4f} {cover:9.3f} {width:9.3f} {fit_s:8.1f} {peak:9.0f}")
    print("blend weights:", {k: round(v, 3) for k, v in model.component_weights.items()})
    print(f"feature/component fit seconds: { {k: round(v, 1) for k, v in model.fit_seconds_.items()} }")
    print(f"main model predict: {len(frames['test']) / predict_seconds:,.0f} rows/s on the test split")

    for bands in (1, 3):
        ranges = ConformalPriceRanges(args.coverage, n_bands=bands).calibrate(
            valid_main[calibration], target["valid"][calibration]
        )
        cover, width = coverage_and_width(*ranges.interval(test_pred), parts["test"]["price"].to_numpy())
        print(f"main ranges, {bands} band(s): test coverage {cover:.3f}, mean relative width {width:.3f}")

    if args.scale_rows:
        scale_up(parts, args.scale_rows, params)
    print(f"process peak RSS {psutil.Process().memory_info().rss / 2**20:.0f} MB (current)")


def scale_up(parts: dict[str, pd.DataFrame], n_rows: int, params: SparseTextEnsembleParams) -> None:
    """Time the main model on a resampled, perturbed frame and extrapolate linearly to the full data."""
    full_rows = 1_482_535
    big = perturb(parts["train"], n_rows, seed=1)
    valid = perturb(parts["valid"], max(n_rows // 8, 1), seed=2)
    big_target = np.log1p(big["price"].to_numpy(dtype=np.float64))
    valid_target = np.log1p(valid["price"].to_numpy(dtype=np.float64))
    frame, valid_frame = big[list(FEATURE_COLUMNS)], valid[list(FEATURE_COLUMNS)]
    model, seconds, memory = measured(
        lambda: SparseTextEnsemble(params).fit(frame, big_target, valid_frame, valid_target)
    )
    started = time.perf_counter()
    model.predict(frame)
    rate = n_rows / (time.perf_counter() - started)
    scale = full_rows * 0.9 / n_rows  # the full run would train on ~90% and validate on the rest
    print(f"\nscale-up: fit on {n_rows:,} rows took {seconds:.0f} s, peak RSS {memory.peak_mb:.0f} MB")
    print(f"  fit seconds: { {k: round(v, 1) for k, v in model.fit_seconds_.items()} }")
    print(f"  predict: {rate:,.0f} rows/s")
    print(f"  linear extrapolation to {full_rows:,} rows: fit ~{seconds * scale / 60:.1f} min")


if __name__ == "__main__":
    main()

"""Priced sample in, K-fold cross-validated RMSLE, MAE and range coverage of the shipped models out.

One fixed test split of a small sample is a noisy judge: the sample's 788 test listings give an RMSLE whose
bootstrap standard deviation is about 0.02, as large as the differences between models. Here every priced listing
is scored exactly once, by models trained without it, so the pooled figures rest on the whole sample.

Folds come from the same md5 position of the listing id as the project's split (`pricewise.split.bucket`): fold k
holds the listings with position in [k/K, (k+1)/K). Fold k is the test set, fold k-1 the validation set (early
stopping and blend weights on one half, range calibration on the other, exactly as `pricewise train` does through
`train.fit_and_score`) and the other folds the training set. With K=10 that is 80/10/10 like the shipped split,
and fold 9 *is* the shipped split (train below 0.8, valid 0.8-0.9, test from 0.9).

    python benchmarks/crossval.py                      # 10 folds, about 15 minutes on 2 cores
    python benchmarks/crossval.py --folds 5 --models baseline,ridge
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pricewise import split
from pricewise.columns import FEATURE_COLUMNS
from pricewise.config import load_config
from pricewise.models import RulesBaseline, metrics
from pricewise.models.hyperparams import build_model
from pricewise.store.training_data import Split, TrainingData
from pricewise.train import fit_and_score

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
MODELS = ("baseline", "ridge", "main")


def read_priced(path: Path) -> pd.DataFrame:
    """Priced rows of a Kaggle-format train file, with the warehouse's listing ids, in listing-id order."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, sep="\t")
    frame = frame[frame["price"] > 0].reset_index(drop=True)
    frame["listing_id"] = "train-" + frame["train_id"].astype(str)
    return frame.sort_values("listing_id").reset_index(drop=True)


def folds_of(listing_ids: pd.Series, n_folds: int) -> np.ndarray:
    """Fold number of every listing from its md5 position."""
    return np.array([min(int(split.bucket(i) * n_folds), n_folds - 1) for i in listing_ids])


def fold_data(frame: pd.DataFrame, folds: np.ndarray, test_fold: int, n_folds: int) -> TrainingData:
    def part(mask: np.ndarray) -> Split:
        rows = frame[mask]
        return Split(rows[list(FEATURE_COLUMNS)].reset_index(drop=True), rows["price"].to_numpy(dtype=float))

    valid_fold = (test_fold - 1) % n_folds
    return TrainingData(
        train=part((folds != test_fold) & (folds != valid_fold)),
        valid=part(folds == valid_fold),
        test=part(folds == test_fold),
        batch_ids=(),
        digest="",
    )


def new_model(kind: str, params: dict[str, object], seed: int, min_group_size: int) -> object:
    if kind == "baseline":
        return RulesBaseline(min_group_size=min_group_size)
    if kind == "ridge":  # the main model's Ridge on the same TF-IDF features, alone
        alone = {"n_mlp": 0, "n_binary_mlp": 0, "lgbm_rounds": 0, "embedding.enabled": False}
        return build_model({**params, **alone}, seed=seed)
    return build_model(params, seed=seed)


def bootstrap_rmsle(price: np.ndarray, predicted: np.ndarray, rounds: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the pooled RMSLE over listings resampled with replacement."""
    squared = (np.log1p(predicted) - np.log1p(price)) ** 2
    rng = np.random.default_rng(seed)
    draws = np.sqrt(squared[rng.integers(0, len(squared), (rounds, len(squared)))].mean(axis=1))
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "pricewise.yaml")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    kinds = [k for k in args.models.split(",") if k]
    unknown = sorted(set(kinds) - set(MODELS))
    if unknown or args.folds < 3:
        parser.error(f"unknown models {unknown}" if unknown else "--folds must be at least 3")

    config = load_config(args.config)
    frame = read_priced(args.data)
    folds = folds_of(frame["listing_id"], args.folds)
    print(
        f"{args.data.name}: {len(frame)} priced listings, {args.folds} folds of {np.bincount(folds).tolist()}"
    )

    price = frame["price"].to_numpy(dtype=float)
    scored = {k: np.full((len(frame), 3), np.nan) for k in kinds}  # price, low, high per listing
    per_fold: dict[str, list[float]] = {k: [] for k in kinds}
    fold_coverage: dict[str, list[float]] = {k: [] for k in kinds}
    seconds: dict[str, float] = dict.fromkeys(kinds, 0.0)
    for test_fold in range(args.folds):
        data = fold_data(frame, folds, test_fold, args.folds)
        rows = np.flatnonzero(folds == test_fold)
        line = [f"fold {test_fold}: train {len(data.train)}, valid {len(data.valid)}, test {len(data.test)}"]
        for kind in kinds:
            model = new_model(
                kind, config.train.params, config.train.seed, config.train.baseline.min_group_size
            )
            suggester, figures, fit_seconds = fit_and_score(model, data, config.train.coverage)
            out = suggester.suggest(data.test.frame)
            scored[kind][rows] = out[["price", "low", "high"]].to_numpy(dtype=float)
            per_fold[kind].append(figures["rmsle"])
            fold_coverage[kind].append(figures["coverage"])
            seconds[kind] += fit_seconds
            line.append(f"{kind} {figures['rmsle']:.4f} (coverage {figures['coverage']:.3f})")
        print(", ".join(line), flush=True)

    print(f"\npooled over all {len(frame)} listings, each scored by models that never saw it")
    header = f"{'model':10s} {'RMSLE':>7s} {'95% CI':>15s} {'fold mean':>9s} {'fold sd':>7s} {'MAE $':>7s}"
    print(header + f" {'coverage':>8s} {'width':>6s} {'fit s':>7s} {'last fold':>9s}")
    report: dict[str, dict[str, float]] = {}
    for kind in kinds:
        predicted, low, high = scored[kind].T
        figures = metrics.summary(price, predicted, low, high)
        ci = bootstrap_rmsle(price, predicted, rounds=2000, seed=0)
        report[kind] = {
            **figures,
            "rmsle_ci_low": ci[0],
            "rmsle_ci_high": ci[1],
            "fold_rmsle_mean": float(np.mean(per_fold[kind])),
            "fold_rmsle_sd": float(np.std(per_fold[kind], ddof=1)),
            "fold_coverage_min": float(np.min(fold_coverage[kind])),
            "fold_coverage_max": float(np.max(fold_coverage[kind])),
            "shipped_split_rmsle": per_fold[kind][-1] if args.folds == 10 else float("nan"),
            "fit_seconds": seconds[kind],
        }
        r = report[kind]
        print(
            f"{kind:10s} {r['rmsle']:7.4f} {ci[0]:7.4f}-{ci[1]:.4f} {r['fold_rmsle_mean']:9.4f} "
            f"{r['fold_rmsle_sd']:7.4f} {r['mae']:7.2f} {r['coverage']:8.3f} {r['relative_width']:6.3f} "
            f"{r['fit_seconds']:7.0f} {per_fold[kind][-1]:9.4f}"
        )
    for kind in kinds:
        print(
            f"{kind}: coverage per fold {report[kind]['fold_coverage_min']:.3f}-"
            f"{report[kind]['fold_coverage_max']:.3f} (stated {config.train.coverage})"
        )
    if "main" in kinds:
        for other in (k for k in kinds if k != "main"):
            gap = np.log1p(scored[other][:, 0]) - np.log1p(price)
            gap_main = np.log1p(scored["main"][:, 0]) - np.log1p(price)
            better = np.mean(np.array(per_fold["main"]) < np.array(per_fold[other]))
            print(
                f"main vs {other}: mean squared log error {np.mean(gap_main**2):.4f} vs {np.mean(gap**2):.4f}, "
                f"main better in {better:.0%} of folds"
            )
    if args.folds == 10:
        print("last fold = the shipped split (pricewise train's test split)")
    if args.json:
        args.json.write_text(
            json.dumps({"folds": args.folds, "rows": len(frame), "models": report}, indent=2)
        )
    print(f"done at {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()

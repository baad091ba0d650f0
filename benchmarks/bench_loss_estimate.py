"""The shared train sample in; a backtest of direct loss estimation on shifted windows out: per window the realized
RMSLE, the estimate with its interval, and the offline RMSLE; then the mean absolute error of both.

The sample's priced rows (price > 0) are split at random into a champion's training rows (50%), held-out
reference rows the loss model is fitted on (25%, as train does on the test split) and a pool the windows are
drawn from (25%). The champion is the main model with the shipped config's Ridge component (seconds to fit).
Each window holds 1,000 rows drawn from the pool (with replacement where a shift needs more rows than it has):

- unshifted: uniform;
- category: one top-level category only (Women, Beauty, Kids, Electronics) or Women excluded;
- condition: conditions 3-5 weighted 5x;
- price level: sold prices of one top-level category 40% higher, or of every row 20% higher (labels only: the
  listings the loss model sees are unchanged, so no estimator that reads listings alone can follow it);
- text corruption: descriptions cut to 10 characters and brands blanked in 30% of rows.

    python -m benchmarks.bench_loss_estimate [--seed 0]      # from the repository root
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks.bench_row_rules import TRAIN
from benchmarks.corrupt_listings import read_sample
from pricewise.models import metrics
from pricewise.models.hyperparams import build_model
from pricewise.models.ranges import ConformalPriceRanges
from pricewise.models.suggester import PriceSuggester, clean_input
from pricewise.monitoring import loss_estimate

WINDOW_ROWS = 1000
GOAL_MAE = 0.04
LIGHT_PARAMS = {"n_mlp": 0, "n_binary_mlp": 0, "lgbm_rounds": 0, "embedding.enabled": False}

Shift = Callable[[pd.DataFrame, np.random.Generator], tuple[pd.DataFrame, np.ndarray]]


def _draw(pool: pd.DataFrame, weights: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    p = weights / weights.sum()
    replace = int((p > 0).sum()) < WINDOW_ROWS
    rows = rng.choice(len(pool), size=WINDOW_ROWS, replace=replace, p=p)
    return pool.iloc[rows].reset_index(drop=True)


def _top(frame: pd.DataFrame) -> pd.Series:
    return frame["category_name"].fillna("").str.split("/").str[0]


def shifts() -> dict[str, Shift]:
    """The windows of the backtest by name: each draws 1,000 rows and returns them with their sold prices."""

    def uniform(pool: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        window = _draw(pool, np.ones(len(pool)), rng)
        return window, window["price"].to_numpy(float)

    def only(top: str, keep: bool = True) -> Shift:
        def shift(pool: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
            window = _draw(pool, ((_top(pool) == top) == keep).to_numpy(float), rng)
            return window, window["price"].to_numpy(float)

        return shift

    def worn(pool: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        condition = pd.to_numeric(pool["item_condition_id"]).to_numpy()
        window = _draw(pool, np.where(condition >= 3, 5.0, 1.0), rng)
        return window, window["price"].to_numpy(float)

    def dearer(top: str | None, factor: float) -> Shift:
        def shift(pool: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
            window = _draw(pool, np.ones(len(pool)), rng)
            hit = np.ones(len(window), bool) if top is None else (_top(window) == top).to_numpy()
            return window, np.where(hit, factor, 1.0) * window["price"].to_numpy(float)

        return shift

    def corrupted_text(pool: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
        window = _draw(pool, np.ones(len(pool)), rng)
        hit = rng.random(len(window)) < 0.3
        window.loc[hit, "item_description"] = window.loc[hit, "item_description"].str[:10]
        window.loc[hit, "brand_name"] = ""
        return window, window["price"].to_numpy(float)

    return {
        "unshifted": uniform,
        "category: Women only": only("Women"),
        "category: Beauty only": only("Beauty"),
        "category: Kids only": only("Kids"),
        "category: Electronics only": only("Electronics"),
        "category: no Women": only("Women", keep=False),
        "condition: worn 5x": worn,
        "price: Women +40%": dearer("Women", 1.4),
        "price: all +20%": dearer(None, 1.2),
        "text: 30% cut/blank": corrupted_text,
    }


def fit_champion(train: pd.DataFrame, seed: int) -> PriceSuggester:
    """The main model (Ridge component) fitted on `train`, its ranges calibrated on a tenth held out."""
    calibration = train.sample(frac=0.1, random_state=seed)
    fitting = train.drop(calibration.index)
    model = build_model(LIGHT_PARAMS, seed=seed)
    model.fit(clean_input(fitting), np.log1p(fitting["price"].to_numpy(float)))
    ranges = ConformalPriceRanges(coverage=0.8).calibrate(
        model.predict(clean_input(calibration)), np.log1p(calibration["price"].to_numpy(float))
    )
    return PriceSuggester(model=model, ranges=ranges, kind=type(model).__name__)


def backtest(seed: int = 0, repeats: int = 3) -> pd.DataFrame:
    """One row per window: realized RMSLE, the estimate and its interval, and the offline RMSLE."""
    sample = read_sample(TRAIN)
    sample["price"] = sample["price"].astype(float)
    sample = sample[sample["price"] > 0].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n = len(sample)
    train, reference, pool = (
        sample.iloc[: n // 2],
        sample.iloc[n // 2 : 3 * n // 4],
        sample.iloc[3 * n // 4 :],
    )
    pool = pool.reset_index(drop=True)
    champion = fit_champion(train, seed)
    scored = champion.suggest(clean_input(reference))
    model = loss_estimate.fit(
        reference,
        scored["price"].to_numpy(float),
        scored["low"].to_numpy(float),
        scored["high"].to_numpy(float),
        reference["price"].to_numpy(float),
        seed=seed,
    )
    offline = model.reference_rmsle
    rng = np.random.default_rng(seed)
    rows = []
    for name, shift in shifts().items():
        for repeat in range(repeats):
            window, sold = shift(pool, rng)
            suggested = champion.suggest(clean_input(window))
            price = suggested["price"].to_numpy(float)
            estimate = model.estimate(
                window, price, suggested["low"].to_numpy(float), suggested["high"].to_numpy(float)
            )
            assert estimate is not None
            realized = metrics.rmsle(sold, price)
            rows.append(
                {
                    "window": name,
                    "repeat": repeat,
                    "realized": realized,
                    "estimate": estimate.rmsle,
                    "low": estimate.low,
                    "high": estimate.high,
                    "offline": offline,
                }
            )
    return pd.DataFrame(rows)


def main() -> int:
    """Print the backtest; exit 1 when the estimate misses its goal or does no better than the offline RMSLE."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = backtest(args.seed, args.repeats)
    table["estimate_error"] = (table["estimate"] - table["realized"]).abs()
    table["offline_error"] = (table["offline"] - table["realized"]).abs()
    table["inside"] = (table["low"] <= table["realized"]) & (table["realized"] <= table["high"])
    by_window = table.groupby("window", sort=False)[
        ["realized", "estimate", "low", "high", "estimate_error", "offline_error", "inside"]
    ].mean()
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format
    ):
        print(
            f"windows of {WINDOW_ROWS} rows, {args.repeats} draws each; offline RMSLE {table['offline'][0]:.4f}"
        )
        print(by_window)
    mae, offline_mae = table["estimate_error"].mean(), table["offline_error"].mean()
    listing_shifts = ~table["window"].str.startswith("price:")
    print(
        f"MAE of the estimate {mae:.4f} (goal <= {GOAL_MAE}), of assuming the offline RMSLE {offline_mae:.4f}; "
        f"interval holds the realized RMSLE in {table['inside'].mean():.0%} of windows"
    )
    print(
        f"without the label-only price shifts: estimate {table['estimate_error'][listing_shifts].mean():.4f}, "
        f"offline {table['offline_error'][listing_shifts].mean():.4f}"
    )
    return 0 if mae <= GOAL_MAE and mae < offline_mae else 1


if __name__ == "__main__":
    sys.exit(main())

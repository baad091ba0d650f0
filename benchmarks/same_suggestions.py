"""Shows that a code change leaves the shipped model's suggestions as they were.

Run mode trains the shipped config on the shared sample through the CLI only (ingest, validate, train) and
scores the unpriced sample and the priced sample's test split with the challenger, writing one CSV of id, price,
low and high. The CLI is the contract that stays fixed across refactors, so the same script runs on any commit.
Compare mode prints how two such CSVs differ.

    python benchmarks/same_suggestions.py run --out before.csv      # on the old commit
    python benchmarks/same_suggestions.py run --out after.csv       # on the new one
    python benchmarks/same_suggestions.py compare before.csv after.csv
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "mercari"
TRAIN = SAMPLES / "mercari_train_8k.tsv.gz"
UNPRICED = SAMPLES / "mercari_test_head2k_unpriced.tsv.gz"
PRICEWISE = Path(sys.executable).parent / "pricewise"


def _cli(env: dict[str, str], *args: str) -> None:
    started = time.perf_counter()
    subprocess.run([str(PRICEWISE), *args], env=env, check=True)
    print(f"pricewise {args[0]}: {time.perf_counter() - started:.1f} s", file=sys.stderr)


def run(out: Path) -> None:
    """Train the shipped config on the sample and write the challenger's suggestions to `out`."""
    work = Path(tempfile.mkdtemp(prefix="same-suggestions-"))
    env = {**os.environ, "PRICEWISE_DATA_DIR": str(work / "data")}
    env["PRICEWISE_CONFIG_PATH"] = str(REPO / "configs" / "pricewise.yaml")
    try:
        _cli(env, "ingest", str(TRAIN))
        _cli(env, "validate")
        _cli(env, "train")
        frames = []
        for name, source in (("unpriced", UNPRICED), ("priced", TRAIN)):
            scored = work / f"{name}.csv"
            _cli(
                env,
                "predict",
                "--input",
                str(source),
                "--output",
                str(scored),
                "--model",
                "models:/pricewise@challenger",
            )
            frame = pd.read_csv(scored)
            frames.append(frame.assign(source=name)[["source", "id", "price", "low", "high"]])
        pd.concat(frames).to_csv(out, index=False)
        print(f"wrote {out}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(before: Path, after: Path) -> int:
    """Print the differences between two suggestion files; 0 when the prices are bit-identical."""
    old, new = pd.read_csv(before), pd.read_csv(after)
    merged = old.merge(new, on=["source", "id"], how="outer", suffixes=("_before", "_after"), indicator=True)
    only = merged["_merge"] != "both"
    print(f"rows: {len(old)} before, {len(new)} after, {int(only.sum())} in only one file")
    identical = not only.any()
    for column in ("price", "low", "high"):
        a, b = merged[f"{column}_before"].to_numpy(), merged[f"{column}_after"].to_numpy()
        both = ~(np.isnan(a) & np.isnan(b))
        differ = int((a[both] != b[both]).sum())
        gap = float(np.nanmax(np.abs(a - b))) if both.any() else 0.0
        print(f"{column}: {differ} rows differ, largest difference {gap:.6f}")
        identical = identical and differ == 0
    print("bit-identical" if identical else "NOT identical")
    return 0 if identical else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--out", type=Path, required=True)
    compare_parser = commands.add_parser("compare")
    compare_parser.add_argument("before", type=Path)
    compare_parser.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())

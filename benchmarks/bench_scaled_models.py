"""A scaled Mercari-like file in; fit time, peak memory, RMSLE and coverage of the models, and scoring speed out.

Runs the real CLI in a fresh data directory: ingest + validate the scaled training file, `pricewise train` with
the shipped config (rules baseline + main model), `pricewise train` again with a Ridge-only config (the named
baseline of the issue, on the same split), then `pricewise predict` of a scaled unpriced file with the main
model. Goals on 2 cores: training within 30 minutes and 12 GB; scoring at least 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_ingest_validate import run_step

REPO = Path(__file__).resolve().parents[1]
GOAL_TRAIN_S = 30 * 60
GOAL_TRAIN_MB = 12 * 1024
GOAL_ROWS_PER_S = 20_000
FIGURES = re.compile(r"^(baseline|main): (\S+) v(\d+): (.*)$", re.MULTILINE)


def ensure_file(path: Path, rows: int, kind: str) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "make_scaled_data.py"),
                "--rows",
                str(rows),
                "--kind",
                kind,
                "--out",
                str(path),
            ],
            check=True,
        )
    return path


def parse_models(output: str) -> dict[str, dict[str, float]]:
    models = {}
    for kind, _, _, figures in FIGURES.findall(output):
        models[kind] = {k: float(v) for k, v in (item.rsplit(" ", 1) for item in figures.split(", "))}
    return models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    tmp = Path(tempfile.gettempdir()) / "pricewise-bench"
    parser.add_argument("--train-data", type=Path, default=tmp / "train_scaled.tsv")
    parser.add_argument("--score-data", type=Path, default=tmp / "test_scaled.tsv")
    parser.add_argument("--rows", type=int, default=1_482_535)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    train_data = ensure_file(args.train_data, args.rows, "train")
    score_data = ensure_file(args.score_data, args.rows, "test")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pricewise-models-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ridge_config = workdir / "ridge.yaml"
    # A config file cannot repeat a section, so the Ridge-only one is the shipped file with params replaced.
    shipped = (REPO / "configs" / "pricewise.yaml").read_text()
    ridge_config.write_text(
        re.sub(r"  params:\n(    .*\n)+", "  params: {n_mlp: 0, n_binary_mlp: 0, lgbm_rounds: 0}\n", shipped)
    )
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(workdir / "data"),
        "PRICEWISE_CONFIG_PATH": str(REPO / "configs" / "pricewise.yaml"),
    }
    cli = str(Path(sys.executable).with_name("pricewise"))
    steps = [
        ("ingest", [cli, "ingest", str(train_data)]),
        ("validate", [cli, "validate"]),
        ("train", [cli, "train"]),
        ("train_ridge", [cli, "--config", str(ridge_config), "train"]),
        ("promote", [cli, "promote"]),
        (
            "predict",
            [
                cli,
                "predict",
                "--input",
                str(score_data),
                "--output",
                str(workdir / "scores.parquet"),
                "--model",
                "models:/pricewise/1",
            ],
        ),
    ]
    results = {}
    for name, command in steps:
        result = run_step(name, command, env, logs)
        results[name] = result
        print(
            f"{name:12} {result.seconds:9.1f} s  peak RSS {result.peak_rss_mb:8.0f} MB  exit {result.returncode}"
        )
        if result.returncode != 0 and name != "promote":
            print(result.stderr[-3000:])
            return 1
    models = parse_models(results["train"].stdout)
    models["ridge"] = parse_models(results["train_ridge"].stdout)["main"]
    print(f"\n{'model':10} {'RMSLE':>7} {'coverage':>9} {'rel.width':>9} {'fit s':>8}")
    for kind in ("baseline", "ridge", "main"):
        m = models[kind]
        print(
            f"{kind:10} {m['rmsle']:7.4f} {m['coverage']:9.3f} {m['relative_width']:9.3f} {m['fit_seconds']:8.1f}"
        )
    train = results["train"]
    print(
        f"\ntrain (baseline + main, with MLflow logging): {train.seconds:.0f} s = {train.seconds / GOAL_TRAIN_S:.2f}x "
        f"of the 30 min goal; peak RSS {train.peak_rss_mb:.0f} MB = {train.peak_rss_mb / GOAL_TRAIN_MB:.2f}x of 12 GB"
    )
    print(
        f"main model vs Ridge on TF-IDF, same split: RMSLE {models['main']['rmsle']:.4f} vs {models['ridge']['rmsle']:.4f}"
    )
    print(results["predict"].stdout.strip())
    match = re.search(r"\(([\d,]+) rows/s\)", results["predict"].stdout)
    if match:
        rate = int(match.group(1).replace(",", ""))
        print(f"predict: {rate:,} rows/s = {rate / GOAL_ROWS_PER_S:.2f}x of the 20,000 rows/s goal")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "models": models,
                    "steps": {
                        k: {"seconds": v.seconds, "peak_rss_mb": v.peak_rss_mb} for k, v in results.items()
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

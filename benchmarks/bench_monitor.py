"""A prediction log of N logged suggestions in -> wall time and peak RSS of `pricewise monitor` over it out.

The workspace is the shared sample ingested, validated, trained (Ridge-only main model) and promoted; the
prediction log is filled with N suggestions whose inputs are drawn from the unpriced sample, whose outputs are
the champion's prices, and a fifth of which carry a sold price. Goal (issue 5): a window of one million logged
suggestions within 2 minutes and 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from bench_ingest_validate import run_step

from pricewise.settings import Settings
from pricewise.store import registry, tracking
from pricewise.store.prediction_log import PredictionLog, default_url

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "mercari"
GOAL_SECONDS = 120.0
GOAL_RSS_MB = 4096.0
COLUMNS = ["name", "brand_name", "category_name", "item_condition_id", "shipping", "item_description"]


def prepare_workspace(root: Path, env: dict[str, str]) -> None:
    """Ingest, validate, train (light) and promote the shared sample."""
    raw = yaml.safe_load((REPO / "configs" / "pricewise.yaml").read_text(encoding="utf-8"))
    raw["train"]["params"].update(
        {"n_mlp": 0, "n_binary_mlp": 0, "lgbm_rounds": 0, "embedding.enabled": False}
    )
    (root / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    pricewise = str(Path(sys.executable).parent / "pricewise")
    for command in (
        ["ingest", str(SHARED / "mercari_train_8k.tsv.gz")],
        ["validate"],
        ["train"],
        ["promote"],
    ):
        subprocess.run([pricewise, *command], env=env, check=True, capture_output=True)


def fill_log(env: dict[str, str], rows: int, seed: int) -> float:
    """Write `rows` suggestions (a fifth with a sold price) straight into the SQLite prediction log."""
    settings = Settings(data_dir=Path(env["PRICEWISE_DATA_DIR"]))
    tracking.configure(settings)
    listings = pd.read_csv(SHARED / "mercari_test_head2k_unpriced.tsv.gz", sep="\t")[COLUMNS]
    listings = listings.fillna({"brand_name": "", "category_name": "", "item_description": ""})
    scored = registry.load_suggester("models:/pricewise@champion").suggest(listings)
    url = default_url(settings)
    PredictionLog(url)  # creates the tables
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(listings), rows)
    inputs = [json.dumps(r) for r in listings.to_dict(orient="records")]
    outputs = [
        json.dumps({"price": float(p), "low": float(lo), "high": float(hi), "coverage": 0.8})
        for p, lo, hi in scored[["price", "low", "high"]].itertuples(index=False)
    ]
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        step = 100_000
        for start in range(0, rows, step):
            part = picks[start : start + step]
            ids = [uuid.uuid4().hex for _ in part]
            times = [
                (now - timedelta(seconds=float(s))).isoformat(sep=" ")
                for s in rng.uniform(0, 20 * 3600, len(part))
            ]
            db.executemany(
                "INSERT INTO predictions VALUES (?, NULL, ?, 'pricewise', '1', NULL, 0, ?, ?, 5.0)",
                [(i, t, inputs[k], outputs[k]) for i, t, k in zip(ids, times, part, strict=True)],
            )
            sold = rng.random(len(part)) < 0.2
            prices = scored["price"].to_numpy()[part] * np.exp(rng.normal(0, 0.5, len(part)))
            db.executemany(
                "INSERT INTO feedback (request_id, created_at, chosen_price, sold_price) VALUES (?, ?, NULL, ?)",
                [
                    (i, t, round(float(p), 2))
                    for i, t, p, s in zip(ids, times, prices, sold, strict=True)
                    if s
                ],
            )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Logged suggestions in the window.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="Keep the workspace for inspection.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pricewise-bench-monitor-"))
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(root / "data"),
        "PRICEWISE_CONFIG_PATH": str(root / "config.yaml"),
    }
    prepare_workspace(root, env)
    fill_seconds = fill_log(env, args.rows, args.seed)
    print(f"prediction log: {args.rows:,} suggestions written in {fill_seconds:.1f} s")
    pricewise = str(Path(sys.executable).parent / "pricewise")
    step = run_step("monitor", [pricewise, "monitor", "--last-hours", "24", "--json"], env, root)
    if step.returncode != 0:
        raise SystemExit(f"monitor failed ({step.returncode}):\n{step.stderr[-2000:]}")
    summary = json.loads(step.stdout.strip().splitlines()[-1])
    print(
        f"monitor over {summary['current_rows']:,} suggestions ({summary['compared_rows']:,} compared, "
        f"{summary['feedback_rows']:,} sold prices): {step.seconds:.1f} s "
        f"({step.seconds / GOAL_SECONDS:.2f}x of the {GOAL_SECONDS:.0f} s goal), peak RSS {step.peak_rss_mb:,.0f} MB "
        f"({step.peak_rss_mb / GOAL_RSS_MB:.2f}x of the {GOAL_RSS_MB:.0f} MB goal); status {summary['status']}"
    )
    print(f"load average at the end: {os.getloadavg()}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"workspace kept at {root}")


if __name__ == "__main__":
    main()

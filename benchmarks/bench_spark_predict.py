"""N scaled unpriced listings as a Parquet dataset in; rows/s, driver peak memory and where the time goes for
`pricewise predict` on the local engine and on Spark local[2], in the same run, out.

Builds a champion first (the shared sample ingested, validated, trained and promoted). By default it is the
model a catalogue-sized training set gets from the shipped config: the embedding component is left out above
embedding.max_train_rows, so Ridge and the two sparse MLPs (`--model full-size`); `--model ridge` keeps the Ridge
alone, for a quick run. Then it writes the scaled input once with make_scaled_data.py (a folder of Parquet files), then runs
the real CLI twice on it: `--engine local` to one Parquet file and `--engine spark` (PRICEWISE_SPARK_MASTER,
default local[2]) to a folder of part files. Peak memory is the RSS high-water of each command's process tree
(the driver, its DuckDB, Spark's JVM and Python workers), sampled by run_step. The phases come from the
engines' own log lines (run with --verbose): row rules, the Spark job (scoring and writing, with the scoring
task-seconds the executors report), manifest and commit.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_ingest_validate import StepResult, run_step

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
# What the shipped params become: above embedding.max_train_rows training listings the embedding is left out.
MODELS = {
    "full-size": {"embedding.enabled": "false"},
    "ridge": {"n_mlp": "0", "n_binary_mlp": "0", "lgbm_rounds": "0", "embedding.enabled": "false"},
}
PHASES = {
    "rules": re.compile(r"row rules: .* in ([\d.]+) s"),
    "to_score": re.compile(r"row rules: (\d+) rows to score"),
    "spark_job": re.compile(r"Spark job \(scoring and writing\) in ([\d.]+) s"),
    "scoring_task_s": re.compile(r"scoring took ([\d.]+) task-seconds"),
    "commit": re.compile(r"manifest and commit in ([\d.]+) s"),
}


def with_params(shipped: str, overrides: dict[str, str]) -> str:
    """The shipped config with some main-model params set (a key not in the config is an error)."""
    for key, value in overrides.items():
        pattern = rf"(\n    {re.escape(key)}: )\S+"
        if not re.search(pattern, shipped):
            raise SystemExit(f"configs/pricewise.yaml has no train param {key}")
        shipped = re.sub(pattern, rf"\g<1>{value}", shipped)
    return shipped


def ensure_dataset(folder: Path, rows: int, rows_per_file: int) -> Path:
    """The scaled unpriced listings as a folder of Parquet files (made once, reused by later runs)."""
    if not folder.is_dir():
        subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "make_scaled_data.py"),
                "--rows",
                str(rows),
                "--kind",
                "test",
                "--rows-per-file",
                str(rows_per_file),
                "--out",
                str(folder),
            ],
            check=True,
        )
    return folder


def phases(stderr: str) -> dict[str, float]:
    """Seconds per phase from an engine's log lines."""
    found = {}
    for name, pattern in PHASES.items():
        match = pattern.search(stderr)
        if match:
            found[name] = float(match.group(1))
    return found


def report(name: str, result: StepResult, rows: int) -> float:
    rate = rows / result.seconds if result.seconds else 0.0
    print(
        f"{name:6} {result.seconds:8.1f} s  {rate:10,.0f} rows/s  peak RSS (tree) {result.peak_rss_mb:7.0f} MB  "
        f"exit {result.returncode}"
    )
    if result.returncode != 0:
        print(result.stderr[-3000:])
        raise SystemExit(1)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    tmp = Path(tempfile.gettempdir()) / "pricewise-bench"
    parser.add_argument("--rows", type=int, default=10_000_000, help="scaled listings to score")
    parser.add_argument(
        "--rows-per-file", type=int, default=1_000_000, help="rows per Parquet file of the input"
    )
    parser.add_argument("--data", type=Path, default=None, help="input folder; default by --rows under /tmp")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--model", choices=sorted(MODELS), default="full-size", help="the champion to score with"
    )
    args = parser.parse_args()

    data = ensure_dataset(args.data or tmp / f"catalogue_{args.rows}", args.rows, args.rows_per_file)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pricewise-spark-bench-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    config = workdir / "light.yaml"
    shipped = (REPO / "configs" / "pricewise.yaml").read_text()
    config.write_text(with_params(shipped, MODELS[args.model]))
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(workdir / "data"),
        "PRICEWISE_CONFIG_PATH": str(config),
        "PRICEWISE_SPARK_MASTER": args.master,
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }
    cli = str(Path(sys.executable).with_name("pricewise"))
    for step, command in (
        ("ingest", [cli, "ingest", str(SAMPLE)]),
        ("validate", [cli, "validate"]),
        ("train", [cli, "train"]),
        ("promote", [cli, "promote"]),
    ):
        done = run_step(step, command, env, logs)
        if done.returncode != 0:
            print(done.stderr[-3000:])
            return 1
    print(
        f"{args.rows:,} listings in {data} ({len(list(data.glob('*.parquet')))} files); master {args.master}; "
        f"model {args.model} ({', '.join(f'{k}={v}' for k, v in MODELS[args.model].items())})"
    )
    results = {}
    for engine, output in (("local", workdir / "local.parquet"), ("spark", workdir / "spark.parquet")):
        command = [cli, "--verbose", "predict", "--engine", engine, "-i", str(data), "-o", str(output)]
        results[engine] = run_step(f"predict_{engine}", command, env, logs)
        report(engine, results[engine], args.rows)
    local_rate = args.rows / results["local"].seconds
    spark_rate = args.rows / results["spark"].seconds
    print(f"spark/local rows/s ratio {spark_rate / local_rate:.2f}")
    spark_phases = phases(results["spark"].stderr)
    print("spark phases (s):", ", ".join(f"{k} {v:.1f}" for k, v in spark_phases.items() if k != "to_score"))
    accounted = sum(v for k, v in spark_phases.items() if k in ("rules", "spark_job", "commit"))
    print(f"spark startup, model load and the rest: {results['spark'].seconds - accounted:.1f} s")
    if "scoring_task_s" in spark_phases:
        cores = 2 if args.master == "local[2]" else None
        per_core = spark_phases.get("to_score", args.rows) / spark_phases["scoring_task_s"]
        print(f"scoring rate per executor core: {per_core:,.0f} rows/s (scoring alone, features and model)")
        if cores:
            print(f"spark end-to-end per core: {spark_rate / cores:,.0f} rows/s")
    print(f"local engine: {results['local'].stdout.strip()}")
    print(f"logs in {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

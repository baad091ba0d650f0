"""Mercari-format data file in -> wall time and peak RSS of `pricewise ingest` and `pricewise validate` out."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

GOAL_SECONDS = 30.0
GOAL_RSS_MB = 2048.0
POLL_SECONDS = 0.05
DEFAULT_DATA = Path(tempfile.gettempdir()) / "pricewise-bench" / "train_scaled.tsv"
ROWS_PATTERN = re.compile(r"(\d[\d,_]*)\s+rows\b", re.IGNORECASE)


@dataclass
class StepResult:
    step: str
    command: list[str]
    returncode: int
    seconds: float
    peak_rss_mb: float  # psutil: max over 50 ms samples of the summed RSS of the process tree
    ru_maxrss_mb: float  # kernel: max RSS of the child (and the descendants it waited for)
    rows: int | None
    stdout: str
    stderr: str


def tree_rss(process: psutil.Process) -> int:
    """RSS in bytes of a process and all its descendants (shared pages counted once per process)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_step(step: str, command: list[str], env: dict[str, str], logs: Path) -> StepResult:
    """Run one command to completion, sampling its process tree's memory every POLL_SECONDS."""
    stdout_path, stderr_path = logs / f"{step}.stdout", logs / f"{step}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        process = psutil.Process(child.pid)
        peak = 0
        while True:
            # wait4 reaps the child itself so its own rusage (not the max over all children) is kept.
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(process))
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    out = stdout_path.read_text(errors="replace")
    return StepResult(
        step=step,
        command=command,
        returncode=child.returncode,
        seconds=seconds,
        peak_rss_mb=peak / 1024**2,
        ru_maxrss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        rows=rows_reported(out),
        stdout=out,
        stderr=stderr_path.read_text(errors="replace"),
    )


def rows_reported(output: str) -> int | None:
    """The last 'N rows' figure a step printed, if any."""
    matches = ROWS_PATTERN.findall(output)
    return int(re.sub(r"[,_]", "", matches[-1])) if matches else None


def count_rows(path: Path) -> int | None:
    """Data rows of the input (not timed); None for formats that would need unpacking."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq  # noqa: PLC0415 - only needed for parquet input

        return pq.ParquetFile(path).metadata.num_rows
    if not name.endswith((".tsv", ".tsv.gz", ".csv", ".csv.gz")):
        return None
    import pyarrow.csv as pacsv  # noqa: PLC0415 - keeps the module light when rows come from elsewhere

    delimiter = "," if ".csv" in name else "\t"
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=64 << 20),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(include_columns=[], include_missing_columns=True),
    )
    return sum(batch.num_rows for batch in reader)


def ensure_data(path: Path, rows: int | None, seed: int) -> None:
    """Generate the scaled file with make_scaled_data.py if it does not exist yet."""
    if path.exists():
        return
    command = [sys.executable, str(Path(__file__).with_name("make_scaled_data.py")), "--out", str(path)]
    command += ["--seed", str(seed)] + (["--rows", str(rows)] if rows is not None else [])
    print(f"{path} missing; generating it: {' '.join(command)}")
    subprocess.run(command, check=True)


def print_table(results: list[StepResult], input_rows: int | None) -> None:
    print(f"{'step':<10} {'seconds':>8} {'peak RSS MB':>12} {'ru_maxrss MB':>13} {'rows':>11} {'exit':>5}")
    for result in results:
        rows = result.rows if result.rows is not None else input_rows
        rows_text = f"{rows:,}" if rows is not None else "-"
        print(
            f"{result.step:<10} {result.seconds:>8.2f} {result.peak_rss_mb:>12.0f} "
            f"{result.ru_maxrss_mb:>13.0f} {rows_text:>11} {result.returncode:>5}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="input file; generated if missing")
    parser.add_argument("--rows", type=int, default=None, help="rows to generate if --data is missing")
    parser.add_argument("--seed", type=int, default=0, help="seed used if --data is missing")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch dir (default: a new temp dir)")
    parser.add_argument(
        "--pricewise",
        type=Path,
        default=Path(sys.executable).parent / "pricewise",
        help="CLI executable (default: next to this Python)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep a temporary workdir")
    args = parser.parse_args()

    if not args.pricewise.exists():
        parser.error(f"{args.pricewise} not found; install the project or pass --pricewise")
    ensure_data(args.data, args.rows, args.seed)
    data = args.data.resolve()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pricewise-bench-"))
    data_dir = workdir / "data"
    if data_dir.exists() and any(data_dir.iterdir()):
        parser.error(f"{data_dir} is not empty; the benchmark needs a fresh data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PRICEWISE_DATA_DIR": str(data_dir)}
    size_mb = data.stat().st_size / 1024**2
    print(f"data: {data} ({size_mb:,.1f} MiB)\nPRICEWISE_DATA_DIR={data_dir}")

    steps = [
        ("ingest", [str(args.pricewise), "ingest", str(data)]),
        ("validate", [str(args.pricewise), "validate"]),
    ]
    results: list[StepResult] = []
    for step, command in steps:
        result = run_step(step, command, env, workdir)
        results.append(result)
        if result.returncode != 0:
            break

    # Counted after the steps: a child's ru_maxrss starts at this process's own peak RSS, so keep it small.
    input_rows = count_rows(data)
    print_table(results, input_rows)
    total_seconds = sum(result.seconds for result in results)
    peak_rss_mb = max(result.peak_rss_mb for result in results)
    failed = [result for result in results if result.returncode != 0]
    print(
        f"{'total':<10} {total_seconds:>8.2f} {peak_rss_mb:>12.0f}   "
        f"time {total_seconds / GOAL_SECONDS:.2f}x of {GOAL_SECONDS:.0f} s goal, "
        f"memory {peak_rss_mb / GOAL_RSS_MB:.2f}x of {GOAL_RSS_MB / 1024:.0f} GB goal"
    )
    within_goal = total_seconds <= GOAL_SECONDS and peak_rss_mb <= GOAL_RSS_MB
    print("goal met" if within_goal and not failed else "goal NOT met")

    if args.json:
        figures = {
            "data": str(data),
            "data_mb": size_mb,
            "input_rows": input_rows,
            "steps": [asdict(result) for result in results],
            "total_seconds": total_seconds,
            "peak_rss_mb": peak_rss_mb,
            "goal": {"seconds": GOAL_SECONDS, "rss_mb": GOAL_RSS_MB},
            "ratio": {"seconds": total_seconds / GOAL_SECONDS, "rss": peak_rss_mb / GOAL_RSS_MB},
            "ok": not failed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")

    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    for result in failed:
        print(
            f"\n{result.step} failed (exit {result.returncode}): {' '.join(result.command)}", file=sys.stderr
        )
        print(result.stderr, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

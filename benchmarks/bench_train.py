"""Time of `pricewise train` (the shipped config on the shared sample) with glibc's default malloc settings and
with the Makefile's GLIBC_TUNABLES, side by side.

Each run ingests and validates the sample into a fresh data directory, then trains through the CLI on one thread
(OMP_NUM_THREADS=1, as each test worker does). The two trainings run at the same time, one per core, so both
see the same machine; the script prints wall, user and system seconds of each, their ratio, and whether both
registered the same test RMSLE (the setting changes where memory comes from, never a result).

    python benchmarks/bench_train.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
PRICEWISE = Path(sys.executable).parent / "pricewise"


def _shipped_tunables() -> str:
    """The GLIBC_TUNABLES value the Makefile exports (the one place it is set for the CLI)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"^export GLIBC_TUNABLES \?= (\S+)$", makefile, re.MULTILINE)
    if found is None:
        raise SystemExit("the Makefile exports no GLIBC_TUNABLES")
    return found.group(1)


def _env(work: Path, tunables: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(
        PRICEWISE_DATA_DIR=str(work / "data"),
        PRICEWISE_CONFIG_PATH=str(REPO / "configs" / "pricewise.yaml"),
        OMP_NUM_THREADS="1",
    )
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    return env


def main() -> int:
    works = {name: Path(tempfile.mkdtemp(prefix=f"bench-train-{name}-")) for name in ("default", "tunables")}
    envs = {
        name: _env(work, _shipped_tunables() if name == "tunables" else None) for name, work in works.items()
    }
    try:
        for name in works:
            for args in (("ingest", str(TRAIN)), ("validate",)):
                subprocess.run([str(PRICEWISE), *args], env=envs[name], check=True, capture_output=True)
        started = time.perf_counter()
        # Both Popen objects stay referenced: a collected one would be reaped by subprocess, not by wait4 below.
        procs = {}
        for name, work in works.items():
            with (work / "train.log").open("w") as log:
                procs[name] = subprocess.Popen(
                    [str(PRICEWISE), "train"], env=envs[name], stdout=log, stderr=log
                )
        names = {proc.pid: name for name, proc in procs.items()}
        # os.wait4 gives each child's own CPU times (/usr/bin/time is not on every machine).
        figures: dict[str, tuple[float, float, float, str]] = {}
        failures: dict[str, int] = {}
        while len(figures) < len(names):
            pid, status, usage = os.wait4(-1, 0)
            name = names[pid]
            wall = time.perf_counter() - started
            output = (works[name] / "train.log").read_text()
            failures[name] = os.waitstatus_to_exitcode(status)
            match = re.search(r"main: \S+ v\d+: rmsle ([0-9.]+)", output)
            figures[name] = (wall, usage.ru_utime, usage.ru_stime, match.group(1) if match else "?")
        for name, code in failures.items():
            if code != 0:
                print((works[name] / "train.log").read_text(), file=sys.stderr)
                print(f"train ({name}) failed with exit code {code}", file=sys.stderr)
                return 1
        for name, (wall, user, system, rmsle) in figures.items():
            print(
                f"{name:9s} wall {wall:6.1f} s  user {user:6.1f} s  sys {system:5.1f} s  test rmsle {rmsle}"
            )
        ratio = figures["default"][0] / figures["tunables"][0]
        print(f"wall, default / tunables: {ratio:.2f}x")
        same = figures["default"][3] == figures["tunables"][3]
        print("same test RMSLE" if same else "RMSLE DIFFERS")
        return 0 if same else 1
    finally:
        for work in works.values():
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

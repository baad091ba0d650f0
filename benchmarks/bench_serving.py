"""A data dir with a champion in -> latency, throughput (ours vs `mlflow models serve`), comparables p99 out.

Single-listing latency p50/p99 and throughput at several concurrencies for our API and `mlflow models serve`
of the same registered model, plus comparables p99 against a full-size reference set, printed and as JSON.
Both servers run as separate processes on loopback; the load comes from a third process (asyncio streams with
prebuilt keep-alive requests, so the client takes little of the shared CPU), and the client never shares an
interpreter with a server. The model alone is timed in this process too: one
listing per call (what each request pays) and a batch of `--batch-rows` (what `pricewise predict` pays per
chunk). Example:

    PRICEWISE_DATA_DIR=/tmp/serve-dev python benchmarks/bench_serving.py --out /tmp/bench/serving.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

from pricewise.models.comparables import ComparablesIndex
from pricewise.models.suggester import PriceSuggester
from pricewise.serving.schemas import EXAMPLE_LISTING
from pricewise.settings import Settings
from pricewise.store import tracking
from pricewise.store.registry import load_suggester

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE = REPO.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
FULL_ROWS = 1_482_535
LISTING = EXAMPLE_LISTING
GOALS = {"p99_ms_at_8": 15.0, "throughput_ratio": 3.0, "comparables_p99_ms": 50.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class _Connection:
    """One keep-alive HTTP/1.1 connection sending a prebuilt request and reading Content-Length responses.

    A general-purpose client (httpx) spends about as much CPU per request as the servers under test, on the
    same two cores; this one sends bytes and reads a status line, headers and a sized body, so nearly all of
    the machine goes to the servers. Responses without Content-Length (chunked) count as errors.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        """Send one request and read its whole response; returns the status code."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def raw_post(url: str, body: dict[str, Any]) -> tuple[str, int, bytes]:
    """(host, port, request bytes) of a JSON POST to url."""
    parsed = urlsplit(url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return str(parsed.hostname), int(parsed.port or 80), head.encode() + payload


async def _load(url: str, body: dict[str, Any], concurrency: int, total: int) -> dict[str, float]:
    host, port, raw = raw_post(url, body)
    latencies: list[float] = []
    errors = 0
    remaining = total
    connections = [await _Connection.open(host, port) for _ in range(concurrency)]
    for _ in range(min(20, total)):  # warm-up: connections, caches, lazy imports
        await connections[0].request(raw)

    async def user(connection: _Connection) -> None:
        nonlocal errors, remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            status = await connection.request(raw)
            elapsed = time.perf_counter() - started
            if status == 200:
                latencies.append(elapsed)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(user(connection) for connection in connections))
    wall = time.perf_counter() - started
    for connection in connections:
        connection.close()
    ms = np.asarray(latencies) * 1000
    return {
        "requests": float(total),
        "errors": float(errors),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "throughput_rps": round(len(latencies) / wall, 1),
    }


def load_from_other_process(url: str, body: dict[str, Any], concurrency: int, total: int) -> dict[str, float]:
    """Run the load in this (client) process; called through a ProcessPoolExecutor."""
    return asyncio.run(_load(url, body, concurrency, total))


def bench_servers(
    args: argparse.Namespace, env: dict[str, str], client: ProcessPoolExecutor
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    ours_port, mlflow_port = free_port(), free_port()
    servers = {
        "pricewise": (
            [str(BIN / "pricewise"), "serve"],
            {"PRICEWISE_SERVE_PORT": str(ours_port), "PRICEWISE_SERVE_WORKERS": str(args.workers)},
            f"http://127.0.0.1:{ours_port}/ready",
            f"http://127.0.0.1:{ours_port}/v1/suggestions",
            LISTING,
        ),
        "mlflow": (
            [
                str(BIN / "mlflow"), "models", "serve", "-m", "models:/pricewise@champion", "--env-manager",
                "local", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", str(args.workers),
            ],
            {},
            f"http://127.0.0.1:{mlflow_port}/ping",
            f"http://127.0.0.1:{mlflow_port}/invocations",
            {"dataframe_records": [LISTING]},
        ),
    }  # fmt: skip
    for name, (command, extra_env, ready_url, url, body) in servers.items():
        log = Path(tempfile.gettempdir()) / f"bench-serving-{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, env={**env, **extra_env}, stdout=sink, stderr=sink, start_new_session=True
            )
        try:
            wait_ready(ready_url, process)
            results[name] = {}
            for concurrency in args.concurrency:
                figures = client.submit(
                    load_from_other_process, url, body, concurrency, args.requests
                ).result()
                results[name][str(concurrency)] = figures
                print(f"{name:9} c={concurrency:<3} {figures}", flush=True)
        finally:
            stop(process)
    return results


def champion(env: dict[str, str]) -> PriceSuggester:
    os.environ.update(env)
    tracking.configure(Settings())
    return load_suggester("models:/pricewise@champion")


def scaled_rows(rows: int) -> pd.DataFrame:
    path = Path(tempfile.gettempdir()) / "pricewise-bench" / f"train_{rows}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "make_scaled_data.py"), "--rows", str(rows), "--out", str(path)],
            check=True,
        )  # fmt: skip
    return pd.read_parquet(path)


def bench_model(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    suggester = champion(env)
    one = pd.DataFrame([LISTING])
    for _ in range(50):  # warm-up: lazy lookup tables, allocator
        suggester.suggest(one)
    latencies = []
    for _ in range(args.model_calls):
        t0 = time.perf_counter()
        suggester.suggest(one)
        latencies.append(time.perf_counter() - t0)
    ms = np.asarray(latencies) * 1000
    batch = scaled_rows(args.batch_rows).drop(columns=["train_id", "price"], errors="ignore")
    seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        suggester.suggest(batch)
        seconds.append(time.perf_counter() - t0)
    figures = {
        "single_calls": len(latencies),
        "single_p50_ms": round(float(np.percentile(ms, 50)), 3),
        "single_p99_ms": round(float(np.percentile(ms, 99)), 3),
        "batch_rows": len(batch),
        "batch_best_s": round(min(seconds), 2),
        "batch_rows_per_s": round(len(batch) / min(seconds)),
    }
    print(f"model     {figures}", flush=True)
    return figures


def bench_comparables(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    suggester = champion(env)
    frame = scaled_rows(args.reference_rows)
    started = time.perf_counter()
    index = ComparablesIndex.from_frame(suggester.model.builder_, frame, frame["price"].to_numpy())
    build_seconds = time.perf_counter() - started
    queries = pd.read_csv(SAMPLE, sep="\t").sample(args.queries, random_state=0)
    latencies = []
    for i in range(len(queries)):
        one = queries.iloc[[i]]
        t0 = time.perf_counter()
        index.nearest(one, 5)
        latencies.append(time.perf_counter() - t0)
    ms = np.asarray(latencies) * 1000
    figures = {
        "reference_rows": len(index),
        "index_build_s": round(build_seconds, 1),
        "index_nnz": int(index.matrix.nnz),
        "queries": len(latencies),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }
    print(f"comparables {figures}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="Measured requests per concurrency level.")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--workers", type=int, default=1, help="Worker processes of each server.")
    parser.add_argument("--reference-rows", type=int, default=FULL_ROWS)
    parser.add_argument("--queries", type=int, default=300, help="Comparables queries.")
    parser.add_argument("--skip-comparables", action="store_true")
    parser.add_argument("--skip-servers", action="store_true", help="Time the model and comparables only.")
    parser.add_argument("--model-calls", type=int, default=2000, help="Single-listing model calls timed.")
    parser.add_argument("--batch-rows", type=int, default=50_000, help="Rows of the timed batch model call.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args()
    # `mlflow models serve` execs `uvicorn` from PATH: put this virtualenv's bin first.
    env = {
        **os.environ,
        "PRICEWISE_SERVE_HOST": "127.0.0.1",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("PRICEWISE_ADMIN_TOKEN", None)
    env["MLFLOW_TRACKING_URI"] = Settings().tracking_uri
    results: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    if not args.skip_servers:
        with ProcessPoolExecutor(1) as client:
            results["servers"] = bench_servers(args, env, client)
        results["workers"] = args.workers
        ours, theirs = results["servers"]["pricewise"], results["servers"]["mlflow"]
        results["throughput_ratio"] = {
            c: round(ours[c]["throughput_rps"] / max(theirs[c]["throughput_rps"], 1e-9), 2) for c in ours
        }
    results["model"] = bench_model(args, env)
    if not args.skip_comparables:
        results["comparables"] = bench_comparables(args, env)
    results["goals"] = GOALS
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

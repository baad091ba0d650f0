"""A data dir with a champion in -> latency, throughput (ours vs `mlflow models serve`), comparables p99 out.

Single-listing latency p50/p99 and throughput at several concurrencies for our API and `mlflow models serve`
of the same registered model, plus comparables p99 against a full-size reference set, printed and as JSON.
Both servers run as separate processes on loopback; the load comes from a third process (asyncio streams with
prebuilt keep-alive requests, so the client takes little of the shared CPU), and the client never shares an
interpreter with a server. The model alone is timed in this process too: one
listing per call (what each request pays) and a batch of `--batch-rows` (what `pricewise predict` pays per
chunk). Example:

    PRICEWISE_DATA_DIR=/tmp/serve-dev python benchmarks/bench_serving.py --out /tmp/bench/serving.json

`--log sqlite,postgres` measures our API once per prediction-log backend (same model, client and
concurrencies, then `mlflow models serve` as usual), prints rps and p50/p99 per backend with the ratio
PostgreSQL/SQLite and the rows each log gained, and adds them to the JSON under `log_backends`. The SQLite run
uses the default log under the data dir; the PostgreSQL run writes to a fresh database on `--postgres-url` (a
server you run, the URL as for PRICEWISE_PREDICTION_LOG_URL; the database is created and dropped there) or,
without one, on a throwaway local cluster started through `tests.support.postgres`: this benchmark imports the
test support package for that (putting the repository root on sys.path), needs the PostgreSQL server
binaries, and that cluster runs with fsync off, so its commits cost less than on a durable server. Without
`--log` our API uses whatever prediction log the environment gives it, as before.
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
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
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
from pricewise.store.prediction_log import PredictionLog, default_url
from pricewise.store.registry import load_suggester

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE = REPO.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
FULL_ROWS = 1_482_535
LISTING = EXAMPLE_LISTING
GOALS = {"p99_ms_at_8": 15.0, "throughput_ratio": 3.0, "comparables_p99_ms": 50.0}
LOG_BACKENDS = ("sqlite", "postgres")


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


def pricewise_server(port: int, workers: int) -> tuple[list[str], dict[str, str], str, str, dict[str, Any]]:
    """(command, extra environment, ready URL, request URL, body) of our API on port."""
    return (
        [str(BIN / "pricewise"), "serve"],
        {"PRICEWISE_SERVE_PORT": str(port), "PRICEWISE_SERVE_WORKERS": str(workers)},
        f"http://127.0.0.1:{port}/ready",
        f"http://127.0.0.1:{port}/v1/suggestions",
        LISTING,
    )


def bench_servers(
    args: argparse.Namespace,
    env: dict[str, str],
    client: ProcessPoolExecutor,
    log_urls: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Load each server in turn. log_urls maps a prediction-log backend to the PRICEWISE_PREDICTION_LOG_URL
    our API gets for it (None: the default SQLite log); the first backend's server is named `pricewise`, the
    others `pricewise-<backend>`. Without log_urls our API keeps the environment's log."""
    results: dict[str, Any] = {}
    servers: dict[str, tuple[list[str], dict[str, str], str, str, dict[str, Any]]] = {}
    for i, (backend, log_url) in enumerate(
        (log_urls or {"": os.environ.get("PRICEWISE_PREDICTION_LOG_URL")}).items()
    ):
        server = pricewise_server(free_port(), args.workers)
        if log_urls is not None and log_url is not None:
            server[1]["PRICEWISE_PREDICTION_LOG_URL"] = log_url
        servers["pricewise" if i == 0 else f"pricewise-{backend}"] = server
    mlflow_port = free_port()
    servers["mlflow"] = (
        [
            str(BIN / "mlflow"), "models", "serve", "-m", "models:/pricewise@champion", "--env-manager",
            "local", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", str(args.workers),
        ],
        {},
        f"http://127.0.0.1:{mlflow_port}/ping",
        f"http://127.0.0.1:{mlflow_port}/invocations",
        {"dataframe_records": [LISTING]},
    )  # fmt: skip
    for name, (command, extra_env, ready_url, url, body) in servers.items():
        log = Path(tempfile.gettempdir()) / f"bench-serving-{name}.log"
        server_env = {**env, **extra_env}
        if log_urls is not None and "PRICEWISE_PREDICTION_LOG_URL" not in extra_env:
            server_env.pop("PRICEWISE_PREDICTION_LOG_URL", None)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, env=server_env, stdout=sink, stderr=sink, start_new_session=True
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


def logged_rows(log_urls: dict[str, str | None]) -> dict[str, int]:
    """Suggestions in each backend's prediction log now (None: the default SQLite log under the data dir)."""
    counts = {}
    for backend, url in log_urls.items():
        log = PredictionLog(url or default_url(Settings(prediction_log_url=None)))
        try:
            counts[backend] = log.count()
        finally:
            log.close()
    return counts


@contextmanager
def postgres_log_url(url: str | None) -> Iterator[str]:
    """A fresh database for the PostgreSQL prediction log: on the server of url (created there, dropped
    after), or on a throwaway local cluster (tests.support.postgres) when url is None."""
    import psycopg  # noqa: PLC0415 - the PostgreSQL driver, only when that backend is measured

    if url is None:
        # The test support package is no installed module: a script run puts benchmarks/, not the repository
        # root, on the path.
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.support.postgres import PostgresCluster  # noqa: PLC0415 - only for a throwaway cluster

        cluster = PostgresCluster.create()
        try:
            yield cluster.fresh_database()
        finally:
            cluster.destroy()
        return
    parsed = urlsplit(url)
    name = f"pricewise_bench_{os.getpid()}"
    admin = parsed._replace(scheme="postgresql").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def log_backend_table(servers: dict[str, Any], backends: list[str], logged: dict[str, int]) -> dict[str, Any]:
    """Per backend and concurrency: rps, p50, p99; with both backends, PostgreSQL/SQLite of each; and the rows
    each backend's log gained during the run. Printed too."""
    names = {backend: "pricewise" if i == 0 else f"pricewise-{backend}" for i, backend in enumerate(backends)}
    table: dict[str, Any] = {backend: servers[name] for backend, name in names.items()}
    metrics = ("throughput_rps", "p50_ms", "p99_ms")
    header = f"{'log':9} {'c':>3} {'rps':>8} {'p50_ms':>8} {'p99_ms':>8}"
    lines = [header]
    for backend in backends:
        for c, figures in table[backend].items():
            lines.append(f"{backend:9} {c:>3} " + " ".join(f"{figures[m]:>8}" for m in metrics))
    if set(LOG_BACKENDS) <= set(backends):
        ratio = {
            c: {m: round(table["postgres"][c][m] / max(table["sqlite"][c][m], 1e-9), 2) for m in metrics}
            for c in table["sqlite"]
        }
        table["ratio_postgres_sqlite"] = ratio
        for c, figures in ratio.items():
            lines.append(f"{'pg/sqlite':9} {c:>3} " + " ".join(f"{figures[m]:>8}" for m in metrics))
    table["logged_rows"] = logged
    lines.append("rows logged during the run: " + ", ".join(f"{b} {n}" for b, n in logged.items()))
    print("\n".join(lines), flush=True)
    return table


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
    parser.add_argument(
        "--log",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=None,
        help="Prediction-log backends our API is measured with, in order: sqlite, postgres or both "
        "(default: the environment's log, measured once).",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="postgresql://user:password@host:port/db of a server for the postgres log (a fresh database is "
        "created and dropped there); default: a throwaway local cluster.",
    )
    args = parser.parse_args()
    unknown = [b for b in args.log or [] if b not in LOG_BACKENDS]
    if unknown or (args.log is not None and len(set(args.log)) != len(args.log)) or args.log == []:
        parser.error(f"--log takes distinct backends from {', '.join(LOG_BACKENDS)}; got {args.log}")
    if args.log is not None and args.skip_servers:
        parser.error("--log measures the servers: drop --skip-servers")
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
            if args.log is None:
                results["servers"] = bench_servers(args, env, client)
            elif "postgres" in args.log:
                with postgres_log_url(args.postgres_url) as pg_url:
                    urls = {b: pg_url if b == "postgres" else None for b in args.log}
                    before = logged_rows(urls)
                    results["servers"] = bench_servers(args, env, client, urls)
                    after = logged_rows(urls)
            else:
                urls = dict.fromkeys(args.log)
                before = logged_rows(urls)
                results["servers"] = bench_servers(args, env, client, urls)
                after = logged_rows(urls)
        results["workers"] = args.workers
        if args.log is not None:
            logged = {b: after[b] - before[b] for b in args.log}
            results["log_backends"] = log_backend_table(results["servers"], args.log, logged)
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

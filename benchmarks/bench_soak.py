"""A promoted workspace in -> a soak of mixed requests against a two-worker `pricewise serve` out: counts per
status class (no 5xx allowed), whether every returned suggestion is in the prediction log, and the server's
memory (parent and workers) before and after.

The requests are drawn in fixed proportions from one seeded generator: single suggestions of listings from the
shared sample, invalid bodies (bad JSON, missing or out-of-range fields, too long a title: 4xx expected), batch
requests of 2-5 listings and seller feedback on suggestions received earlier (the feedback limit is raised for
the soak: a few clients on one address would hit the production limit in seconds). Memory is the RSS from
/proc of the uvicorn parent and every descendant, read once the server is ready, after a warm-up and after the
soak. Example:

    python benchmarks/bench_soak.py --requests 20000 --clients 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml
from bench_monitor import prepare_workspace
from bench_serving import free_port, stop, wait_ready

from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
COLUMNS = ["name", "brand_name", "category_name", "item_condition_id", "shipping", "item_description"]
MIX = {"single": 0.55, "invalid": 0.15, "batch": 0.15, "feedback": 0.15}
GOAL_GROWTH_PERCENT = 10.0
WARMUP_REQUESTS = 300


def listings(rows: int, seed: int) -> list[dict[str, Any]]:
    """Listings of the shared sample as a seller would send them (missing fields left out)."""
    frame = pd.read_csv(SAMPLE, sep="\t", usecols=COLUMNS).sample(rows, random_state=seed)
    out = []
    for record in frame.to_dict(orient="records"):
        listing = {k: v for k, v in record.items() if not (isinstance(v, float) and pd.isna(v))}
        listing["name"] = str(listing.get("name") or "item")[:200]
        if "item_description" in listing:
            listing["item_description"] = str(listing["item_description"])[:5000]
        listing["item_condition_id"] = int(listing["item_condition_id"])
        listing["shipping"] = int(listing["shipping"])
        out.append(listing)
    return out


def invalid_body(rng: random.Random, listing: dict[str, Any]) -> tuple[str, bytes]:
    """A request the API must refuse with a 4xx: (path, body)."""
    kind = rng.randrange(6)
    if kind == 0:
        return "/v1/suggestions", b'{"name": "broken'
    if kind == 1:
        return "/v1/suggestions", json.dumps({k: v for k, v in listing.items() if k != "name"}).encode()
    if kind == 2:
        return "/v1/suggestions", json.dumps({**listing, "item_condition_id": 9}).encode()
    if kind == 3:
        return "/v1/suggestions", json.dumps({**listing, "name": "x" * 5000}).encode()
    if kind == 4:
        return "/v1/suggestions/batch", json.dumps({"listings": []}).encode()
    return "/v1/feedback", json.dumps({"request_id": "not hex!", "chosen_price": -1}).encode()


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    returned_ids: list[str] = field(default_factory=list)
    transport_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(base_url: str, plan: list[str], pool: list[dict[str, Any]], seed: int, tally: Tally) -> None:
    """Send the planned requests one after the other on a keep-alive connection."""
    rng = random.Random(seed)
    mine: list[tuple[str, float]] = []  # (request id, price) this client received, for its feedback
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for planned in plan:
            listing = rng.choice(pool)
            kind = "single" if planned == "feedback" and not mine else planned
            if kind == "single":
                path, body = "/v1/suggestions", json.dumps(listing).encode()
            elif kind == "batch":
                path = "/v1/suggestions/batch"
                body = json.dumps({"listings": rng.sample(pool, rng.randint(2, 5))}).encode()
            elif kind == "feedback":
                request_id, price = rng.choice(mine)
                path = "/v1/feedback"
                body = json.dumps({"request_id": request_id, "chosen_price": round(price, 2)}).encode()
            else:
                path, body = invalid_body(rng, listing)
            try:
                response = http.post(path, content=body, headers=headers)
            except httpx.TransportError:
                with tally.lock:
                    tally.transport_errors += 1
                continue
            status = response.status_code
            ids: list[tuple[str, float]] = []
            if status == 200 and kind == "single":
                answer = response.json()
                ids = [(answer["request_id"], answer["price"])]
            elif status == 200 and kind == "batch":
                ids = [(s["request_id"], s["price"]) for s in response.json()["suggestions"]]
            mine.extend(ids)
            with tally.lock:
                tally.statuses[f"{status // 100}xx"] += 1
                tally.by_kind[f"{kind} {status}"] += 1
                tally.returned_ids.extend(request_id for request_id, _ in ids)
                if status >= 500:
                    tally.server_errors.append(f"{kind} {path} {status}: {response.text[:200]}")


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it, from /proc."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def rss_kib(pid: int) -> int:
    """Resident set size of one process (VmRSS, KiB); 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pid: int) -> dict[int, int]:
    """RSS (KiB) of the server's parent and every worker."""
    return {p: rss_kib(p) for p in descendants(pid)}


def soak_config(root: Path, feedback_per_minute: int) -> Path:
    """The workspace's config with the feedback limit raised for the soak."""
    path = root / "config.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["serve"]["feedback_per_minute"] = feedback_per_minute
    soak = root / "soak-config.yaml"
    soak.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=20_000, help="Requests of the soak (after the warm-up)."
    )
    parser.add_argument("--clients", type=int, default=4, help="Concurrent clients (one connection each).")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes of the server.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workspace", type=Path, default=None, help="A workspace kept by an earlier --keep run."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the workspace for another run.")
    args = parser.parse_args()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="pricewise-bench-soak-"))
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(root / "data"),
        "PRICEWISE_CONFIG_PATH": str(root / "config.yaml"),
    }
    env.pop("PRICEWISE_ADMIN_TOKEN", None)
    if args.workspace is None:
        started = time.perf_counter()
        prepare_workspace(root, env)
        print(f"workspace trained and promoted in {time.perf_counter() - started:.0f} s", flush=True)
    port = free_port()
    env.update(
        {
            "PRICEWISE_CONFIG_PATH": str(soak_config(root, feedback_per_minute=1_000_000)),
            "PRICEWISE_SERVE_HOST": "127.0.0.1",
            "PRICEWISE_SERVE_PORT": str(port),
            "PRICEWISE_SERVE_WORKERS": str(args.workers),
        }
    )
    base_url = f"http://127.0.0.1:{port}"
    log_path = root / "soak-server.log"
    with log_path.open("wb") as sink:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "pricewise"), "serve"],
            env=env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    try:
        wait_ready(f"{base_url}/ready", server)
        deadline = time.monotonic() + 120
        while len(descendants(server.pid)) < 1 + args.workers and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # the last worker to start finishes loading its model
        ready = memory(server.pid)
        pool = listings(2000, args.seed)
        rng = random.Random(args.seed)
        kinds, weights = list(MIX), list(MIX.values())

        def run(total: int, seed: int, tally: Tally) -> float:
            plan = rng.choices(kinds, weights, k=total)
            shares = [plan[i :: args.clients] for i in range(args.clients)]
            threads = [
                threading.Thread(target=client, args=(base_url, share, pool, seed + i, tally))
                for i, share in enumerate(shares)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - started

        warm = Tally()
        run(WARMUP_REQUESTS, args.seed + 1000, warm)
        before = memory(server.pid)
        tally = Tally()
        seconds = run(args.requests, args.seed, tally)
        after = memory(server.pid)
    finally:
        stop(server)
    log = PredictionLog(default_url(Settings(data_dir=root / "data")))
    try:
        logged = log.logged_request_ids()
    finally:
        log.close()
    returned = set(tally.returned_ids) | set(warm.returned_ids)
    missing = returned - logged
    sent = sum(tally.statuses.values())
    print(
        f"soak: {sent:,} requests in {seconds:.1f} s ({sent / seconds:.0f}/s) from {args.clients} clients on "
        f"{args.workers} workers; transport errors {tally.transport_errors}"
    )
    print("status classes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.statuses.items())))
    print("by kind and status: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(tally.by_kind.items())))
    print(
        f"suggestions returned {len(returned):,} (soak {len(tally.returned_ids):,} + warm-up "
        f"{len(warm.returned_ids):,}), in the prediction log {len(returned & logged):,}, missing {len(missing):,}"
    )

    def line(name: str, figures: dict[int, int]) -> str:
        parts = ", ".join(f"{pid}: {kib / 1024:.0f} MiB" for pid, kib in sorted(figures.items()))
        return f"{name:<22} total {sum(figures.values()) / 1024:7.1f} MiB ({parts})"

    print("server RSS (parent + workers, /proc VmRSS):")
    print(line("  ready", ready))
    print(line(f"  after {WARMUP_REQUESTS} warm-up", before))
    print(line("  after the soak", after))
    growth = 100 * (sum(after.values()) - sum(before.values())) / sum(before.values())
    from_ready = 100 * (sum(after.values()) - sum(ready.values())) / sum(ready.values())
    print(
        f"RSS growth during the soak {growth:+.1f}% (goal at most {GOAL_GROWTH_PERCENT:.0f}%); "
        f"since ready {from_ready:+.1f}%"
    )
    if args.keep or args.workspace:
        print(f"workspace kept at {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    failures = []
    if tally.server_errors or tally.statuses.get("5xx"):
        failures.append(f"{len(tally.server_errors)} server errors, e.g. {tally.server_errors[:3]}")
    if tally.transport_errors:
        failures.append(f"{tally.transport_errors} transport errors")
    if missing:
        failures.append(f"{len(missing)} returned suggestions missing from the prediction log")
    if growth > GOAL_GROWTH_PERCENT:
        failures.append(f"RSS grew {growth:.1f}%")
    if failures:
        raise SystemExit("soak failed: " + "; ".join(failures))


if __name__ == "__main__":
    main()

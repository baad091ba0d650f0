"""Faults on real uvicorn servers: a killed worker, new and broken champions, no registry, no trained model."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import mlflow
import psutil
import pytest
import yaml
from mlflow import MlflowClient

from pricewise.store import tracking
from pricewise.store.prediction_log import PredictionLog
from tests.support.servers import ADMIN_TOKEN, LISTING, Server, free_port, start_server
from tests.support.workspaces import Workspace, clone_workspace

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Load:
    """Threads posting suggestions until stopped; keeps every request id a client received."""

    def __init__(self, base_url: str, threads: int = 4) -> None:
        self.base_url = base_url
        self.received: list[str] = []
        self.versions: list[str] = []
        self.statuses: list[int] = []
        self.transport_errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v1/suggestions", json=LISTING)
                except httpx.TransportError:
                    with self._lock:
                        self.transport_errors += 1
                    continue
                with self._lock:
                    self.statuses.append(response.status_code)
                    if response.status_code == 200:
                        body = response.json()
                        self.received.append(body["request_id"])
                        self.versions.append(body["model"]["version"])

    @contextmanager
    def running(self) -> Iterator[Load]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=60)

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= n, f"only {len(self.received)} responses"


def with_docs(ws: Workspace, directory: Path) -> str:
    """The path of a copy of the workspace's config with serve.expose_docs on (the schema is off by default)."""
    raw = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    raw["serve"]["expose_docs"] = True
    path = directory / "pricewise-docs.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def _worker_pids(master_pid: int) -> list[int]:
    """The live worker processes of a uvicorn master (a child that already exited is not one)."""
    workers = []
    for child in psutil.Process(master_pid).children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                workers.append(child.pid)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return workers


@contextmanager
def two_workers(ws: Workspace, log_dir: Path, **env: str) -> Iterator[tuple[Server, list[int]]]:
    """A server with two worker processes (environment `env` added), and their pids."""
    server = start_server(ws, log_dir, workers=2, **env)
    try:
        # /ready answers once one worker is up; the second may still be starting on a loaded machine.
        deadline = time.monotonic() + 60
        workers = _worker_pids(server.process.pid)
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = _worker_pids(server.process.pid)
        assert len(workers) == 2, workers
        yield server, workers
    finally:
        server.stop()


@pytest.fixture
def own(serving_workspace: Workspace, tmp_path: Path) -> Workspace:
    """A clone of the session's promoted workspace: these servers log, cache and change champions in it."""
    return clone_workspace(serving_workspace, tmp_path / "own")


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_killing_a_worker_under_load_loses_no_returned_suggestion(
    own: Workspace, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    # Both workers write one log: SQLite's file under the data directory, or a PostgreSQL database of its own.
    url = request.getfixturevalue("postgres").fresh_database() if store == "postgres" else None
    env = {"PRICEWISE_PREDICTION_LOG_URL": url} if url else {}
    with two_workers(own, tmp_path, **env) as (server, workers):
        load = Load(server.base_url)
        with load.running():
            load.wait_for(200)
            os.kill(workers[0], signal.SIGKILL)
            received_at_kill = len(load.received)
            load.wait_for(received_at_kill + 300)
        assert set(load.statuses) == {200}, {s: load.statuses.count(s) for s in set(load.statuses)}
        log = PredictionLog(url) if url else server.prediction_log()
        try:
            missing = set(load.received) - log.logged_request_ids()
        finally:
            log.close()
        assert not missing, f"{len(missing)} returned suggestions are not in the log"
        assert len(load.received) >= 500


def _metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in:\n{text}")


def test_every_worker_answers_metrics_for_the_whole_server(own: Workspace, tmp_path: Path) -> None:
    with two_workers(own, tmp_path) as (server, workers):
        for _ in range(40):  # a new connection each time: the kernel spreads them over both workers
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                assert client.post("/v1/suggestions", json=LISTING).status_code == 200
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert client.post("/v1/suggestions", json={"name": "no codes"}).status_code == 422
        ok = 'pricewise_http_requests_total{method="POST",route="/v1/suggestions",status="200"}'
        invalid = 'pricewise_http_errors_total{kind="4xx",route="/v1/suggestions"}'
        for _ in range(8):
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                text = client.get("/metrics").text
            assert _metric(text, ok) == 40, "each scrape counts the requests of both workers"
            assert _metric(text, invalid) == 1
            model_pids = {
                int(line.split('pid="')[1].split('"')[0])
                for line in text.splitlines()
                if line.startswith("pricewise_model_info{") and line.endswith(" 1.0")
            }
            assert model_pids == set(workers), "the model gauge is reported by each live worker"


def _register_copy_of_champion(ws: Workspace) -> str:
    tracking.configure(ws.settings)
    client = MlflowClient()
    champion = client.get_model_version_by_alias("pricewise", "champion")
    copy = client.create_model_version(
        "pricewise", source=champion.source, run_id=champion.run_id, tags=champion.tags
    )
    return str(copy.version)


class BrokenModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Loads in this process only: the server cannot import the test module that defines it."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input


def _register_broken(ws: Workspace) -> str:
    tracking.configure(ws.settings)
    experiment = tracking.experiment_id(ws.settings, "pricewise")
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=BrokenModel(), registered_model_name="pricewise"
        )
    return str(info.registered_model_version)


def _set_champion(ws: Workspace, version: str) -> None:
    tracking.configure(ws.settings)
    MlflowClient().set_registered_model_alias("pricewise", "champion", version)


def test_new_champion_is_picked_up_without_failing_requests_and_a_broken_one_is_refused(
    own: Workspace, tmp_path: Path
) -> None:
    server = start_server(own, tmp_path)
    good = _register_copy_of_champion(own)
    broken = _register_broken(own)
    try:
        with server.client() as client:
            load = Load(server.base_url, threads=2)
            with load.running():
                load.wait_for(50)
                _set_champion(own, good)
                reloaded = client.post("/v1/admin/reload", headers=ADMIN)
                load.wait_for(len(load.received) + 50)
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["changed"] is True
            assert set(load.statuses) == {200}
            assert load.transport_errors == 0
            assert load.versions[0] == "1"
            assert load.versions[-1] == good

            _set_champion(own, broken)
            refused = client.post("/v1/admin/reload", headers=ADMIN)
            assert refused.status_code == 409, refused.text
            assert refused.json()["model"]["version"] == good
            assert f"v{broken} failed to load" in refused.json()["detail"]
            assert client.get("/v1/model").json()["version"] == good
            after = client.post("/v1/suggestions", json=LISTING)
            assert after.status_code == 200
            assert after.json()["model"]["version"] == good
            assert 'pricewise_model_reloads_total{outcome="failed"} 1.0' in client.get("/metrics").text
    finally:
        server.stop()


def test_registry_unreachable_at_start_serves_the_cached_last_good_model(
    own: Workspace, tmp_path: Path
) -> None:
    warm = start_server(own, tmp_path)  # loads champion v1 and caches it
    warm.stop()
    dead_registry = f"http://127.0.0.1:{free_port()}"
    server = start_server(own, tmp_path, PRICEWISE_MLFLOW_TRACKING_URI=dead_registry)
    try:
        with server.client() as client:
            model = client.get("/v1/model").json()
            suggestion = client.post("/v1/suggestions", json=LISTING)
        assert model["source"] == "cache"
        assert model["version"] == "1"
        assert model["fallback"] is False
        assert suggestion.status_code == 200
    finally:
        server.stop()


def test_without_a_main_champion_the_registered_rules_baseline_answers_flagged(
    light_champion_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(light_champion_workspace, tmp_path / "ws")
    tracking.configure(ws.settings)
    # No main champion; train pointed the baseline's champion at the baseline it registered.
    MlflowClient().delete_registered_model_alias("pricewise", "champion")
    server = start_server(ws, tmp_path, admin_token=None, PRICEWISE_CONFIG_PATH=with_docs(ws, tmp_path))
    try:
        with server.client() as client:
            ready = client.get("/ready").json()
            response = client.post(
                "/v1/suggestions", params={"include": "explanation,comparables"}, json=LISTING
            )
            admin = client.post("/v1/admin/reload", headers=ADMIN)
            schema = client.get("/openapi.json").json()
            categories = re.findall(r'<option value="([^"]+)"', client.get("/").text)
        assert ready["status"] == "ready"
        assert "baseline" in (ready["detail"] or "")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"]["fallback"] is True
        assert body["model"]["source"] == "baseline-registry"
        assert body["model"]["name"] == "pricewise-baseline"
        assert response.headers["x-pricewise-fallback"] == "true"
        assert body["low"] <= body["price"] <= body["high"]
        assert body["explanation"]["up"] == body["explanation"]["down"] == []
        assert body["comparables"] == [], "the baseline has no text features to find comparables with"
        assert len(categories) > 1, "the baseline carries the category list"
        assert admin.status_code == 404, "no admin token configured: admin endpoints are off"
        assert "/v1/admin/reload" not in schema["paths"]
    finally:
        server.stop()


def test_credentials_in_the_tracking_uri_and_server_paths_are_never_shown(
    light_champion_workspace: Workspace, tmp_path: Path
) -> None:
    own = clone_workspace(light_champion_workspace, tmp_path / "own")
    warm = start_server(own, tmp_path)  # loads champion v1 and caches it
    warm.stop()
    secret = "s3cret-Pa55"
    dead_registry = f"http://pricewise:{secret}@127.0.0.1:{free_port()}"
    unopenable = tmp_path / "decisions-is-a-directory"
    unopenable.mkdir()
    server = start_server(
        own,
        tmp_path,
        PRICEWISE_MLFLOW_TRACKING_URI=dead_registry,
        PRICEWISE_DECISIONS_URL=f"sqlite:///{unopenable}",
    )
    try:
        with server.client() as client:
            ready = client.get("/ready")
            reload = client.post("/v1/admin/reload", headers=ADMIN)
            overview = client.get("/v1/monitoring")
            page = client.get("/monitoring")
    finally:
        server.stop()
    assert ready.status_code == 200
    assert reload.status_code == 200, reload.text
    assert "registry unreachable" in reload.json()["detail"]
    assert "pricewise:***@" in reload.json()["detail"], "the URI is shown, without its password"
    assert overview.json()["promotions"]["state"] == "error"
    assert "<path>" in overview.json()["promotions"]["message"]
    logs = server.logs()
    assert "cannot reach the MLflow tracking server at http://pricewise:***@" in logs
    for text in (logs, reload.text, ready.text, overview.text, page.text):
        assert secret not in text
    for text in (overview.text, page.text, ready.text):
        assert str(tmp_path) not in text, "no server paths in public answers"
        assert str(own.settings.data_dir) not in text

"""The DAGs in dags/ run as Airflow runs in production: a metadata database on PostgreSQL, the scheduler with the
LocalExecutor, the DAG processor and the API server, each its own process of Airflow's virtualenv, all on
127.0.0.1. The training DAG is triggered through the REST API (a token from the simple auth manager) and the
monitoring DAG runs on its schedule (every minute here); task states, tries and logs are read back through the
API, results from what the tasks wrote (warehouse, MLflow store, decision tables)."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from pricewise.settings import Settings
from pricewise.store import warehouse
from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port
from tests.support.workspaces import REPO, TRAIN_SAMPLE, light_config_text

pytestmark = pytest.mark.integration

AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
PRICEWISE = Path(sys.executable).parent / "pricewise"
TRAINING_TASKS = ("harvest_feedback", "ingest", "validate", "train", "evaluate", "promote")
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 300
ADMIN = "admin"


@dataclass
class Deployment:
    """Airflow's three services on one metadata database, and a REST client logged in as the admin."""

    home: Path
    api: httpx.Client
    processes: dict[str, subprocess.Popen[bytes]]
    settings: Settings

    def get(self, path: str) -> Any:
        response = self.api.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def wait_for_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The run once it has finished (success or failed); fails the test after RUN_TIMEOUT_S."""
        started = time.monotonic()
        while time.monotonic() - started < RUN_TIMEOUT_S:
            run = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}")
            if run["state"] in ("success", "failed"):
                return dict(run)
            self.check_alive()
            time.sleep(2)
        pytest.fail(f"{dag_id} run {run_id} not finished after {RUN_TIMEOUT_S} s: {self.logs()}")

    def tasks(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """Task id -> (state, tries made), from the API."""
        found = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances")
        return {t["task_id"]: (t["state"], int(t["try_number"])) for t in found["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
        """One attempt's log as the API serves it (the events' text, one a line)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/logs/{attempt}"
        response = self.api.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text[:500]
        content = response.json()["content"]
        return "\n".join(str(event.get("event", "")) for event in content if isinstance(event, dict))

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"airflow {name} exited ({process.returncode}): {self.logs()}"

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n" + (self.home / f"{name}.log").read_text(errors="replace")[-2000:]
            for name in self.processes
        )


def quote(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def airflow_env(home: Path, metadata_url: str, api_port: int, data: Settings) -> dict[str, str]:
    """Airflow's settings for the three services (and the pricewise tasks they run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PRICEWISE_", "MLFLOW_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url.replace(
                "postgresql://", "postgresql+psycopg2://"
            ),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PRICEWISE_BIN": str(PRICEWISE),
            "PRICEWISE_DAG_RETRY_DELAY_SECONDS": "1",
            "PRICEWISE_MONITORING_SCHEDULE": "* * * * *",
            "PRICEWISE_DATA_DIR": str(data.data_dir),
            "PRICEWISE_CONFIG_PATH": str(data.config_path),
            "PRICEWISE_WORKDIR": str(data.data_dir.parent),
        }
    )
    return env


def stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Each service and everything it started (its own process group): TERM, then KILL after 20 s."""
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes.values():
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def deployment(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The metadata database migrated, the three services up and the DAGs parsed; all stopped at the end."""
    assert AIRFLOW.is_file(), f"Airflow's virtualenv is missing ({AIRFLOW} not found): run `make airflow`"
    home = tmp_path_factory.mktemp("airflow_prod")
    root = tmp_path_factory.mktemp("airflow_data")
    config = root / "pricewise.yaml"
    config.write_text(light_config_text(), encoding="utf-8")
    data = Settings(data_dir=root / "data", config_path=config)
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(f'{{"{ADMIN}": "{password}"}}', encoding="utf-8")
    port = free_port()
    env = airflow_env(home, postgres.fresh_database(), port, data)
    migrated = subprocess.run(
        [str(AIRFLOW), "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    commands = {
        "api-server": ["api-server"],
        # The scheduler's log server would listen on every interface; the API server reads the task logs from
        # the shared AIRFLOW_HOME instead.
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name, args in commands.items():
        with (home / f"{name}.log").open("wb") as log:
            processes[name] = subprocess.Popen(
                [str(AIRFLOW), *args],
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deployment = Deployment(home, api, processes, data)
    try:
        token = ""
        started = time.monotonic()
        while not token:
            deployment.check_alive()
            assert time.monotonic() - started < START_TIMEOUT_S, f"API server not up: {deployment.logs()}"
            try:
                answer = api.post("/auth/token", json={"username": ADMIN, "password": password})
                token = answer.json()["access_token"] if answer.status_code in (200, 201) else ""
            except httpx.HTTPError:
                pass
            time.sleep(1)
        api.headers["Authorization"] = f"Bearer {token}"
        while {"pricewise_training", "pricewise_monitoring"} - {
            d["dag_id"] for d in deployment.get("/api/v2/dags")["dags"]
        }:
            deployment.check_alive()
            assert time.monotonic() - started < START_TIMEOUT_S, f"DAGs not parsed: {deployment.logs()}"
            time.sleep(1)
        yield deployment
    finally:
        api.close()
        stop(processes)


def unpause(deployment: Deployment, dag_id: str) -> None:
    response = deployment.api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def training_run(deployment: Deployment) -> dict[str, Any]:
    """A run of the training DAG triggered through the REST API on the shared sample, finished."""
    unpause(deployment, "pricewise_training")
    response = deployment.api.post(
        "/api/v2/dags/pricewise_training/dagRuns",
        json={"logical_date": None, "conf": {"source": str(TRAIN_SAMPLE)}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["triggered_by"] == "rest_api"
    return deployment.wait_for_run("pricewise_training", response.json()["dag_run_id"])


def test_the_training_dag_triggered_through_the_api_runs_every_task_on_the_scheduler(
    deployment: Deployment, training_run: dict[str, Any]
) -> None:
    run_id = training_run["dag_run_id"]
    assert training_run["state"] == "success", deployment.logs()
    assert training_run["run_type"] == "manual"
    assert deployment.tasks("pricewise_training", run_id) == dict.fromkeys(TRAINING_TASKS, ("success", 1))
    # What the tasks did: one priced batch ingested and champion v1 registered in the data directory's store.
    with warehouse.connect(deployment.settings, read_only=True) as con:
        batches = con.execute("SELECT kind, source_path, row_count FROM batches").fetchall()
    assert batches == [("priced", str(TRAIN_SAMPLE), 8000)]
    uri = deployment.settings.tracking_uri
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        "pricewise", "champion"
    )
    assert str(champion.version) == "1"


def test_task_logs_are_served_by_the_api(deployment: Deployment, training_run: dict[str, Any]) -> None:
    log = deployment.task_log("pricewise_training", training_run["dag_run_id"], "train")
    assert "pricewise train" in log, log[-2000:]


def test_the_monitoring_dag_runs_on_its_schedule(
    deployment: Deployment, training_run: dict[str, Any]
) -> None:
    assert training_run["state"] == "success"  # something to monitor: a champion
    unpause(deployment, "pricewise_monitoring")
    started = time.monotonic()
    scheduled: list[dict[str, Any]] = []
    while not scheduled:
        assert time.monotonic() - started < RUN_TIMEOUT_S, f"no scheduled monitoring run: {deployment.logs()}"
        runs = deployment.get("/api/v2/dags/pricewise_monitoring/dagRuns")["dag_runs"]
        scheduled = [r for r in runs if r["run_type"] == "scheduled"]
        time.sleep(2)
    run = deployment.wait_for_run("pricewise_monitoring", scheduled[0]["dag_run_id"])
    assert run["state"] == "success", deployment.logs()
    assert run["triggered_by"] == "timetable"
    # The test-sized schedule from PRICEWISE_MONITORING_SCHEDULE, not the default daily one.
    assert deployment.get("/api/v2/dags/pricewise_monitoring")["timetable_summary"] == "* * * * *"
    states = deployment.tasks("pricewise_monitoring", run["dag_run_id"])
    # No traffic yet: the report is recorded and retraining is not due.
    assert states == {
        "monitor": ("success", 1),
        "decide": ("success", 1),
        "no_retrain": ("success", 1),
        "trigger_training": ("skipped", 0),
    }
    with closing(sqlite3.connect(deployment.settings.data_dir / "decisions.db")) as con:
        recorded = con.execute("SELECT status FROM monitoring_runs").fetchall()
    assert ("empty",) in recorded


def test_a_failing_task_is_retried_by_the_scheduler_and_fails_the_run(
    deployment: Deployment, training_run: dict[str, Any], tmp_path: Path
) -> None:
    assert training_run["state"] == "success"  # one run at a time: this one comes after it
    missing = tmp_path / "no-such-listings.tsv"
    response = deployment.api.post(
        "/api/v2/dags/pricewise_training/dagRuns",
        json={"logical_date": None, "conf": {"source": str(missing)}},
    )
    assert response.status_code == 200, response.text
    run = deployment.wait_for_run("pricewise_training", response.json()["dag_run_id"])
    assert run["state"] == "failed"
    states = deployment.tasks("pricewise_training", run["dag_run_id"])
    # PRICEWISE_DAG_RETRIES defaults to 2: three tries of ingest, and nothing after it ran.
    assert states["ingest"] == ("failed", 3)
    assert {states[t][0] for t in ("validate", "train", "evaluate", "promote")} == {"upstream_failed"}
    for attempt in (1, 3):
        assert str(missing) in deployment.task_log("pricewise_training", run["dag_run_id"], "ingest", attempt)
    uri = deployment.settings.tracking_uri
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        "pricewise", "champion"
    )
    assert str(champion.version) == "1"

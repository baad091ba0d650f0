"""The compose stack (docker/compose.yaml) built, brought up and smoke-tested as a user deploys it: PostgreSQL and
the MLflow tracking server in containers, a model trained and promoted by the image's batch commands against
them, then the API (two workers) serving it. Run by `make deploy-test` after it builds the images; needs a Docker
engine and `docker compose` or `docker-compose`. Everything is torn down at the end, volumes included."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from mlflow import MlflowClient

from tests.support.servers import LISTING, free_port
from tests.support.workspaces import REPO, SHIPPED_CONFIG, TRAIN_SAMPLE

pytestmark = pytest.mark.deploy

COMPOSE_FILE = REPO / "docker" / "compose.yaml"
IMAGE = os.environ.get("PRICEWISE_IMAGE", "pricewise")
START_TIMEOUT_S = 240
SERVING_USER = "pricewise-api"


def compose_command() -> list[str]:
    """`docker compose` where the plugin is installed, else the standalone `docker-compose`."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(
        "neither `docker compose` nor `docker-compose` is installed (Debian: apt-get install docker-compose)"
    )


def wait_for(url: str, timeout_s: float, auth: tuple[str, str] | None = None) -> float:
    """Seconds until GET url answers 200; fails the test with the last answer after timeout_s."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout_s:
        try:
            response = httpx.get(url, timeout=5, auth=auth)
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(1)
    pytest.fail(f"{url} not ready after {timeout_s} s: {last}")


def smoke_config() -> str:
    """The shipped config with the main model cut to its Ridge component: the stack is under test, not the
    model, and Ridge trains in seconds where the full ensemble takes minutes in a container."""
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    raw["train"]["params"].update(
        {"n_mlp": 0, "n_binary_mlp": 0, "lgbm_rounds": 0, "embedding.enabled": False}
    )
    return str(yaml.safe_dump(raw))


@dataclass
class Stack:
    """A running compose project and what a client needs to reach it."""

    project: str
    compose: list[str]
    env: dict[str, str]
    api_url: str
    mlflow_url: str
    postgres_url: str
    timings: dict[str, float]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`docker compose -f docker/compose.yaml -p PROJECT ARGS` with the stack's settings."""
        command = [*self.compose, "-f", str(COMPOSE_FILE), "-p", self.project, *args]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=600, check=False)
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        return done

    def container(self, service: str) -> str:
        """The id of the service's container."""
        return self.run("ps", "-q", service).stdout.strip()

    def serving_auth(self) -> tuple[str, str]:
        return (self.env["PRICEWISE_SERVING_MLFLOW_USERNAME"], self.env["PRICEWISE_SERVING_MLFLOW_PASSWORD"])


def batch(stack: Stack, config_dir: Path, command: str) -> str:
    """Run a shell command of `pricewise` batch steps in a one-off container of the image, with the shared
    sample mounted read-only at /raw, a config at /config and a data volume of its own, against the stack's
    tracking server and PostgreSQL stores; returns its output, fails the test on a non-zero exit."""
    env = stack.env
    args = [
        "docker", "run", "--rm", "--network", "host",
        "-v", f"{TRAIN_SAMPLE.parent}:/raw:ro",
        "-v", f"{config_dir}:/config:ro",
        "-v", f"{stack.project}_batch:/data",
        "-e", "PRICEWISE_CONFIG_PATH=/config/pricewise.yaml",
        "-e", f"PRICEWISE_MLFLOW_TRACKING_URI={stack.mlflow_url}",
        "-e", f"MLFLOW_TRACKING_USERNAME={env['PRICEWISE_SERVING_MLFLOW_USERNAME']}",
        "-e", f"MLFLOW_TRACKING_PASSWORD={env['PRICEWISE_SERVING_MLFLOW_PASSWORD']}",
        "-e", f"PRICEWISE_DECISIONS_URL={stack.postgres_url}",
        "-e", f"PRICEWISE_PREDICTION_LOG_URL={stack.postgres_url}",
        IMAGE, "sh", "-c", command,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def stack_env(ports: Mapping[str, int]) -> dict[str, str]:
    """The compose variables of a fresh stack: random URL-safe secrets, free loopback ports."""
    return {
        # Under the vfs storage driver creating a container copies its image's layers in full, which on a busy
        # disk outlasts docker-compose v1's 60 s default wait for the engine's answer; the command's own limit
        # (600 s) still holds.
        "COMPOSE_HTTP_TIMEOUT": "500",
        **os.environ,
        "PRICEWISE_IMAGE": IMAGE,
        "PRICEWISE_POSTGRES_PASSWORD": secrets.token_urlsafe(18),
        "PRICEWISE_MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "PRICEWISE_MLFLOW_SECRET_KEY": secrets.token_urlsafe(32),
        "PRICEWISE_SERVING_MLFLOW_USERNAME": SERVING_USER,
        "PRICEWISE_SERVING_MLFLOW_PASSWORD": secrets.token_urlsafe(18),
        "PRICEWISE_POSTGRES_PORT": str(ports["postgres"]),
        "PRICEWISE_MLFLOW_PORT": str(ports["mlflow"]),
        "PRICEWISE_API_PORT": str(ports["api"]),
        "PRICEWISE_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack up, a Ridge model trained and promoted through it, the API ready; torn down (volumes too)."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers `docker info` (start dockerd; see README, Deploy)")
    if (
        subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode
        != 0
    ):
        pytest.fail(f"image {IMAGE} is not built: `make deploy-test` builds it (or `make image`)")
    ports = {"postgres": free_port(), "mlflow": free_port(), "api": free_port()}
    env = stack_env(ports)
    password = env["PRICEWISE_POSTGRES_PASSWORD"]
    stack = Stack(
        project=f"pricewise-deploy-test-{os.getpid()}",
        compose=compose_command(),
        env=env,
        api_url=f"http://127.0.0.1:{ports['api']}",
        mlflow_url=env["PRICEWISE_MLFLOW_TRACKING_URI"],
        postgres_url=f"postgresql://pricewise:{password}@127.0.0.1:{ports['postgres']}/pricewise",
        timings={},
    )
    config_dir = tmp_path_factory.mktemp("deploy-config")
    (config_dir / "pricewise.yaml").write_text(smoke_config(), encoding="utf-8")
    config_dir.chmod(0o755)  # the image's unprivileged user reads it
    (config_dir / "pricewise.yaml").chmod(0o644)
    try:
        started = time.monotonic()
        stack.run("up", "-d", "postgres", "mlflow")
        wait_for(f"{stack.mlflow_url}/health", START_TIMEOUT_S)
        stack.timings["postgres and tracking server up (s)"] = time.monotonic() - started
        admin = (env.get("PRICEWISE_MLFLOW_ADMIN_USERNAME", "admin"), env["PRICEWISE_MLFLOW_ADMIN_PASSWORD"])
        created = httpx.post(
            f"{stack.mlflow_url}/api/2.0/mlflow/users/create",
            auth=admin,
            json={"username": SERVING_USER, "password": env["PRICEWISE_SERVING_MLFLOW_PASSWORD"]},
            timeout=30,
        )
        assert created.status_code == 200, created.text
        started = time.monotonic()
        batch(
            stack,
            config_dir,
            "pricewise ingest /raw/mercari_train_8k.tsv.gz && pricewise validate && pricewise train"
            " && pricewise promote",
        )
        stack.timings["ingest, validate, train, promote in the image (s)"] = time.monotonic() - started
        started = time.monotonic()
        stack.run("up", "-d", "api")
        wait_for(f"{stack.api_url}/ready", START_TIMEOUT_S)
        stack.timings["API ready (s)"] = time.monotonic() - started
        yield stack
    except BaseException:
        print(stack.run("logs", "--tail", "60", check=False).stdout)
        raise
    finally:
        print(json.dumps({k: round(v, 1) for k, v in stack.timings.items()}, indent=2))
        stack.run("down", "-v", "--remove-orphans", check=False)
        subprocess.run(
            ["docker", "volume", "rm", "-f", f"{stack.project}_batch"], capture_output=True, check=False
        )


def test_api_serves_the_champion_from_the_tracking_server(stack: Stack) -> None:
    model = httpx.get(f"{stack.api_url}/v1/model", timeout=10).json()
    with pytest.MonkeyPatch.context() as patch:  # MLflow's client reads its basic-auth credentials from here
        patch.setenv("MLFLOW_TRACKING_USERNAME", SERVING_USER)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", stack.env["PRICEWISE_SERVING_MLFLOW_PASSWORD"])
        version = MlflowClient(stack.mlflow_url).get_model_version_by_alias("pricewise", "champion")
    assert model["source"] == "registry"
    assert model["fallback"] is False
    assert (model["name"], model["version"], model["run_id"]) == (
        "pricewise",
        version.version,
        version.run_id,
    )


def test_a_suggestion_and_its_feedback_land_in_the_postgres_log(stack: Stack) -> None:
    suggestion = httpx.post(f"{stack.api_url}/v1/suggestions", json=LISTING, timeout=30)
    assert suggestion.status_code == 200, suggestion.text
    body = suggestion.json()
    assert 0 < body["low"] <= body["price"] <= body["high"]
    feedback = httpx.post(
        f"{stack.api_url}/v1/feedback",
        json={"request_id": body["request_id"], "chosen_price": body["price"]},
        timeout=30,
    )
    assert feedback.status_code == 200, feedback.text

    engine = sa.create_engine(stack.postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            logged = connection.execute(
                sa.text("SELECT model_name, model_version, fallback FROM predictions WHERE request_id = :id"),
                {"id": body["request_id"]},
            ).one()
            chosen = connection.execute(
                sa.text("SELECT chosen_price FROM feedback WHERE request_id = :id"),
                {"id": body["request_id"]},
            ).scalar_one()
    finally:
        engine.dispose()
    assert tuple(logged) == ("pricewise", body["model"]["version"], False)
    assert chosen == pytest.approx(body["price"])


def test_metrics_cover_both_workers(stack: Stack) -> None:
    for _ in range(20):  # spread over the two uvicorn workers
        assert httpx.post(f"{stack.api_url}/v1/suggestions", json=LISTING, timeout=30).status_code == 200
    metrics = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    workers = {
        line.split('pid="')[1].split('"')[0]
        for line in metrics.splitlines()
        if "pricewise_model_info{" in line
    }
    assert len(workers) == 2, metrics
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("pricewise_suggestions_total{") and 'source="registry"' in line
    )
    assert served >= 20


def test_services_run_unprivileged_and_the_image_holds_no_build_settings(stack: Stack) -> None:
    for service in ("api", "mlflow"):
        uid = subprocess.run(
            ["docker", "exec", stack.container(service), "id", "-u"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert uid != "0", service
    inspected = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    assert not [v for v in inspected["Config"]["Env"] if v.startswith("PIP_")]
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pip's index, find-links and CA bundle are settings of the build stage only, never of the image's layers.
    assert "PIP_" not in history
    assert "pip-cert" not in history

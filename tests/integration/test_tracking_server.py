"""pricewise against a real MLflow tracking server (docker/tracking-server.sh: PostgreSQL backend and auth
databases, served artifacts, basic auth): train, promote and serve through it, and its faults (a wrong password,
the server down)."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from typer.testing import CliRunner, Result

from pricewise.cli import app
from pricewise.store.prediction_log import default_url
from tests.support.postgres import PostgresCluster
from tests.support.servers import LISTING, start_server
from tests.support.tracking_server import TrackingServer, start_tracking_server
from tests.support.workspaces import Workspace, light_config_text, make_workspace

pytestmark = pytest.mark.integration


def cli(ws: Workspace, env: dict[str, str], *args: str) -> Result:
    """`pricewise ARGS` in this process against the workspace, with the tracking server's environment."""
    full = {
        "PRICEWISE_DATA_DIR": str(ws.settings.data_dir),
        "PRICEWISE_CONFIG_PATH": str(ws.config_path),
        **env,
    }
    return CliRunner().invoke(app, list(args), env=full, catch_exceptions=False)


@pytest.fixture(scope="module")
def tracking_server(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    """The module's tracking server, healthy, with the pricewise user; its process group is killed at the end."""
    if importlib.util.find_spec("flask_wtf") is None:
        message = "MLflow's basic-auth app needs Flask-WTF: pip install -e '.[tracking-server]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = start_tracking_server(postgres, tmp_path_factory.mktemp("tracking-server"))
    yield server
    server.stop()


@dataclass(frozen=True)
class FirstServe:
    """A `pricewise serve` that loaded the champion from the tracking server (and cached it), then stopped."""

    seconds_to_ready: float
    model: dict[str, object]
    suggestion: dict[str, object]
    logged_version: str | None


@pytest.fixture(scope="module")
def remote_champion(tracking_server: TrackingServer, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The light workspace trained and promoted through the CLI against the tracking server (champion v1)."""
    ws = make_workspace(tmp_path_factory.mktemp("remote"), light_config_text())
    for command in ("train", "promote"):
        result = cli(ws, tracking_server.client_env(), command)
        assert result.exit_code == 0, result.output
    return ws


@pytest.fixture(scope="module")
def first_serve(
    remote_champion: Workspace, tracking_server: TrackingServer, tmp_path_factory: pytest.TempPathFactory
) -> FirstServe:
    """One server on the remote champion: ready time, /v1/model, a suggestion and its logged model version."""
    started = time.monotonic()
    server = start_server(
        remote_champion, tmp_path_factory.mktemp("serve-logs"), **tracking_server.client_env()
    )
    seconds = time.monotonic() - started
    try:
        with server.client() as client:
            model = client.get("/v1/model").json()
            response = client.post("/v1/suggestions", json=LISTING)
        assert response.status_code == 200, response.text
        suggestion = response.json()
    finally:
        server.stop()
    engine = sa.create_engine(default_url(remote_champion.settings))
    try:
        with engine.connect() as connection:
            logged = connection.execute(
                sa.text("SELECT model_version FROM predictions WHERE request_id = :id"),
                {"id": suggestion["request_id"]},
            ).scalar_one_or_none()
    finally:
        engine.dispose()
    return FirstServe(seconds, model, suggestion, logged)


@pytest.fixture
def live(tracking_server: TrackingServer) -> TrackingServer:
    """The module's tracking server, waited for (the outage test kills it and starts it again)."""
    tracking_server.wait_ready()
    return tracking_server


@pytest.fixture
def as_pricewise_user(live: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A client of the tracking server as the pricewise user (MLflow reads the credentials from the environment
    on every request)."""
    for name, value in live.client_env().items():
        monkeypatch.setenv(name, value)
    return MlflowClient(tracking_uri=live.url, registry_uri=live.url)


def test_train_and_promote_land_runs_versions_alias_and_artifacts_on_the_server(
    remote_champion: Workspace, tracking_server: TrackingServer, as_pricewise_user: MlflowClient
) -> None:
    client = as_pricewise_user
    champion = client.get_model_version_by_alias("pricewise", "champion")
    assert champion.version == "1"
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics, "the training run logged its metrics on the server"
    # The server stores artifacts itself: the client is handed mlflow-artifacts: URIs, never a local path.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    stored = list(tracking_server.artifacts_dir.rglob("MLmodel"))
    assert stored, f"no model files under {tracking_server.artifacts_dir}"
    assert not (remote_champion.settings.data_dir / "mlflow").exists(), (
        "the client wrote a local MLflow store"
    )
    models = {str(r[0]) for r in tracking_server.backend_rows("SELECT name FROM registered_models")}
    assert models == {"pricewise", "pricewise-baseline"}
    versions = tracking_server.backend_rows(
        "SELECT name, version FROM model_versions WHERE name = 'pricewise'"
    )
    assert versions == [("pricewise", 1)]
    aliases = tracking_server.backend_rows(
        "SELECT alias, version FROM registered_model_aliases WHERE name = 'pricewise'"
    )
    assert aliases == [("champion", 1)]


def test_serve_loads_the_champion_from_the_server_and_names_its_version(first_serve: FirstServe) -> None:
    print(f"\nserve start to /ready 200 from the tracking server: {first_serve.seconds_to_ready:.1f} s")
    assert first_serve.model["source"] == "registry"
    assert first_serve.model["version"] == "1"
    assert first_serve.suggestion["model"]["version"] == "1"  # type: ignore[index]
    assert first_serve.logged_version == "1"


def _one_line_401(result: Result, password: str) -> str:
    output = result.output
    assert result.exit_code != 0, output
    assert "Traceback" not in output, output
    assert password not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "401" in errors[0] or "unauthori" in errors[0].lower(), errors[0]
    return errors[0]


def test_a_wrong_password_fails_the_cli_with_one_line_naming_401(
    remote_champion: Workspace, live: TrackingServer
) -> None:
    wrong = "wrong-password-" + os.urandom(4).hex()
    for command in ("promote", "train"):
        line = _one_line_401(cli(remote_champion, live.client_env(wrong), command), wrong)
        print(f"\n{command} with a wrong password: {line}")


def test_serve_with_a_wrong_password_serves_the_cached_champion_and_says_why(
    first_serve: FirstServe, remote_champion: Workspace, live: TrackingServer, tmp_path: Path
) -> None:
    wrong = "wrong-password-" + os.urandom(4).hex()
    detail, logs = _served_from_the_cache(
        remote_champion, tmp_path, live.client_env(wrong), "a wrong password"
    )
    assert "401" in detail
    assert wrong not in logs


def _served_from_the_cache(ws: Workspace, tmp_path: Path, env: dict[str, str], case: str) -> tuple[str, str]:
    """Start `pricewise serve` with env, check it serves the cached v1 and answers with it; /ready's detail and
    the server's logs."""
    started = time.monotonic()
    server = start_server(ws, tmp_path, **env)
    print(f"\nserve start to /ready 200 with {case}: {time.monotonic() - started:.1f} s")
    try:
        with server.client() as client:
            ready = client.get("/ready").json()
            model = client.get("/v1/model").json()
            suggestion = client.post("/v1/suggestions", json=LISTING)
    finally:
        server.stop()
    print(f"\n/ready with {case}: {ready}")
    assert model["source"] == "cache"
    assert model["version"] == "1"
    assert suggestion.status_code == 200
    assert suggestion.json()["model"]["version"] == "1"
    detail = ready["detail"] or ""
    assert "serving the cached pricewise v1" in detail, ready
    return detail, server.logs()


def test_serve_with_the_server_down_serves_the_cached_champion_and_says_why(
    first_serve: FirstServe, remote_champion: Workspace, tracking_server: TrackingServer, tmp_path: Path
) -> None:
    tracking_server.crash()
    try:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{tracking_server.url}/health", timeout=2)
        env = tracking_server.client_env()
        detail, _ = _served_from_the_cache(remote_champion, tmp_path, env, "the tracking server down")
    finally:
        tracking_server.launch()  # the other tests of the module may still need it
    assert "unreachable" in detail

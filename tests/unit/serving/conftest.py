"""The session's promoted light workspace in; the app built on it, running in this process behind a TestClient,
out (session-wide).

The app runs on a clone of the shared workspace: its suggestions, feedback and model cache land there, so nothing
a test here changes the state another test module reads.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url
from tests.support.servers import ADMIN_TOKEN
from tests.support.workspaces import Workspace, clone_workspace


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that names the route a contract test covers (checked by test_app.py)."""
    config.addinivalue_line(
        "markers", "contract(method, path): the HTTP route (method and path template) a contract test covers"
    )


@pytest.fixture(scope="session")
def api_settings(light_champion_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A clone of the session's light champion workspace (champion v1; the app writes its prediction log and
    model cache there, never into the shared workspace), with an admin token."""
    clone = clone_workspace(light_champion_workspace, tmp_path_factory.mktemp("api"))
    return Settings(
        data_dir=clone.settings.data_dir,
        config_path=clone.config_path,
        admin_token=SecretStr(ADMIN_TOKEN),
    )


@pytest.fixture(scope="session")
def api_app(api_settings: Settings) -> FastAPI:
    """The application, built exactly as `pricewise serve` builds it for each worker."""
    return create_app(api_settings, load_config(api_settings.config_path))


@pytest.fixture(scope="session")
def client(api_app: FastAPI) -> Iterator[TestClient]:
    """A client on the running app: the lifespan has loaded the champion and opened the prediction log.

    The lifespan sets torch to one thread per process (right for a server worker); the test process gets its
    own setting back afterwards, so tests that train later in the session are not slowed down.
    """
    torch_threads = torch.get_num_threads()
    try:
        with TestClient(api_app, raise_server_exceptions=False) as running:
            yield running
    finally:
        torch.set_num_threads(torch_threads)


@pytest.fixture
def prediction_log(api_settings: Settings) -> Iterator[PredictionLog]:
    """The app's prediction log, opened from the test (a second connection, as an operator would)."""
    log = PredictionLog(default_url(api_settings))
    yield log
    log.close()

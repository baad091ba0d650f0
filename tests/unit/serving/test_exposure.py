"""serve.expose_docs and serve.expose_metrics in; whether /docs, /redoc, /openapi.json and /metrics exist out."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pricewise.config import Config, load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings

SHIPPED_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "pricewise.yaml"
DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def _client(settings: Settings, **serve: bool) -> TestClient:
    config: Config = load_config(settings.config_path)
    config = config.model_copy(update={"serve": config.serve.model_copy(update=serve)})
    return TestClient(create_app(settings, config))  # not entered: these routes need no model


def test_the_shipped_config_turns_docs_off_and_metrics_on() -> None:
    for config in (load_config(SHIPPED_CONFIG), load_config(None)):
        assert config.serve.expose_docs is False
        assert config.serve.expose_metrics is True


def test_with_docs_off_the_docs_and_schema_do_not_exist_and_metrics_do(api_settings: Settings) -> None:
    client = _client(api_settings, expose_docs=False)
    for path in DOCS:
        assert client.get(path).status_code == 404, path
    assert client.get("/metrics").status_code == 200


def test_expose_docs_serves_the_docs_and_the_schema(api_settings: Settings) -> None:
    client = _client(api_settings, expose_docs=True)
    for path in DOCS:
        assert client.get(path).status_code == 200, path
    assert "/v1/suggestions" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("expose_docs", [False, True])
def test_without_expose_metrics_there_is_no_metrics_endpoint(
    api_settings: Settings, expose_docs: bool
) -> None:
    client = _client(api_settings, expose_metrics=False, expose_docs=expose_docs)
    assert client.get("/metrics").status_code == 404
    assert client.get("/health").status_code == 200
    if expose_docs:
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]

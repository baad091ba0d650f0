"""The app factory in; every registered route covered by a contract test, the answers before a model is loaded,
and request limits that follow the `serve` config out."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.routing import Mount, Route

from pricewise.config import Config, ServeConfig, load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings
from tests.support.servers import LISTING

Endpoint = tuple[str, str]


def registered_endpoints(app: FastAPI) -> set[Endpoint]:
    """(method, path template) of every route the app answers; a mount counts as GET on its prefix.

    FastAPI keeps an included router as one entry of `app.routes`; its routes, with their prefixes applied, come
    from `effective_route_contexts()`.
    """
    endpoints: set[Endpoint] = set()
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop()
        if hasattr(route, "effective_route_contexts"):
            pending.extend(route.effective_route_contexts())
        elif isinstance(route, Mount) or isinstance(getattr(route, "original_route", None), Mount):
            endpoints.add(("GET", route.path))
        elif isinstance(route, (APIRoute, Route)) or getattr(route, "methods", None):
            endpoints |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
        else:
            pytest.fail(f"a route of a kind this guard does not know: {type(route).__name__} {route!r:.200}")
    return endpoints


def contract_tests() -> dict[Endpoint, list[str]]:
    """The tests of this folder marked `contract(method, path)`, by the endpoint they cover."""
    covered: dict[Endpoint, list[str]] = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(f"{__package__}.{path.stem}")
        for name, function in vars(module).items():
            if not name.startswith("test_") or not callable(function):
                continue
            for mark in getattr(function, "pytestmark", []):
                if mark.name == "contract":
                    method, route = mark.args
                    covered.setdefault((method, route), []).append(f"{path.stem}::{name}")
    return covered


def test_every_route_the_app_registers_has_a_contract_test(api_settings: Settings) -> None:
    # Every optional route on: the outcomes endpoint exists only with its token.
    settings = api_settings.model_copy(update={"outcomes_token": SecretStr("contract-outcomes-token")})
    registered = registered_endpoints(create_app(settings, load_config(settings.config_path)))
    covered = contract_tests()
    untested = sorted(registered - set(covered))
    stale = sorted(set(covered) - registered)
    assert not untested, f"routes without a contract test (mark one with pytest.mark.contract): {untested}"
    assert not stale, f"contract tests for routes the app does not register: {stale}"
    # The guard itself must see the routes: the API, the pages, the docs and the static mount.
    assert {("POST", "/v1/suggestions"), ("GET", "/"), ("GET", "/docs"), ("GET", "/static")} <= registered


def test_before_the_lifespan_loads_a_model_the_api_answers_503_and_health_200(api_settings: Settings) -> None:
    app = create_app(api_settings, load_config(api_settings.config_path))
    unstarted = TestClient(app)  # not entered: the lifespan has not run, no model is loaded
    ready = unstarted.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert unstarted.get("/health").json() == {"status": "ok", "detail": None}
    for response in (
        unstarted.post("/v1/suggestions", json=LISTING),
        unstarted.post("/v1/suggestions/batch", json={"listings": [LISTING]}),
        unstarted.get("/v1/model"),
    ):
        assert response.status_code == 503, response.text
        assert "/ready" in response.json()["detail"]
    page = unstarted.get("/")
    assert page.status_code == 200
    assert 'id="no-model"' in page.text


def tight(config: Config) -> Config:
    """The config with much smaller request limits."""
    serve = config.serve.model_copy(
        update={"max_batch": 3, "max_name_chars": 30, "max_description_chars": 50, "comparables": 2}
    )
    return config.model_copy(update={"serve": serve})


@pytest.fixture(scope="module")
def tight_client(api_settings: Settings) -> Iterator[TestClient]:
    """A running app whose `serve` config allows 3 listings a batch, 30-character titles and 2 comparables."""
    torch_threads = torch.get_num_threads()
    app = create_app(api_settings, tight(load_config(api_settings.config_path)))
    try:
        with TestClient(app, raise_server_exceptions=False) as running:
            yield running
    finally:
        torch.set_num_threads(torch_threads)


def test_the_batch_limit_comes_from_the_config(tight_client: TestClient) -> None:
    at_limit = tight_client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 3})
    over = tight_client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 4})
    assert at_limit.status_code == 200, at_limit.text
    assert over.status_code == 422
    (error,) = over.json()["detail"]
    assert error["loc"] == ["body", "listings"]
    assert error["ctx"] == {"max_length": 3}


def test_requests_over_the_hard_ceilings_are_told_the_configured_limits(tight_client: TestClient) -> None:
    # Over the request models' own ceilings (1,000 listings, 1,000-character names): the answer still names the
    # configured 3 and 30, never the ceiling.
    many = tight_client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 1001})
    huge_title = tight_client.post("/v1/suggestions", json={**LISTING, "name": "n" * 1001})

    assert many.status_code == 422
    (error,) = many.json()["detail"]
    assert error["loc"] == ["body", "listings"]
    assert error["ctx"] == {"max_length": 3}
    assert error["msg"] == "List should have at most 3 items after validation, not 1001"
    assert huge_title.status_code == 422
    (error,) = huge_title.json()["detail"]
    assert error["loc"] == ["body", "name"]
    assert error["ctx"] == {"max_length": 30}
    assert "1000" not in error["msg"]


def test_a_configured_limit_above_the_hard_ceiling_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        ServeConfig(max_batch=1001)


def test_text_limits_come_from_the_config_for_single_and_batched_listings(tight_client: TestClient) -> None:
    long_title = {**LISTING, "name": "n" * 31}
    long_text = {**LISTING, "item_description": "d" * 51}
    single = tight_client.post("/v1/suggestions", json=long_title)
    batched = tight_client.post("/v1/suggestions/batch", json={"listings": [LISTING, long_text, long_title]})
    fits = tight_client.post(
        "/v1/suggestions", json={**LISTING, "name": "n" * 30, "item_description": "d" * 50}
    )
    assert single.status_code == 422
    assert [e["loc"] for e in single.json()["detail"]] == [["body", "name"]]
    assert single.json()["detail"][0]["ctx"] == {"max_length": 30}
    assert batched.status_code == 422
    assert [e["loc"] for e in batched.json()["detail"]] == [
        ["body", "listings", 1, "item_description"],
        ["body", "listings", 2, "name"],
    ]
    assert fits.status_code == 200, fits.text


def test_the_configured_limits_show_in_openapi_the_seller_page_and_comparables(
    tight_client: TestClient,
) -> None:
    schema = tight_client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Listing"]["properties"]["name"]["maxLength"] == 30
    descriptions = schema["Listing"]["properties"]["item_description"]["anyOf"]
    assert {"type": "string", "maxLength": 50} in descriptions
    assert schema["BatchRequest"]["properties"]["listings"]["maxItems"] == 3
    page = tight_client.get("/").text
    assert 'maxlength="30"' in page
    assert 'maxlength="50"' in page
    compared = tight_client.post("/v1/suggestions", params={"include": "comparables"}, json=LISTING).json()
    assert len(compared["comparables"]) == 2

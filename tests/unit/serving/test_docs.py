"""serve.expose_docs in; /docs and /redoc built on Swagger UI and ReDoc files this server serves itself (no CDN, a
policy that names no other host), or no docs at all, out."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from fastapi.testclient import TestClient

from pricewise.config import Config, load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings

PAGES = ("/docs", "/redoc")
# What each page loads, with a line of the file that shows it is the real thing.
EXPECTED = {
    "/docs": {
        "swagger-ui-bundle.js": ("javascript", b"SwaggerUIBundle"),
        "swagger-ui.css": ("text/css", b".swagger-ui"),
        "favicon.png": ("image/png", b"\x89PNG"),
    },
    "/redoc": {
        "redoc.standalone.js": ("javascript", b"Redoc"),
        "favicon.png": ("image/png", b"\x89PNG"),
    },
}
LOADED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
KEYWORDS = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}


def _client(settings: Settings, *, expose_docs: bool) -> TestClient:
    config: Config = load_config(settings.config_path)
    config = config.model_copy(update={"serve": config.serve.model_copy(update={"expose_docs": expose_docs})})
    return TestClient(create_app(settings, config))  # not entered: the docs need no model


@pytest.fixture(scope="module")
def docs_client(api_settings: Settings) -> TestClient:
    """An app with serve.expose_docs on."""
    return _client(api_settings, expose_docs=True)


@pytest.mark.contract("GET", "/static/docs")
@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_load_only_files_this_server_serves(docs_client: TestClient, page: str) -> None:
    response = docs_client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http:" not in html
    assert "https:" not in html, "no absolute URL: nothing comes from another host"
    assert "'/openapi.json'" in html or '"/openapi.json"' in html
    loaded = LOADED.findall(html)
    assert sorted(loaded) == sorted(f"/static/docs/{name}" for name in EXPECTED[page])
    shipped = files("fastapi_offline") / "static"
    for url in loaded:
        name = url.rsplit("/", 1)[1]
        content_type, marker = EXPECTED[page][name]
        asset = docs_client.get(url)
        assert asset.status_code == 200, url
        assert content_type in asset.headers["content-type"], url
        assert marker in asset.content, url
        assert asset.content == (shipped / name).read_bytes(), url


def test_swagger_ui_is_a_version_5_bundle(docs_client: TestClient) -> None:
    script = docs_client.get("/static/docs/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 500_000, "the whole bundle, not a stub"
    assert re.search(rb'"5\.\d+\.\d+"', script.content)


@pytest.mark.parametrize("page", [*PAGES, "/docs/oauth2-redirect"])
def test_the_docs_policy_names_no_remote_host(docs_client: TestClient, page: str) -> None:
    response = docs_client.get(page)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    sources = {source for values in directives.values() for source in values}
    assert sources <= KEYWORDS, f"sources other than this server: {sorted(sources - KEYWORDS)}"
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "http" not in policy
    assert "*" not in policy


def test_with_docs_off_the_pages_and_their_files_do_not_exist(api_settings: Settings) -> None:
    client = _client(api_settings, expose_docs=False)
    for path in (
        *PAGES,
        "/docs/oauth2-redirect",
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/favicon.png",
    ):
        assert client.get(path).status_code == 404, path
    assert client.get("/static/seller.css").status_code == 200, "the pages' own files stay"

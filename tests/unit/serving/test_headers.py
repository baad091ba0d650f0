"""Pages and API answers of the app in; their security headers (Content-Security-Policy, no framing, nosniff,
referrer policy) out, and pages that need nothing the policy forbids."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pricewise.serving.headers import PAGE_POLICY, REPORT_POLICY, SecurityHeaders, policy_for


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


@pytest.mark.parametrize("path", ["/", "/monitoring"])
def test_every_page_has_a_strict_policy_and_cannot_be_framed(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/", "/monitoring"])
def test_pages_have_no_inline_script_style_or_handler_the_policy_would_block(
    client: TestClient, path: str
) -> None:
    html = client.get(path).text
    scripts = re.findall(r"<script\b[^>]*>", html, flags=re.IGNORECASE)
    assert scripts, "the page has its scripts"
    assert all(re.search(r"\bsrc=\"http://testserver/static/", tag) for tag in scripts), scripts
    assert not re.search(r"<style\b", html, flags=re.IGNORECASE)
    assert not re.search(r"\sstyle=", html, flags=re.IGNORECASE)
    assert not re.search(r"\son[a-z]+=", html, flags=re.IGNORECASE)
    assert "javascript:" not in html.lower()


def test_api_answers_are_not_sniffed_and_carry_no_page_policy(client: TestClient) -> None:
    response = client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
    too_big = client.post(
        "/v1/suggestions", content=b"x" * 10_000_000, headers={"content-type": "application/json"}
    )
    assert too_big.status_code == 413
    assert too_big.headers["x-content-type-options"] == "nosniff", "the middlewares' own answers too"


def test_recorded_reports_run_sandboxed_and_load_nothing() -> None:
    assert policy_for("/monitoring/reports/run-1") == REPORT_POLICY
    assert policy_for("/monitoring") == PAGE_POLICY
    report = _directives(REPORT_POLICY)
    assert "allow-same-origin" not in report["sandbox"], "an opaque origin: no access to the API or the pages"
    assert report["default-src"] == ["'none'"]
    assert report["frame-ancestors"] == ["'none'"]


def test_headers_the_app_set_itself_are_kept() -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-security-policy", b"default-src 'none'")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<html></html>"})

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    asyncio.run(SecurityHeaders(app)({"type": "http", "path": "/x"}, receive, send))
    headers = dict(sent[0]["headers"])
    assert headers[b"content-security-policy"] == b"default-src 'none'"
    assert headers[b"x-frame-options"] == b"DENY"
    assert [name for name, _ in sent[0]["headers"]].count(b"content-security-policy") == 1

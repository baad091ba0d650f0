"""The suggestion API on a real uvicorn server over a real MLflow store: happy paths, bad input, admin, soak."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.serving_conftest import ADMIN_TOKEN, LISTING, Server, server, serving_workspace

pytestmark = pytest.mark.integration
__all__ = ["server", "serving_workspace"]  # fixtures used by name


def test_a_suggestion_has_price_range_model_and_is_logged(server: Server) -> None:
    with server.client() as client:
        response = client.post("/v1/suggestions", json=LISTING)
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 < body["low"] <= body["price"] <= body["high"]
    assert body["coverage"] == pytest.approx(0.8)
    assert body["model"]["name"] == "pricewise"
    assert body["model"]["version"] == "1"
    assert body["model"]["run_id"]
    assert body["model"]["fallback"] is False
    assert body["explanation"] is None
    assert body["comparables"] is None
    assert response.headers["x-trace-id"]
    log = server.prediction_log()
    try:
        assert body["request_id"] in log.logged_request_ids()
    finally:
        log.close()


def test_explanation_and_comparables_on_request(server: Server) -> None:
    with server.client() as client:
        response = client.post("/v1/suggestions", params={"include": "explanation,comparables"}, json=LISTING)
    assert response.status_code == 200, response.text
    body = response.json()
    reasons = body["explanation"]["up"] + body["explanation"]["down"]
    assert reasons, "a branded, categorised listing has reasons"
    assert all(r["effect"] > 0 for r in body["explanation"]["up"])
    assert all(r["effect"] < 0 for r in body["explanation"]["down"])
    assert any("nike" in r["feature"] for r in reasons)
    comparables = body["comparables"]
    assert len(comparables) == 5
    assert all(c["price"] > 0 for c in comparables)
    similarities = [c["similarity"] for c in comparables]
    assert similarities == sorted(similarities, reverse=True)
    assert any("nike" in c["name"].lower() for c in comparables)


def test_batch_keeps_order_and_logs_every_listing(server: Server) -> None:
    cheap = {**LISTING, "name": "plain white t-shirt", "brand_name": None, "item_description": None}
    with server.client() as client:
        response = client.post("/v1/suggestions/batch", json={"listings": [LISTING, cheap, LISTING]})
        assert response.status_code == 200, response.text
        suggestions = response.json()["suggestions"]
        single = client.post("/v1/suggestions", json=LISTING).json()
    assert len(suggestions) == 3
    assert suggestions[0]["price"] == suggestions[2]["price"] == single["price"]
    assert len({s["request_id"] for s in suggestions}) == 3
    log = server.prediction_log()
    try:
        assert {s["request_id"] for s in suggestions} <= log.logged_request_ids()
    finally:
        log.close()


def test_feedback_for_a_suggestion_and_unknown_request_id(server: Server) -> None:
    with server.client() as client:
        request_id = client.post("/v1/suggestions", json=LISTING).json()["request_id"]
        chosen = client.post("/v1/feedback", json={"request_id": request_id, "chosen_price": 30.0})
        sold = client.post("/v1/feedback", json={"request_id": request_id, "sold_price": 28.5})
        unknown = client.post("/v1/feedback", json={"request_id": "0" * 32, "chosen_price": 30.0})
        neither = client.post("/v1/feedback", json={"request_id": request_id})
    assert chosen.status_code == 200, chosen.text
    assert sold.status_code == 200
    assert chosen.json()["request_id"] == request_id
    assert unknown.status_code == 404
    assert neither.status_code == 422


def test_model_health_ready_metrics(server: Server) -> None:
    with server.client() as client:
        model = client.get("/v1/model").json()
        assert client.get("/health").json() == {"status": "ok", "detail": None}
        assert client.get("/ready").status_code == 200
        client.post("/v1/suggestions", json={"name": 1})
        metrics = client.get("/metrics").text
    assert model["version"] == "1"
    assert model["source"] == "registry"
    assert 'pricewise_model_info{name="pricewise",run_id="' in metrics
    assert 'version="1"' in metrics
    assert 'pricewise_http_requests_total{method="POST",route="/v1/suggestions",status="422"}' in metrics
    assert 'pricewise_http_errors_total{kind="4xx",route="/v1/suggestions"}' in metrics
    assert "pricewise_http_request_duration_seconds_bucket" in metrics


def test_openapi_documents_the_configured_limits_with_examples(server: Server) -> None:
    with server.client() as client:
        schema = client.get("/openapi.json").json()
    listing = schema["components"]["schemas"]["Listing"]
    assert listing["examples"][0]["name"]
    name_limit = listing["properties"]["name"]["maxLength"]
    assert name_limit == 200
    assert schema["components"]["schemas"]["BatchRequest"]["properties"]["listings"]["maxItems"] == 100
    assert "/v1/admin/reload" in schema["paths"]


BAD_LISTINGS: list[tuple[str, Any, str]] = [
    ("wrong type of name", {**LISTING, "name": 123}, "name"),
    ("condition as a string", {**LISTING, "item_condition_id": "2"}, "item_condition_id"),
    ("condition as a float", {**LISTING, "item_condition_id": 2.5}, "item_condition_id"),
    ("condition as a bool", {**LISTING, "item_condition_id": True}, "item_condition_id"),
    ("unknown condition", {**LISTING, "item_condition_id": 7}, "item_condition_id"),
    ("condition zero", {**LISTING, "item_condition_id": 0}, "item_condition_id"),
    ("shipping out of range", {**LISTING, "shipping": 2}, "shipping"),
    ("missing name", {k: v for k, v in LISTING.items() if k != "name"}, "name"),
    (
        "missing condition",
        {k: v for k, v in LISTING.items() if k != "item_condition_id"},
        "item_condition_id",
    ),
    ("blank name", {**LISTING, "name": "   "}, "name"),
    ("name over the configured limit", {**LISTING, "name": "x" * 201}, "name"),
    ("huge description", {**LISTING, "item_description": "great " * 1000}, "item_description"),
    ("control character", {**LISTING, "name": "bag\x00\x07"}, "name"),
    ("unknown field", {**LISTING, "price": 10}, "price"),
    ("not an object", ["a", "list"], ""),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_LISTINGS, ids=[c[0] for c in BAD_LISTINGS])
def test_bad_listings_get_422_naming_the_field(server: Server, case: str, body: Any, field: str) -> None:
    with server.client() as client:
        response = client.post("/v1/suggestions", json=body)
    assert response.status_code == 422, f"{case}: {response.status_code} {response.text[:300]}"
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(loc[0] == "body" and (not field or field in loc) for loc in locations), locations


def test_unicode_text_is_priced(server: Server) -> None:
    listing = {
        **LISTING,
        "name": "Sac à main 👜 cuir – état neuf",
        "item_description": "日本製\tとても良い\n状態",
    }
    with server.client() as client:
        response = client.post("/v1/suggestions", json=listing)
    assert response.status_code == 200, response.text
    assert response.json()["price"] > 0


def test_malformed_json_bad_include_and_wrong_content_are_client_errors(server: Server) -> None:
    with server.client() as client:
        broken = client.post(
            "/v1/suggestions", content=b'{"name": "x",', headers={"content-type": "application/json"}
        )
        bad_include = client.post("/v1/suggestions", params={"include": "everything"}, json=LISTING)
        not_json = client.post(
            "/v1/suggestions", content=b"\xff\xfe garbage", headers={"content-type": "text/plain"}
        )
        wrong_method = client.get("/v1/suggestions")
    assert broken.status_code == 422
    assert bad_include.status_code == 422
    assert bad_include.json()["detail"][0]["loc"] == ["query", "include"]
    assert 400 <= not_json.status_code < 500
    assert wrong_method.status_code == 405


def test_batches_empty_oversized_and_with_one_bad_listing(server: Server) -> None:
    with server.client() as client:
        empty = client.post("/v1/suggestions/batch", json={"listings": []})
        oversized = client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 101})
        one_bad = client.post(
            "/v1/suggestions/batch", json={"listings": [LISTING, {**LISTING, "shipping": 5}]}
        )
        at_limit = client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 100})
    assert empty.status_code == 422
    assert oversized.status_code == 422
    assert oversized.json()["detail"][0]["loc"] == ["body", "listings"]
    assert one_bad.status_code == 422
    assert one_bad.json()["detail"][0]["loc"] == ["body", "listings", 1, "shipping"]
    assert at_limit.status_code == 200
    assert len(at_limit.json()["suggestions"]) == 100


def test_bodies_over_the_limit_get_413_with_or_without_content_length(server: Server) -> None:
    huge = json.dumps({**LISTING, "item_description": "x" * 1_100_000}).encode()

    def chunks() -> Any:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    with server.client() as client:
        declared = client.post("/v1/suggestions", content=huge, headers={"content-type": "application/json"})
        streamed = client.post(
            "/v1/suggestions", content=chunks(), headers={"content-type": "application/json"}
        )
        still_fine = client.post("/v1/suggestions", json=LISTING)
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert still_fine.status_code == 200


def test_admin_reload_needs_the_bearer_token(server: Server) -> None:
    with server.client() as client:
        missing = client.post("/v1/admin/reload")
        wrong = client.post("/v1/admin/reload", headers={"Authorization": "Bearer not-the-token"})
        not_bearer = client.post("/v1/admin/reload", headers={"Authorization": ADMIN_TOKEN})
        right = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert missing.status_code == 401
    assert wrong.status_code == 403
    assert not_bearer.status_code == 401
    assert right.status_code == 200, right.text
    assert right.json()["changed"] is False
    assert right.json()["model"]["version"] == "1"


def test_server_logs_are_ecs_json_lines(server: Server) -> None:
    with server.client() as client:
        trace = "0af7651916cd43dd8448eb211c80319c"
        client.post(
            "/v1/suggestions", json=LISTING, headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"}
        )
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    assert lines, "no JSON log lines"
    access = [line for line in lines if line.get("trace.id") == trace]
    assert access, "the W3C trace id is carried into the access log"
    entry = access[-1]
    assert {"@timestamp", "log.level", "message", "event.duration", "ecs.version"} <= entry.keys()
    assert entry["http.response.status_code"] == 200
    assert entry["event.duration"] > 0


def test_soak_of_thousands_of_requests_without_errors(server: Server) -> None:
    total, concurrency = 2000, 8
    log = server.prediction_log()
    before = log.count()

    def worker(n: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for i in range(n):
                listing = {**LISTING, "name": f"{LISTING['name']} #{i}", "item_condition_id": 1 + i % 5}
                statuses.append(client.post("/v1/suggestions", json=listing).status_code)
        return statuses

    with ThreadPoolExecutor(concurrency) as pool:
        statuses = [s for chunk in pool.map(worker, [total // concurrency] * concurrency) for s in chunk]
    try:
        assert statuses.count(200) == total, {s: statuses.count(s) for s in set(statuses)}
        assert log.count() - before == total
    finally:
        log.close()

"""Requests to the in-process app in; the contract of every suggestion, feedback, model, health, metrics, admin,
seller-page, docs and static route out (status codes, response fields, 4xx naming the field, never a 500)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog
from tests.support.servers import ADMIN_TOKEN, LISTING

SUGGESTION_FIELDS = {
    "request_id",
    "price",
    "low",
    "high",
    "coverage",
    "model",
    "explanation",
    "comparables",
    "confidence",
}
CONFIDENCE_FIELDS = {"level", "unfamiliar", "what_if"}
WHAT_IF_FIELDS = {"field", "value", "price", "change", "text"}
COMPARABLE_FIELDS = {
    "name",
    "brand_name",
    "category_name",
    "item_condition_id",
    "condition",
    "price",
    "similarity",
}
MODEL_FIELDS = {"name", "version", "run_id", "source", "fallback", "loaded_at"}
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def error_locations(response: httpx.Response) -> list[list[Any]]:
    """The `loc` of each validation error in a 422 answer."""
    assert response.status_code == 422, f"{response.status_code} {response.text[:300]}"
    detail = response.json()["detail"]
    assert detail, "a 422 lists at least one error"
    return [error["loc"] for error in detail]


def assert_suggestion(body: dict[str, Any]) -> None:
    """The fields every suggestion carries, with a range around a positive price, from champion v1."""
    assert set(body) == SUGGESTION_FIELDS
    assert HEX_ID.match(body["request_id"]), body["request_id"]
    assert 0 < body["low"] <= body["price"] <= body["high"]
    assert body["coverage"] == pytest.approx(0.8)
    assert set(body["model"]) == MODEL_FIELDS
    assert set(body["confidence"]) == CONFIDENCE_FIELDS
    assert body["confidence"]["level"] in {"normal", "low"}
    assert all(isinstance(note, str) and note for note in body["confidence"]["unfamiliar"])
    assert body["model"]["name"] == "pricewise"
    assert body["model"]["version"] == "1"
    assert body["model"]["run_id"]
    assert body["model"]["source"] == "registry"
    assert body["model"]["fallback"] is False


# POST /v1/suggestions


@pytest.mark.contract("POST", "/v1/suggestions")
def test_a_suggestion_has_price_range_model_and_is_logged(
    client: TestClient, prediction_log: PredictionLog
) -> None:
    response = client.post("/v1/suggestions", json=LISTING)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert_suggestion(body)
    assert body["explanation"] is None
    assert body["comparables"] is None
    assert body["confidence"] == {"level": "normal", "unfamiliar": [], "what_if": None}
    assert "x-pricewise-fallback" not in response.headers
    assert HEX_ID.match(response.headers["x-trace-id"])
    assert body["request_id"] in prediction_log.logged_request_ids()


@pytest.mark.contract("POST", "/v1/suggestions")
def test_the_same_listing_gets_the_same_price_and_a_new_request_id(client: TestClient) -> None:
    first, second = (client.post("/v1/suggestions", json=LISTING).json() for _ in range(2))
    assert (first["price"], first["low"], first["high"]) == (second["price"], second["low"], second["high"])
    assert first["request_id"] != second["request_id"]


@pytest.mark.contract("POST", "/v1/suggestions")
def test_a_w3c_traceparent_sets_the_trace_id(client: TestClient) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    carried = client.post(
        "/v1/suggestions", json=LISTING, headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"}
    )
    malformed = client.post("/v1/suggestions", json=LISTING, headers={"traceparent": "not-a-trace"})
    assert carried.headers["x-trace-id"] == trace
    assert malformed.status_code == 200
    assert HEX_ID.match(malformed.headers["x-trace-id"])
    assert malformed.headers["x-trace-id"] != trace


@pytest.mark.contract("POST", "/v1/suggestions")
def test_explanation_and_comparables_on_request(client: TestClient, prediction_log: PredictionLog) -> None:
    response = client.post("/v1/suggestions", params={"include": "explanation,comparables"}, json=LISTING)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_suggestion(body)
    assert set(body["explanation"]) == {"up", "down", "note"}
    reasons = body["explanation"]["up"] + body["explanation"]["down"]
    assert reasons, "a branded, categorised listing has reasons"
    assert all(set(r) == {"feature", "effect", "text"} for r in reasons)
    assert all(r["effect"] > 0 and " raise" in r["text"] for r in body["explanation"]["up"])
    assert all(r["effect"] < 0 and " lower" in r["text"] for r in body["explanation"]["down"])
    features = [r["feature"] for r in reasons]
    assert len(features) == len(set(features)), "one reason per feature, never both up and down"
    assert "nike" not in features, "the brand's word in the title is part of the brand reason"
    assert all(r["text"].startswith("The brand Nike ") for r in reasons if r["feature"].startswith("brand"))
    assert all(
        r["text"].startswith("The category Men > Shoes > Athletic ")
        for r in reasons
        if r["feature"].startswith("category")
    )
    assert not any(r["feature"].startswith("department") or "_" in r["text"] for r in reasons)
    comparables = body["comparables"]
    assert len(comparables) == 5  # serve.comparables of the config
    assert all(set(c) == COMPARABLE_FIELDS for c in comparables)
    conditions = {1: "New", 2: "Like new", 3: "Good", 4: "Fair", 5: "Poor"}
    assert all(c["condition"] == conditions[c["item_condition_id"]] for c in comparables)
    assert all(c["price"] > 0 for c in comparables)
    assert body["confidence"] == {"level": "normal", "unfamiliar": [], "what_if": []}
    similarities = [c["similarity"] for c in comparables]
    assert similarities == sorted(similarities, reverse=True)
    assert any("nike" in c["name"].lower() for c in comparables)
    assert body["request_id"] in prediction_log.logged_request_ids()


@pytest.mark.contract("POST", "/v1/suggestions")
def test_each_extra_comes_only_when_asked_and_does_not_move_the_price(client: TestClient) -> None:
    plain = client.post("/v1/suggestions", json=LISTING).json()
    explained = client.post("/v1/suggestions", params={"include": "explanation"}, json=LISTING).json()
    compared = client.post("/v1/suggestions", params={"include": "comparables"}, json=LISTING).json()
    assert explained["explanation"] is not None
    assert explained["comparables"] is None
    assert compared["comparables"] is not None
    assert compared["explanation"] is None
    assert plain["price"] == explained["price"] == compared["price"]


TITLE_ONLY = {"name": "iPhone X 256GB", "item_condition_id": 2, "shipping": 1}


@pytest.mark.contract("POST", "/v1/suggestions")
def test_a_title_alone_is_low_confidence_and_says_what_to_add(client: TestClient) -> None:
    plain = client.post("/v1/suggestions", json=TITLE_ONLY)
    assert plain.status_code == 200, plain.text
    confidence = plain.json()["confidence"]
    assert confidence["level"] == "low"
    assert confidence["unfamiliar"] == ["Only a title was given: add the brand, category and a description."]
    assert confidence["what_if"] is None, "what-if prices come only with the explanation"
    explained = client.post("/v1/suggestions", params={"include": "explanation"}, json=TITLE_ONLY).json()
    assert explained["price"] == plain.json()["price"]
    what_if = explained["confidence"]["what_if"]
    assert what_if, "a title the model knows words of gets a guessed category"
    assert all(set(w) == WHAT_IF_FIELDS for w in what_if)
    assert {w["field"] for w in what_if} <= {"category_name", "brand_name"}
    assert len({w["field"] for w in what_if}) == len(what_if)
    categories = set(client.app.state.models.served.categories)  # type: ignore[attr-defined]
    for w in what_if:
        assert w["value"]
        assert w["price"] > 0
        assert w["change"] == pytest.approx(w["price"] / explained["price"] - 1, abs=1e-3)
        assert w["text"].startswith("With the brand " if w["field"] == "brand_name" else "In the category ")
        assert "$" in w["text"]
        if w["field"] == "category_name":
            assert w["value"] in categories, "a guessed category is one the seller can pick"
        again = client.post("/v1/suggestions", json={**TITLE_ONLY, w["field"]: w["value"]}).json()
        assert again["price"] == pytest.approx(w["price"])


@pytest.mark.contract("POST", "/v1/suggestions")
def test_an_unknown_category_or_brand_is_said_and_odd_values_do_not_break_it(client: TestClient) -> None:
    unknown = client.post("/v1/suggestions", json={**LISTING, "category_name": "Foo/Bar"}).json()
    assert unknown["confidence"]["level"] == "low"
    assert unknown["confidence"]["unfamiliar"] == [
        "The category 'Foo/Bar' is not one the model has seen; pick one from the list."
    ]
    brand = client.post("/v1/suggestions", json={**LISTING, "brand_name": "Zorblax Ünïcode"}).json()
    assert brand["confidence"]["level"] == "low"
    assert "Zorblax Ünïcode" in brand["confidence"]["unfamiliar"][0]
    for value in ("", "   ", "<b>é/ü/日本</b> & 'x'", "x" * 100):
        odd = {**LISTING, "brand_name": value, "category_name": value + "/" * 50}
        response = client.post("/v1/suggestions", params={"include": "explanation,comparables"}, json=odd)
        assert response.status_code == 200, response.text
        assert response.json()["confidence"]["level"] == "low"


BAD_LISTINGS: list[tuple[str, Any, str]] = [
    ("wrong type of name", {**LISTING, "name": 123}, "name"),
    ("condition as a string", {**LISTING, "item_condition_id": "2"}, "item_condition_id"),
    ("condition as a float", {**LISTING, "item_condition_id": 2.5}, "item_condition_id"),
    ("condition as a bool", {**LISTING, "item_condition_id": True}, "item_condition_id"),
    ("unknown condition", {**LISTING, "item_condition_id": 7}, "item_condition_id"),
    ("condition zero", {**LISTING, "item_condition_id": 0}, "item_condition_id"),
    ("shipping out of range", {**LISTING, "shipping": 2}, "shipping"),
    ("shipping as null", {**LISTING, "shipping": None}, "shipping"),
    ("missing name", {k: v for k, v in LISTING.items() if k != "name"}, "name"),
    (
        "missing condition",
        {k: v for k, v in LISTING.items() if k != "item_condition_id"},
        "item_condition_id",
    ),
    ("blank name", {**LISTING, "name": "   "}, "name"),
    ("empty name", {**LISTING, "name": ""}, "name"),
    ("name over the configured limit", {**LISTING, "name": "x" * 201}, "name"),
    (
        "description over the configured limit",
        {**LISTING, "item_description": "great " * 1000},
        "item_description",
    ),
    ("brand over its ceiling", {**LISTING, "brand_name": "b" * 101}, "brand_name"),
    ("category as a list", {**LISTING, "category_name": ["Men", "Shoes"]}, "category_name"),
    ("control character", {**LISTING, "name": "bag\x00\x07"}, "name"),
    (
        "control character in the description",
        {**LISTING, "item_description": "ok\x1b[31m"},
        "item_description",
    ),
    ("unknown field", {**LISTING, "price": 10}, "price"),
    ("not an object", ["a", "list"], ""),
    ("null body", None, ""),
]


@pytest.mark.contract("POST", "/v1/suggestions")
@pytest.mark.parametrize(("case", "body", "field"), BAD_LISTINGS, ids=[c[0] for c in BAD_LISTINGS])
def test_bad_listings_get_422_naming_the_field(client: TestClient, case: str, body: Any, field: str) -> None:
    response = client.post("/v1/suggestions", json=body)
    locations = error_locations(response)
    assert any(loc[0] == "body" and (not field or field in loc) for loc in locations), (case, locations)
    # The input is never echoed back: the answer stays small whatever was sent.
    assert all("input" not in error for error in response.json()["detail"])
    assert len(response.content) < 2000


@pytest.mark.contract("POST", "/v1/suggestions")
def test_configured_text_limits_are_reported_with_the_limit(client: TestClient) -> None:
    response = client.post(
        "/v1/suggestions", json={**LISTING, "name": "n" * 201, "item_description": "d" * 5001}
    )
    errors = {tuple(e["loc"]): e for e in response.json()["detail"]}
    assert response.status_code == 422
    assert errors[("body", "name")]["ctx"] == {"max_length": 200}
    assert errors[("body", "item_description")]["ctx"] == {"max_length": 5000}
    assert errors[("body", "name")]["type"] == "string_too_long"
    at_limit = client.post(
        "/v1/suggestions", json={**LISTING, "name": "n" * 200, "item_description": "d" * 5000}
    )
    assert at_limit.status_code == 200, at_limit.text


@pytest.mark.contract("POST", "/v1/suggestions")
def test_unicode_text_and_optional_fields_left_out_are_priced(client: TestClient) -> None:
    listing = {
        **LISTING,
        "name": "Sac à main 👜 cuir – état neuf",
        "item_description": "日本製\tとても良い\n状態",
    }
    minimal = {"name": "plain white t-shirt", "item_condition_id": 3, "shipping": 0}
    nulls = {**minimal, "brand_name": None, "category_name": None, "item_description": None}
    for body in (listing, minimal, nulls):
        response = client.post("/v1/suggestions", json=body)
        assert response.status_code == 200, response.text
        assert_suggestion(response.json())


@pytest.mark.contract("POST", "/v1/suggestions")
def test_malformed_json_bad_include_and_wrong_content_are_client_errors(client: TestClient) -> None:
    broken = client.post(
        "/v1/suggestions", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    bad_include = client.post("/v1/suggestions", params={"include": "everything"}, json=LISTING)
    repeated_comma = client.post("/v1/suggestions", params={"include": "explanation,"}, json=LISTING)
    not_json = client.post(
        "/v1/suggestions", content=b"\xff\xfe garbage", headers={"content-type": "text/plain"}
    )
    no_body = client.post("/v1/suggestions")
    wrong_method = client.get("/v1/suggestions")
    assert error_locations(broken)[0][0] == "body"
    assert error_locations(bad_include)[0] == ["query", "include"]
    assert error_locations(repeated_comma)[0] == ["query", "include"]
    assert 400 <= not_json.status_code < 500
    assert error_locations(no_body)[0][0] == "body"
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]


@pytest.mark.contract("POST", "/v1/suggestions")
def test_bodies_over_the_limit_get_413_with_or_without_content_length(client: TestClient) -> None:
    huge = json.dumps({**LISTING, "item_description": "x" * 1_100_000}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    declared = client.post("/v1/suggestions", content=huge, headers={"content-type": "application/json"})
    undeclared = client.post(
        "/v1/suggestions", content=chunks(), headers={"content-type": "application/json"}
    )
    bad_length = client.post(
        "/v1/suggestions", content=b"{}", headers={"content-type": "application/json", "content-length": "x"}
    )
    assert declared.status_code == 413
    assert declared.json() == {"detail": "request body over 1000000 bytes"}
    assert undeclared.status_code == 413
    assert bad_length.status_code == 400
    assert client.post("/v1/suggestions", json=LISTING).status_code == 200


# POST /v1/suggestions/batch


@pytest.mark.contract("POST", "/v1/suggestions/batch")
def test_batch_keeps_order_and_logs_every_listing(client: TestClient, prediction_log: PredictionLog) -> None:
    cheap = {**LISTING, "name": "plain white t-shirt", "brand_name": None, "item_description": None}
    response = client.post("/v1/suggestions/batch", json={"listings": [LISTING, cheap, LISTING]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"batch_id", "suggestions"}
    assert HEX_ID.match(body["batch_id"])
    suggestions = body["suggestions"]
    single = client.post("/v1/suggestions", json=LISTING).json()
    cheap_single = client.post("/v1/suggestions", json=cheap).json()
    assert len(suggestions) == 3
    for suggestion in suggestions:
        assert_suggestion(suggestion)
    assert suggestions[0]["price"] == suggestions[2]["price"] == single["price"]
    assert suggestions[1]["price"] == cheap_single["price"] != single["price"]
    assert len({s["request_id"] for s in suggestions}) == 3
    assert {s["request_id"] for s in suggestions} <= prediction_log.logged_request_ids()


@pytest.mark.contract("POST", "/v1/suggestions/batch")
def test_batch_extras_come_with_every_suggestion(client: TestClient) -> None:
    response = client.post(
        "/v1/suggestions/batch",
        params={"include": "explanation,comparables"},
        json={"listings": [LISTING] * 2},
    )
    assert response.status_code == 200, response.text
    for suggestion in response.json()["suggestions"]:
        assert suggestion["explanation"]["up"] or suggestion["explanation"]["down"]
        assert len(suggestion["comparables"]) == 5
        assert set(suggestion["comparables"][0]) == COMPARABLE_FIELDS
        assert all(set(r) == {"feature", "effect", "text"} for r in suggestion["explanation"]["up"])
        assert suggestion["confidence"] == {"level": "normal", "unfamiliar": [], "what_if": []}


@pytest.mark.contract("POST", "/v1/suggestions/batch")
def test_batch_confidence_is_per_listing_with_what_if_only_with_the_explanation(client: TestClient) -> None:
    listings = {"listings": [LISTING, TITLE_ONLY]}
    plain = client.post("/v1/suggestions/batch", json=listings).json()["suggestions"]
    explained = client.post("/v1/suggestions/batch", params={"include": "explanation"}, json=listings).json()
    full, bare = explained["suggestions"]
    assert [s["confidence"]["level"] for s in plain] == ["normal", "low"]
    assert [s["confidence"]["what_if"] for s in plain] == [None, None]
    assert full["confidence"]["what_if"] == []
    assert bare["confidence"]["what_if"], "the title-only listing gets what-if prices"
    assert bare["confidence"]["unfamiliar"] == plain[1]["confidence"]["unfamiliar"]
    single = client.post("/v1/suggestions", params={"include": "explanation"}, json=TITLE_ONLY).json()
    assert bare["confidence"] == single["confidence"]


@pytest.mark.contract("POST", "/v1/suggestions/batch")
def test_batches_empty_oversized_and_with_one_bad_listing(client: TestClient) -> None:
    empty = client.post("/v1/suggestions/batch", json={"listings": []})
    oversized = client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 101})
    over_the_ceiling = client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 1001})
    one_bad = client.post("/v1/suggestions/batch", json={"listings": [LISTING, {**LISTING, "shipping": 5}]})
    one_too_long = client.post(
        "/v1/suggestions/batch", json={"listings": [LISTING, {**LISTING, "name": "x" * 201}]}
    )
    not_a_list = client.post("/v1/suggestions/batch", json={"listings": LISTING})
    bare_list = client.post("/v1/suggestions/batch", json=[LISTING])
    at_limit = client.post("/v1/suggestions/batch", json={"listings": [LISTING] * 100})
    assert error_locations(empty) == [["body", "listings"]]
    assert error_locations(oversized) == [["body", "listings"]]
    assert oversized.json()["detail"][0]["ctx"] == {
        "max_length": 100
    }  # serve.max_batch, not the hard ceiling
    assert error_locations(over_the_ceiling)[0] == ["body", "listings"]
    assert error_locations(one_bad) == [["body", "listings", 1, "shipping"]]
    assert error_locations(one_too_long) == [["body", "listings", 1, "name"]]
    assert error_locations(not_a_list)[0] == ["body", "listings"]
    assert error_locations(bare_list)[0][0] == "body"
    assert at_limit.status_code == 200
    assert len(at_limit.json()["suggestions"]) == 100


# POST /v1/feedback


@pytest.mark.contract("POST", "/v1/feedback")
def test_feedback_for_a_suggestion_is_recorded(client: TestClient, prediction_log: PredictionLog) -> None:
    request_id = client.post("/v1/suggestions", json=LISTING).json()["request_id"]
    chosen = client.post("/v1/feedback", json={"request_id": request_id, "chosen_price": 30.0})
    sold = client.post(
        "/v1/feedback", json={"request_id": request_id, "chosen_price": 31.0, "sold_price": 29.0}
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json() == {"request_id": request_id, "recorded": True}
    assert sold.status_code == 422  # sold prices are outcomes, never seller feedback
    assert error_locations(sold) == [["body", "sold_price"]]
    with prediction_log.engine.connect() as connection:
        rows = connection.execute(
            select(prediction_log.feedback.c.chosen_price, prediction_log.feedback.c.sold_price).where(
                prediction_log.feedback.c.request_id == request_id
            )
        ).all()
    assert [tuple(r) for r in rows] == [(30.0, None)]
    assert request_id not in set(prediction_log.sold_suggestions()["request_id"])


@pytest.mark.contract("POST", "/v1/feedback")
def test_feedback_for_an_unknown_request_id_is_404(client: TestClient) -> None:
    unknown = client.post("/v1/feedback", json={"request_id": "0" * 32, "chosen_price": 30.0})
    assert unknown.status_code == 404
    assert "0" * 32 in unknown.json()["detail"]


BAD_FEEDBACK: list[tuple[str, Any, str]] = [
    ("no price at all", {}, ""),
    ("chosen price zero", {"chosen_price": 0}, "chosen_price"),
    ("chosen price negative", {"chosen_price": -5.0}, "chosen_price"),
    ("sold price given", {"chosen_price": 30.0, "sold_price": 28.5}, "sold_price"),
    ("chosen price over the maximum", {"chosen_price": 1_000_001.0}, "chosen_price"),
    ("sold price as a string", {"chosen_price": 30.0, "sold_price": "28.5"}, "sold_price"),
    ("chosen price not a number", {"chosen_price": "NaN"}, "chosen_price"),
    ("unknown field", {"chosen_price": 30.0, "note": "sold fast"}, "note"),
]


@pytest.mark.contract("POST", "/v1/feedback")
@pytest.mark.parametrize(("case", "prices", "field"), BAD_FEEDBACK, ids=[c[0] for c in BAD_FEEDBACK])
def test_invalid_feedback_gets_422_naming_the_field(
    client: TestClient, case: str, prices: Any, field: str
) -> None:
    response = client.post("/v1/feedback", json={"request_id": "ab" * 16, **prices})
    locations = error_locations(response)
    assert any(loc[0] == "body" and (not field or field in loc) for loc in locations), (case, locations)


@pytest.mark.contract("POST", "/v1/feedback")
@pytest.mark.parametrize("request_id", ["", "NOT-HEX!", "a" * 65, 12345])
def test_a_malformed_request_id_gets_422_naming_it(client: TestClient, request_id: Any) -> None:
    response = client.post("/v1/feedback", json={"request_id": request_id, "chosen_price": 30.0})
    assert ["body", "request_id"] in error_locations(response)


# GET /v1/model, /health, /ready, /metrics


@pytest.mark.contract("GET", "/v1/model")
def test_model_says_which_champion_serves(client: TestClient) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    model = response.json()
    assert set(model) == MODEL_FIELDS
    assert (model["name"], model["version"], model["source"], model["fallback"]) == (
        "pricewise",
        "1",
        "registry",
        False,
    )
    assert model["run_id"] == client.post("/v1/suggestions", json=LISTING).json()["model"]["run_id"]
    assert datetime.fromisoformat(model["loaded_at"]).utcoffset() is not None


@pytest.mark.contract("GET", "/health")
def test_health_is_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "detail": None}


@pytest.mark.contract("GET", "/ready")
def test_ready_once_the_champion_is_loaded(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "detail": None}


@pytest.mark.contract("GET", "/metrics")
def test_metrics_expose_the_model_and_every_request_by_route_template(client: TestClient) -> None:
    # One served suggestion of its own: the counter's sample appears once incremented, whatever ran before.
    assert client.post("/v1/suggestions", json=LISTING).status_code == 200
    client.post("/v1/suggestions", json={"name": 1})
    client.get("/static/no-such-file.css")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    metrics = response.text
    model = client.get("/v1/model").json()
    assert f'pricewise_model_info{{name="pricewise",run_id="{model["run_id"]}"' in metrics
    assert 'version="1"' in metrics
    assert 'pricewise_http_requests_total{method="POST",route="/v1/suggestions",status="422"}' in metrics
    assert 'pricewise_http_errors_total{kind="4xx",route="/v1/suggestions"}' in metrics
    assert "pricewise_http_request_duration_seconds_bucket" in metrics
    assert 'pricewise_suggestions_total{source="registry"}' in metrics
    assert "no-such-file" not in metrics, "raw paths must not become metric labels"


# POST /v1/admin/reload


@pytest.mark.contract("POST", "/v1/admin/reload")
def test_admin_reload_needs_the_bearer_token(client: TestClient) -> None:
    missing = client.post("/v1/admin/reload")
    wrong = client.post("/v1/admin/reload", headers={"Authorization": "Bearer not-the-token"})
    not_bearer = client.post("/v1/admin/reload", headers={"Authorization": ADMIN_TOKEN})
    empty_bearer = client.post("/v1/admin/reload", headers={"Authorization": "Bearer "})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403
    assert not_bearer.status_code == 401
    assert empty_bearer.status_code == 403


@pytest.mark.contract("POST", "/v1/admin/reload")
def test_admin_reload_with_the_token_keeps_the_unchanged_champion(client: TestClient) -> None:
    before = client.get("/v1/model").json()
    right = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert right.status_code == 200, right.text
    body = right.json()
    assert set(body) == {"changed", "model", "detail"}
    assert body["changed"] is False
    assert body["detail"]
    assert body["model"] == before
    assert client.get("/v1/model").json() == before


def test_without_an_admin_token_the_admin_route_does_not_exist(api_settings: Settings) -> None:
    no_token = api_settings.model_copy(update={"admin_token": None})
    app = create_app(no_token, load_config(no_token.config_path))
    anonymous = TestClient(app)  # no lifespan needed: the route is simply not there
    assert (
        anonymous.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code
        == 404
    )
    assert "/v1/admin/reload" not in anonymous.get("/openapi.json").json()["paths"]


# /docs, /openapi.json


@pytest.mark.contract("GET", "/openapi.json")
def test_openapi_documents_every_api_route_and_the_configured_limits_with_examples(
    client: TestClient,
) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    listing = schema["components"]["schemas"]["Listing"]
    assert listing["examples"][0]["name"]
    assert listing["properties"]["name"]["maxLength"] == 200
    assert schema["components"]["schemas"]["BatchRequest"]["properties"]["listings"]["maxItems"] == 100
    assert set(schema["paths"]) == {
        "/v1/suggestions",
        "/v1/suggestions/batch",
        "/v1/feedback",
        "/v1/model",
        "/health",
        "/ready",
        "/metrics",
        "/v1/admin/reload",
        "/v1/monitoring",
        "/monitoring/reports/{run_id}",
    }, "the HTML pages stay out of the API schema"
    suggest = schema["paths"]["/v1/suggestions"]["post"]
    assert {"200", "422", "503"} <= set(suggest["responses"])
    components = schema["components"]["schemas"]
    assert "confidence" in components["Suggestion"]["required"]
    for model, fields in {
        "Confidence": ("level", "unfamiliar", "what_if"),
        "WhatIf": ("field", "value", "price", "change", "text"),
        "Reason": ("text",),
        "Comparable": ("condition",),
    }.items():
        assert all(components[model]["properties"][f]["description"] for f in fields), model


@pytest.mark.contract("GET", "/docs")
def test_docs_page_loads_the_openapi_document(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text


@pytest.mark.contract("GET", "/docs/oauth2-redirect")
def test_docs_oauth2_redirect_page_is_served(client: TestClient) -> None:
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.contract("GET", "/redoc")
def test_redoc_page_loads_the_openapi_document(client: TestClient) -> None:
    response = client.get("/redoc")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


# /static


@pytest.mark.contract("GET", "/static")
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("seller.css", "text/css"),
        ("seller.js", "javascript"),
        ("monitoring.css", "text/css"),
        ("monitoring.js", "javascript"),
        ("vendor/chart-4.6.1.umd.min.js", "javascript"),
    ],
)
def test_static_files_the_pages_link_are_served(client: TestClient, path: str, content_type: str) -> None:
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    assert content_type in response.headers["content-type"]
    assert response.content


@pytest.mark.contract("GET", "/static")
@pytest.mark.parametrize(
    "path", ["no-such-file.css", "..%2Fapp.py", "%2e%2e/routes.py", "vendor/../../app.py"]
)
def test_static_outside_the_folder_or_missing_is_404(client: TestClient, path: str) -> None:
    response = client.get(f"/static/{path}")
    assert response.status_code == 404
    assert "import" not in response.text


def test_unknown_paths_are_404_json(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}

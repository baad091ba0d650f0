"""POST /v1/outcomes on the real app (champion loaded, prediction log on disk): only the outcomes token stores
sold prices, all or nothing; and seller feedback, open to the page, is rate-limited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.serving.throttle import ClientRateLimit
from pricewise.settings import Settings
from tests.support.servers import ADMIN_TOKEN, LISTING

OUTCOMES_TOKEN = "outcomes-scope-token"
AUTH = {"Authorization": f"Bearer {OUTCOMES_TOKEN}"}


@pytest.fixture(scope="module")
def app_client(api_settings: Settings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"outcomes_token": SecretStr(OUTCOMES_TOKEN)})
    config = load_config(settings.config_path)
    config = config.model_copy(update={"serve": config.serve.model_copy(update={"feedback_per_minute": 5})})
    torch_threads = torch.get_num_threads()
    try:
        with TestClient(create_app(settings, config), raise_server_exceptions=False) as running:
            yield running
    finally:
        torch.set_num_threads(torch_threads)


def _suggest(client: TestClient) -> str:
    response = client.post("/v1/suggestions", json=LISTING)
    assert response.status_code == 200, response.text
    return str(response.json()["request_id"])


def _outcome_rows(client: TestClient) -> int:
    log = client.app.state.prediction_log  # type: ignore[attr-defined]
    with log.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(log.outcomes)).scalar_one())


@pytest.mark.contract("POST", "/v1/outcomes")
def test_outcomes_with_the_outcomes_token_are_stored_with_their_source(app_client: TestClient) -> None:
    request_id = _suggest(app_client)
    body = {"outcomes": [{"request_id": request_id, "sold_price": 38.5, "sold_at": "2026-11-30T12:00:00Z"}]}
    stored = app_client.post("/v1/outcomes", json=body, headers=AUTH)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"stored": 1, "already_recorded": 0, "source": "api"}
    retried = app_client.post("/v1/outcomes", json=body, headers=AUTH)
    assert retried.json() == {"stored": 0, "already_recorded": 1, "source": "api"}
    sold = app_client.app.state.prediction_log.sold_suggestions()  # type: ignore[attr-defined]
    row = sold[sold["request_id"] == request_id]
    assert row[["sold_price", "label_source"]].values.tolist() == [[38.5, "api"]]


@pytest.mark.contract("POST", "/v1/outcomes")
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, 403),  # the admin scope does not open outcomes
        ({"Authorization": "Bearer guessed"}, 403),
    ],
)
def test_outcomes_without_the_right_token_store_nothing(
    app_client: TestClient, headers: dict[str, str], status: int
) -> None:
    request_id = _suggest(app_client)
    before = _outcome_rows(app_client)
    response = app_client.post(
        "/v1/outcomes", json={"outcomes": [{"request_id": request_id, "sold_price": 99.0}]}, headers=headers
    )
    assert response.status_code == status, response.text
    assert _outcome_rows(app_client) == before


@pytest.mark.contract("POST", "/v1/outcomes")
def test_outcomes_for_unknown_or_already_labelled_ids_are_refused_whole(app_client: TestClient) -> None:
    known, other = _suggest(app_client), _suggest(app_client)
    assert (
        app_client.post(
            "/v1/outcomes", json={"outcomes": [{"request_id": known, "sold_price": 20.0}]}, headers=AUTH
        ).status_code
        == 200
    )
    before = _outcome_rows(app_client)
    unknown = app_client.post(
        "/v1/outcomes",
        json={
            "outcomes": [
                {"request_id": other, "sold_price": 20.0},
                {"request_id": "f" * 32, "sold_price": 5.0},
            ]
        },
        headers=AUTH,
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["unknown"] == ["f" * 32]
    relabel = app_client.post(
        "/v1/outcomes",
        json={
            "outcomes": [{"request_id": other, "sold_price": 20.0}, {"request_id": known, "sold_price": 36.0}]
        },
        headers=AUTH,
    )
    assert relabel.status_code == 409, relabel.text
    assert relabel.json()["conflicting"] == [known]
    assert _outcome_rows(app_client) == before  # `other` was in both: stored in neither


@pytest.mark.contract("POST", "/v1/outcomes")
@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        ({"sold_price": 0}, "sold_price"),
        ({"sold_price": "12.5"}, "sold_price"),
        ({"sold_price": 2_000_000.0}, "sold_price"),
        ({}, "sold_price"),
        ({"sold_price": 3.0, "note": "x"}, "note"),
    ],
)
def test_bad_outcomes_get_422_naming_the_field(
    app_client: TestClient, outcome: dict[str, object], field: str
) -> None:
    response = app_client.post(
        "/v1/outcomes", json={"outcomes": [{"request_id": "ab" * 16, **outcome}]}, headers=AUTH
    )
    assert response.status_code == 422, response.text
    assert any(field in e["loc"] for e in response.json()["detail"]), response.json()


def test_without_an_outcomes_token_the_endpoint_does_not_exist(client: TestClient) -> None:
    response = client.post("/v1/outcomes", json={"outcomes": [{"request_id": "ab" * 16, "sold_price": 3.0}]})
    assert response.status_code == 404


@pytest.mark.contract("POST", "/v1/feedback")
def test_a_flood_of_seller_feedback_gets_429_and_is_not_stored(app_client: TestClient) -> None:
    request_id = _suggest(app_client)
    log = app_client.app.state.prediction_log  # type: ignore[attr-defined]
    answers = [
        app_client.post("/v1/feedback", json={"request_id": request_id, "chosen_price": 10.0 + i}).status_code
        for i in range(12)
    ]
    assert answers[:5] == [200] * 5
    assert set(answers[5:]) == {429}
    limited = app_client.post("/v1/feedback", json={"request_id": request_id, "chosen_price": 1.0})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    with log.engine.connect() as connection:
        stored = connection.execute(
            select(func.count()).select_from(log.feedback).where(log.feedback.c.request_id == request_id)
        ).scalar_one()
    assert stored == 5


def test_the_allowance_is_per_client_and_frees_up_after_a_minute() -> None:
    now = [0.0]
    limit = ClientRateLimit(2, clock=lambda: now[0])
    assert limit.allow("a") is None
    assert limit.allow("a") is None
    assert limit.allow("a") == pytest.approx(60.0)
    assert limit.allow("b") is None
    now[0] = 60.5
    assert limit.allow("a") is None

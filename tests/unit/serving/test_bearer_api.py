"""Wrong admin tokens sent to the app in; 403 for each of the first five in a minute, then 429 with Retry-After
for every admin request of that client, the right token included, out."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings
from tests.support.servers import ADMIN_TOKEN


def test_the_sixth_wrong_admin_token_within_a_minute_gets_429_and_then_the_right_token_too(
    api_settings: Settings,
) -> None:
    config = load_config(api_settings.config_path)
    assert config.serve.admin_failures_per_minute == 5
    # A fresh app (its own counts), not entered: a refused request never reaches the model.
    client = TestClient(create_app(api_settings, config))
    wrong = [
        client.post("/v1/admin/reload", headers={"Authorization": f"Bearer guess-{i}"}).status_code
        for i in range(5)
    ]
    assert wrong == [403] * 5
    sixth = client.post("/v1/admin/reload", headers={"Authorization": "Bearer guess-6"})
    assert sixth.status_code == 429, sixth.text
    assert 1 <= int(sixth.headers["Retry-After"]) <= 60
    assert "wrong admin tokens" in sixth.json()["detail"]
    right = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert right.status_code == 429, "a client over the limit is refused whatever it sends"
    assert client.post("/v1/admin/reload").status_code == 429

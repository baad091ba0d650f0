"""An app whose SQLite prediction log lies on a small real disk in; /ready answers for a full, a read-only and a
recovered disk out (ready means a suggestion can be served and logged)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from pricewise.config import load_config
from pricewise.serving.app import create_app
from pricewise.settings import Settings
from pricewise.store.sql import sqlite_url
from tests.support.disks import filled, small_disk
from tests.support.servers import LISTING


@contextmanager
def serving_on(settings: Settings, disk: Path, min_free_mib: int) -> Iterator[TestClient]:
    """The app (lifespan run: model loaded, log open) with its prediction log on `disk`."""
    on_disk = settings.model_copy(update={"prediction_log_url": sqlite_url(disk / "predictions.db")})
    config = load_config(settings.config_path)
    config = config.model_copy(
        update={"serve": config.serve.model_copy(update={"log_min_free_mib": min_free_mib})}
    )
    with TestClient(create_app(on_disk, config), raise_server_exceptions=False) as client:
        yield client


@contextmanager
def read_only(mount_point: Path, client: TestClient) -> Iterator[None]:
    """Remount a file system read-only for the block.

    A file system with files open for writing cannot be remounted: the log's pooled connections are closed
    first (the pool opens new ones on the next use, on the read-only disk).
    """
    client.app.state.prediction_log.engine.dispose()  # type: ignore[attr-defined]
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount_point)], check=True, capture_output=True)


def _not_ready(client: TestClient, disk: Path) -> str:
    response = client.get("/ready")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not ready"
    detail = str(body["detail"])
    assert "prediction log" in detail
    assert str(disk) not in detail, "no server path in a public answer"
    assert "/" not in detail
    return detail


def test_a_log_on_a_full_disk_makes_the_server_not_ready(api_settings: Settings, tmp_path: Path) -> None:
    with (
        small_disk(tmp_path / "disk", "16m") as disk,
        serving_on(api_settings, disk, min_free_mib=8) as client,
    ):
        assert client.get("/ready").status_code == 200
        with filled(disk):
            assert "disk is full" in _not_ready(client, disk)
        assert client.get("/ready").status_code == 200, "ready again once there is room"


def test_a_log_on_a_read_only_disk_makes_the_server_not_ready(api_settings: Settings, tmp_path: Path) -> None:
    with (
        small_disk(tmp_path / "disk", "16m") as disk,
        serving_on(api_settings, disk, min_free_mib=0) as client,
    ):
        assert client.post("/v1/suggestions", json=LISTING).status_code == 200
        with read_only(disk, client):
            assert "read-only" in _not_ready(client, disk)
            assert client.post("/v1/suggestions", json=LISTING).status_code == 503, "nothing can be logged"
        assert client.get("/ready").status_code == 200


def test_after_a_failed_write_not_ready_until_a_probe_write_succeeds(
    api_settings: Settings, tmp_path: Path
) -> None:
    # The free-space check is off: only the failed write and the probe after it can tell.
    with (
        small_disk(tmp_path / "disk", "16m") as disk,
        serving_on(api_settings, disk, min_free_mib=0) as client,
    ):
        assert client.post("/v1/suggestions", json=LISTING).status_code == 200
        with filled(disk):
            failed = client.post("/v1/suggestions", json={**LISTING, "item_description": "x" * 4000})
            assert failed.status_code == 503, failed.text
            detail = _not_ready(client, disk)
            assert "last write failed" in detail, detail
            assert "probe write fails" in detail, detail
            assert client.get("/ready").status_code == 503, "still not ready while the probe fails"
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        served = client.post("/v1/suggestions", json=LISTING)
        assert served.status_code == 200, "recovered without a restart"

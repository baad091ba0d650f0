"""Settings in; MLflow pointed at the embedded SQLite store (created on first use) or a checked-reachable
server, the experiment created under the data directory, and the code version, out."""

from __future__ import annotations

import re
import time
from pathlib import Path

import mlflow
import pytest

from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import tracking
from tests.support.servers import free_port


def test_the_embedded_store_is_created_under_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    uri = tracking.configure(settings)

    assert uri == f"sqlite:///{(tmp_path / 'data' / 'mlflow' / 'mlflow.db').resolve()}"
    assert (tmp_path / "data" / "mlflow").is_dir()
    assert mlflow.get_tracking_uri() == uri
    assert mlflow.get_registry_uri() == uri


def test_an_experiment_is_created_once_with_its_artifacts_under_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    tracking.configure(settings)

    created = tracking.experiment_id(settings, "unit")
    again = tracking.experiment_id(settings, "unit")

    assert created == again
    experiment = mlflow.get_experiment(created)
    assert experiment.name == "unit"
    assert experiment.artifact_location == settings.artifact_root.as_uri()
    assert settings.artifact_root.is_dir()


def test_an_unreachable_tracking_server_fails_fast_and_names_the_setting(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    with pytest.raises(PricewiseError, match="PRICEWISE_MLFLOW_TRACKING_URI") as caught:
        tracking.configure(Settings(data_dir=tmp_path, mlflow_tracking_uri=uri))

    assert f"cannot reach the MLflow tracking server at {uri}" in str(caught.value)
    assert time.monotonic() - started < tracking.PROBE_TIMEOUT_S + 1


def test_a_store_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")

    with pytest.raises(PricewiseError, match="cannot create the MLflow store"):
        tracking.configure(Settings(data_dir=blocker / "data"))


def test_the_code_version_is_the_package_version_and_a_commit() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\+([0-9a-f]{4,40}|unknown)", tracking.code_version())

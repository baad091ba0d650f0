"""Tests of the on-disk model cache: one download per version, an atomic pointer to the last good model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from pricewise.settings import Settings
from pricewise.store import model_cache, tracking


def model_files(root: Path, marker: str) -> Path:
    """A directory that looks like a logged model (an MLmodel file and one artifact)."""
    root.mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    (root / "python_model.pkl").write_text(marker, encoding="utf-8")
    return root


def register(settings: Settings, files: Path, name: str) -> str:
    """Log a directory as a run's `model` artifact in the settings' MLflow store and register it."""
    tracking.configure(settings)
    experiment = tracking.experiment_id(settings, "cache-test")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(files), artifact_path="model")
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    source = f"{run.info.artifact_uri}/model"
    return str(client.create_model_version(name, source=source, run_id=run.info.run_id).version)


def test_a_version_is_downloaded_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    version = register(settings, model_files(tmp_path / "files-1", "first"), "pricewise")
    path = model_cache.download(settings, f"models:/pricewise/{version}", "pricewise", version)
    assert path == model_cache.cache_dir(settings) / f"pricewise-v{version}"
    assert (path / "python_model.pkl").read_text(encoding="utf-8") == "first"
    (path / "python_model.pkl").write_text("kept", encoding="utf-8")
    again = model_cache.download(settings, f"models:/pricewise/{version}", "pricewise", version)
    assert again == path
    assert (again / "python_model.pkl").read_text(encoding="utf-8") == "kept", (
        "a cached version is not refetched"
    )
    assert [p.name for p in model_cache.cache_dir(settings).iterdir()] == [path.name], (
        "no staging left behind"
    )


def test_the_pointer_names_the_last_model_remembered(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert model_cache.read_cached(settings) is None
    for marker in ("1", "2"):
        version = register(settings, model_files(tmp_path / f"files-{marker}", marker), "pricewise")
        path = model_cache.download(settings, f"models:/pricewise/{version}", "pricewise", version)
        model_cache.remember(settings, path, "pricewise", version, f"run-{version}")
    cached = model_cache.read_cached(settings)
    assert cached == model_cache.CachedModel(
        path=model_cache.cache_dir(settings) / "pricewise-v2", name="pricewise", version="2", run_id="run-2"
    )
    leftovers = [p.name for p in model_cache.cache_dir(settings).iterdir() if p.name.startswith(".")]
    assert leftovers == [], "the pointer is written through a temporary file that is renamed, not left behind"


def test_an_unusable_pointer_means_no_cached_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    root = model_cache.cache_dir(settings)
    root.mkdir(parents=True)
    pointer = root / model_cache.POINTER
    pointer.write_text("{not json", encoding="utf-8")
    assert model_cache.read_cached(settings) is None
    pointer.write_text(json.dumps(["a", "list"]), encoding="utf-8")
    assert model_cache.read_cached(settings) is None
    pointer.write_text(
        json.dumps({"name": "pricewise", "version": "1", "path": "pricewise-v1"}), encoding="utf-8"
    )
    assert model_cache.read_cached(settings) is None, "the files it points at are gone"
    pointer.write_text(json.dumps({"name": "pricewise", "version": "1", "path": ""}), encoding="utf-8")
    (root / "MLmodel").write_text("", encoding="utf-8")
    assert model_cache.read_cached(settings) is None, "an empty path must not resolve to the cache root"

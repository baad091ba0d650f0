"""Tests of the on-disk model cache: one download per version, an atomic pointer to the last good model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pricewise.settings import Settings
from pricewise.store import model_cache, tracking
from pricewise.store.registry import ModelRefusedError, artifact_digest


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
    files = model_files(tmp_path / "files-1", "first")
    digest = artifact_digest(files)
    version = register(settings, files, "pricewise")
    path = model_cache.download(settings, f"models:/pricewise/{version}", "pricewise", version, digest)
    assert path == model_cache.cache_dir(settings) / f"pricewise-v{version}"
    assert (path / "python_model.pkl").read_text(encoding="utf-8") == "first"
    stamp = (path / "python_model.pkl").stat().st_mtime_ns
    again = model_cache.download(settings, f"models:/pricewise/{version}", "pricewise", version, digest)
    assert again == path
    assert (again / "python_model.pkl").stat().st_mtime_ns == stamp, "a cached version is not refetched"
    assert [p.name for p in model_cache.cache_dir(settings).iterdir()] == [path.name], (
        "no staging left behind"
    )


def test_the_pointer_names_the_last_model_remembered(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert model_cache.read_cached(settings) is None
    for marker in ("1", "2"):
        files = model_files(tmp_path / f"files-{marker}", marker)
        version = register(settings, files, "pricewise")
        uri = f"models:/pricewise/{version}"
        path = model_cache.download(settings, uri, "pricewise", version, artifact_digest(files))
        model_cache.remember(settings, path, "pricewise", version, f"run-{version}", artifact_digest(files))
    cached = model_cache.read_cached(settings)
    assert cached == model_cache.CachedModel(
        path=model_cache.cache_dir(settings) / "pricewise-v2",
        name="pricewise",
        version="2",
        run_id="run-2",
        digest=artifact_digest(tmp_path / "files-2"),
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


def test_a_cached_copy_that_changed_is_fetched_again_and_registry_files_that_changed_are_refused(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    files = model_files(tmp_path / "files", "registered")
    digest = artifact_digest(files)
    version = register(settings, files, "pricewise")
    uri = f"models:/pricewise/{version}"
    path = model_cache.download(settings, uri, "pricewise", version, digest)
    (path / "python_model.pkl").write_text("tampered in the cache", encoding="utf-8")

    again = model_cache.download(settings, uri, "pricewise", version, digest)

    assert (again / "python_model.pkl").read_text(encoding="utf-8") == "registered"
    stored = settings.artifact_root.rglob("python_model.pkl")
    for stored_file in stored:
        stored_file.write_text("tampered in the artifact store", encoding="utf-8")
    (again / "python_model.pkl").write_text("tampered in the cache", encoding="utf-8")
    with pytest.raises(ModelRefusedError, match="do not match the digest recorded when it was registered"):
        model_cache.download(settings, uri, "pricewise", version, digest)
    assert not path.exists(), "nothing that fails its digest stays in the cache"
    assert [p.name for p in model_cache.cache_dir(settings).iterdir()] == []


@pytest.mark.parametrize("named", ["/etc", "../outside", "sub/dir", ".."])
def test_a_pointer_outside_the_cache_directory_is_refused(tmp_path: Path, named: str) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    root = model_cache.cache_dir(settings)
    root.mkdir(parents=True)
    outside = model_files(tmp_path / "data" / "serving" / "outside", "planted")
    model_files(root / "sub" / "dir", "planted")
    assert (outside / "MLmodel").is_file()
    (root / model_cache.POINTER).write_text(
        json.dumps({"name": "pricewise", "version": "1", "path": named, "digest": artifact_digest(outside)}),
        encoding="utf-8",
    )

    with pytest.raises(ModelRefusedError, match="outside the cache directory"):
        model_cache.read_cached(settings)


def test_a_link_inside_the_cache_that_leads_out_of_it_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    root = model_cache.cache_dir(settings)
    root.mkdir(parents=True)
    (root / "pricewise-v1").symlink_to(model_files(tmp_path / "elsewhere", "planted"))
    (root / model_cache.POINTER).write_text(
        json.dumps({"name": "pricewise", "version": "1", "path": "pricewise-v1"}), encoding="utf-8"
    )

    with pytest.raises(ModelRefusedError, match="outside the cache directory"):
        model_cache.read_cached(settings)

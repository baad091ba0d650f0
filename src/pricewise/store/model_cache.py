"""A registered model's URI and settings in; its files in the on-disk cache and the pointer to the last good one out.

The cache keeps one directory per downloaded version and a `current.json` pointer to the last champion that
loaded and predicted, so a server can start with the registry unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from pricewise.settings import Settings

POINTER = "current.json"


@dataclass(frozen=True)
class CachedModel:
    """The last good champion in the cache: where its files are and what it was in the registry."""

    path: Path
    name: str
    version: str | None
    run_id: str | None


def cache_dir(settings: Settings) -> Path:
    """Where the last good champion is kept, for starts with the registry unreachable."""
    return settings.data_dir / "serving" / "model-cache"


def download(settings: Settings, uri: str, name: str, version: str) -> Path:
    """Copy a registered model's files into the cache directory, once per version.

    Workers may race for the same version: each downloads into its own staging directory and the first rename
    wins; the others drop their copy.

    Args:
        settings: Where the data directory is.
        uri: The model's artifact URI (``models:/<name>/<version>``).
        name: The registered model's name.
        version: Its version.

    Returns:
        The directory holding the model (with its MLmodel file).

    Raises:
        mlflow.exceptions.MlflowException: The registry or artifact store cannot deliver the files.
        OSError: The cache directory cannot be written.
    """
    root = cache_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-v{version}"
    if not (target / "MLmodel").is_file():
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-v{version}-", dir=root))
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
        try:
            staging.rename(target)
        except OSError:  # another worker got there first with the same files
            shutil.rmtree(staging, ignore_errors=True)
    return target


def remember(settings: Settings, path: Path, name: str, version: str, run_id: str | None) -> None:
    """Point the cache at a model that loaded and predicted.

    The pointer is replaced atomically, so a crash leaves the old one.

    Args:
        settings: Where the data directory is.
        path: The model's directory inside the cache (as `download` returned it).
        name: The registered model's name.
        version: Its version.
        run_id: The MLflow run that logged it.
    """
    root = cache_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".current-", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"name": name, "version": version, "run_id": run_id, "path": path.name}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    Path(tmp).replace(root / POINTER)


def read_cached(settings: Settings) -> CachedModel | None:
    """The last good champion the cache points at.

    Args:
        settings: Where the data directory is.

    Returns:
        The cached model, or None when there is no pointer, it is unreadable, or its files are gone.
    """
    root = cache_dir(settings)
    try:
        meta = json.loads((root / POINTER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    path = root / str(meta.get("path", ""))
    if not meta.get("path") or not (path / "MLmodel").is_file():
        return None
    version, run_id = meta.get("version"), meta.get("run_id")
    return CachedModel(
        path=path,
        name=str(meta.get("name", "")),
        version=None if version is None else str(version),
        run_id=None if run_id is None else str(run_id),
    )

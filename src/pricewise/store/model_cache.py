"""A registered model's URI and digest in; its checked files in the on-disk cache and the pointer to the last good
one out.

The cache keeps one directory per downloaded version and a `current.json` pointer to the last champion that
loaded and predicted, with the digest its files were registered with, so a server can start with the registry
unreachable and still load only files pricewise registered. The pointer names a directory inside the cache and
nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.registry import ModelRefusedError, artifact_digest

logger = logging.getLogger(__name__)

POINTER = "current.json"


@dataclass(frozen=True)
class CachedModel:
    """The last good champion in the cache: where its files are and what it was in the registry."""

    path: Path
    name: str
    version: str | None
    run_id: str | None
    digest: str | None = None


def cache_dir(settings: Settings) -> Path:
    """Where the last good champion is kept, for starts with the registry unreachable."""
    return settings.data_dir / "serving" / "model-cache"


def _matches(path: Path, digest: str) -> bool:
    try:
        return artifact_digest(path) == digest
    except PricewiseError:
        return False


def download(settings: Settings, uri: str, name: str, version: str, digest: str) -> Path:
    """Copy a registered model's files into the cache directory, once per version, checked against its digest.

    Workers may race for the same version: each downloads into its own staging directory and the first rename
    wins; the others drop their copy. A cached copy that no longer matches the digest is fetched again.

    Args:
        settings: Where the data directory is.
        uri: The model's artifact URI (``models:/<name>/<version>``).
        name: The registered model's name.
        version: Its version.
        digest: The digest the version was registered with.

    Returns:
        The directory holding the model (with its MLmodel file), matching the digest when this returns.

    Raises:
        ModelRefusedError: The registry delivers files that do not match the digest (nothing is cached).
        mlflow.exceptions.MlflowException: The registry or artifact store cannot deliver the files.
        OSError: The cache directory cannot be written.
    """
    root = cache_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-v{version}"
    if (target / "MLmodel").is_file():
        if _matches(target, digest):
            return target
        logger.warning(
            "the cached copy of %s v%s differs from its registered files; fetching it again", name, version
        )
        aside = Path(tempfile.mkdtemp(prefix=f".stale-{name}-v{version}-", dir=root))
        target.rename(aside / "model")
        shutil.rmtree(aside, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-v{version}-", dir=root))
    mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
    if not _matches(staging, digest):
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelRefusedError(
            f"refused {name} v{version}: the files the registry holds do not match the digest recorded when "
            "it was registered; they changed after registration"
        )
    try:
        staging.rename(target)
    except OSError:  # another worker got there first with the same files
        shutil.rmtree(staging, ignore_errors=True)
    return target


def remember(
    settings: Settings, path: Path, name: str, version: str, run_id: str | None, digest: str
) -> None:
    """Point the cache at a model that loaded and predicted.

    The pointer is replaced atomically, so a crash leaves the old one.

    Args:
        settings: Where the data directory is.
        path: The model's directory inside the cache (as `download` returned it).
        name: The registered model's name.
        version: Its version.
        run_id: The MLflow run that logged it.
        digest: The digest the version was registered with (checked again when the cache is loaded).
    """
    root = cache_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".current-", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(
            {"name": name, "version": version, "run_id": run_id, "path": path.name, "digest": digest}, handle
        )
        handle.flush()
        os.fsync(handle.fileno())
    Path(tmp).replace(root / POINTER)


def read_cached(settings: Settings) -> CachedModel | None:
    """The last good champion the cache points at.

    Args:
        settings: Where the data directory is.

    Returns:
        The cached model, or None when there is no pointer, it is unreadable, or its files are gone.

    Raises:
        ModelRefusedError: The pointer names a place outside the cache directory (an absolute path, a parent
            directory or a link out of it).
    """
    root = cache_dir(settings)
    try:
        meta = json.loads((root / POINTER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not meta.get("path"):
        return None
    named = str(meta["path"])
    path = root / named
    # Only a directory directly inside the cache, as `remember` writes it; resolved, so a link cannot lead out.
    if Path(named).name != named or named in (".", "..") or path.resolve().parent != root.resolve():
        raise ModelRefusedError(
            f"refused the cached model: {root / POINTER} points at {named!r}, outside the cache directory {root}"
        )
    if not (path / "MLmodel").is_file():
        return None
    version, run_id, digest = meta.get("version"), meta.get("run_id"), meta.get("digest")
    return CachedModel(
        path=path,
        name=str(meta.get("name", "")),
        version=None if version is None else str(version),
        run_id=None if run_id is None else str(run_id),
        digest=None if digest is None else str(digest),
    )

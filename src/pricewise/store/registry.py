"""A registered model's name and alias in; its version, its verified files, or the loaded PriceSuggester, out.

The aliases are the one answer to "who is champion": ``champion`` is what serving and batch scoring use,
``challenger`` is what the promotion gate judges next.

A logged model is a pickle, and loading it runs code. So only models pricewise registered are loaded: `train`
records the sha256 of the model's files in a tag of the version it registers (`DIGEST_TAG`), and every load
checks the files it is about to unpickle against that tag. A version registered some other way, or whose files
changed since, is refused before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pricewise.errors import PricewiseError
from pricewise.models.suggester import PriceSuggester
from pricewise.store.legacy_modules import old_module_names

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"

# The sha256 of a registered version's model files, written by `train` when it registers the version.
DIGEST_TAG = "pricewise.artifact_sha256"
# The `train` run that registered a version: its baseline and main model are registered as a pair.
TRAIN_RUN_TAG = "pricewise.train_run"
# MLflow writes this file into a model it downloads by registry URI; it is not one of the logged files.
DOWNLOAD_NOTE = "registered_model_meta"
_CHUNK = 1 << 20


class ModelRefusedError(PricewiseError):
    """A model was not loaded because its files are not the ones pricewise registered (or carry no digest)."""


def version_by_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist.

    Raises:
        PricewiseError: The registry answers with another error.
    """
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise PricewiseError(f"MLflow registry error for {name}@{alias}: {exc.message}") from exc


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def artifact_digest(model_dir: Path) -> str:
    """The sha256 over a model directory's files: each file's relative path and content, in path order.

    Symbolic links count by their target, so a link swapped in for a file changes the digest; the note MLflow
    adds when it downloads a registered model is left out.

    Raises:
        PricewiseError: The directory holds no model files or cannot be read.
    """
    if not (model_dir / "MLmodel").is_file():
        raise PricewiseError(f"{model_dir} holds no model (no MLmodel file)")
    entries: list[tuple[str, str]] = []
    try:
        for folder, dirs, files in os.walk(model_dir, followlinks=False):
            base = Path(folder)
            for name in dirs + files:
                path = base / name
                relative = path.relative_to(model_dir).as_posix()
                if path.is_symlink():
                    entries.append((relative, "link:" + str(path.readlink())))
                elif name in files and relative != DOWNLOAD_NOTE:
                    entries.append((relative, _file_digest(path)))
    except OSError as exc:
        raise PricewiseError(f"cannot read the model files in {model_dir}: {exc}") from exc
    digest = hashlib.sha256()
    for relative, content in sorted(entries):
        digest.update(f"{relative}\0{content}\n".encode())
    return digest.hexdigest()


def registered_digest(version: ModelVersion) -> str:
    """The digest `train` recorded for a registered version.

    Raises:
        ModelRefusedError: The version carries none (it was not registered by `pricewise train`).
    """
    digest = (version.tags or {}).get(DIGEST_TAG)
    if not digest:
        raise ModelRefusedError(
            f"refused {version.name} v{version.version}: it carries no artifact digest (tag {DIGEST_TAG}), so it "
            "was not registered by `pricewise train`; only models pricewise registered are loaded"
        )
    return str(digest)


def verify(model_dir: Path, expected: str, label: str) -> None:
    """Check a model directory's files against the digest recorded at registration.

    Raises:
        ModelRefusedError: The files differ from the registered ones.
        PricewiseError: The files cannot be read.
    """
    actual = artifact_digest(model_dir)
    if actual != expected:
        raise ModelRefusedError(
            f"refused {label}: its files do not match the digest recorded when it was registered "
            f"(expected sha256 {expected[:12]}…, found {actual[:12]}…); they changed after registration"
        )


def register(model_uri: str, name: str, train_run: str) -> ModelVersion:
    """Register a logged model under `name`, tagged with its files' digest and the train run.

    The digest is taken from a fresh copy of the stored files, so it covers what a later load downloads. The
    version is created with its tags in one call: no version of pricewise's exists without them.

    Args:
        model_uri: The logged model (``models:/m-…``).
        name: The registered model's name (created when missing).
        train_run: The `train` run registering it.

    Returns:
        The new version.

    Raises:
        PricewiseError: The model's files cannot be fetched.
        mlflow.exceptions.MlflowException: The registry refuses the version.
    """
    with tempfile.TemporaryDirectory(prefix="pricewise-digest-") as staging:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=staging))
        except (MlflowException, OSError) as exc:
            raise PricewiseError(f"cannot read back the logged model {model_uri}: {exc}") from exc
        digest = artifact_digest(local)
    return mlflow.register_model(model_uri, name, tags={DIGEST_TAG: digest, TRAIN_RUN_TAG: train_run})


def delete_unfinished_versions(client: MlflowClient, names: Iterable[str]) -> list[str]:
    """Delete the versions whose `train` run did not finish (killed or failed after registering some of them).

    A run still in progress keeps its versions (stale runs are marked failed first; see
    `tracking.fail_stale_runs`). So does a run one of whose versions an alias points at: its aliases were set
    after both models were registered, so its pair is complete and in use.

    Returns:
        The deleted versions as ``name/version``.

    Raises:
        mlflow.exceptions.MlflowException: The registry cannot be searched or written.
    """
    by_run: dict[str, list[ModelVersion]] = {}
    aliased: set[tuple[str, str]] = set()
    for name in names:
        found = client.search_model_versions(f"name = '{name}'")
        if found:
            # A search leaves the versions' aliases out; the registered model lists them.
            aliases = client.get_registered_model(name).aliases or {}
            aliased |= {(name, str(v)) for v in aliases.values()}
        for version in found:
            run_id = (version.tags or {}).get(TRAIN_RUN_TAG)
            if run_id:
                by_run.setdefault(run_id, []).append(version)
    deleted = []
    for run_id, versions in by_run.items():
        try:
            status = client.get_run(run_id).info.status
        except MlflowException:
            status = "DELETED"  # the run is gone: nothing says its pair was completed
        if status in ("FINISHED", "RUNNING", "SCHEDULED"):
            continue
        if any((v.name, str(v.version)) in aliased for v in versions):
            logger.warning(
                "train run %s ended %s after setting its aliases: its versions are kept", run_id, status
            )
            continue
        for version in versions:
            client.delete_model_version(version.name, version.version)
            deleted.append(f"{version.name}/{version.version}")
        logger.warning(
            "deleted %s: train run %s ended %s before its pair was complete",
            ", ".join(deleted),
            run_id,
            status,
        )
    return deleted


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """A registry URI's name, and its version or alias (exactly one of them is set).

    Raises:
        PricewiseError: The URI is not ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
    """
    ref = uri.removeprefix("models:/") if uri.startswith("models:/") else ""
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        if name and alias:
            return name, None, alias
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        if name and version.isdigit():
            return name, version, None
    raise PricewiseError(
        f"cannot load model {uri}: only registered models load; give models:/<name>/<version> or "
        "models:/<name>@<alias>"
    )


def resolve_version(client: MlflowClient, uri: str) -> tuple[str, str]:
    """The registered name and version a registry URI names now (an alias resolved once, here).

    Raises:
        PricewiseError: The alias points at no version.
    """
    name, version, alias = parse_registry_uri(uri)
    if alias is not None:
        version = version_by_alias(client, name, alias)
        if version is None:
            raise PricewiseError(f"cannot load model {uri}: {name} has no alias {alias}")
    return name, str(version)


def _unpickle(model_dir: Path, label: str) -> PriceSuggester:
    # MLflow puts the model's code directory first on sys.path. This process already imports pricewise from its
    # installation, and a child it spawns inherits sys.path: left there, the model's copy (models/ only) would
    # shadow the package in the child. It would also grow sys.path on every reload.
    search_path = list(sys.path)
    try:
        with old_module_names():
            loaded = mlflow.pyfunc.load_model(str(model_dir))
    except (MlflowException, OSError) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise PricewiseError(f"cannot load model {label}: {message}") from exc
    except (ImportError, AttributeError, pickle.UnpicklingError, EOFError) as exc:
        # A pickle naming code this version does not have, or a truncated file.
        raise PricewiseError(f"cannot load model {label}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path[:] = search_path
    model = loaded.unwrap_python_model()
    if not isinstance(model, PriceSuggester):
        raise PricewiseError(f"{label} is not a pricewise model")
    return model


def load_verified(model_dir: Path, digest: str, label: str) -> PriceSuggester:
    """Load a model from local files once they match the digest recorded at registration.

    Args:
        model_dir: The model's files (its MLmodel file and pickle).
        digest: The digest its version was registered with.
        label: How messages name the model.

    Raises:
        PricewiseError: The files do not match, or they do not load as a pricewise model.
    """
    verify(model_dir, digest, label)
    return _unpickle(model_dir, label)


def load_suggester(uri: str) -> PriceSuggester:
    """Load a model pricewise registered, by registry URI, after checking its files against its digest.

    Args:
        uri: ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Raises:
        PricewiseError: The URI names no registered version, the version carries no digest or its files do not
            match it, or it does not load as a pricewise model.
    """
    name, version, alias = parse_registry_uri(uri)
    client = MlflowClient()
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias is not None
            else client.get_model_version(name, str(version))
        )
    except MlflowException as exc:
        raise PricewiseError(f"cannot load model {uri}: {exc.message}") from exc
    label = f"{name} v{found.version}"
    try:
        digest = registered_digest(found)
    except ModelRefusedError as exc:
        raise ModelRefusedError(f"cannot load model {uri}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="pricewise-model-") as staging:
        try:
            # By version, not alias: the files checked are those of the version whose digest was read.
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{found.version}", dst_path=staging
            )
        except (MlflowException, OSError) as exc:
            message = exc.message if isinstance(exc, MlflowException) else str(exc)
            raise PricewiseError(f"cannot load model {uri}: {message}") from exc
        return load_verified(Path(local), digest, label)

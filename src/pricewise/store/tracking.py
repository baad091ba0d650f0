"""Settings in, MLflow pointed at the right tracking store (checked reachable) and the experiment id out."""

from __future__ import annotations

import logging
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import mlflow

from pricewise import __version__
from pricewise.errors import PricewiseError
from pricewise.settings import Settings

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5


def _probe_http(uri: str) -> None:
    """Fail fast on an unreachable server instead of waiting out MLflow's retries."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 - URI from settings
            if response.status >= 500:
                raise PricewiseError(f"MLflow tracking server at {uri} answered {response.status}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PricewiseError(
            f"cannot reach the MLflow tracking server at {uri} ({exc}); "
            "check PRICEWISE_MLFLOW_TRACKING_URI or unset it to use the embedded store"
        ) from exc


def configure(settings: Settings) -> str:
    """Point MLflow at the configured tracking store, creating the embedded one on first use.

    Args:
        settings: Carries the tracking URI (default: SQLite under the data directory).

    Returns:
        The tracking URI in use.

    Raises:
        PricewiseError: The tracking server cannot be reached or the local store cannot be created.
    """
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        # One quick attempt per call: a dead server should fail the command, not hang it for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        _probe_http(uri)
    elif uri.startswith("sqlite:///"):
        try:
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PricewiseError(f"cannot create the MLflow store for {uri}: {exc.strerror}") from exc
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_id(settings: Settings, name: str) -> str:
    """Get or create the experiment; the embedded store keeps its artifacts under the data directory."""
    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        artifact_location = None
        if not settings.tracking_uri.startswith(("http://", "https://")):
            settings.artifact_root.mkdir(parents=True, exist_ok=True)
            artifact_location = settings.artifact_root.as_uri()
        return str(mlflow.create_experiment(name, artifact_location=artifact_location))
    except mlflow.exceptions.MlflowException as exc:
        raise PricewiseError(f"MLflow tracking at {settings.tracking_uri} failed: {exc.message}") from exc


def code_version() -> str:
    """The package version and, when run from a git checkout, the commit."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH is intended
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return f"{__version__}+{commit}"

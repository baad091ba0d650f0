"""Settings in, MLflow pointed at the right tracking store (checked reachable), the experiment id, and runs whose
process died marked failed, out."""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from pricewise import __version__
from pricewise.errors import PricewiseError
from pricewise.logs import redact
from pricewise.settings import Settings

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5


class TrackingUnreachableError(PricewiseError):
    """The MLflow tracking server does not answer (down, wrong address, or a network in between)."""


def _probe_request(uri: str) -> urllib.request.Request:
    """A GET of the server's /health; credentials in the URI (`http://user:password@host`, which MLflow's client
    accepts) go in a Basic Authorization header, since urllib cannot take them in the URL."""
    parts = urllib.parse.urlsplit(uri)
    headers = {}
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        parts = parts._replace(netloc=netloc + (f":{parts.port}" if parts.port is not None else ""))
    return urllib.request.Request(f"{urllib.parse.urlunsplit(parts).rstrip('/')}/health", headers=headers)  # noqa: S310 - URI from settings


def _probe_http(uri: str) -> None:
    """Fail fast on an unreachable server instead of waiting out MLflow's retries."""
    shown = redact(uri)
    try:
        with urllib.request.urlopen(_probe_request(uri), timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 - URI from settings
            if response.status >= 500:
                raise PricewiseError(f"MLflow tracking server at {shown} answered {response.status}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TrackingUnreachableError(
            f"cannot reach the MLflow tracking server at {shown} ({redact(str(exc))}); "
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
    # Models are downloaded to verify their digest before loading; MLflow's progress bars would flood the output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith(("http://", "https://")):
        # One quick attempt per call: a dead server should fail the command, not hang it for minutes.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        _probe_http(uri)
    elif uri.startswith("sqlite:///"):
        try:
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PricewiseError(f"cannot create the MLflow store for {redact(uri)}: {exc.strerror}") from exc
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def outage(exc: BaseException) -> str | None:
    """Why the tracking server could not be used, in words fit for a public status page (no address, no body).

    Args:
        exc: A failure of a call to the tracking server, or one raised from it.

    Returns:
        "unreachable" or "refused the credentials (401 unauthorized)" (or 403) phrased as a clause about the
        server, or None when the error in the chain is none of these.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TrackingUnreachableError):
            return "the MLflow tracking server is unreachable"
        if isinstance(seen, mlflow.exceptions.MlflowException):
            # MLflow's REST client turns the HTTP status into these codes.
            if seen.error_code in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"):
                return "the MLflow tracking server refused the credentials (401 unauthorized)"
            if seen.error_code == "PERMISSION_DENIED":
                return "the MLflow tracking server denied access to the model (403 forbidden)"
        seen = seen.__cause__
    return None


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
        raise PricewiseError(
            f"MLflow tracking at {redact(settings.tracking_uri)} failed: {redact(exc.message)}"
        ) from exc


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


# Who runs a pricewise run: written when the run is created, read by `fail_stale_runs`.
HOST_TAG = "pricewise.host"
PID_TAG = "pricewise.pid"
PROCESS_START_TAG = "pricewise.process_start"
FAILED_BECAUSE_TAG = "pricewise.failed_because"


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks after boot, Linux), to tell a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def _process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def owner_tags() -> dict[str, str]:
    """Tags naming this process (host, pid and its start time), for every run it creates."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    started = _process_start(pid)
    if started is not None:
        tags[PROCESS_START_TAG] = started
    return tags


def _process_gone(tags: dict[str, str]) -> bool | None:
    """Whether the process a run's tags name has ended: None when it cannot be told from here."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, under another user
    if _process_state(pid) == "Z":  # killed, not yet reaped by its parent
        return True
    recorded, current = tags.get(PROCESS_START_TAG), _process_start(pid)
    # Same pid, other start time: the run's process ended and the pid went to a new one.
    return recorded is not None and current is not None and recorded != current


def fail_stale_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark failed the experiment's runs left RUNNING by a process that has ended (killed, or its host rebooted).

    Only runs whose tags name a process on this host are judged; a run whose process lives on, or that another
    host owns, is left running.

    Args:
        client: The tracking store.
        experiment_id: The experiment to sweep.

    Returns:
        The ids of the runs marked failed.

    Raises:
        PricewiseError: The tracking store cannot be searched or written.
    """
    try:
        running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
        failed = []
        for run in running:
            tags = dict(run.data.tags)
            if not _process_gone(tags):
                continue
            client.set_tag(
                run.info.run_id,
                FAILED_BECAUSE_TAG,
                f"its process (pid {tags[PID_TAG]} on {tags[HOST_TAG]}) ended before the run did",
            )
            client.set_terminated(run.info.run_id, "FAILED")
            failed.append(run.info.run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise PricewiseError(f"MLflow tracking failed while checking for stale runs: {exc.message}") from exc
    if failed:
        logger.warning("marked %d run(s) failed whose process had ended: %s", len(failed), ", ".join(failed))
    return failed

"""A pricewise CLI command in, its exit code, output and last JSON line out, for the pricewise DAGs.

Airflow and pricewise live in separate virtualenvs (their pinned dependencies conflict), so the DAGs never
import pricewise: every task runs the `pricewise` executable of the project's environment in a subprocess,
with the worker's environment (PRICEWISE_DATA_DIR, PRICEWISE_CONFIG_PATH, PRICEWISE_MLFLOW_TRACKING_URI...)
passed through unchanged.

Environment read here:

- ``PRICEWISE_BIN``: the pricewise executable; default ``<repo>/.venv/bin/pricewise`` next to this folder.
- ``PRICEWISE_WORKDIR``: working directory of the commands, which relative paths in pricewise settings
  (``data/``, ``configs/pricewise.yaml``) are resolved against; default the repository root.
- ``PRICEWISE_DAG_RETRIES`` and ``PRICEWISE_DAG_RETRY_DELAY_SECONDS``: retries of a failed task (default 2)
  and the wait before each (default 30 s).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

# `pricewise` exit codes: 1 is a batch that failed validation; 2 an input or state a person must fix;
# 3 an unexpected failure.
EXIT_VALIDATION_FAILED = 1


@dataclass(frozen=True)
class Completed:
    """A finished pricewise command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str

    def last_json(self) -> dict[str, Any]:
        """The JSON object on the last non-empty line of stdout (the `--json` contract of the CLI)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        try:
            value = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            # The same command would print the same thing again: retrying cannot help.
            raise AirflowFailException(f"pricewise {' '.join(self.args)} printed no JSON object last")
        return value


def default_args() -> dict[str, Any]:
    """Task defaults shared by the pricewise DAGs: retries with a short delay."""
    return {
        "owner": "pricewise",
        "retries": int(os.environ.get("PRICEWISE_DAG_RETRIES", "2")),
        "retry_delay": timedelta(seconds=float(os.environ.get("PRICEWISE_DAG_RETRY_DELAY_SECONDS", "30"))),
    }


def executable() -> str:
    """The pricewise executable: PRICEWISE_BIN, else the project's virtualenv beside the dags folder."""
    return os.environ.get("PRICEWISE_BIN") or str(REPO / ".venv" / "bin" / "pricewise")


def run(*args: str, failure_codes: frozenset[int] = frozenset()) -> Completed:
    """Run `pricewise ARGS...`, streaming its stdout and stderr into the task log as they come.

    Args:
        *args: The command and its arguments, e.g. ``("validate",)``.
        failure_codes: Exit codes that mean a verdict, not an accident: the task fails without retries.

    Returns:
        The finished command when it exited 0.

    Raises:
        AirflowFailException: The command exited with one of ``failure_codes``.
        AirflowException: Any other non-zero exit, or the executable is missing; the task is retried.
    """
    command = [executable(), *args]
    workdir = os.environ.get("PRICEWISE_WORKDIR") or str(REPO)
    logger.info("running %s in %s", " ".join(command), workdir)
    stdout: list[str] = []
    stderr: list[str] = []
    try:
        with subprocess.Popen(  # noqa: S603 - the deployment's own pricewise executable, no shell
            command,
            cwd=workdir,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        ) as process:
            # stderr is drained on its own thread so that neither pipe can fill up and block the command.
            drain = threading.Thread(target=_collect, args=(process.stderr, stderr, "stderr: "))
            drain.start()
            _collect(process.stdout, stdout, "")
            returncode = process.wait()
            drain.join()
    except OSError as exc:
        raise AirflowException(f"cannot run {command[0]} (set PRICEWISE_BIN): {exc}") from exc
    completed = Completed(args=tuple(args), returncode=returncode, stdout="".join(stdout))
    if returncode == 0:
        return completed
    errors = [line.strip() for line in stderr if line.startswith("error:")]
    message = f"pricewise {' '.join(args)} exited {returncode}" + (f": {errors[-1]}" if errors else "")
    if returncode in failure_codes:
        raise AirflowFailException(f"{message} (not retried)")
    raise AirflowException(message)


def _collect(stream: IO[str] | None, into: list[str], prefix: str) -> None:
    for line in stream or ():
        logger.info("%s%s", prefix, line.rstrip("\n"))
        into.append(line)


def split_paths(value: object) -> list[str]:
    """Paths from a DAG param or an environment variable: a list, or one string with os.pathsep between."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(os.pathsep) if part.strip()]
    if isinstance(value, list | tuple):
        return [str(part) for part in value if str(part).strip()]
    raise AirflowFailException(f"source must be a path or a list of paths, not {type(value).__name__}")

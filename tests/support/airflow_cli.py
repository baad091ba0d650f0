"""`airflow` commands in (one JSON request a line on stdin), their exit codes out (one JSON line each), all run
by one long-lived process of Airflow's own virtualenv, so that Airflow is imported once rather than per command.

Run as a script with Airflow's interpreter (``.venv-airflow/bin/python airflow_cli.py``), never imported by the
tests. A request is ``{"argv": [...], "env": {...}, "stdout": path, "stderr": path}``: the command line after
``airflow``, the whole environment it runs in (the tasks of ``dags test`` run in this process and read it),
and the files its standard output and error go to. The answer is ``{"returncode": n}``, with the exit code the
`airflow` executable would have given. The AIRFLOW_* variables must be the same in every request: Airflow reads
its configuration once, when this process starts.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def _exit_code(exc: SystemExit) -> int:
    """The status `sys.exit(code)` gives the interpreter: a message is printed and means 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run(parser: Any, argv: list[str]) -> int:
    """What `airflow ARGV` does after its imports, as its exit code."""
    try:
        args = parser.parse_args(argv)
        if hasattr(args, "output"):
            from airflow.cli.utils import redirect_stdout_log_handlers_to_stderr

            redirect_stdout_log_handlers_to_stderr()
        args.func(args)
    except SystemExit as exc:
        return _exit_code(exc)
    except Exception:  # noqa: BLE001 - reported like the interpreter reports an uncaught exception
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    """Serve requests until stdin closes."""
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    # Whatever is printed between requests goes to this process's stderr, never into the answers.
    os.dup2(2, 1)
    quiet = os.dup(2)

    from airflow import configuration
    from airflow.cli import cli_parser

    configuration.write_default_airflow_configuration_if_needed()
    parser = cli_parser.get_parser()
    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        with Path(request["stdout"]).open("wb") as out, Path(request["stderr"]).open("wb") as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                returncode = _run(parser, list(request["argv"]))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(quiet, 1)
                os.dup2(quiet, 2)
        answers.write(json.dumps({"returncode": returncode}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()

"""DAG pricewise_training: raw files in (param `source`), a trained, evaluated and judged challenger out.

harvest_feedback -> ingest -> validate -> train -> evaluate -> promote, each task one `pricewise` command (see
pricewise_cli).

- Sold prices fed back to the API since the last harvest become a priced batch first
  (``pricewise data harvest-feedback``), validated with the rest.

- ``source`` (param; default: env ``PRICEWISE_INGEST_SOURCE``, several paths separated by ``os.pathsep``):
  files or directories to ingest. Empty: ingest is skipped and the run trains on what the warehouse holds.
- A batch that fails validation (``pricewise validate`` exits 1) fails the run at once, without retries, and
  nothing is trained. Other failures are retried.
- A failed train or evaluate leaves the champion as it was: promote only runs after both succeed. A challenger
  the gate refuses is a recorded decision, not a failure: promote succeeds either way.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from pricewise_cli import EXIT_VALIDATION_FAILED, default_args, run, split_paths

CHALLENGER_URI = "models:/pricewise@challenger"


@dag(
    dag_id="pricewise_training",
    description="Ingest, validate, train, evaluate and promote pricewise models.",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "source": Param(
            None,
            type=["null", "string", "array"],
            items={"type": "string"},
            description="Files or directories to ingest; empty: env PRICEWISE_INGEST_SOURCE, else no ingest.",
        )
    },
    tags=["pricewise"],
    doc_md=__doc__,
)
def pricewise_training() -> None:
    """The training pipeline; tasks are thin wrappers around the CLI."""

    @task
    def harvest_feedback() -> str:
        """`pricewise data harvest-feedback`: sold prices from the prediction log become a priced batch."""
        return run("data", "harvest-feedback").stdout

    @task
    def ingest() -> str:
        """`pricewise ingest SOURCE...`; skipped when there is no source."""
        params = get_current_context()["params"]
        paths = split_paths(params.get("source")) or split_paths(os.environ.get("PRICEWISE_INGEST_SOURCE"))
        if not paths:
            raise AirflowSkipException("no source given: training on what the warehouse holds")
        return run("ingest", *paths).stdout

    @task(trigger_rule="none_failed")
    def validate() -> str:
        """`pricewise validate`: exit 1 (a batch failed its checks) fails the run without retries."""
        return run("validate", failure_codes=frozenset({EXIT_VALIDATION_FAILED})).stdout

    @task
    def train() -> str:
        """`pricewise train`: registers a new challenger."""
        return run("train").stdout

    @task
    def evaluate() -> str:
        """`pricewise evaluate` on the challenger: metrics, plots and report in MLflow."""
        return run("evaluate", "--model", CHALLENGER_URI).stdout

    @task
    def promote() -> dict[str, Any]:
        """`pricewise promote`: the gate's decision (promote, first, refuse, unchanged), recorded either way."""
        out = run("promote").stdout.splitlines()
        action, _, reason = (out[0] if out else "").partition(": ")
        return {"action": action, "reason": reason, "champion": out[1] if len(out) > 1 else ""}

    harvest_feedback() >> ingest() >> validate() >> train() >> evaluate() >> promote()


pricewise_training()

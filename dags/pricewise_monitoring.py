"""DAG pricewise_monitoring: the served model's recent traffic in, a monitoring report and, when retraining
is due, a run of pricewise_training out.

monitor -> decide -> trigger_training | no_retrain, daily (env ``PRICEWISE_MONITORING_SCHEDULE``: any Airflow
schedule, a cron expression or preset such as ``@hourly``).

- monitor: ``pricewise monitor --json`` (param ``last_hours``: the window, default the CLI's) records a
  monitoring run. Status ok, drift and empty (nothing to compare yet) succeed; an error fails and is retried.
- decide: ``pricewise retrain --check --json`` records the retraining decision and branches on ``due``.
- trigger_training queues a run of pricewise_training without waiting for it (that DAG runs one at a time;
  a paused pricewise_training keeps the run queued until it is unpaused).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowException
from pricewise_cli import default_args, run


@dag(
    dag_id="pricewise_monitoring",
    description="Monitor drift and accuracy of the served model; trigger retraining when due.",
    schedule=os.environ.get("PRICEWISE_MONITORING_SCHEDULE") or "@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "last_hours": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="Monitoring window in hours; empty: the CLI's default.",
        )
    },
    tags=["pricewise"],
    doc_md=__doc__,
)
def pricewise_monitoring() -> None:
    """The monitoring loop; tasks are thin wrappers around the CLI."""

    @task
    def monitor() -> dict[str, Any]:
        """`pricewise monitor --json`: the report's summary (status, drift share, RMSLE, coverage...)."""
        last_hours = get_current_context()["params"].get("last_hours")
        window = ["--last-hours", str(last_hours)] if last_hours is not None else []
        summary = run("monitor", *window, "--json").last_json()
        if summary.get("status") == "error":
            raise AirflowException(f"monitoring run {summary.get('run_id')} failed: {summary.get('message')}")
        return summary

    @task.branch
    def decide() -> str:
        """`pricewise retrain --check --json`: the next task, by whether retraining is due."""
        decision = run("retrain", "--check", "--json").last_json()
        return "trigger_training" if decision.get("due") is True else "no_retrain"

    trigger = TriggerDagRunOperator(task_id="trigger_training", trigger_dag_id="pricewise_training")
    monitor() >> decide() >> [trigger, EmptyOperator(task_id="no_retrain")]


pricewise_monitoring()

"""DAG pricewise_catalogue: a Parquet catalogue in (param `source`), its scored Parquet out, nightly, with the
model version of every output file recorded.

score -> record, each a thin wrapper around the CLI (see pricewise_cli).

- score: ``pricewise predict --engine spark`` on the configured master (PRICEWISE_SPARK_MASTER: ``local[N]``,
  ``spark://``, YARN or Kubernetes) reads ``source`` (a Parquet dataset, partitioned or not, or any file ingest
  takes) and writes ``<output>/<logical date>.parquet``: a folder of part files (id, price, low, high,
  model_version, reasons) with ``_manifest.json``. It appears whole or not at all; a rerun of the same date
  replaces it only once the new one is complete.
- record: reads the manifest and fails the run when a part file has no model version; returns the model version,
  rows and part files (XCom), so every night's output can be traced to the model that priced it.

Params default to env ``PRICEWISE_CATALOGUE_SOURCE`` and ``PRICEWISE_CATALOGUE_OUTPUT``; ``model`` defaults to
the champion. An unknown model, an unreadable file or a file of another schema fails the run without retries
(exit 2: a person must fix it); other failures (a master that does not answer, a lost executor) are retried.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from pricewise_cli import default_args, run

MANIFEST = "_manifest.json"
# `pricewise` exits 2 on an input or state a person must fix (unknown model, bad file): retrying cannot help.
EXIT_USER_ERROR = 2


def _param(name: str, env: str) -> str:
    value = get_current_context()["params"].get(name) or os.environ.get(env)
    if not value:
        raise AirflowFailException(f"no {name}: set the `{name}` param or {env}")
    return str(value)


@dag(
    dag_id="pricewise_catalogue",
    description="Re-price the whole catalogue on Spark: Parquet in, scored Parquet and a manifest out.",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "source": Param(
            None,
            type=["null", "string"],
            description="Catalogue to score; empty: env PRICEWISE_CATALOGUE_SOURCE.",
        ),
        "output": Param(
            None,
            type=["null", "string"],
            description="Folder of nightly outputs; empty: env PRICEWISE_CATALOGUE_OUTPUT.",
        ),
        "model": Param(None, type=["null", "string"], description="MLflow model URI; empty: the champion."),
    },
    tags=["pricewise"],
    doc_md=__doc__,
)
def pricewise_catalogue() -> None:
    """The catalogue re-price; tasks are thin wrappers around the CLI."""

    @task
    def score() -> str:
        """`pricewise predict --engine spark`: the path of the scored folder."""
        context = get_current_context()
        source = _param("source", "PRICEWISE_CATALOGUE_SOURCE")
        output = Path(_param("output", "PRICEWISE_CATALOGUE_OUTPUT")) / f"{context['ds']}.parquet"
        model = context["params"].get("model")
        args = ["predict", "--engine", "spark", "--input", source, "--output", str(output)]
        run(*args, *(["--model", str(model)] if model else []), failure_codes=frozenset({EXIT_USER_ERROR}))
        return str(output)

    @task
    def record(output: str) -> dict[str, Any]:
        """The manifest's model version, rows and part files; fails when a part file has no model version."""
        path = Path(output) / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AirflowFailException(f"no readable manifest at {path}: {exc}") from exc
        files = manifest.get("files") or []
        unversioned = [f.get("file") for f in files if not f.get("model_version")]
        if not files or unversioned:
            raise AirflowFailException(
                f"{path}: part files without a model version: {unversioned or 'none listed'}"
            )
        return {
            "output": output,
            "model_version": manifest["model_version"],
            "model_uri": manifest["model_uri"],
            "rows": manifest["rows"],
            "files": [f["file"] for f in files],
        }

    record(score())


pricewise_catalogue()

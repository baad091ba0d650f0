"""A search space and the tiny validated workspace in; trials run as Spark tasks on local[2], each a nested MLflow
run of the search with its parameters and score, and the best parameters saved where `pricewise train` reads
them, out. One Spark session serves the module (each trial starts a Python worker: seconds apiece)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from pricewise import train, tune
from pricewise.config import load_config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from tests.support.workspaces import Workspace, clone_workspace, light_config_text

pytestmark = pytest.mark.integration

SPACE = {
    "ridge_alpha": {"kind": "loguniform", "low": 0.5, "high": 20.0},
    "mlp.hidden": {"kind": "choice", "options": [128, 256]},
}


def local_master(settings: Settings) -> Settings:
    """The workspace's settings on the module's local[2] master, whatever the environment names."""
    return settings.model_copy(update={"spark_master": "local[2]"})


def spark_workspace(source: Workspace, root: Path, space: dict[str, object], max_evals: int) -> Workspace:
    """A clone of `source` whose config searches `space` for `max_evals` trials."""
    ws = clone_workspace(source, root)
    raw = yaml.safe_load(light_config_text())
    raw["tune"] = {"max_evals": max_evals, "seed": 7, "space": space}
    ws.config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return ws


def test_trials_run_on_executors_as_nested_runs_and_train_reads_the_best(
    spark: Any, tiny_validated_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = spark_workspace(tiny_validated_workspace, tmp_path / "ws", SPACE, max_evals=3)
    monkeypatch.setenv("PRICEWISE_SPARK_MASTER", "local[2]")

    result = ws.cli("tune", "--engine", "spark", "--parallelism", "2")

    assert result.exit_code == 0, result.output
    assert "3 trials on spark, 2 at a time" in result.output
    saved = json.loads(train.tuned_params_path(ws.settings).read_text(encoding="utf-8"))
    assert set(saved) == set(SPACE)
    assert saved["mlp.hidden"] in (128, 256)
    assert 0.5 <= saved["ridge_alpha"] <= 20.0
    client = MlflowClient(ws.settings.tracking_uri)
    experiment = client.get_experiment_by_name("pricewise")
    assert experiment is not None
    [parent] = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'tune'")
    assert parent.data.tags["pricewise.tune_engine"] == "spark"
    assert parent.data.tags["pricewise.tune_parallelism"] == "2"
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 3
    assert all(t.info.status == "FINISHED" for t in trials)
    # Every trial ran in an executor's Python worker, not in this process.
    assert {t.data.tags[tune.WORKER_TAG] for t in trials}.isdisjoint(
        {f"{socket.gethostname()}:{os.getpid()}"}
    )
    best = min(trials, key=lambda t: t.data.metrics["valid_rmsle"])
    assert parent.data.metrics["best_valid_rmsle"] == pytest.approx(best.data.metrics["valid_rmsle"])
    assert float(best.data.params["ridge_alpha"]) == pytest.approx(saved["ridge_alpha"])
    assert int(best.data.params["mlp.hidden"]) == saved["mlp.hidden"]
    resolved = train.resolve_params(load_config(ws.config_path), ws.settings)
    assert resolved["ridge_alpha"] == saved["ridge_alpha"]
    assert resolved["mlp.hidden"] == saved["mlp.hidden"]


def test_a_search_whose_every_trial_fails_says_why_and_saves_nothing(
    spark: Any, tiny_validated_workspace: Workspace, tmp_path: Path
) -> None:
    # Ridge refuses a negative alpha when it fits: each trial fails on its executor.
    space = {"ridge_alpha": {"kind": "uniform", "low": -2.0, "high": -1.0}}
    ws = spark_workspace(tiny_validated_workspace, tmp_path / "ws", space, max_evals=2)

    with pytest.raises(
        PricewiseError, match=r"all 2 trials failed; the first: .*InvalidParameterError.*alpha"
    ):
        tune.run(load_config(ws.config_path), local_master(ws.settings), engine="spark", parallelism=2)

    assert not train.tuned_params_path(ws.settings).exists()
    client = MlflowClient(ws.settings.tracking_uri)
    experiment = client.get_experiment_by_name("pricewise")
    assert experiment is not None
    [parent] = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'tune'")
    assert parent.info.status == "FAILED"
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert [t.info.status for t in trials] == ["FAILED", "FAILED"]

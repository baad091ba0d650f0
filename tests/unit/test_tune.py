"""A search space and a tiny real warehouse in; nested trial runs, the best parameters (integers where the step
is whole) saved for `pricewise train`, out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from pricewise import train, tune
from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from tests.support.workspaces import Workspace, clone_workspace, light_config_text

SPACE = {
    "ridge_alpha": {"kind": "loguniform", "low": 0.5, "high": 20.0},
    "mlp.epochs": {"kind": "quniform", "low": 2, "high": 4, "q": 1},
    "mlp.hidden": {"kind": "choice", "options": [128, 256]},
}


def config_with_space(tmp_path: Path, space: dict[str, object]) -> Config:
    raw = yaml.safe_load(light_config_text())
    raw["tune"] = {"max_evals": 3, "seed": 7, "space": space}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path)


def test_an_empty_search_space_is_refused(tmp_path: Path, tiny_validated_workspace: Workspace) -> None:
    with pytest.raises(PricewiseError, match=r"tune\.space in the config is empty"):
        tune.run(config_with_space(tmp_path, {}), tiny_validated_workspace.settings)


def test_trials_are_nested_runs_and_the_best_parameters_are_saved_for_train(
    tiny_validated_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(tiny_validated_workspace, tmp_path / "ws")
    config = config_with_space(tmp_path, SPACE)

    result = tune.run(config, ws.settings, max_evals=2)

    assert result.trials == 2
    assert set(result.best_params) == set(SPACE)
    assert isinstance(result.best_params["mlp.epochs"], int)
    assert result.best_params["mlp.hidden"] in (128, 256)
    assert 0.5 <= result.best_params["ridge_alpha"] <= 20.0
    assert result.saved_to == train.tuned_params_path(ws.settings)
    assert json.loads(result.saved_to.read_text(encoding="utf-8")) == result.best_params
    client = MlflowClient(ws.settings.tracking_uri)
    parent = client.get_run(result.run_id)
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(trials) == 2
    assert min(t.data.metrics["valid_rmsle"] for t in trials) == pytest.approx(result.best_valid_rmsle)
    assert parent.data.metrics["best_valid_rmsle"] == pytest.approx(result.best_valid_rmsle)
    assert train.resolve_params(config, ws.settings)["ridge_alpha"] == result.best_params["ridge_alpha"]

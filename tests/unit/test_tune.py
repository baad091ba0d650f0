"""A search space and a tiny real warehouse in; nested trial runs, the best parameters (integers where the step
is whole) saved for `pricewise train`, out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from pricewise import train, tune
from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--engine", "dask"), "engine 'dask' is not one of local, spark"),
        (("--engine", "spark", "--parallelism", "0"), "parallelism must be at least 1, not 0"),
        (("--parallelism", "2"), "parallelism applies to the spark engine only (add --engine spark)"),
    ],
)
def test_a_bad_engine_or_parallelism_is_refused_before_any_work(
    tiny_validated_workspace: Workspace, args: tuple[str, ...], message: str
) -> None:
    result = tiny_validated_workspace.cli("tune", "--max-evals", "2", *args)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not train.tuned_params_path(tiny_validated_workspace.settings).exists()


def test_the_spark_engine_without_pyspark_says_what_to_install(
    tiny_validated_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = clone_workspace(tiny_validated_workspace, tmp_path / "ws")
    monkeypatch.setitem(sys.modules, "pyspark", None)  # makes `import pyspark` raise ImportError

    result = ws.cli("tune", "--max-evals", "2", "--engine", "spark", "--parallelism", "2")

    assert result.exit_code == 2
    assert "needs PySpark" in result.output
    assert "pip install 'pricewise[spark]'" in result.output
    assert "Traceback" not in result.output
    assert not train.tuned_params_path(ws.settings).exists()
    # Refused before the data were read or MLflow was touched: no tune run was started.
    assert not (ws.settings.data_dir / "mlflow").exists()


def test_a_cluster_master_with_the_store_on_this_machine_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", spark_master="spark://127.0.0.1:7077")

    with pytest.raises(
        PricewiseError, match=r"cannot write their trials .* set PRICEWISE_MLFLOW_TRACKING_URI"
    ):
        tune.run(config_with_space(tmp_path, SPACE), settings, engine="spark")

    assert not (tmp_path / "data").exists()


def test_a_local_search_whose_every_trial_fails_exits_with_the_reason_and_saves_nothing(
    tiny_validated_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(tiny_validated_workspace, tmp_path / "ws")
    raw = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    # Ridge refuses a negative alpha when it fits: every trial fails.
    raw["tune"] = {
        "max_evals": 2,
        "seed": 7,
        "space": {"ridge_alpha": {"kind": "uniform", "low": -2.0, "high": -1.0}},
    }
    ws.config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")

    result = ws.cli("tune")

    assert result.exit_code == 2, result.output
    assert "all 2 trials failed; the first: InvalidParameterError" in result.output
    assert "alpha" in result.output
    assert "Traceback" not in result.output
    assert not train.tuned_params_path(ws.settings).exists()
    client = MlflowClient(ws.settings.tracking_uri)
    [parent] = client.search_runs(
        [client.get_experiment_by_name("pricewise").experiment_id],  # type: ignore[union-attr]
        "tags.mlflow.runName = 'tune'",
    )
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert (parent.info.status, [t.info.status for t in trials]) == ("FAILED", ["FAILED", "FAILED"])

"""Tiny frames and a tiny real warehouse in; resolved hyperparameters, fitted and scored models, the staged model
code and registered versions out."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from pricewise import train
from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from pricewise.models.baseline import RulesBaseline
from pricewise.models.hyperparams import build_model
from pricewise.progress import Progress
from pricewise.settings import Settings
from pricewise.store import registry, tracking
from pricewise.store.training_data import Split, TrainingData
from tests.support.workspaces import (
    PRICED_HEADER,
    SHIPPED_CONFIG,
    Workspace,
    clone_workspace,
    light_config_text,
    tiny_listings,
)

LIGHT_PARAMS = yaml.safe_load(light_config_text())["train"]["params"]


def tiny_data(n: int = 300) -> TrainingData:
    """Generated listings cut into train / valid / test (70 / 15 / 15 %), no warehouse involved."""
    frame = pd.DataFrame(tiny_listings(n), columns=list(PRICED_HEADER))
    price = frame.pop("price").to_numpy(dtype=float)
    features = frame.drop(columns=["train_id"])
    cuts = [0, int(0.7 * n), int(0.85 * n), n]
    parts = [
        Split(features.iloc[a:b].reset_index(drop=True), price[a:b]) for a, b in itertools.pairwise(cuts)
    ]
    return TrainingData(*parts, batch_ids=("b1",), digest="0" * 16)


def config_with(tmp_path: Path, **train: object) -> Config:
    raw = yaml.safe_load(light_config_text())
    raw["train"].update(train)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path)


def test_params_come_from_the_config_overlaid_by_tuned_ones_only_when_enabled(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    config = load_config(SHIPPED_CONFIG)
    assert train.resolve_params(config, settings) == dict(config.train.params)

    tuned = train.tuned_params_path(settings)
    tuned.parent.mkdir(parents=True)
    tuned.write_text(json.dumps({"ridge_alpha": 7.5, "new_key": 1}), encoding="utf-8")

    overlaid = train.resolve_params(config, settings)
    assert overlaid == {**config.train.params, "ridge_alpha": 7.5, "new_key": 1}
    ignored = train.resolve_params(config_with(tmp_path, use_tuned_params=False), settings)
    assert "new_key" not in ignored


def test_the_baseline_is_fitted_on_train_calibrated_on_valid_and_scored_on_test() -> None:
    data = tiny_data()

    suggester, figures, fit_seconds = train.fit_and_score(RulesBaseline(min_group_size=5), data, coverage=0.8)

    assert set(figures) >= {"rmsle", "mae", "coverage"}
    assert 0 <= figures["coverage"] <= 1
    assert fit_seconds >= 0
    scored = suggester.suggest(data.test.frame)
    assert (scored["low"] <= scored["price"]).all()
    assert (scored["price"] <= scored["high"]).all()
    assert suggester.kind == "RulesBaseline"
    assert suggester.ranges.coverage == 0.8


def test_the_main_model_learns_the_price_and_beats_a_constant() -> None:
    data = tiny_data()
    model = build_model(LIGHT_PARAMS, seed=1)

    suggester, figures, _ = train.fit_and_score(model, data, coverage=0.8)

    constant = np.full(len(data.test), np.median(data.train.price))
    constant_rmsle = float(np.sqrt(np.mean((np.log1p(constant) - data.test.log_price) ** 2)))
    assert figures["rmsle"] < constant_rmsle
    assert suggester.kind == type(model).__name__


# Two small MLPs and a binary one beside the Ridge: every kind of numbered component, seconds to fit.
SMALL_ENSEMBLE = {
    **LIGHT_PARAMS,
    "n_mlp": 2,
    "n_binary_mlp": 1,
    "mlp.hidden": 8,
    "mlp.hidden2": 4,
    "mlp.epochs": 1,
}


def test_the_main_model_tells_its_progress_component_by_component_without_changing_its_prices(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = tiny_data()
    told: list[tuple[str, int, tuple[str, ...]]] = []
    watched = build_model(SMALL_ENSEMBLE, seed=1)
    watched.fit(
        data.train.frame,
        data.train.log_price,
        data.valid.frame,
        data.valid.log_price,
        progress=lambda name, done, names: told.append((name, done, names)),
    )
    unwatched = build_model(SMALL_ENSEMBLE, seed=1).fit(
        data.train.frame, data.train.log_price, data.valid.frame, data.valid.log_price
    )

    names = tuple(watched.component_weights)
    assert names[:4] == ("ridge", "mlp_0", "mlp_1", "mlp_binary_0")
    assert told == [("features", 0, names)] + [(name, done, names) for done, name in enumerate(names)]
    np.testing.assert_array_equal(watched.predict(data.test.frame), unwatched.predict(data.test.frame))

    # Through train's progress: one INFO line per component, counted, in order, numbered among its kind.
    caplog.set_level("INFO", logger="pricewise.progress")
    train.fit_and_score(build_model(SMALL_ENSEMBLE, seed=1), data, 0.8, Progress("train"))
    lines = [r.getMessage() for r in caplog.records if r.name == "pricewise.progress"]
    total = len(names)
    expected_heads = [
        f"train: 0/{total} components, features",
        f"train: 0/{total} components, ridge",
        f"train: 1/{total} components, mlp 1 of 2",
        f"train: 2/{total} components, mlp 2 of 2",
        f"train: 3/{total} components, mlp binary 1 of 1",
    ]
    assert [line.split(" ... ")[0] for line in lines[:5]] == expected_heads
    assert lines[2].endswith(" left")  # a component is done: the time left is estimated
    assert lines[-1].startswith("train: calibrating ranges, scoring test ... ")


def test_the_sentence_encoder_tells_the_texts_done_and_the_time_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="pricewise.progress")
    components, encoded = train._report_components(Progress("train", min_interval=0.0))
    components("embedding", 3, ("ridge", "mlp_0", "mlp_1", "embedding"))
    for done in (64, 128, 200):
        encoded(done, 200)

    lines = [r.getMessage() for r in caplog.records if r.name == "pricewise.progress"]
    assert [line.split(" ... ")[0] for line in lines] == [
        "train: 3/4 components, embedding",
        "train: 64/200 texts, embedding: sentence encoder",
        "train: 128/200 texts, embedding: sentence encoder",
        "train: 200/200 texts, embedding: sentence encoder",
    ]
    assert lines[1].endswith(" left"), "from the texts done, the time left of the encoder is estimated"


def test_component_labels_number_a_component_among_its_kind() -> None:
    names = ("ridge", "mlp_0", "mlp_1", "mlp_binary_0", "lgbm")
    assert [train.component_label(name, names) for name in names] == [
        "ridge",
        "mlp 1 of 2",
        "mlp 2 of 2",
        "mlp binary 1 of 1",
        "lgbm",
    ]


def test_the_staged_model_code_holds_models_and_columns_and_no_state_code(tmp_path: Path) -> None:
    staged = train.stage_model_code(tmp_path)

    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*.py")}
    assert {"__init__.py", "columns.py", "models/__init__.py", "models/suggester.py"} <= files
    assert not any(f.startswith(("store/", "serving/", "inputs/")) for f in files)
    assert "train.py" not in files


def test_a_run_registers_the_baseline_as_champion_and_the_main_model_as_challenger(
    tiny_trained_workspace: Workspace,
) -> None:
    client = MlflowClient(
        tiny_trained_workspace.settings.tracking_uri, tiny_trained_workspace.settings.tracking_uri
    )

    baseline = client.get_model_version_by_alias("pricewise-baseline", "champion")
    challenger = client.get_model_version_by_alias("pricewise", "challenger")

    assert (str(baseline.version), str(challenger.version)) == ("1", "1")
    run = client.get_run(challenger.run_id)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert {"test_rmsle", "test_coverage", "fit_seconds", "peak_rss_mb"} <= set(run.data.metrics)
    assert parent.data.params["rows_train"] == str(int(parent.data.params["rows_train"]))
    assert {"baseline_test_rmsle", "main_test_rmsle"} <= set(parent.data.metrics)
    assert parent.data.tags["pricewise.batches"].startswith("b")


def test_bad_hyperparameters_are_refused_before_any_run(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(tiny_trained_workspace, tmp_path / "ws")
    config = config_with(tmp_path, params={**LIGHT_PARAMS, "no_such_parameter": 1})
    client = MlflowClient(ws.settings.tracking_uri, ws.settings.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs_before = len(client.search_runs(experiments))

    with pytest.raises(PricewiseError, match="bad main model hyperparameters"):
        train.run(config, ws.settings)

    assert len(client.search_model_versions("name='pricewise'")) == 1
    assert len(client.search_runs(experiments)) == runs_before


def test_too_few_listings_per_split_is_a_clear_error(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(PricewiseError, match="usable training listings"):
        train.run(config_with(tmp_path, min_rows_per_split=10_000), tiny_trained_workspace.settings)


def test_a_half_registered_pair_of_a_dead_train_is_deleted_and_live_runs_are_left_alone(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(tiny_trained_workspace, tmp_path / "ws")
    config = load_config(ws.config_path)
    tracking.configure(ws.settings)
    client = MlflowClient()
    experiment = tracking.experiment_id(ws.settings, config.train.experiment)
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=30)
    dead_tags = {**tracking.owner_tags(), tracking.PID_TAG: str(gone.pid)}
    dead = client.create_run(experiment, tags=dead_tags, run_name="train")
    live = client.create_run(experiment, tags=tracking.owner_tags(), run_name="train")
    baseline = client.get_model_version_by_alias("pricewise-baseline", "champion")
    # What a train killed between its two registrations leaves: a baseline version with no main model.
    orphan = registry.register(baseline.source, "pricewise-baseline", dead.info.run_id)

    train.recover(client, config, experiment)

    assert client.get_run(dead.info.run_id).info.status == "FAILED"
    assert client.get_run(live.info.run_id).info.status == "RUNNING", "its process (this one) lives"
    versions = [v.version for v in client.search_model_versions("name = 'pricewise-baseline'")]
    assert versions == [baseline.version], f"v{orphan.version} was deleted"
    client.set_terminated(live.info.run_id, "FINISHED")

"""Train, promote, evaluate, predict, rollback and tune through the CLI, with a real MLflow store and warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from pricewise.settings import Settings
from pricewise.store import decisions
from tests.support.workspaces import (
    REPO,
    TEST_SAMPLE,
    Workspace,
    clone_workspace,
    listing_row,
    make_workspace,
    write_table,
)

pytestmark = pytest.mark.integration

# Ridge-only main models: fast to train, and deterministic in how they compare.
LIGHT = """
train:
  params: {n_mlp: 0, n_binary_mlp: 0, lgbm_rounds: 0, ridge_alpha: 2.0}
tune:
  max_evals: 2
  space:
    ridge_alpha: {kind: loguniform, low: 1.0, high: 10.0}
"""
WEAK = """
train:
  params: {n_mlp: 0, n_binary_mlp: 0, lgbm_rounds: 0, ridge_alpha: 300.0}
"""


def promotions(ws: Workspace) -> list[tuple[str, str | None, str | None, str]]:
    """The recorded promotion decisions, oldest first, from the decision store."""
    store = decisions.open_store(ws.settings)
    try:
        rows = store.promotions("pricewise")
    finally:
        store.close()
    return [(r.action, r.champion_before, r.champion_after, r.reason) for r in rows]


def client_for(ws: Workspace) -> MlflowClient:
    # Both URIs: an earlier test in the session may have pointed the registry at another store.
    mlflow.set_tracking_uri(ws.settings.tracking_uri)
    mlflow.set_registry_uri(ws.settings.tracking_uri)
    return MlflowClient(ws.settings.tracking_uri, ws.settings.tracking_uri)


@pytest.fixture
def trained(trained_workspace: Workspace, tmp_path: Path) -> Workspace:
    """A clone of the session's trained workspace (challenger v1 from the shipped config, nothing promoted)."""
    return clone_workspace(trained_workspace, tmp_path / "trained")


def promoted(ws: Workspace) -> Workspace:
    """The workspace after its challenger v1 became the first champion."""
    result = ws.cli("promote")
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture(scope="module")
def champion(trained_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A clone of the session's trained workspace with v1 promoted, shared by this module's tests that only
    evaluate and score with the champion."""
    return promoted(clone_workspace(trained_workspace, tmp_path_factory.mktemp("champion")))


def test_train_tracks_lineage_and_registers_a_challenger(
    trained_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading through MLflow puts the model's own code first on sys.path; it must not leak into later tests,
    # whose spawned scoring workers inherit sys.path.
    monkeypatch.setattr(sys, "path", list(sys.path))
    client = client_for(trained_workspace)
    challenger = client.get_model_version_by_alias("pricewise", "challenger")
    baseline = client.get_model_version_by_alias("pricewise-baseline", "champion")
    run = client.get_run(challenger.run_id)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])

    assert float(run.data.metrics["test_rmsle"]) < float(
        client.get_run(baseline.run_id).data.metrics["test_rmsle"]
    )
    assert {"test_rmsle", "test_mae", "test_coverage", "fit_seconds", "peak_rss_mb"} <= set(run.data.metrics)
    assert run.info.experiment_id == parent.info.experiment_id
    assert parent.data.tags["pricewise.batches"].startswith("b")
    assert parent.data.tags["pricewise.code_version"].startswith("0.1.0+")
    contexts = sorted(i.tags[0].value for i in parent.inputs.dataset_inputs)
    assert contexts == ["test", "train", "valid"]
    assert all(i.dataset.digest for i in parent.inputs.dataset_inputs)
    model = mlflow.pyfunc.load_model("models:/pricewise@challenger")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == [
        "name",
        "brand_name",
        "category_name",
        "item_condition_id",
        "shipping",
        "item_description",
    ]
    out = model.predict(pd.DataFrame([{"name": "Nike running shoes", "item_condition_id": 2, "shipping": 1}]))
    assert list(out.columns) == ["price", "low", "high"]
    assert 0 < out["low"][0] <= out["price"][0] <= out["high"][0]


def test_the_gate_makes_a_first_champion_then_refuses_no_challenger_no_history_and_a_weaker_one(
    trained: Workspace,
) -> None:
    # One clone of the shipped model through the gate's outcomes in turn: each promotion of the shipped model
    # loads and checks it (seconds), so the outcomes share the first one.
    result = trained.cli("promote")

    assert result.exit_code == 0, result.output
    assert "first:" in result.output
    assert client_for(trained).get_model_version_by_alias("pricewise", "champion").version == 1
    [(action, before, after, reason)] = promotions(trained)
    assert (action, before, after) == ("first", None, "1")
    assert "no champion yet" in reason

    # The challenger became champion: there is nothing left to judge, and nothing is recorded.
    again = trained.cli("promote")
    assert again.exit_code == 2
    assert "no challenger" in again.output
    assert len(promotions(trained)) == 1

    # A first champion has no champion before it to go back to.
    rollback = trained.cli("rollback")
    assert rollback.exit_code == 2
    assert "no previous champion" in rollback.output
    assert len(promotions(trained)) == 1
    assert client_for(trained).get_model_version_by_alias("pricewise", "champion").version == 1

    weak = trained.settings.data_dir.parent / "weak.yaml"
    weak.write_text(WEAK)
    assert trained.cli("--config", str(weak), "train").exit_code == 0

    refused = trained.cli("promote")

    assert refused.exit_code == 0
    assert refused.output.startswith("refuse:")
    assert "does not beat" in refused.output
    assert client_for(trained).get_model_version_by_alias("pricewise", "champion").version == 1
    action, before, after, _ = promotions(trained)[-1]
    assert (action, before, after) == ("refuse", "1", "1")


def test_evaluate_writes_segments_plots_and_report(champion: Workspace) -> None:
    result = champion.cli("evaluate")

    assert result.exit_code == 0, result.output
    report_dir = champion.settings.reports / "evaluation" / "models-pricewise-champion"
    report = json.loads((report_dir / "evaluation.json").read_text())
    assert set(report["segments"]) == {"top_category", "condition", "price_band"}
    assert sum(s["rows"] for s in report["segments"]["condition"]) == report["rows"]
    assert 0.7 < report["overall"]["coverage"] < 0.9
    for png in ("predicted_vs_actual.png", "error_by_category.png"):
        assert (report_dir / png).read_bytes()[:4] == b"\x89PNG"
    assert "By top category" in (report_dir / "evaluation.html").read_text()


def test_predict_scores_the_unpriced_sample_and_explains_rejects(champion: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"

    result = champion.cli("predict", "--input", str(TEST_SAMPLE), "--output", str(out))

    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert len(scores) == 2001
    rejected = scores[scores["price"].isna()]
    assert list(rejected["reasons"]) == ["description_only_digits_or_punctuation"]
    # The listing whose description has broken text is scored with that description blanked, and says so.
    flagged = scores[scores["price"].notna() & scores["reasons"].notna()]
    assert list(flagged["reasons"]) == ["description_blanked_broken_encoding"]
    priced = scores[scores["price"].notna()]
    assert (priced["price"] > 0).all()
    assert (priced["low"] <= priced["price"]).all()
    assert (priced["price"] <= priced["high"]).all()
    assert set(priced["model_version"]) == {"pricewise/1"}


def test_predict_bad_input_fails_clearly(champion: Workspace, tmp_path: Path) -> None:
    missing = write_table(
        tmp_path / "missing.tsv",
        [listing_row(1)[:3]],
        header=("train_id", "name", "item_condition_id"),
    )
    out = tmp_path / "out.csv"

    no_columns = champion.cli("predict", "--input", str(missing), "--output", str(out))
    no_model = champion.cli(
        "predict", "--input", str(TEST_SAMPLE), "--output", str(out), "--model", "models:/nope/9"
    )
    bad_suffix = champion.cli("predict", "--input", str(TEST_SAMPLE), "--output", str(tmp_path / "out.xlsx"))

    assert no_columns.exit_code == 2
    assert "missing column(s) category_name, brand_name, shipping, item_description" in no_columns.output
    assert no_model.exit_code == 2
    assert "models:/nope/9" in no_model.output
    assert bad_suffix.exit_code == 2
    assert not out.exists()


@pytest.fixture(scope="module")
def light_validated(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample ingested and validated under a config whose models are Ridge-only; nothing trained."""
    return make_workspace(tmp_path_factory.mktemp("light"), LIGHT)


@pytest.fixture
def light(light_validated: Workspace, tmp_path: Path) -> Workspace:
    """A test's own clone of `light_validated`, to train, promote and tune in quickly."""
    return clone_workspace(light_validated, tmp_path / "light")


def test_a_better_challenger_is_promoted_and_rollback_restores_the_previous(light: Workspace) -> None:
    weak = light.settings.data_dir.parent / "weak.yaml"
    weak.write_text(WEAK)
    assert light.cli("--config", str(weak), "train").exit_code == 0
    assert light.cli("promote").output.startswith("first:")
    assert light.cli("train").exit_code == 0

    promoted = light.cli("promote")

    assert promoted.output.startswith("promote:"), promoted.output
    assert client_for(light).get_model_version_by_alias("pricewise", "champion").version == 2
    assert [p[0] for p in promotions(light)] == ["first", "promote"]

    result = light.cli("rollback")

    assert result.exit_code == 0, result.output
    assert "rolled back from v2 to v1" in result.output
    assert client_for(light).get_model_version_by_alias("pricewise", "champion").version == 1
    assert light.cli("rollback").exit_code == 2


def test_tune_runs_nested_trials_and_saves_params_for_train(light: Workspace) -> None:
    result = light.cli("tune", "--max-evals", "2")

    assert result.exit_code == 0, result.output
    saved = json.loads((light.settings.data_dir / "tuning" / "best_params.json").read_text())
    assert set(saved) == {"ridge_alpha"}
    client = client_for(light)
    experiment = client.get_experiment_by_name("pricewise")
    [parent] = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'tune'")
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 2
    assert all("valid_rmsle" in t.data.metrics for t in trials)
    trained_after = light.cli("train")
    run = client.get_run(client.get_model_version_by_alias("pricewise", "challenger").run_id)
    assert trained_after.exit_code == 0
    assert float(run.data.params["ridge_alpha"]) == pytest.approx(saved["ridge_alpha"])


def test_training_without_usable_data_fails_clearly(tmp_path: Path) -> None:
    ws = Workspace(Settings(data_dir=tmp_path / "data"), REPO / "configs" / "pricewise.yaml")
    empty = ws.cli("train")
    assert empty.exit_code == 2
    assert "no warehouse" in empty.output

    bad = write_table(tmp_path / "bad.tsv", [listing_row(i, price=-1) for i in range(50)])
    assert ws.cli("ingest", str(bad)).exit_code == 0
    assert ws.cli("validate").exit_code == 1
    rejected = ws.cli("train")
    assert rejected.exit_code == 2
    assert "usable training listings" in rejected.output
    assert not (tmp_path / "data" / "mlflow").exists()


def test_an_unreachable_tracking_server_fails_fast(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(ws.settings.data_dir),
        "PRICEWISE_MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("pricewise")), "train"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60


def test_parallel_scoring_matches_scoring_in_process(
    light: Workspace, tmp_path: Path, train_sample: Path
) -> None:
    serial_config = tmp_path / "serial.yaml"
    serial_config.write_text(LIGHT + "predict: {chunk_rows: 1000, workers: 1}\n")
    parallel_config = tmp_path / "parallel.yaml"
    parallel_config.write_text(LIGHT + "predict: {chunk_rows: 1000, workers: 2}\n")
    assert light.cli("train").exit_code == 0
    model = "models:/pricewise@challenger"

    serial = light.cli(
        "--config",
        str(serial_config),
        "predict",
        "-i",
        str(train_sample),
        "-o",
        str(tmp_path / "s.csv"),
        "--model",
        model,
    )
    parallel = light.cli(
        "--config",
        str(parallel_config),
        "predict",
        "-i",
        str(train_sample),
        "-o",
        str(tmp_path / "p.csv"),
        "--model",
        model,
    )

    assert serial.exit_code == 0, serial.output
    assert parallel.exit_code == 0, parallel.output
    left = pd.read_csv(tmp_path / "s.csv").sort_values("id").reset_index(drop=True)
    right = pd.read_csv(tmp_path / "p.csv").sort_values("id").reset_index(drop=True)
    assert len(left) == 8000
    pd.testing.assert_frame_equal(left, right)

"""A registered model and a tiny real warehouse in; overall and per-segment figures, plots, a report and an
MLflow run out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pricewise import evaluate
from pricewise.config import load_config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store.training_data import load
from tests.support.workspaces import Workspace, clone_workspace


@pytest.fixture
def trained(tiny_trained_workspace: Workspace, tmp_path: Path) -> Workspace:
    """A clone of the tiny trained workspace: evaluating adds a run and writes reports."""
    return clone_workspace(tiny_trained_workspace, tmp_path / "ws")


def test_the_challenger_is_evaluated_when_there_is_no_champion(trained: Workspace) -> None:
    config = load_config(trained.config_path)

    result = evaluate.run(config, trained.settings)

    assert result.model_uri == "models:/pricewise@challenger"
    rows = len(load(trained.settings).test)
    for key in ("top_category", "condition", "price_band"):
        assert sum(s["rows"] for s in result.segments[key]) == rows
    assert {s["segment"] for s in result.segments["top_category"]} == {"Women", "Electronics"}
    assert 0 <= result.overall["coverage"] <= 1
    report = json.loads((result.report_html.parent / "evaluation.json").read_text(encoding="utf-8"))
    assert report["rows"] == rows
    assert report["overall"] == result.overall
    assert [p.name for p in result.plots] == ["predicted_vs_actual.png", "error_by_category.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.plots)
    client = MlflowClient(trained.settings.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["pricewise.model_uri"] == result.model_uri
    assert run.data.metrics["test_rmsle"] == pytest.approx(result.overall["rmsle"])


def test_a_named_model_is_evaluated_and_its_report_named_after_it(trained: Workspace) -> None:
    result = evaluate.run(load_config(trained.config_path), trained.settings, "models:/pricewise-baseline/1")

    assert result.report_html.parent.name == "models-pricewise-baseline-1"
    assert "By top category" in result.report_html.read_text(encoding="utf-8")


def test_without_a_champion_or_challenger_evaluation_says_to_train_first(trained: Workspace) -> None:
    config = load_config(trained.config_path)
    unregistered = config.model_copy(
        update={"train": config.train.model_copy(update={"registered_model": "nope"})}
    )

    with pytest.raises(
        PricewiseError, match="no champion or challenger of nope: run `pricewise train` first"
    ):
        evaluate.run(unregistered, trained.settings)


def test_an_unwritable_report_directory_is_a_clear_error(trained: Workspace, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    settings = Settings(data_dir=trained.settings.data_dir, reports_dir=blocker / "reports")

    with pytest.raises(PricewiseError, match="cannot write the evaluation report"):
        evaluate.run(load_config(trained.config_path), settings)

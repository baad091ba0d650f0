"""A registered model and a tiny real warehouse in; overall and per-segment figures beside the rules baseline's,
plots, a report per model version (and a copy under the alias) and an MLflow run out."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from mlflow import MlflowClient

from pricewise import evaluate
from pricewise.config import load_config
from pricewise.errors import PricewiseError
from pricewise.models import metrics
from pricewise.settings import Settings
from pricewise.store import registry, tracking
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
    assert run.data.metrics["test_baseline_rmsle"] == pytest.approx(result.baseline_rmsle)


def test_the_report_is_kept_per_version_and_copied_under_the_alias(trained: Workspace) -> None:
    reports = trained.settings.reports / "evaluation"

    result = evaluate.run(load_config(trained.config_path), trained.settings)

    assert result.model_version == "1"
    assert result.report_html == reports / "pricewise" / "v1" / "evaluation.html"
    alias_copy = reports / "models-pricewise-challenger"
    for name in ("evaluation.html", "evaluation.json", "predicted_vs_actual.png", "error_by_category.png"):
        assert (alias_copy / name).read_bytes() == (result.report_html.parent / name).read_bytes(), name
    report = json.loads((result.report_html.parent / "evaluation.json").read_text(encoding="utf-8"))
    assert (report["model"], report["version"]) == ("pricewise", "1")
    assert "pricewise v1" in result.report_html.read_text(encoding="utf-8")


def test_a_new_version_gets_its_own_report_and_the_alias_copy_follows_it(trained: Workspace) -> None:
    config = load_config(trained.config_path)
    first = evaluate.run(config, trained.settings)
    tracking.configure(trained.settings)
    client = MlflowClient()
    v1 = client.get_model_version("pricewise", "1")
    # A second version of the same logged model, as a retraining registers one: tagged with its train run.
    v2 = registry.register(str(v1.source), "pricewise", str(v1.tags[registry.TRAIN_RUN_TAG]))
    client.set_registered_model_alias("pricewise", "challenger", v2.version)

    second = evaluate.run(config, trained.settings)

    assert (first.model_version, second.model_version) == ("1", str(v2.version))
    assert first.report_html.is_file(), "the first version's report stays"
    assert second.report_html == first.report_html.parents[1] / f"v{v2.version}" / "evaluation.html"
    alias_copy = trained.settings.reports / "evaluation" / "models-pricewise-challenger" / "evaluation.json"
    assert json.loads(alias_copy.read_text(encoding="utf-8"))["version"] == str(v2.version)
    assert f"pricewise v{v2.version}" in second.report_html.read_text(encoding="utf-8")


def test_the_rules_baseline_rmsle_stands_beside_the_models_overall_and_per_segment(
    trained: Workspace,
) -> None:
    result = evaluate.run(load_config(trained.config_path), trained.settings)

    assert result.baseline_uri == "models:/pricewise-baseline/1", "the baseline trained with the model"
    test = load(trained.settings).test
    baseline = registry.load_suggester("models:/pricewise-baseline/1").suggest(test.frame)["price"].to_numpy()
    actual = test.price
    assert result.baseline_rmsle == pytest.approx(metrics.rmsle(actual, baseline))
    assert result.baseline_rmsle != pytest.approx(result.overall["rmsle"]), "two models, two figures"
    top = test.frame["category_name"].fillna("").str.split("/").str[0].to_numpy()
    for segment in result.segments["top_category"]:
        rows = top == segment["segment"]
        assert segment["baseline_rmsle"] == pytest.approx(
            metrics.rmsle(actual[rows], baseline[rows]), abs=1e-4
        )
    assert all("baseline_rmsle" in s for rows in result.segments.values() for s in rows)
    html = result.report_html.read_text(encoding="utf-8")
    assert "models:/pricewise-baseline/1" in html
    assert f"{result.baseline_rmsle:.4f}" in html
    assert html.count("<th>baseline RMSLE</th>") == len(result.segments)


def test_price_bands_are_listed_in_price_order(trained: Workspace) -> None:
    # Spread the test split over every band: as text, "[100, inf)" would sort before "[20, 50)".
    with duckdb.connect(str(trained.settings.warehouse)) as con:
        con.execute(
            "UPDATE listings SET price = [5, 15, 30, 70, 150][1 + (hash(listing_id) % 5)::INT] WHERE split = 'test'"
        )

    result = evaluate.run(load_config(trained.config_path), trained.settings)

    bands = [s["segment"] for s in result.segments["price_band"]]
    edges = [tuple(float(x) for x in band.strip("[)").split(", ")) for band in bands]
    assert [low for low, _ in edges] == sorted(low for low, _ in edges)
    assert bands != sorted(bands), "the tiny test split spans bands whose text order differs from price order"
    actual = load(trained.settings).test.price
    in_band = [int(((actual >= low) & (actual < high)).sum()) for low, high in edges]
    assert [s["rows"] for s in result.segments["price_band"]] == in_band


def test_a_version_uri_is_evaluated_into_that_versions_report_without_the_baseline_beside_itself(
    trained: Workspace,
) -> None:
    result = evaluate.run(load_config(trained.config_path), trained.settings, "models:/pricewise-baseline/1")

    assert (
        result.report_html
        == trained.settings.reports / "evaluation" / "pricewise-baseline" / "v1" / "evaluation.html"
    )
    assert result.baseline_uri is None
    html = result.report_html.read_text(encoding="utf-8")
    assert "By top category" in html
    assert "No rules baseline to compare with." in html
    assert not (trained.settings.reports / "evaluation" / "models-pricewise-baseline-1").exists()


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

"""A registered model and the warehouse's test split in; metrics overall and by segment beside the rules
baseline's RMSLE, plots and a report per model version out."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import mlflow
import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from mlflow import MlflowClient

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.logs import redact
from pricewise.models import metrics
from pricewise.settings import Settings
from pricewise.store import tracking, training_data
from pricewise.store.registry import (
    CHALLENGER,
    CHAMPION,
    TRAIN_RUN_TAG,
    load_suggester,
    resolve_version,
    version_by_alias,
)

logger = logging.getLogger(__name__)

PRICE_BANDS = (0, 10, 20, 50, 100, np.inf)
# One label per band, in the bands' order: the segment table lists them by price, not as text.
PRICE_BAND_LABELS = tuple(f"[{low:g}, {high:g})" for low, high in itertools.pairwise(PRICE_BANDS))


@dataclass(frozen=True)
class EvaluateResult:
    """Where the evaluation went and its headline figures."""

    model_uri: str
    run_id: str
    overall: dict[str, float]
    segments: dict[str, list[dict[str, Any]]]
    report_html: Path
    plots: tuple[Path, ...]
    model_version: str = ""
    baseline_uri: str | None = None  # the rules baseline the figures are set beside, None when there is none
    baseline_rmsle: float | None = None


def _segment(scored: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    rows = []
    for value, part in scored.groupby(key, observed=True, sort=True):
        figures = metrics.summary(*(part[c].to_numpy() for c in ("actual", "price", "low", "high")))
        row: dict[str, Any] = {
            "segment": str(value),
            "rows": len(part),
            **{k: round(v, 4) for k, v in figures.items()},
        }
        if "baseline_price" in part:
            row["baseline_rmsle"] = round(
                metrics.rmsle(part["actual"].to_numpy(), part["baseline_price"].to_numpy()), 4
            )
        rows.append(row)
    return rows


def _plots(scored: pd.DataFrame, by_category: list[dict[str, Any]], directory: Path) -> tuple[Path, Path]:
    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the headless backend

    scatter = directory / "predicted_vs_actual.png"
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(scored["actual"], scored["price"], s=4, alpha=0.4)
    top = float(max(scored["actual"].max(), scored["price"].max()))
    ax.plot([1, top], [1, top], color="black", linewidth=1)
    ax.set(xscale="log", yscale="log", xlabel="actual price ($)", ylabel="suggested price ($)")
    ax.set_title("Suggested vs actual price (test split)")
    fig.tight_layout()
    fig.savefig(scatter, dpi=100)
    plt.close(fig)

    bars = directory / "error_by_category.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh([r["segment"] for r in by_category], [r["rmsle"] for r in by_category])
    ax.set(xlabel="RMSLE", title="Error by top-level category (test split)")
    fig.tight_layout()
    fig.savefig(bars, dpi=100)
    plt.close(fig)
    return scatter, bars


def _resolve_uri(config: Config, model_uri: str | None) -> str:
    if model_uri:
        return model_uri
    name = config.train.registered_model
    client = MlflowClient()
    for alias in (CHAMPION, CHALLENGER):
        if version_by_alias(client, name, alias) is not None:
            return f"models:/{name}@{alias}"
    raise PricewiseError(f"no champion or challenger of {name}: run `pricewise train` first")


def _baseline_uri(client: MlflowClient, config: Config, name: str, version: str) -> str | None:
    """The rules baseline trained beside the model (same training run), else the baseline's champion; None when
    the model is the baseline itself or no baseline is registered."""
    baseline = config.train.baseline_registered_model
    if name == baseline:
        return None
    train_run = (client.get_model_version(name, version).tags or {}).get(TRAIN_RUN_TAG)
    if train_run:
        for candidate in client.search_model_versions(f"name = '{baseline}'"):
            if (candidate.tags or {}).get(TRAIN_RUN_TAG) == train_run:
                return f"models:/{baseline}/{candidate.version}"
    champion = version_by_alias(client, baseline, CHAMPION)
    return None if champion is None else f"models:/{baseline}/{champion}"


def run(config: Config, settings: Settings, model_uri: str | None = None) -> EvaluateResult:
    """Score the test split with a model and report figures overall and by segment.

    Args:
        config: Stage parameters.
        settings: Where the warehouse, reports and MLflow store are.
        model_uri: Any MLflow model URI; default the champion, else the challenger.

    Returns:
        The evaluation run, overall figures, segment tables and report paths.
    """
    tracking.configure(settings)
    uri = _resolve_uri(config, model_uri)
    client = MlflowClient()
    name, version = resolve_version(client, uri)
    # By version: the report, the baseline and the scores are all of the version the alias named at the start.
    suggester = load_suggester(f"models:/{name}/{version}")
    baseline_uri = _baseline_uri(client, config, name, version)
    test = training_data.load(settings, config.train.min_rows_per_split).test
    scored = suggester.suggest(test.frame)
    scored["actual"] = test.price
    if baseline_uri is not None:
        scored["baseline_price"] = load_suggester(baseline_uri).suggest(test.frame)["price"].to_numpy()
    scored["top_category"] = (
        test.frame["category_name"].fillna("").str.split("/").str[0].replace("", "(none)")
    )
    scored["condition"] = test.frame["item_condition_id"].to_numpy()
    scored["price_band"] = pd.cut(scored["actual"], PRICE_BANDS, right=False, labels=PRICE_BAND_LABELS)
    overall = metrics.summary(*(scored[c].to_numpy() for c in ("actual", "price", "low", "high")))
    baseline_rmsle = (
        None
        if baseline_uri is None
        else metrics.rmsle(scored["actual"].to_numpy(), scored["baseline_price"].to_numpy())
    )
    segments = {key: _segment(scored, key) for key in ("top_category", "condition", "price_band")}
    shown = redact(uri)  # what reports, tags and the result show: never a password in the URI
    # One report per version; an alias's directory holds a copy of the latest report of the version it named.
    directory = settings.reports / "evaluation" / name.replace("/", "-") / f"v{version}"
    alias_directory = (
        settings.reports / "evaluation" / shown.replace(":/", "-").replace("/", "-").replace("@", "-")
        if "@" in shown
        else None
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        plots = _plots(scored, segments["top_category"], directory)
        report = {
            "model_uri": shown,
            "model": name,
            "version": version,
            "rows": len(scored),
            "overall": overall,
            "baseline": None
            if baseline_uri is None
            else {"model_uri": baseline_uri, "rmsle": baseline_rmsle},
            "segments": segments,
        }
        (directory / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        env = Environment(loader=PackageLoader("pricewise"), autoescape=select_autoescape())
        html = env.get_template("evaluation_report.html").render(
            r=report, plots=[p.name for p in plots], coverage=suggester.ranges.coverage
        )
        report_html = directory / "evaluation.html"
        report_html.write_text(html, encoding="utf-8")
        if alias_directory is not None:
            shutil.copytree(directory, alias_directory, dirs_exist_ok=True)
    except OSError as exc:
        raise PricewiseError(f"cannot write the evaluation report to {directory}: {exc.strerror}") from exc
    experiment = tracking.experiment_id(settings, config.train.experiment)
    with mlflow.start_run(experiment_id=experiment, run_name="evaluate") as run:
        mlflow.set_tags({"pricewise.model_uri": shown, "pricewise.model_version": f"{name}/{version}"})
        mlflow.log_metrics({f"test_{k}": v for k, v in overall.items()})
        if baseline_rmsle is not None:
            mlflow.set_tag("pricewise.baseline_uri", baseline_uri)
            mlflow.log_metric("test_baseline_rmsle", baseline_rmsle)
        mlflow.log_artifacts(str(directory), artifact_path="evaluation")
    logger.info("evaluated %s (v%s): RMSLE %.4f", shown, version, overall["rmsle"])
    return EvaluateResult(
        shown, run.info.run_id, overall, segments, report_html, plots, version, baseline_uri, baseline_rmsle
    )

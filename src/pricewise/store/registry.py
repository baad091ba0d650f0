"""The MLflow registry's champion and challenger in; a gated promotion, or a one-step rollback, recorded, out.

A challenger becomes champion only if it beats the champion's RMSLE on the same test split by the configured
margin and passes the behaviour checks; the first model with no champion to beat needs only the behaviour
checks. Every decision is recorded in the warehouse table ``promotions``; rollback replays that history.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.models import behaviour, metrics
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import tracking, training_data, warehouse

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"

Action = Literal["first", "promote", "refuse", "rollback", "unchanged"]


@dataclass(frozen=True)
class Decision:
    """What the gate or a rollback decided, and why."""

    action: Action
    registered_model: str
    champion_before: str | None
    challenger: str | None
    champion_after: str | None
    reason: str
    figures: dict[str, Any]

    @property
    def promoted(self) -> bool:
        """Whether the champion changed to the challenger."""
        return self.action in ("first", "promote")


def version_by_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise PricewiseError(f"MLflow registry error for {name}@{alias}: {exc.message}") from exc


def load_suggester(uri: str) -> PriceSuggester:
    """Load a registered pricewise model and return its PriceSuggester.

    Raises:
        PricewiseError: The URI does not resolve to a loadable pricewise model.
    """
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise PricewiseError(f"cannot load model {uri}: {message}") from exc
    model = loaded.unwrap_python_model()
    if not isinstance(model, PriceSuggester):
        raise PricewiseError(f"{uri} is not a pricewise model")
    return model


def _record(settings: Settings, decision: Decision) -> None:
    with warehouse.connect(settings) as con, warehouse.transaction(con):
        con.execute(
            "INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                datetime.now(UTC).replace(tzinfo=None),
                decision.registered_model,
                decision.action,
                decision.champion_before,
                decision.challenger,
                decision.champion_after,
                json.dumps(decision.figures, default=str),
                decision.reason,
            ],
        )


def _test_rmsle(suggester: PriceSuggester, test: training_data.Split) -> float:
    return metrics.rmsle(test.price, suggester.suggest(test.frame)["price"].to_numpy())


def promote(config: Config, settings: Settings) -> Decision:
    """Judge the challenger against the champion and move the champion alias if it wins.

    Args:
        config: Stage parameters (train names the registered model; promote holds the gate).
        settings: Where the warehouse and the MLflow store are.

    Returns:
        The decision, also recorded in the warehouse.

    Raises:
        PricewiseError: There is no challenger, a model cannot be loaded, or MLflow is unreachable.
    """
    name = config.train.registered_model
    tracking.configure(settings)
    client = MlflowClient()
    challenger = version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise PricewiseError(f"no challenger for {name}: run `pricewise train` first")
    champion = version_by_alias(client, name, CHAMPION)
    if champion == challenger:
        return Decision(
            "unchanged", name, champion, challenger, champion, "the challenger is already champion", {}
        )
    test = training_data.load(settings, config.train.min_rows_per_split).test
    candidate = load_suggester(f"models:/{name}/{challenger}")
    checks = behaviour.run_checks(candidate.suggest, test.frame, config.promote.behaviour)
    figures: dict[str, Any] = {
        "challenger_rmsle": _test_rmsle(candidate, test),
        "test_rows": len(test),
        "behaviour": [asdict(c) for c in checks],
    }
    failed = [c.name for c in checks if not c.passed]
    if champion is not None:
        figures["champion_rmsle"] = _test_rmsle(load_suggester(f"models:/{name}/{champion}"), test)
    action: Action
    if failed:
        action, reason = "refuse", f"behaviour checks failed: {', '.join(failed)}"
    elif champion is None:
        action, reason = (
            "first",
            "no champion yet: the first model that passes the behaviour checks becomes champion",
        )
    else:
        gain = figures["champion_rmsle"] - figures["challenger_rmsle"]
        figures["gain"] = gain
        if gain > config.promote.margin:
            action = "promote"
            reason = (
                f"RMSLE {figures['challenger_rmsle']:.4f} beats {figures['champion_rmsle']:.4f} by {gain:.4f}"
            )
        else:
            action = "refuse"
            reason = (
                f"RMSLE {figures['challenger_rmsle']:.4f} does not beat the champion's "
                f"{figures['champion_rmsle']:.4f} by more than the margin {config.promote.margin}"
            )
    after = challenger if action in ("first", "promote") else champion
    decision = Decision(action, name, champion, challenger, after, reason, figures)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
        client.delete_registered_model_alias(name, CHALLENGER)
    _record(settings, decision)
    logger.info("promotion of %s v%s: %s (%s)", name, challenger, action, reason)
    return decision


def champion_history(settings: Settings, name: str) -> list[str]:
    """Champions in order, as the recorded promotions and rollbacks leave them (last is current)."""
    with warehouse.connect(settings) as con:
        rows = con.execute(
            "SELECT action, champion_after FROM promotions WHERE registered_model = ? ORDER BY decided_at",
            [name],
        ).fetchall()
    stack: list[str] = []
    for action, after in rows:
        if action in ("first", "promote"):
            stack.append(str(after))
        elif action == "rollback" and stack:
            stack.pop()
    return stack


def rollback(config: Config, settings: Settings) -> Decision:
    """Point the champion alias back at the previous champion, in one step.

    Raises:
        PricewiseError: There is no earlier champion to return to.
    """
    name = config.train.registered_model
    tracking.configure(settings)
    client = MlflowClient()
    history = champion_history(settings, name)
    if len(history) < 2:
        raise PricewiseError(
            f"no previous champion of {name} to roll back to (history: {history or 'empty'})"
        )
    current, previous = history[-1], history[-2]
    load_suggester(f"models:/{name}/{previous}")  # never roll back onto a model that no longer loads
    client.set_registered_model_alias(name, CHAMPION, previous)
    decision = Decision(
        "rollback", name, current, None, previous, f"rolled back from v{current} to v{previous}", {}
    )
    _record(settings, decision)
    return decision

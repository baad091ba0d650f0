"""The registry's challenger and champion in; a gated promotion, or a one-step rollback, recorded, out.

A challenger becomes champion only if it beats the champion's RMSLE on the same test split by the configured
margin and passes the behaviour checks; the first model with no champion to beat needs only the behaviour
checks. Every decision is a row of the decision table ``promotions`` (history); the registry's ``champion``
alias is who is champion. The row is written before the alias moves, so a moved alias always has its record.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.models import behaviour, metrics
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import decisions, tracking, training_data
from pricewise.store.decisions import PromotionAction
from pricewise.store.registry import CHALLENGER, CHAMPION, load_suggester, version_by_alias

logger = logging.getLogger(__name__)

# A gate decision that is recorded, or "unchanged" (the challenger already is champion: nothing to record).
GateOutcome = PromotionAction | Literal["unchanged"]


@dataclass(frozen=True)
class Decision:
    """What the gate or a rollback decided, and why."""

    action: GateOutcome
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


def _record(settings: Settings, decision: Decision) -> None:
    if decision.action == "unchanged":
        return
    store = decisions.open_batch_store(settings)
    try:
        store.record(
            decisions.Promotion(
                decided_at=datetime.now(UTC),
                registered_model=decision.registered_model,
                action=decision.action,
                champion_before=decision.champion_before,
                challenger=decision.challenger,
                champion_after=decision.champion_after,
                figures=decisions.json_ready(decision.figures),
                reason=decision.reason,
            )
        )
    finally:
        store.close()


def _test_rmsle(suggester: PriceSuggester, test: training_data.Split) -> float:
    return metrics.rmsle(test.price, suggester.suggest(test.frame)["price"].to_numpy())


def _judge(config: Config, settings: Settings, name: str, champion: str | None, challenger: str) -> Decision:
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
    action: GateOutcome
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
    return Decision(action, name, champion, challenger, after, reason, figures)


def _move_alias(client: MlflowClient, name: str, version: str, drop_challenger: bool) -> None:
    try:
        client.set_registered_model_alias(name, CHAMPION, version)
        if drop_challenger:
            client.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException as exc:
        raise PricewiseError(
            f"the decision to make v{version} champion of {name} is recorded, but moving the alias failed: "
            f"{exc.message}; run the command again"
        ) from exc


def run(config: Config, settings: Settings) -> Decision:
    """Judge the challenger against the champion and move the champion alias if it wins.

    Args:
        config: Stage parameters (train names the registered model; promote holds the gate).
        settings: Where the warehouse, the decision tables and the MLflow store are.

    Returns:
        The decision, also recorded in ``promotions``.

    Raises:
        PricewiseError: There is no challenger, a model cannot be loaded, MLflow is unreachable, or the
            decision cannot be recorded (then the champion is unchanged).
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
    decision = _judge(config, settings, name, champion, challenger)
    _record(settings, decision)
    if decision.promoted:
        _move_alias(client, name, challenger, drop_challenger=True)
    logger.info("promotion of %s v%s: %s (%s)", name, challenger, decision.action, decision.reason)
    return decision


def champion_history(settings: Settings, name: str) -> list[str]:
    """Champions in order, as the recorded promotions and rollbacks leave them (last is the latest)."""
    store = decisions.open_batch_store(settings)
    try:
        rows = store.promotions(name)
    finally:
        store.close()
    stack: list[str] = []
    for row in rows:
        if row.action in ("first", "promote"):
            stack.append(str(row.champion_after))
        elif row.action == "rollback" and stack:
            stack.pop()
    return stack


def rollback(config: Config, settings: Settings) -> Decision:
    """Point the champion alias back at the champion before the current one, in one step.

    The current champion is the registry's alias; the one before it comes from the recorded history.

    Raises:
        PricewiseError: There is no champion, no earlier one to return to, or the alias was moved outside
            pricewise (the history does not end at it).
    """
    name = config.train.registered_model
    tracking.configure(settings)
    client = MlflowClient()
    current = version_by_alias(client, name, CHAMPION)
    if current is None:
        raise PricewiseError(f"{name} has no champion to roll back from")
    history = champion_history(settings, name)
    if not history or history[-1] != current:
        raise PricewiseError(
            f"champion v{current} of {name} was not set by `pricewise promote` (recorded history: "
            f"{history or 'empty'}); move the alias in the MLflow registry or promote a challenger"
        )
    if len(history) < 2:
        raise PricewiseError(f"no previous champion of {name} to roll back to (history: {history})")
    previous = history[-2]
    load_suggester(f"models:/{name}/{previous}")  # never roll back onto a model that no longer loads
    decision = Decision(
        "rollback", name, current, None, previous, f"rolled back from v{current} to v{previous}", {}
    )
    _record(settings, decision)
    _move_alias(client, name, previous, drop_challenger=False)
    return decision

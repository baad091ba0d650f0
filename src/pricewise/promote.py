"""The registry's challenger and champion in; a gated promotion, or a one-step rollback, recorded, out.

A challenger must pass the behaviour checks; the first model with no champion to beat needs only those. Against a
champion, both are scored on the fixed test split and, once enough trusted outcomes have arrived, on the recency
holdout (the newest outcomes, held out of training; see `store.training_data`). The rule (`gate_rule`):
- no recency holdout of `promote.recency_min_rows`: the challenger must beat the champion's test RMSLE by more
  than `promote.margin`;
- the market moved (the champion's RMSLE on the recent outcomes exceeds its test RMSLE by more than
  `promote.shift_margin`): the recent outcomes decide alone, since the test split measures a market that is
  gone: the challenger must beat the champion on them by more than the margin;
- otherwise both must agree: better on the test split by more than the margin, and not worse on the recent
  outcomes. Every decision is a row of the decision table ``promotions`` (history); the registry's ``champion``
alias is who is champion. The row is written before the alias moves, so a moved alias always has its record;
when the alias then cannot be moved, a second row undoes the first (history is unchanged) and the command says so.
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
from pricewise.progress import Progress
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


def gate_rule(
    margin: float,
    shift_margin: float,
    figures: dict[str, Any],
) -> tuple[bool, str]:
    """Whether the challenger beats the champion, and why (the rule is in the module docstring).

    Args:
        margin: RMSLE the challenger must gain (promote.margin).
        shift_margin: How much worse the champion must do on the recent outcomes than on the test split for the
            market to count as moved (promote.shift_margin).
        figures: champion_rmsle and challenger_rmsle (test split), and, with a recency holdout,
            champion_recent_rmsle, challenger_recent_rmsle and recent_rows. Gains and the rule used are added.
    """
    champ, chall = figures["champion_rmsle"], figures["challenger_rmsle"]
    gain = champ - chall
    figures["gain"] = gain
    test_text = f"test RMSLE {chall:.4f} vs the champion's {champ:.4f} (gain {gain:.4f})"
    if figures.get("champion_recent_rmsle") is None:
        figures["rule"] = "test split"
        if gain > margin:
            return True, f"RMSLE {chall:.4f} beats {champ:.4f} by {gain:.4f}"
        return False, (
            f"RMSLE {chall:.4f} does not beat the champion's {champ:.4f} by more than the margin {margin}"
        )
    r_champ, r_chall, rows = (
        figures["champion_recent_rmsle"],
        figures["challenger_recent_rmsle"],
        figures["recent_rows"],
    )
    recent_gain = r_champ - r_chall
    figures["recent_gain"] = recent_gain
    recent_text = (
        f"RMSLE {r_chall:.4f} vs {r_champ:.4f} on the {rows} newest outcomes (gain {recent_gain:.4f})"
    )
    if r_champ - champ > shift_margin:
        figures["rule"] = "market moved: recent outcomes decide"
        moved = (
            f"the market moved (the champion's RMSLE is {r_champ:.4f} on the newest outcomes, {champ:.4f} on the "
            f"test split)"
        )
        if recent_gain > margin:
            return True, f"{moved}: {recent_text}; {test_text}"
        return (
            False,
            f"{moved}, and the challenger does not beat it there by more than {margin}: {recent_text}",
        )
    figures["rule"] = "test split and recent outcomes agree"
    if gain > margin and recent_gain >= 0:
        return True, f"{test_text}; {recent_text}"
    if gain > margin:
        return False, f"better on the test split but worse on the newest outcomes: {recent_text}; {test_text}"
    return False, (
        f"RMSLE {chall:.4f} does not beat the champion's {champ:.4f} by more than the margin {margin} "
        f"on the test split; {recent_text}"
    )


def _judge(
    config: Config,
    settings: Settings,
    name: str,
    champion: str | None,
    challenger: str,
    progress: Progress,
) -> Decision:
    progress.step(f"loading the test split and challenger v{challenger}", done=0)
    data = training_data.load(settings, config.train.min_rows_per_split, config.train.recency)
    test = data.test
    recent = (
        data.recent
        if data.recent is not None and len(data.recent) >= config.promote.recency_min_rows
        else None
    )
    candidate = load_suggester(f"models:/{name}/{challenger}")
    progress.step("behaviour checks", done=1)
    checks = behaviour.run_checks(candidate.suggest, test.frame, config.promote.behaviour)
    progress.step("challenger RMSLE", done=2)
    figures: dict[str, Any] = {
        "challenger_rmsle": _test_rmsle(candidate, test),
        "test_rows": len(test),
        "recent_rows": len(recent) if recent is not None else 0,
        "behaviour": [asdict(c) for c in checks],
    }
    if recent is not None:
        figures["challenger_recent_rmsle"] = _test_rmsle(candidate, recent)
    failed = [c.name for c in checks if not c.passed]
    if champion is not None:
        progress.step(f"champion v{champion} RMSLE", done=3)
        current = load_suggester(f"models:/{name}/{champion}")
        figures["champion_rmsle"] = _test_rmsle(current, test)
        if recent is not None:
            figures["champion_recent_rmsle"] = _test_rmsle(current, recent)
    action: GateOutcome
    if failed:
        action, reason = "refuse", f"behaviour checks failed: {', '.join(failed)}"
    elif champion is None:
        action, reason = (
            "first",
            "no champion yet: the first model that passes the behaviour checks becomes champion",
        )
    else:
        wins, reason = gate_rule(config.promote.margin, config.promote.shift_margin, figures)
        action = "promote" if wins else "refuse"
    after = challenger if action in ("first", "promote") else champion
    return Decision(action, name, champion, challenger, after, reason, figures)


def _compensation(decision: Decision, why: str) -> Decision:
    """The row that undoes a recorded decision whose alias move failed: a rollback undoes a promotion, and
    re-pushing the champion undoes a rollback, so `champion_history` reads as if neither happened."""
    action: PromotionAction = "promote" if decision.action == "rollback" else "rollback"
    return Decision(
        action,
        decision.registered_model,
        decision.champion_after,
        None,
        decision.champion_before,
        f"undoes the {decision.action} recorded just before: the champion alias could not be moved ({why})",
        {"compensates": decision.action},
    )


def _move_alias(settings: Settings, client: MlflowClient, decision: Decision, drop_challenger: bool) -> None:
    name, version = decision.registered_model, str(decision.champion_after)
    try:
        client.set_registered_model_alias(name, CHAMPION, version)
    except (MlflowException, OSError) as exc:
        why = exc.message if isinstance(exc, MlflowException) else str(exc)
        try:
            _record(settings, _compensation(decision, why))
        except PricewiseError as again:
            raise PricewiseError(
                f"moving the champion alias of {name} to v{version} failed ({why}); the champion is still "
                f"v{decision.champion_before}, but the {decision.action} stays recorded because undoing the "
                f"record failed too ({again}); record a rollback by hand before promoting again"
            ) from exc
        raise PricewiseError(
            f"moving the champion alias of {name} to v{version} failed ({why}); the champion is still "
            f"v{decision.champion_before} and the recorded {decision.action} was undone; run the command again"
        ) from exc
    if drop_challenger:
        try:
            client.delete_registered_model_alias(name, CHALLENGER)
        except (MlflowException, OSError) as exc:
            why = exc.message if isinstance(exc, MlflowException) else str(exc)
            raise PricewiseError(
                f"v{version} is champion of {name} (recorded), but the challenger alias could not be removed "
                f"({why}); run `pricewise promote` again to remove it"
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
        # A promotion that moved the alias but could not drop the challenger ends here.
        try:
            client.delete_registered_model_alias(name, CHALLENGER)
        except MlflowException as exc:
            raise PricewiseError(f"cannot remove the challenger alias of {name}: {exc.message}") from exc
        return Decision(
            "unchanged", name, champion, challenger, champion, "the challenger is already champion", {}
        )
    # Load, behaviour checks, the challenger's RMSLE, the champion's (when there is one), the record.
    steps = 5 if champion is not None else 4
    progress = Progress("promote", total=steps, unit="gate steps")
    decision = _judge(config, settings, name, champion, challenger, progress)
    progress.step(f"recording the decision: {decision.action}", done=steps - 1)
    _record(settings, decision)
    if decision.promoted:
        _move_alias(settings, client, decision, drop_challenger=True)
    progress.finish()
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
    _move_alias(settings, client, decision, drop_challenger=False)
    return decision

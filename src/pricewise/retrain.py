"""The latest monitoring run and the champion's age in; a retraining decision, and a gated challenger, out.

The policy (config section ``retrain``) retrains when any rule triggers:
- drift: the share of drifted input columns in the latest monitoring run reaches ``drift_share``;
- accuracy: RMSLE against sold prices exceeds the champion's offline test RMSLE by more than ``rmsle_margin``
  (judged only with at least ``monitor.min_feedback_rows`` sold prices);
- target drift: trusted sold prices drifted from the training prices (``on_target_drift``);
- age: the champion was trained more than ``max_age_days`` ago;
- no champion at all.

The latest monitoring run is the newest one that compared something (`DecisionStore.latest_compared_run`).
Retraining first harvests trusted sold prices (outcomes, never the seller's open feedback) into a priced batch
(`pricewise.harvest`, validated like any other, so a batch that fails validation never reaches training, and a
market shift in it is flagged with its figures), trains a challenger on the warehouse's current training
data, and puts it through the promotion gate. Every decision is a `decisions.RetrainDecision` with its reasons
and figures; the gate's own decision is a `decisions.Promotion`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pricewise import harvest, promote, train, validate
from pricewise.config import Config, MonitorConfig, RetrainConfig
from pricewise.errors import PricewiseError
from pricewise.monitoring.windows import Champion, champion
from pricewise.settings import Settings
from pricewise.store import decisions
from pricewise.store.decisions import MonitoringRun, RetrainAction

logger = logging.getLogger(__name__)

Mode = Literal["check", "if-needed", "force"]


@dataclass(frozen=True)
class Rule:
    """One rule of the policy, judged."""

    rule: str
    value: float | None
    threshold: float | None
    triggered: bool
    detail: str


@dataclass(frozen=True)
class Retrained:
    """What a retraining produced: the harvested batch (if any), the challenger and the gate's decision."""

    challenger_version: str
    promotion_action: str
    promotion_reason: str
    harvested_batch: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainOutcome:
    """What `pricewise retrain` decided and did."""

    due: bool
    reasons: tuple[Rule, ...]
    monitoring_run_id: str | None
    action: RetrainAction
    message: str
    harvested_batch: str | None = None
    challenger_version: str | None = None
    promotion_action: str | None = None
    promotion_reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary `pricewise retrain --json` prints."""
        out = asdict(self)
        out["reasons"] = [asdict(r) for r in self.reasons]
        return out

    def as_row(self, decided_at: datetime) -> decisions.RetrainDecision:
        """The row of the decision table."""
        return decisions.RetrainDecision(
            decided_at=decided_at,
            monitoring_run_id=self.monitoring_run_id,
            due=self.due,
            reasons=[asdict(r) for r in self.reasons],
            action=self.action,
            challenger_version=self.challenger_version,
            promotion_action=self.promotion_action,
            message=self.message,
        )


def judge(
    policy: RetrainConfig,
    monitor_policy: MonitorConfig,
    best: Champion | None,
    run: MonitoringRun | None,
    now: datetime,
) -> list[Rule]:
    """Judge every rule of the policy on the champion and the latest monitoring run that compared something.

    Args:
        policy: The retrain section of the config.
        monitor_policy: The monitor section (how many sold prices accuracy needs).
        best: The champion, None when there is none.
        run: The latest compared monitoring run, None when there is none.
        now: The time the champion's age is measured at.
    """
    rules: list[Rule] = []
    if best is None:
        rules.append(Rule("no_champion", None, None, True, "no champion yet: a first model is needed"))
    if run is None or run.drift_share is None:
        rules.append(
            Rule("drift", None, policy.drift_share, False, "no monitoring run compared any data yet")
        )
    else:
        share = float(run.drift_share)
        rules.append(
            Rule(
                "drift",
                share,
                policy.drift_share,
                share >= policy.drift_share,
                f"{share:.0%} of input columns drifted in run {run.run_id}",
            )
        )
    needed = monitor_policy.min_feedback_rows
    if run is None or run.feedback_rows < needed or run.rmsle is None:
        have = run.feedback_rows if run else 0
        rules.append(
            Rule(
                "accuracy",
                None,
                policy.rmsle_margin,
                False,
                f"{have} trusted sold prices, {needed} needed to judge accuracy",
            )
        )
    elif best is None or best.offline_rmsle is None:
        rules.append(Rule("accuracy", None, policy.rmsle_margin, False, "no offline RMSLE of a champion"))
    else:
        excess = float(run.rmsle) - best.offline_rmsle
        rules.append(
            Rule(
                "accuracy",
                excess,
                policy.rmsle_margin,
                excess > policy.rmsle_margin,
                f"RMSLE {run.rmsle:.4f} on {run.feedback_rows} sold prices vs the champion's "
                f"offline {best.offline_rmsle:.4f}",
            )
        )
    if policy.on_target_drift:
        drifted = run is not None and bool(run.target_drift)
        detail = (
            "no sold prices compared yet"
            if run is None or run.target_drift is None
            else f"sold prices {'drifted' if drifted else 'did not drift'} from the training prices "
            f"in run {run.run_id}"
        )
        rules.append(Rule("target_drift", float(drifted), None, drifted, detail))
    if best is not None:
        age = (now - best.created_at).total_seconds() / 86400
        rules.append(
            Rule(
                "age",
                age,
                policy.max_age_days,
                age > policy.max_age_days,
                f"champion {best.name} v{best.version} trained {age:.1f} days ago",
            )
        )
    return rules


def decide(config: Config, settings: Settings, now: datetime | None = None) -> tuple[list[Rule], str | None]:
    """Judge every rule of the policy on the registry's champion and the decision tables' latest run.

    Returns:
        The judged rules and the id of the monitoring run they used (None when there is none).

    Raises:
        PricewiseError: MLflow or the decision tables cannot be read.
    """
    best = champion(config, settings)
    store = decisions.open_batch_store(settings)
    try:
        run = store.latest_compared_run()
    finally:
        store.close()
    rules = judge(config.retrain, config.monitor, best, run, now or datetime.now(UTC))
    return rules, run.run_id if run else None


def record(settings: Settings, outcome: RetrainOutcome) -> None:
    """Record the decision in the decision tables.

    Raises:
        PricewiseError: The decision tables cannot be written.
    """
    store = decisions.open_batch_store(settings)
    try:
        store.record(outcome.as_row(datetime.now(UTC)))
    finally:
        store.close()


def run(config: Config, settings: Settings, mode: Mode) -> RetrainOutcome:
    """Decide and, when due (or forced), retrain and run the promotion gate; record the decision.

    Args:
        config: Stage parameters (retrain holds the policy).
        settings: Where the warehouse, the prediction log, the decision tables and the MLflow store are.
        mode: 'check' decides only; 'if-needed' retrains when a rule triggers; 'force' retrains regardless.

    Raises:
        PricewiseError: Training or the gate failed; the champion is unchanged and the failure is recorded.
    """
    rules, run_id = decide(config, settings)
    triggered = [r for r in rules if r.triggered]
    due = bool(triggered)
    why = "; ".join(r.detail for r in triggered) or "no rule triggered"
    if mode == "check" or (mode == "if-needed" and not due):
        outcome = RetrainOutcome(
            due,
            tuple(rules),
            run_id,
            "check" if mode == "check" else "none",
            f"retraining {'due' if due else 'not due'}: {why}",
        )
        record(settings, outcome)
        return outcome
    if mode == "force" and not due:
        why = "forced by the operator"
    try:
        retrained = _retrain(config, settings)
    except Exception as exc:
        failed = RetrainOutcome(
            due,
            tuple(rules),
            run_id,
            "failed",
            f"retraining ({why}) failed, the champion is unchanged: {exc}",
        )
        record(settings, failed)
        if isinstance(exc, PricewiseError):
            raise PricewiseError(failed.message) from exc
        raise
    harvested = ""
    if retrained.harvested_batch is not None:
        status = retrained.figures.get("harvested_batch_status")
        harvested = (
            f"; {retrained.figures.get('harvested_rows')} sold listings from trusted outcomes in batch "
            f"{retrained.harvested_batch} (validation {status}"
            + (", left out of training)" if status == "fail" else ")")
        )
    outcome = RetrainOutcome(
        due,
        tuple(rules),
        run_id,
        "trained",
        f"retrained ({why}): challenger v{retrained.challenger_version}, gate: {retrained.promotion_action} "
        f"({retrained.promotion_reason}){harvested}",
        harvested_batch=retrained.harvested_batch,
        challenger_version=retrained.challenger_version,
        promotion_action=retrained.promotion_action,
        promotion_reason=retrained.promotion_reason,
        figures=retrained.figures,
    )
    record(settings, outcome)
    return outcome


def _retrain(config: Config, settings: Settings) -> Retrained:
    figures: dict[str, Any] = {}
    harvested_batch = None
    if config.retrain.harvest_feedback:
        harvested = harvest.run(config, settings)
        if harvested.batch_id is not None:
            checked = validate.run(config, settings, harvested.batch_id)
            status = checked.batches[0].status if checked.batches else "unknown"
            harvested_batch = harvested.batch_id
            figures["harvested_rows"] = harvested.harvested
            figures["harvested_batch_status"] = status
            figures["harvested_sources"] = harvested.sources
            for check in checked.batches[0].checks if checked.batches else ():
                if check.name in ("segment_shift", "mean_log_price_z"):
                    figures[f"harvested_{check.name}"] = {"status": check.status, "detail": check.detail}
            logger.info(
                "feedback: %d sold listings in batch %s, validation %s",
                harvested.harvested,
                harvested.batch_id,
                status,
            )
    result = train.run(config, settings)
    figures["challenger_test_rmsle"] = result.main.metrics["rmsle"]
    decision = promote.run(config, settings)
    figures["gate"] = {k: v for k, v in decision.figures.items() if k != "behaviour"}
    return Retrained(
        challenger_version=result.main.version,
        promotion_action=decision.action,
        promotion_reason=decision.reason,
        harvested_batch=harvested_batch,
        figures=figures,
    )

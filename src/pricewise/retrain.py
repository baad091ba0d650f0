"""The latest monitoring figures and the champion's age in; a retraining decision, and a gated challenger, out.

The policy (config section ``retrain``) retrains when any rule triggers:
- drift: the share of drifted input columns in the latest monitoring run reaches ``drift_share``;
- accuracy: RMSLE against sold prices exceeds the champion's offline test RMSLE by more than ``rmsle_margin``
  (judged only with at least ``monitor.min_feedback_rows`` sold prices);
- target drift: sold prices fed back drifted from the training prices (``on_target_drift``);
- age: the champion was trained more than ``max_age_days`` ago;
- no champion at all.

Retraining first turns sold prices from the prediction log into a priced batch (ingested and validated like
any other, so a batch that fails validation never reaches training), trains a challenger on the warehouse's
current training data, and puts it through the promotion gate. Every decision is a row of
``retrain_decisions`` with its reasons and figures; the gate's own decision is in ``promotions``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from pricewise import ingest, monitor, promote, train, validate
from pricewise.columns import PRICED_COLUMNS
from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import warehouse

logger = logging.getLogger(__name__)

Mode = Literal["check", "if-needed", "force"]
Action = Literal["none", "check", "trained", "failed"]

# Listings harvested from feedback get ids from FEEDBACK_ID_BASE up, far above marketplace ids, derived from the
# request id, so harvesting the same suggestion twice gives the same id (skipped, or quarantined as a duplicate).
# Ids stay below 2**53: ingest reads numbers through DOUBLE, which holds integers exactly only up to there.
FEEDBACK_ID_BASE = 8 * 10**15
FEEDBACK_ID_SPAN = 10**15


@dataclass(frozen=True)
class Rule:
    """One rule of the policy, judged."""

    rule: str
    value: float | None
    threshold: float | None
    triggered: bool
    detail: str


@dataclass
class RetrainOutcome:
    """What `pricewise retrain` decided and did."""

    due: bool
    reasons: list[Rule]
    monitoring_run_id: str | None
    action: Action = "check"
    message: str = ""
    harvested_batch: str | None = None
    challenger_version: str | None = None
    promotion_action: str | None = None
    promotion_reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary `pricewise retrain --json` prints."""
        return asdict(self)


def latest_monitoring_run(settings: Settings) -> dict[str, Any] | None:
    """The newest monitoring run that compared something (status 'ok' or 'drift'), or None."""
    try:
        with warehouse.connect(settings, read_only=True) as con:
            row = con.execute(
                "SELECT run_id, created_at, drift_share, feedback_rows, rmsle, coverage, target_drift "
                "FROM monitoring_runs "
                "WHERE status IN ('ok', 'drift') ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
    except PricewiseError:
        return None
    if row is None:
        return None
    keys = ("run_id", "created_at", "drift_share", "feedback_rows", "rmsle", "coverage", "target_drift")
    return dict(zip(keys, row, strict=True))


def decide(config: Config, settings: Settings, now: datetime | None = None) -> tuple[list[Rule], str | None]:
    """Judge every rule of the policy.

    Returns:
        The judged rules and the id of the monitoring run they used (None when there is none).
    """
    policy = config.retrain
    best = monitor.champion(config, settings)
    run = latest_monitoring_run(settings)
    rules: list[Rule] = []
    if best is None:
        rules.append(Rule("no_champion", None, None, True, "no champion yet: a first model is needed"))
    if run is None or run["drift_share"] is None:
        rules.append(
            Rule("drift", None, policy.drift_share, False, "no monitoring run compared any data yet")
        )
    else:
        share = float(run["drift_share"])
        rules.append(
            Rule(
                "drift",
                share,
                policy.drift_share,
                share >= policy.drift_share,
                f"{share:.0%} of input columns drifted in run {run['run_id']}",
            )
        )
    enough = run is not None and int(run["feedback_rows"]) >= config.monitor.min_feedback_rows
    if run is None or not enough or run["rmsle"] is None:
        have = int(run["feedback_rows"]) if run else 0
        rules.append(
            Rule(
                "accuracy",
                None,
                policy.rmsle_margin,
                False,
                f"{have} sold prices fed back, {config.monitor.min_feedback_rows} needed to judge accuracy",
            )
        )
    elif best is None or best.offline_rmsle is None:
        rules.append(Rule("accuracy", None, policy.rmsle_margin, False, "no offline RMSLE of a champion"))
    else:
        excess = float(run["rmsle"]) - best.offline_rmsle
        rules.append(
            Rule(
                "accuracy",
                excess,
                policy.rmsle_margin,
                excess > policy.rmsle_margin,
                f"RMSLE {float(run['rmsle']):.4f} on {run['feedback_rows']} sold prices vs the champion's "
                f"offline {best.offline_rmsle:.4f}",
            )
        )
    if policy.on_target_drift:
        drifted = run is not None and bool(run["target_drift"])
        detail = (
            "no sold prices compared yet"
            if run is None or run["target_drift"] is None
            else f"sold prices {'drifted' if drifted else 'did not drift'} from the training prices "
            f"in run {run['run_id']}"
        )
        rules.append(Rule("target_drift", float(drifted), None, drifted, detail))
    if best is not None:
        age = ((now or datetime.now(UTC)) - best.created_at).total_seconds() / 86400
        rules.append(
            Rule(
                "age",
                age,
                policy.max_age_days,
                age > policy.max_age_days,
                f"champion {best.name} v{best.version} trained {age:.1f} days ago",
            )
        )
    return rules, run["run_id"] if run else None


def harvest_feedback(config: Config, settings: Settings) -> tuple[Path, int] | None:
    """Write suggestions with a sold price, not harvested before, as a priced listings file.

    Returns:
        The file (under <data_dir>/feedback) and its row count, or None when there is nothing new.
    """
    log = monitor.prediction_log(settings)
    p = log.predictions
    sold_prices = monitor.latest_sold_prices(log)
    query = select(p.c.request_id, p.c.inputs, sold_prices.c.sold_price).join(
        sold_prices, sold_prices.c.request_id == p.c.request_id
    )
    try:
        with log.engine.connect() as connection:
            sold = connection.execute(query).fetchall()
    finally:
        log.engine.dispose()
    if not sold:
        return None
    with warehouse.connect(settings, read_only=True) as con:
        seen = {
            int(r[0])
            for r in con.execute(
                "SELECT source_id FROM listings WHERE source_id >= ? UNION "
                "SELECT TRY_CAST(source_id AS HUGEINT) FROM rejects WHERE TRY_CAST(source_id AS HUGEINT) >= ?",
                [FEEDBACK_ID_BASE, FEEDBACK_ID_BASE],
            ).fetchall()
            if r[0] is not None
        }
    rows = []
    for request_id, inputs, sold_price in sold:
        digest = hashlib.md5(str(request_id).encode(), usedforsecurity=False).hexdigest()
        listing_id = FEEDBACK_ID_BASE + int(digest, 16) % FEEDBACK_ID_SPAN
        if listing_id in seen:
            continue
        fields = inputs if isinstance(inputs, dict) else json.loads(inputs)
        rows.append(
            {
                "train_id": listing_id,
                "name": fields.get("name") or "",
                "item_condition_id": fields.get("item_condition_id"),
                "category_name": fields.get("category_name") or "",
                "brand_name": fields.get("brand_name") or "",
                "price": sold_price,
                "shipping": fields.get("shipping"),
                "item_description": fields.get("item_description") or "",
            }
        )
    if not rows:
        return None
    directory = settings.data_dir / "feedback"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"feedback-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.tsv.gz"
    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=list(PRICED_COLUMNS),
            delimiter="\t",
            lineterminator="\n",
            quoting=csv.QUOTE_NONE,
            escapechar="\\",
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _one_line(v) for k, v in row.items()})
    partial.replace(path)
    return path, len(rows)


def harvest_and_ingest(config: Config, settings: Settings) -> tuple[str, int] | None:
    """Harvest new sold prices into a file and ingest it as a priced batch (validation is the next step).

    Returns:
        The new batch id and its rows, or None when no new sold price was fed back.
    """
    harvested = harvest_feedback(config, settings)
    if harvested is None:
        return None
    path, rows = harvested
    return ingest.run(config, settings, [path]).batches[0].batch_id, rows


def _one_line(value: Any) -> Any:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ") if isinstance(value, str) else value


def record(settings: Settings, outcome: RetrainOutcome) -> None:
    """Insert the decision into ``retrain_decisions``."""
    with warehouse.connect(settings) as con, warehouse.transaction(con):
        con.execute(
            "INSERT INTO retrain_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                datetime.now(UTC).replace(tzinfo=None),
                outcome.monitoring_run_id,
                outcome.due,
                json.dumps([asdict(r) for r in outcome.reasons]),
                outcome.action,
                outcome.challenger_version,
                outcome.promotion_action,
                outcome.message,
            ],
        )


def run(config: Config, settings: Settings, mode: Mode) -> RetrainOutcome:
    """Decide and, when due (or forced), retrain and run the promotion gate; record the decision.

    Args:
        config: Stage parameters (retrain holds the policy).
        settings: Where the warehouse, the prediction log and the MLflow store are.
        mode: 'check' decides only; 'if-needed' retrains when a rule triggers; 'force' retrains regardless.

    Raises:
        PricewiseError: Training or the gate failed; the champion is unchanged and the failure is recorded.
    """
    rules, run_id = decide(config, settings)
    triggered = [r for r in rules if r.triggered]
    outcome = RetrainOutcome(due=bool(triggered), reasons=rules, monitoring_run_id=run_id)
    why = "; ".join(r.detail for r in triggered) or "no rule triggered"
    if mode == "check" or (mode == "if-needed" and not outcome.due):
        outcome.action = "check" if mode == "check" else "none"
        outcome.message = f"retraining {'due' if outcome.due else 'not due'}: {why}"
        record(settings, outcome)
        return outcome
    if mode == "force" and not outcome.due:
        why = "forced by the operator"
    try:
        _retrain(config, settings, outcome)
    except Exception as exc:
        outcome.action = "failed"
        outcome.message = f"retraining ({why}) failed, the champion is unchanged: {exc}"
        record(settings, outcome)
        if isinstance(exc, PricewiseError):
            raise PricewiseError(outcome.message) from exc
        raise
    outcome.action = "trained"
    harvested = ""
    if outcome.harvested_batch is not None:
        status = outcome.figures.get("harvested_batch_status")
        harvested = (
            f"; {outcome.figures.get('harvested_rows')} sold listings from feedback in batch "
            f"{outcome.harvested_batch} (validation {status}"
            + (", left out of training)" if status == "fail" else ")")
        )
    outcome.message = (
        f"retrained ({why}): challenger v{outcome.challenger_version}, gate: {outcome.promotion_action} "
        f"({outcome.promotion_reason}){harvested}"
    )
    record(settings, outcome)
    return outcome


def _retrain(config: Config, settings: Settings, outcome: RetrainOutcome) -> None:
    if config.retrain.harvest_feedback:
        harvested = harvest_and_ingest(config, settings)
        if harvested is not None:
            batch_id, rows = harvested
            checked = validate.run(config, settings, batch_id)
            status = checked.batches[0].status if checked.batches else "unknown"
            outcome.harvested_batch = batch_id
            outcome.figures["harvested_rows"] = rows
            outcome.figures["harvested_batch_status"] = status
            logger.info("feedback: %d sold listings in batch %s, validation %s", rows, batch_id, status)
    result = train.run(config, settings)
    outcome.challenger_version = result.main.version
    outcome.figures["challenger_test_rmsle"] = result.main.metrics["rmsle"]
    decision = promote.run(config, settings)
    outcome.promotion_action = decision.action
    outcome.promotion_reason = decision.reason

"""The champion's training data and a current window in; Evidently drift and accuracy reports and a recorded
monitoring run out.

The current window is either the prediction log over a period (what sellers asked for, what was suggested and,
where feedback came back, what the item sold for) or one ingested batch (scored by the champion here). What is
compared, and how drift is decided, is in `pricewise.monitoring.drift`; the accuracy figures (RMSLE, range
coverage, on every suggestion in the window that has a sold price) come from `pricewise.monitoring.figures`,
which the server's monitoring page uses too.

Each side handed to Evidently holds at most ``monitor.max_rows`` rows: larger sides are sampled uniformly at
random with a fixed seed (DuckDB's reservoir sample for the reference, numpy for the window). Every run, also an
empty or failed one, is a `decisions.MonitoringRun` in the decision tables.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from pricewise.columns import FEATURE_COLUMNS
from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.models.suggester import PriceSuggester
from pricewise.monitoring import drift, figures, loss_estimate
from pricewise.monitoring.windows import ComparedWindow, champion, load_reference, load_window
from pricewise.progress import Progress
from pricewise.settings import Settings
from pricewise.store import decisions, registry
from pricewise.store.decisions import MonitorStatus

logger = logging.getLogger(__name__)

# A run's steps, in order, for its progress lines.
STEPS = ("load", "accuracy", "drift", "report")


@dataclass(frozen=True)
class MonitorResult:
    """One monitoring run's summary, as recorded in the decision table ``monitoring_runs``."""

    run_id: str
    created_at: datetime
    window: ComparedWindow
    status: MonitorStatus
    message: str
    model_version: str | None = None
    reference_rows: int = 0
    current_rows: int = 0
    compared_rows: int = 0
    drift_share: float | None = None
    drifted_columns: tuple[str, ...] = ()
    prediction_drift: bool | None = None
    target_drift: bool | None = None
    feedback_rows: int = 0
    rmsle: float | None = None
    coverage: float | None = None
    # Direct loss estimation: the window's RMSLE estimated without sold prices, with a ~95% interval.
    estimated_rmsle: float | None = None
    estimated_rmsle_low: float | None = None
    estimated_rmsle_high: float | None = None
    report_html: str | None = None
    report_json: str | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary `pricewise monitor --json` prints."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["drifted_columns"] = list(self.drifted_columns)
        out["window"] = {
            "kind": self.window.kind,
            "start": self.window.start.isoformat() if self.window.start else None,
            "end": self.window.end.isoformat() if self.window.end else None,
            "batch_id": self.window.batch_id,
        }
        return out

    def as_row(self) -> decisions.MonitoringRun:
        """The row of the decision table."""
        return decisions.MonitoringRun(
            run_id=self.run_id,
            created_at=self.created_at,
            window_kind=self.window.kind,
            window_start=self.window.start.astimezone(UTC) if self.window.start else None,
            window_end=self.window.end.astimezone(UTC) if self.window.end else None,
            batch_id=self.window.batch_id,
            model_version=self.model_version,
            status=self.status,
            reference_rows=self.reference_rows,
            current_rows=self.current_rows,
            compared_rows=self.compared_rows,
            drift_share=self.drift_share,
            drifted_columns=list(self.drifted_columns),
            prediction_drift=self.prediction_drift,
            target_drift=self.target_drift,
            feedback_rows=self.feedback_rows,
            rmsle=self.rmsle,
            coverage=self.coverage,
            message=self.message,
            report_html=self.report_html,
            report_json=self.report_json,
            estimated_rmsle=self.estimated_rmsle,
            estimated_rmsle_low=self.estimated_rmsle_low,
            estimated_rmsle_high=self.estimated_rmsle_high,
        )


def record(settings: Settings, result: MonitorResult) -> None:
    """Record the run in the decision tables.

    Raises:
        PricewiseError: The decision tables cannot be written.
    """
    store = decisions.open_batch_store(settings)
    try:
        store.record(result.as_row())
    finally:
        store.close()


def _reports_dir(settings: Settings, run_id: str) -> Path:
    directory = (settings.reports / "monitoring" / run_id).resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise PricewiseError(
            f"cannot write monitoring reports to {directory}: {exc.strerror or exc} "
            "(set PRICEWISE_REPORTS_DIR to a writable directory)"
        ) from exc
    return directory


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    rows = np.random.default_rng(seed).choice(len(frame), size=n, replace=False)
    return frame.iloc[np.sort(rows)].reset_index(drop=True)


def load_loss_model(run_id: str) -> loss_estimate.LossModel | None:
    """The loss model logged with a model's run; None for a model trained before there was one.

    Raises:
        PricewiseError: The artifact is there but is not a loss model.
    """
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{loss_estimate.ARTIFACT}")
    except (MlflowException, OSError):
        logger.info("run %s has no %s: no RMSLE estimate", run_id, loss_estimate.ARTIFACT)
        return None
    try:
        return loss_estimate.LossModel.from_json(text)
    except ValueError as exc:
        raise PricewiseError(f"run {run_id}'s {loss_estimate.ARTIFACT} is unreadable: {exc}") from exc


def estimate_rmsle(
    loss_model: loss_estimate.LossModel | None, rows: pd.DataFrame
) -> loss_estimate.RmsleEstimate | None:
    """The window's estimated RMSLE over its rows with a suggested price (None without a loss model or rows)."""
    if loss_model is None or "price" not in rows:
        return None
    priced = rows[rows["price"].notna() & rows["low"].notna() & rows["high"].notna()]
    return loss_model.estimate(
        priced,
        priced["price"].to_numpy(float),
        priced["low"].to_numpy(float),
        priced["high"].to_numpy(float),
    )


def _score(suggester: PriceSuggester, frame: pd.DataFrame) -> pd.DataFrame:
    return suggester.suggest(frame[list(FEATURE_COLUMNS)])


def run(config: Config, settings: Settings, window: ComparedWindow) -> MonitorResult:
    """Compare the window with the champion's training data; save the reports and record the run.

    An empty window is not an error: the run is recorded with status 'empty' ("nothing to compare").

    Raises:
        PricewiseError: The reference has no rows, the report directory is not writable, the batch is
            unknown, or Evidently fails; the run is recorded with status 'error' and the message first.
    """
    created_at = datetime.now(UTC)
    run_id = f"{created_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    try:
        result = _compare(config, settings, window, run_id, created_at)
    except PricewiseError as exc:
        _record_quietly(settings, MonitorResult(run_id, created_at, window, "error", str(exc)))
        raise
    except Exception as exc:  # Evidently or pandas failing on odd data: recorded, then reported clearly
        logger.exception("monitoring run %s failed", run_id)
        message = f"monitoring failed: {type(exc).__name__}: {exc}"
        _record_quietly(settings, MonitorResult(run_id, created_at, window, "error", message))
        raise PricewiseError(message) from exc
    record(settings, result)
    return result


def _record_quietly(settings: Settings, result: MonitorResult) -> None:
    try:
        record(settings, result)
    except PricewiseError as exc:  # the run's own error is what the caller reports: this one gets a line
        logger.warning("could not record failed monitoring run %s: %s", result.run_id, exc)


def _compare(
    config: Config, settings: Settings, window: ComparedWindow, run_id: str, created_at: datetime
) -> MonitorResult:
    cfg = config.monitor
    directory = _reports_dir(settings, run_id)
    progress = Progress("monitor", total=len(STEPS), unit="steps")
    progress.step(STEPS[0], done=0)
    best = champion(config, settings)
    reference, reference_rows = load_reference(config, settings, best)
    if reference_rows == 0:
        whose = f"{best.name} v{best.version}'s training batches" if best else "the warehouse"
        raise PricewiseError(f"the reference has no rows: no training listings in {whose}")
    current = load_window(settings, window)
    model_version = best.version if best else None
    if len(current) < cfg.min_rows:
        summary_path = directory / "summary.json"
        empty = MonitorResult(
            run_id,
            created_at,
            window,
            "empty",
            f"nothing to compare: {len(current)} rows in {window.describe()} (monitor.min_rows is {cfg.min_rows})",
            model_version=model_version,
            reference_rows=reference_rows,
            current_rows=len(current),
            report_json=str(summary_path),
        )
        _write_atomic(summary_path, json.dumps({"run": empty.summary()}, indent=2, default=str))
        progress.finish("nothing to compare, done")
        return empty

    suggester = registry.load_suggester(f"models:/{best.name}/{best.version}") if best else None
    sample = _sample(current, cfg.max_rows, cfg.seed)
    judged = current
    progress.step(STEPS[1], done=1)
    if window.kind == "batch" and suggester is not None:
        scored = _score(suggester, sample)
        sample[["price", "low", "high"]] = scored[["price", "low", "high"]].to_numpy()
        judged = sample  # a batch is scored here, so its accuracy is judged on the sample
    accuracy = figures.accuracy(judged)
    estimate = estimate_rmsle(load_loss_model(best.run_id) if best else None, judged)

    progress.step(STEPS[2], done=2)
    # The vocabulary comes from one half of the reference and the reference side is the other half, so the
    # reference's vocabulary share is measured out of sample, as the window's is.
    vocabulary_half, reference = reference.iloc[0::2], reference.iloc[1::2].reset_index(drop=True)
    known_words = drift.vocabulary(vocabulary_half["name"], cfg.vocabulary_min_count)
    ref = drift.describe(reference, known_words)
    cur = drift.describe(sample, known_words)
    with_prediction = suggester is not None and "price" in sample and bool(sample["price"].notna().any())
    if with_prediction and suggester is not None:
        ref[drift.PREDICTION] = np.log1p(_score(suggester, reference)["price"].to_numpy(float))
        cur[drift.PREDICTION] = np.log1p(sample["price"].to_numpy(float))
    with_target = int(sample["sold_price"].notna().sum()) >= cfg.min_feedback_rows
    if with_target:
        ref[drift.TARGET] = np.log1p(reference["price"].to_numpy(float))
        cur[drift.TARGET] = np.log1p(sample["sold_price"].to_numpy(float))

    report = drift.evidently_report(ref, cur, with_prediction, with_target)
    drifted = report.drifted()
    compared_inputs = [c for c in drift.INPUT_COLUMNS if c in drifted]
    drifted_columns = tuple(c for c in drift.INPUT_COLUMNS if drifted.get(c))
    drift_share = len(drifted_columns) / len(compared_inputs) if compared_inputs else None
    prediction_drift = drifted.get(drift.PREDICTION) if with_prediction else None
    target_drift = drifted.get(drift.TARGET) if with_target else None

    flagged = [
        *drifted_columns,
        *(["prediction"] if prediction_drift else []),
        *(["target"] if target_drift else []),
    ]
    dataset_drift = drift_share is not None and drift_share >= config.retrain.drift_share
    status: MonitorStatus = "drift" if dataset_drift or prediction_drift or target_drift else "ok"
    judged_accuracy = (
        f"; RMSLE {accuracy.rmsle:.4f}, coverage {accuracy.coverage:.3f} on {accuracy.sold} sold prices"
        if accuracy.rmsle is not None and accuracy.coverage is not None
        else "; no sold prices fed back"
    )
    if estimate is not None:
        judged_accuracy += (
            f"; estimated RMSLE {estimate.rmsle:.4f} [{estimate.low:.4f}, {estimate.high:.4f}] "
            f"on {estimate.rows} suggestions"
        )
    sampled = f" (sampled to {cfg.max_rows})" if len(current) > cfg.max_rows else ""
    html_path, json_path = directory / "report.html", directory / "report.json"
    result = MonitorResult(
        run_id,
        created_at,
        window,
        status,
        f"{window.describe()}: {len(current)} rows{sampled} against {reference_rows} reference rows; "
        f"drifted: {', '.join(flagged) or 'none'}{judged_accuracy}",
        model_version=model_version,
        reference_rows=reference_rows,
        current_rows=len(current),
        compared_rows=len(sample),
        drift_share=drift_share,
        drifted_columns=drifted_columns,
        prediction_drift=prediction_drift,
        target_drift=target_drift,
        feedback_rows=accuracy.sold,
        rmsle=accuracy.rmsle,
        coverage=accuracy.coverage,
        estimated_rmsle=estimate.rmsle if estimate else None,
        estimated_rmsle_low=estimate.low if estimate else None,
        estimated_rmsle_high=estimate.high if estimate else None,
        report_html=str(html_path),
        report_json=str(json_path),
    )
    progress.step(STEPS[3], done=3)
    partial = html_path.with_name("report.html.partial")
    report.snapshot.save_html(str(partial))
    partial.replace(html_path)
    _write_atomic(
        json_path, json.dumps({"run": result.summary(), "evidently": report.json}, indent=1, default=str)
    )
    progress.finish()
    return result

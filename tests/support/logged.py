"""Small listing tables in; a validated warehouse of them, a prediction log with suggestions and sold prices, and
monitoring runs as `pricewise monitor` records them, out, for the monitoring, harvest and retraining tests that
need real stores but no trained model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pricewise.columns import FEATURE_COLUMNS, PRICED_COLUMNS
from pricewise.settings import Settings
from pricewise.store.decisions import MonitoringRun, RetrainDecision
from pricewise.store.prediction_log import LoggedSuggestion, Outcome, PredictionLog, default_url
from tests.support.workspaces import Workspace, light_config_text, listing_row, write_table


def small_workspace(root: Path, rows: int = 400, config_text: str | None = None) -> Workspace:
    """A workspace whose warehouse holds `rows` generated priced listings, ingested and validated."""
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "pricewise.yaml"
    config_path.write_text(config_text or light_config_text(), encoding="utf-8")
    ws = Workspace(Settings(data_dir=root / "data", config_path=config_path), config_path)
    listings = write_table(root / "listings.tsv", [listing_row(i) for i in range(1, rows + 1)])
    for command in (("ingest", str(listings)), ("validate",)):
        result = ws.cli(*command)
        assert result.exit_code == 0, result.output
    return ws


def listing(i: int) -> dict[str, object]:
    """The seller's fields of generated listing i, as a request carries them."""
    row = dict(zip(PRICED_COLUMNS, listing_row(i), strict=True))
    return {column: row[column] for column in FEATURE_COLUMNS}


def log_suggestions(
    settings: Settings,
    ids: Sequence[int],
    price: float = 12.0,
    sold: dict[int, Sequence[float]] | None = None,
    model_version: str = "1",
) -> list[str]:
    """Log one suggestion per listing id (price, range price/1.5..price*1.5) and, for some of them, a trusted
    outcome: the last of the sold prices given for it.

    Returns:
        The request ids, in the order of `ids`.
    """
    log = PredictionLog(default_url(settings))
    try:
        rows = [
            LoggedSuggestion(
                request_id=f"req-{i}",
                batch_id=None,
                model_name="pricewise",
                model_version=model_version,
                model_run_id="run-1",
                fallback=False,
                inputs=listing(i),
                outputs={"price": price, "low": price / 1.5, "high": price * 1.5, "coverage": 0.8},
                latency_ms=3.0,
            )
            for i in ids
        ]
        log.record_suggestions(rows)
        outcomes = [Outcome(f"req-{i}", prices[-1]) for i, prices in (sold or {}).items() if prices]
        if outcomes:
            assert not log.record_outcomes(outcomes, source="test").refused
    finally:
        log.close()
    return [f"req-{i}" for i in ids]


def monitoring_run(run_id: str, created_at: datetime, **values: object) -> MonitoringRun:
    """A calm monitoring run over the 24 hours before `created_at` (no drift, no sold prices); `values` override."""
    row: dict[str, object] = {
        "run_id": run_id,
        "created_at": created_at,
        "window_kind": "predictions",
        "window_start": created_at - timedelta(hours=24),
        "window_end": created_at,
        "batch_id": None,
        "model_version": "1",
        "status": "ok",
        "reference_rows": 100,
        "current_rows": 40,
        "compared_rows": 40,
        "drift_share": 0.0,
        "drifted_columns": [],
        "prediction_drift": False,
        "target_drift": None,
        "feedback_rows": 0,
        "rmsle": None,
        "coverage": None,
        "message": "no drift",
        "report_html": None,
        "report_json": None,
        **values,
    }
    return MonitoringRun(**row)  # type: ignore[arg-type]


def retrain_decision(decided_at: datetime, detail: str = "x") -> RetrainDecision:
    """A retraining decision that was due on monitoring run r1 (drift over its threshold) and only checked."""
    return RetrainDecision(
        decided_at=decided_at,
        monitoring_run_id="r1",
        due=True,
        reasons=[{"rule": "drift", "value": 0.25, "threshold": 0.2, "triggered": True, "detail": detail}],
        action="check",
        challenger_version=None,
        promotion_action=None,
        message="retraining due",
    )

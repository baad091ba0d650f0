"""A window and the champion in; the rows monitoring compares out: the champion's training sample (reference) and
the window's rows (suggestions logged over a period, or one ingested batch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import registry, tracking, training_data, warehouse
from pricewise.store.decisions import WindowKind
from pricewise.store.prediction_log import PredictionLog, default_url


@dataclass(frozen=True)
class ComparedWindow:
    """What is compared with the reference: the prediction log over [start, end), or one ingested batch."""

    kind: WindowKind
    start: datetime | None = None
    end: datetime | None = None
    batch_id: str | None = None

    @classmethod
    def last_hours(cls, hours: float, now: datetime | None = None) -> ComparedWindow:
        """The prediction log over the last `hours` hours."""
        end = now or datetime.now(UTC)
        return cls("predictions", start=end - timedelta(hours=hours), end=end)

    @classmethod
    def of_batch(cls, batch_id: str) -> ComparedWindow:
        """One ingested batch."""
        return cls("batch", batch_id=batch_id)

    def describe(self) -> str:
        """The window in words, for messages."""
        if self.kind == "batch":
            return f"batch {self.batch_id}"
        start = self.start.isoformat(timespec="seconds") if self.start else "the beginning"
        end = self.end.isoformat(timespec="seconds") if self.end else "now"
        return f"suggestions logged from {start} to {end}"


@dataclass(frozen=True)
class Champion:
    """The registered model the window is judged against."""

    name: str
    version: str
    run_id: str
    batch_ids: tuple[str, ...]
    offline_rmsle: float | None
    created_at: datetime


def champion(config: Config, settings: Settings) -> Champion | None:
    """The model the champion alias points at, with the batches it was trained on (None before a promotion).

    Raises:
        PricewiseError: MLflow is unreachable or its registry answers with an error.
    """
    tracking.configure(settings)
    client = MlflowClient()
    name = config.train.registered_model
    version = registry.version_by_alias(client, name, registry.CHAMPION)
    if version is None:
        return None
    try:
        model_version = client.get_model_version(name, version)
        run = client.get_run(str(model_version.run_id))
        parent_id = run.data.tags.get("mlflow.parentRunId")
        tags = client.get_run(parent_id).data.tags if parent_id else run.data.tags
    except MlflowException as exc:
        raise PricewiseError(f"cannot read {name} v{version} from the registry: {exc.message}") from exc
    batches = tuple(b for b in tags.get("pricewise.batches", "").split(",") if b)
    rmsle = run.data.metrics.get("test_rmsle")
    created = datetime.fromtimestamp(int(model_version.creation_timestamp) / 1000, tz=UTC)
    return Champion(name, version, str(model_version.run_id), batches, rmsle, created)


def load_reference(config: Config, settings: Settings, best: Champion | None) -> tuple[pd.DataFrame, int]:
    """The training split of the champion's batches (all usable training listings when there is no champion).

    Returns:
        A sample of at most ``monitor.max_rows`` rows (feature columns and price) and the number of rows sampled
        from.
    """
    return training_data.reference_sample(
        settings, best.batch_ids if best else None, config.monitor.max_rows, config.monitor.seed
    )


def prediction_log(settings: Settings) -> PredictionLog:
    """The prediction log the server writes, opened by a batch command."""
    return PredictionLog(default_url(settings), synchronous="NORMAL")


def load_window(settings: Settings, window: ComparedWindow) -> pd.DataFrame:
    """The window's rows: logged suggestions (inputs, outputs, latest sold price) or a batch's listings.

    Raises:
        PricewiseError: The batch is unknown, or a store cannot be opened.
    """
    if window.kind == "batch":
        return warehouse.batch_listings(settings, str(window.batch_id))
    log = prediction_log(settings)
    try:
        return log.suggestions_between(window.start, window.end)
    finally:
        log.close()

"""The champion's training data and a current window in; Evidently drift and accuracy reports and a summary row out.

The current window is either the prediction log over a period (what sellers asked for, what was suggested and,
where feedback came back, what the item sold for) or one ingested batch (scored by the champion here).

Compared columns:
- inputs: condition, shipping, top-level category, brand presence, and text descriptors computed here (name
  length in characters and words, description length, and the share of the name's words that are in the
  reference vocabulary);
- prediction: the suggested log price (the champion scores the reference sample for its side);
- target: log1p of the sold price from feedback (or of a priced batch's prices) against the training prices.

Evidently decides drift per column (its defaults pick the test by column type and size) and the share of
drifted input columns. Each side handed to Evidently holds at most ``monitor.max_rows`` rows: larger sides are
sampled uniformly at random with a fixed seed (DuckDB's reservoir sample for the reference, numpy for the
window). Accuracy (RMSLE, range coverage) uses every suggestion in the window that has a sold price.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import func, select

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.models import metrics
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import registry, tracking, warehouse
from pricewise.store.prediction_log import PredictionLog, default_url

logger = logging.getLogger(__name__)

Status = Literal["ok", "drift", "empty", "error"]

CATEGORICAL = ("item_condition_id", "shipping", "category_top", "has_brand")
NUMERICAL = ("name_chars", "name_words", "description_chars", "vocabulary_share")
INPUT_COLUMNS = CATEGORICAL + NUMERICAL
PREDICTION = "predicted_log_price"
TARGET = "log_price"
WORD = r"\w+"
FETCH_ROWS = 50_000


@dataclass(frozen=True)
class Window:
    """What is compared with the reference: the prediction log over [start, end), or one ingested batch."""

    kind: Literal["predictions", "batch"]
    start: datetime | None = None
    end: datetime | None = None
    batch_id: str | None = None

    @classmethod
    def last_hours(cls, hours: float, now: datetime | None = None) -> Window:
        """The prediction log over the last `hours` hours."""
        end = now or datetime.now(UTC)
        return cls("predictions", start=end - timedelta(hours=hours), end=end)

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


@dataclass
class MonitorResult:
    """One monitoring run's summary (also a row of the warehouse table ``monitoring_runs``)."""

    run_id: str
    created_at: datetime
    window: Window
    status: Status = "error"
    message: str = ""
    model_version: str | None = None
    reference_rows: int = 0
    current_rows: int = 0
    compared_rows: int = 0
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    prediction_drift: bool | None = None
    target_drift: bool | None = None
    feedback_rows: int = 0
    rmsle: float | None = None
    coverage: float | None = None
    report_html: str | None = None
    report_json: str | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary `pricewise monitor --json` prints."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["window"] = {
            "kind": self.window.kind,
            "start": self.window.start.isoformat() if self.window.start else None,
            "end": self.window.end.isoformat() if self.window.end else None,
            "batch_id": self.window.batch_id,
        }
        return out


# --- the champion and its training data -------------------------------------------------------------------


def champion(config: Config, settings: Settings) -> Champion | None:
    """The current champion with the batches it was trained on, or None when nothing was promoted yet.

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


def _sample_clause(n: int, seed: int) -> str:
    return f"USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})"


def load_reference(
    config: Config, settings: Settings, batch_ids: tuple[str, ...] | None
) -> tuple[pd.DataFrame, int]:
    """The training split of the champion's batches (all usable training listings when there is no champion).

    Returns:
        A sample of at most ``monitor.max_rows`` rows (feature columns and price) and the number of rows sampled
        from.
    """
    columns = "name, brand_name, category_name, item_condition_id, shipping, item_description, price"
    where = "split = 'train'"
    if batch_ids:
        where += " AND batch_id IN (" + ", ".join(warehouse.sql_literal(b) for b in batch_ids) + ")"
    with warehouse.connect(settings, read_only=True) as con:
        count_row = con.execute(f"SELECT count(*) FROM training_listings WHERE {where}").fetchone()
        total = int(count_row[0]) if count_row else 0
        sample = _sample_clause(config.monitor.max_rows, config.monitor.seed) if total else ""
        frame = con.execute(
            f"SELECT {columns} FROM (SELECT * FROM training_listings WHERE {where}) {sample}"
        ).df()
    return frame, total


# --- the current window -----------------------------------------------------------------------------------


def prediction_log(settings: Settings) -> PredictionLog:
    """The prediction log the server writes, opened for reading."""
    return PredictionLog(default_url(settings), synchronous="NORMAL")


def latest_sold_prices(log: PredictionLog) -> Any:
    """A subquery of (request_id, sold_price): the latest sold price fed back for each suggestion."""
    f = log.feedback
    latest = (
        select(func.max(f.c.id).label("feedback_id"))
        .where(f.c.sold_price.is_not(None))
        .group_by(f.c.request_id)
        .subquery()
    )
    return select(f.c.request_id, f.c.sold_price).join(latest, latest.c.feedback_id == f.c.id).subquery()


def load_predictions(settings: Settings, window: Window) -> pd.DataFrame:
    """Suggestions logged in the window with their inputs, outputs and, where fed back, the latest sold price.

    Text comes back as lengths where only the length is compared, so a window of a million suggestions stays
    small in memory. Rows are read in chunks of 50,000.
    """
    log = prediction_log(settings)
    p = log.predictions
    sold = latest_sold_prices(log)
    conditions = []
    if window.start is not None:
        conditions.append(p.c.created_at >= window.start)
    if window.end is not None:
        conditions.append(p.c.created_at < window.end)
    query = select(
        p.c.request_id,
        p.c.created_at,
        p.c.model_version,
        p.c.inputs["name"].as_string().label("name"),
        p.c.inputs["brand_name"].as_string().label("brand_name"),
        p.c.inputs["category_name"].as_string().label("category_name"),
        p.c.inputs["item_condition_id"].as_integer().label("item_condition_id"),
        p.c.inputs["shipping"].as_integer().label("shipping"),
        func.coalesce(func.length(p.c.inputs["item_description"].as_string()), 0).label("description_chars"),
        p.c.outputs["price"].as_float().label("price"),
        p.c.outputs["low"].as_float().label("low"),
        p.c.outputs["high"].as_float().label("high"),
        sold.c.sold_price,
    ).select_from(p.outerjoin(sold, sold.c.request_id == p.c.request_id))
    for condition in conditions:
        query = query.where(condition)
    chunks: list[pd.DataFrame] = []
    try:
        with log.engine.connect() as connection:
            result = connection.execution_options(yield_per=FETCH_ROWS).execute(query)
            columns = list(result.keys())
            for part in result.partitions():
                chunks.append(pd.DataFrame(part, columns=columns))
    finally:
        log.engine.dispose()
    if not chunks:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(chunks, ignore_index=True)
    for column in ("price", "low", "high", "sold_price"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def load_batch(settings: Settings, batch_id: str) -> pd.DataFrame:
    """The accepted listings of one ingested batch (with their prices when it is a priced batch).

    Raises:
        PricewiseError: No such batch.
    """
    with warehouse.connect(settings, read_only=True) as con:
        known = con.execute("SELECT kind FROM batches WHERE batch_id = ?", [batch_id]).fetchone()
        if known is None:
            raise PricewiseError(f"no batch {batch_id!r} in the warehouse (see `pricewise data status`)")
        return con.execute(
            "SELECT name, brand_name, category_name, item_condition_id, shipping, item_description, "
            "price AS sold_price FROM listings WHERE batch_id = ?",
            [batch_id],
        ).df()


# --- descriptors ------------------------------------------------------------------------------------------


def vocabulary(names: pd.Series, min_count: int) -> set[str]:
    """Lower-cased words found in at least `min_count` of the names."""
    words = names.fillna("").astype(str).str.lower().str.findall(WORD).map(set).explode().dropna()
    counts = words.value_counts()
    return set(counts[counts >= min_count].index.astype(str))


def describe(frame: pd.DataFrame, known_words: set[str]) -> pd.DataFrame:
    """The compared input columns of listings: tabular fields and text descriptors.

    Args:
        frame: Listings with name, brand_name, category_name, item_condition_id, shipping and either
            item_description or description_chars.
        known_words: The reference vocabulary.
    """
    name = frame["name"].fillna("").astype(str)
    words = name.str.lower().str.findall(WORD)
    exploded = words.explode()
    in_vocabulary = exploded.isin(known_words) & exploded.notna()
    word_count = words.str.len().astype(float)
    known = in_vocabulary.groupby(level=0).sum().reindex(frame.index, fill_value=0).astype(float)
    if "description_chars" in frame:
        description_chars = pd.to_numeric(frame["description_chars"], errors="coerce").fillna(0)
    else:
        description_chars = frame["item_description"].fillna("").astype(str).str.len()
    category = frame["category_name"].fillna("").astype(str)
    brand = frame["brand_name"].fillna("").astype(str).str.strip()
    return pd.DataFrame(
        {
            "item_condition_id": frame["item_condition_id"].astype("Int64").astype(str),
            "shipping": frame["shipping"].astype("Int64").astype(str),
            "category_top": category.str.split("/", n=1).str[0].replace("", "(none)"),
            "has_brand": np.where(brand != "", "yes", "no"),
            "name_chars": name.str.len().astype(float),
            "name_words": word_count,
            "description_chars": description_chars.astype(float),
            "vocabulary_share": (known / word_count.where(word_count > 0)).fillna(0.0),
        },
        index=frame.index,
    )


# --- Evidently --------------------------------------------------------------------------------------------


def evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, with_prediction: bool, with_target: bool
) -> dict[str, Any]:
    """Run Evidently on the described sides and save nothing yet.

    Returns:
        {"snapshot": the Evidently snapshot, "json": its JSON as a dict}.
    """
    numerical = list(NUMERICAL)
    metrics_: list[Any] = [DataDriftPreset(columns=list(INPUT_COLUMNS))]
    if with_prediction:
        numerical.append(PREDICTION)
        metrics_.append(ValueDrift(column=PREDICTION))
    if with_target:
        numerical.append(TARGET)
        metrics_.append(ValueDrift(column=TARGET))
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=list(CATEGORICAL))
    keep = list(INPUT_COLUMNS) + numerical[len(NUMERICAL) :]
    snapshot = Report(metrics_, include_tests=True).run(
        Dataset.from_pandas(current[keep], data_definition=definition),
        Dataset.from_pandas(reference[keep], data_definition=definition),
    )
    return {"snapshot": snapshot, "json": json.loads(snapshot.json())}


def drifted_columns(report: dict[str, Any]) -> dict[str, bool]:
    """Per compared column, whether Evidently's drift test failed."""
    out: dict[str, bool] = {}
    for test in report.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift") and "column" in params:
            out[str(params["column"])] = str(test.get("status")) == "FAIL"
    return out


# --- the run ----------------------------------------------------------------------------------------------


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


def record(settings: Settings, result: MonitorResult) -> None:
    """Insert the run's summary row into ``monitoring_runs``."""
    with warehouse.connect(settings) as con, warehouse.transaction(con):
        con.execute(
            "INSERT INTO monitoring_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                result.run_id,
                result.created_at.replace(tzinfo=None),
                result.window.kind,
                result.window.start.astimezone(UTC).replace(tzinfo=None) if result.window.start else None,
                result.window.end.astimezone(UTC).replace(tzinfo=None) if result.window.end else None,
                result.window.batch_id,
                result.model_version,
                result.status,
                result.reference_rows,
                result.current_rows,
                result.compared_rows,
                result.drift_share,
                json.dumps(result.drifted_columns),
                result.prediction_drift,
                result.target_drift,
                result.feedback_rows,
                result.rmsle,
                result.coverage,
                result.message,
                result.report_html,
                result.report_json,
            ],
        )


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    rows = np.random.default_rng(seed).choice(len(frame), size=n, replace=False)
    return frame.iloc[np.sort(rows)].reset_index(drop=True)


def _score(suggester: PriceSuggester, frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["name", "brand_name", "category_name", "item_condition_id", "shipping", "item_description"]
    return suggester.suggest(frame[columns])


def run(config: Config, settings: Settings, window: Window) -> MonitorResult:
    """Compare the window with the champion's training data; save the reports and record the summary row.

    An empty window is not an error: the run is recorded with status 'empty' ("nothing to compare").

    Raises:
        PricewiseError: The reference has no rows, the report directory is not writable, the batch is
            unknown, or Evidently fails; the run is recorded with status 'error' and the message first.
    """
    result = MonitorResult(
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        created_at=datetime.now(UTC),
        window=window,
    )
    try:
        _run(config, settings, window, result)
    except PricewiseError as exc:
        result.status, result.message = "error", str(exc)
        _record_quietly(settings, result)
        raise
    except Exception as exc:  # Evidently or pandas failing on odd data: recorded, then reported clearly
        logger.exception("monitoring run %s failed", result.run_id)
        result.status, result.message = "error", f"monitoring failed: {type(exc).__name__}: {exc}"
        _record_quietly(settings, result)
        raise PricewiseError(result.message) from exc
    record(settings, result)
    return result


def _record_quietly(settings: Settings, result: MonitorResult) -> None:
    try:
        record(settings, result)
    except PricewiseError:
        logger.warning("could not record failed monitoring run %s", result.run_id, exc_info=True)


def _run(config: Config, settings: Settings, window: Window, result: MonitorResult) -> None:
    cfg = config.monitor
    directory = _reports_dir(settings, result.run_id)
    best = champion(config, settings)
    result.model_version = best.version if best else None
    reference, result.reference_rows = load_reference(config, settings, best.batch_ids if best else None)
    if result.reference_rows == 0:
        whose = f"{best.name} v{best.version}'s training batches" if best else "the warehouse"
        raise PricewiseError(f"the reference has no rows: no training listings in {whose}")
    current = (
        load_batch(settings, str(window.batch_id))
        if window.kind == "batch"
        else load_predictions(settings, window)
    )
    result.current_rows = len(current)
    if len(current) < cfg.min_rows:
        result.status = "empty"
        result.message = (
            f"nothing to compare: {len(current)} rows in {window.describe()} "
            f"(monitor.min_rows is {cfg.min_rows})"
        )
        path = directory / "summary.json"
        result.report_json = str(path)
        _write_atomic(path, json.dumps({"run": result.summary()}, indent=2, default=str))
        return

    suggester = None
    if best is not None:
        suggester = registry.load_suggester(f"models:/{best.name}/{best.version}")
    sample = _sample(current, cfg.max_rows, cfg.seed)
    if window.kind == "batch" and suggester is not None:
        scored = _score(suggester, sample)
        sample[["price", "low", "high"]] = scored[["price", "low", "high"]].to_numpy()
        current = sample  # a batch is scored here, so its accuracy is judged on the sample
    result.compared_rows = len(sample)

    feedback = (
        current[current["sold_price"].notna() & current["price"].notna()]
        if "price" in current
        else current.iloc[:0]
    )
    result.feedback_rows = len(feedback)
    if len(feedback) >= 1:
        sold = feedback["sold_price"].to_numpy(float)
        result.rmsle = metrics.rmsle(sold, feedback["price"].to_numpy(float))
        result.coverage = metrics.coverage(
            sold, feedback["low"].to_numpy(float), feedback["high"].to_numpy(float)
        )

    # The vocabulary comes from one half of the reference and the reference side is the other half, so the
    # reference's vocabulary share is measured out of sample, as the window's is.
    vocabulary_half, reference = reference.iloc[0::2], reference.iloc[1::2].reset_index(drop=True)
    known_words = vocabulary(vocabulary_half["name"], cfg.vocabulary_min_count)
    ref = describe(reference, known_words)
    cur = describe(sample, known_words)
    with_prediction = False
    if suggester is not None and "price" in sample and sample["price"].notna().any():
        with_prediction = True
        ref[PREDICTION] = np.log1p(_score(suggester, reference)["price"].to_numpy(float))
        cur[PREDICTION] = np.log1p(sample["price"].to_numpy(float))
    with_target = int(sample["sold_price"].notna().sum()) >= cfg.min_feedback_rows
    if with_target:
        ref[TARGET] = np.log1p(reference["price"].to_numpy(float))
        cur[TARGET] = np.log1p(sample["sold_price"].to_numpy(float))

    report = evidently_report(ref, cur, with_prediction, with_target)
    drift = drifted_columns(report["json"])
    inputs = [c for c in INPUT_COLUMNS if c in drift]
    result.drifted_columns = [c for c in INPUT_COLUMNS if drift.get(c)]
    result.drift_share = len(result.drifted_columns) / len(inputs) if inputs else None
    result.prediction_drift = drift.get(PREDICTION) if with_prediction else None
    result.target_drift = drift.get(TARGET) if with_target else None

    flagged = list(result.drifted_columns)
    if result.prediction_drift:
        flagged.append("prediction")
    if result.target_drift:
        flagged.append("target")
    dataset_drift = result.drift_share is not None and result.drift_share >= config.retrain.drift_share
    result.status = "drift" if dataset_drift or result.prediction_drift or result.target_drift else "ok"
    accuracy = (
        f"; RMSLE {result.rmsle:.4f}, coverage {result.coverage:.3f} on {result.feedback_rows} sold prices"
        if result.rmsle is not None and result.coverage is not None
        else "; no sold prices fed back"
    )
    sampled = f" (sampled to {cfg.max_rows})" if len(current) > cfg.max_rows else ""
    result.message = (
        f"{window.describe()}: {result.current_rows} rows{sampled} against {result.reference_rows} reference rows; "
        f"drifted: {', '.join(flagged) or 'none'}{accuracy}"
    )

    html_path, json_path = directory / "report.html", directory / "report.json"
    partial = html_path.with_name("report.html.partial")
    report["snapshot"].save_html(str(partial))
    partial.replace(html_path)
    result.report_html, result.report_json = str(html_path), str(json_path)
    _write_atomic(
        json_path, json.dumps({"run": result.summary(), "evidently": report["json"]}, indent=1, default=str)
    )

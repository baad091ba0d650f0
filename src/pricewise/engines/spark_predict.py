"""A listings file or Parquet dataset and a registered model in; a folder of scored part files written by Spark out.

The row rules run as the local engine runs them (DuckDB over `validation.row_rules.checked_rows_sql`, one batch
per input file), so every rule, those that look at a whole batch included, judges the same rows the same way. The
driver checks every file's columns first; then each file is judged by a Spark task of its own on the executors,
which writes the file's rows to score and its unscored rows to the staging folder. Scoring follows: Spark spreads
it over the executors with ``mapInPandas`` on the pricewise suggester, which the driver loads and verifies once
and broadcasts; each executor's Python worker unpickles it once and keeps it. On a cluster, the input, the staging
folder (beside the output) and the output must be on storage every executor sees.

Output is a folder of part files (Parquet, or CSV/TSV by the output's suffix) with the local engine's columns
(id, price, low, high, model_version, reasons) and a ``_manifest.json`` naming the model version of every part
file. Everything is written under a hidden work folder beside the output and renamed into place at the end: a job
that fails or is killed leaves no output where a finished one is expected (an earlier output stays as it was).
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pricewise import predict
from pricewise.config import Config
from pricewise.engines import spark_session
from pricewise.errors import PricewiseError
from pricewise.inputs.listing_files import TableSource, open_sources
from pricewise.inputs.source_mapping import LoadedMapping
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import tracking, warehouse
from pricewise.store.registry import CHAMPION, load_suggester

if TYPE_CHECKING:
    from pyspark import Accumulator, Broadcast
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
SCORED_SCHEMA = "id string, price double, low double, high double, reasons string"
SCORABLE_SCHEMA = (
    "id string, name string, brand_name string, category_name string, item_condition_id bigint, "
    "shipping bigint, item_description string, flags string"
)
UNSCORED_SCHEMA = "id string, reasons string"
# Rows per Parquet row group of the staged rows: row groups are where Spark may split a file between tasks.
STAGE_ROW_GROUP = 20_000

# The model an executor's Python worker scores with: one entry, keyed by the run that broadcast it.
_executor_model: dict[str, PriceSuggester] = {}


def _model_for(model: Broadcast[bytes], key: str) -> PriceSuggester:
    if key not in _executor_model:
        import torch  # noqa: PLC0415 - only executors need to cap torch's threads

        torch.set_num_threads(1)  # every executor core runs a Python worker of its own
        _executor_model.clear()
        # Pickled by this run's driver from the model it loaded and checked against its registered digest.
        _executor_model[key] = pickle.loads(model.value)  # noqa: S301
    return _executor_model[key]


def score_partition(
    frames: Iterator[pd.DataFrame], model: Broadcast[bytes], key: str, spent: Accumulator[float] | None = None
) -> Iterator[pd.DataFrame]:
    """Score one partition's Arrow batches with the broadcast model (runs in the executors' Python workers).

    Args:
        frames: Rows as the local engine's scorer reads them (id and the feature columns).
        model: The pickled suggester.
        key: Names the run, so a worker reused by a later run loads that run's model.
        spent: Adds up the seconds spent scoring (model and features, not reading or writing).

    Yields:
        id, price, low, high and reasons (the flags of blanked text, else None), one frame per batch.
    """
    suggester = _model_for(model, key)
    for frame in frames:
        if frame.empty:
            continue
        started = time.perf_counter()
        [scored] = predict.score_chunks(suggester, [frame], workers=1)
        if spent is not None:
            spent.add(time.perf_counter() - started)
        scored["id"] = scored["id"].astype(str)
        # The flags of text blanked for scoring, as the local engine reports them (None when there are none).
        scored["reasons"] = scored["reasons"].astype(object) if "reasons" in scored else None
        yield scored[["id", "price", "low", "high", "reasons"]]


def stage_source(
    item: tuple[int, TableSource], config: Config, settings: Settings, staging: str
) -> tuple[int, int, str | None]:
    """Judge one input file with the row rules and stage its rows (runs in an executor's Python worker).

    Args:
        item: The file's place in the input (it names the batch, as the local engine's) and the file.
        config: The row rules (validate) and the reader's limits (ingest).
        settings: DuckDB's memory and thread caps.
        staging: The folder holding ``scorable/`` and ``unscored/``; the file's rows go to ``batch-<n>.parquet``.

    Returns:
        Rows to score, rows with reasons, and the error of a file that cannot be read (None when it could).
    """
    n, source = item
    counts = []
    try:
        with warehouse.connect_scratch(settings) as con:
            batch_id = predict.check_source(con, source, n, config)
            for name, sql, params in (
                ("scorable", predict.SCORABLE_ROWS_SQL, {}),
                ("unscored", predict.UNSCORED_ROWS_SQL, {"batch": batch_id}),
            ):
                target = warehouse.sql_literal(str(Path(staging) / name / f"batch-{n}.parquet"))
                written = con.execute(
                    f"COPY ({sql}) TO {target} (FORMAT parquet, ROW_GROUP_SIZE {STAGE_ROW_GROUP})", params
                ).fetchone()
                counts.append(int(written[0]) if written else 0)
    except PricewiseError as exc:
        # Returned, not raised: the driver reports it as the local engine would, not as a JVM stack.
        return 0, 0, str(exc)
    return counts[0], counts[1], None


def stage(
    spark: SparkSession,
    config: Config,
    settings: Settings,
    input_path: Path,
    staging: Path,
    mapping: LoadedMapping | None = None,
) -> tuple[int, int]:
    """Apply the row rules as the local engine does, one Spark task per input file; write the rows to score and
    the unscored rows as Parquet.

    Args:
        spark: The session whose executors judge the files.
        config: The row rules (validate) and the reader's limits (ingest).
        settings: DuckDB's memory and thread caps, scratch space.
        input_path: Any file or folder predict reads (a Parquet dataset, partitioned or not, is a folder).
        staging: Where ``scorable/`` and ``unscored/`` are written, one file per input file.
        mapping: Another marketplace's mapping the files are read through (it travels with each file).

    Returns:
        Rows to score, rows with reasons.

    Raises:
        InputFileError: A file is unreadable or has another schema (named); every file's columns are checked
            on the driver before any row is read.
        PricewiseError: A file's rows could not be read (its message, as the local engine says it).
    """
    for name in ("scorable", "unscored"):
        (staging / name).mkdir(parents=True)
    with open_sources([input_path], settings.scratch, mapping) as sources:
        judge = functools.partial(stage_source, config=config, settings=settings, staging=str(staging))
        files = spark.sparkContext.parallelize(list(enumerate(sources)), max(1, len(sources)))
        results = files.map(judge).collect()
    errors = [error for _, _, error in results if error is not None]
    if errors:
        raise PricewiseError(errors[0])
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _scored_frame(
    spark: SparkSession,
    staging: Path,
    model: Broadcast[bytes],
    key: str,
    version: str,
    spent: Accumulator[float],
) -> DataFrame:
    from pyspark.sql import functions as F  # noqa: N812, PLC0415 - an optional extra; Spark's own idiom

    scorable = spark.read.schema(SCORABLE_SCHEMA).parquet(str(staging / "scorable"))
    # Looked up at call time, so the function Spark ships is whatever the module holds now.
    scored = scorable.mapInPandas(
        functools.partial(score_partition, model=model, key=key, spent=spent), SCORED_SCHEMA
    )
    unscored = spark.read.schema(UNSCORED_SCHEMA).parquet(str(staging / "unscored"))
    unscored = unscored.select(
        "id", *(F.lit(None).cast("double").alias(c) for c in ("price", "low", "high")), "reasons"
    )
    result = scored.unionByName(unscored).withColumn("model_version", F.lit(version))
    return result.select(*predict.OUTPUT_COLUMNS)


def _write_result(frame: DataFrame, target: Path, fmt: str) -> None:
    writer = frame.write.mode("error")
    if fmt == "parquet":
        writer.parquet(str(target))
    else:
        # Every field quoted, quotes doubled: a rejected row's id is the input's text, whatever it holds.
        writer.csv(str(target), header=True, sep="\t" if fmt == "tsv" else ",", quoteAll=True, escape='"')


def _job_error(exc: Exception) -> PricewiseError:
    """The last line of a failed job's error (the worker's exception), not the JVM's stack."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    error_lines = [line for line in lines if "Error" in line or "Exception" in line]
    summary = (error_lines or lines or [type(exc).__name__])[-1][:500]
    return PricewiseError(f"the Spark job failed, nothing was written: {summary}")


def part_files(folder: Path) -> list[Path]:
    """The data files of a result folder, without Spark's markers, checksums and the manifest."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(("_", ".")) and p.suffix != ".crc"
    )


def _write_manifest(folder: Path, uri: str, version: str, fmt: str, expected_rows: int) -> None:
    import pyarrow.parquet as pq  # noqa: PLC0415 - heavy; only the manifest needs it

    files: list[dict[str, Any]] = []
    for part in part_files(folder):
        rows = pq.read_metadata(part).num_rows if fmt == "parquet" else None
        files.append({"file": part.name, "rows": rows, "model_version": version, "model_uri": uri})
    if fmt == "parquet":
        written = sum(int(f["rows"]) for f in files)
        if written != expected_rows:
            raise PricewiseError(
                f"Spark wrote {written} rows where {expected_rows} were expected; nothing written"
            )
    manifest = {
        "model_uri": uri,
        "model_version": version,
        "format": fmt,
        "rows": expected_rows,
        "written_at": datetime.now(UTC).isoformat(),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def commit(result: Path, output: Path) -> None:
    """Move a finished result folder to `output`; an earlier output is replaced only once the new one is whole."""
    aside = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
    had_output = output.exists()
    if had_output:
        output.rename(aside)
    result.rename(output)
    if had_output:
        if aside.is_dir():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


def run(
    config: Config,
    settings: Settings,
    input_path: Path,
    output: Path,
    model_uri: str | None = None,
    mapping: LoadedMapping | None = None,
) -> predict.PredictResult:
    """Score every listing of a file or dataset on Spark, with the local engine's rules, model and columns.

    Args:
        config: Stage parameters (train names the model; validate holds the row rules).
        settings: The Spark master (PRICEWISE_SPARK_MASTER), MLflow store, DuckDB caps.
        input_path: A listings file or folder in any format predict accepts (a Parquet dataset is a folder).
        output: The folder to write: ``.parquet`` for Parquet parts, ``.csv``/``.tsv`` for text parts.
        model_uri: Any registered model URI; default the champion.
        mapping: Another marketplace's mapping the input is read through.

    Returns:
        Counts, the model version and the time taken.

    Raises:
        PricewiseError: PySpark or Java missing, the master not answering, an unknown model, a file of another
            schema, a failed job, or an output that cannot be written. Nothing is left at `output` then.
    """
    spark_session.require_spark()
    spark_session.check_master(settings.spark_master)
    # Before any work: a master that does not answer should fail in seconds, not after staging.
    spark_session.probe_master(settings.spark_master, settings.spark_master_timeout_seconds)
    from py4j.protocol import Py4JError  # type: ignore[import-untyped]  # noqa: PLC0415 - an optional extra
    from pyspark.errors import PySparkException  # noqa: PLC0415

    fmt = output.suffix.removeprefix(".")
    started = time.perf_counter()
    tracking.configure(settings)
    uri = model_uri or f"models:/{config.train.registered_model}@{CHAMPION}"
    version = predict.describe_version(uri)
    suggester = load_suggester(uri)
    output = output.absolute()
    work = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        work.mkdir(parents=True)
        with spark_session.session(settings, "pricewise-predict") as spark:
            mark = time.perf_counter()
            try:
                n_scorable, n_unscored = stage(spark, config, settings, input_path, work / "staging", mapping)
            except (PySparkException, Py4JError) as exc:
                raise _job_error(exc) from exc
            logger.info(
                "row rules: %d rows to score, %d unscored in %.1f s",
                n_scorable,
                n_unscored,
                time.perf_counter() - mark,
            )
            mark = time.perf_counter()
            model = spark.sparkContext.broadcast(pickle.dumps(suggester, protocol=pickle.HIGHEST_PROTOCOL))
            spent = spark.sparkContext.accumulator(0.0)
            try:
                frame = _scored_frame(spark, work / "staging", model, uuid.uuid4().hex, version, spent)
                _write_result(frame, work / "result", fmt)
            except (PySparkException, Py4JError) as exc:
                raise _job_error(exc) from exc
            finally:
                model.destroy()
            logger.info(
                "Spark job (scoring and writing) in %.1f s; scoring took %.1f task-seconds",
                time.perf_counter() - mark,
                spent.value,
            )
        mark = time.perf_counter()
        _write_manifest(work / "result", uri, version, fmt, n_scorable + n_unscored)
        commit(work / "result", output)
        logger.info("manifest and commit in %.1f s", time.perf_counter() - mark)
    except OSError as exc:
        raise PricewiseError(f"cannot write {output}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    logger.info("scored %d rows (%d rejected) on Spark in %.1f s", n_scorable, n_unscored, seconds)
    return predict.PredictResult(output, uri, version, n_scorable, n_unscored, seconds)

"""A listings file (any format ingest takes) and a registered model in; a scored file out.

Each output row has the listing id, price, low, high and the model version; rows that fail the row rules get no
price and their reasons instead. A row scored with its brand or description blanked (broken text) has a price and
the flag saying so in the same reasons column: a row is refused when it has no price. The output appears whole or
not at all (written aside, then renamed).
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import pickle
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise import ingest, progress
from pricewise.columns import FEATURE_COLUMNS
from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.inputs.listing_files import TableSource, open_sources
from pricewise.inputs.source_mapping import LoadedMapping
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import tracking, warehouse
from pricewise.store.registry import CHAMPION, load_suggester
from pricewise.validation import row_rules

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("id", "price", "low", "high", "model_version", "reasons")
OUTPUT_FORMATS = (".csv", ".tsv", ".parquet")
ENGINES = ("local", "spark")
# The rows of the temp table `checked` (row_rules.checked_rows_sql) that pass the rules, as the model reads them,
# with the flags of text blanked for scoring (NULL when none).
SCORABLE_ROWS_SQL = """
    SELECT source_id AS id, trim(name) AS name, nullif(trim(brand_name), '') AS brand_name,
           nullif(trim(category_name), '') AS category_name,
           CAST(condition_num AS BIGINT) AS item_condition_id, CAST(shipping_num AS BIGINT) AS shipping,
           item_description, nullif(array_to_string(flags, ';'), '') AS flags
    FROM checked WHERE len(reasons) = 0
"""
# The rows that get no price, with their reasons: rule failures and lines of batch $batch the reader could not split.
UNSCORED_ROWS_SQL = """
    SELECT source_id AS id, array_to_string(reasons, ';') AS reasons FROM checked
    WHERE len(reasons) > 0
    UNION ALL
    SELECT 'line ' || source_line, 'parse_' || replace(lower(error_type), ' ', '_')
    FROM parse_rejects WHERE batch_id = $batch
"""


@dataclass(frozen=True)
class PredictResult:
    """What was scored, with which model, and how fast."""

    output: Path
    model_uri: str
    model_version: str
    scored: int
    rejected: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Throughput over the whole call, reading and writing included."""
        return (self.scored + self.rejected) / self.seconds if self.seconds else 0.0


def describe_version(uri: str) -> str:
    """A readable 'name/version' for registry URIs; the URI itself otherwise."""
    if not uri.startswith("models:/"):
        return uri
    ref = uri.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return f"{name}/{client.get_model_version_by_alias(name, alias).version}"
        if "/" in ref:
            return ref
    except MlflowException as exc:
        raise PricewiseError(f"model {uri} does not exist: {exc.message}") from exc
    return ref


# The model a scoring worker process uses; set once per worker by _init_worker.
_worker_model: PriceSuggester | None = None


def _init_worker(model_file: str) -> None:
    global _worker_model  # noqa: PLW0603 - one model per worker process, set by the pool's initializer
    import torch  # noqa: PLC0415 - only workers need to cap torch's threads

    torch.set_num_threads(1)  # the pool's processes already use every core
    with Path(model_file).open("rb") as handle:
        # Written by this worker's parent a moment ago from the model it loaded and verified.
        _worker_model = pickle.load(handle)  # noqa: S301


def _score(frame: pd.DataFrame, model: PriceSuggester | None = None) -> pd.DataFrame:
    model = model or _worker_model
    assert model is not None, "scoring worker used before its initializer ran"
    scored = model.suggest(frame[list(FEATURE_COLUMNS)])
    scored.insert(0, "id", frame["id"].to_numpy())
    if "flags" in frame:
        scored["reasons"] = frame["flags"].to_numpy()
    return scored


def score_chunks(
    model: PriceSuggester, chunks: Iterable[pd.DataFrame], workers: int, scratch: Path | None = None
) -> Iterator[pd.DataFrame]:
    """Score chunks in order, in `workers` processes when more than one (feature building is CPU-bound Python).

    At most two chunks per worker are in flight, so memory stays bounded whatever the input size. The model
    reaches the workers as a file in `scratch` (a private temporary directory), not through the pipe that
    starts each process: the parent writes that pipe while holding its other end, so a process that died at
    start with a model-sized message unread would block the parent for good.

    Raises:
        PricewiseError: A worker process ended (killed, out of memory, or it could not start).
    """
    if workers <= 1:
        for frame in chunks:
            yield _score(frame, model)
        return
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    # spawn, not fork: forking a process whose torch thread pool has started can deadlock the child.
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="pricewise-predict-", dir=scratch) as private:
        model_file = Path(private) / "model.pkl"
        model_file.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        try:
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(str(model_file),)
            ) as pool:
                pending: deque[Future[pd.DataFrame]] = deque()
                for frame in chunks:
                    pending.append(pool.submit(_score, frame))
                    if len(pending) >= 2 * workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
        except BrokenProcessPool as exc:
            raise PricewiseError(
                "a scoring worker process ended unexpectedly (killed, out of memory, or it could not start); "
                "nothing was written. See the log above for its error, or set predict.workers: 1 in the "
                "config to score in this process"
            ) from exc


def _write(frame: pd.DataFrame, output: Path) -> None:
    partial = output.with_name(f".{output.name}.partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix == ".parquet":
            frame.to_parquet(partial, index=False)
        else:
            # Every text field quoted: the csv module leaves a lone carriage return bare otherwise, and a
            # rejected row's id is the input's text, whatever it holds.
            frame.to_csv(
                partial,
                sep="\t" if output.suffix == ".tsv" else ",",
                index=False,
                quoting=csv.QUOTE_NONNUMERIC,
            )
        partial.replace(output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise PricewiseError(f"cannot write {output}: {exc.strerror}") from exc


def checked_batches(
    config: Config, settings: Settings, input_path: Path, mapping: LoadedMapping | None = None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """Each file of the input loaded into a scratch warehouse as a batch of its own, its rows judged into the temp
    table `checked`; yields the connection and the batch id, file after file (consume it whole).

    Prices are not needed to score: the unpriced rules apply, as to rows that are only scored (a text that looks
    cut short is no reason; see `row_rules.checked_rows_sql`). Batch-wide rules look at one file at a time.
    Files of another marketplace are read through `mapping`.
    """
    with (
        open_sources([input_path], settings.scratch, mapping) as sources,
        warehouse.connect_scratch(settings) as con,
    ):
        for n, source in enumerate(sources):
            yield con, check_source(con, source, n, config)


def check_source(con: duckdb.DuckDBPyConnection, source: TableSource, n: int, config: Config) -> str:
    """Load the `n`-th source of an input into a scratch warehouse as batch ``p<n>``, its rows judged into the
    temp table `checked` (replaced if there); returns the batch id."""
    batch_id = f"p{n}"
    ingest.load_source(con, source, batch_id, config, n)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE checked AS "
        + row_rules.checked_rows_sql("unpriced", config.validate_, scoring=True),
        {"batch": batch_id, "kind": "unpriced"},
    )
    return batch_id


def run(
    config: Config,
    settings: Settings,
    input_path: Path,
    output: Path,
    model_uri: str | None = None,
    engine: str = "local",
    mapping: str | None = None,
) -> PredictResult:
    """Score every listing of a file with a registered model.

    Args:
        config: Stage parameters (train names the model; predict sets the chunk size; validate the row rules).
        settings: Where scratch space and the MLflow store are.
        input_path: A listings file or directory in any format ingest accepts.
        output: Where to write the scores: .csv, .tsv or .parquet.
        model_uri: Any MLflow model URI; default the champion.
        engine: local (processes on this machine) or spark (PRICEWISE_SPARK_MASTER; the output is then a folder
            of part files with a manifest, see `pricewise.engines.spark_predict`).
        mapping: Another marketplace's mapping (name or path, see `ingest.load_mapping`) the input is read with.

    Returns:
        Counts, the model version and the time taken.

    Raises:
        PricewiseError: Unreadable input (missing columns are listed), an unknown or invalid mapping, a value
            the mapping cannot translate, unknown model, unwritable output, an unknown engine, or (spark)
            PySpark or Java missing, a master that does not answer, a failed job.
    """
    if engine not in ENGINES:
        raise PricewiseError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if output.suffix not in OUTPUT_FORMATS:
        raise PricewiseError(f"output {output} must end in one of {', '.join(OUTPUT_FORMATS)}")
    loaded = ingest.load_mapping(settings, mapping) if mapping is not None else None
    if engine == "spark":
        # Imported here: PySpark is an optional extra, and the local engine never needs it.
        from pricewise.engines import spark_predict  # noqa: PLC0415

        return spark_predict.run(config, settings, input_path, output, model_uri, loaded)
    started = time.perf_counter()
    tracking.configure(settings)
    uri = model_uri or f"models:/{config.train.registered_model}@{CHAMPION}"
    model_version = describe_version(uri)
    suggester = load_suggester(uri)
    parts: list[pd.DataFrame] = []
    for con, batch_id in checked_batches(config, settings, input_path, loaded):
        # fetchall, not fetchone: the result must be finished before the connection reads the rows to score.
        accepted = con.execute("SELECT count(*) FROM checked WHERE len(reasons) = 0").fetchall()
        n_accepted = int(accepted[0][0]) if accepted else 0
        reader = con.sql(SCORABLE_ROWS_SQL).to_arrow_reader(config.predict.chunk_rows)
        assert reader is not None  # a SELECT always yields a result
        # Starting worker processes costs seconds; only inputs of several chunks repay it.
        workers = config.predict.workers if n_accepted > 2 * config.predict.chunk_rows else 1
        advance = progress.per_chunk("predict", n_accepted)
        for scored in score_chunks(
            suggester, (chunk.to_pandas() for chunk in reader), workers, settings.scratch
        ):
            parts.append(scored)
            advance(len(scored))
        parts.append(
            con.execute(
                UNSCORED_ROWS_SQL,
                {"batch": batch_id},
            ).df()
        )
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    result["model_version"] = model_version
    result = result.reindex(columns=list(OUTPUT_COLUMNS))
    rejected = int(result["price"].isna().sum())
    _write(result, output)
    seconds = time.perf_counter() - started
    logger.info("scored %d rows (%d rejected) in %.1f s", len(result) - rejected, rejected, seconds)
    return PredictResult(output, uri, model_version, len(result) - rejected, rejected, seconds)

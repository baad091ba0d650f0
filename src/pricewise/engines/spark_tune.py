"""Settings and a search's budget in; Hyperopt trials that run as Spark tasks, `parallelism` at a time, out.

hyperopt's SparkTrials (hyperopt 0.3.0, run here with PySpark 4.3) runs each trial as a one-task Spark job
started from a driver thread, and lets TPE suggest the next point whenever one finishes. The trial's
function and the splits travel to the executors: the splits once per executor, as a broadcast. Its task
leaves its input partition unread, so PySpark does not reuse the Python worker: every trial starts one and
imports pricewise again (seconds), small beside a trial on real data, large beside a trial on a small sample.

Every trial opens its nested MLflow run from the executor that runs it, so the tracking store must be one
every executor reaches. On a local[N] master the executors are processes of this machine and the default
SQLite store under the data directory serves them all. A cluster needs a tracking server (or a database every
node reaches): set PRICEWISE_MLFLOW_TRACKING_URI, and install pricewise on the executors' Python.
PySpark is imported inside the functions: the rest of pricewise runs without it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pricewise.engines import spark_session
from pricewise.errors import PricewiseError
from pricewise.logs import redact
from pricewise.settings import Settings

if TYPE_CHECKING:
    from pyspark.core.broadcast import Broadcast
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

T = TypeVar("T")
APP_NAME = "pricewise-tune"
# Stores that live on the driver's disk: a cluster's executors cannot write their trials' runs there.
_DRIVER_LOCAL_STORES = ("sqlite:", "file:", "/", ".")


@dataclass(frozen=True)
class Shared(Generic[T]):
    """A broadcast value, read where the trial runs."""

    broadcast: Broadcast[T]

    def __call__(self) -> T:
        return self.broadcast.value


@dataclass(frozen=True)
class SparkSearch:
    """What `tune` needs to run its search on Spark."""

    trials: Any  # hyperopt.SparkTrials (hyperopt is untyped)
    parallelism: int
    spark: SparkSession

    def share(self, value: T) -> Shared[T]:
        """Send `value` to the executors once; the returned callable gives it back where a trial runs."""
        return Shared(self.spark.sparkContext.broadcast(value))


def check(settings: Settings) -> None:
    """Refuse what would fail only after Spark started: a malformed master, a cluster master with a tracking
    store on the driver's disk, or PySpark or Java missing.

    Raises:
        PricewiseError: Says what to install or which setting to change.
    """
    master = settings.spark_master
    spark_session.check_master(master)
    uri = settings.tracking_uri
    if not master.startswith("local") and uri.startswith(_DRIVER_LOCAL_STORES):
        raise PricewiseError(
            f"the executors of Spark master {master} cannot write their trials to the MLflow store "
            f"{redact(uri)} on this machine; set PRICEWISE_MLFLOW_TRACKING_URI to a tracking server "
            "(http://host:5000) or a database every node reaches"
        )
    spark_session.require_spark()


@contextmanager
def search(settings: Settings, parallelism: int | None, budget: int) -> Iterator[SparkSearch]:
    """A session on settings.spark_master and SparkTrials running `parallelism` trials at a time.

    Args:
        settings: The master, how long to wait for it, and the tracking store.
        parallelism: Trials at once; default the master's default parallelism. Never more than the budget.
        budget: The number of trials of the search.

    Yields:
        The trials to hand to fmin, the parallelism in use, and the session.

    Raises:
        PricewiseError: As `check`, or the master does not answer in time.
    """
    check(settings)
    from hyperopt import SparkTrials  # noqa: PLC0415 - its Spark half needs PySpark

    with spark_session.session(settings, APP_NAME) as spark:
        slots = max(1, min(parallelism or spark.sparkContext.defaultParallelism, budget))
        logger.info("tuning on %s, %d trials at a time", settings.spark_master, slots)
        with warnings.catch_warnings():
            # PySpark warns on every trial thread SparkTrials starts that it was given no session to copy
            # job tags from; SparkTrials sets its own job group.
            warnings.filterwarnings("ignore", message="Spark session is not provided", category=UserWarning)
            yield SparkSearch(SparkTrials(parallelism=slots, spark_session=spark), slots, spark)

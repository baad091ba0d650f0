"""Settings in; a SparkSession on the configured master out, or a clear error naming what is missing.

PySpark and a Java runtime are checked before anything starts, a standalone or Kubernetes master that does not
accept a connection fails within ``spark_master_timeout_seconds``, and a local master binds to 127.0.0.1 only.
PySpark is imported inside the functions: the rest of pricewise runs without it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pricewise.errors import PricewiseError
from pricewise.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

T = TypeVar("T")
INSTALL_PYSPARK = "install it with `pip install 'pricewise[spark]'` (PySpark 4.3.0)"
INSTALL_JAVA = "install a Java 17 runtime (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
# The host:port list of a standalone master (spark://a:7077,b:7077) or a Kubernetes API server (k8s://https://h:443).
_ENDPOINT = re.compile(r"^(?:spark://|k8s://(?:https?://)?)(?P<hosts>[^/]+)")
_DEFAULT_PORT = {"spark": 7077, "k8s": 443}
_MASTER_FORM = re.compile(r"^(local(\[(\d+|\*)(,\d+)?\])?|yarn|spark://\S+|k8s://\S+)$")


def java_executable() -> Path | None:
    """The java PySpark would start: JAVA_HOME's when that is set, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return candidate if candidate.is_file() else None
    found = shutil.which("java")
    return Path(found) if found else None


def require_spark() -> None:
    """Check that PySpark imports and a Java runtime is there, before any work starts.

    Raises:
        PricewiseError: PySpark or Java is missing; the message says what to install.
    """
    try:
        import pyspark  # noqa: F401, PLC0415 - an optional extra; only the spark engine needs it
    except ImportError as exc:
        raise PricewiseError(
            f"the spark engine needs PySpark, which is not installed: {INSTALL_PYSPARK}"
        ) from exc
    if java_executable() is None:
        home = os.environ.get("JAVA_HOME")
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH"
        raise PricewiseError(f"the spark engine needs Java ({where}): {INSTALL_JAVA}")


def check_master(master: str) -> None:
    """Refuse a master URL Spark would not understand, before anything starts.

    Raises:
        PricewiseError: The URL is not local[N], yarn, spark://... or k8s://...
    """
    if not _MASTER_FORM.match(master):
        raise PricewiseError(
            f"Spark master {master!r} is not local[N], yarn, spark://host:port or k8s://https://host:port; "
            "check PRICEWISE_SPARK_MASTER"
        )


def master_endpoints(master: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a master URL names; empty for local and YARN masters (nothing to dial)."""
    match = _ENDPOINT.match(master)
    if not match:
        return []
    default = _DEFAULT_PORT["spark" if master.startswith("spark://") else "k8s"]
    endpoints = []
    for part in match["hosts"].split(","):
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit():
            host, port = part, str(default)
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints


def probe_master(master: str, timeout: float) -> None:
    """Fail fast when no endpoint of the master accepts a TCP connection within `timeout` seconds.

    Raises:
        PricewiseError: None of the master's endpoints answered.
    """
    errors = []
    for host, port in master_endpoints(master):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    if errors:
        raise PricewiseError(
            f"Spark master {master} does not answer ({'; '.join(errors)}); check PRICEWISE_SPARK_MASTER"
        )


def _within(seconds: float, what: str, master: str, func: Callable[[], T]) -> T:
    """Run func in a daemon thread and give up after `seconds`: a blocked Py4J call cannot be interrupted."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"spark-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise PricewiseError(
            f"Spark master {master} did not answer within {seconds:g} s ({what}); check PRICEWISE_SPARK_MASTER "
            "and that the cluster has free executors (PRICEWISE_SPARK_MASTER_TIMEOUT_SECONDS sets the wait)"
        )
    if "error" in box:
        error = box["error"]
        assert isinstance(error, BaseException)
        raise PricewiseError(f"Spark on {master} could not start: {type(error).__name__}: {error}") from error
    return box["value"]  # type: ignore[return-value]


def running() -> SparkSession | None:
    """The session this process already runs (a notebook's, a test's), if any."""
    from pyspark import SparkContext  # noqa: PLC0415 - an optional extra
    from pyspark.sql import SparkSession  # noqa: PLC0415

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # The active session is per thread; a session started in another thread is still this process's.
    if SparkContext._active_spark_context is not None:  # PySpark's one handle on a running context
        return SparkSession.builder.getOrCreate()
    return None


def start(settings: Settings, app_name: str) -> SparkSession:
    """A SparkSession on settings.spark_master whose master has run a one-task job.

    A session already running in this process on the same master is returned as it is.

    Args:
        settings: The master and how long to wait for it.
        app_name: The application's name on the cluster.

    Raises:
        PricewiseError: PySpark or Java missing, a malformed master, the master not answering in time, or a
            session on another master already running in this process.
    """
    require_spark()
    master = settings.spark_master
    check_master(master)
    from pyspark.sql import SparkSession  # noqa: PLC0415 - an optional extra

    existing = running()
    if existing is not None:
        if existing.sparkContext.master != master:
            raise PricewiseError(
                f"a Spark session on {existing.sparkContext.master} already runs in this process; "
                f"it cannot also use {master}"
            )
        return existing
    timeout = settings.spark_master_timeout_seconds
    probe_master(master, timeout)
    local = master.startswith("local")
    if local:
        # Spark binds its driver and block manager ports; on one machine they stay on the loopback address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Executors start this interpreter, which has pricewise and its model code (a cluster needs them installed).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if local:
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config(
            "spark.driver.host", "127.0.0.1"
        )
    logger.info("starting Spark on %s", master)
    spark = _within(timeout, "start", master, builder.getOrCreate)
    try:
        _within(timeout, "first job", master, lambda: spark.sparkContext.parallelize([0], 1).count())
    except PricewiseError:
        spark.stop()
        raise
    return spark


@contextmanager
def session(settings: Settings, app_name: str) -> Iterator[SparkSession]:
    """`start`, and stop the session on exit unless it was running before.

    Yields:
        A session whose master has answered.

    Raises:
        PricewiseError: As `start`.
    """
    require_spark()
    before = running()
    spark = start(settings, app_name)
    try:
        yield spark
    finally:
        if before is None:
            spark.stop()

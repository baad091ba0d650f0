"""Settings in; a Spark session, or a clear error naming what to install or which master did not answer, out
(all without starting Spark)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from pricewise import predict
from pricewise.config import load_config
from pricewise.engines import spark_session
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from tests.support.workspaces import SHIPPED_CONFIG, TEST_SAMPLE


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_missing_pyspark_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # makes `import pyspark` raise ImportError

    with pytest.raises(PricewiseError, match=r"needs PySpark.*pip install 'pricewise\[spark\]'"):
        spark_session.require_spark()


def test_missing_java_names_the_runtime_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_session.shutil, "which", lambda _name: None)
    with pytest.raises(PricewiseError, match=r"needs Java \(no `java` on PATH\).*Java 17"):
        spark_session.require_spark()

    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(PricewiseError, match=rf"JAVA_HOME={tmp_path} has no bin/java"):
        spark_session.require_spark()


def test_the_cli_says_what_to_install_when_pyspark_is_missing(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)

    result = cli("predict", "--engine", "spark", "-i", str(TEST_SAMPLE), "-o", str(tmp_path / "out.parquet"))

    assert result.exit_code == 2
    assert "pip install 'pricewise[spark]'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    ("master", "endpoints"),
    [
        ("local[2]", []),
        ("yarn", []),
        ("spark://10.0.0.5:7078", [("10.0.0.5", 7078)]),
        ("spark://a:7077,b:7079", [("a", 7077), ("b", 7079)]),
        ("spark://master", [("master", 7077)]),
        ("k8s://https://api.example:6443", [("api.example", 6443)]),
    ],
)
def test_master_urls_name_the_endpoints_to_dial(master: str, endpoints: list[tuple[str, int]]) -> None:
    assert spark_session.master_endpoints(master) == endpoints


@pytest.mark.parametrize("master", ["local[two]", "mesos://x:5050", "", "spark:/x"])
def test_a_malformed_master_is_refused_before_anything_starts(master: str) -> None:
    with pytest.raises(PricewiseError, match="PRICEWISE_SPARK_MASTER"):
        spark_session.check_master(master)


def test_a_master_that_does_not_answer_fails_predict_in_bounded_time(tmp_path: Path) -> None:
    master = f"spark://127.0.0.1:{closed_port()}"
    settings = Settings(
        data_dir=tmp_path / "data",
        spark_master=master,
        spark_master_timeout_seconds=2.0,
        config_path=SHIPPED_CONFIG,
    )
    output = tmp_path / "out.parquet"

    started = time.monotonic()
    with pytest.raises(PricewiseError, match=rf"Spark master {master} does not answer"):
        predict.run(load_config(SHIPPED_CONFIG), settings, TEST_SAMPLE, output, engine="spark")

    assert time.monotonic() - started < 5
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []  # nothing staged, not even a work folder


def test_a_call_that_blocks_is_abandoned_after_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(PricewiseError, match=r"did not answer within 0.5 s \(start\)"):
        spark_session._within(0.5, "start", "spark://h:7077", lambda: time.sleep(30))
    assert time.monotonic() - started < 3


def test_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=SHIPPED_CONFIG)
    with pytest.raises(PricewiseError, match="engine 'dask' is not one of local, spark"):
        predict.run(load_config(SHIPPED_CONFIG), settings, TEST_SAMPLE, tmp_path / "o.parquet", engine="dask")

"""Fixtures for the integration tests: the session's shared server, headless Chromium and a local Spark."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.servers import CHROMIUM, CHROMIUM_ARGS, Server, start_server
from tests.support.workspaces import Workspace


@pytest.fixture(scope="session")
def server(serving_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One single-worker server for the session on `serving_workspace` (champion v1, admin token set); tests must
    not change its model (a test that reloads starts its own server on a clone)."""
    running = start_server(serving_workspace, tmp_path_factory.mktemp("server-logs"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by playwright (installed by .ci/install-system-deps.sh)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI: run .ci/install-system-deps.sh")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local[2] session the spark engine finds running (and so leaves running), shared by the session's spark
    tests (a JVM start costs seconds); stopped at the end."""
    from pricewise.engines import spark_session
    from pricewise.settings import Settings

    if spark_session.java_executable() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Java runtime in CI: the spark engine's tests need Java 17")
        pytest.skip("no Java runtime (apt-get install openjdk-17-jre-headless)")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = Settings(data_dir=tmp_path_factory.mktemp("spark"), spark_master="local[2]")
    session = spark_session.start(settings, "pricewise-tests")
    yield session
    session.stop()

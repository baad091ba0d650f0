"""Fixtures for the integration tests: the session's shared server and headless Chromium."""

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

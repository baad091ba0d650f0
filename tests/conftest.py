"""Fixtures for every test: the real sample from ../shared, throwaway data directories, a CLI runner, and the
session's trained workspaces (built once, reused read-only: a test that changes one works on a clone of it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from pricewise.cli import app
from pricewise.settings import Settings
from tests.support.postgres import PostgresCluster, binaries
from tests.support.workspaces import (
    SHIPPED_CONFIG,
    TEST_SAMPLE,
    TRAIN_SAMPLE,
    Workspace,
    built_once,
    clone_workspace,
    make_workspace,
    promoted_workspace,
    tiny_workspace,
)

# Each xdist worker computes on one thread (PyTorch, BLAS, and the CLI processes the tests start): two workers with
# a thread per core each would oversubscribe the cores, and PyTorch's spinning threads then slow every encode
# manyfold. Set before anything imports PyTorch, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_threads, "1")

# Under pytest-xdist (`make test` runs two workers) each test module runs whole on one worker, so module fixtures (a
# browser, an Airflow process) are built once. The modules sharing a session workspace that takes minutes to build
# run on one worker too, so that no worker sits waiting for another's build; they are scheduled first, with the
# Airflow module, because they are the longest.
SHARED_WORKSPACE_MODULES = {
    "trained_workspace": ("tests/integration/test_lifecycle.py", "tests/model/test_behaviour.py"),
    "serving_workspace": (
        "tests/integration/test_export.py",
        "tests/integration/test_monitoring_page.py",
        "tests/integration/test_serving_api.py",
        "tests/integration/test_serving_faults.py",
        "tests/integration/test_serving_fuzz.py",
        "tests/integration/test_serving_page.py",
    ),
}
LONGEST_FIRST = ("trained_workspace", "tests/airflow/test_dags.py", "serving_workspace")
_GROUP_OF = {module: group for group, modules in SHARED_WORKSPACE_MODULES.items() for module in modules}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduling by module, with the modules of SHARED_WORKSPACE_MODULES as one unit each and the
    LONGEST_FIRST units sent first."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return _GROUP_OF.get(module, module)

        def _assign_work_unit(self, node: Any) -> None:
            for scope in LONGEST_FIRST:
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
                    break
            super()._assign_work_unit(node)

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test run in which a module uses a shared workspace without being listed with it: under xdist it
    would build that workspace on a second worker or wait for it there."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for fixture, modules in SHARED_WORKSPACE_MODULES.items():
            if fixture in getattr(item, "fixturenames", ()) and module not in modules:
                raise pytest.UsageError(
                    f"{module} uses {fixture}: add it to SHARED_WORKSPACE_MODULES in tests/conftest.py"
                )


@pytest.fixture(scope="session")
def train_sample() -> Path:
    """The real 8,000-row priced sample (CI places ../shared beside the clone)."""
    assert TRAIN_SAMPLE.is_file(), f"the shared sample is missing at {TRAIN_SAMPLE}; clone beside ../shared"
    return TRAIN_SAMPLE


@pytest.fixture(scope="session")
def test_sample() -> Path:
    """The real 2,001-row unpriced sample."""
    assert TEST_SAMPLE.is_file(), f"the shared sample is missing at {TEST_SAMPLE}"
    return TEST_SAMPLE


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory that the CLI and get_settings() use through PRICEWISE_DATA_DIR."""
    directory = tmp_path / "data"
    monkeypatch.setenv("PRICEWISE_DATA_DIR", str(directory))
    monkeypatch.setenv("PRICEWISE_CONFIG_PATH", str(SHIPPED_CONFIG))
    return directory


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Settings pointing at the fresh data directory."""
    return Settings(data_dir=data_dir, config_path=SHIPPED_CONFIG)


@pytest.fixture
def cli(data_dir: Path) -> Callable[..., Result]:
    """Invoke the pricewise CLI in-process against the fresh data directory."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def trained_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample trained once with the shipped config, for the tests that judge the shipped model: challenger
    v1 of each model, nothing promoted. Read-only: tests that promote or train again use `clone_workspace`."""

    def build(root: Path) -> Workspace:
        ws = make_workspace(root)
        result = ws.cli("train")
        assert result.exit_code == 0, result.output
        return ws

    return built_once(tmp_path_factory, "trained", build)


@pytest.fixture(scope="session")
def serving_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One promoted light workspace for the serving tests (champion v1). Its champion has the sentence-embedding
    component, so single suggestions take the threaded pricing path. Read-only: tests that register, promote or
    reload use `clone_workspace`."""
    return built_once(tmp_path_factory, "serving", lambda root: promoted_workspace(root, embedding=True))


@pytest.fixture(scope="session")
def light_champion_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample trained with the light config (Ridge only, seconds to train) and promoted: champion v1 of
    `pricewise`. Read-only: tests that monitor, retrain or serve into it use `clone_workspace`."""
    return built_once(tmp_path_factory, "light-champion", promoted_workspace)


@pytest.fixture(scope="session")
def tiny_validated_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """400 generated listings ingested and validated under the light config; nothing trained. Read-only."""
    return built_once(tmp_path_factory, "tiny-validated", tiny_workspace)


@pytest.fixture(scope="session")
def tiny_trained_workspace(
    tiny_validated_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    """`tiny_validated_workspace` trained (light config, seconds): baseline champion v1, main challenger v1.
    Read-only: tests that evaluate, promote or train again use `clone_workspace`."""

    def build(root: Path) -> Workspace:
        ws = clone_workspace(tiny_validated_workspace, root)
        result = ws.cli("train")
        assert result.exit_code == 0, result.output
        return ws

    return built_once(tmp_path_factory, "tiny-trained", build)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on a free loopback port for the session (a password role over TCP); each
    test takes its own database with `fresh_database()`; stopped and deleted at the end."""
    if binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no PostgreSQL server binaries in CI: run .ci/install-system-deps.sh")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql-15")
    cluster = PostgresCluster.create()
    yield cluster
    cluster.destroy()

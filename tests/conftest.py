"""Fixtures for every test: the real sample from ../shared, throwaway data directories, a CLI runner, and the
session's trained workspaces (built once, reused read-only: a test that changes one works on a clone of it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pricewise.cli import app
from pricewise.settings import Settings
from tests.support.workspaces import (
    SHIPPED_CONFIG,
    TEST_SAMPLE,
    TRAIN_SAMPLE,
    Workspace,
    clone_workspace,
    make_workspace,
    promoted_workspace,
    tiny_workspace,
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
    ws = make_workspace(tmp_path_factory.mktemp("trained"))
    result = ws.cli("train")
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture(scope="session")
def serving_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One promoted light workspace for the serving tests (champion v1). Its champion has the sentence-embedding
    component, so single suggestions take the threaded pricing path. Read-only: tests that register, promote or
    reload use `clone_workspace`."""
    return promoted_workspace(tmp_path_factory.mktemp("serving"), embedding=True)


@pytest.fixture(scope="session")
def light_champion_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample trained with the light config (Ridge only, seconds to train) and promoted: champion v1 of
    `pricewise`. Read-only: tests that monitor, retrain or serve into it use `clone_workspace`."""
    return promoted_workspace(tmp_path_factory.mktemp("light-champion"))


@pytest.fixture(scope="session")
def tiny_validated_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """400 generated listings ingested and validated under the light config; nothing trained. Read-only."""
    return tiny_workspace(tmp_path_factory.mktemp("tiny-validated"))


@pytest.fixture(scope="session")
def tiny_trained_workspace(
    tiny_validated_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    """`tiny_validated_workspace` trained (light config, seconds): baseline champion v1, main challenger v1.
    Read-only: tests that evaluate, promote or train again use `clone_workspace`."""
    ws = clone_workspace(tiny_validated_workspace, tmp_path_factory.mktemp("tiny-trained"))
    result = ws.cli("train")
    assert result.exit_code == 0, result.output
    return ws

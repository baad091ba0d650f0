"""The CLI surface: help on every command, clear errors, no tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

pytestmark = pytest.mark.integration

COMMANDS = [["ingest"], ["validate"], ["split"], ["data", "status"], ["data", "download"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], cli: Callable[..., Result]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert len(result.output.splitlines()) > 4


def test_status_without_a_warehouse_says_what_to_do(cli: Callable[..., Result]) -> None:
    result = cli("data", "status")
    assert result.exit_code == 2
    assert "run `pricewise ingest PATH` first" in result.output


def test_download_without_credentials_is_a_clear_error(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    result = cli("data", "download")
    assert result.exit_code == 2
    assert "no Kaggle credentials" in result.output


def test_a_config_typo_stops_the_command(
    cli: Callable[..., Result], tmp_path: Path, train_sample: Path
) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("validate:\n  rowz: {}\n")
    result = cli("--config", str(bad), "ingest", str(train_sample))
    assert result.exit_code == 2
    assert "typo.yaml is invalid: validate.rowz" in result.output

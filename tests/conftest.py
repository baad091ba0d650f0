"""Shared fixtures: the real sample from ../shared, throwaway data directories, tiny tables and a CLI runner."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pricewise.cli import app
from pricewise.columns import PRICED_COLUMNS
from pricewise.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "mercari"
TRAIN_SAMPLE = SHARED_DATA / "mercari_train_8k.tsv.gz"
TEST_SAMPLE = SHARED_DATA / "mercari_test_head2k_unpriced.tsv.gz"

PRICED_HEADER = PRICED_COLUMNS


def listing_row(i: int, **overrides: object) -> list[object]:
    """A plausible priced listing row with id i; keyword arguments replace fields."""
    row: dict[str, object] = {
        "train_id": i,
        "name": f"Item number {i}",
        "item_condition_id": 1 + i % 5,
        "category_name": ["Women/Tops & Blouses/T-Shirts", "Electronics/Video Games & Consoles/Games"][i % 2],
        "brand_name": ["Nike", ""][i % 2],
        "price": 10.0 + i % 7,
        "shipping": i % 2,
        "item_description": f"Great condition, worn {i % 3} times",
    }
    row.update(overrides)
    return [row[c] for c in PRICED_HEADER]


def write_table(
    path: Path, rows: Sequence[Sequence[object]], header: Sequence[str] = PRICED_HEADER, delimiter: str = "\t"
) -> Path:
    """Write rows as a Kaggle-style delimited file (gzip when the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:  # type: ignore[operator]
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


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
    monkeypatch.setenv("PRICEWISE_CONFIG_PATH", str(REPO / "configs" / "pricewise.yaml"))
    return directory


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Settings pointing at the fresh data directory."""
    return Settings(data_dir=data_dir, config_path=REPO / "configs" / "pricewise.yaml")


@pytest.fixture
def cli(data_dir: Path) -> Callable[..., Result]:
    """Invoke the pricewise CLI in-process against the fresh data directory."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@dataclass
class Workspace:
    """A data directory and config, with a CLI bound to them (runs in-process)."""

    settings: Settings
    config_path: Path

    def cli(self, *args: str) -> Result:
        env = {
            "PRICEWISE_DATA_DIR": str(self.settings.data_dir),
            "PRICEWISE_CONFIG_PATH": str(self.config_path),
        }
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def make_workspace(root: Path, config_text: str | None = None) -> Workspace:
    """A workspace with the shared training sample ingested and validated."""
    config_path = REPO / "configs" / "pricewise.yaml"
    if config_text is not None:
        config_path = root / "pricewise.yaml"
        config_path.write_text(config_text)
    ws = Workspace(Settings(data_dir=root / "data", config_path=config_path), config_path)
    assert ws.cli("ingest", str(TRAIN_SAMPLE)).exit_code == 0
    assert ws.cli("validate").exit_code == 0
    return ws


@pytest.fixture(scope="session")
def trained_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample trained once with the shipped config; version 1 of each model is never changed after."""
    ws = make_workspace(tmp_path_factory.mktemp("trained"))
    result = ws.cli("train")
    assert result.exit_code == 0, result.output
    return ws

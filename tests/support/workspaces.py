"""The shared sample, tiny tables and configs in; data directories with a CLI bound to them out (ingested,
validated, trained, promoted, or copied from one that already is)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from filelock import FileLock
from typer.testing import CliRunner, Result

from pricewise.cli import app
from pricewise.columns import PRICED_COLUMNS
from pricewise.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "configs" / "pricewise.yaml"
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


@dataclass
class Workspace:
    """A data directory and config, with a CLI bound to them (runs in-process)."""

    settings: Settings
    config_path: Path

    def cli(self, *args: str) -> Result:
        """Run `pricewise ARGS` in this process against this workspace."""
        env = {
            "PRICEWISE_DATA_DIR": str(self.settings.data_dir),
            "PRICEWISE_CONFIG_PATH": str(self.config_path),
        }
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def light_config_text(embedding: bool = False) -> str:
    """The shipped config with the main model cut to its Ridge component (seconds to train; same pyfunc and
    features), or to Ridge and the sentence-embedding component on its shorter text, and champion polling off
    (tests reload explicitly)."""
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    raw.setdefault("train", {}).setdefault("params", {}).update(
        {
            "n_mlp": 0,
            "n_binary_mlp": 0,
            "lgbm_rounds": 0,
            "embedding.enabled": embedding,
            "embedding.texts": ["brand_category_name"],
        }
    )
    # The contract tests read the OpenAPI schema and the docs pages, which the shipped config keeps off.
    raw.setdefault("serve", {}).update({"reload_poll_seconds": 0, "expose_docs": True})
    return str(yaml.safe_dump(raw))


def make_workspace(root: Path, config_text: str | None = None) -> Workspace:
    """A workspace with the shared training sample ingested and validated (the shipped config unless given)."""
    config_path = SHIPPED_CONFIG
    if config_text is not None:
        root.mkdir(parents=True, exist_ok=True)
        config_path = root / "pricewise.yaml"
        config_path.write_text(config_text, encoding="utf-8")
    ws = Workspace(Settings(data_dir=root / "data", config_path=config_path), config_path)
    assert ws.cli("ingest", str(TRAIN_SAMPLE)).exit_code == 0
    assert ws.cli("validate").exit_code == 0
    return ws


def promoted_workspace(root: Path, embedding: bool = False) -> Workspace:
    """The shared sample ingested, validated, trained (light model) and promoted: champion v1 of `pricewise`."""
    ws = make_workspace(root, light_config_text(embedding))
    for command in ("train", "promote"):
        result = ws.cli(command)
        assert result.exit_code == 0, result.output
    return ws


def clone_workspace(source: Workspace, root: Path) -> Workspace:
    """A copy of a workspace that a test may change freely: warehouse, MLflow store and artifacts, decisions and
    model cache, with the source's config, and a prediction log of its own (empty: a server may be writing the
    source's while it is copied).

    The MLflow store records artifact locations as absolute paths; they are rewritten to the copy's, so runs
    and model versions added to the copy land in the copy, and the source stays as it was. Copying takes well
    under a second where rebuilding a promoted workspace takes tens of seconds.
    """
    root.mkdir(parents=True, exist_ok=True)
    old = source.settings.data_dir.resolve()
    new = (root / "data").resolve()
    shutil.copytree(old, new, ignore=shutil.ignore_patterns("predictions.db*"))
    config_path = source.config_path
    if config_path.resolve().is_relative_to(old.parent):
        config_path = root / config_path.name
        shutil.copy2(source.config_path, config_path)
    store = new / "mlflow" / "mlflow.db"
    if store.is_file():
        _rewrite_paths(store, f"{old}/", f"{new}/")
    return Workspace(Settings(data_dir=new, config_path=config_path), config_path)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Workspace]
) -> Workspace:
    """A read-only workspace built once per test run, however many pytest-xdist workers ask for it.

    Alone, pytest builds it in a temporary directory. Under xdist the first worker to ask builds it in the run's
    shared temporary directory while the others wait on a file lock; then every worker gets its own clone, so no
    two processes write one workspace (a server's prediction log, MLflow's store).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / f"built-{name}"
    done = shared / "workspace.json"
    with FileLock(f"{shared}.lock"):
        if done.is_file():
            paths = json.loads(done.read_text(encoding="utf-8"))
            data_dir, config_path = Path(paths["data_dir"]), Path(paths["config_path"])
            built = Workspace(Settings(data_dir=data_dir, config_path=config_path), config_path)
        else:
            if shared.exists():  # a worker that failed while building left half a workspace
                shutil.rmtree(shared)
            built = build(shared / "build")
            paths = {"data_dir": str(built.settings.data_dir), "config_path": str(built.config_path)}
            done.write_text(json.dumps(paths), encoding="utf-8")
    return clone_workspace(built, tmp_path_factory.mktemp(name))


def _rewrite_paths(database: Path, old: str, new: str) -> None:
    """Replace a path prefix in every text column of a SQLite database."""
    with sqlite3.connect(database) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in con.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], str(column[2]).upper()
                if any(t in kind for t in ("CHAR", "TEXT", "CLOB")):
                    con.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )
    con.close()


def tiny_listings(n: int = 400) -> list[list[object]]:
    """n plausible priced listings whose price follows their condition and brand (something to learn)."""
    return [
        listing_row(i, price=round(8.0 + 3.0 * (i % 5) + (9.0 if i % 2 == 0 else 0.0) + (i % 7) / 7, 2))
        for i in range(n)
    ]


def tiny_workspace(root: Path, rows: int = 400, config_text: str | None = None) -> Workspace:
    """A workspace with `rows` generated listings ingested and validated (light config unless given): enough
    rows in each split to train on in seconds."""
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "pricewise.yaml"
    config_path.write_text(config_text or light_config_text(), encoding="utf-8")
    ws = Workspace(Settings(data_dir=root / "data", config_path=config_path), config_path)
    table = write_table(root / "tiny.tsv", tiny_listings(rows))
    for args in (("ingest", str(table)), ("validate",)):
        result = ws.cli(*args)
        assert result.exit_code == 0, result.output
    return ws

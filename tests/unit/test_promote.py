"""The promotion gate and rollback on a real MLflow registry and decision store (Ridge-only models, seconds to
train): outcomes, their records, and the registry's alias as the one answer to "who is champion"."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from pricewise.store import decisions
from tests.support.workspaces import Workspace, clone_workspace, light_config_text, make_workspace


def config_text(**changes: object) -> str:
    raw = yaml.safe_load(light_config_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    return str(yaml.safe_dump(raw))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A weak v1 (heavy ridge penalty) promoted as the first champion, and a better v2 waiting as challenger.
    Read-only: each test works on a clone."""
    root = tmp_path_factory.mktemp("promote")
    weak = yaml.safe_load(light_config_text())
    weak["train"]["params"]["ridge_alpha"] = 300.0
    ws = make_workspace(root, light_config_text())
    weak_path = root / "weak.yaml"
    weak_path.write_text(yaml.safe_dump(weak), encoding="utf-8")
    for args in (("--config", str(weak_path), "train"), ("promote",), ("train",)):
        result = ws.cli(*args)
        assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def ws(base: Workspace, tmp_path: Path) -> Workspace:
    return clone_workspace(base, tmp_path / "clone")


def alias(ws: Workspace, name: str = "champion") -> str | None:
    client = MlflowClient(ws.settings.tracking_uri, ws.settings.tracking_uri)
    try:
        return str(client.get_model_version_by_alias("pricewise", name).version)
    except Exception:  # noqa: BLE001 - a missing alias is what some tests expect
        return None


def promotions(ws: Workspace) -> list[decisions.Promotion]:
    store = decisions.open_store(ws.settings)
    try:
        return store.promotions("pricewise")
    finally:
        store.close()


def test_the_first_model_becomes_champion_on_the_behaviour_checks_alone(base: Workspace) -> None:
    [first] = promotions(base)
    assert (first.action, first.champion_before, first.challenger, first.champion_after) == (
        "first",
        None,
        "1",
        "1",
    )
    assert "no champion yet" in first.reason
    assert "champion_rmsle" not in first.figures
    assert all(check["passed"] for check in first.figures["behaviour"])
    assert alias(base) == "1"
    assert alias(base, "challenger") == "2"


def test_a_better_challenger_is_promoted_and_the_challenger_alias_dropped(ws: Workspace) -> None:
    result = ws.cli("promote")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("promote: RMSLE")
    last = promotions(ws)[-1]
    assert (last.action, last.champion_before, last.champion_after) == ("promote", "1", "2")
    assert last.figures["gain"] == pytest.approx(
        last.figures["champion_rmsle"] - last.figures["challenger_rmsle"]
    )
    assert last.figures["gain"] > 0
    assert (alias(ws), alias(ws, "challenger")) == ("2", None)


def test_a_challenger_short_of_the_margin_is_refused_and_nothing_moves(ws: Workspace, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(config_text(promote__margin=5.0), encoding="utf-8")

    result = ws.cli("--config", str(strict), "promote")

    assert result.exit_code == 0, result.output
    last = promotions(ws)[-1]
    assert (last.action, last.champion_before, last.challenger, last.champion_after) == (
        "refuse",
        "1",
        "2",
        "1",
    )
    assert "by more than the margin 5.0" in last.reason
    assert (alias(ws), alias(ws, "challenger")) == ("1", "2")


def test_a_decision_that_cannot_be_recorded_leaves_the_alias_unmoved(ws: Workspace) -> None:
    store_file = ws.settings.data_dir / "decisions.db"
    for path in ws.settings.data_dir.glob("decisions.db*"):
        path.unlink()
    store_file.mkdir()  # SQLite cannot open a directory: recording fails after the gate judged

    result = ws.cli("promote")

    assert result.exit_code == 2
    assert "cannot open the decision tables" in result.output
    assert "Traceback" not in result.output
    assert (alias(ws), alias(ws, "challenger")) == ("1", "2")


def test_rollback_returns_to_the_previous_champion_once(ws: Workspace) -> None:
    assert ws.cli("promote").exit_code == 0

    result = ws.cli("rollback")

    assert result.exit_code == 0, result.output
    assert "rolled back from v2 to v1" in result.output
    assert alias(ws) == "1"
    assert [p.action for p in promotions(ws)] == ["first", "promote", "rollback"]
    again = ws.cli("rollback")
    assert again.exit_code == 2
    assert "no previous champion of pricewise to roll back to" in again.output
    assert alias(ws) == "1"


def test_rollback_after_the_alias_was_moved_by_hand_is_refused(ws: Workspace) -> None:
    assert ws.cli("promote").exit_code == 0
    client = MlflowClient(ws.settings.tracking_uri, ws.settings.tracking_uri)
    client.set_registered_model_alias("pricewise", "champion", "1")  # outside pricewise: no record

    result = ws.cli("rollback")

    assert result.exit_code == 2
    assert "champion v1 of pricewise was not set by `pricewise promote`" in result.output
    assert "move the alias in the MLflow registry or promote a challenger" in result.output
    assert alias(ws) == "1", "the alias is the truth: nothing moved"
    assert [p.action for p in promotions(ws)] == ["first", "promote"], "nothing recorded"


def test_promote_without_a_challenger_says_so(ws: Workspace) -> None:
    assert ws.cli("promote").exit_code == 0
    result = ws.cli("promote")
    assert result.exit_code == 2
    assert "no challenger for pricewise: run `pricewise train` first" in result.output


def test_rollback_with_only_the_first_champion_is_refused(ws: Workspace) -> None:
    result = ws.cli("rollback")
    assert result.exit_code == 2
    assert "no previous champion of pricewise to roll back to (history: ['1'])" in result.output
    assert alias(ws) == "1"

"""A real prediction log, warehouse and MLflow store in; the windows and the reference monitoring compares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pricewise.columns import FEATURE_COLUMNS
from pricewise.config import load_config
from pricewise.errors import PricewiseError
from pricewise.monitoring import windows
from pricewise.monitoring.windows import ComparedWindow
from pricewise.store import warehouse
from tests.support.logged import log_suggestions, small_workspace
from tests.support.workspaces import Workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """400 validated listings and 50 logged suggestions, 20 of them sold (one corrected); no model."""
    ws = small_workspace(tmp_path_factory.mktemp("windows"))
    log_suggestions(ws.settings, range(1, 51), sold={i: [30.0] for i in range(1, 21)} | {1: [99.0, 15.0]})
    return ws


def test_a_window_describes_itself() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    window = ComparedWindow.last_hours(2, now)
    assert (window.kind, window.start, window.end) == ("predictions", now - timedelta(hours=2), now)
    assert (
        window.describe() == "suggestions logged from 2026-11-20T10:00:00+00:00 to 2026-11-20T12:00:00+00:00"
    )
    assert ComparedWindow.of_batch("b1").describe() == "batch b1"
    assert ComparedWindow("predictions").describe() == "suggestions logged from the beginning to now"


def test_the_prediction_window_carries_the_latest_sold_price(workspace: Workspace) -> None:
    rows = windows.load_window(workspace.settings, ComparedWindow.last_hours(1))
    assert len(rows) == 50
    sold = rows.set_index("request_id")["sold_price"]
    assert sold["req-1"] == 15.0, "a corrected report: the latest sold price counts"
    assert sold.notna().sum() == 20
    assert rows["price"].eq(12.0).all()
    assert (rows["description_chars"] > 0).all()
    assert set(rows["category_name"]) == {
        "Women/Tops & Blouses/T-Shirts",
        "Electronics/Video Games & Consoles/Games",
    }


def test_a_window_outside_the_log_is_empty(workspace: Workspace) -> None:
    old = ComparedWindow(
        "predictions", start=datetime(2000, 1, 1, tzinfo=UTC), end=datetime(2000, 1, 2, tzinfo=UTC)
    )
    assert windows.load_window(workspace.settings, old).empty


def test_a_batch_window_is_its_listings_with_prices_as_sold_prices(workspace: Workspace) -> None:
    with warehouse.connect(workspace.settings, read_only=True) as con:
        row = con.execute("SELECT batch_id FROM batches").fetchone()
    assert row is not None
    rows = windows.load_window(workspace.settings, ComparedWindow.of_batch(str(row[0])))
    assert len(rows) == 400
    assert rows["sold_price"].between(10, 16).all()
    with pytest.raises(PricewiseError, match="no batch 'nope' in the warehouse"):
        windows.load_window(workspace.settings, ComparedWindow.of_batch("nope"))


def test_without_a_champion_the_reference_is_every_training_listing(workspace: Workspace) -> None:
    config = load_config(workspace.config_path)
    assert windows.champion(config, workspace.settings) is None
    reference, total = windows.load_reference(config, workspace.settings, None)
    again, _ = windows.load_reference(config, workspace.settings, None)
    assert 0 < total < 400, "the training split only"
    assert len(reference) == total  # fewer than monitor.max_rows: nothing sampled away
    assert list(reference.columns) == [*FEATURE_COLUMNS, "price"]
    assert reference.equals(again), "the sample is seeded"


def test_the_reference_of_unknown_batches_is_empty(workspace: Workspace) -> None:
    config = load_config(workspace.config_path)
    best = windows.Champion("pricewise", "9", "run", ("no-such-batch",), 0.5, datetime.now(UTC))
    reference, total = windows.load_reference(config, workspace.settings, best)
    assert (len(reference), total) == (0, 0)

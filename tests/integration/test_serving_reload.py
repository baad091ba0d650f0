"""A new champion loaded while another process holds the warehouse's write lock is served complete: its
comparables, its full category list on the seller page, and /ready green (serving reads no warehouse)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pricewise.store import tracking
from pricewise.store.warehouse import LOCK_WAIT_SECONDS
from tests.support.servers import ADMIN_TOKEN, LISTING, start_server
from tests.support.workspaces import Workspace, clone_workspace

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# Runs in the child: take DuckDB's write lock on the warehouse and keep it until killed.
HOLD_WRITE_LOCK = """
import sys, time
import duckdb

con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("CREATE TEMP TABLE held AS SELECT 1 AS x")
print("locked", flush=True)
time.sleep(600)
"""


def categories_on_page(html: str) -> list[str]:
    """The categories the seller page offers (the empty "(choose a category)" option left out)."""
    return [c for c in re.findall(r'<option value="([^"]*)"', html) if c]


def test_a_champion_moved_while_the_warehouse_is_locked_is_served_complete(
    light_champion_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(light_champion_workspace, tmp_path / "ws")
    server = start_server(ws, tmp_path)
    holder: subprocess.Popen[str] | None = None
    try:
        with server.client() as client:
            before = client.get("/v1/model").json()
            assert before["version"] == "1"
            page_before = categories_on_page(client.get("/").text)
            assert len(page_before) > 1

            trained = ws.cli("train")
            assert trained.exit_code == 0, trained.output
            tracking.configure(ws.settings)
            registry = MlflowClient()
            challenger = str(registry.get_model_version_by_alias("pricewise", "challenger").version)
            assert challenger != "1"

            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD_WRITE_LOCK, str(ws.settings.warehouse)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked", holder.stderr.read() if holder.stderr else ""
            # The champion moves while the lock is held (the alias is who is champion).
            registry.set_registered_model_alias("pricewise", "champion", challenger)

            started = time.monotonic()
            reloaded = client.post("/v1/admin/reload", headers=ADMIN)
            took = time.monotonic() - started
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["changed"] is True
            assert reloaded.json()["model"]["version"] == challenger
            assert took < LOCK_WAIT_SECONDS, (
                f"the reload waited {took:.1f} s: it must not touch the warehouse"
            )

            suggestion = client.post("/v1/suggestions", params={"include": "comparables"}, json=LISTING)
            assert suggestion.status_code == 200, suggestion.text
            assert suggestion.json()["model"]["version"] == challenger
            comparables = suggestion.json()["comparables"]
            assert comparables, "the new champion's comparables travel with it"
            assert all(c["price"] > 0 for c in comparables)

            page_after = categories_on_page(client.get("/").text)
            assert page_after == page_before, "the full category list, not one entry"
            ready = client.get("/ready")
            assert ready.status_code == 200
            assert ready.json()["status"] == "ready"
            again = client.post("/v1/admin/reload", headers=ADMIN)
            assert again.json()["detail"] == f"champion v{challenger} already serving"
            assert holder.poll() is None, "the lock was held throughout"
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(timeout=10)
        server.stop()

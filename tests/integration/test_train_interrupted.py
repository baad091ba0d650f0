"""A real `pricewise train` killed with SIGKILL in the middle in; after the next train, its runs marked failed and
no version of it left in the registry (neither half of the baseline + main pair), out."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pricewise.store import tracking
from pricewise.store.registry import TRAIN_RUN_TAG
from tests.support.servers import PRICEWISE
from tests.support.workspaces import Workspace, clone_workspace

pytestmark = pytest.mark.integration


def running_main_run(client: MlflowClient) -> bool:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
    return any(r.info.run_name == "main" for r in runs)


def test_a_train_killed_mid_way_leaves_no_half_pair_and_its_runs_end_failed(
    tiny_validated_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(tiny_validated_workspace, tmp_path / "ws")
    env = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(ws.settings.data_dir),
        "PRICEWISE_CONFIG_PATH": str(ws.config_path),
    }
    proc = subprocess.Popen(
        [str(PRICEWISE), "train"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = MlflowClient(ws.settings.tracking_uri, ws.settings.tracking_uri)
    try:
        deadline = time.monotonic() + 120
        # The baseline is fitted and logged once the main model's run has started.
        while not running_main_run(client):
            assert proc.poll() is None, "train ended before it could be killed mid-way"
            assert time.monotonic() < deadline, "train never reached the main model"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    [experiment] = [e.experiment_id for e in client.search_experiments() if e.name != "Default"]
    runs = {r.info.run_name: r for r in client.search_runs([experiment])}
    assert {name: r.info.status for name, r in runs.items()} == {
        "train": "RUNNING",
        "baseline": "FINISHED",
        "main": "RUNNING",
    }, "a killed process cannot end its runs"
    killed = [runs["train"], runs["main"]]
    assert client.search_model_versions("name = 'pricewise-baseline'") == [], "no half of the pair registered"

    again = ws.cli("train")

    assert again.exit_code == 0, again.output
    for run in killed:
        after = client.get_run(run.info.run_id)
        assert after.info.status == "FAILED", run.info.run_name
        assert f"pid {proc.pid}" in after.data.tags[tracking.FAILED_BECAUSE_TAG]
    for name, alias in (("pricewise-baseline", "champion"), ("pricewise", "challenger")):
        [version] = client.search_model_versions(f"name = '{name}'")
        assert client.get_model_version_by_alias(name, alias).version == version.version
        second = client.get_run(version.tags[TRAIN_RUN_TAG])
        assert second.info.status == "FINISHED"
        assert second.info.run_id != runs["train"].info.run_id

"""The DAGs in dags/ run for real: `airflow dags test` in Airflow's own virtualenv (SQLite metadata DB in a
temporary AIRFLOW_HOME), each task calling this environment's `pricewise` on the shared sample. The module's
`airflow` commands run one after another in one process of that virtualenv, which imports Airflow once.

Task states and triggered runs are read from Airflow's metadata DB; results from the warehouse and the MLflow
store the tasks wrote. The module's tests build on one trained data directory, in any order.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from pricewise.settings import Settings
from pricewise.store import decisions, warehouse
from tests.support.workspaces import REPO, TRAIN_SAMPLE, light_config_text, listing_row, write_table

pytestmark = pytest.mark.integration

AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
AIRFLOW_CLI = REPO / "tests" / "support" / "airflow_cli.py"
PRICEWISE = Path(sys.executable).parent / "pricewise"
TRAINING_TASKS = ("harvest_feedback", "ingest", "validate", "train", "evaluate", "promote")


@dataclass(frozen=True)
class Airflow:
    """An Airflow installation with its own home and metadata DB, running the repository's dags/.

    Its commands run one after another in one process of Airflow's virtualenv (tests/support/airflow_cli.py):
    each is what the `airflow` executable would do, without importing Airflow again (seconds a command).
    """

    home: Path
    env: dict[str, str]
    process: subprocess.Popen[str]
    answers: queue.Queue[str | None]
    commands: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls, home: Path, env: dict[str, str]) -> Airflow:
        """The process of Airflow's virtualenv that runs the installation's commands; its own log in `home`."""
        with (home / "airflow-cli.log").open("wb") as log:
            process = subprocess.Popen(
                [str(AIRFLOW.with_name("python")), str(AIRFLOW_CLI)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
        answers: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                answers.put(line)
            answers.put(None)

        threading.Thread(target=read, daemon=True).start()
        return cls(home, env, process, answers)

    def stop(self) -> None:
        """End the process. Every command has answered and committed its rows by then, and Airflow's exit
        handlers take seconds: it is killed rather than left to exit."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.kill()
        self.process.wait(timeout=30)

    def run(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `airflow ARGS`; extra_env is added to (or replaces in) the installation's environment."""
        n = next(self.commands)
        outputs = self.home / "commands"
        outputs.mkdir(exist_ok=True)
        stdout, stderr = outputs / f"{n}.out", outputs / f"{n}.err"
        request = {
            "argv": list(args),
            "env": {**self.env, **(extra_env or {})},
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        try:
            answer = self.answers.get(timeout=600)
        except queue.Empty:
            self.process.kill()
            answer = None
        if answer is None:
            log = (self.home / "airflow-cli.log").read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"airflow {' '.join(args)}: no answer from Airflow's process\n{log[-3000:]}")
        return subprocess.CompletedProcess(
            ["airflow", *args],
            json.loads(answer)["returncode"],
            stdout.read_text(encoding="utf-8", errors="replace"),
            stderr.read_text(encoding="utf-8", errors="replace"),
        )

    def dags_test(
        self, dag_id: str, conf: dict[str, object] | None = None, extra_env: dict[str, str] | None = None
    ) -> tuple[subprocess.CompletedProcess[str], str]:
        """One run of the DAG with `airflow dags test`; the finished process and the run's id."""
        before = set(self.runs(dag_id))
        args = ["dags", "test", dag_id] + (["--conf", json.dumps(conf)] if conf is not None else [])
        done = self.run(*args, extra_env=extra_env)
        runs = self.runs(dag_id)
        new = [run_id for run_id in runs if run_id not in before]
        assert len(new) == 1, tail(done)
        assert runs[new[0]][1] == "manual"
        return done, new[0]

    def query(self, sql: str, *params: str) -> list[tuple[object, ...]]:
        """Rows from the metadata DB."""
        with closing(sqlite3.connect(self.home / "airflow.db")) as con:
            return con.execute(sql, params).fetchall()

    def runs(self, dag_id: str) -> dict[str, tuple[str, str]]:
        """Every run of a DAG: run id -> (state, run type)."""
        rows = self.query("SELECT run_id, state, run_type FROM dag_run WHERE dag_id = ? ORDER BY id", dag_id)
        return {str(r): (str(s), str(t)) for r, s, t in rows}

    def tasks(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
        """Task id -> (state, tries made) for one run."""
        rows = self.query(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
            dag_id,
            run_id,
        )
        return {str(t): (None if s is None else str(s), int(str(n))) for t, s, n in rows}


@dataclass(frozen=True)
class Data:
    """A pricewise data directory and config, and the environment that points the DAG tasks at them."""

    settings: Settings
    env: dict[str, str]

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Rows from the warehouse."""
        with warehouse.connect(self.settings, read_only=True) as con:
            return con.execute(sql).fetchall()

    def decided(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of the decision tables (promotions, monitoring_runs, retrain_decisions), from their SQLite file."""
        path = self.settings.data_dir / "decisions.db"
        assert path.is_file(), f"no decision tables at {path}"
        con = sqlite3.connect(path)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def registry(self) -> MlflowClient:
        """The MLflow store the tasks wrote to."""
        uri = self.settings.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def champion(self) -> str:
        """The version the champion alias points at."""
        return str(self.registry().get_model_version_by_alias("pricewise", "champion").version)

    def versions(self) -> list[str]:
        """Every registered version of the main model."""
        return sorted(str(v.version) for v in self.registry().search_model_versions("name = 'pricewise'"))


def tail(done: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    """The errors and the end of a CLI run's output, for assertion messages."""
    output = (done.stdout + done.stderr).splitlines()
    errors = [line for line in output if "error:" in line or "exited" in line]
    return "\n".join([*errors, "...", *output[-lines:]])


def make_data(root: Path, config_path: Path) -> Data:
    """A fresh data directory; tasks run in `root` so that no .env file of the repository is read."""
    settings = Settings(data_dir=root / "data", config_path=config_path)
    env = {
        "PRICEWISE_DATA_DIR": str(settings.data_dir),
        "PRICEWISE_CONFIG_PATH": str(config_path),
        "PRICEWISE_WORKDIR": str(root),
    }
    return Data(settings, env)


def xcom(airflow: Airflow, dag_id: str, run_id: str, task_id: str) -> Any:
    """The value a task returned in one run."""
    rows = airflow.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
        dag_id,
        run_id,
        task_id,
    )
    assert len(rows) == 1
    return json.loads(str(rows[0][0]))


def with_config(base: Path, directory: Path, **sections: dict[str, object]) -> Path:
    """A copy of the config at `base` with some sections updated (one level deep), written to `directory`."""
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    for name, values in sections.items():
        section = raw.setdefault(name, {})
        for key, value in values.items():
            if isinstance(value, dict):
                section[key] = {**section.get(key, {}), **value}
            else:
                section[key] = value
    path = directory / "pricewise.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """Airflow with a migrated SQLite metadata DB in a temporary home; retries wait 1 s instead of 30."""
    assert AIRFLOW.is_file(), f"Airflow's virtualenv is missing ({AIRFLOW} not found): run `make airflow`"
    assert PRICEWISE.is_file(), f"no pricewise executable beside {sys.executable}"
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PRICEWISE_", "MLFLOW_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PRICEWISE_BIN": str(PRICEWISE),
            "PRICEWISE_DAG_RETRY_DELAY_SECONDS": "1",
        }
    )
    installation = Airflow.start(home, env)
    try:
        done = installation.run("db", "migrate")
        assert done.returncode == 0, tail(done)
        yield installation
    finally:
        installation.stop()


@pytest.fixture(scope="module")
def light_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped config with a Ridge-only main model: seconds to train."""
    path = tmp_path_factory.mktemp("config") / "pricewise.yaml"
    path.write_text(light_config_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(airflow: Airflow, light_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Data:
    """The training DAG run once on the shared sample, given as the `source` param."""
    data = make_data(tmp_path_factory.mktemp("trained"), light_config)
    done, run_id = airflow.dags_test(
        "pricewise_training", conf={"source": str(TRAIN_SAMPLE)}, extra_env=data.env
    )
    assert done.returncode == 0, tail(done)
    states = airflow.tasks("pricewise_training", run_id)
    assert states == dict.fromkeys(TRAINING_TASKS, ("success", 1)), tail(done)
    return data


def test_training_dag_ingests_validates_trains_evaluates_and_promotes(trained: Data) -> None:
    batches = trained.query("SELECT batch_id, kind, source_path, row_count FROM batches")
    assert [(kind, path, rows) for _, kind, path, rows in batches] == [("priced", str(TRAIN_SAMPLE), 8000)]
    assert trained.query("SELECT batch_id, status FROM validations") == [(batches[0][0], "pass")]
    # Other tests of this module run the DAG again on the same data (in random order): the first decision is this
    # run's, and none of theirs moves the champion.
    decided = trained.decided(
        "SELECT action, champion_before, champion_after FROM promotions ORDER BY decided_at"
    )
    assert decided[0] == ("first", None, "1")
    assert trained.champion() == "1"
    evaluated = trained.settings.reports / "evaluation" / "models-pricewise-challenger" / "evaluation.html"
    assert evaluated.is_file()


def test_a_refused_challenger_is_a_successful_run(
    airflow: Airflow, trained: Data, light_config: Path, tmp_path: Path
) -> None:
    # Nothing new to ingest; a heavily regularised model on the same data is clearly worse: the gate refuses.
    weak = with_config(light_config, tmp_path, train={"params": {"ridge_alpha": 300.0}})
    done, run_id = airflow.dags_test(
        "pricewise_training", extra_env={**trained.env, "PRICEWISE_CONFIG_PATH": str(weak)}
    )

    assert done.returncode == 0, tail(done)
    assert airflow.tasks("pricewise_training", run_id) == {
        **dict.fromkeys(TRAINING_TASKS, ("success", 1)),
        "ingest": ("skipped", 1),
    }
    assert xcom(airflow, "pricewise_training", run_id, "promote")["action"] == "refuse"
    last = trained.decided("SELECT action, challenger, champion_after FROM promotions ORDER BY decided_at")[
        -1
    ]
    assert last == ("refuse", "2", "1")
    assert trained.versions() == ["1", "2"]
    assert trained.champion() == "1"


def test_a_training_failure_is_retried_and_leaves_the_champion(airflow: Airflow, trained: Data) -> None:
    versions = trained.versions()
    promotions = trained.decided("SELECT count(*) FROM promotions")
    dead_server = {
        "PRICEWISE_MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens on the discard port
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    done, run_id = airflow.dags_test("pricewise_training", extra_env={**trained.env, **dead_server})

    assert done.returncode != 0, tail(done)
    assert "cannot reach the MLflow tracking server" in done.stdout + done.stderr
    assert airflow.tasks("pricewise_training", run_id) == {
        "harvest_feedback": ("success", 1),
        "ingest": ("skipped", 1),
        "validate": ("success", 1),
        "train": ("failed", 3),  # the first try and both retries
        "evaluate": ("upstream_failed", 0),
        "promote": ("upstream_failed", 0),
    }
    assert trained.champion() == "1"
    assert trained.versions() == versions
    assert trained.decided("SELECT count(*) FROM promotions") == promotions


def test_a_failed_validation_stops_the_run_before_training(
    airflow: Airflow, light_config: Path, tmp_path: Path
) -> None:
    # Condition 9 breaks a row rule in every row: all rejected, so the batch fails its checks.
    bad = write_table(tmp_path / "bad.tsv", [listing_row(i, item_condition_id=9) for i in range(1, 51)])
    data = make_data(tmp_path, light_config)
    done, run_id = airflow.dags_test(
        "pricewise_training", extra_env={**data.env, "PRICEWISE_INGEST_SOURCE": str(bad)}
    )

    assert done.returncode != 0, tail(done)
    assert airflow.tasks("pricewise_training", run_id) == {
        "harvest_feedback": ("success", 1),
        "ingest": ("success", 1),
        "validate": ("failed", 1),  # a verdict, not an accident: no retries although retries=2
        "train": ("upstream_failed", 0),
        "evaluate": ("upstream_failed", 0),
        "promote": ("upstream_failed", 0),
    }
    assert data.query("SELECT status, rows_read, rejected FROM validations") == [("fail", 50, 50)]
    assert data.registry().search_registered_models() == []


def latest_decision(data: Data) -> tuple[object, ...]:
    """Due, action and reasons of the newest retraining decision."""
    rows = data.decided("SELECT due, action, reasons FROM retrain_decisions ORDER BY decided_at DESC LIMIT 1")
    assert len(rows) == 1
    return rows[0]


def triggered_training_runs(airflow: Airflow) -> list[tuple[str, str]]:
    """(state, run type) of every pricewise_training run another DAG triggered."""
    return [(s, t) for s, t in airflow.runs("pricewise_training").values() if t == "operator_triggered"]


def test_monitoring_records_a_run_and_a_decision_and_triggers_nothing_when_not_due(
    airflow: Airflow, trained: Data
) -> None:
    triggered = triggered_training_runs(airflow)
    done, run_id = airflow.dags_test("pricewise_monitoring", conf={"last_hours": 1}, extra_env=trained.env)

    assert done.returncode == 0, tail(done)
    assert airflow.tasks("pricewise_monitoring", run_id) == {
        "monitor": ("success", 1),
        "decide": ("success", 1),
        "no_retrain": ("success", 1),
        "trigger_training": ("skipped", 0),
    }
    # No suggestions were served: nothing to compare is a result, not a failure.
    summary = xcom(airflow, "pricewise_monitoring", run_id, "monitor")
    assert summary["status"] == "empty"
    store = decisions.open_store(trained.settings)
    try:
        run = store.monitoring_run(str(summary["run_id"]))
    finally:
        store.close()
    assert run is not None
    assert run.window_start is not None
    assert run.window_end is not None
    assert (run.status, run.model_version, run.window_end - run.window_start) == (
        "empty",
        "1",
        timedelta(hours=1),
    )
    due, action, _ = latest_decision(trained)
    assert (due, action) == (False, "check")
    assert triggered_training_runs(airflow) == triggered


def test_monitoring_triggers_training_when_retraining_is_due(
    airflow: Airflow, trained: Data, light_config: Path, tmp_path: Path
) -> None:
    # The champion, trained earlier in this module, is older than a maximum age of under nine seconds.
    config = with_config(light_config, tmp_path, retrain={"max_age_days": 0.0001})
    triggered = triggered_training_runs(airflow)

    done, run_id = airflow.dags_test(
        "pricewise_monitoring", extra_env={**trained.env, "PRICEWISE_CONFIG_PATH": str(config)}
    )

    assert done.returncode == 0, tail(done)
    assert airflow.tasks("pricewise_monitoring", run_id) == {
        "monitor": ("success", 1),
        "decide": ("success", 1),
        "no_retrain": ("skipped", 0),
        "trigger_training": ("success", 1),
    }
    due, action, reasons = latest_decision(trained)
    assert (due, action) == (True, "check")
    assert [r["rule"] for r in json.loads(str(reasons)) if r["triggered"]] == ["age"]
    # `dags test` runs no scheduler: the triggered run waits in the queue.
    assert triggered_training_runs(airflow) == [*triggered, ("queued", "operator_triggered")]


def test_catalogue_dag_scores_a_parquet_dataset_on_spark_and_records_the_model_version(
    airflow: Airflow, trained: Data, tmp_path: Path
) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    frame = pd.read_csv(TRAIN_SAMPLE, sep="\t", dtype=str, keep_default_na=False).head(1500)
    for n in range(2):
        frame.iloc[n * 750 : (n + 1) * 750].to_parquet(catalogue / f"part-{n}.parquet", index=False)
    nightly = tmp_path / "scored"
    env = {**trained.env, "PRICEWISE_SPARK_MASTER": "local[2]", "SPARK_LOCAL_IP": "127.0.0.1"}

    done, run_id = airflow.dags_test(
        "pricewise_catalogue", conf={"source": str(catalogue), "output": str(nightly)}, extra_env=env
    )

    assert done.returncode == 0, tail(done)
    assert airflow.tasks("pricewise_catalogue", run_id) == {"score": ("success", 1), "record": ("success", 1)}
    recorded = xcom(airflow, "pricewise_catalogue", run_id, "record")
    assert recorded["model_version"] == f"pricewise/{trained.champion()}"
    assert recorded["rows"] == 1500
    [output] = list(nightly.iterdir())
    assert output.suffix == ".parquet"
    assert recorded["output"] == str(output)
    manifest = json.loads((output / "_manifest.json").read_text(encoding="utf-8"))
    assert sorted(f["file"] for f in manifest["files"]) == sorted(recorded["files"])
    assert {f["model_version"] for f in manifest["files"]} == {recorded["model_version"]}
    scored = pd.concat(pq.read_table(output / name).to_pandas() for name in recorded["files"])
    assert sorted(scored["id"]) == sorted(frame["train_id"])
    assert set(scored["model_version"]) == {recorded["model_version"]}


def test_catalogue_dag_fails_without_retries_on_a_model_that_does_not_exist(
    airflow: Airflow, trained: Data, tmp_path: Path
) -> None:
    nightly = tmp_path / "scored"
    conf = {"source": str(TRAIN_SAMPLE), "output": str(nightly), "model": "models:/nope/9"}

    done, run_id = airflow.dags_test("pricewise_catalogue", conf=conf, extra_env=trained.env)

    assert done.returncode != 0, tail(done)
    assert "models:/nope/9" in done.stdout + done.stderr
    assert airflow.tasks("pricewise_catalogue", run_id) == {
        "score": ("failed", 1),
        "record": ("upstream_failed", 0),
    }
    assert not nightly.exists() or list(nightly.iterdir()) == []

"""The light champion and the shared samples in; `pricewise predict --engine spark` on local[2] out, compared with
the local engine (same rows, same reasons, log prices within 1e-9), on files and Parquet datasets, and its faults:
PySpark or Java missing, a master that does not answer, an unknown model, a file of another schema, a killed job.
One Spark session serves the module; the in-process CLI finds it running and leaves it running."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pricewise import predict
from pricewise.config import load_config
from pricewise.engines import spark_predict
from tests.support.exports import as_export
from tests.support.workspaces import REPO, TEST_SAMPLE, TRAIN_SAMPLE, Workspace

pytestmark = pytest.mark.integration

MODEL_VERSION = "pricewise/1"
SHIPPED_MAPPING = REPO / "configs" / "sources" / "mercari_us_export.yaml"


@pytest.fixture(scope="module")
def ws(light_champion_workspace: Workspace, spark: Any) -> Workspace:
    """The light champion (v1) on the module's local[2] master, whatever the environment names."""
    settings = light_champion_workspace.settings.model_copy(update={"spark_master": "local[2]"})
    return Workspace(settings, light_champion_workspace.config_path)


def score(ws: Workspace, input_path: Path, output: Path, engine: str) -> predict.PredictResult:
    return predict.run(load_config(ws.config_path), ws.settings, input_path, output, engine=engine)


def read_scores(output: Path) -> pd.DataFrame:
    """A scores file or a folder of Parquet part files, sorted by id."""
    frame = pd.read_parquet(output)
    return frame.sort_values("id", ignore_index=True)


def assert_same_scores(spark_scores: pd.DataFrame, local_scores: pd.DataFrame) -> None:
    assert list(spark_scores.columns) == list(predict.OUTPUT_COLUMNS)
    assert spark_scores["id"].tolist() == local_scores["id"].tolist()
    spark_reasons = [r if isinstance(r, str) else None for r in spark_scores["reasons"]]
    local_reasons = [r if isinstance(r, str) else None for r in local_scores["reasons"]]
    assert spark_reasons == local_reasons
    for column in ("price", "low", "high"):
        ours, theirs = spark_scores[column].to_numpy(float), local_scores[column].to_numpy(float)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs)), column
        priced = ~np.isnan(theirs)
        assert priced.sum() > 0
        np.testing.assert_allclose(np.log1p(ours[priced]), np.log1p(theirs[priced]), rtol=0, atol=1e-9)
    assert set(spark_scores["model_version"]) == {MODEL_VERSION}


@pytest.fixture(scope="module")
def unpriced_scores(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The unpriced sample scored by both engines: the spark output folder, and the local engine's scores."""
    root = tmp_path_factory.mktemp("unpriced")
    score(ws, TEST_SAMPLE, root / "local.parquet", "local")
    score(ws, TEST_SAMPLE, root / "spark.parquet", "spark")
    return root / "spark.parquet", read_scores(root / "local.parquet")


def test_the_unpriced_sample_scores_as_on_the_local_engine(
    unpriced_scores: tuple[Path, pd.DataFrame],
) -> None:
    output, local_scores = unpriced_scores
    spark_scores = read_scores(output)

    assert len(spark_scores) == 2001
    assert_same_scores(spark_scores, local_scores)
    refused = spark_scores[spark_scores["price"].isna()]
    assert len(refused) > 0
    assert refused["reasons"].notna().all()
    # A broken description is blanked and the row scored, flagged as on the local engine.
    flagged = spark_scores[spark_scores["price"].notna() & spark_scores["reasons"].notna()]
    assert set(flagged["reasons"]) == {"description_blanked_broken_encoding"}


def test_the_manifest_names_the_model_version_of_every_part_file(
    unpriced_scores: tuple[Path, pd.DataFrame],
) -> None:
    output, _ = unpriced_scores
    manifest = json.loads((output / spark_predict.MANIFEST).read_text(encoding="utf-8"))

    parts = spark_predict.part_files(output)
    assert parts
    assert manifest["model_version"] == MODEL_VERSION
    assert manifest["model_uri"] == "models:/pricewise@champion"
    assert manifest["rows"] == 2001
    assert sorted(f["file"] for f in manifest["files"]) == sorted(p.name for p in parts)
    assert {f["model_version"] for f in manifest["files"]} == {MODEL_VERSION}
    assert sum(f["rows"] for f in manifest["files"]) == sum(pq.read_metadata(p).num_rows for p in parts)
    # Nothing of the work folder is left beside the output.
    assert [p.name for p in output.parent.iterdir() if p.name.startswith(".")] == []


@pytest.fixture(scope="module")
def train_table() -> pa.Table:
    """The priced sample as read from its file."""
    frame = pd.read_csv(TRAIN_SAMPLE, sep="\t", dtype=str, keep_default_na=False)
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.mark.parametrize("partitioned", [False, True], ids=["flat", "hive-partitioned"])
def test_a_parquet_dataset_scores_as_on_the_local_engine(
    ws: Workspace, train_table: pa.Table, tmp_path: Path, partitioned: bool
) -> None:
    dataset = tmp_path / "catalogue"
    if partitioned:
        # Partitioned by a key of the catalogue's own (the files hold every listing column).
        shard = pa.array([str(int(i) % 3) for i in train_table["train_id"].to_pylist()])
        pq.write_to_dataset(train_table.append_column("shard", shard), dataset, partition_cols=["shard"])
    else:
        dataset.mkdir()
        for n, start in enumerate(range(0, train_table.num_rows, 3000)):
            pq.write_table(train_table.slice(start, 3000), dataset / f"part-{n}.parquet")
    assert len([p for p in dataset.rglob("*.parquet") if p.is_file()]) == 3

    on_spark = score(ws, dataset, tmp_path / "spark.parquet", "spark")
    on_local = score(ws, dataset, tmp_path / "local.parquet", "local")

    assert (on_spark.scored, on_spark.rejected) == (on_local.scored, on_local.rejected)
    assert on_spark.scored + on_spark.rejected == 8000
    assert on_spark.model_version == MODEL_VERSION
    assert_same_scores(read_scores(tmp_path / "spark.parquet"), read_scores(tmp_path / "local.parquet"))


def test_csv_output_is_a_folder_of_csv_parts_with_the_local_engines_rows(
    ws: Workspace, unpriced_scores: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    _, local_scores = unpriced_scores
    output = tmp_path / "scores.csv"

    result = ws.cli("predict", "--engine", "spark", "-i", str(TEST_SAMPLE), "-o", str(output))

    assert result.exit_code == 0, result.output
    rejected = int(local_scores["price"].isna().sum())
    assert f"{len(local_scores) - rejected} scored, {rejected} rejected with pricewise/1" in result.output
    parts = spark_predict.part_files(output)
    assert parts
    assert all(p.suffix == ".csv" for p in parts)
    frame = pd.concat([pd.read_csv(p, dtype={"id": str}) for p in parts]).sort_values("id", ignore_index=True)
    assert_same_scores(frame, local_scores)
    manifest = json.loads((output / spark_predict.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == "csv"
    assert {f["model_version"] for f in manifest["files"]} == {MODEL_VERSION}


def test_a_mapped_export_scores_as_on_the_local_engine(ws: Workspace, tmp_path: Path) -> None:
    frame = pd.read_csv(TEST_SAMPLE, sep="\t", dtype=str, keep_default_na=False, nrows=300)
    export = tmp_path / "export.csv"
    as_export(frame, priced=False).to_csv(export, index=False)
    for engine in ("local", "spark"):
        result = ws.cli(
            "predict",
            "--engine",
            engine,
            "--mapping",
            str(SHIPPED_MAPPING),
            "-i",
            str(export),
            "-o",
            str(tmp_path / f"{engine}.parquet"),
        )
        assert result.exit_code == 0, result.output

    local_scores = read_scores(tmp_path / "local.parquet")
    assert_same_scores(read_scores(tmp_path / "spark.parquet"), local_scores)
    # The mapping's id rewrite ("m123" -> "123") is what both engines report.
    assert set(local_scores["id"]) == set(frame["test_id"])


def test_missing_pyspark_is_a_message_naming_the_extra(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` raises ImportError

    result = ws.cli("predict", "--engine", "spark", "-i", str(TEST_SAMPLE), "-o", str(tmp_path / "o.parquet"))

    assert result.exit_code == 2
    assert "needs PySpark" in result.output
    assert "pip install 'pricewise[spark]'" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def cli_subprocess(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`pricewise ARGS` in a process of its own (and its own process group), against the workspace."""
    base = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(ws.settings.data_dir),
        "PRICEWISE_CONFIG_PATH": str(ws.config_path),
        "PRICEWISE_SPARK_MASTER": "local[2]",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("pricewise")), *args],
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_missing_java_is_a_message_naming_the_runtime(ws: Workspace, tmp_path: Path) -> None:
    # A PATH with this interpreter's scripts only, and no JAVA_HOME: no java to find.
    env = {"PATH": str(Path(sys.executable).parent)}
    base = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    output = tmp_path / "o.parquet"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "environ", base)
        proc = cli_subprocess(
            ws, "predict", "--engine", "spark", "-i", str(TEST_SAMPLE), "-o", str(output), env=env
        )
    out, _ = proc.communicate(timeout=120)

    assert proc.returncode == 2, out
    assert "needs Java (no `java` on PATH)" in out
    assert "openjdk-17-jre-headless" in out
    assert "Traceback" not in out
    assert not output.exists()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_master_that_does_not_answer_fails_in_bounded_time(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = f"spark://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("PRICEWISE_SPARK_MASTER", master)
    monkeypatch.setenv("PRICEWISE_SPARK_MASTER_TIMEOUT_SECONDS", "2")
    output = tmp_path / "o.parquet"

    started = time.monotonic()
    result = ws.cli("predict", "--engine", "spark", "-i", str(TEST_SAMPLE), "-o", str(output))

    assert time.monotonic() - started < 10
    assert result.exit_code == 2
    assert f"Spark master {master} does not answer" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_model_that_does_not_exist_is_named(ws: Workspace, tmp_path: Path) -> None:
    output = tmp_path / "o.parquet"

    result = ws.cli(
        "predict", "--engine", "spark", "-i", str(TEST_SAMPLE), "-o", str(output), "--model", "models:/nope/9"
    )

    assert result.exit_code == 2
    assert "models:/nope/9" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_file_of_another_schema_in_the_folder_is_named_and_nothing_is_written(
    ws: Workspace, train_table: pa.Table, tmp_path: Path
) -> None:
    dataset = tmp_path / "catalogue"
    dataset.mkdir()
    pq.write_table(train_table, dataset / "part-0.parquet")
    pq.write_table(pa.table({"sku": ["a", "b"], "cost": [1.0, 2.0]}), dataset / "part-1.parquet")
    output = tmp_path / "out" / "scores.parquet"
    output.parent.mkdir()

    result = ws.cli("predict", "--engine", "spark", "-i", str(dataset), "-o", str(output))

    assert result.exit_code == 2
    assert "part-1.parquet" in result.output
    assert "Traceback" not in result.output
    assert list(output.parent.iterdir()) == []


def test_a_file_the_executors_cannot_read_is_named_as_on_the_local_engine_and_nothing_is_written(
    ws: Workspace, train_table: pa.Table, tmp_path: Path
) -> None:
    dataset = tmp_path / "catalogue"
    dataset.mkdir()
    # A valid file beside it: a slice of the sample (its size plays no part in the fault).
    pq.write_table(train_table.slice(0, 300), dataset / "part-0.parquet")
    # The right columns, so the driver's check passes; no rows, which only the file's reader finds out.
    pq.write_table(train_table.slice(0, 0), dataset / "part-1.parquet")
    messages = {}
    for engine in ("local", "spark"):
        output = tmp_path / engine / "scores.parquet"
        output.parent.mkdir()
        result = ws.cli("predict", "--engine", engine, "-i", str(dataset), "-o", str(output))
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert list(output.parent.iterdir()) == []
        messages[engine] = result.output

    assert "part-1.parquet: the file has a header but no rows" in messages["spark"]
    assert messages["spark"] == messages["local"]


def test_a_job_killed_while_scoring_leaves_the_earlier_output_as_it_was(
    ws: Workspace, unpriced_scores: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    output = tmp_path / "scores.parquet"
    # An earlier finished output of the spark engine at the path the killed job writes.
    shutil.copytree(unpriced_scores[0], output)
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    assert spark_predict.MANIFEST in before

    proc = cli_subprocess(ws, "predict", "--engine", "spark", "-i", str(TRAIN_SAMPLE), "-o", str(output))
    try:
        deadline = time.monotonic() + 240
        # Spark's committer makes _temporary in the result folder when the write (and so the scoring) starts.
        while not any(tmp_path.glob(f".{output.name}.partial-*/result/_temporary")):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the job never started writing"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the JVM it started, if still there
        proc.communicate()

    assert proc.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [output.name]

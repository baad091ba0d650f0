"""A tiny listings file and a registered model in; a scored file (price, range, version, reasons for rejects)
written whole, out."""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pricewise import predict
from pricewise.columns import PRICED_COLUMNS, UNPRICED_COLUMNS
from pricewise.config import load_config
from pricewise.errors import PricewiseError
from pricewise.models.baseline import RulesBaseline
from pricewise.models.ranges import ConformalPriceRanges
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import tracking
from tests.support.workspaces import (
    SHIPPED_CONFIG,
    Workspace,
    clone_workspace,
    listing_row,
    tiny_listings,
    write_table,
)


def unpriced_rows(n: int) -> list[list[object]]:
    """n listings without a price, in the Kaggle test file's columns."""
    price_at = PRICED_COLUMNS.index("price")
    return [[v for j, v in enumerate(listing_row(i)) if j != price_at] for i in range(n)]


def fitted_baseline() -> PriceSuggester:
    frame = pd.DataFrame(tiny_listings(200), columns=list(PRICED_COLUMNS))
    log_price = np.log1p(frame.pop("price").to_numpy(dtype=float))
    features = frame.drop(columns=["train_id"])
    model = RulesBaseline(min_group_size=5)
    model.fit(features, log_price)
    ranges = ConformalPriceRanges(coverage=0.8).calibrate(model.predict(features), log_price)
    return PriceSuggester(model=model, ranges=ranges, kind="RulesBaseline")


def test_chunks_are_scored_in_order_with_their_ids() -> None:
    suggester = fitted_baseline()
    frame = pd.DataFrame(tiny_listings(30), columns=list(PRICED_COLUMNS)).drop(columns=["price"])
    frame = frame.rename(columns={"train_id": "id"})
    chunks = [frame.iloc[:10], frame.iloc[10:25], frame.iloc[25:]]

    scored = list(predict.score_chunks(suggester, chunks, workers=1))

    assert [len(s) for s in scored] == [10, 15, 5]
    whole = pd.concat(scored, ignore_index=True)
    assert whole["id"].tolist() == list(range(30))
    assert list(whole.columns[:4]) == ["id", "price", "low", "high"]
    assert (whole["low"] <= whole["price"]).all()
    assert (whole["price"] <= whole["high"]).all()


def test_version_names_are_read_from_the_registry_only_for_aliases(tiny_trained_workspace: Workspace) -> None:
    tracking.configure(tiny_trained_workspace.settings)

    assert predict.describe_version("runs:/abc123/model") == "runs:/abc123/model"
    assert predict.describe_version("models:/pricewise/7") == "pricewise/7"
    assert predict.describe_version("models:/pricewise@challenger") == "pricewise/1"
    with pytest.raises(PricewiseError, match="models:/pricewise@champion does not exist"):
        predict.describe_version("models:/pricewise@champion")


def test_a_file_is_scored_whole_and_rejected_rows_get_reasons_instead_of_a_price(
    tiny_trained_workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = unpriced_rows(12)
    rows[3][UNPRICED_COLUMNS.index("name")] = ""
    rows[5][UNPRICED_COLUMNS.index("item_condition_id")] = 9
    source = write_table(tmp_path / "listings.tsv", rows, header=UNPRICED_COLUMNS)
    output = tmp_path / "out" / "scores.parquet"
    config = load_config(tiny_trained_workspace.config_path)

    with caplog.at_level(logging.INFO, logger="pricewise.progress"):
        result = predict.run(
            config, tiny_trained_workspace.settings, source, output, "models:/pricewise@challenger"
        )

    assert (result.scored, result.rejected) == (10, 2)
    said = [r.getMessage() for r in caplog.records if r.name == "pricewise.progress"]
    assert said, "predict reports its progress"
    # The rows to score are counted, not the rejected ones.
    assert said[-1].startswith("predict: 10/10 rows ... ")
    assert result.model_version == "pricewise/1"
    assert result.rows_per_second > 0
    scores = pd.read_parquet(output)
    assert list(scores.columns) == list(predict.OUTPUT_COLUMNS)
    rejected = scores[scores["reasons"].notna()].set_index("id")
    assert rejected.loc["3", "reasons"] == "name_empty"
    assert rejected.loc["5", "reasons"] == "condition_invalid"
    assert rejected["price"].isna().all()
    assert (scores.loc[scores["reasons"].isna(), "price"] > 0).all()
    assert set(scores["model_version"]) == {"pricewise/1"}
    assert [p.name for p in output.parent.iterdir()] == ["scores.parquet"], "no partial file is left"


def test_an_unknown_output_format_is_refused_before_any_work(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    with pytest.raises(PricewiseError, match=r"must end in one of \.csv, \.tsv, \.parquet"):
        predict.run(load_config(SHIPPED_CONFIG), settings, tmp_path / "in.tsv", tmp_path / "out.xlsx")

    assert not (tmp_path / "data").exists(), "nothing was set up for a run that cannot write its output"


class DiesWhenUnpickled:
    """Stands in for a model whose worker process ends as it starts (killed, or its imports fail)."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (os._exit, (1,))


def test_a_worker_that_dies_at_start_fails_predict_with_a_clear_message_in_bounded_time(
    tmp_path: Path,
) -> None:
    frame = pd.DataFrame(tiny_listings(30), columns=list(PRICED_COLUMNS)).drop(columns=["price"])
    frame = frame.rename(columns={"train_id": "id"})
    started = time.monotonic()

    with pytest.raises(PricewiseError, match="a scoring worker process ended unexpectedly") as caught:
        list(predict.score_chunks(DiesWhenUnpickled(), [frame] * 6, workers=2, scratch=tmp_path))  # type: ignore[arg-type]

    assert "predict.workers: 1" in str(caught.value)
    assert time.monotonic() - started < 60
    assert list(tmp_path.iterdir()) == [], "the model file handed to the workers is removed"


def test_a_version_registered_without_pricewise_digest_is_refused(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    ws = clone_workspace(tiny_trained_workspace, tmp_path / "ws")
    tracking.configure(ws.settings)
    client = MlflowClient()
    challenger = client.get_model_version_by_alias("pricewise", "challenger")
    by_hand = client.create_model_version("pricewise", source=challenger.source, run_id=challenger.run_id)
    source = write_table(tmp_path / "listings.tsv", unpriced_rows(5), header=UNPRICED_COLUMNS)
    output = tmp_path / "scores.csv"

    with pytest.raises(
        PricewiseError, match=f"refused pricewise v{by_hand.version}: it carries no artifact digest"
    ):
        predict.run(
            load_config(ws.config_path), ws.settings, source, output, f"models:/pricewise/{by_hand.version}"
        )
    with pytest.raises(PricewiseError, match="only registered models load"):
        predict.run(
            load_config(ws.config_path), ws.settings, source, output, f"runs:/{challenger.run_id}/model"
        )

    assert not output.exists()


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_ids_in_a_delimited_output_read_back_as_they_were_in_the_input(
    suffix: str, tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    """A rejected row echoes the input's id whatever its text, so the writer must quote every character."""
    rows = unpriced_rows(4)
    odd_ids = ["7\r8", 'say "x"', "a\tb", "c\nd", "back\\slash"]
    rows += [[odd, *rows[0][1:]] for odd in odd_ids]
    source = tmp_path / "listings.tsv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        # Every field quoted: the csv module leaves a lone carriage return bare otherwise.
        csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(
            [UNPRICED_COLUMNS, *rows]
        )
    output = tmp_path / f"scores{suffix}"

    result = predict.run(
        load_config(tiny_trained_workspace.config_path),
        tiny_trained_workspace.settings,
        source,
        output,
        "models:/pricewise@challenger",
    )

    scores = pd.read_csv(output, sep="\t" if suffix == ".tsv" else ",", dtype={"id": str})
    assert (result.scored, result.rejected) == (4, 5)
    assert len(scores) == 9
    assert sorted(scores["id"]) == sorted(["0", "1", "2", "3", *odd_ids])


def test_broken_optional_text_is_blanked_and_flagged_but_a_broken_name_is_refused(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    description, brand, name = (UNPRICED_COLUMNS.index(c) for c in ("item_description", "brand_name", "name"))
    rows = unpriced_rows(6)
    rows[1][description] = "Caf\u00c3\u00a9 mug, control \x01 char"
    rows[2][brand] = "Nike\ufffd"
    rows[3][name] = "Caf\ufffd mug"
    # The same listings with the broken text already empty: what the blanked rows must be priced as.
    blank = [list(r) for r in rows]
    blank[1][description] = ""
    blank[2][brand] = ""
    config = load_config(tiny_trained_workspace.config_path)
    scores = {}
    for label, table in (("broken", rows), ("blank", blank)):
        source = write_table(tmp_path / f"{label}.tsv", table, header=UNPRICED_COLUMNS)
        output = tmp_path / f"{label}.parquet"
        result = predict.run(
            config, tiny_trained_workspace.settings, source, output, "models:/pricewise@challenger"
        )
        assert (result.scored, result.rejected) == (5, 1)
        scores[label] = pd.read_parquet(output).set_index("id")

    broken, blanked = scores["broken"], scores["blank"]
    assert list(broken.reset_index().columns) == list(predict.OUTPUT_COLUMNS)
    assert broken.loc["1", "reasons"] == "description_blanked_broken_encoding"
    assert broken.loc["2", "reasons"] == "brand_blanked_broken_encoding"
    assert broken.loc[["1", "2"], "price"].tolist() == blanked.loc[["1", "2"], "price"].tolist()
    assert (broken.loc[["0", "1", "2", "4", "5"], "price"] > 0).all()
    assert np.isnan(broken.loc["3", "price"])
    assert "broken_encoding" in broken.loc["3", "reasons"].split(";")
    assert broken.loc[["0", "4", "5"], "reasons"].isna().all()

"""A tiny listings file and a registered model in; a scored file (price, range, version, reasons for rejects)
written whole, out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pricewise import predict
from pricewise.columns import PRICED_COLUMNS, UNPRICED_COLUMNS
from pricewise.config import load_config
from pricewise.errors import PricewiseError
from pricewise.models.baseline import RulesBaseline
from pricewise.models.ranges import ConformalPriceRanges
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import tracking
from tests.support.workspaces import SHIPPED_CONFIG, Workspace, listing_row, tiny_listings, write_table


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
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    rows = unpriced_rows(12)
    rows[3][UNPRICED_COLUMNS.index("name")] = ""
    rows[5][UNPRICED_COLUMNS.index("item_condition_id")] = 9
    source = write_table(tmp_path / "listings.tsv", rows, header=UNPRICED_COLUMNS)
    output = tmp_path / "out" / "scores.parquet"
    config = load_config(tiny_trained_workspace.config_path)

    result = predict.run(
        config, tiny_trained_workspace.settings, source, output, "models:/pricewise@challenger"
    )

    assert (result.scored, result.rejected) == (10, 2)
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

"""Another marketplace's export and its mapping in: the warehouse rows Kaggle's layout of the same listings gives,
the mapping in the batch lineage, the same scores; and each fault of a mapping or an export named, nothing kept."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import Result

from pricewise import ingest, predict, validate
from pricewise.config import Config, load_config
from pricewise.errors import InputFileError
from pricewise.inputs.source_mapping import SourceMapping, load_mapping
from pricewise.settings import Settings
from pricewise.store import batches, warehouse
from tests.support.exports import as_export
from tests.support.workspaces import SHIPPED_CONFIG, Workspace

SAMPLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"
SOURCES = SHIPPED_CONFIG.parent / "sources"
SHIPPED_MAPPING = SOURCES / "mercari_us_export.yaml"
URI = "models:/pricewise@challenger"


def kaggle_rows(n: int = 30) -> pd.DataFrame:
    """The first n listings of the shared sample, as text, in Kaggle's layout."""
    return pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False, nrows=n)


def write_export(path: Path, export: pd.DataFrame) -> Path:
    export.to_csv(path, index=False)
    return path


def listings(settings: Settings) -> list[tuple[object, ...]]:
    with warehouse.connect(settings, read_only=True) as con:
        return con.execute(
            "SELECT listing_id, kind, source_id, name, item_condition_id, category_name, brand_name, price, "
            "shipping, item_description, usable_for_training, split FROM listings ORDER BY listing_id"
        ).fetchall()


def batch_count(settings: Settings) -> int:
    if not settings.warehouse.exists():
        return 0
    with warehouse.connect(settings, read_only=True) as con:
        row = con.execute("SELECT count(*) FROM batches").fetchone()
    return int(row[0]) if row else 0


def test_the_shipped_mapping_is_valid_and_names_itself() -> None:
    loaded = load_mapping("mercari_us_export", SOURCES)

    assert loaded.name == "mercari_us_export"
    assert loaded.sha256 == hashlib.sha256(SHIPPED_MAPPING.read_bytes()).hexdigest()
    assert loaded.spec.price_unit == "cents"
    assert loaded.spec.columns["item_id"] == "id"
    assert loaded.spec.values["item_condition_id"]["Like new"] == 2


def test_a_mapped_export_lands_as_the_same_listings_kaggles_layout_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = kaggle_rows()
    kaggle_file = tmp_path / "train.tsv"
    frame.to_csv(kaggle_file, sep="\t", index=False)
    export = write_export(tmp_path / "export.csv", as_export(frame))
    by_layout = {}
    for name, paths, mapping in (("kaggle", kaggle_file, None), ("export", export, "mercari_us_export")):
        settings = Settings(data_dir=tmp_path / name, config_path=SHIPPED_CONFIG)
        result = ingest.run(Config(), settings, [paths], mapping)
        assert [b.kind for b in result.batches] == ["priced"]
        validate.run(Config(), settings)
        by_layout[name] = (settings, result.batches[0].batch_id, listings(settings))

    kaggle_listings, mapped_listings = by_layout["kaggle"][2], by_layout["export"][2]
    assert len(mapped_listings) >= 25, "most sample rows pass the row rules"
    assert mapped_listings == kaggle_listings
    # Prices in cents became dollars, words became codes, paths use '/'.
    first = mapped_listings[0]
    row = frame.set_index("train_id").loc[str(first[2])]
    assert first[7] == pytest.approx(float(row["price"]))
    assert first[4] == int(row["item_condition_id"])
    settings, batch_id, _ = by_layout["export"]
    record = None
    with warehouse.connect(settings, read_only=True) as con:
        record = batches.find_batch(con, batch_id)
    assert record is not None
    assert record.mapping_name == "mercari_us_export"
    assert record.mapping_sha256 == hashlib.sha256(SHIPPED_MAPPING.read_bytes()).hexdigest()
    kaggle_settings, kaggle_batch, _ = by_layout["kaggle"]
    with warehouse.connect(kaggle_settings, read_only=True) as con:
        kaggle_record = batches.find_batch(con, kaggle_batch)
    assert kaggle_record is not None
    assert (kaggle_record.mapping_name, kaggle_record.mapping_sha256) == (None, None)


def test_the_cli_ingests_with_a_mapping_and_records_it(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(10)))

    result = cli("ingest", "--mapping", "mercari_us_export", str(export))

    assert result.exit_code == 0, result.output
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute("SELECT mapping_name, row_count FROM batches").fetchall()
        raw = con.execute("SELECT source_id, item_condition_id, shipping, price FROM raw_listings").fetchall()
    assert rows == [("mercari_us_export", 10)]
    frame = kaggle_rows(10)
    expected = {
        (i, c, s, str(float(p)))
        for i, c, s, p in frame[["train_id", "item_condition_id", "shipping", "price"]].values
    }
    assert set(raw) == expected


def test_an_export_read_before_through_another_mapping_is_refused_and_the_same_one_is_skipped(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(10)))
    # A mapping that swaps two condition words: the same file through it gives other rows.
    swapped = tmp_path / "swapped.yaml"
    swapped.write_text(
        SHIPPED_MAPPING.read_text(encoding="utf-8")
        .replace("Good: 3", "Good: 4")
        .replace("Fair: 4", "Fair: 3"),
        encoding="utf-8",
    )
    assert swapped.read_text(encoding="utf-8") != SHIPPED_MAPPING.read_text(encoding="utf-8")

    first = cli("ingest", "--mapping", "mercari_us_export", str(export))
    again = cli("ingest", "--mapping", "mercari_us_export", str(export))
    other = cli("ingest", "--mapping", str(swapped), str(export))

    assert first.exit_code == again.exit_code == 0, again.output
    assert "already ingested" in again.output
    assert other.exit_code == 2
    assert "read through mapping sha256" in other.output
    assert "'swapped'" in other.output
    assert "Traceback" not in other.output
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute("SELECT mapping_name FROM batches").fetchall()
    assert rows == [("mercari_us_export",)]


def test_a_warehouse_from_before_mapping_lineage_still_opens_and_gains_the_columns(
    settings: Settings, tmp_path: Path
) -> None:
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        # The batches table as the first schema made it.
        con.execute(warehouse.SCHEMA.split("CREATE TABLE IF NOT EXISTS raw_listings")[0])
        con.execute(
            "ALTER TABLE batches DROP COLUMN IF EXISTS mapping_name; "
            "ALTER TABLE batches DROP COLUMN IF EXISTS mapping_sha256"
        )
        con.execute(
            "INSERT INTO batches VALUES ('bold', 'priced', 'old.tsv', '/old.tsv', 'tsv', 'x', 1, 0, now(), 1)"
        )
    with warehouse.connect(settings, read_only=True) as con:
        old = batches.find_batch(con, "bold")
    assert old is not None
    assert old.mapping_name is None
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(5)))

    result = ingest.run(Config(), settings, [export], "mercari_us_export")

    with warehouse.connect(settings, read_only=True) as con:
        names = con.execute("SELECT batch_id, mapping_name FROM batches ORDER BY ingested_at").fetchall()
    assert names == [("bold", None), (result.batches[0].batch_id, "mercari_us_export")]


def assert_refused(result: Result, settings: Settings, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert batch_count(settings) == 0, "nothing was written to the warehouse"


def custom_mapping(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    path = tmp_path / "market.yaml"
    path.write_text(edit(SHIPPED_MAPPING.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def test_a_mapping_with_an_unknown_key_is_refused_naming_the_file_and_key(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    mapping = custom_mapping(tmp_path, lambda text: text.replace("price_unit:", "price_units:"))
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(5)))

    result = cli("ingest", "--mapping", str(mapping), str(export))

    assert_refused(result, settings, "market.yaml is invalid", "price_units")


def test_a_column_the_export_lacks_is_named_with_the_mapping(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(5)).drop(columns=["brand"]))

    result = cli("ingest", "--mapping", "mercari_us_export", str(export))

    assert_refused(result, settings, "mapping mercari_us_export", "reads column(s) brand", "lacks")


def test_an_unmapped_condition_word_is_named_with_its_column_and_the_mapping(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    export_frame = as_export(kaggle_rows(8))
    export_frame.loc[6, "condition"] = "Very good"
    export = write_export(tmp_path / "export.csv", export_frame)

    result = cli("ingest", "--mapping", "mercari_us_export", str(export))

    assert_refused(result, settings, "mapping mercari_us_export", "column condition", "'Very good'")


def test_cents_that_are_not_whole_numbers_are_refused(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    export_frame = as_export(kaggle_rows(8))
    export_frame.loc[2, "price_cents"] = "1250.5"
    export = write_export(tmp_path / "export.csv", export_frame)

    result = cli("ingest", "--mapping", "mercari_us_export", str(export))

    assert_refused(result, settings, "mapping mercari_us_export", "'1250.5'", "not a whole number of cents")


def test_a_mapping_that_does_not_exist_is_named(
    cli: Callable[..., Result], settings: Settings, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(5)))

    result = cli("ingest", "--mapping", "no_such_market", str(export))

    assert_refused(result, settings, "mapping 'no_such_market' not found", "mercari_us_export")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"columns": {"t": "name"}}, "nothing maps to id, item_condition_id, shipping"),
        (
            {"columns": {"a": "id", "b": "name", "c": "item_condition_id", "d": "shipping", "e": "name"}},
            "several",
        ),
        ({"columns": {"a": "id", "b": "title"}}, "columns.b"),
    ],
)
def test_mapping_fields_are_checked(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SourceMapping.model_validate(raw)


def test_predict_scores_a_mapped_export_as_the_same_listings_in_kaggles_layout(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    frame = kaggle_rows(20)
    kaggle_file = tmp_path / "test.tsv"
    frame.drop(columns=["price"]).rename(columns={"train_id": "test_id"}).to_csv(
        kaggle_file, sep="\t", index=False
    )
    export = write_export(tmp_path / "export.csv", as_export(frame, priced=False))
    config = load_config(tiny_trained_workspace.config_path)

    mapped = predict.run(
        config,
        tiny_trained_workspace.settings,
        export,
        tmp_path / "mapped.parquet",
        URI,
        mapping=str(SHIPPED_MAPPING),
    )
    plain = predict.run(config, tiny_trained_workspace.settings, kaggle_file, tmp_path / "plain.parquet", URI)

    assert mapped.scored == plain.scored > 0
    ours = pd.read_parquet(tmp_path / "mapped.parquet").sort_values("id").reset_index(drop=True)
    theirs = pd.read_parquet(tmp_path / "plain.parquet").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)


def test_predict_refuses_a_value_the_mapping_cannot_translate(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    export_frame = as_export(kaggle_rows(5), priced=False)
    export_frame.loc[1, "shipping_paid_by"] = "split"
    export = write_export(tmp_path / "export.csv", export_frame)
    config = load_config(tiny_trained_workspace.config_path)
    output = tmp_path / "scores.parquet"

    with pytest.raises(InputFileError, match=r"mapping mercari_us_export .*column shipping_paid_by.*'split'"):
        predict.run(
            config, tiny_trained_workspace.settings, export, output, URI, mapping=str(SHIPPED_MAPPING)
        )
    assert not output.exists()


def test_the_predict_command_names_a_bad_mapping_and_exits_without_output(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    mapping = custom_mapping(tmp_path, lambda text: text.replace("category:\n", "category:\n  joiner: '/'\n"))
    export = write_export(tmp_path / "export.csv", as_export(kaggle_rows(5), priced=False))
    output = tmp_path / "scores.parquet"

    result = tiny_trained_workspace.cli(
        "predict", "--mapping", str(mapping), "-i", str(export), "-o", str(output), "--model", URI
    )

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "market.yaml is invalid" in result.output
    assert "category.joiner" in result.output
    assert not output.exists()

"""Config loading: defaults, the shipped file, and loud failures for typos and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from tests.support.workspaces import REPO


def test_shipped_config_matches_the_schema() -> None:
    config = load_config(REPO / "configs" / "pricewise.yaml")
    assert config.validate_.rows.max_price == 5000.0
    assert config.split.train == 0.8


def test_no_file_gives_defaults() -> None:
    assert load_config(None) == Config()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "validate:\n  rows:\n    max_prise: 10\n",
            "validate.rows.max_prise: Extra inputs are not permitted",
        ),
        ("split: {train: 0.9, valid: 0.1, test: 0.1}\n", "must be 1"),
        ("validate:\n  batch:\n    reject_share: {warn: 0.5, fail: 0.1}\n", "must be >= warn"),
        ("ingest: [1, 2]\n", "ingest"),
        ("- just a list\n", "must be a mapping"),
        ("split: {train: [\n", "not valid YAML"),
    ],
)
def test_bad_config_fails_loudly(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PricewiseError, match=r"bad\.yaml") as info:
        load_config(path)
    assert fragment in str(info.value)


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValueError, match="frozen"):
        config.split.train = 0.5  # type: ignore[misc]

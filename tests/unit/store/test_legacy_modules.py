"""Models pickled under the package's earlier module names load through store.registry.load_verified."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricewise.errors import PricewiseError
from pricewise.models.baseline import RulesBaseline
from pricewise.models.features.sparse import FeatureParams
from pricewise.models.ranges import ConformalPriceRanges
from pricewise.models.suggester import PriceSuggester
from pricewise.store.legacy_modules import current_name, old_module_names
from pricewise.store.registry import artifact_digest, load_verified


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [f"item {i}" for i in range(n)],
            "brand_name": ["Nike", "", "Apple", ""] * (n // 4),
            "category_name": ["Men/Shoes/Athletic", "Women/Tops/Blouses"] * (n // 2),
            "item_condition_id": [1 + i % 5 for i in range(n)],
            "shipping": [i % 2 for i in range(n)],
            "item_description": ["worn once"] * n,
        }
    )


def _old_style(data: bytes) -> bytes:
    """A protocol-0 pickle renamed to the module names models were pickled under before the layout change."""
    return data.replace(b"pricewise.models.suggester", b"pricewise.suggester").replace(
        b"pricewise.models.features", b"pricewise.features"
    )


def test_old_names_map_to_their_current_modules_and_nothing_else() -> None:
    assert current_name("pricewise.suggester") == "pricewise.models.suggester"
    assert current_name("pricewise.features.sparse") == "pricewise.models.features.sparse"
    assert current_name("pricewise.featuresx") is None
    assert current_name("pricewise.models.baseline") is None


def test_a_model_pickled_under_old_names_loads_and_suggests_the_same_prices(tmp_path: Path) -> None:
    frame = _frame(40)
    log_price = np.log1p(np.arange(40, dtype=float) + 5)
    baseline = RulesBaseline(min_group_size=2).fit(frame, log_price)
    ranges = ConformalPriceRanges(coverage=0.8).calibrate(baseline.predict(frame), log_price)
    suggester = PriceSuggester(model=baseline, ranges=ranges, kind="RulesBaseline")
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=suggester)
    old = _old_style(pickle.dumps(suggester, protocol=0))
    assert b"cpricewise.suggester\n" in old
    (model_dir / "python_model.pkl").write_bytes(old)

    loaded = load_verified(model_dir, artifact_digest(model_dir), "old-style model")

    pd.testing.assert_frame_equal(loaded.suggest(frame), suggester.suggest(frame))
    assert "pricewise.suggester" not in sys.modules


def test_old_feature_classes_resolve_only_inside_the_block() -> None:
    old = _old_style(pickle.dumps(FeatureParams(), protocol=0))
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    with old_module_names():
        restored = pickle.loads(old)
    assert restored == FeatureParams()
    assert "pricewise.features.sparse" not in sys.modules


def test_a_path_that_is_no_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PricewiseError, match="holds no model"):
        load_verified(tmp_path / "missing", "0" * 64, "missing model")


def test_a_pickle_naming_code_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    frame = _frame(8)
    baseline = RulesBaseline(min_group_size=1).fit(frame, np.ones(8))
    suggester = PriceSuggester(
        model=baseline, ranges=ConformalPriceRanges().calibrate(np.ones(8), np.ones(8)), kind="RulesBaseline"
    )
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=suggester)
    renamed = pickle.dumps(suggester, protocol=0).replace(b"pricewise.models.suggester", b"pricewise.nowhere")
    (model_dir / "python_model.pkl").write_bytes(renamed)
    with pytest.raises(PricewiseError, match=r"cannot load model .*ModuleNotFoundError"):
        load_verified(model_dir, artifact_digest(model_dir), "renamed model")


def test_loading_a_model_leaves_the_import_path_as_it_was(tmp_path: Path) -> None:
    frame = _frame(8)
    baseline = RulesBaseline(min_group_size=1).fit(frame, np.ones(8))
    suggester = PriceSuggester(
        model=baseline, ranges=ConformalPriceRanges().calibrate(np.ones(8), np.ones(8)), kind="RulesBaseline"
    )
    code = tmp_path / "code-src" / "extra"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=suggester, code_paths=[str(code)])
    before = list(sys.path)

    load_verified(model_dir, artifact_digest(model_dir), "model with code")

    assert sys.path == before

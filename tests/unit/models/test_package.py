"""The models package's names load on first use: stages that only load or judge a model start without PyTorch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pricewise.models
import pricewise.models.features


@pytest.mark.parametrize("package", [pricewise.models, pricewise.models.features])
def test_every_exported_name_resolves_and_an_unknown_one_is_an_attribute_error(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        _ = package.Missing  # type: ignore[attr-defined]


@pytest.mark.parametrize("stage", ["harvest", "promote", "predict", "evaluate", "monitor"])
def test_a_stage_that_fits_no_model_imports_without_pytorch(stage: str) -> None:
    probe = f"import sys, pricewise.{stage}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", f"pricewise.{stage} imports PyTorch at start-up"

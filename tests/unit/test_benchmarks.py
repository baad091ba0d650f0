"""The benchmark scripts import against the current package: they are run by hand, so nothing else would notice
a name they use moving (`crossval.py` once imported `Split` from where it no longer lives)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "benchmarks"
BENCHMARKS = sorted(p.stem for p in FOLDER.glob("*.py"))


def test_every_benchmark_script_is_found() -> None:
    assert {"crossval", "bench_serving", "bench_encoder", "model_experiments"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_the_benchmark_imports_and_has_a_main(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run as `python benchmarks/NAME.py` a script finds its siblings by bare name; run as `python -m
    # benchmarks.NAME` (from the repository root, which is on the test path too) as `benchmarks.SIBLING`.
    monkeypatch.syspath_prepend(str(FOLDER))
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"

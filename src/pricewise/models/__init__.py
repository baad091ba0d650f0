"""Listing frames and log prices in, fitted price models and price ranges out.

The names below load on first use (PEP 562), so a stage that needs only `metrics` or the suggester's interface
does not pay for PyTorch and scikit-learn at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pricewise.models.baseline import RulesBaseline
    from pricewise.models.ensemble import SparseTextEnsemble, SparseTextEnsembleParams
    from pricewise.models.kernel import EmbeddingKernelRidge, EmbeddingParams
    from pricewise.models.ranges import ConformalPriceRanges, coverage_and_width
    from pricewise.models.sparse_mlp import SparseMLPParams, SparseMLPRegressor

_HOMES = {
    "ConformalPriceRanges": "ranges",
    "EmbeddingKernelRidge": "kernel",
    "EmbeddingParams": "kernel",
    "RulesBaseline": "baseline",
    "SparseMLPParams": "sparse_mlp",
    "SparseMLPRegressor": "sparse_mlp",
    "SparseTextEnsemble": "ensemble",
    "SparseTextEnsembleParams": "ensemble",
    "coverage_and_width": "ranges",
}

__all__ = [
    "ConformalPriceRanges",
    "EmbeddingKernelRidge",
    "EmbeddingParams",
    "RulesBaseline",
    "SparseMLPParams",
    "SparseMLPRegressor",
    "SparseTextEnsemble",
    "SparseTextEnsembleParams",
    "coverage_and_width",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)

"""Listing frames and log prices in, fitted price models and price ranges out."""

from pricewise.models.baseline import RulesBaseline
from pricewise.models.ensemble import SparseTextEnsemble, SparseTextEnsembleParams
from pricewise.models.kernel import EmbeddingKernelRidge, EmbeddingParams
from pricewise.models.ranges import ConformalPriceRanges, coverage_and_width
from pricewise.models.sparse_mlp import SparseMLPParams, SparseMLPRegressor

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

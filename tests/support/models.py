"""Settings of small main models that tests fit in a second."""

from __future__ import annotations

from pricewise.models import SparseTextEnsembleParams
from pricewise.models.features import FeatureParams


def ridge_only_params(max_features: int) -> SparseTextEnsembleParams:
    """The main model with its Ridge component alone, on at most `max_features` name and text n-grams: the
    features, explanations and comparables of the full model, fitted on a few hundred listings in well under a
    second."""
    return SparseTextEnsembleParams(
        features=FeatureParams(name_max_features=max_features, text_max_features=max_features),
        n_mlp=0,
        n_binary_mlp=0,
        lgbm_rounds=0,
    )

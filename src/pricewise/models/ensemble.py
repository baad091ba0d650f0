"""Raw listing frame + log prices in, a blended Ridge + sparse-MLP (+ LightGBM) price model out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeAlias

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import nnls
from sklearn.linear_model import Ridge

from pricewise.columns import FEATURE_COLUMNS, TEXT_COLUMNS
from pricewise.models.features.sparse import FeatureParams, SparseFeatureBuilder
from pricewise.models.features.text import Listings, listing_fields, n_listings
from pricewise.models.kernel import EmbeddingKernelRidge, EmbeddingParams
from pricewise.models.sparse_mlp import SparseMLPParams, SparseMLPRegressor

logger = logging.getLogger(__name__)

Component: TypeAlias = Ridge | SparseMLPRegressor | lgb.LGBMRegressor | EmbeddingKernelRidge
# Told before each part of a fit: the part's name ("features", then each component's), how many components are
# fitted already, and every component's name in fitting order.
FitProgress: TypeAlias = Callable[[str, int, tuple[str, ...]], None]
# Told (texts encoded so far, texts in all) while the embedding component's sentence encoder runs.
EncodeProgress: TypeAlias = Callable[[int, int], None]
# The item conditions a listing is priced in by `predict_conditions`: 1 = new ... 5 = poor.
CONDITIONS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class SparseTextEnsembleParams:
    """Hyperparameters of the main model.

    Attributes:
        features: Sparse feature builder settings.
        ridge_alpha: L2 strength of the Ridge component.
        mlp: Settings shared by the TF-IDF-input MLPs.
        n_mlp: Number of TF-IDF-input MLPs (different seeds).
        n_binary_mlp: Number of binary-input MLPs (different seeds).
        lgbm_rounds: Maximum boosting rounds of the LightGBM component; 0 leaves it out.
        lgbm_learning_rate: LightGBM shrinkage.
        lgbm_leaves: LightGBM leaves per tree.
        embedding: The kernel ridge on sentence embeddings (off unless enabled; left out for large training sets).
        weights: Blend weights in component order (ridge, mlps, binary mlps, lgbm, embedding) used when fit gets no
            validation data; None means equal weights. With validation data, weights are fitted instead.
        seed: Seeds every component.
    """

    features: FeatureParams = field(default_factory=FeatureParams)
    ridge_alpha: float = 2.0
    mlp: SparseMLPParams = field(default_factory=SparseMLPParams)
    n_mlp: int = 2
    n_binary_mlp: int = 1
    lgbm_rounds: int = 1000
    lgbm_learning_rate: float = 0.05
    lgbm_leaves: int = 31
    embedding: EmbeddingParams = field(default_factory=EmbeddingParams)
    weights: tuple[float, ...] | None = None
    seed: int = 0


class SparseTextEnsemble:
    """Ridge, sparse MLPs and LightGBM on shared hashed TF-IDF features, optionally kernel ridge on sentence
    embeddings, blended by non-negative weights."""

    def __init__(self, params: SparseTextEnsembleParams | None = None) -> None:
        """Create an unfitted model.

        Args:
            params: Hyperparameters; defaults when None.
        """
        self.params = params or SparseTextEnsembleParams()
        self.builder_ = SparseFeatureBuilder(self.params.features)
        self.components_: dict[str, Component] = {}
        self.weights_: np.ndarray = np.empty(0)
        self.fit_seconds_: dict[str, float] = {}
        self._condition_shifts_cache: sp.csr_matrix | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The fitted state, without the condition shifts (rebuilt on first use)."""
        return {key: value for key, value in self.__dict__.items() if key != "_condition_shifts_cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the fitted state (also from pickles made before the shifts were cached)."""
        self.__dict__.update(state)
        self._condition_shifts_cache = None

    def _new_components(self, n_rows: int) -> dict[str, Component]:
        p = self.params
        components: dict[str, Component] = {"ridge": Ridge(alpha=p.ridge_alpha, random_state=p.seed)}
        for index in range(p.n_mlp):
            components[f"mlp_{index}"] = SparseMLPRegressor(p.mlp, seed=p.seed + index)
        binary = SparseMLPParams(**{**p.mlp.__dict__, "binary_input": True})
        for index in range(p.n_binary_mlp):
            components[f"mlp_binary_{index}"] = SparseMLPRegressor(binary, seed=p.seed + 100 + index)
        if p.lgbm_rounds > 0:
            components["lgbm"] = lgb.LGBMRegressor(
                n_estimators=p.lgbm_rounds,
                learning_rate=p.lgbm_learning_rate,
                num_leaves=p.lgbm_leaves,
                min_child_samples=10,
                colsample_bytree=0.3,
                subsample=0.8,
                subsample_freq=1,
                random_state=p.seed,
                deterministic=True,
                force_row_wise=True,
                n_jobs=2,
                verbose=-1,
            )
        if p.embedding.enabled and n_rows <= p.embedding.max_train_rows:
            components["embedding"] = EmbeddingKernelRidge(p.embedding)
        elif p.embedding.enabled:
            logger.info(
                "embedding component left out: %d training rows, more than embedding.max_train_rows=%d",
                n_rows,
                p.embedding.max_train_rows,
            )
        return components

    def fit(
        self,
        frame: pd.DataFrame,
        log_price: np.ndarray,
        valid_frame: pd.DataFrame | None = None,
        valid_log_price: np.ndarray | None = None,
        progress: FitProgress | None = None,
        encoded: EncodeProgress | None = None,
    ) -> Self:
        """Fit features and components; with validation data also fit blend weights and early stopping.

        Args:
            frame: Raw listing fields of the training rows.
            log_price: log1p(price) per training row.
            valid_frame: Optional held-out listings (early stopping and blend weights).
            valid_log_price: Their log1p(price).
            progress: Told before the features and before each component (see `FitProgress`); it sees the
                fit, never changes it.
            encoded: Told how many of the training texts the sentence encoder has embedded, the embedding
                component's longest part (minutes on a few thousand listings); likewise only seen.

        Returns:
            self.

        Raises:
            ValueError: if lengths differ or fixed weights do not match the components.
        """
        target = np.asarray(log_price, dtype=np.float64)
        if len(frame) != target.size:
            raise ValueError("frame and log_price must have equal length")
        has_valid = valid_frame is not None and valid_log_price is not None
        # Built before the features (unfitted, they hold only their settings) so that progress knows them all.
        self.components_ = self._new_components(len(frame))
        self._condition_shifts_cache = None
        names = tuple(self.components_)
        if progress is not None:
            progress("features", 0, names)
        started = time.perf_counter()
        features = self.builder_.fit(frame).transform(frame)
        valid_features = self.builder_.transform(valid_frame) if valid_frame is not None else None
        valid_target = np.asarray(valid_log_price, dtype=np.float64) if has_valid else None
        self.fit_seconds_ = {"features": time.perf_counter() - started}
        for done, (name, component) in enumerate(self.components_.items()):
            if progress is not None:
                progress(name, done, names)
            started = time.perf_counter()
            if isinstance(component, EmbeddingKernelRidge):
                component.fit(component.inputs(listing_fields(frame), encoded), features, target)
            else:
                self._fit_component(component, features, target, valid_features, valid_target)
            self.fit_seconds_[name] = time.perf_counter() - started
        if valid_features is not None and valid_frame is not None and valid_target is not None:
            stacked = self._component_matrix(list(self.components_.values()), valid_features, valid_frame)
            weights, _ = nnls(stacked, valid_target)
            if weights.sum() <= 0:
                weights = np.ones(stacked.shape[1])
        elif self.params.weights is not None:
            weights = np.asarray(self.params.weights, dtype=np.float64)
            if weights.size != len(self.components_):
                raise ValueError(f"weights need {len(self.components_)} values: {list(self.components_)}")
        else:
            weights = np.ones(len(self.components_))
        # A convex combination keeps the blend on the scale of its parts (no extrapolation).
        self.weights_ = weights / weights.sum()
        return self

    @staticmethod
    def _fit_component(
        component: Ridge | SparseMLPRegressor | lgb.LGBMRegressor,
        features: sp.csr_matrix,
        target: np.ndarray,
        valid_features: sp.csr_matrix | None,
        valid_target: np.ndarray | None,
    ) -> None:
        if isinstance(component, SparseMLPRegressor):
            component.fit(features, target, valid_features, valid_target)
        elif isinstance(component, lgb.LGBMRegressor) and valid_features is not None:
            component.fit(
                features,
                target,
                eval_X=(valid_features,),
                eval_y=(valid_target,),
                callbacks=[lgb.early_stopping(100, verbose=False)],
            )
        else:
            component.fit(features, target)

    @staticmethod
    def _component_matrix(
        components: list[Component], features: sp.csr_matrix, frame: Listings
    ) -> np.ndarray:
        columns = [
            component.predict(component.inputs(listing_fields(frame)), features)
            if isinstance(component, EmbeddingKernelRidge)
            else _predict_component(component, features)
            for component in components
        ]
        return np.column_stack(columns)

    def predict_components(self, frame: Listings) -> dict[str, np.ndarray]:
        """Predict log prices with every component separately (for diagnostics and benchmarks).

        Args:
            frame: Raw listing fields (a frame, or columns by name).

        Returns:
            Component name -> float64 array of log1p(price).
        """
        matrix = self._component_matrix(
            list(self.components_.values()), self.builder_.transform(frame), frame
        )
        return {name: matrix[:, index] for index, name in enumerate(self.components_)}

    def predict(self, frame: Listings) -> np.ndarray:
        """Predict log prices.

        Args:
            frame: Raw listing fields (a frame, or columns by name).

        Returns:
            float64 array of log1p(price), one per row.

        Raises:
            RuntimeError: if called before fit.
        """
        if not self.components_:
            raise RuntimeError("SparseTextEnsemble is not fitted")
        features = self.builder_.transform(frame)
        # A component the blend gives no weight would only cost time (its predictions are always finite).
        used = [
            (component, weight)
            for component, weight in zip(self.components_.values(), self.weights_, strict=True)
            if weight != 0.0
        ]
        matrix = self._component_matrix([component for component, _ in used], features, frame)
        return np.asarray(matrix @ np.array([weight for _, weight in used]), dtype=np.float64)

    def predict_conditions(self, frame: Listings) -> np.ndarray:
        """Predict the log price of every listing in each condition 1..5, its own condition ignored.

        The listing's texts are featurised and encoded once: the design rows of the other conditions differ
        from those of condition 1 only in the one-hot condition columns, and the embedding component prices
        all conditions from one kernel row per listing. Each row of the result is what `predict` gives the
        listing in that condition, up to floating-point rounding.

        Args:
            frame: Raw listing fields (a frame, or columns by name).

        Returns:
            float64 array of shape (n, 5): column j is the log1p(price) in condition j + 1.

        Raises:
            RuntimeError: if called before fit.
        """
        if not self.components_:
            raise RuntimeError("SparseTextEnsemble is not fitted")
        n_rows = n_listings(frame)
        columns: dict[str, Any] = {column: frame[column] for column in FEATURE_COLUMNS}
        columns["item_condition_id"] = np.full(n_rows, CONDITIONS[0], dtype=np.int64)
        first = self.builder_.transform(columns)
        # Condition-major: the n listings' rows in condition 1, then in condition 2, and so on.
        repeated = first[np.tile(np.arange(n_rows), len(CONDITIONS))]
        shifts = self._condition_shifts()[np.repeat(np.arange(len(CONDITIONS)), n_rows)]
        features = sp.csr_matrix(repeated + shifts)
        # No stored zeros and columns in order, as the builder writes them: a row's products then add up in the
        # same order as in `predict`.
        features.eliminate_zeros()
        features.sort_indices()
        blend = np.zeros((n_rows, len(CONDITIONS)), dtype=np.float64)
        for component, weight in zip(self.components_.values(), self.weights_, strict=True):
            if weight == 0.0:
                continue
            if isinstance(component, EmbeddingKernelRidge):
                predicted = component.predict_conditions(component.inputs(listing_fields(frame)), features)
            else:
                predicted = _predict_component(component, features).reshape(len(CONDITIONS), n_rows).T
            blend += weight * predicted
        return blend

    def _condition_shifts(self) -> sp.csr_matrix:
        """Row j: the design row change from condition 1 to condition j + 1 (one-hot columns only)."""
        shifts = self._condition_shifts_cache
        if shifts is None:
            # Listings alike but for their condition: their design rows differ exactly where conditions do.
            probe = self.builder_.transform(
                {
                    **{column: [""] * len(CONDITIONS) for column in TEXT_COLUMNS},
                    "item_condition_id": np.array(CONDITIONS, dtype=np.int64),
                    "shipping": np.zeros(len(CONDITIONS), dtype=np.int64),
                }
            )
            shifts = sp.csr_matrix(probe - probe[np.zeros(len(CONDITIONS), dtype=np.intp)])
            shifts.eliminate_zeros()
            self._condition_shifts_cache = shifts
        return shifts

    @property
    def encodes_text(self) -> bool:
        """True when predicting runs a transformer sentence encoder (milliseconds per listing, not microseconds)."""
        component = self.components_.get("embedding")
        if not isinstance(component, EmbeddingKernelRidge) or self.component_weights["embedding"] <= 0.0:
            return False
        return any(encoder.runs_transformer for encoder in component.encoders.values())

    @property
    def component_weights(self) -> dict[str, float]:
        """Blend weight per component (after fit)."""
        return {name: float(w) for name, w in zip(self.components_, self.weights_, strict=True)}


def _predict_component(
    component: Ridge | SparseMLPRegressor | lgb.LGBMRegressor, features: sp.csr_matrix
) -> np.ndarray:
    """One component's predictions as float64."""
    if isinstance(component, Ridge) and np.ndim(component.coef_) == 1:
        # Ridge.predict computes exactly this after validating its input, which costs more than the dot product
        # for a single row; the design matrix comes from the fitted builder, so its shape is right by construction.
        return np.asarray(features @ component.coef_ + component.intercept_, dtype=np.float64)
    return np.asarray(component.predict(features), dtype=np.float64)

"""Sparse CSR design matrix + targets in, a small PyTorch MLP regressor (and its predictions) out."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


@dataclass(frozen=True)
class SparseMLPParams:
    """Hyperparameters of one sparse-input MLP.

    Attributes:
        hidden: Width of the first (sparse x dense) layer.
        hidden2: Width of the two following layers.
        epochs: Passes over the data; the batch size doubles after each one.
        learning_rate: Adam learning rate.
        batch_size: First-epoch batch size; None picks n_rows / 100 rounded to a power of two in [32, 2048],
            so the number of optimiser steps is similar on a sample and on the full data.
        binary_input: Train on presence (1.0) instead of TF-IDF values: a cheap source of ensemble diversity.
    """

    hidden: int = 256
    hidden2: int = 64
    epochs: int = 3
    learning_rate: float = 3e-3
    batch_size: int | None = None
    binary_input: bool = False


class _Network(nn.Module):
    """Sparse first layer (a weight matrix used via sparse @ dense) followed by a small dense ReLU stack."""

    def __init__(self, n_inputs: int, params: SparseMLPParams, generator: torch.Generator) -> None:
        super().__init__()
        bound = float(np.sqrt(6.0 / (n_inputs + params.hidden)))
        self.first = nn.Parameter(
            torch.empty(n_inputs, params.hidden).uniform_(-bound, bound, generator=generator)
        )
        self.first_bias = nn.Parameter(torch.zeros(params.hidden))
        self.rest = nn.Sequential(
            nn.ReLU(),
            nn.Linear(params.hidden, params.hidden2),
            nn.ReLU(),
            nn.Linear(params.hidden2, params.hidden2),
            nn.ReLU(),
            nn.Linear(params.hidden2, 1),
        )
        for layer in self.rest:
            if isinstance(layer, nn.Linear):
                # Seeded explicitly so that results never depend on torch's global RNG state.
                layer_bound = float(np.sqrt(6.0 / (layer.in_features + layer.out_features)))
                with torch.no_grad():
                    layer.weight.uniform_(-layer_bound, layer_bound, generator=generator)
                    layer.bias.zero_()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(torch.sparse.mm(inputs, self.first))

    def head(self, first_out: torch.Tensor) -> torch.Tensor:
        """The network after the sparse product: first-layer bias, then the dense stack."""
        return torch.as_tensor(self.rest(first_out + self.first_bias)).squeeze(1)


class _Adam:
    """`torch.optim.Adam(params, lr)` with its defaults, writing its temporaries into buffers kept across steps.

    The same operations in the same order as torch's single-tensor CPU path, so the weights are bit-identical to
    it; but torch allocates a fresh first-layer-sized (n_inputs x hidden) temporary every step, and memory that
    large comes straight from the kernel, which faults in and zeroes every page of it: on the sample that cost
    more than the arithmetic. Gradients are passed in, so the first layer's can live in a buffer too.
    """

    def __init__(
        self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        self.params = params
        self.lr = lr
        self.betas = betas
        self.eps = 1e-8
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        self.denoms = [torch.empty_like(p) for p in params]
        self.steps = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        """Apply one update with these gradients (one per parameter, in order)."""
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        beta1, beta2 = self.betas
        self.steps += 1
        # torch counts steps in a float32 tensor and reads it back as a float: exact below 2**24 steps.
        step = float(self.steps)
        step_size = self.lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        for param, grad, exp_avg, exp_avg_sq, denom in zip(
            self.params, grads, self.exp_avgs, self.exp_avg_sqs, self.denoms, strict=True
        ):
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            torch.sqrt(exp_avg_sq, out=denom)
            denom.div_(bias_correction2_sqrt).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)


# Batches up to this many rows (a served request, or the few gathered while the previous call ran) run the
# forward pass in NumPy/SciPy: at that size torch's per-operator overhead and its thread pool (whose workers
# stall when the cores are busy serving requests) cost far more than the arithmetic. Larger batches use torch.
NUMPY_MAX_ROWS = 16


class _NumpyForward:
    """The trained network's inference pass on NumPy views of its weights (no copies)."""

    def __init__(self, network: _Network) -> None:
        self.first = network.first.detach().numpy()
        self.first_bias = network.first_bias.detach().numpy()
        # (weight.T, bias) of each Linear layer, None for each ReLU, in order.
        self.steps: list[tuple[np.ndarray, np.ndarray] | None] = []
        for layer in network.rest:
            if isinstance(layer, nn.Linear):
                self.steps.append((layer.weight.detach().numpy().T, layer.bias.detach().numpy()))
            elif isinstance(layer, nn.ReLU):
                self.steps.append(None)
            else:
                raise TypeError(f"no NumPy inference for layer {type(layer).__name__}")

    def __call__(self, features: sp.csr_matrix, binary: bool) -> np.ndarray:
        if binary:
            features = sp.csr_matrix(
                (np.ones_like(features.data), features.indices, features.indptr), shape=features.shape
            )
        hidden = np.asarray(features @ self.first, dtype=np.float32)
        hidden += self.first_bias
        for step in self.steps:
            if step is None:
                np.maximum(hidden, 0.0, out=hidden)
            else:
                weight, bias = step
                hidden = hidden @ weight
                hidden += bias
        return np.asarray(hidden[:, 0], dtype=np.float64)


def _grad(tensor: torch.Tensor) -> torch.Tensor:
    """The gradient backward left on a tensor of the loss's graph."""
    if tensor.grad is None:
        raise RuntimeError("backward left no gradient on a tensor of the loss's graph")
    return tensor.grad


def _as_float32_csr(features: sp.csr_matrix | np.ndarray) -> sp.csr_matrix:
    """The features as a float32 CSR matrix, without a copy (or scipy's re-validation) when they are one."""
    if isinstance(features, sp.csr_matrix) and features.dtype == np.float32:
        return features
    return sp.csr_matrix(features, dtype=np.float32)


def _to_torch(matrix: sp.csr_matrix, binary: bool) -> torch.Tensor:
    """Convert a CSR block to a torch sparse CSR tensor (values set to 1 for binary input)."""
    values = np.ones_like(matrix.data, dtype=np.float32) if binary else matrix.data.astype(np.float32)
    # Invariant checks would re-validate every batch; scipy CSR is already well formed. The "beta" notice
    # is about the API's stability, which the pinned torch version makes irrelevant.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(values),
            size=matrix.shape,
            check_invariants=False,
        )


class SparseMLPRegressor:
    """MLP on a sparse design matrix, trained with Adam for a few epochs of doubling batch size.

    This is the Mercari winners' recipe: it is linear in the number of rows and needs no GPU.
    """

    def __init__(self, params: SparseMLPParams | None = None, seed: int = 0) -> None:
        """Create an unfitted regressor.

        Args:
            params: Hyperparameters; defaults when None.
            seed: Seed of weight initialisation and batch order.
        """
        self.params = params or SparseMLPParams()
        self.seed = seed
        self.network_: _Network | None = None
        self.target_mean_: float = 0.0
        self.valid_rmse_: list[float] = []
        self._numpy_cache: _NumpyForward | None = None

    def __getstate__(self) -> dict[str, Any]:
        """The fitted state, without the NumPy views of the weights (rebuilt on first use)."""
        return {key: value for key, value in self.__dict__.items() if key != "_numpy_cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the fitted state (also from pickles made before the views were cached)."""
        self.__dict__.update(state)
        self._numpy_cache = None

    def _batch_size(self, n_rows: int) -> int:
        if self.params.batch_size is not None:
            return self.params.batch_size
        return int(np.clip(2 ** round(np.log2(max(n_rows, 1) / 100)), 32, 2048))

    def fit(
        self,
        features: sp.csr_matrix,
        target: np.ndarray,
        valid_features: sp.csr_matrix | None = None,
        valid_target: np.ndarray | None = None,
    ) -> Self:
        """Train the network; with validation data keep the weights of the best epoch.

        Args:
            features: CSR design matrix of the training rows.
            target: Regression target per row.
            valid_features: Optional held-out design matrix for epoch selection.
            valid_target: Its targets.

        Returns:
            self.
        """
        features = sp.csr_matrix(features, dtype=np.float32)
        target = np.asarray(target, dtype=np.float64)
        self._numpy_cache = None
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.target_mean_ = float(target.mean())
        network = _Network(features.shape[1], self.params, generator)
        dense = [network.first_bias, *network.rest.parameters()]
        optimizer = _Adam([network.first, *dense], lr=self.params.learning_rate)
        # The first layer's gradient, (rows of the batch)^T @ d loss / d first_out, written in place each step.
        first_grad = torch.zeros_like(network.first)
        centred = (target - self.target_mean_).astype(np.float32)
        best_rmse, best_state = np.inf, None
        self.valid_rmse_ = []
        batch = self._batch_size(features.shape[0])
        for _ in range(self.params.epochs):
            network.train()
            order = rng.permutation(features.shape[0])
            for start in range(0, order.size, batch):
                rows = order[start : start + batch]
                inputs = _to_torch(features[rows], self.params.binary_input)
                with torch.no_grad():
                    first_out = torch.sparse.mm(inputs, network.first)
                first_out.requires_grad_(True)
                loss = torch.mean((network.head(first_out) - torch.from_numpy(centred[rows])) ** 2)
                for param in dense:
                    param.grad = None
                loss.backward()  # type: ignore[no-untyped-call]
                torch.mm(inputs.t(), _grad(first_out), out=first_grad)
                optimizer.step([first_grad, *(_grad(param) for param in dense)])
            batch *= 2
            if valid_features is not None and valid_target is not None:
                self.network_ = network
                error = float(np.sqrt(np.mean((self.predict(valid_features) - valid_target) ** 2)))
                self.valid_rmse_.append(error)
                if error < best_rmse:
                    best_rmse = error
                    best_state = {key: value.clone() for key, value in network.state_dict().items()}
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
        self.network_ = network
        self._numpy_cache = None
        return self

    def predict(self, features: sp.csr_matrix, batch_rows: int = 65_536) -> np.ndarray:
        """Predict targets.

        Args:
            features: CSR design matrix.
            batch_rows: Rows per forward pass (bounds memory of the hidden activations).

        Returns:
            float64 array, one value per row.

        Raises:
            RuntimeError: if called before fit.
        """
        if self.network_ is None:
            raise RuntimeError("SparseMLPRegressor is not fitted")
        features = _as_float32_csr(features)
        if features.shape[0] <= NUMPY_MAX_ROWS:
            if self._numpy_cache is None:
                self._numpy_cache = _NumpyForward(self.network_)
            return self._numpy_cache(features, self.params.binary_input) + self.target_mean_
        self.network_.eval()
        parts = []
        with torch.inference_mode():
            for start in range(0, features.shape[0], batch_rows):
                block = _to_torch(features[start : start + batch_rows], self.params.binary_input)
                parts.append(self.network_(block).numpy().astype(np.float64))
        output = np.concatenate(parts) if parts else np.empty(0)
        return output + self.target_mean_

"""Tests of the sparse MLP's training loop: the same weights as the textbook autograd + torch.optim.Adam loop."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pricewise.models import SparseMLPParams, SparseMLPRegressor
from pricewise.models.sparse_mlp import _Adam, _Network, _to_torch


def reference_fit(
    features: sp.csr_matrix, target: np.ndarray, params: SparseMLPParams, seed: int, batch: int
) -> _Network:
    """The loop `SparseMLPRegressor.fit` replaces: autograd through the sparse product, torch's Adam."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = _Network(features.shape[1], params, generator)
    optimizer = torch.optim.Adam(network.parameters(), lr=params.learning_rate)
    centred = (target - target.mean()).astype(np.float32)
    for _ in range(params.epochs):
        order = rng.permutation(features.shape[0])
        for start in range(0, order.size, batch):
            rows = order[start : start + batch]
            prediction = network(_to_torch(features[rows], params.binary_input))
            loss = torch.mean((prediction - torch.from_numpy(centred[rows])) ** 2)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        batch *= 2
    return network


def problem(seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """400 rows of 3,000 sparse TF-IDF-like columns (a few dozen non-zeros a row) and a target they explain."""
    rng = np.random.default_rng(seed)
    features = sp.random(400, 3_000, density=0.01, format="csr", dtype=np.float32, random_state=rng)
    target = np.asarray(features @ rng.normal(size=3_000)).ravel() + 3.0
    return features, target


@pytest.mark.parametrize("binary_input", [False, True])
def test_fit_gives_the_weights_of_autograd_and_torch_adam_bit_for_bit(binary_input: bool) -> None:
    features, target = problem(1)
    params = SparseMLPParams(hidden=16, hidden2=8, epochs=3, batch_size=32, binary_input=binary_input)
    fitted = SparseMLPRegressor(params, seed=5).fit(features, target).network_
    assert fitted is not None
    expected = reference_fit(features, target, params, seed=5, batch=32)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(fitted.state_dict()[name], tensor), name
    # The comparison is not vacuous: training moved every parameter away from its initial value.
    initial = _Network(features.shape[1], params, torch.Generator().manual_seed(5))
    for name, tensor in initial.state_dict().items():
        assert not torch.equal(fitted.state_dict()[name], tensor), name


def test_adam_matches_torch_adam_over_many_steps_on_noisy_gradients() -> None:
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(50, 7, generator=generator)
    ours, theirs = start.clone(), torch.nn.Parameter(start.clone())
    adam, torch_adam = _Adam([ours], lr=0.01), torch.optim.Adam([theirs], lr=0.01)
    for _ in range(200):
        grad = torch.randn(50, 7, generator=generator)
        adam.step([grad])
        theirs.grad = grad.clone()
        torch_adam.step()
    assert torch.equal(ours, theirs.detach())
    assert not torch.equal(ours, start)


def test_adam_refuses_a_gradient_list_of_the_wrong_length_before_changing_anything() -> None:
    params = [torch.zeros(3), torch.zeros(2)]
    adam = _Adam(params, lr=0.1)
    with pytest.raises(ValueError, match="1 gradients for 2 parameters"):
        adam.step([torch.ones(3)])
    assert adam.steps == 0
    assert all(not p.any() for p in params)

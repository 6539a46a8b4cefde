"""sparsify() draws the masks of layers above DENSE_LIMIT row by row, never densely."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import topo  # noqa: E402
from topo.integrations.live import MASK_BUFFER  # noqa: E402
from topo.training import backends  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3000, 2000), torch.nn.ReLU(), torch.nn.Linear(2000, 10))


@pytest.mark.parametrize("backend", ["masked", "sparse"])
def test_large_layer_masks_are_drawn_by_rows_with_exact_counts(monkeypatch, backend):
    # 6,000,000 weights in the first layer: above a lowered limit, as a 2^26+ layer is above the real one
    monkeypatch.setattr(backends, "DENSE_LIMIT", 100_000)
    dense_draws = []
    import topo.training.masks as masks_module

    real = masks_module.sample_mask

    def refuse_large(fan_in, n_in, rng):
        dense_draws.append((len(fan_in), n_in))
        return real(fan_in, n_in, rng)

    monkeypatch.setattr(masks_module, "sample_mask", refuse_large)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    density = 20 / 3000
    tracemalloc.start()
    try:
        sparse = topo.sparsify(model, optimizer, method="rigl", density=density, distribution="uniform",
                               layers=r"^0$", epochs=1, steps_per_epoch=10, backend=backend)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the dense draw permutes an int64 [out, in] index matrix (48 MB here); a bool mask is 6 MB
    assert dense_draws == []
    assert peak < 4_000_000
    assert sparse.nnz() == [round(density * 3000 * 2000)] == sparse.budgets
    layer = model[0]
    if backend == "sparse":
        assert type(layer).__name__ == "SparseLinear" and not hasattr(layer, MASK_BUFFER)
        fan_in = layer.fan_in().numpy()
        mask = layer.mask_csr().toarray()
    else:
        mask = getattr(layer, MASK_BUFFER).numpy()
        fan_in = mask.sum(axis=1)
        assert np.all(layer.weight.detach().numpy()[~mask] == 0.0)
    assert int(fan_in.sum()) == sparse.nnz()[0]
    assert mask.shape == (2000, 3000) and int(mask.sum()) == sparse.nnz()[0]
    # the training step still works on it
    x, y = torch.randn(8, 3000), torch.randint(0, 10, (8,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert sparse.nnz()[0] == sparse.budgets[0]


def test_small_layers_keep_the_dense_draw(monkeypatch):
    """Below the limit nothing changes: the same masks as the shared rule's dense draw."""
    from topo.training.masks import initial_masks

    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse = topo.sparsify(model, optimizer, method="static", density=0.05, distribution="uniform", layers=r"^0$",
                           seed=4)
    expected = initial_masks([(2000, 3000)], 0.95, density="uniform", seed=4, names=["0"]).masks[0]
    assert np.array_equal(sparse.masks[0].numpy(), expected)


def test_a_100000_square_layer_at_fan_in_20_is_drawn_in_bounded_memory():
    """The draw sparsify uses for large layers: exact counts, memory proportional to the connections."""
    from topo.training.masks import initial_masks

    n = 100_000
    tracemalloc.start()
    try:
        mask = initial_masks([(n, n)], 1.0 - 20 / n, density="uniform", sparse_above=backends.DENSE_LIMIT).masks[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mask.shape == (n, n) and mask.nnz == 20 * n
    assert int(np.diff(mask.indptr).sum()) == 20 * n
    # no two connections at one position, columns in range
    keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(mask.indptr)) * n + mask.indices
    assert np.unique(keys).size == keys.size
    # a dense bool mask would be 10 GB; the CSR arrays and the draw's temporaries a few hundred MB at most
    assert peak < 400_000_000

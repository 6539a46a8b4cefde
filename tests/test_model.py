"""The masked MLP: masked weights stay zero, optimiser state resets, Topology round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topo.errors import TopoError
from topo.training.model import (
    build_model,
    from_topology,
    install_masks,
    layer_shapes,
    reset_optimizer_state,
    to_topology,
)

SHAPES = layer_shapes(12, [16, 8], 3)


def _masks(seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    return [rng.random(s) < density for s in SHAPES]


def _train(model, optimizer, steps=25, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 12, generator=gen)
        y = torch.randint(0, 3, (32,), generator=gen)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        model.mask_gradients()
        optimizer.step()
        model.apply_masks()


def test_shapes_and_names():
    assert SHAPES == [(16, 12), (8, 16), (3, 8)]
    model = build_model(SHAPES, _masks())
    assert model.names == ["fc1", "fc2", "fc3"]
    assert model(torch.zeros(5, 12)).shape == (5, 3)


def test_initial_weights_respect_masks_and_seed():
    masks = _masks()
    a, b = build_model(SHAPES, masks, seed=1), build_model(SHAPES, masks, seed=1)
    for layer, mask in zip(a.layers, masks):
        assert torch.all(layer.weight[~torch.from_numpy(mask)] == 0)
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.weight, lb.weight)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_masked_weights_stay_exactly_zero(kind):
    masks = _masks()
    model = build_model(SHAPES, masks)
    if kind == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    _train(model, optimizer)
    for layer, mask in zip(model.layers, masks):
        off = ~torch.from_numpy(mask)
        assert torch.all(layer.weight[off] == 0)
        assert torch.any(layer.weight[~off] != 0)
        for value in optimizer.state[layer.weight].values():
            if torch.is_tensor(value) and value.shape == layer.weight.shape:
                assert torch.all(value[off] == 0)  # no momentum builds up where the mask is off


def test_install_masks_resets_momentum_of_dropped_and_grown_weights():
    masks = _masks(density=0.5)
    model = build_model(SHAPES, masks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, optimizer, steps=5)
    old = model.masks[0].clone()
    on = torch.nonzero(old)[0].tolist()
    off = torch.nonzero(~old)[0].tolist()
    new = old.clone()
    new[on[0], on[1]] = False
    new[off[0], off[1]] = True
    buffer = optimizer.state[model.layers[0].weight]["momentum_buffer"]
    before = buffer.clone()
    assert before[on[0], on[1]] != 0
    changed = install_masks(model, optimizer, [new, model.masks[1], model.masks[2]])
    assert changed == [True, False, False]
    assert buffer[on[0], on[1]] == 0 and buffer[off[0], off[1]] == 0
    keep = old & new
    assert torch.equal(buffer[keep], before[keep])
    weight = model.layers[0].weight
    assert weight[on[0], on[1]] == 0 and weight[off[0], off[1]] == 0  # grown weight starts at 0
    assert torch.equal(model.masks[0], new)
    _train(model, optimizer, steps=3)
    assert torch.all(weight[~new] == 0)


def test_reset_optimizer_state_for_adam():
    model = build_model(SHAPES, _masks())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    _train(model, optimizer, steps=2)
    param = model.layers[1].weight
    positions = torch.ones_like(param, dtype=torch.bool)
    reset_optimizer_state(optimizer, param, positions)
    assert torch.all(optimizer.state[param]["exp_avg"] == 0)
    assert torch.all(optimizer.state[param]["exp_avg_sq"] == 0)


def test_topology_round_trip():
    masks = _masks()
    model = build_model(SHAPES, masks, seed=3)
    stats = [{"grad_mean": np.arange(o, dtype=np.float32)} for o, _ in SHAPES]
    topology = to_topology(model, stats=stats, info={"epoch": 2})
    assert topology.names == ["fc1", "fc2", "fc3"]
    assert topology.epoch == 2
    for layer, mask, module in zip(topology, masks, model.layers):
        assert layer.weight.dtype == np.float32 and layer.weight.shape == mask.shape
        assert np.array_equal(layer.mask.toarray(), mask)
        np.testing.assert_array_equal(layer.weight, module.weight.detach().numpy())
        np.testing.assert_array_equal(layer.bias, module.bias.detach().numpy())
        assert layer.stats["grad_mean"].shape == (mask.shape[0],)
    back = from_topology(topology)
    for a, b in zip(model.layers, back.layers):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    for a, b in zip(model.masks, back.masks):
        assert torch.equal(a, b)


def test_bad_shapes_raise_topo_error():
    with pytest.raises(TopoError, match="do not chain"):
        build_model([(4, 3), (2, 5)])
    with pytest.raises(TopoError, match="mask of fc1"):
        build_model([(4, 3)], [np.ones((3, 4), bool)])

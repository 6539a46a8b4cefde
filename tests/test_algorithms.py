"""Sparse-training algorithms: registry, exact drop/grow choices, count invariants (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topo.errors import TopoError
from topo.training.algorithms import (
    GGR,
    Prune,
    RigL,
    available_algorithms,
    cosine_drop_fraction,
    get_algorithm,
    ggr_update,
    magnitude_drop,
    magnitude_prune,
    rigl_update,
    set_update,
)
from topo.training.algorithms.ggr import ggr_drop_counts
from topo.training.algorithms.set import SET, set_drop_counts

SETTINGS = settings(max_examples=25, deadline=None)


def _layer(seed, out, inp, density):
    rng = np.random.default_rng(seed)
    mask = rng.random((out, inp)) < density
    weight = (rng.normal(size=(out, inp)) * mask).astype(np.float32)
    grad = rng.normal(size=(out, inp)).astype(np.float32)
    return torch.from_numpy(weight), torch.from_numpy(grad), torch.from_numpy(mask)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- registry ----------------------------------------------------------------------
def test_registry_knows_all_methods():
    assert set(available_algorithms()) >= {"static", "rigl", "set", "ggr", "prune"}
    algo = get_algorithm("rigl", update_every=7, drop_fraction=0.5, end_fraction=0.5, prune_steps=3)
    assert isinstance(algo, RigL) and algo.update_every == 7 and algo.drop_fraction == 0.5


def test_unknown_algorithm_lists_known_names():
    with pytest.raises(TopoError, match="unknown training method 'nope'.*rigl.*prune"):
        get_algorithm("nope")


def test_bad_option_is_a_topo_error():
    with pytest.raises(TopoError, match="drop_fraction"):
        get_algorithm("rigl", drop_fraction=1.5)


def test_cosine_drop_fraction():
    assert cosine_drop_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert cosine_drop_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert cosine_drop_fraction(100, 0.3, 100) == pytest.approx(0.0)


def test_rigl_schedule():
    algo = RigL(update_every=10, drop_fraction=0.3, end_fraction=0.5)
    algo.setup(masks=[np.zeros((2, 2), bool)], steps_per_epoch=10, epochs=10, total_steps=100)
    assert [s for s in range(1, 101) if algo.is_update_step(s)] == [10, 20, 30, 40, 50]
    masks = [torch.ones(10, 10, dtype=torch.bool).tril()]  # 55 active
    assert algo.counts(10, masks) == [math.floor(cosine_drop_fraction(10, 0.3, 50) * 55)]


# -- RigL --------------------------------------------------------------------------
def test_rigl_drops_smallest_and_grows_largest_gradient():
    weight = torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.0, 0.3, -0.05, 0.0]])
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    grad = torch.tensor([[0.0, 0.0, 0.9, 0.1], [0.2, 0.0, 0.0, -0.7]])
    new = rigl_update(weight, grad, mask, 2, _gen())
    expected = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool)
    assert torch.equal(new, expected)
    # inputs untouched
    assert int(mask.sum()) == 4


def test_rigl_just_dropped_position_may_grow_back():
    weight = torch.tensor([[0.5, -0.1, 0.0]])
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    grad = torch.tensor([[0.0, 5.0, 1.0]])
    new = rigl_update(weight, grad, mask, 1, _gen())
    assert torch.equal(new, mask)


def test_rigl_ties_are_broken_by_the_generator():
    weight = torch.zeros(1, 8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    grad = torch.zeros(1, 8)
    picks = {tuple(rigl_update(weight, grad, mask, 2, _gen(seed)).reshape(-1).tolist()) for seed in range(20)}
    assert len(picks) > 1  # random tie-break, not always the first index
    a = rigl_update(weight, grad, mask, 2, _gen(3))
    b = rigl_update(weight, grad, mask, 2, _gen(3))
    assert torch.equal(a, b)  # same seed, same choice


@SETTINGS
@given(
    out=st.integers(1, 6), inp=st.integers(1, 6), density=st.floats(0.05, 1.0),
    fraction=st.floats(0.0, 1.0), seed=st.integers(0, 1000),
)
def test_rigl_keeps_each_layer_count(out, inp, density, fraction, seed):
    weight, grad, mask = _layer(seed, out, inp, density)
    n = math.floor(fraction * int(mask.sum()))
    new = rigl_update(weight, grad, mask, n, _gen(seed))
    assert new.dtype == torch.bool and new.shape == mask.shape
    assert int(new.sum()) == int(mask.sum())
    # the survivors of the drop are the largest magnitudes
    after_drop = magnitude_drop(weight, mask, n, _gen(seed))
    assert int(after_drop.sum()) == int(mask.sum()) - n
    kept, dropped = mask & after_drop, mask & ~after_drop
    if bool(dropped.any()) and bool(kept.any()):
        assert float(weight.abs()[kept].min()) >= float(weight.abs()[dropped].max())


# -- SET ---------------------------------------------------------------------------
def test_set_drops_smallest_positive_and_negative_closest_to_zero():
    weight = torch.tensor([[0.9, 0.1, 0.5, -0.8, -0.05, -0.4, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    new = set_update(weight, mask, 0.34, _gen())  # floor(0.34*3) = 1 of each sign
    assert set_drop_counts(weight, mask, 0.34) == (1, 1)
    assert int(new.sum()) == 6
    for kept in (0, 2, 3, 5):  # the large ones survive
        assert bool(new[0, kept])
    # two grown at random among positions 1, 4, 6, 7 (inactive after the drop)
    assert int(new[0, [1, 4, 6, 7]].sum()) == 2


@SETTINGS
@given(out=st.integers(1, 6), inp=st.integers(1, 6), density=st.floats(0.05, 1.0),
       zeta=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_set_keeps_each_layer_count(out, inp, density, zeta, seed):
    weight, _, mask = _layer(seed, out, inp, density)
    new = set_update(weight, mask, zeta, _gen(seed))
    assert int(new.sum()) == int(mask.sum())


def test_set_skips_the_last_epoch_and_frozen_layers():
    algo = SET(drop_fraction=0.3)
    masks = [torch.rand(4, 5) < 0.5, torch.ones(3, 4, dtype=torch.bool)]
    algo.setup(masks=masks, steps_per_epoch=1, epochs=3, total_steps=3)
    weights = [torch.randn(4, 5) * masks[0], torch.randn(3, 4)]
    assert algo.after_epoch(3, weights, masks, _gen()) is None
    new = algo.after_epoch(1, weights, masks, _gen())
    assert torch.equal(new[1], masks[1])


# -- GGR ---------------------------------------------------------------------------
@SETTINGS
@given(
    widths=st.lists(st.integers(1, 6), min_size=3, max_size=4),
    density=st.floats(0.1, 1.0), alpha=st.floats(0.0, 1.0), beta=st.floats(0.0, 1.0),
    normalise=st.booleans(), seed=st.integers(0, 1000),
)
def test_ggr_keeps_the_total_and_one_input_per_neuron(widths, density, alpha, beta, normalise, seed):
    layers = [_layer(seed + k, widths[k + 1], widths[k], density) for k in range(len(widths) - 1)]
    weights, grads, masks = (list(x) for x in zip(*layers))
    new = ggr_update(weights, grads, masks, alpha, beta, _gen(seed), normalise=normalise)
    assert sum(int(m.sum()) for m in new) == sum(int(m.sum()) for m in masks)
    for old, fresh in zip(masks, new):
        assert fresh.shape == old.shape and fresh.dtype == torch.bool
        had_input = old.any(dim=1)
        assert bool(fresh.any(dim=1)[had_input].all())


def test_ggr_moves_density_towards_large_gradients():
    torch.manual_seed(0)
    masks = [torch.zeros(10, 10, dtype=torch.bool), torch.zeros(10, 10, dtype=torch.bool)]
    masks[0][:, :5] = True
    masks[1][:, :5] = True
    weights = [torch.randn(10, 10) * masks[0], torch.randn(10, 10) * masks[1]]
    grads = [torch.full((10, 10), 0.01), torch.full((10, 10), 10.0)]
    new = ggr_update(weights, grads, masks, 0.5, 0.0, _gen())
    assert ggr_drop_counts(masks, 0.5) == [25, 25]
    assert int(new[1].sum()) == 75 and int(new[0].sum()) == 25
    # normalised by each layer's mean, the two layers weigh the same: nothing moves between them
    same = ggr_update(weights, grads, masks, 0.5, 0.0, _gen(), normalise=True)
    assert sum(int(m.sum()) for m in same) == 100


def test_ggr_leaves_frozen_layers_alone():
    algo = GGR(update_every=1, drop_fraction=0.5, end_fraction=1.0)
    masks = [torch.rand(6, 5) < 0.5, torch.ones(3, 6, dtype=torch.bool)]
    masks[0][:, 0] = True
    algo.setup(masks=masks, steps_per_epoch=10, epochs=1, total_steps=10)
    weights = [torch.randn(6, 5) * masks[0], torch.randn(3, 6)]
    grads = [torch.randn(6, 5), torch.randn(3, 6) * 100]
    new = algo.update(1, weights, grads, masks, _gen())
    assert torch.equal(new[1], masks[1])
    assert int(new[0].sum()) == int(masks[0].sum())


# -- pruning -----------------------------------------------------------------------
@SETTINGS
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    sparsity=st.floats(0.0, 0.99), klass=st.sampled_from(["class-blinded", "class-uniform", "class-distribution"]),
    seed=st.integers(0, 1000),
)
def test_prune_hits_the_target_counts(widths, sparsity, klass, seed):
    layers = [_layer(seed + k, widths[k + 1], widths[k], 1.0) for k in range(len(widths) - 1)]
    weights, _, masks = (list(x) for x in zip(*layers))
    new = magnitude_prune(weights, masks, sparsity, prune_class=klass, generator=_gen(seed))
    sizes = [m.numel() for m in masks]
    if klass == "class-uniform":
        assert [int(m.sum()) for m in new] == [s - round(sparsity * s) for s in sizes]
    else:
        total = sum(sizes)
        assert sum(int(m.sum()) for m in new) == total - round(sparsity * total)
    for old, fresh in zip(masks, new):
        assert not bool((fresh & ~old).any())  # pruning never grows


def test_class_blinded_is_one_global_threshold_and_distribution_scales_by_sigma():
    w1 = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    w2 = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    masks = [torch.ones(1, 4, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)]
    blinded = magnitude_prune([w1, w2], masks, 0.5, prune_class="class-blinded")
    assert blinded[0].sum() == 0 and blinded[1].sum() == 4
    # |w| / sigma is the same pattern in both layers: each loses its two smallest
    dist = magnitude_prune([w1, w2], masks, 0.5, prune_class="class-distribution")
    assert dist[0].tolist() == [[False, False, True, True]] and dist[1].tolist() == [[False, False, True, True]]
    uniform = magnitude_prune([w1, w2], masks, 0.25, prune_class="class-uniform")
    assert uniform[0].tolist() == [[False, True, True, True]]


def test_prune_schedule_and_dense_start():
    algo = Prune(sparsity=0.8, prune_steps=2, retrain_epochs=4, prune_class="class-uniform")
    init = algo.initial_masks([(3, 4), (2, 3)])
    assert all(m.all() for m in init.masks)
    algo.setup(masks=init.masks, steps_per_epoch=1, epochs=5, total_steps=9)
    assert algo.schedule() == [(5, 0.4), (7, 0.8)]
    weights = [torch.randn(3, 4), torch.randn(2, 3)]
    masks = [torch.ones(3, 4, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)]
    assert algo.after_epoch(4, weights, masks, _gen()) is None
    step1 = algo.after_epoch(5, weights, masks, _gen())
    assert [int(m.sum()) for m in step1] == [12 - round(0.4 * 12), 6 - round(0.4 * 6)]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64"])
def test_select_positions_on_wide_layers_is_the_stable_sorts_choice(dtype):
    """The selection by the n-th best value (introselect, or kthvalue for other dtypes) and ties
    in the generator's order picks the set a full stable sort of the randomly ordered candidates picks."""
    import torch

    from topo.training.algorithms.base import select_positions

    g = torch.Generator().manual_seed(1)
    for trial in range(12):
        size = 20_000 + 997 * trial
        raw = torch.rand(size, generator=g)
        # every third trial: few distinct values, so that many ties sit at the n-th best
        scores = (raw * 7).floor() if trial % 3 == 0 else raw
        scores = scores.to(getattr(torch, dtype)) if dtype != "int64" else (raw * 50).long()
        candidates = torch.rand(size, generator=g) < (0.1 if trial % 2 else 0.9)
        n = int(candidates.sum()) * (trial + 1) // 14
        for largest in (True, False):
            picked = select_positions(scores, candidates, n, torch.Generator().manual_seed(trial), largest=largest)
            index = torch.nonzero(candidates).reshape(-1)
            index = index[torch.randperm(index.numel(), generator=torch.Generator().manual_seed(trial))]
            expected = index[torch.sort(scores[index], stable=True, descending=largest).indices[:n]]
            assert picked.numel() == n
            assert torch.equal(torch.sort(picked).values, torch.sort(expected).values)

"""SRigL (constant fan-in, neuron ablation) and GraNet (cubic gradual pruning with regeneration)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topo.checkpoint import list_checkpoints, load_checkpoint, read_run_config
from topo.errors import TopoError
from topo.training.algorithms import GraNet, cosine_drop_fraction, SRigL, available_algorithms, cubic_sparsity, srigl_layer_update
from topo.training.algorithms.srigl import constant_fan_in_mask, fan_in_target
from topo.training.config import TrainConfig
from topo.training.trainer import resume, train

TINY = dict(dataset="digits", hidden=(32, 16), epochs=2, batch_size=64, threads=1, device="cpu", update_every=4)


def _t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_both_are_registered_and_take_their_options():
    assert {"srigl", "granet"} <= set(available_algorithms())
    config = TrainConfig(method="srigl", ablation_threshold=0.5).validate()
    assert config.algorithm_options() == {
        "update_every": 100, "drop_fraction": 0.3, "end_fraction": 0.75, "ablation_threshold": 0.5}
    config = TrainConfig(method="granet", initial_sparsity=0.2, sparsity=0.8).validate()
    assert config.algorithm_options()["initial_sparsity"] == 0.2
    with pytest.raises(TopoError, match="^initial_sparsity 0.95 is above sparsity 0.9"):
        TrainConfig(method="granet", initial_sparsity=0.95, sparsity=0.9).validate()
    with pytest.raises(TopoError, match="profile: srigl"):
        TrainConfig(method="srigl", profile="lognormal", cv=0.5).validate()


# -- SRigL ---------------------------------------------------------------------------------
def test_constant_fan_in_masks():
    assert fan_in_target(25, 4, 10) == 6 and fan_in_target(1, 8, 10) == 1 and fan_in_target(500, 4, 10) == 10
    mask = constant_fan_in_mask(7, 9, 3, np.random.default_rng(0))
    assert (mask.sum(axis=1) == 3).all()


def test_srigl_regrows_within_each_neuron():
    """Drop the one smallest weight (0.1 in row 0); only row 0 regrows, at its largest gradient."""
    weight = _t([[0.9, 0.1, 0, 0], [0, 0.5, 0.7, 0], [0.3, 0, 0, 0.8]])
    mask = weight != 0
    grad = _t([[0, 0.2, 0.6, 0.4], [5, 0, 0, 5], [0, 9, 9, 0]])
    new, k = srigl_layer_update(weight, grad, mask, budget=6, fan_in=2, n=1, generator=_gen())
    assert k == 2
    assert new.tolist() == [[True, False, True, False], [False, True, True, False], [True, False, False, True]]


def test_srigl_ablates_a_neuron_and_gives_its_budget_to_the_others():
    """Worked by hand (see the comments): row 0 loses both weights and is not salient."""
    algo = SRigL(update_every=1, drop_fraction=0.8, end_fraction=1.0, ablation_threshold=0.6)
    w1 = _t([[0.05, 0.02, 0, 0], [0, 0.5, 0.7, 0], [0.3, 0, 0, 0.8]])
    w2 = _t([[0.4, 0.6, 0], [0.2, 0, 0.9]])
    masks = [w1 != 0, w2 != 0]
    algo.setup(masks=masks, steps_per_epoch=10, epochs=1, total_steps=10)
    assert algo.budgets == [6, 4] and algo.fan_ins == [2, 2]
    # step 5 of T_end 10: α_t = 0.8 (1 + cos(π/2)) / 2 = 0.4; layer 1 drops floor(0.4 · 6) = 2 (0.02, 0.05)
    assert algo.fraction(5) == pytest.approx(0.4)
    g1 = _t([[0.1, 0.1, 0.1, 0.1], [0.9, 0, 0, 0.6], [0, 0.2, 0.3, 0]])
    g2 = _t([[1, 1, 1], [1, 1, 1]])
    new = algo.update(5, [w1, w2], [g1, g2], masks, _gen())
    # RigL would regrow (1,0) and (1,3): salient counts 0, 4, 2; γ k = 1.2 ablates row 0;
    # k' = 6 // 2 = 3: row 1 grows column 0 (0.9), row 2 grows column 2 (0.3)
    assert new[0].tolist() == [[False] * 4, [True, True, True, False], [True, False, True, True]]
    # layer 2 loses input 0 (a removed neuron has no outputs); k' = min(4 // 2, 2) = 2
    assert new[1].tolist() == [[False, True, True], [False, True, True]]
    assert algo.fan_ins == [3, 2]
    # the removed neuron stays removed at the next update
    again = algo.update(6, [w1 * new[0], w2 * new[1]], [g1, g2], new, _gen(1))
    assert again is None or not again[0][0].any()


def _check_constant(masks, algo):
    for k, m in enumerate(masks):
        if k in algo.frozen:
            continue
        rows = m.sum(dim=1)
        active = rows[rows > 0]
        assert (active == algo.fan_ins[k]).all(), (k, active.tolist(), algo.fan_ins[k])
        assert int(m.sum()) == algo.fan_ins[k] * int((rows > 0).sum()) <= algo.budgets[k]


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.9])
def test_srigl_fan_in_is_constant_after_every_update(threshold):
    rng = np.random.default_rng(3)
    shapes = [(20, 30), (12, 20), (5, 12)]
    algo = SRigL(update_every=1, drop_fraction=0.5, end_fraction=1.0, ablation_threshold=threshold)
    init = algo.initial_masks(shapes, sparsity=0.8, density="erk", seed=3)
    masks = [torch.from_numpy(m) for m in init.masks]
    algo.setup(masks=masks, steps_per_epoch=30, epochs=1, total_steps=30)
    _check_constant(masks, algo)
    gen = _gen(3)
    for step in range(1, 31):
        weights = [torch.from_numpy(rng.normal(size=m.shape).astype(np.float32)) * m for m in masks]
        grads = [torch.from_numpy(rng.normal(size=m.shape).astype(np.float32)) for m in masks]
        new = algo.update(step, weights, grads, masks, gen)
        if new is not None:
            for k in range(len(masks) - 1):  # removed neurons have no outputs
                assert not new[k + 1][:, ~new[k].any(dim=1)].any()
            masks = new
        _check_constant(masks, algo)
    assert (masks[-1].sum(dim=1) > 0).all()  # output neurons are never ablated
    if threshold == 0.0:
        assert all((m.sum(dim=1) > 0).all() for m in masks)


def _interrupted_matches_whole(tmp_path, config, at_step):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(config, run_dir=whole)

    def interrupt(epoch, step):
        if step == at_step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=cut, on_step=interrupt)
    resume(cut)
    a, b = list_checkpoints(whole), list_checkpoints(cut)
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        for la, lb in zip(load_checkpoint(pa), load_checkpoint(pb)):
            assert (la.mask != lb.mask).nnz == 0
    return a


def test_srigl_trains_resumes_and_keeps_fan_in_constant(tmp_path):
    config = TrainConfig(**TINY, method="srigl", ablation_threshold=0.5, checkpoint_every=3)
    paths = _interrupted_matches_whole(tmp_path, config, at_step=21 + 5)
    for path in paths:
        for layer in load_checkpoint(path):
            fan_in = np.asarray(layer.mask.sum(axis=1)).ravel()
            assert len(set(fan_in[fan_in > 0].tolist())) == 1, (path.name, layer.name)
    assert read_run_config(tmp_path / "whole")["algorithm"]["ablation_threshold"] == 0.5


# -- GraNet --------------------------------------------------------------------------------
def test_cubic_schedule_by_hand():
    values = [cubic_sparsity(j, 4, 0.5, 0.9) for j in range(5)]
    assert values == pytest.approx([0.5, 0.73125, 0.85, 0.89375, 0.9])


def test_granet_density_is_on_the_schedule_at_every_step():
    rng = np.random.default_rng(0)
    algo = GraNet(sparsity=0.9, update_every=10, drop_fraction=0.5, end_fraction=1.0, initial_sparsity=0.5)
    masks = [torch.from_numpy(rng.permutation(80) < 40).reshape(8, 10),
             torch.from_numpy(rng.permutation(32) < 16).reshape(4, 8)]
    algo.setup(masks=masks, steps_per_epoch=40, epochs=1, total_steps=40)
    assert algo.pruning_steps() == [10, 20, 30, 40] and algo.start_sparsity == 0.5
    # S = 112: keep 112 - round(s_j · 112) for s_j = 0.73125, 0.85, 0.89375, 0.9
    expected = {10: 30, 20: 17, 30: 12, 40: 11}
    gen = _gen()
    for step in range(1, 41):
        assert algo.is_update_step(step) == (step in expected)
        weights = [torch.from_numpy(rng.normal(size=m.shape).astype(np.float32)) * m for m in masks]
        grads = [torch.from_numpy(rng.normal(size=m.shape).astype(np.float32)) for m in masks]
        hot = (~masks[0]).nonzero()[0]
        grads[0][hot[0], hot[1]] = 1e6  # the largest gradient of all, at an inactive position
        new = algo.update(step, weights, grads, masks, gen) if algo.is_update_step(step) else None
        if step in expected:
            assert sum(int(m.sum()) for m in new) == expected[step]
            # regeneration in layer 0 moves floor(r_j · nnz) weights; the hot position is the first grown
            moved = int(np.floor(cosine_drop_fraction(step, 0.5, 40) * int(new[0].sum())))
            assert bool(new[0][hot[0], hot[1]]) == (moved >= 1)
            masks = new
        else:
            assert new is None


def test_granet_trains_to_the_target_and_resumes(tmp_path):
    config = TrainConfig(**TINY, method="granet", sparsity=0.9, initial_sparsity=0.0, checkpoint_every=5)
    paths = _interrupted_matches_whole(tmp_path, config, at_step=21 + 9)
    first, last = load_checkpoint(paths[0]), load_checkpoint(paths[-1])
    assert first.density == 1.0
    total = sum(layer.mask.shape[0] * layer.mask.shape[1] for layer in last)
    assert sum(layer.mask.nnz for layer in last) == total - round(0.9 * total)


def test_sweep_grid_takes_the_new_methods_and_their_own_options():
    from topo.sweep import expand_grid, parse_sweep_spec

    spec = parse_sweep_spec({"base": {"epochs": 1}, "grid": {"method": ["srigl", "granet"], "ablation_threshold": [0.0, 0.5]}})
    notes: list[str] = []
    runs = expand_grid(spec, notes=notes)
    # granet does not take ablation_threshold, so its two grid cells are one run
    assert [(r.config.method, r.config.ablation_threshold) for r in runs] == [("srigl", 0.0), ("srigl", 0.5), ("granet", 0.0)]
    assert any("same run" in note for note in notes)
    with pytest.raises(TopoError, match=r"^\[grid\] ablation_threshold: must be in \[0, 1\], got 1.5 \(run "):
        expand_grid(parse_sweep_spec({"grid": {"method": ["srigl"], "ablation_threshold": [1.5]}}))

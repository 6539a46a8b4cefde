"""Priors from network theory: exact budgets, reproducibility, the models' structure."""

from __future__ import annotations

import numpy as np
import pytest

from topo.errors import TopoError
from topo.training.densities import layer_budgets
from topo.training.masks import initial_masks
from topo.training.priors import (
    Prior,
    adjust_to_budget,
    barabasi_albert_mask,
    is_prior_spec,
    parse_prior,
    prior_mask,
    watts_strogatz_mask,
)

SPECS = ["ws", "ws:k=3,p=0.2", "ws:k=50,p=1", "ws:p=0", "ba", "ba:m=1", "ba:m=6"]
LAYERS = [(16, 64, 100), (16, 64, 16), (10, 16, 9), (30, 20, 599), (1, 5, 3), (40, 40, 400), (7, 3, 20)]


@pytest.mark.parametrize("spec", SPECS)
def test_every_prior_meets_its_budget_exactly(spec):
    for n_out, n_in, budget in LAYERS:
        mask = prior_mask(spec, n_out, n_in, budget, np.random.default_rng(0))
        assert mask.shape == (n_out, n_in) and mask.dtype == bool
        assert int(mask.sum()) == budget, (spec, n_out, n_in, budget)
        if budget >= n_out:
            assert (mask.sum(axis=1) >= 1).all() or spec.startswith("ba")


@pytest.mark.parametrize("spec", ["ws:k=4,p=0.3", "ba:m=2"])
def test_priors_are_reproducible_by_seed(spec):
    shapes = [(32, 64), (32, 32), (10, 32)]
    a = initial_masks(shapes, 0.85, prior=spec, seed=7)
    b = initial_masks(shapes, 0.85, prior=spec, seed=7)
    c = initial_masks(shapes, 0.85, prior=spec, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    assert a.achieved_cv == b.achieved_cv
    assert any(not np.array_equal(x, y) for x, y in zip(a.masks, c.masks))
    expected = layer_budgets(shapes, 0.85)
    assert a.budgets == expected
    assert [int(m.sum()) for m in a.masks] == expected
    for mask, cv in zip(a.masks, a.achieved_cv):
        counts = mask.sum(axis=1)
        assert cv == pytest.approx(counts.std() / counts.mean())


def test_ws_lattice_without_rewiring_is_a_local_receptive_field():
    mask = watts_strogatz_mask(8, 16, 8 * 4, k=4, p=0.0, rng=np.random.default_rng(0))
    assert (mask.sum(axis=1) == 4).all()
    for i, row in enumerate(mask):
        inputs = np.flatnonzero(row)
        # output i sits at (i + 0.5) / 8 of the ring: its four nearest of 16 inputs are 2i-1 .. 2i+2
        assert set(inputs) == {(2 * i + d) % 16 for d in (-1, 0, 1, 2)}
    rewired = watts_strogatz_mask(8, 16, 32, k=4, p=1.0, rng=np.random.default_rng(0))
    assert (rewired.sum(axis=1) == 4).all() and not np.array_equal(mask, rewired)


def test_small_world_rewiring_lowers_square_clustering():
    from topo.analysis.structure import square_clustering
    from topo.topology import Topology

    values = []
    for p in (0.0, 1.0):
        masks = [watts_strogatz_mask(64, 64, 64 * 6, p=p, rng=np.random.default_rng(1)) for _ in range(2)]
        values.append(square_clustering(Topology.from_masks(masks)))
    assert values[0] > 2 * values[1]


def test_preferential_attachment_makes_hubs():
    rng = np.random.default_rng(3)
    ba = barabasi_albert_mask(200, 200, 800, m=2, rng=rng)
    ws = watts_strogatz_mask(200, 200, 800, rng=np.random.default_rng(3))
    cv = lambda counts: counts.std() / counts.mean()  # noqa: E731
    assert cv(ba.sum(axis=1)) > 0.5 > cv(ws.sum(axis=1))
    assert cv(ba.sum(axis=0)) > 0.5  # inputs too: hubs on both sides


def test_adjust_to_budget_keeps_neurons_alive_while_possible():
    rng = np.random.default_rng(0)
    mask = np.ones((5, 6), dtype=bool)
    trimmed = adjust_to_budget(mask, 5, rng)
    assert trimmed.sum() == 5 and (trimmed.sum(axis=1) == 1).all()
    assert adjust_to_budget(mask, 2, rng).sum() == 2
    assert adjust_to_budget(np.zeros((3, 3), dtype=bool), 4, rng).sum() == 4
    with pytest.raises(TopoError):
        adjust_to_budget(mask, 31, rng)


def test_parse_prior():
    assert parse_prior("ws:k=4,p=0.25") == Prior("ws", {"k": 4, "p": 0.25})
    assert parse_prior("ws") == Prior("ws", {"k": None, "p": 0.1})
    assert parse_prior("ba:m=3").params == {"m": 3}
    assert parse_prior("ba:m=3").spec == "ba:m=3"
    assert is_prior_spec("ws:k=2") and is_prior_spec("ba") and not is_prior_spec("equilibrium:x")
    for bad in ("er:p=0.1", "ws:k=0", "ws:p=1.5", "ws:m=2", "ba:m=2.5", "ba:m", "ws:k=2,k=3"):
        with pytest.raises(TopoError):
            parse_prior(bad)


def test_initial_masks_refuses_prior_with_profile():
    with pytest.raises(TopoError, match="replaces the fan-in profile"):
        initial_masks([(8, 8)], 0.5, prior="ws", profile="lognormal", cv=1.0)
    dense = initial_masks([(8, 8), (4, 8)], 0.5, prior="ba", dense_output=True)
    assert dense.masks[1].all() and dense.achieved_cv[1] == 0.0


def test_train_config_accepts_priors():
    from topo.training.config import TrainConfig

    TrainConfig(init="ws:k=4,p=0.1").validate()
    TrainConfig(init="ba:m=2").validate()
    with pytest.raises(TopoError):
        TrainConfig(init="ws:q=1").validate()
    with pytest.raises(TopoError, match="prior"):
        TrainConfig(init="ba", profile="lognormal", cv=1.0).validate()


def test_training_records_prior_and_achieved_cv(tmp_path):
    from topo.checkpoint import load_checkpoint, read_run_config
    from topo.training.config import TrainConfig
    from topo.training.trainer import train

    config = TrainConfig(dataset="digits", hidden=(16,), sparsity=0.8, epochs=0, init="ba:m=2", method="static",
                         threads=1, device="cpu", seed=4)
    train(config, run_dir=tmp_path / "run")
    run = read_run_config(tmp_path / "run")
    assert run["initial"]["prior"] == "ba:m=2"
    masks = [l.mask.toarray() for l in load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_0000.safetensors", weights=False)]
    expected = initial_masks([(16, 64), (10, 16)], 0.8, prior="ba:m=2", seed=4, names=["fc1", "fc2"])
    assert all(np.array_equal(a, b) for a, b in zip(masks, expected.masks))
    assert run["initial"]["achieved_cv"] == pytest.approx(expected.achieved_cv)

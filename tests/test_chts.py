"""CHTs: CH2-L3n link prediction, soft removal and regrowth, the β schedule, chain removal, BRF masks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from topo.checkpoint import list_checkpoints, load_checkpoint, read_run_config
from topo.errors import TopoError
from topo.training.algorithms import CHTs, available_algorithms, ch2_l3n_scores, get_algorithm
from topo.training.algorithms.chts import chain_removal, inverse_temperature, regrow, soft_removal
from topo.training.config import TrainConfig
from topo.training.priors import parse_prior, prior_mask, receptive_field_mask
from topo.training.trainer import train

TINY = dict(dataset="digits", hidden=(32, 16), epochs=2, batch_size=64, threads=1, device="cpu", update_every=4)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- CH2-L3n ---------------------------------------------------------------------------------
def test_ch2_l3n_on_a_five_node_graph_by_hand():
    """Outputs a, b; inputs x, y, w; links a-x, b-x, b-y, b-w. Missing: a-y and a-w.

    a-y: the one length-3 path is a - x - b - y. Intermediates:
      x (neighbour of a): links into N(y) = {b}: di = 1; deg(x) = 2 (a, b), external
        de = 2 - 1 - 1 (its link to a) = 0; term (1 + 1) / (1 + 0) = 2;
      b (neighbour of y): links into N(a) = {x}: di = 1; deg(b) = 3 (x, y, w),
        de = 3 - 1 - 1 (its link to y) = 1; term (1 + 1) / (1 + 1) = 1.
      CH2-L3n(a, y) = 3. a-w is the same by the symmetry y <-> w: 3.
    """
    mask = np.array([[1, 0, 0], [1, 1, 1]], dtype=bool)
    scores = ch2_l3n_scores(mask).toarray()
    assert scores[0, 1] == pytest.approx(3.0)
    assert scores[0, 2] == pytest.approx(3.0)


def test_ch2_l3n_is_zero_without_a_length_three_path():
    """Outputs a, b; inputs x, y, w; links a-x, b-y, b-w: x reaches only a, so a-y, a-w, b-x have no L3 path."""
    mask = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    scores = ch2_l3n_scores(mask).toarray()
    assert scores[0, 1] == 0 and scores[0, 2] == 0 and scores[1, 0] == 0


def test_ch2_l3n_with_two_paths_and_external_links_by_hand():
    """Outputs a, b, c; inputs x, y. Links a-x, b-x, b-y, c-x, c-y. Missing: a-y (5 nodes).

    Paths a - x - b - y and a - x - c - y. Intermediates:
      x (neighbour of a): links into N(y) = {b, c}: di = 2; deg(x) = 3, de = 3 - 2 - 1 = 0: 3 / 1 = 3;
      b (neighbour of y): links into N(a) = {x}: di = 1; deg(b) = 2, de = 2 - 1 - 1 = 0: 2 / 1 = 2;
      c: the same as b: 2. CH2-L3n(a, y) = 7.
    """
    mask = np.array([[1, 0], [1, 1], [1, 1]], dtype=bool)
    assert ch2_l3n_scores(mask).toarray()[0, 1] == pytest.approx(7.0)


def _ch2_l3n_by_paths(mask: np.ndarray, u: int, v: int) -> float:
    """The definition, by enumerating intermediate nodes (loops; for small graphs only)."""
    inputs_of = [set(np.flatnonzero(row)) for row in mask]
    outputs_of = [set(np.flatnonzero(col)) for col in mask.T]
    total = 0.0
    for z in outputs_of[v]:  # output neighbours of v, their links into N(u)
        di = len(inputs_of[z] & inputs_of[u])
        if di:
            total += (1 + di) / (1 + max(len(inputs_of[z]) - di - 1, 0))
    for z in inputs_of[u]:  # input neighbours of u, their links into N(v)
        di = len(outputs_of[z] & outputs_of[v])
        if di:
            total += (1 + di) / (1 + max(len(outputs_of[z]) - di - 1, 0))
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ch2_l3n_matches_the_path_definition_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((9, 11)) < 0.25
    scores = ch2_l3n_scores(mask).toarray()
    for u, v in zip(*np.nonzero(~mask)):
        assert scores[u, v] == pytest.approx(_ch2_l3n_by_paths(mask, u, v)), (u, v)


# -- schedule, sampling ----------------------------------------------------------------------
def test_inverse_temperature_schedules():
    assert inverse_temperature(0, 100, 1.0, 9.0, "linear") == 1.0
    assert inverse_temperature(50, 100, 1.0, 9.0, "linear") == 5.0
    assert inverse_temperature(100, 100, 1.0, 9.0, "linear") == 9.0
    assert inverse_temperature(150, 100, 1.0, 9.0, "linear") == 9.0
    assert inverse_temperature(50, 100, 1.0, 9.0, "cosine") == pytest.approx(5.0)
    assert inverse_temperature(25, 100, 1.0, 9.0, "cosine") == pytest.approx(9.0 - 8.0 * (1 + math.cos(math.pi / 4)) / 2)
    assert inverse_temperature(70, 100, 2.0, 9.0, "constant") == 2.0
    algo = CHTs(update_every=10, end_fraction=0.5, chts_beta_start=2.0, chts_beta_end=4.0)
    algo.setup(masks=[torch.ones(2, 2, dtype=torch.bool)], steps_per_epoch=100, epochs=2, total_steps=200)
    assert algo.end_step == 100 and algo.beta(0) == 2.0 and algo.beta(50) == 3.0 and algo.beta(100) == 4.0


def test_soft_removal_counts_and_its_cold_limit_is_magnitude():
    weight = np.array([[0.9, -0.05, 0.0, 0.4], [0.02, 0.0, -0.7, 0.3]])
    mask = weight != 0
    for seed in range(5):
        new = soft_removal(weight, mask, 2, 1.0, _gen(seed))
        assert int(new.sum()) == int(mask.sum()) - 2 and not bool((new & ~mask).any())
    # β large: the two smallest |w| (0.05, 0.02) go
    cold = soft_removal(weight, mask, 2, 200.0, _gen(3))
    assert cold.tolist() == [[True, False, False, True], [False, False, True, True]]


def test_soft_regrowth_cold_limit_takes_the_top_scores_and_warm_spreads():
    mask = np.random.default_rng(4).random((12, 14)) < 0.2
    scores = ch2_l3n_scores(mask).toarray()
    scores[mask] = 0
    budget = int(mask.sum()) + 5
    ones_r, ones_c = np.ones(12, dtype=bool), np.ones(14, dtype=bool)
    cold = regrow(mask, budget, 500.0, _gen(), present_rows=ones_r, present_cols=ones_c)
    grown = cold & ~mask
    assert int(cold.sum()) == budget and grown.sum() == 5
    assert scores[grown].min() >= np.sort(scores.ravel())[-5]
    picks = set()
    for seed in range(20):
        warm = regrow(mask, budget, 1.0, _gen(seed), present_rows=ones_r, present_cols=ones_c)
        assert int(warm.sum()) == budget
        picks |= set(np.flatnonzero((warm & ~mask).ravel()))
        assert (scores.ravel()[list(picks)] > 0).all()  # only positive scores while there are enough
    assert len(picks) > 5


def test_regrowth_falls_back_to_random_and_never_joins_removed_neurons():
    # a-x only: no missing link has a length-3 path, so every grown link is drawn uniformly
    mask = torch.tensor([[True, False, False], [False, False, False], [False, False, False]])
    rows = torch.tensor([True, True, False])  # output 2 removed
    cols = torch.tensor([True, False, True])  # input 1 removed
    new = regrow(mask, 4, 1.0, _gen(), present_rows=rows, present_cols=cols)
    assert new.tolist() == [[True, False, True], [True, False, True], [False, False, False]]


# -- chain removal ---------------------------------------------------------------------------
def test_chain_removal_cascades_by_hand():
    """Hidden neuron h1 of layer 1 has inputs but no outputs: it goes; then g0 of layer 2's inputs ...

    layer 0: [h0, h1] x [x0, x1]; layer 1: [g0, g1] x [h0, h1]; layer 2: [o0] x [g0, g1].
    g0's only input is h1, which has no... (h1 feeds g0 only, and g0 has no output) -> g0 goes
    (no outputs), then h1 has no outputs -> goes. h0 -> g1 -> o0 stays.
    """
    l0 = torch.tensor([[True, False], [True, True]])
    l1 = torch.tensor([[False, True], [True, False]])
    l2 = torch.tensor([[False, True]])
    new = chain_removal([l0, l1, l2])
    assert new[0].tolist() == [[True, False], [False, False]]
    assert new[1].tolist() == [[False, False], [True, False]]
    assert new[2].tolist() == [[False, True]]
    # the inputs were not changed in place
    assert l0.tolist() == [[True, False], [True, True]]


def test_chain_removal_removes_a_neuron_without_inputs():
    l0 = torch.tensor([[True, True], [False, False]])  # h1 has no inputs
    l1 = torch.tensor([[True, True]])  # but feeds the output
    new = chain_removal([l0, l1])
    assert new[1].tolist() == [[True, False]]


# -- the whole update ------------------------------------------------------------------------
@pytest.mark.parametrize("chain", [True, False])
def test_exact_nnz_after_every_update_and_removed_neurons_stay_removed(chain):
    gen = torch.Generator().manual_seed(7)
    shapes = [(20, 16), (12, 20), (4, 12)]
    rng = np.random.default_rng(7)
    masks = [torch.from_numpy(rng.random(s) < 0.2) for s in shapes]
    masks[1][3, :] = False  # hidden neuron 3 of layer 1 starts with no inputs
    algo = CHTs(update_every=1, drop_fraction=0.3, end_fraction=1.0, chain_removal=chain)
    algo.setup(masks=masks, steps_per_epoch=10, epochs=3, total_steps=30)
    budgets = [int(m.sum()) for m in masks]
    removed_before = [torch.zeros(s[0], dtype=torch.bool) for s in shapes[:-1]]
    for step in range(1, 30):
        weights = [torch.randn(s, generator=gen) * m for s, m in zip(shapes, masks)]
        new = algo.update(step, weights, [torch.zeros(s) for s in shapes], masks, gen)
        if new is None:
            continue
        for k, m in enumerate(new):
            # the budget, unless fewer positions are left between present neurons
            rows = m.shape[0] if k == len(shapes) - 1 else int(new[k + 1].any(dim=0).sum() if chain else m.shape[0])
            cols = m.shape[1] if k == 0 or not chain else int(new[k - 1].any(dim=1).sum())
            assert int(m.sum()) == min(budgets[k], rows * cols), (step, k)
        if chain:
            for k in range(len(shapes) - 1):
                has_in, has_out = new[k].any(dim=1), new[k + 1].any(dim=0)
                assert torch.equal(has_in, has_out), (step, k)  # every hidden neuron: both or neither
                removed = ~has_in
                assert bool((removed | ~removed_before[k]).all())  # once removed, removed for good
                removed_before[k] = removed
        masks = new
    if chain:
        assert bool(removed_before[1][3])  # the neuron without inputs went at the first update


def test_registered_with_its_options_and_trains_end_to_end(tmp_path):
    assert "chts" in available_algorithms()
    config = TrainConfig(**TINY, method="chts", sparsity=0.9, init="brf:r=0.2", chts_beta_end=5.0,
                         chts_beta_schedule="cosine").validate()
    assert config.algorithm_options() == {
        "update_every": 4, "drop_fraction": 0.3, "end_fraction": 0.75, "chts_beta_start": 1.0,
        "chts_beta_end": 5.0, "chts_beta_schedule": "cosine", "chain_removal": True}
    with pytest.raises(TopoError, match="chts_beta_schedule|--chts-beta-schedule"):
        TrainConfig(**TINY, method="chts", chts_beta_schedule="zigzag").validate()
    train(config, run_dir=tmp_path / "run")
    paths = list_checkpoints(tmp_path / "run")
    first = load_checkpoint(paths[0])
    nnz = [layer.mask.nnz for layer in first]
    for path in paths[1:]:
        assert [layer.mask.nnz for layer in load_checkpoint(path)] == nnz
    run = read_run_config(tmp_path / "run")
    assert run["initial"]["prior"] == "brf:r=0.2" and run["algorithm"]["chts_beta_schedule"] == "cosine"
    assert get_algorithm("chts", chain_removal=False).chain_removal is False


# -- BRF --------------------------------------------------------------------------------------
def _mean_distance(mask: np.ndarray) -> float:
    n_out, n_in = mask.shape
    rows, cols = np.nonzero(mask)
    return float(np.mean(np.abs((rows + 0.5) / n_out - (cols + 0.5) / n_in)))


def test_brf_r0_takes_each_outputs_nearest_inputs():
    mask = receptive_field_mask(4, 8, 8, r=0.0, rng=np.random.default_rng(0))
    # output i sits at (i + 1/2) / 4; inputs at (j + 1/2) / 8: output 0 (0.125) is nearest to inputs 0 and 1
    assert mask.tolist() == [
        [True, True, False, False, False, False, False, False],
        [False, False, True, True, False, False, False, False],
        [False, False, False, False, True, True, False, False],
        [False, False, False, False, False, False, True, True],
    ]


def test_brf_locality_grows_with_r_and_the_budget_is_exact():
    rng = np.random.default_rng(1)
    distances = {}
    for r in (0.0, 0.2, 0.5, 1.0):
        masks = [receptive_field_mask(60, 80, 487, r=r, rng=rng) for _ in range(3)]
        for mask in masks:
            assert mask.sum() == 487
            fan_in = mask.sum(axis=1)
            assert fan_in.max() - fan_in.min() <= 1  # fixed degrees, remainder spread by one
        distances[r] = np.mean([_mean_distance(m) for m in masks])
    assert distances[0.0] < distances[0.2] < distances[0.5] < distances[1.0]
    # r = 1 is uniform: the mean |x - y| of two uniform points on [0, 1] is 1/3
    assert distances[1.0] == pytest.approx(1 / 3, abs=0.03)
    assert distances[0.0] < 0.03  # the nearest inputs of a fan-in of about 8 out of 80


def test_brf_prior_spec_and_errors():
    assert parse_prior("brf").params == {"r": 0.3}
    assert parse_prior("brf:r=0.7").spec == "brf:r=0.7"
    with pytest.raises(TopoError, match="r must be in"):
        parse_prior("brf:r=1.5")
    with pytest.raises(TopoError, match="expected r="):
        parse_prior("brf:k=3")
    a = prior_mask("brf:r=0.4", 10, 30, 50, np.random.default_rng(5))
    b = prior_mask("brf:r=0.4", 10, 30, 50, np.random.default_rng(5))
    assert (a == b).all() and a.sum() == 50
    assert prior_mask("brf", 3, 4, 12, np.random.default_rng(0)).all()


def test_cli_trains_chts_without_chain_removal(tmp_path):
    from click.testing import CliRunner

    from topo_cli.main import main

    out = tmp_path / "cli"
    result = CliRunner().invoke(main, [
        "train", "--dataset", "digits", "--hidden", "16,16", "--epochs", "1", "--batch-size", "64",
        "--update-every", "3", "--method", "chts", "--init", "brf:r=0.5", "--no-chain-removal",
        "--chts-beta-schedule", "constant", "--threads", "1", "--device", "cpu", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    algorithm = read_run_config(out)["algorithm"]
    assert algorithm["chain_removal"] is False and algorithm["chts_beta_schedule"] == "constant"
    bad = CliRunner().invoke(main, ["train", "--method", "chts", "--init", "brf:r=2", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "r must be in [0, 1]" in bad.output and "Traceback" not in bad.output

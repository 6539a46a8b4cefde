"""NNSTD, the NNSTD matrix and mask turnover (topo.analysis.distance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import topo
from topo.analysis.distance import labels_in_a, layer_cost_matrix, mask_turnover, nnstd, nnstd_matrix
from topo.runs import load_masks
from topo.errors import TopoError


# -- a plain implementation: Python sets, loops over neuron pairs -------------------------
def plain_nnstd(masks_a, masks_b, match_output=True):
    """NNSTD written out the slow way, for chained layers given as dense [out, in] masks.

    Returns (distance, layer distances, matchings). Unequal widths: an unmatched neuron
    of network 1 costs 1; unmatched neurons of network 2 become extra input labels
    n_1, n_1 + 1, ... (in index order) of the next layer.
    """
    layer_distances, matchings = [], []
    label = None  # network 2's input j -> its label in network 1's index space
    for k, (mask_a, mask_b) in enumerate(zip(masks_a, masks_b)):
        sets_a = [set(np.flatnonzero(row).tolist()) for row in mask_a]
        sets_b = []
        for row in mask_b:
            inputs = np.flatnonzero(row).tolist()
            sets_b.append({label[j] for j in inputs} if label is not None else set(inputs))
        cost = []
        for a in sets_a:
            cost_row = []
            for b in sets_b:
                if not a and not b:
                    cost_row.append(0.0)
                else:
                    shared = len(a & b)
                    cost_row.append((len(a) + len(b) - 2 * shared) / (len(a) + len(b) - shared))
            cost.append(cost_row)
        cost = np.array(cost, dtype=np.float64).reshape(len(sets_a), len(sets_b))
        if match_output or k < len(masks_a) - 1:
            rows, cols = linear_sum_assignment(cost)
        else:
            rows = cols = np.arange(min(len(sets_a), len(sets_b)))
        match = [-1] * len(sets_a)
        total = 0.0
        for r, c in zip(rows, cols):
            match[r] = int(c)
            total += cost[r, c]
        total += len(sets_a) - len(rows)
        layer_distances.append(total / len(sets_a))
        matchings.append(match)
        label = {}
        for i, c in enumerate(match):
            if c >= 0:
                label[c] = i
        extra = len(sets_a)
        for c in range(len(sets_b)):
            if c not in label:
                label[c] = extra
                extra += 1
    return sum(layer_distances) / len(layer_distances), layer_distances, matchings


def random_masks(widths, density, rng, empty_rows=0):
    """Dense bool masks [out, in] for a chain of node-layer ``widths``, some rows emptied."""
    masks = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        mask = rng.random((n_out, n_in)) < density
        if empty_rows:
            mask[rng.choice(n_out, size=min(empty_rows, n_out), replace=False)] = False
        masks.append(mask)
    return masks


def distinct_masks(widths, rng):
    """Masks without empty or duplicate neurons (their NNSTD matching is unique)."""
    while True:
        masks = random_masks(widths, 0.4, rng)
        if all(
            m.any(axis=1).all() and len({row.tobytes() for row in m}) == m.shape[0] for m in masks
        ):
            return masks


def permuted_copy(masks, rng):
    """The same network with every hidden layer's neurons permuted; the permutations."""
    masks = [m.copy() for m in masks]
    perms = []
    for k in range(len(masks) - 1):
        perm = rng.permutation(masks[k].shape[0])
        masks[k] = masks[k][perm]
        masks[k + 1] = masks[k + 1][:, perm]
        perms.append(perm)
    return masks, perms


def topology(masks, path=None):
    return topo.Topology.from_masks(masks, info={"path": path} if path else None)


# -- cost of two neurons ------------------------------------------------------------------
def test_cost_matrix_values():
    a = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]], dtype=bool)
    b = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
    import scipy.sparse as sp

    cost = layer_cost_matrix(sp.csr_matrix(a), sp.csr_matrix(b))
    assert cost.dtype == np.float64
    assert cost[0, 0] == 0.0  # same inputs
    assert cost[0, 1] == 1.0  # nothing shared
    assert cost[1, 2] == 0.0  # both empty
    assert cost[1, 0] == 1.0  # one empty
    # {0,2,3} vs {2,3}: (3 + 2 - 4) / 3, in exactly this arithmetic
    assert cost[2, 1] == (3 + 2 - 2 * 2) / (3 + 2 - 2)
    assert cost[2, 0] == (3 + 2 - 2 * 1) / (3 + 2 - 1)


# -- nnstd --------------------------------------------------------------------------------
def test_self_distance_is_zero(small_topology):
    result = nnstd(small_topology, small_topology)
    assert result.distance == 0.0
    assert result.layer_distances == [0.0, 0.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuted_copy_is_at_distance_zero_and_matching_inverts_the_permutation(seed):
    rng = np.random.default_rng(seed)
    masks = distinct_masks([15, 12, 10, 6], rng)
    copy, perms = permuted_copy(masks, rng)
    result = nnstd(topology(masks), topology(copy))
    assert result.distance == 0.0
    assert result.layer_distances == [0.0, 0.0, 0.0]
    # copy's neuron i is the original's perm[i], so original j matches copy argsort(perm)[j]
    for k, perm in enumerate(perms):
        np.testing.assert_array_equal(result.matchings[k], np.argsort(perm))
        np.testing.assert_array_equal(np.asarray(perm)[result.matchings[k]], np.arange(perm.size))
    np.testing.assert_array_equal(result.matchings[-1], np.arange(6))
    # the other direction too
    assert nnstd(topology(copy), topology(masks)).distance == 0.0


def test_unpropagated_permutation_would_not_be_zero():
    """The permuted copy is only at distance 0 because the match propagates."""
    rng = np.random.default_rng(5)
    masks = distinct_masks([15, 12, 10, 6], rng)
    copy, _ = permuted_copy(masks, rng)
    alone = [nnstd(topology([m]), topology([c])).distance for m, c in zip(masks, copy)]
    assert alone[0] == 0.0  # rows permuted only
    assert alone[1] > 0.0 and alone[2] > 0.0  # columns permuted


def test_layer_with_no_shared_inputs_has_distance_one():
    rng = np.random.default_rng(3)
    first = np.zeros((8, 20), dtype=bool)
    second = np.zeros((8, 20), dtype=bool)
    first[:, :10] = rng.random((8, 10)) < 0.5
    second[:, 10:] = rng.random((8, 10)) < 0.5
    first[np.arange(8), rng.integers(0, 10, 8)] = True  # no empty neuron
    second[np.arange(8), rng.integers(10, 20, 8)] = True
    out = rng.random((4, 8)) < 0.5
    result = nnstd(topology([first, out]), topology([second, out]))
    assert result.layer_distances[0] == 1.0
    assert 0.0 <= result.distance <= 1.0


def test_empty_layers_are_at_distance_zero():
    empty = np.zeros((5, 7), dtype=bool)
    assert nnstd(topology([empty]), topology([empty])).distance == 0.0
    full = np.ones((5, 7), dtype=bool)
    assert nnstd(topology([empty]), topology([full])).distance == 1.0


@pytest.mark.parametrize(
    "widths_a, widths_b, empty_rows",
    [
        ([12, 9, 9, 4], [12, 9, 9, 4], 0),
        ([12, 9, 9, 4], [12, 9, 9, 4], 2),  # empty neurons: ties between them
        ([12, 9, 7, 4], [12, 11, 5, 4], 2),  # unequal hidden widths, both directions
        ([10, 6, 3], [10, 8, 5], 1),  # unequal output widths
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("match_output", [True, False])
def test_equals_plain_implementation(widths_a, widths_b, empty_rows, seed, match_output):
    rng = np.random.default_rng(seed)
    masks_a = random_masks(widths_a, 0.3, rng, empty_rows)
    masks_b = random_masks(widths_b, 0.3, rng, empty_rows)
    for first, second in ((masks_a, masks_b), (masks_b, masks_a)):
        expected, expected_layers, expected_matchings = plain_nnstd(first, second, match_output)
        result = nnstd(topology(first), topology(second), match_output=match_output, tie_break="reference")
        assert result.distance == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert result.layer_distances == pytest.approx(expected_layers, rel=1e-12, abs=1e-15)
        for got, want in zip(result.matchings, expected_matchings):
            np.testing.assert_array_equal(got, want)
        assert 0.0 <= result.distance <= 1.0
        assert all(0.0 <= d <= 1.0 for d in result.layer_distances)


def test_unmatched_output_compares_neurons_by_index():
    rng = np.random.default_rng(7)
    masks = distinct_masks([10, 8, 5], rng)
    swapped = [masks[0], masks[1][::-1].copy()]
    assert nnstd(topology(masks), topology(swapped)).distance == 0.0
    result = nnstd(topology(masks), topology(swapped), match_output=False)
    np.testing.assert_array_equal(result.matchings[-1], np.arange(5))
    assert result.layer_distances[0] == 0.0
    assert result.layer_distances[1] > 0.0


def test_not_symmetric_with_unequal_widths():
    rng = np.random.default_rng(11)
    a = topology(random_masks([10, 6, 3], 0.4, rng))
    b = topology(random_masks([10, 9, 3], 0.4, rng))
    assert nnstd(a, b).distance != nnstd(b, a).distance


def test_standalone_layers_are_compared_without_propagation():
    rng = np.random.default_rng(4)
    first, block, head = distinct_masks([10, 8, 6], rng)[0], *distinct_masks([5, 6, 4], rng)
    perm = rng.permutation(6)
    layers_a = [
        topo.Layer.from_mask("first", first),
        topo.Layer.from_mask("block", block, standalone=True),
        topo.Layer.from_mask("head", head),
    ]
    # the block's neurons permuted, and the head's inputs as if the block fed it
    layers_b = [
        topo.Layer.from_mask("first", first[rng.permutation(8)]),
        topo.Layer.from_mask("block", block[perm], standalone=True),
        topo.Layer.from_mask("head", head[:, perm]),
    ]
    result = nnstd(topo.Topology(layers_a), topo.Topology(layers_b))
    assert result.layer_distances[0] == 0.0
    assert result.layer_distances[1] == 0.0
    head_alone = nnstd(topology([head]), topology([head[:, perm]])).distance
    assert head_alone > 0.0
    assert result.layer_distances[2] == head_alone


def test_incomparable_topologies_raise_naming_both():
    rng = np.random.default_rng(0)
    a = topology(random_masks([10, 6, 3], 0.4, rng), path="first.safetensors")
    b = topology(random_masks([10, 6, 4, 3], 0.4, rng), path="second.safetensors")
    with pytest.raises(TopoError, match="first.safetensors.*second.safetensors"):
        nnstd(a, b)
    c = topology(random_masks([11, 6, 3], 0.4, rng), path="third.safetensors")
    with pytest.raises(TopoError, match="first.safetensors.*10 inputs.*third.safetensors.*11"):
        nnstd(a, c)


# -- the matrix ---------------------------------------------------------------------------
def _three_networks():
    rng = np.random.default_rng(21)
    return [
        topology(random_masks([10, 7, 3], 0.35, rng)),
        topology(random_masks([10, 9, 3], 0.35, rng)),
        topology(random_masks([10, 7, 3], 0.35, rng)),
    ]


def test_matrix_holds_every_ordered_pair():
    nets = _three_networks()
    calls = []
    matrix = nnstd_matrix(nets, progress=lambda done, total: calls.append((done, total)))
    assert matrix.shape == (3, 3)
    np.testing.assert_array_equal(np.diag(matrix), 0.0)
    for i in range(3):
        for j in range(3):
            if i != j:
                assert matrix[i, j] == nnstd(nets[i], nets[j]).distance
    assert not np.allclose(matrix, matrix.T)  # unequal widths: not symmetric
    assert calls[-1] == (6, 6)


def test_matrix_from_paths_in_processes(tmp_path):
    nets = _three_networks()
    paths = []
    for i, net in enumerate(nets):
        paths.append(tmp_path / f"net{i}.safetensors")
        topo.save_checkpoint(net, paths[-1])
    expected = nnstd_matrix(nets, match_output=False)
    np.testing.assert_array_equal(nnstd_matrix(paths, load=load_masks, match_output=False), expected)
    np.testing.assert_array_equal(
        nnstd_matrix([str(p) for p in paths], load=load_masks, match_output=False, workers=2), expected
    )
    with pytest.raises(TopoError, match="not a Topology"):
        nnstd_matrix(paths)  # analysis reads no files itself


def test_matrix_reports_unreadable_path(tmp_path):
    nets = _three_networks()
    with pytest.raises(TopoError, match="missing.safetensors"):
        nnstd_matrix([nets[0], tmp_path / "missing.safetensors"], load=load_masks)


# -- mask turnover ------------------------------------------------------------------------
def test_mask_turnover():
    a = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
    b = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)  # 2 of 3 kept, 1 removed, 1 added
    empty = np.zeros((2, 3), dtype=bool)
    out = np.ones((1, 2), dtype=bool)
    turnover = mask_turnover(topology([a, out]), topology([b, out]))
    assert turnover == [pytest.approx(2 / 6), 0.0]
    assert mask_turnover(topology([a]), topology([~a])) == [1.0]
    assert mask_turnover(topology([empty]), topology([empty])) == [0.0]
    with pytest.raises(TopoError, match="shapes"):
        mask_turnover(topology([a]), topology([a.T.copy()]))


# -- the SET networks of Liu et al. -------------------------------------------------------
def test_set_networks(shared_data):
    from set_mlp import load_set_network

    folder = shared_data / "set-mlp"
    if not folder.is_dir():
        pytest.skip("set-mlp networks not in the shared data folder")
    first = load_set_network(folder, 0, 190)
    second = load_set_network(folder, 1, 190)
    assert nnstd(first, first).distance == 0.0
    result = nnstd(first, second, tie_break="reference")
    assert 0.0 < result.distance <= 1.0
    assert len(result.layer_distances) == 4
    assert all(0.0 <= d <= 1.0 for d in result.layer_distances)
    # the real networks have many empty neurons, whose ties the matching must break
    # exactly as the plain implementation does; two layers keep the test short
    masks_a = [first[k].mask.toarray() for k in range(2)]
    masks_b = [second[k].mask.toarray() for k in range(2)]
    expected, expected_layers, expected_matchings = plain_nnstd(masks_a, masks_b)
    short = nnstd(topology(masks_a), topology(masks_b), tie_break="reference")
    assert short.layer_distances == pytest.approx(expected_layers, rel=1e-12)
    assert short.layer_distances == pytest.approx(result.layer_distances[:2], rel=1e-12)
    np.testing.assert_array_equal(short.matchings[1], expected_matchings[1])


# -- the canonical tie-break: one rule for every solver ------------------------------------
def splitmix_key(i, j):
    """The documented tie key, written with Python integers."""
    if i == j:
        return 0.0
    mask = (1 << 64) - 1
    x = ((i + 1) * 0x9E3779B97F4A7C15 + (j + 1) * 0xC2B2AE3D27D4EB4F) & mask
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & mask
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & mask
    x ^= x >> 31
    return 0.5 + (x >> 11) / 2.0**54


def test_tie_keys_follow_the_documented_hash():
    from topo.analysis.distance import tie_keys

    rows = np.array([0, 0, 1, 5, 783, 15999, 7])
    cols = np.array([0, 1, 0, 9, 2, 15998, 7])
    np.testing.assert_array_equal(tie_keys(rows, cols), [splitmix_key(int(i), int(j)) for i, j in zip(rows, cols)])
    keys = tie_keys(np.repeat(np.arange(50), 50), np.tile(np.arange(50), 50))
    off = keys[np.repeat(np.arange(50), 50) != np.tile(np.arange(50), 50)]
    assert off.min() >= 0.5 and off.max() < 1.0 and np.unique(off).size == off.size


def single_layer(rows, n_in=8):
    """A one-layer topology from a list of input sets."""
    mask = np.zeros((len(rows), n_in), dtype=bool)
    for i, inputs in enumerate(rows):
        mask[i, list(inputs)] = True
    return topology([mask])


@pytest.mark.parametrize("solver", ["dense", "sparse", "auto"])
def test_empty_neurons_pair_in_index_order_and_leftovers_in_index_order(solver):
    # network 1: neurons 1 and 3 empty; network 2: neurons 0, 2 and 4 empty
    a = single_layer([{0, 1}, set(), {6}, set(), {7}])
    b = single_layer([set(), {0, 1}, set(), {4, 5}, set()])
    result = nnstd(a, b, solver=solver)
    # 0 -> 1 (identical); empties 1 -> 0, 3 -> 2; neurons 2 and 4 share nothing: 2 -> 3, 4 -> 4
    assert result.matchings[0].tolist() == [1, 0, 3, 2, 4]
    assert result.layer_distances == [2 / 5]


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_equal_overlaps_are_broken_by_the_tie_key_not_by_the_solver(solver):
    # neuron 0 of network 1 is {0, 1}; network 2's neurons 0, 1, 2 are {0}, {1}, {0, 5}: costs 1/2, 1/2, 2/3
    a = single_layer([{0, 1}])
    b = single_layer([{0}, {1}, {0, 5}])
    result = nnstd(a, b, solver=solver)
    assert result.layer_distances == [0.5]
    # 0 -> 0 has key 0 (same index): preferred over 0 -> 1
    assert result.matchings[0].tolist() == [0]
    # now neither tied partner has the same index: the smaller hash key decides
    a = single_layer([set(range(6, 8)), {0, 1}])
    b = single_layer([{0}, {1}, {0, 5}, {6, 7}])
    result = nnstd(a, b, solver=solver)
    expected = 0 if splitmix_key(1, 0) < splitmix_key(1, 1) else 1
    assert result.matchings[0].tolist() == [3, expected]
    assert result.layer_distances == [0.5 / 2]


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_tie_keys_never_override_a_real_cost_difference(solver):
    # row 1 = {0, 1, 2}: column 1 = {0, 1} costs 1/3, column 0 = {0, 1, 2, 3} costs 1/4;
    # whatever the keys, the cheaper pair wins
    a = single_layer([{6}, {0, 1, 2}])
    b = single_layer([{0, 1, 2, 3}, {0, 1}])
    result = nnstd(a, b, solver=solver)
    assert result.matchings[0].tolist() == [1, 0]
    assert result.layer_distances == [(1 + 0.25) / 2]


@pytest.mark.parametrize("seed", range(6))
def test_solvers_agree_with_each_other_and_reach_the_optimum(seed):
    rng = np.random.default_rng(100 + seed)
    widths_a = [30, 40, 25, 5] if seed % 2 else [30, 40, 40, 5]
    widths_b = [30, 35, 30, 5] if seed % 2 else [30, 40, 40, 5]
    masks_a = random_masks(widths_a, 0.08, rng, empty_rows=4)
    masks_b = random_masks(widths_b, 0.08, rng, empty_rows=4)
    if seed >= 4:  # duplicate neurons: exact ties between whole rows
        masks_a[0][1::2] = masks_a[0][::2][: masks_a[0][1::2].shape[0]]
    a, b = topology(masks_a), topology(masks_b)
    dense = nnstd(a, b, solver="dense")
    sparse = nnstd(a, b, solver="sparse")
    assert dense.layer_distances == sparse.layer_distances
    for x, y in zip(dense.matchings, sparse.matchings):
        np.testing.assert_array_equal(x, y)
    # every layer's cost is optimal for the inputs the rule propagated into it: the
    # plain implementation, handed the canonical matching of the layers before, agrees
    label = None
    for k, (mask_a, mask_b) in enumerate(zip(masks_a, masks_b)):
        if label is not None:
            relabelled = np.zeros((mask_b.shape[0], max(mask_a.shape[1], mask_b.shape[1])), dtype=bool)
            rows, cols = np.nonzero(mask_b)
            relabelled[rows, label[cols]] = True
            padded_a = np.zeros((mask_a.shape[0], relabelled.shape[1]), dtype=bool)
            padded_a[:, : mask_a.shape[1]] = mask_a
            mask_a, mask_b = padded_a, relabelled
        optimum = plain_nnstd([mask_a], [mask_b])[1][0]
        assert dense.layer_distances[k] == pytest.approx(optimum, abs=1e-12)
        label = labels_in_a(dense.matchings[k], masks_b[k].shape[0])


def test_self_distance_is_zero_with_duplicate_and_empty_neurons():
    rng = np.random.default_rng(8)
    masks = random_masks([20, 30, 30, 4], 0.1, rng, empty_rows=5)
    masks[1][3] = masks[1][4]  # two identical neurons in layer 1, whose outputs differ
    net = topology(masks)
    for solver in ("dense", "sparse"):
        result = nnstd(net, net, solver=solver)
        assert result.distance == 0.0
        for match in result.matchings:
            np.testing.assert_array_equal(match, np.arange(match.size))


def test_wide_sparse_layers_give_the_same_result_with_both_solvers():
    rng = np.random.default_rng(12)

    def fan_in_masks(widths, fan_in):
        masks = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            mask = np.zeros((n_out, n_in), dtype=bool)
            mask[np.repeat(np.arange(n_out), fan_in), rng.permuted(np.tile(np.arange(n_in), (n_out, 1)), axis=1)[:, :fan_in].ravel()] = True
            masks.append(mask)
        return masks

    a = topology(fan_in_masks([300, 1200, 1200, 10], 6))
    b = topology(fan_in_masks([300, 1200, 1200, 10], 6))
    calls = []
    sparse = nnstd(a, b, solver="sparse", progress=lambda done, total: calls.append((done, total)))
    dense = nnstd(a, b, solver="dense")
    assert sparse.layer_distances == dense.layer_distances
    for x, y in zip(dense.matchings, sparse.matchings):
        np.testing.assert_array_equal(x, y)
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_unknown_options_raise():
    net = single_layer([{0}])
    with pytest.raises(TopoError, match="tie_break"):
        nnstd(net, net, tie_break="random")
    with pytest.raises(TopoError, match="solver"):
        nnstd(net, net, solver="magic")
    with pytest.raises(TopoError, match="reference"):
        nnstd(net, net, tie_break="reference", solver="sparse")


def test_cli_distance_tie_break_and_solver_options(tmp_path):
    import json

    from click.testing import CliRunner

    from topo_cli.main import main

    rng = np.random.default_rng(31)
    nets = [topology(random_masks([16, 24, 24, 4], 0.12, rng, empty_rows=3)) for _ in range(2)]
    paths = [topo.save_checkpoint(net, tmp_path / f"n{i}.safetensors") for i, net in enumerate(nets)]
    runner = CliRunner()

    def matrix(*options):
        result = runner.invoke(main, ["distance", *map(str, paths), "--format", "json", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    for options, kwargs in [
        ((), {}),
        (("--solver", "sparse"), {}),
        (("--tie-break", "reference"), {"tie_break": "reference"}),
    ]:
        data = matrix(*options)
        assert data["matrix"][0][1] == nnstd(nets[0], nets[1], **kwargs).distance
        assert data["matrix"][1][0] == nnstd(nets[1], nets[0], **kwargs).distance
    assert matrix("--tie-break", "reference")["tie_break"] == "reference"
    bad = runner.invoke(main, ["distance", *map(str, paths), "--tie-break", "reference", "--solver", "sparse"])
    assert bad.exit_code == 2 and "dense" in bad.output
    help_text = runner.invoke(main, ["distance", "--help"]).output
    assert "--tie-break" in help_text and "--solver" in help_text


def test_matrix_reports_every_layer_when_run_here():
    nets = _three_networks()
    calls = []
    pair_calls = []
    matrix = nnstd_matrix(
        nets, layer_progress=lambda done, total: calls.append((done, total)),
        progress=lambda done, total: pair_calls.append((done, total)),
    )
    assert calls[-1] == (12, 12) and (1, 12) in calls  # 6 pairs x 2 layers
    assert pair_calls[-1] == (6, 6)
    np.testing.assert_array_equal(matrix, nnstd_matrix(nets))


def test_pruned_sparse_solve_is_checked_to_the_same_result(monkeypatch):
    """Solving on a few cheap pairs per neuron, then checking every pair with the duals,
    gives exactly the dense solver's matchings, also where the first guess is wrong."""
    from conftest import shared_data_dir

    from topo.analysis import distance

    keep = 1  # one pair per neuron: the first guess is wrong and the check must add pairs
    rng = np.random.default_rng(41)
    nets = []
    for _ in range(2):
        masks = random_masks([60, 120, 120, 6], 0.07, rng, empty_rows=6)
        masks[1][5] = masks[1][6]  # identical neurons
        nets.append(topology(masks))
    pairs = [(nets[0], nets[1])]
    folder = Path(shared_data_dir() or '/nonexistent') / "set-mlp"
    if folder.is_dir():
        from set_mlp import load_set_network

        pairs.append((load_set_network(folder, 0, 190), load_set_network(folder, 3, 190)))
    checks = []
    original = distance._solve_pruned

    def counted(*args):
        result = original(*args)
        checks.append(result is not None)
        return result

    monkeypatch.setattr(distance, "_PRUNE_ABOVE_PAIRS", 0)
    monkeypatch.setattr(distance, "_KEEP_PER_NEURON", keep)
    monkeypatch.setattr(distance, "_solve_pruned", counted)
    for a, b in pairs:
        dense = nnstd(a, b, solver="dense")
        pruned = nnstd(a, b, solver="sparse")
        assert pruned.layer_distances == dense.layer_distances
        for x, y in zip(dense.matchings, pruned.matchings):
            np.testing.assert_array_equal(x, y)
    assert checks and all(checks)  # every layer settled by the check, none fell back


def test_pruned_check_recomputes_only_rows_that_can_violate_and_misses_none(monkeypatch):
    """The check recomputes the overlaps of the rows and columns that
    :func:`_rows_to_check` names; checking every row instead finds the same violations
    (the same number of solves) and the same matchings, which equal the dense solver's."""
    from topo.analysis import distance

    rng = np.random.default_rng(57)

    def fan_in_masks(widths, fan_in):
        masks = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            mask = np.zeros((n_out, n_in), dtype=bool)
            chosen = rng.permuted(np.tile(np.arange(n_in), (n_out, 1)), axis=1)[:, :fan_in]
            mask[np.repeat(np.arange(n_out), fan_in), chosen.ravel()] = True
            masks.append(mask)
        return masks

    a = topology(fan_in_masks([150, 500, 500, 10], 6))
    b = topology(fan_in_masks([150, 500, 500, 10], 6))
    monkeypatch.setattr(distance, "_PRUNE_ABOVE_PAIRS", 0)
    monkeypatch.setattr(distance, "_KEEP_PER_NEURON", 2)
    solves = []
    original_assignment = distance._SparseAssignment

    def counted_assignment(*args):
        solves.append(1)
        return original_assignment(*args)

    monkeypatch.setattr(distance, "_SparseAssignment", counted_assignment)
    filtered = []
    original_filter = distance._rows_to_check

    def recorded(floor, u, v, n_rows, n_cols):
        rows, cols = original_filter(floor, u, v, n_rows, n_cols)
        filtered.append(rows.size * cols.size < n_rows * n_cols)
        return rows, cols

    monkeypatch.setattr(distance, "_rows_to_check", recorded)
    narrowed = nnstd(a, b, solver="sparse")
    narrowed_solves = len(solves)
    assert filtered and any(filtered)  # the filter did leave pairs out

    solves.clear()
    monkeypatch.setattr(
        distance, "_rows_to_check", lambda floor, u, v, n_rows, n_cols: (np.arange(n_rows), np.arange(n_cols))
    )
    everything = nnstd(a, b, solver="sparse")
    assert len(solves) == narrowed_solves
    dense = nnstd(a, b, solver="dense")
    assert narrowed.layer_distances == everything.layer_distances == dense.layer_distances
    for x, y, z in zip(narrowed.matchings, everything.matchings, dense.matchings):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_a_failed_check_adds_each_rows_most_violated_pairs():
    from topo.analysis.distance import _first_per_row

    rows = np.array([0, 0, 0, 2, 2, 5])
    score = np.array([-0.1, -0.3, -0.2, 0.0, -0.5, -0.4])
    assert sorted(_first_per_row(rows, score, 2).tolist()) == [1, 2, 3, 4, 5]
    assert sorted(_first_per_row(rows, score, 1).tolist()) == [1, 4, 5]
    # equal scores: the earlier position first
    assert _first_per_row(np.zeros(3, dtype=int), np.zeros(3), 2).tolist() == [0, 1]

"""Structure features: path counts against brute force, invariances, reference implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from topo.analysis.structure import (
    FEATURES_VERSION,
    LAYER_FEATURES,
    NETWORK_FEATURES,
    chains,
    count_paths,
    feature_table,
    hidden_betweenness,
    log10_path_count,
    reachability,
    spectral_radius,
    square_clustering,
    structure_features,
)
from topo.topology import Layer, Topology


def _random_masks(widths, density, seed):
    rng = np.random.default_rng(seed)
    return [rng.random((widths[k + 1], widths[k])) < density for k in range(len(widths) - 1)]


def _brute_force_paths(masks):
    """Enumerate every neuron sequence through the node layers and keep the connected ones."""
    widths = [masks[0].shape[1]] + [m.shape[0] for m in masks]
    total = 0
    for sequence in itertools.product(*(range(w) for w in widths)):
        if all(masks[k][sequence[k + 1], sequence[k]] for k in range(len(masks))):
            total += 1
    return total


@pytest.mark.parametrize("seed", range(6))
def test_path_count_matches_enumeration(seed):
    rng = np.random.default_rng(100 + seed)
    widths = [int(w) for w in rng.integers(1, 5, size=int(rng.integers(2, 5)))]
    masks = _random_masks(widths, float(rng.uniform(0.2, 0.9)), seed)
    topology = Topology.from_masks(masks)
    expected = _brute_force_paths(masks)
    assert count_paths(topology, exact=True) == expected
    assert count_paths(topology) == float(expected)
    features = structure_features(topology)
    assert features["paths"] == float(expected)
    assert features["log10_paths"] == pytest.approx(math.log10(1 + expected))
    if expected:
        assert log10_path_count(topology) == pytest.approx(math.log10(expected))
    else:
        assert log10_path_count(topology) == float("-inf")


def test_standalone_layers_are_their_own_chains():
    rng = np.random.default_rng(5)
    a = rng.random((3, 4)) < 0.6
    b = rng.random((2, 3)) < 0.6
    c = rng.random((4, 5)) < 0.6  # does not chain: stands alone
    topology = Topology([
        Layer.from_mask("a", a), Layer.from_mask("b", b), Layer.from_mask("c", c, standalone=True)
    ])
    assert chains(topology) == [[0, 1], [2]]
    assert count_paths(topology, exact=True) == _brute_force_paths([a, b]) + _brute_force_paths([c])
    features = structure_features(topology)
    assert features["n_chains"] == 2
    if _brute_force_paths([a, b]) and c.any():
        assert features["path_length_min"] == 1 and features["path_length_max"] == 2


def test_huge_path_counts_stay_finite_in_log_space():
    topology = Topology.from_masks([np.ones((50, 50), dtype=bool)] * 1)
    dense = Topology.from_masks([np.ones((50, 50), dtype=bool) for _ in range(250)])
    assert count_paths(topology) == 50.0**2
    expected_log = 251 * math.log10(50)  # 50 inputs times 50 choices per layer
    assert log10_path_count(dense) == pytest.approx(expected_log)
    features = structure_features(dense, graph_metrics=False)
    assert features["log10_paths"] == pytest.approx(expected_log)
    assert features["paths"] == float("inf")
    assert count_paths(dense, exact=True) == 50**251


def test_reachability_and_reach_depth():
    # input 0 feeds nothing; hidden 1 has no input; output 1 is reached from no input
    first = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)  # [2 hidden, 3 inputs]
    second = np.array([[1, 0], [0, 1]], dtype=bool)  # [2 outputs, 2 hidden]
    topology = Topology.from_masks([first, second])
    reach = reachability(topology)
    assert reach["inputs_reaching_outputs"] == pytest.approx(2 / 3)
    assert reach["outputs_reachable"] == pytest.approx(1 / 2)
    assert reach["on_path_fraction"] == pytest.approx(1 / 2)
    assert reach["reach_depth"] == 2
    features = structure_features(topology)
    assert features["no_inputs"] == 1  # hidden 1 (output 1 has an input: hidden 1)
    assert features["no_outputs"] == 1  # input 2 (hidden 1 still feeds output 1)
    assert features["isolated"] == 1  # input 2
    assert features["path_length_min"] == features["path_length_max"] == 2
    # cut the second layer: the signal gets through one layer only
    cut = Topology.from_masks([first, np.zeros((2, 2), dtype=bool)])
    assert reachability(cut)["reach_depth"] == 1
    cut_features = structure_features(cut)
    assert cut_features["paths"] == 0 and cut_features["log10_paths"] == 0
    assert math.isnan(cut_features["path_length_min"])


def _permute_hidden(masks, layer, perm):
    masks = [m.copy() for m in masks]
    masks[layer] = masks[layer][perm, :]
    masks[layer + 1] = masks[layer + 1][:, perm]
    return masks


def test_features_invariant_to_permuting_hidden_neurons():
    masks = _random_masks([12, 9, 7, 4], 0.35, seed=3)
    rng = np.random.default_rng(0)
    permuted = _permute_hidden(masks, 0, rng.permutation(9))
    permuted = _permute_hidden(permuted, 1, rng.permutation(7))
    names = ["fc1", "fc2", "fc3"]
    a = structure_features(Topology.from_masks(masks, names=names))
    b = structure_features(Topology.from_masks(permuted, names=names))
    assert list(a) == list(b)
    np.testing.assert_allclose(np.array(list(a.values())), np.array(list(b.values())), rtol=1e-10, equal_nan=True)
    # and the features do see a real change of structure
    other = structure_features(Topology.from_masks(_random_masks([12, 9, 7, 4], 0.35, seed=4), names=names))
    assert any(not np.isclose(a[k], other[k], equal_nan=True) for k in a)


def test_feature_names_and_order():
    topology = Topology.from_masks(_random_masks([6, 5, 3], 0.5, seed=1), names=["fc1", "fc2"])
    features = structure_features(topology)
    expected = list(NETWORK_FEATURES) + [f"{n}.{f}" for n in ("fc1", "fc2") for f in LAYER_FEATURES]
    assert list(features) == expected
    assert isinstance(FEATURES_VERSION, int)
    assert features["fc1.density"] == pytest.approx(topology[0].density)
    assert features["fc2.fan_in_cv"] == pytest.approx(np.std(topology[1].fan_in) / np.mean(topology[1].fan_in))


def test_spectral_radius_sparse_and_dense_paths_agree():
    rng = np.random.default_rng(2)
    big = Layer.from_mask("big", rng.random((500, 480)) < 0.05)  # above the dense-SVD size
    assert spectral_radius(big) == pytest.approx(np.linalg.norm(big.mask.toarray().astype(float), 2), rel=1e-8)
    small = Layer.from_mask("small", rng.random((7, 5)) < 0.5)
    assert spectral_radius(small) == pytest.approx(np.linalg.norm(small.mask.toarray().astype(float), 2))
    assert spectral_radius(Layer.from_mask("empty", np.zeros((3, 3)))) == 0.0


def test_square_clustering_matches_networkx():
    import networkx as nx

    from topo.graph import to_networkx

    topology = Topology.from_masks(_random_masks([10, 8, 6, 3], 0.4, seed=7))
    graph = to_networkx(topology, weights=False).to_undirected()
    assert square_clustering(topology) == pytest.approx(nx.bipartite.robins_alexander_clustering(graph))


def test_betweenness_exact_matches_networkx_and_sampling_is_seeded():
    import networkx as nx

    from topo.graph import to_networkx

    topology = Topology.from_masks(_random_masks([8, 6, 5, 3], 0.5, seed=9))
    graph = to_networkx(topology, weights=False)
    reference = nx.betweenness_centrality(graph, normalized=True)
    hidden = [(1, j) for j in range(6)] + [(2, j) for j in range(5)]
    np.testing.assert_allclose(hidden_betweenness(topology), [reference[v] for v in hidden], atol=1e-12)
    sampled = hidden_betweenness(topology, exact_max=0, samples=10, seed=1)
    assert np.array_equal(sampled, hidden_betweenness(topology, exact_max=0, samples=10, seed=1))
    assert sampled.shape == (11,)


def test_feature_table_accepts_paths(tmp_path):
    from topo.checkpoint import save_checkpoint

    topology = Topology.from_masks(_random_masks([6, 5, 3], 0.5, seed=1), names=["fc1", "fc2"])
    path = save_checkpoint(topology, tmp_path / "net.safetensors")
    from topo.runs import load_topology

    rows = feature_table([path, topology], load=load_topology, graph_metrics=False)
    assert rows[0] == pytest.approx(rows[1], nan_ok=True)
    assert math.isnan(rows[0]["betweenness_mean"])


def test_fan_in_cv_mean_leaves_dense_layers_out():
    """A dense layer's fan-in CV is 0 by construction; it must not pull the network's mean down."""
    rng = np.random.default_rng(3)
    sparse = [rng.random((20, 30)) < 0.2, rng.random((10, 20)) < 0.3]
    expected = [np.std(m.sum(axis=1)) / np.mean(m.sum(axis=1)) for m in sparse]
    with_dense = structure_features(Topology.from_masks([*sparse, np.ones((4, 10))]), graph_metrics=False)
    assert with_dense["fan_in_cv_mean"] == pytest.approx(np.mean(expected))
    assert with_dense["fan_in_cv_max"] == pytest.approx(max(expected))
    # all dense: the mean is over every layer (0), not undefined
    assert structure_features(Topology.from_masks([np.ones((3, 4))]), graph_metrics=False)["fan_in_cv_mean"] == 0.0

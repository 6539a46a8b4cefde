"""Hub neurons, their overlap and persistence (topo.analysis.hubs)."""

from __future__ import annotations

import numpy as np
import pytest

import topo
from topo.analysis.hubs import hub_indices, hub_overlap, hub_persistence, jaccard
from topo.errors import TopoError


def layer_with_fan_in(fan_in, n_in=None, seed=0):
    """A layer whose neuron i has exactly fan_in[i] inputs at random positions."""
    rng = np.random.default_rng(seed)
    n_in = n_in or max(fan_in) + 1
    mask = np.zeros((len(fan_in), n_in), dtype=bool)
    for i, k in enumerate(fan_in):
        mask[i, rng.choice(n_in, size=k, replace=False)] = True
    return topo.Layer.from_mask("layer", mask)


def test_top_fraction_with_ties_broken_by_index():
    layer = layer_with_fan_in([3, 9, 5, 9, 1, 5, 7, 2, 2, 4])
    np.testing.assert_array_equal(hub_indices(layer, fraction=0.1), [1])
    np.testing.assert_array_equal(hub_indices(layer, fraction=0.2), [1, 3])
    np.testing.assert_array_equal(hub_indices(layer, fraction=0.3), [1, 3, 6])
    # a tie at the cut: fan-in 5 at neurons 2 and 5, the lower index wins
    np.testing.assert_array_equal(hub_indices(layer, fraction=0.4), [1, 2, 3, 6])
    np.testing.assert_array_equal(hub_indices(layer, fraction=1.0), np.arange(10))
    assert hub_indices(layer, fraction=0.01).size == 1  # at least one hub


def test_top_fraction_count_is_ceil_without_float_noise():
    layer = layer_with_fan_in(list(range(1, 31)), n_in=40)
    assert hub_indices(layer, fraction=0.1).size == 3  # 0.1 * 30 is not above 3
    assert hub_indices(layer, fraction=0.11).size == 4
    np.testing.assert_array_equal(hub_indices(layer, fraction=0.1), [27, 28, 29])


def test_z_rule():
    fan_in = [2] * 19 + [12]
    layer = layer_with_fan_in(fan_in)
    np.testing.assert_array_equal(hub_indices(layer, rule="z", z=2.0), [19])
    assert hub_indices(layer_with_fan_in([4] * 10), rule="z").size == 0


def test_bad_arguments():
    layer = layer_with_fan_in([1, 2, 3])
    with pytest.raises(TopoError, match="fraction"):
        hub_indices(layer, fraction=0.0)
    with pytest.raises(TopoError, match="rule"):
        hub_indices(layer, rule="largest")


def test_jaccard():
    assert jaccard(np.array([1, 2, 3]), np.array([2, 3, 4])) == 0.5
    assert np.isnan(jaccard(np.array([], dtype=int), np.array([], dtype=int)))


def _network_with_distinct_fan_in(rng):
    """20 inputs -> 20 -> 16 -> 5; hidden neuron i of a layer has i + 1 inputs, distinct sets."""
    masks = []
    for n_out, n_in in [(20, 20), (16, 20), (5, 16)]:
        while True:
            mask = np.zeros((n_out, n_in), dtype=bool)
            for i in range(n_out):
                mask[i, rng.choice(n_in, size=min(i + 1, n_in), replace=False)] = True
            if len({row.tobytes() for row in mask}) == n_out:
                break
        masks.append(mask)
    return masks


def test_permuted_copy_overlaps_fully_after_matching_and_little_by_index():
    rng = np.random.default_rng(0)
    masks = _network_with_distinct_fan_in(rng)
    copy = [m.copy() for m in masks]
    perms = [rng.permutation(20), rng.permutation(16)]
    for k, perm in enumerate(perms):
        copy[k] = copy[k][perm]
        copy[k + 1] = copy[k + 1][:, perm]
    a = topo.Topology.from_masks(masks)
    b = topo.Topology.from_masks(copy)
    assert hub_overlap(a, b, matched=True, fraction=0.2) == [1.0, 1.0, 1.0]
    by_index = hub_overlap(a, b, fraction=0.2)
    assert by_index[0] < 0.5 and by_index[1] < 0.5
    assert by_index[2] == 1.0  # the output layer is not permuted
    assert hub_overlap(a, a, fraction=0.2) == [1.0, 1.0, 1.0]


def test_matched_overlap_with_unequal_widths():
    rng = np.random.default_rng(2)
    a = topo.Topology.from_masks([rng.random((8, 10)) < 0.4, rng.random((3, 8)) < 0.5])
    b = topo.Topology.from_masks([rng.random((12, 10)) < 0.4, rng.random((3, 12)) < 0.5])
    for first, second in ((a, b), (b, a)):
        overlaps = hub_overlap(first, second, matched=True, fraction=0.25)
        assert len(overlaps) == 2
        assert all(0.0 <= v <= 1.0 for v in overlaps)


def test_overlap_needs_equal_layer_counts():
    rng = np.random.default_rng(1)
    a = topo.Topology.from_masks([rng.random((8, 10)) < 0.4])
    b = topo.Topology.from_masks([rng.random((8, 10)) < 0.4, rng.random((3, 8)) < 0.4])
    with pytest.raises(TopoError, match="layers"):
        hub_overlap(a, b)


def test_hub_persistence():
    grow = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    shrink = grow[::-1]
    checkpoints = [
        topo.Topology([layer_with_fan_in(shrink, n_in=12)]),  # hubs {0, 1}
        topo.Topology([layer_with_fan_in([1, 10, 2, 3, 4, 5, 6, 7, 8, 9], n_in=12)]),  # {1, 9}
        topo.Topology([layer_with_fan_in(grow, n_in=12)]),  # {8, 9}
    ]
    result = hub_persistence(checkpoints, fraction=0.2)
    assert result.shape == (3, 1)
    np.testing.assert_allclose(result[:, 0], [0.0, 1 / 3, 1.0])
    with pytest.raises(TopoError):
        hub_persistence([])

"""Layer budgets: ERK (RigL) and uniform densities, exact integer totals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topo.errors import TopoError
from topo.training.densities import apportion, layer_budgets, total_budget

SHAPES = [(8, 4), (4, 8), (2, 4)]  # sizes 32, 32, 8; n_in + n_out = 12, 12, 6


def reference_erk(shapes, sparsity, dense=()):
    """RigL's loop, written out: real counts per layer (no integer rounding)."""
    sizes = [o * i for o, i in shapes]
    target = (1 - sparsity) * sum(sizes)
    dense = set(dense)
    while True:
        free = [k for k in range(len(shapes)) if k not in dense]
        if not free:
            return [float(s) for s in sizes]
        rest = target - sum(sizes[k] for k in dense)
        eps = rest / sum(shapes[k][0] + shapes[k][1] for k in free)
        over = [k for k in free if eps * (shapes[k][0] + shapes[k][1]) / sizes[k] > 1]
        if not over:
            break
        dense.update(over)
    return [sizes[k] if k in dense else eps * (shapes[k][0] + shapes[k][1]) for k in range(len(shapes))]


def test_erk_hand_worked():
    # Budget 0.5 * 72 = 36 = eps * (12 + 12 + 6), so eps = 1.2 and the real counts are
    # 14.4, 14.4, 7.2 (densities 0.45, 0.45, 0.9: none dense).  Floors 14 + 14 + 7 = 35;
    # the one unit left goes to the largest remainder, the first layer (tie, lower index).
    eps = 36 / (12 + 12 + 6)
    assert eps == pytest.approx(1.2)
    assert [eps * 12, eps * 12, eps * 6] == pytest.approx([14.4, 14.4, 7.2])
    assert layer_budgets(SHAPES, 0.5, rule="erk") == [15, 14, 7]


def test_erk_dense_layer_resolved():
    # Budget 54: eps = 54 / 30 = 1.8 would give the last layer 10.8 > 8 weights, so it
    # becomes dense (8) and eps is solved again: 46 / 24, giving 23 and 23.
    assert reference_erk(SHAPES, 0.25) == pytest.approx([23, 23, 8])
    assert layer_budgets(SHAPES, 0.25) == [23, 23, 8]


def test_erk_cascade_matches_rigl_loop():
    # Layers of very different aspect: two rounds of the dense re-solve.
    shapes = [(1000, 784), (300, 1000), (30, 300), (10, 30)]
    ref = reference_erk(shapes, 0.8)
    budgets = layer_budgets(shapes, 0.8)
    sizes = [o * i for o, i in shapes]
    assert budgets[3] == sizes[3] and budgets[2] == sizes[2]
    for got, want in zip(budgets, ref):
        assert math.floor(want) <= got <= math.ceil(want)
    assert sum(budgets) == total_budget(sum(sizes), 0.8)


def test_erk_mlp_numbers():
    shapes = [(300, 784), (100, 300), (10, 100)]
    budgets = layer_budgets(shapes, 0.9)
    # 26620 weights; the output layer (score 110 / 1000 * eps > 1) is dense, then
    # eps = 25620 / 1484 for the others.
    assert budgets == [18714, 6906, 1000]
    assert sum(budgets) == 26620


def test_uniform_exact():
    shapes = [(300, 784), (100, 300), (10, 100)]
    assert layer_budgets(shapes, 0.9, rule="uniform") == [23520, 3000, 100]
    assert layer_budgets(SHAPES, 0.5, rule="uniform") == [16, 16, 4]


def test_dense_output_counts_in_budget():
    shapes = [(100, 50), (100, 100), (40, 100)]
    budgets = layer_budgets(shapes, 0.7, dense_output=True)
    assert budgets[2] == 4000
    assert sum(budgets) == total_budget(19000, 0.7) == 5700
    # The rest share 1700 by ERK: eps * (150 + 200) = 1700.
    eps = 1700 / 350
    assert budgets[:2] == [round(eps * 150), round(eps * 200)]
    uniform = layer_budgets(shapes, 0.7, rule="uniform", dense_output=True)
    assert uniform == [567, 1133, 4000]  # 1700 over 15000 positions: 566.67 and 1133.33


def test_sparsity_zero_is_dense():
    assert layer_budgets(SHAPES, 0.0) == [32, 32, 8]
    assert layer_budgets(SHAPES, 0, rule="uniform") == [32, 32, 8]


def test_total_budget_rounding():
    assert total_budget(100, 0.9) == 10  # (1 - 0.9) * 100 is 9.999...
    assert total_budget(5, 0.5) == 3  # halves round up
    assert total_budget(7, 0.5) == 4
    assert total_budget(1000, 0.0) == 1000


def test_density_map_by_index_and_name():
    shapes = [(100, 50), (100, 100), (40, 100)]
    names = ["fc1", "fc2", "fc3"]
    budgets = layer_budgets(shapes, 0.7, density_map={"fc1": 0.5}, names=names)
    assert budgets[0] == 2500
    assert sum(budgets) == 5700
    assert layer_budgets(shapes, 0.7, density_map={0: 0.5}) == budgets
    assert layer_budgets(shapes, 0.7, density_map={-3: 0.5}) == budgets
    uniform = layer_budgets(shapes, 0.7, rule="uniform", density_map={2: 0.1})
    assert uniform[2] == 400 and sum(uniform) == 5700
    assert uniform[0] / 5000 == pytest.approx(uniform[1] / 10000, abs=1e-3)


def test_at_least_one_input_per_neuron_where_possible():
    # A wide, short first layer: ERK alone would give the second layer fewer weights
    # than neurons; the floor of n_out holds and the first layer gives way.
    shapes = [(10, 10000), (2000, 10)]
    budgets = layer_budgets(shapes, 0.98, rule="erk")
    assert budgets[1] >= 2000
    assert sum(budgets) == total_budget(120000, 0.98)
    # Impossible: fewer weights than neurons overall; the floor is dropped.
    tiny = layer_budgets(shapes, 0.999)
    assert sum(tiny) == 120


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sparsity": 1.0},
        {"sparsity": -0.1},
        {"sparsity": "lots"},
        {"sparsity": 0.5, "rule": "erdos"},
        {"sparsity": 0.5, "density_map": {0: 1.5}},
        {"sparsity": 0.5, "density_map": {0: 0.0}},
        {"sparsity": 0.5, "density_map": {7: 0.5}},
        {"sparsity": 0.5, "density_map": {"fc9": 0.5}},
        {"sparsity": 0.9, "density_map": {0: 1.0, 1: 1.0}},  # fixed layers exceed the budget
        {"sparsity": 0.1, "density_map": {0: 0.01, 1: 0.01}},  # last layer cannot hold the rest
        {"sparsity": 0.5, "density_map": {0: 0.5, 1: 0.5, 2: 1.0}},  # all fixed, total differs
        {"sparsity": 0.5, "dense_output": True, "density_map": {2: 0.5}},
    ],
)
def test_bad_inputs_raise(kwargs):
    with pytest.raises(TopoError):
        layer_budgets(SHAPES, **kwargs)


@pytest.mark.parametrize("shapes", [[], [(0, 3)], [(3,)], "abc"])
def test_bad_shapes_raise(shapes):
    with pytest.raises(TopoError):
        layer_budgets(shapes, 0.5)


def test_apportion_bounds_and_order():
    counts = apportion([5.0, 3.0, 1.0, 0.0], 20, [1, 1, 1, 1], [8, 8, 8, 8])
    assert counts.sum() == 20
    assert list(counts) == sorted(counts, reverse=True)
    assert counts.max() <= 8 and counts.min() >= 1
    with pytest.raises(TopoError):
        apportion([1.0, 1.0], 20, [1, 1], [8, 8])


shape_lists = st.lists(
    st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=5
)


@settings(max_examples=150, deadline=None)
@given(shapes=shape_lists, sparsity=st.floats(0.0, 0.995), rule=st.sampled_from(["erk", "uniform"]),
       dense_output=st.booleans())
def test_budgets_meet_totals_exactly(shapes, sparsity, rule, dense_output):
    sizes = [o * i for o, i in shapes]
    total = sum(sizes)
    try:
        budgets = layer_budgets(shapes, sparsity, rule=rule, dense_output=dense_output)
    except TopoError:
        # Only an over-full dense output (or nothing left to be sparse) may refuse.
        assert dense_output and (sizes[-1] > total_budget(total, sparsity) or len(shapes) == 1
                                 or total_budget(total, sparsity) - sizes[-1] > total - sizes[-1])
        return
    assert sum(budgets) == total_budget(total, sparsity)
    assert all(0 <= b <= s for b, s in zip(budgets, sizes))
    if dense_output:
        assert budgets[-1] == sizes[-1]
    free = range(len(shapes) - 1) if dense_output else range(len(shapes))
    if sum(budgets[k] for k in free) >= sum(shapes[k][0] for k in free):
        assert all(budgets[k] >= shapes[k][0] for k in free)


@settings(max_examples=100, deadline=None)
@given(shapes=shape_lists, sparsity=st.floats(0.0, 0.9))
def test_erk_within_one_of_rigl(shapes, sparsity):
    budgets = layer_budgets(shapes, sparsity)
    ref = reference_erk(shapes, 1 - total_budget(sum(o * i for o, i in shapes), sparsity)
                        / sum(o * i for o, i in shapes))
    if any(math.floor(r) < o for r, (o, _) in zip(ref, shapes)):
        return  # the one-input-per-neuron floor binds; RigL has no such floor
    for got, want in zip(budgets, ref):
        assert math.floor(want + 1e-9) <= got <= math.ceil(want - 1e-9)

"""Initial masks: budgets met exactly, profiles applied per layer, same seed same masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topo.errors import TopoError
from topo.training.densities import layer_budgets, total_budget
from topo.training.masks import InitialMasks, initial_masks

MLP = [(300, 784), (100, 300), (10, 100)]


def cv_of(k):
    k = np.asarray(k, dtype=np.float64)
    return float(k.std() / k.mean())


def test_default_is_erk_random():
    result = initial_masks(MLP, 0.9, seed=0)
    assert isinstance(result, InitialMasks)
    assert result.budgets == layer_budgets(MLP, 0.9) == [18714, 6906, 1000]
    for mask, (out, inp), budget, cv in zip(result.masks, MLP, result.budgets, result.achieved_cv):
        assert mask.dtype == np.bool_ and mask.shape == (out, inp)
        assert int(mask.sum()) == budget
        assert cv == pytest.approx(cv_of(mask.sum(axis=1)))
    # The ERK output layer came out dense: all True, CV 0.
    assert result.masks[2].all() and result.achieved_cv[2] == 0.0


def test_same_seed_same_masks_bit_for_bit():
    kwargs = dict(density="erk", profile="lognormal", cv=1.0, hub_placement="shuffled")
    a = initial_masks(MLP, 0.95, seed=5, **kwargs)
    b = initial_masks(MLP, 0.95, seed=5, **kwargs)
    c = initial_masks(MLP, 0.95, seed=6, **kwargs)
    for x, y in zip(a.masks, b.masks):
        assert np.array_equal(x, y)
    assert a.achieved_cv == b.achieved_cv
    assert not np.array_equal(a.masks[0], c.masks[0])
    assert a.budgets == c.budgets


def test_random_profile_seed_changes_masks():
    a = initial_masks(MLP, 0.9, seed=0, density="uniform")
    b = initial_masks(MLP, 0.9, seed=1, density="uniform")
    assert all(not np.array_equal(x, y) for x, y in zip(a.masks, b.masks))


@pytest.mark.parametrize("profile", ["linear", "exponential", "lognormal", "powerlaw", "step"])
def test_profile_targets_cv(profile):
    result = initial_masks(MLP, 0.9, density="uniform", profile=profile, cv=1.0)
    for mask, cv in zip(result.masks[:2], result.achieved_cv[:2]):
        fan_in = mask.sum(axis=1)
        assert cv == pytest.approx(1.0, abs=0.02)
        assert fan_in.min() >= 1
        assert np.all(np.diff(fan_in) <= 0)  # index placement: neuron 0 is the hub


def test_dense_output_layer_all_true_whatever_profile():
    result = initial_masks(MLP, 0.95, density="uniform", profile="exponential", cv=2.0, dense_output=True)
    assert result.masks[-1].all()
    assert result.achieved_cv[-1] == 0.0
    assert sum(result.budgets) == total_budget(sum(o * i for o, i in MLP), 0.95)


def test_profile_per_layer_list_and_mapping():
    per_layer = [("lognormal", 1.2), ("lognormal", 0.6), None]
    result = initial_masks(MLP, 0.9, density="uniform", profile_per_layer=per_layer, seed=3)
    assert result.achieved_cv[0] == pytest.approx(1.2, abs=0.02)
    assert result.achieved_cv[1] == pytest.approx(0.6, abs=0.02)
    names = ["fc1", "fc2", "fc3"]
    by_name = initial_masks(
        MLP, 0.9, density="uniform", names=names, seed=3,
        profile_per_layer={"fc1": ("lognormal", 1.2), 1: {"profile": "lognormal", "cv": 0.6}},
    )
    for x, y in zip(result.masks, by_name.masks):
        assert np.array_equal(x, y)
    shuffled = initial_masks(
        MLP, 0.9, density="uniform", seed=3,
        profile_per_layer={0: {"profile": "lognormal", "cv": 1.2, "hub_placement": "shuffled"}},
    )
    fan_in = shuffled.masks[0].sum(axis=1)
    assert sorted(fan_in) == sorted(result.masks[0].sum(axis=1))
    assert not np.all(np.diff(fan_in) <= 0)


def test_density_map_passes_through():
    result = initial_masks(MLP, 0.9, density_map={0: 0.05}, seed=0)
    assert result.budgets[0] == round(0.05 * 300 * 784)
    assert [int(m.sum()) for m in result.masks] == result.budgets


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"profile": "zipf"}, "unknown fan-in profile"),
        ({"profile": "linear"}, "needs a target"),
        ({"profile": "linear", "cv": 1.0, "hub_placement": "middle"}, "hub placement"),
        ({"density": "erdos"}, "density rule"),
        ({"seed": "abc"}, "seed"),
        ({"profile_per_layer": [("lognormal", 1.0)]}, "entries"),
        ({"profile_per_layer": [("lognormal",), None, None]}, "entry"),
        ({"profile_per_layer": {"fc9": ("lognormal", 1.0)}}, "fc9"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(TopoError, match=match):
        initial_masks(MLP, 0.9, names=["fc1", "fc2", "fc3"], **kwargs)


def test_error_names_the_layer():
    # 0.1% of 100 x 10 is one weight for 100 neurons: a parametric profile cannot.
    with pytest.raises(TopoError, match="fc1"):
        initial_masks([(100, 10)], 0.999, profile="linear", cv=1.0, names=["fc1"])


@settings(max_examples=40, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=4),
    sparsity=st.floats(0.0, 0.98),
    density=st.sampled_from(["erk", "uniform"]),
    seed=st.integers(0, 1000),
)
def test_masks_have_exactly_the_budgets(shapes, sparsity, density, seed):
    result = initial_masks(shapes, sparsity, density=density, seed=seed)
    total = sum(o * i for o, i in shapes)
    assert sum(result.budgets) == total_budget(total, sparsity)
    assert [int(m.sum()) for m in result.masks] == result.budgets
    assert [m.shape for m in result.masks] == [tuple(s) for s in shapes]
    again = initial_masks(shapes, sparsity, density=density, seed=seed)
    assert all(np.array_equal(x, y) for x, y in zip(result.masks, again.masks))


@settings(max_examples=30, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(8, 40), st.integers(2, 40)), min_size=1, max_size=3),
    sparsity=st.floats(0.0, 0.9),
    profile=st.sampled_from(["constant", "linear", "gaussian", "lognormal", "powerlaw"]),
    cv=st.floats(0.0, 1.0),
)
def test_profiled_masks_give_every_neuron_an_input(shapes, sparsity, profile, cv):
    budgets = layer_budgets(shapes, sparsity)
    if any(b < o for b, (o, _) in zip(budgets, shapes)):
        return  # too sparse for one input per neuron
    result = initial_masks(shapes, sparsity, profile=profile, cv=None if profile == "constant" else cv)
    for mask, budget in zip(result.masks, result.budgets):
        assert int(mask.sum()) == budget
        assert mask.sum(axis=1).min() >= 1

"""Fan-in profiles: exact budgets, bounds, target CVs, shapes, placement; mask sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topo.errors import TopoError
from topo.training.profiles import (
    PARAMETRIC_PROFILES,
    PROFILES,
    fan_in_profile,
    max_cv,
    profile_weights,
    sample_mask,
)

# A layer where every target up to 2.5 is attainable: mean fan-in 50, cap 1000
# (putting 5% of the neurons at the cap and the rest at 1 would give a CV of 4.3).
N_OUT, N_IN, BUDGET = 200, 1000, 10000
TARGETS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5]
# Integer rounding moves the CV by about 1 / mean fan-in at most; here 0.01 is ample.
CV_TOLERANCE = 0.01

DECREASING = [p for p in PARAMETRIC_PROFILES if p not in ("gaussian", "ushaped")]


def cv_of(k):
    k = np.asarray(k, dtype=np.float64)
    return float(k.std() / k.mean())


def test_profile_names():
    assert set(PROFILES) == {"random", "constant", *PARAMETRIC_PROFILES}
    assert len(PARAMETRIC_PROFILES) == 10


@pytest.mark.parametrize("name", PARAMETRIC_PROFILES)
@pytest.mark.parametrize("target", TARGETS)
def test_family_hits_target_exactly_budgeted(name, target):
    k = fan_in_profile(name, N_OUT, N_IN, BUDGET, cv=target)
    assert k.dtype == np.int64 and k.shape == (N_OUT,)
    assert k.sum() == BUDGET
    assert k.min() >= 1 and k.max() <= N_IN
    assert abs(cv_of(k) - target) <= CV_TOLERANCE


@pytest.mark.parametrize("name", PARAMETRIC_PROFILES)
def test_index_placement_shape(name):
    k = fan_in_profile(name, N_OUT, N_IN, BUDGET, cv=1.0)
    steps = np.diff(k)
    if name in DECREASING:
        assert np.all(steps <= 0), "neuron 0 must carry the largest fan-in"
        assert k[0] > k[-1]
    elif name == "gaussian":
        peak = int(np.argmax(k))
        assert k[N_OUT // 2] == k.max() and abs(peak - N_OUT / 2) <= 10
        assert np.all(steps[:peak] >= 0) and np.all(steps[peak:] <= 0)
    else:  # ushaped
        low = int(np.argmin(k))
        assert np.all(steps[:low] <= 0) and np.all(steps[low:] >= 0)
        assert k[0] > k[N_OUT // 2] and k[-1] > k[N_OUT // 2]


@pytest.mark.parametrize("name", PARAMETRIC_PROFILES + ("constant",))
def test_shuffled_is_permutation_of_index(name):
    cv = None if name == "constant" else 1.5
    index = fan_in_profile(name, N_OUT, N_IN, BUDGET, cv=cv)
    shuffled = fan_in_profile(name, N_OUT, N_IN, BUDGET, cv=cv, hub_placement="shuffled",
                              rng=np.random.default_rng(3))
    assert sorted(shuffled) == sorted(index)
    if name != "constant" and name != "step":
        assert not np.array_equal(shuffled, index)
    again = fan_in_profile(name, N_OUT, N_IN, BUDGET, cv=cv, hub_placement="shuffled",
                           rng=np.random.default_rng(3))
    assert np.array_equal(shuffled, again)


@pytest.mark.parametrize("name", PARAMETRIC_PROFILES)
def test_continuous_cv_grows_with_parameter(name):
    n = 64
    ts = np.concatenate([np.linspace(0, 3, 60), np.geomspace(3, 500, 60)])
    cvs = [cv_of(profile_weights(name, n, t)) for t in ts]
    assert cvs[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(cvs) >= -1e-9)


@pytest.mark.parametrize("name", PARAMETRIC_PROFILES)
def test_documented_maximum(name):
    n = 10
    top = max_cv(name, n)
    expected = {"gaussian": np.sqrt(n / 2 - 1), "ushaped": np.sqrt(n / 2 - 1)}.get(name, np.sqrt(n - 1))
    assert top == pytest.approx(expected, rel=1e-3)
    # At the maximum one neuron (two for the symmetric bumps) takes all but the floor.
    k = fan_in_profile(name, n, 10000, 10000, cv=top)
    assert k.sum() == 10000 and k.min() >= 1
    assert cv_of(k) == pytest.approx(top, abs=0.02)
    with pytest.raises(TopoError, match="at most"):
        fan_in_profile(name, n, 10000, 10000, cv=top + 0.05)


def test_step_maximum_is_three_for_large_layers():
    assert max_cv("step", 1000) == pytest.approx(3.0, abs=1e-3)
    k = fan_in_profile("step", 1000, 5000, 50000, cv=2.9)
    assert abs(cv_of(k) - 2.9) <= CV_TOLERANCE
    assert len(set(k.tolist())) <= 3  # two levels, plus one unit of rounding
    with pytest.raises(TopoError):
        fan_in_profile("step", 1000, 5000, 50000, cv=3.05)


def test_every_family_reaches_two_and_a_half_from_small_layers():
    for name in PARAMETRIC_PROFILES:
        assert max_cv(name, 16) >= 2.5


def test_clipping_limits_the_cv():
    # Cap 20 at mean 10: at most CV about 0.95; the closest reachable CV is taken.
    k = fan_in_profile("lognormal", 100, 20, 1000, cv=2.0)
    assert k.sum() == 1000 and k.min() >= 1 and k.max() <= 20
    assert 0.8 < cv_of(k) < 2.0


def test_constant_profile():
    k = fan_in_profile("constant", 7, 10, 50)
    assert k.sum() == 50 and k.max() - k.min() <= 1
    assert list(k) == sorted(k, reverse=True)
    assert list(fan_in_profile("constant", 7, 10, 50, cv=0)) == list(k)


def test_random_profile_is_uniform_placement():
    n_out, n_in, budget = 500, 400, 20000  # density 0.1
    k = fan_in_profile("random", n_out, n_in, budget, rng=np.random.default_rng(0))
    assert k.sum() == budget and k.min() >= 0 and k.max() <= n_in
    # Row counts of a uniform placement: close to binomial(n_in, 0.1).
    expected = np.sqrt(0.9 / (0.1 * n_in))
    assert cv_of(k) == pytest.approx(expected, rel=0.15)
    same = fan_in_profile("random", n_out, n_in, budget, rng=np.random.default_rng(0))
    assert np.array_equal(k, same)
    other = fan_in_profile("random", n_out, n_in, budget, rng=np.random.default_rng(1))
    assert not np.array_equal(k, other)
    # Below one weight per neuron is allowed for the baseline.
    assert fan_in_profile("random", 10, 10, 3, rng=0).sum() == 3


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("zipf", 10, 10, 50), {"cv": 1.0}),
        (("linear", 10, 10, 9), {"cv": 1.0}),  # below one input per neuron
        (("linear", 10, 10, 101), {"cv": 1.0}),  # more than the layer holds
        (("linear", 10, 10, 50), {}),  # no cv
        (("linear", 10, 10, 50), {"cv": -0.5}),
        (("linear", 10, 10, 50), {"cv": float("nan")}),
        (("linear", 10, 10, 50), {"cv": 1.0, "hub_placement": "middle"}),
        (("random", 10, 10, 50), {"cv": 1.0}),
        (("random", 10, 10, 101), {}),
        (("constant", 10, 10, 50), {"cv": 1.0}),
        (("gaussian", 4, 100, 100), {"cv": 2.5}),  # beyond what 4 neurons allow
    ],
)
def test_bad_arguments_raise(args, kwargs):
    with pytest.raises(TopoError):
        fan_in_profile(*args, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PARAMETRIC_PROFILES),
    n_out=st.integers(1, 80),
    n_in=st.integers(1, 80),
    fraction=st.floats(0, 1),
    cv=st.floats(0, 2.5),
    shuffled=st.booleans(),
)
def test_any_layer_exact_budget_and_bounds(name, n_out, n_in, fraction, cv, shuffled):
    budget = n_out + int(round(fraction * (n_out * n_in - n_out)))
    placement = "shuffled" if shuffled else "index"
    try:
        k = fan_in_profile(name, n_out, n_in, budget, cv=cv, hub_placement=placement, rng=1)
    except TopoError as error:
        assert "at most" in str(error) and cv > max_cv(name, n_out)
        return
    assert k.sum() == budget
    assert k.min() >= 1 and k.max() <= n_in


def test_sample_mask_rows_and_reproducibility():
    k = fan_in_profile("lognormal", 300, 500, 30000, cv=1.2)
    mask = sample_mask(k, 500, np.random.default_rng(7))
    assert mask.dtype == np.bool_ and mask.shape == (300, 500)
    assert np.array_equal(mask.sum(axis=1), k)  # k distinct inputs per row
    assert np.array_equal(mask, sample_mask(k, 500, np.random.default_rng(7)))
    assert not np.array_equal(mask, sample_mask(k, 500, np.random.default_rng(8)))


def test_sample_mask_uniform_over_inputs():
    # Every input is equally likely: 2000 rows of 10 out of 50 give each column
    # 400 hits on average (binomial std 17.9).
    mask = sample_mask(np.full(2000, 10), 50, np.random.default_rng(0))
    hits = mask.sum(axis=0)
    assert hits.sum() == 20000
    assert np.all(np.abs(hits - 400) < 6 * 17.9)


def test_sample_mask_edges():
    mask = sample_mask(np.array([0, 5, 1]), 5, 0)
    assert list(mask.sum(axis=1)) == [0, 5, 1]
    assert sample_mask(np.array([], dtype=np.int64), 5, 0).shape == (0, 5)
    with pytest.raises(TopoError):
        sample_mask(np.array([6]), 5, 0)
    with pytest.raises(TopoError):
        sample_mask(np.array([-1]), 5, 0)
    with pytest.raises(TopoError):
        sample_mask(np.array([[1]]), 5, 0)


@settings(max_examples=40, deadline=None)
@given(k=st.lists(st.integers(0, 40), min_size=1, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_sample_mask_row_sums_property(k, seed):
    fan_in = np.array(k)
    mask = sample_mask(fan_in, 40, np.random.default_rng(seed))
    assert np.array_equal(mask.sum(axis=1), fan_in)

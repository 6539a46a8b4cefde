import math

import numpy as np
import pytest

from topo import Layer, Topology, TopoError, save_checkpoint
from topo.analysis.gradients import (
    cv_concentration_correlation,
    gradient_concentration,
    gradient_rows,
    hierarchy_strength,
)
from topo.analysis.hubs import hub_indices


def layer_with(fan_in, grad=None, n_in=400, seed=0, name="fc"):
    """A layer whose rows have the given fan-ins, with an optional grad_mean statistic."""
    rng = np.random.default_rng(seed)
    fan_in = np.asarray(fan_in)
    ranks = np.argsort(np.argsort(rng.random((fan_in.size, n_in)), axis=1), axis=1)
    stats = {} if grad is None else {"grad_mean": np.asarray(grad, dtype=np.float32)}
    return Layer.from_mask(name, ranks < fan_in[:, None], stats=stats)


def lognormal_fan_in(n, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(np.exp(np.log(40) + sigma * rng.standard_normal(n))), 1, 400).astype(int)


def test_random_gradients_concentrate_about_one():
    rng = np.random.default_rng(1)
    fan_in = lognormal_fan_in(2000, 0.6, seed=2)
    layer = layer_with(fan_in, rng.uniform(0.5, 1.5, 2000))
    assert gradient_concentration(layer) == pytest.approx(1.0, abs=0.1)
    assert abs(hierarchy_strength(layer)) < 0.1


def test_planted_gradient_proportional_to_fan_in():
    fan_in = lognormal_fan_in(1000, 0.6, seed=3)
    grad = 1e-3 * fan_in
    layer = layer_with(fan_in, grad)
    hubs = hub_indices(layer, fraction=0.1)
    assert hubs.size == 100
    expected = grad[hubs].mean() / grad.mean()
    assert gradient_concentration(layer) == pytest.approx(expected, rel=1e-5)
    assert gradient_concentration(layer) > 1.5
    assert gradient_concentration(layer, fraction=1.0) == pytest.approx(1.0)
    assert hierarchy_strength(layer) == pytest.approx(1.0)
    inverse = layer_with(fan_in, 1.0 / fan_in)
    assert hierarchy_strength(inverse) == pytest.approx(-1.0)
    assert gradient_concentration(inverse) < 1


def test_hubs_are_top_fraction_with_stable_ties():
    fan_in = np.array([5, 9, 9, 1, 9, 2, 3, 4, 5, 6, 7])  # ceil(0.1 * 11) = 2 hubs: the first two 9s
    grad = np.arange(11, dtype=float) + 1
    layer = layer_with(fan_in, grad, n_in=20)
    assert gradient_concentration(layer) == pytest.approx(((2 + 3) / 2) / grad.mean())


def test_both_definitions_by_hand_on_a_tiny_layer():
    # 10 neurons, so ceil(0.1 * 10) = 1 hub: neuron 2 (fan-in 7). Its gradient is 3, the others' 1.
    fan_in = np.array([2, 1, 7, 3, 1, 2, 1, 4, 1, 2])
    grad = np.array([1, 1, 3, 1, 1, 1, 1, 1, 1, 1], dtype=float)
    layer = layer_with(fan_in, grad, n_in=10)
    # against all: 3 / ((3 + 9 * 1) / 10) = 3 / 1.2 = 2.5; against the rest: 3 / 1 = 3
    assert gradient_concentration(layer, against="all") == pytest.approx(2.5)
    assert gradient_concentration(layer, against="rest") == pytest.approx(3.0)
    assert gradient_concentration(layer) == pytest.approx(2.5)  # the default: against all
    # two hubs (fraction 0.2): neurons 2 and 7 (fan-ins 7, 4), gradients 3 and 1
    assert gradient_concentration(layer, fraction=0.2, against="all") == pytest.approx(2.0 / 1.2)
    assert gradient_concentration(layer, fraction=0.2, against="rest") == pytest.approx(2.0 / 1.0)
    # every neuron a hub: against all is exactly 1, against the rest has no rest
    assert gradient_concentration(layer, fraction=1.0, against="all") == pytest.approx(1.0)
    assert math.isnan(gradient_concentration(layer, fraction=1.0, against="rest"))
    with pytest.raises(TopoError, match="against 'others'"):
        gradient_concentration(layer, against="others")


def test_both_definitions_on_a_lognormal_layer_at_cv_2():
    # topo's lognormal fan-in profile at CV 2 over 100 neurons (10% dense) and gradients that
    # grow with fan-in (sub-linearly); the truth is computed here with numpy alone
    from topo.training.profiles import fan_in_profile

    rng = np.random.default_rng(7)
    fan_in = np.asarray(fan_in_profile("lognormal", 100, 400, 4000, cv=2.0))
    assert fan_in.std() / fan_in.mean() == pytest.approx(2.0, abs=0.01)
    grad = fan_in ** 0.3 * rng.uniform(0.8, 1.2, 100)
    layer = layer_with(fan_in, grad, n_in=400)
    hubs = np.argsort(-fan_in, kind="stable")[:10]
    rest = np.setdiff1d(np.arange(100), hubs)
    c_all = grad[hubs].mean() / grad.mean()
    c_rest = grad[hubs].mean() / grad[rest].mean()
    assert gradient_concentration(layer, against="all") == pytest.approx(c_all, rel=1e-5)
    assert gradient_concentration(layer, against="rest") == pytest.approx(c_rest, rel=1e-5)
    # the two are tied: rest = (n - k) * all / (n - k * all), here with n = 100, k = 10
    assert c_rest == pytest.approx(90 * c_all / (100 - 10 * c_all), rel=1e-9)
    assert c_rest > c_all > 1
    # the figures: hubs against all 2.07 is hubs against the rest 2.35 for the top 10%
    assert 90 * 2.07 / (100 - 10 * 2.07) == pytest.approx(2.35, abs=0.005)


def test_constant_and_degenerate_cases():
    fan_in = lognormal_fan_in(50, 0.5, seed=4)
    assert math.isnan(hierarchy_strength(layer_with(fan_in, np.ones(50))))
    assert math.isnan(hierarchy_strength(layer_with(np.full(50, 10), np.arange(50))))
    assert math.isnan(gradient_concentration(layer_with(fan_in, np.zeros(50))))
    assert math.isnan(gradient_concentration(layer_with(fan_in, np.zeros(50)), against="rest"))
    with pytest.raises(TopoError, match="fraction"):
        gradient_concentration(layer_with(fan_in, np.ones(50)), fraction=0)


def test_missing_statistic_names_the_layer():
    layer = layer_with(np.full(10, 3), None, n_in=10, name="encoder.fc1")
    for func in (gradient_concentration, hierarchy_strength):
        with pytest.raises(TopoError, match="encoder.fc1") as info:
            func(layer)
        assert "no gradient statistics" in str(info.value) and "topo train" in str(info.value)


def test_cv_concentration_correlation():
    rng = np.random.default_rng(5)
    networks = []
    for i, sigma in enumerate(np.linspace(0.05, 1.0, 8)):
        fan_in = lognormal_fan_in(400, sigma, seed=10 + i)
        grad = fan_in * (1 + 0.05 * rng.standard_normal(400))
        networks.append(Topology([layer_with(fan_in, grad, seed=i)]))
    r = cv_concentration_correlation(networks)
    assert r > 0.9
    rows = gradient_rows(networks)
    assert len(rows) == 8 and rows[0]["concentration_all"] < rows[-1]["concentration_all"]
    assert all(row["concentration_rest"] > row["concentration_all"] > 1 for row in rows)
    r_rest = cv_concentration_correlation(networks, against="rest")
    rest = np.array([row["concentration_rest"] for row in rows])
    cv = np.array([row["fan_in_cv"] for row in rows])
    assert r_rest == pytest.approx(np.corrcoef(cv, rest)[0, 1])
    assert r_rest != pytest.approx(r)
    # random gradients: concentration stays near 1 whatever the CV, so no strong correlation
    flat = [Topology([layer_with(lognormal_fan_in(400, s, seed=20 + i), rng.uniform(0.9, 1.1, 400), seed=i)])
            for i, s in enumerate(np.linspace(0.05, 1.0, 8))]
    assert abs(cv_concentration_correlation(flat)) < r


def test_cv_concentration_skips_layers_without_stat_and_reads_paths(tmp_path):
    fan_a, fan_b, fan_c = (lognormal_fan_in(100, s, seed=30 + i) for i, s in enumerate((0.1, 0.5, 0.9)))
    nets = []
    for i, f in enumerate((fan_a, fan_b, fan_c)):
        with_stat = layer_with(f, f.astype(float), n_in=400, seed=i, name="a")
        without = layer_with(np.full(400, 3), None, n_in=100, seed=i, name="b")
        nets.append(Topology([with_stat, without]))
    paths = [save_checkpoint(t, tmp_path / f"n{i}.safetensors") for i, t in enumerate(nets)]
    from topo.runs import load_topology

    assert cv_concentration_correlation(paths, load=load_topology) == pytest.approx(cv_concentration_correlation(nets))
    with pytest.raises(TopoError, match="not a Topology"):
        cv_concentration_correlation(paths)  # analysis reads no files itself
    assert len(gradient_rows(nets)) == 3
    assert math.isnan(cv_concentration_correlation(nets[:2]))  # fewer than 3 points
    bare = [Topology([layer_with(fan_a, None)])]
    with pytest.raises(TopoError, match="no gradient statistics"):
        cv_concentration_correlation(bare)

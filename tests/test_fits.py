import math

import numpy as np
import pytest
from scipy import special, stats

from topo import Layer, TopoError
from topo.analysis.fits import (
    DISTRIBUTIONS,
    fit_fan_in,
    fit_layer,
    lognormal_params,
    powerlaw_alpha_mle,
    powerlaw_xmin_scan,
)


def discrete_powerlaw(alpha, x_min, n, rng, cap=2_000_000):
    """Exact samples of p(k) ~ k**-alpha on x_min..cap (the mass beyond cap is negligible)."""
    k = np.arange(x_min, cap)
    p = k ** -float(alpha)
    return rng.choice(k, size=n, p=p / p.sum())


def brute_ks(values, cdf):
    """Sup distance between the empirical CDF and a model CDF over every integer in range."""
    values = np.sort(np.asarray(values))
    k = np.arange(values[0], values[-1] + 1)
    ecdf = np.searchsorted(values, k, side="right") / values.size
    return np.abs(ecdf - cdf(k)).max()


def test_lognormal_recovered():
    rng = np.random.default_rng(0)
    x = np.rint(rng.lognormal(math.log(80), 0.5, 20_000))
    fits = fit_fan_in(x)
    p = fits.fits["lognormal"].params
    assert p["mu"] == pytest.approx(math.log(80), abs=0.02)
    assert p["sigma"] == pytest.approx(0.5, abs=0.02)
    assert p["cv"] == pytest.approx(math.sqrt(math.exp(0.25) - 1), abs=0.02)
    assert fits.best == "lognormal"
    assert fits.best_fit is fits.fits["lognormal"]
    assert lognormal_params(x)["mu"] == pytest.approx(p["mu"])


def test_exponential_and_normal_recovered():
    rng = np.random.default_rng(1)
    x = np.rint(rng.exponential(50, 20_000))
    fits = fit_fan_in(x)
    assert fits.n_excluded == np.count_nonzero(x == 0) > 0
    assert fits.n == np.count_nonzero(x)
    assert fits.fits["exponential"].params["rate"] == pytest.approx(1 / 50, rel=0.04)
    assert fits.best == "exponential"

    y = np.rint(rng.normal(100, 15, 20_000))
    fits = fit_fan_in(y)
    assert fits.fits["normal"].params["mean"] == pytest.approx(100, abs=0.5)
    assert fits.fits["normal"].params["std"] == pytest.approx(15, abs=0.5)
    assert fits.best == "normal"


def test_powerlaw_alpha_with_known_and_scanned_x_min():
    rng = np.random.default_rng(2)
    x = discrete_powerlaw(2.5, 5, 50_000, rng)
    fixed = fit_fan_in(x, x_min=5)
    assert fixed.fits["powerlaw"].params["alpha"] == pytest.approx(2.5, abs=0.05)
    assert fixed.fits["powerlaw"].params["x_min"] == 5
    assert powerlaw_alpha_mle(x, 5) == pytest.approx(fixed.fits["powerlaw"].params["alpha"])
    scanned = fit_fan_in(x)
    assert scanned.fits["powerlaw"].params["alpha"] == pytest.approx(2.5, abs=0.1)
    assert 3 <= scanned.fits["powerlaw"].params["x_min"] <= 12
    assert scanned.best == "powerlaw"
    assert scanned.best_fit is scanned.fits["powerlaw_full"]


def test_xmin_scan_finds_the_tail_above_a_body():
    rng = np.random.default_rng(3)
    body = rng.integers(1, 50, 20_000)
    tail = discrete_powerlaw(2.5, 50, 20_000, rng)
    fits = fit_fan_in(np.concatenate([body, tail]))
    pl = fits.fits["powerlaw"].params
    assert 45 <= pl["x_min"] <= 70
    assert pl["alpha"] == pytest.approx(2.5, abs=0.15)
    assert pl["n_tail"] == pytest.approx(np.count_nonzero(np.concatenate([body, tail]) >= pl["x_min"]))


def test_powerlaw_ks_and_loglik_match_brute_force():
    rng = np.random.default_rng(4)
    x = discrete_powerlaw(2.2, 3, 5_000, rng, cap=200_000)
    fit = fit_fan_in(x, x_min=3).fits["powerlaw"]
    alpha = fit.params["alpha"]
    expected_ll = float(np.sum(-alpha * np.log(x)) - x.size * np.log(special.zeta(alpha, 3)))
    assert fit.loglik == pytest.approx(expected_ll, rel=1e-10)
    assert fit.aic == pytest.approx(2 * 2 - 2 * fit.loglik)
    cdf = lambda k: 1 - special.zeta(alpha, k + 1) / special.zeta(alpha, 3)  # noqa: E731
    assert fit.ks == pytest.approx(brute_ks(x, cdf), abs=1e-9)


def test_scan_ks_matches_exact_ks_per_candidate():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.integers(1, 20, 3_000), discrete_powerlaw(2.4, 20, 3_000, rng, cap=100_000)])
    support, counts = np.unique(x, return_counts=True)
    candidates, alphas, ks = powerlaw_xmin_scan(support, counts)
    assert candidates.size > 20 and np.all(np.diff(candidates) > 0)
    for x_min in (1, 4, 20, 40):  # exact below 6, the continuity-corrected approximation above
        pos = int(np.flatnonzero(candidates == x_min)[0])
        tail = x[x >= x_min]
        alpha = alphas[pos]
        cdf = lambda k: 1 - special.zeta(alpha, k + 1) / special.zeta(alpha, x_min)  # noqa: E731
        assert ks[pos] == pytest.approx(brute_ks(tail, cdf), abs=0.01)
        assert alpha == pytest.approx(powerlaw_alpha_mle(x, x_min), abs=0.03)


def test_discretised_lognormal_ks_matches_brute_force():
    rng = np.random.default_rng(6)
    x = np.rint(rng.lognormal(2.0, 0.7, 3_000)).clip(1)
    fit = fit_fan_in(x).fits["lognormal"]
    dist = stats.lognorm(s=fit.params["sigma"], scale=math.exp(fit.params["mu"]))
    lo = x.min() - 0.5
    cdf = lambda k: (dist.cdf(k + 0.5) - dist.cdf(lo)) / dist.sf(lo)  # noqa: E731
    assert fit.ks == pytest.approx(brute_ks(x, cdf), abs=1e-9)
    support, counts = np.unique(x, return_counts=True)
    pmf = (dist.cdf(support + 0.5) - dist.cdf(support - 0.5)) / dist.sf(lo)
    assert fit.loglik == pytest.approx(float(np.dot(counts, np.log(pmf))), rel=1e-9)


def test_all_fits_share_data_and_zeros_do_not_change_them():
    rng = np.random.default_rng(7)
    x = np.rint(rng.lognormal(3, 0.6, 2_000)).clip(1)
    with_zeros = fit_fan_in(np.concatenate([x, np.zeros(300)]))
    plain = fit_fan_in(x)
    assert with_zeros.n_excluded == 300 and with_zeros.n == plain.n == x.size
    for name in DISTRIBUTIONS:
        assert with_zeros.fits[name].params == plain.fits[name].params
    for name in ("lognormal", "exponential", "normal", "powerlaw_full"):
        assert plain.fits[name].n == x.size
    aics = {name: plain.fits[name].aic for name in plain.compared}
    winner = min(aics, key=aics.get)
    assert plain.best == ("powerlaw" if winner == "powerlaw_full" else winner)


@pytest.mark.parametrize(
    "values,best",
    [(np.array([]), "none"), (np.array([7]), "none"), (np.zeros(5), "none"), (np.full(9, 4), "constant")],
)
def test_degenerate_input_does_not_crash(values, best):
    fits = fit_fan_in(values)
    assert fits.best == best
    assert set(DISTRIBUTIONS) <= set(fits.fits)
    for fit in fits.fits.values():
        assert math.isnan(fit.ks) and math.isnan(fit.loglik) and math.isnan(fit.aic)
    if best == "constant":
        assert fits.fits["lognormal"].params["mu"] == pytest.approx(math.log(4))
        assert fits.fits["normal"].params["std"] == 0


def test_two_distinct_values_fit():
    fits = fit_fan_in(np.array([1, 2]))
    assert fits.best in DISTRIBUTIONS
    assert all(math.isfinite(fits.fits[name].aic) for name in fits.compared)


@pytest.mark.parametrize("bad", [np.array([1, -2]), np.array([1.5, 2]), np.array([1, np.nan]), np.array(["a"])])
def test_invalid_values_raise(bad):
    with pytest.raises(TopoError):
        fit_fan_in(bad)


def test_invalid_x_min_raises():
    with pytest.raises(TopoError, match="x_min"):
        fit_fan_in(np.array([1, 2, 3]), x_min=0)


def test_fit_layer_uses_fan_in():
    rng = np.random.default_rng(8)
    mask = rng.random((300, 100)) < 0.3
    layer = Layer.from_mask("fc", mask)
    assert fit_layer(layer).fits["normal"].params["mean"] == pytest.approx(mask.sum(1).mean())


def test_scan_candidates_thinned_only_when_asked_or_very_wide():
    rng = np.random.default_rng(9)
    x = np.rint(rng.lognormal(5, 0.8, 20_000)).clip(1)
    support, counts = np.unique(x, return_counts=True)
    full, _, _ = powerlaw_xmin_scan(support, counts)
    assert full.size == np.count_nonzero(counts[::-1].cumsum()[::-1][:-1] >= 10)  # tails of >= 10 values
    thin, _, ks = powerlaw_xmin_scan(support, counts, max_candidates=50)
    small = np.count_nonzero(full < 6)
    assert 50 <= thin.size <= 50 + small and np.isin(thin, full).all() and np.all(np.isfinite(ks))
    assert fit_fan_in(x, max_candidates=50).fits["powerlaw"].params["x_min"] in thin

"""Which distribution does a layer's fan-in follow?

:func:`fit_fan_in` fits four families to the fan-in of one layer (positive integers)
and compares them:

- ``"lognormal"``: maximum-likelihood ``mu`` and ``sigma`` of ``ln x`` (population std);
- ``"exponential"``: rate ``1 / mean(x)``;
- ``"normal"``: mean and population standard deviation;
- ``"powerlaw"``: the discrete power law ``p(x) = x**-alpha / zeta(alpha, x_min)`` for
  ``x >= x_min``, fitted to the *tail* only, with ``x_min`` chosen by the
  Kolmogorov-Smirnov criterion of Clauset, Shalizi and Newman (2009, SIAM Review 51:661):
  the ``x_min`` whose fitted tail is closest to the data in KS distance.

How the parts are computed, and why:

- **Zeros.** Neurons with fan-in 0 are excluded from every fit (the lognormal and the
  power law need positive values, and all fits must see the same data for their AIC to
  be comparable). :attr:`FanInFits.n_excluded` counts them.
- **Likelihoods on the integers.** Fan-in is discrete, so every model is scored as a
  probability mass function on the integers ``x >= min(x)``: a continuous model
  contributes ``P(k) = (F(k + 0.5) - F(k - 0.5)) / (1 - F(min(x) - 0.5))`` (its mass in
  the unit bin around ``k``, conditioned on the observed range). The continuous
  models' parameters are their usual closed-form maximum-likelihood estimates; their
  log-likelihood, AIC (``2k - 2 lnL``) and KS distance use that discretised mass, so
  the four log-likelihoods are on one scale. KS distances compare the model's CDF with
  the empirical CDF at every integer (checked at both ends of each gap between
  observed values).
- **Power-law exponent.** The ``x_min`` scan estimates ``alpha`` for every candidate in
  one vectorised pass (unique values, cumulative sums over the sorted data, no loop over
  samples). Candidates ``x_min < 6`` use the exact discrete MLE (numeric maximisation
  of the Hurwitz-zeta likelihood via :func:`scipy.special.zeta`) and the exact CDF;
  larger candidates use the standard approximation
  ``alpha = 1 + n / sum(ln(x / (x_min - 0.5)))`` with its matching continuity-corrected
  CDF ``P(X >= x) = ((x - 0.5) / (x_min - 0.5)) ** (1 - alpha)``, which Clauset et al.
  show to be accurate to about 1% there. The chosen ``x_min`` is then refitted with the
  exact MLE, and its reported KS distance, log-likelihood and AIC are exact. Every
  distinct value is a candidate (except the largest, and tails of fewer than 10
  values) for layers with up to 2,000 distinct fan-ins; beyond that an evenly spaced
  subset keeps the scan under a second (see :func:`powerlaw_xmin_scan`).
- **Fair comparison.** The tail fit ``"powerlaw"`` sees only ``x >= x_min``, so its
  likelihood is not comparable with the others'. For the comparison a second power
  law, ``"powerlaw_full"``, is fitted to all the data with ``x_min`` fixed at ``min(x)``.
  :attr:`FanInFits.best` is the family with the lowest AIC among ``"lognormal"``,
  ``"exponential"``, ``"normal"`` and ``"powerlaw_full"`` (reported as ``"powerlaw"``);
  :attr:`FanInFits.best_fit` gives the fit that won. AIC counts ``k`` = 2 for the
  lognormal and the normal, 1 for the exponential and ``"powerlaw_full"`` (its
  ``x_min = min(x)`` is the lower bound every model is conditioned on), and 2 for the
  tail fit (``alpha`` and ``x_min``).
- **Degenerate input.** Fewer than two positive values gives ``best == "none"``; all
  values equal gives ``best == "constant"``. Neither raises: every fit is returned, with
  the parameters that are defined (``mu = ln c``, ``sigma = 0``, ``mean = c``, ...) and
  NaN for the rest, and NaN KS distance, log-likelihood and AIC.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import special

from topo.errors import TopoError

__all__ = [
    "DISTRIBUTIONS",
    "Fit",
    "FanInFits",
    "fit_fan_in",
    "fit_layer",
    "lognormal_params",
    "powerlaw_alpha_mle",
    "powerlaw_xmin_scan",
]

#: The distribution families :func:`fit_fan_in` fits, by the names used in ``FanInFits.fits``.
DISTRIBUTIONS = ("lognormal", "powerlaw", "exponential", "normal")

#: Candidates below this x_min use the exact discrete MLE and CDF in the scan.
_EXACT_XMIN_BELOW = 6
#: Upper bound of the exponent searched by the exact MLE.
_ALPHA_MAX = 50.0
#: Elements per block in the vectorised KS scan (bounds memory to ~16 MB per array).
_BLOCK_ELEMENTS = 2_000_000
#: Work budget of the automatic candidate cap (candidates x distinct values), and its floor.
_SCAN_CELLS = 4_000_000
_MIN_AUTO_CANDIDATES = 300

_NAN = float("nan")


@dataclass(frozen=True)
class Fit:
    """One fitted distribution.

    Attributes
    ----------
    name : str
        ``"lognormal"``, ``"powerlaw"``, ``"powerlaw_full"``, ``"exponential"`` or ``"normal"``.
    params : dict of str to float
        lognormal: ``mu``, ``sigma``, ``cv`` (``sqrt(exp(sigma**2) - 1)``);
        powerlaw: ``alpha``, ``x_min``, ``n_tail``; exponential: ``rate``;
        normal: ``mean``, ``std``.
    ks : float
        Kolmogorov-Smirnov distance between the model and the data it was fitted to.
    loglik : float
        Log-likelihood of that data under the (discretised) model.
    aic : float
        ``2 k - 2 loglik``, ``k`` the number of fitted parameters.
    n : int
        Number of values the fit saw (the tail size for ``"powerlaw"``).

    Examples
    --------
    >>> import numpy as np
    >>> fit = fit_fan_in(np.array([1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 13, 2, 3, 1, 6])).fits["lognormal"]
    >>> fit.name, fit.n, round(fit.params["sigma"], 3), fit.aic == 2 * 2 - 2 * fit.loglik
    ('lognormal', 15, 0.737, True)
    """

    name: str
    params: dict[str, float]
    ks: float
    loglik: float
    aic: float
    n: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FanInFits:
    """All fits of one fan-in sample, and the best one.

    Attributes
    ----------
    fits : dict of str to Fit
        ``"lognormal"``, ``"powerlaw"`` (tail fit, x_min by KS), ``"exponential"``,
        ``"normal"``, and ``"powerlaw_full"`` (x_min fixed at ``min(x)``, for the AIC
        comparison).
    best : str
        The family with the lowest AIC on the full data (one of :data:`DISTRIBUTIONS`),
        ``"constant"`` when all values are equal, ``"none"`` with fewer than 2 values.
    n : int
        Number of positive values fitted.
    n_excluded : int
        Number of zeros left out.
    compared : tuple of str
        Keys of ``fits`` whose AIC entered the choice of ``best``.

    Examples
    --------
    >>> import numpy as np
    >>> fits = fit_fan_in(np.array([1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 13, 2, 3, 1, 6]))
    >>> sorted(fits.fits), fits.best, fits.best_fit.name
    (['exponential', 'lognormal', 'normal', 'powerlaw', 'powerlaw_full'], 'exponential', 'exponential')
    """

    fits: dict[str, Fit]
    best: str
    n: int = 0
    n_excluded: int = 0
    compared: tuple[str, ...] = field(default=("lognormal", "powerlaw_full", "exponential", "normal"))

    @property
    def best_fit(self) -> Fit | None:
        """The fit that won the AIC comparison (``fits["powerlaw_full"]`` when the power law did)."""
        if self.best == "powerlaw":
            return self.fits["powerlaw_full"]
        return self.fits.get(self.best)

    def as_dict(self) -> dict:
        return {
            "best": self.best,
            "n": self.n,
            "n_excluded": self.n_excluded,
            "compared": list(self.compared),
            "fits": {key: fit.as_dict() for key, fit in self.fits.items()},
        }


# -- helpers -----------------------------------------------------------------------
def _as_counts(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Validate fan-in values; return the positive ones (float, sorted) and the number of zeros."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TopoError(f"fan-in values must be numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False).ravel()
    if arr.size and not np.all(np.isfinite(arr)):
        raise TopoError("fan-in values contain NaN or infinity")
    if arr.size and arr.min() < 0:
        raise TopoError(f"fan-in values must be non-negative, got {arr.min():g}")
    if arr.size and not np.all(arr == np.round(arr)):
        raise TopoError("fan-in values must be whole numbers")
    positive = np.sort(arr[arr > 0])
    return positive, int(arr.size - positive.size)


def lognormal_params(values: np.ndarray) -> dict[str, float]:
    """Maximum-likelihood lognormal parameters of positive values.

    Parameters
    ----------
    values : array_like
        Positive numbers; zeros and negatives are ignored.

    Returns
    -------
    dict
        ``mu`` and ``sigma`` (mean and population std of ``ln x``), ``cv``
        (``sqrt(exp(sigma**2) - 1)``, the lognormal's coefficient of variation) and
        ``mean_fan_in`` (sample mean of the positive values); NaN when there are none.

    Examples
    --------
    >>> import numpy as np
    >>> {name: round(value, 3) for name, value in lognormal_params(np.array([1.0, np.e, np.e**2])).items()}
    {'mu': 1.0, 'sigma': 0.816, 'cv': 0.974, 'mean_fan_in': 3.702}
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[arr > 0]
    if arr.size == 0:
        return {"mu": _NAN, "sigma": _NAN, "cv": _NAN, "mean_fan_in": _NAN}
    logs = np.log(arr)
    mu = float(logs.mean())
    sigma = float(logs.std())
    return {"mu": mu, "sigma": sigma, "cv": float(math.sqrt(math.expm1(sigma**2))), "mean_fan_in": float(arr.mean())}


def _aic(k: int, loglik: float) -> float:
    return 2.0 * k - 2.0 * loglik if math.isfinite(loglik) else (_NAN if math.isnan(loglik) else math.inf)


def _ks_discrete(support: np.ndarray, ecdf: np.ndarray, cdf_at: np.ndarray, cdf_before_next: np.ndarray) -> float:
    """KS distance of a discrete model to the empirical CDF.

    ``cdf_at[j]`` is the model CDF at support point ``j``; ``cdf_before_next[j]`` at
    ``support[j+1] - 1`` (the end of the gap where the empirical CDF stays ``ecdf[j]``).
    """
    gaps = np.abs(ecdf[:-1] - cdf_before_next[:-1]) if support.size > 1 else np.zeros(0)
    at = np.abs(ecdf - cdf_at)
    return float(max(at.max(initial=0.0), gaps.max(initial=0.0)))


class _Continuous:
    """The few functions of a continuous distribution that the discretised fits use
    (``cdf``, ``sf``, ``logpdf``, ``median``), written with :mod:`scipy.special` as
    scipy.stats writes them, so that fitting fan-in does not import scipy.stats."""

    def __init__(self, kind: str, **params: float) -> None:
        self.kind = kind
        self.params = params

    def _z(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        if self.kind == "norm":
            return (x - p["loc"]) / p["scale"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.log(np.maximum(x, 0.0)) - p["mu"]) / p["sigma"]  # lognorm; x <= 0 gives -inf

    def cdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "expon":
            return np.where(x > 0, -np.expm1(-np.maximum(x, 0.0) / self.params["scale"]), 0.0)
        return special.ndtr(self._z(x))

    def sf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "expon":
            return np.where(x > 0, np.exp(-np.maximum(x, 0.0) / self.params["scale"]), 1.0)
        return special.ndtr(-self._z(x))

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        p = self.params
        half_log_2pi = 0.5 * math.log(2.0 * math.pi)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "expon":
                return np.where(x >= 0, -x / p["scale"] - math.log(p["scale"]), -np.inf)
            z = self._z(x)
            if self.kind == "norm":
                return -0.5 * z**2 - half_log_2pi - math.log(p["scale"])
            return np.where(x > 0, -0.5 * z**2 - half_log_2pi - math.log(p["sigma"]) - np.log(x), -np.inf)

    def median(self) -> float:
        p = self.params
        if self.kind == "norm":
            return float(p["loc"])
        if self.kind == "expon":
            return float(p["scale"] * math.log(2.0))
        return float(math.exp(p["mu"]))


def _discretised_fit(
    name: str,
    params: dict[str, float],
    k: int,
    dist,
    support: np.ndarray,
    counts: np.ndarray,
) -> Fit:
    """Score a continuous distribution as a pmf on the integers >= support[0]."""
    n = int(counts.sum())
    lo = support[0] - 0.5
    # upper-tail differences through sf keep precision where the CDF is close to 1
    median = dist.median()
    upper = support > median
    lower_edge = np.where(upper, dist.sf(support - 0.5), dist.cdf(support + 0.5))
    upper_edge = np.where(upper, dist.sf(support + 0.5), dist.cdf(support - 0.5))
    mass = np.abs(lower_edge - upper_edge)
    norm = float(dist.sf(lo))
    with np.errstate(divide="ignore"):
        logmass = np.where(mass > 0, np.log(np.where(mass > 0, mass, 1.0)), dist.logpdf(support))
    loglik = float(np.dot(counts, logmass) - n * math.log(norm)) if norm > 0 else -math.inf
    base = float(dist.cdf(lo))
    ecdf = np.cumsum(counts) / n
    cdf_at = (dist.cdf(support + 0.5) - base) / norm if norm > 0 else np.ones_like(support)
    next_points = np.append(support[1:], support[-1] + 1.0)
    cdf_before = (dist.cdf(next_points - 0.5) - base) / norm if norm > 0 else np.ones_like(support)
    ks = _ks_discrete(support, ecdf, cdf_at, cdf_before)
    return Fit(name=name, params=params, ks=ks, loglik=loglik, aic=_aic(k, loglik), n=n)


# -- the discrete power law ----------------------------------------------------------
def _powerlaw_loglik(alpha: float, sum_log: float, n: int, x_min: float) -> float:
    return float(-alpha * sum_log - n * math.log(special.zeta(alpha, x_min)))


def powerlaw_alpha_mle(values: np.ndarray, x_min: float) -> float:
    """Exact maximum-likelihood exponent of a discrete power law on ``x >= x_min``.

    Maximises ``-alpha * sum(ln x) - n * ln zeta(alpha, x_min)`` (Hurwitz zeta) over
    ``alpha`` in ``(1, 50]`` with bounded Brent search; the negative log-likelihood is
    convex in ``alpha``, so the optimum is unique.

    Parameters
    ----------
    values : array_like
        Integers; only those ``>= x_min`` are used.
    x_min : float
        Lower bound of the power-law tail (a positive integer).

    Returns
    -------
    float
        The exponent; NaN when the tail has fewer than 2 distinct values.

    Examples
    --------
    >>> import numpy as np
    >>> round(powerlaw_alpha_mle(np.array([1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 13, 2, 3, 1, 6]), 2), 3)
    2.202
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    tail = arr[arr >= x_min]
    if tail.size < 2 or tail.min() == tail.max():
        return _NAN
    return _alpha_mle_from_sums(float(np.log(tail).sum()), int(tail.size), float(x_min))


def _alpha_mle_from_sums(sum_log: float, n: int, x_min: float) -> float:
    def negative(alpha: float) -> float:
        return alpha * sum_log + n * math.log(special.zeta(alpha, x_min))

    return _golden_minimum(negative, 1.0 + 1e-9, _ALPHA_MAX, tolerance=1e-7)


_INVERSE_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _golden_minimum(func, low: float, high: float, *, tolerance: float) -> float:
    """Where a convex function of one variable is least on ``[low, high]`` (golden-section search).

    The negative log-likelihood of the power law is convex in ``alpha`` (``ln zeta``
    is a log-sum-exp of functions linear in ``alpha``), so golden-section search
    finds its minimum to ``tolerance``; it keeps scipy.optimize, whose import costs
    more than a whole audit of a checkpoint, out of every fit.
    """
    a, b = low, high
    c = b - _INVERSE_GOLDEN * (b - a)
    d = a + _INVERSE_GOLDEN * (b - a)
    fc, fd = func(c), func(d)
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _INVERSE_GOLDEN * (b - a)
            fc = func(c)
        else:
            a, c, fc = c, d, fd
            d = a + _INVERSE_GOLDEN * (b - a)
            fd = func(d)
    return float((a + b) / 2.0)


def _powerlaw_sf_exact(x: np.ndarray, alpha: float, x_min: float) -> np.ndarray:
    """P(X >= x) of the discrete power law."""
    return special.zeta(alpha, x) / special.zeta(alpha, x_min)


def powerlaw_xmin_scan(
    support: np.ndarray,
    counts: np.ndarray,
    *,
    min_tail: int = 10,
    max_candidates: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KS distance of the fitted power-law tail for every candidate ``x_min``, vectorised.

    Parameters
    ----------
    support : numpy.ndarray
        The distinct positive values, ascending.
    counts : numpy.ndarray
        How often each occurs.
    min_tail : int
        Candidates whose tail holds fewer values are skipped (unless none would remain).
    max_candidates : int, optional
        With more candidates than this, they are thinned to this many, evenly spaced in
        rank (those below 6 are always kept). By default every candidate is scanned
        while ``candidates * distinct values <= 4e6`` (up to 2,000 distinct values),
        else ``4e6 / distinct values`` of them, at least 300; this bounds the time of
        a layer with very many distinct fan-ins.

    Returns
    -------
    candidates, alphas, ks : numpy.ndarray
        Candidate ``x_min`` values, their exponents and their KS distances (see the
        module notes for which are exact and which approximate).

    Examples
    --------
    >>> import numpy as np
    >>> support, counts = np.unique([1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 13, 2, 3, 1, 6], return_counts=True)
    >>> candidates, alphas, ks = powerlaw_xmin_scan(support, counts, min_tail=3)
    >>> candidates.tolist(), alphas.round(3).tolist(), ks.round(3).tolist()
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.664, 2.202, 2.54, 2.613, 3.011, 3.269], [0.27, 0.111, 0.089, 0.13, 0.139, 0.178])
    """
    support = np.asarray(support, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n_unique = support.size
    n_total = int(counts.sum())
    # the tail at candidate i holds support[i:], so cumulative sums give every tail at once
    tail_n = n_total - np.concatenate(([0], np.cumsum(counts)[:-1]))
    weighted_log = counts * np.log(support)
    tail_sum_log = weighted_log[::-1].cumsum()[::-1]

    index = np.arange(n_unique - 1)  # the largest value alone cannot be a power-law tail
    keep = tail_n[index] >= min_tail
    if keep.any():
        index = index[keep]
    if max_candidates is None:
        max_candidates = max(_MIN_AUTO_CANDIDATES, _SCAN_CELLS // max(n_unique, 1))
    if index.size > max_candidates:
        small = index[support[index] < _EXACT_XMIN_BELOW]
        spread = index[np.unique(np.linspace(0, index.size - 1, max_candidates).round().astype(np.int64))]
        index = np.union1d(small, spread)
    if index.size == 0:
        empty = np.zeros(0)
        return empty, empty, empty

    x_min = support[index]
    n_tail = tail_n[index].astype(np.float64)
    sum_log = tail_sum_log[index]
    alphas = 1.0 + n_tail / (sum_log - n_tail * np.log(x_min - 0.5))
    ks = np.empty(index.size)
    cum = np.cumsum(counts).astype(np.float64)
    before = np.concatenate(([0.0], cum[:-1]))
    next_points = np.append(support[1:], support[-1] + 1.0)
    log_at = np.log(support + 0.5)  # P(X <= v) = 1 - P(X >= v + 1)
    log_gap = np.log(next_points - 0.5)  # P(X <= next - 1) = 1 - P(X >= next)
    columns = np.arange(n_unique)

    exact = x_min < _EXACT_XMIN_BELOW
    for pos in np.flatnonzero(exact):
        i = index[pos]
        alpha = _alpha_mle_from_sums(float(sum_log[pos]), int(n_tail[pos]), float(x_min[pos]))
        alphas[pos] = alpha
        ecdf = (cum[i:] - before[i]) / n_tail[pos]
        cdf_at = 1.0 - _powerlaw_sf_exact(support[i:] + 1.0, alpha, x_min[pos])
        cdf_gap = 1.0 - _powerlaw_sf_exact(next_points[i:], alpha, x_min[pos])
        ks[pos] = _ks_discrete(support[i:], ecdf, cdf_at, cdf_gap)

    approx = np.flatnonzero(~exact)
    block = max(1, _BLOCK_ELEMENTS // max(n_unique, 1))
    for start in range(0, approx.size, block):
        rows = approx[start : start + block]
        i = index[rows][:, None]
        # candidates ascend, so no row of this block looks left of its first candidate
        first = int(i[0, 0])
        cols = columns[first:]
        valid = cols[None, :] >= i
        exponent = (1.0 - alphas[rows])[:, None]
        log_xmin = np.log(x_min[rows] - 0.5)[:, None]
        ecdf = (cum[None, first:] - before[i]) / n_tail[rows][:, None]
        # clipping at 0 leaves valid cells alone (v + 0.5 > x_min - 0.5) and keeps the rest finite
        cdf_at = -np.expm1(exponent * np.maximum(log_at[None, first:] - log_xmin, 0.0))
        cdf_gap = -np.expm1(exponent * np.maximum(log_gap[None, first:] - log_xmin, 0.0))
        dist_at = np.where(valid, np.abs(ecdf - cdf_at), 0.0)
        # the gap after the largest value is closed by the model's own tail; skip it
        gap_valid = valid & (cols[None, :] < n_unique - 1)
        dist_gap = np.where(gap_valid, np.abs(ecdf - cdf_gap), 0.0)
        ks[rows] = np.maximum(dist_at.max(axis=1), dist_gap.max(axis=1))
    return x_min, alphas, ks


def _powerlaw_fit(name: str, support: np.ndarray, counts: np.ndarray, x_min: float, k: int) -> Fit:
    """Exact discrete power-law fit of the values >= x_min."""
    tail = support >= x_min
    s, c = support[tail], counts[tail]
    n = int(c.sum())
    params = {"alpha": _NAN, "x_min": float(x_min), "n_tail": float(n)}
    if s.size < 2:
        return Fit(name=name, params=params, ks=_NAN, loglik=_NAN, aic=_NAN, n=n)
    sum_log = float(np.dot(c, np.log(s)))
    alpha = _alpha_mle_from_sums(sum_log, n, float(x_min))
    params["alpha"] = alpha
    loglik = _powerlaw_loglik(alpha, sum_log, n, float(x_min))
    ecdf = np.cumsum(c) / n
    next_points = np.append(s[1:], s[-1] + 1.0)
    cdf_at = 1.0 - _powerlaw_sf_exact(s + 1.0, alpha, float(x_min))
    cdf_gap = 1.0 - _powerlaw_sf_exact(next_points, alpha, float(x_min))
    ks = _ks_discrete(s, ecdf, cdf_at, cdf_gap)
    return Fit(name=name, params=params, ks=ks, loglik=loglik, aic=_aic(k, loglik), n=n)


# -- the entry point -------------------------------------------------------------------
def _degenerate(positive: np.ndarray, n_excluded: int) -> FanInFits:
    n = int(positive.size)
    value = float(positive[0]) if n else _NAN
    nan_fit = lambda name, params: Fit(name=name, params=params, ks=_NAN, loglik=_NAN, aic=_NAN, n=n)  # noqa: E731
    fits = {
        "lognormal": nan_fit("lognormal", {"mu": math.log(value) if n else _NAN, "sigma": 0.0 if n else _NAN, "cv": 0.0 if n else _NAN}),
        "powerlaw": nan_fit("powerlaw", {"alpha": _NAN, "x_min": value, "n_tail": float(n)}),
        "exponential": nan_fit("exponential", {"rate": 1.0 / value if n else _NAN}),
        "normal": nan_fit("normal", {"mean": value, "std": 0.0 if n else _NAN}),
        "powerlaw_full": nan_fit("powerlaw_full", {"alpha": _NAN, "x_min": value, "n_tail": float(n)}),
    }
    best = "constant" if n >= 2 else "none"
    return FanInFits(fits=fits, best=best, n=n, n_excluded=n_excluded)


def fit_fan_in(
    values: np.ndarray,
    *,
    x_min: float | None = None,
    min_tail: int = 10,
    max_candidates: int | None = None,
) -> FanInFits:
    """Fit lognormal, discrete power-law, exponential and normal distributions to fan-in.

    See the module notes for how each fit and the comparison are computed.

    Parameters
    ----------
    values : array_like
        Fan-in of a layer's neurons: non-negative whole numbers. Zeros are excluded.
    x_min : float, optional
        Fix the power-law tail's lower bound instead of choosing it by KS distance.
    min_tail : int
        Smallest tail the ``x_min`` scan considers (when any candidate has that many).
    max_candidates : int, optional
        Most ``x_min`` candidates scanned; by default all while the layer has up to
        2,000 distinct fan-in values; see :func:`powerlaw_xmin_scan`.

    Returns
    -------
    FanInFits
        The fits, the family with the lowest AIC (``best``), and how many values were
        fitted and excluded. Fewer than two positive values give ``best == "none"``, all
        values equal ``best == "constant"`` (with NaN where a fit is undefined).

    Raises
    ------
    TopoError
        If the values are not finite, negative or not whole numbers, or ``x_min`` is
        not a positive number.

    Examples
    --------
    >>> import numpy as np
    >>> fits = fit_fan_in(np.array([1, 1, 2, 2, 2, 3, 3, 4, 5, 8, 13, 2, 3, 1, 6]))
    >>> fits.best, fits.n, round(fits.fits["lognormal"].params["sigma"], 3)
    ('exponential', 15, 0.737)
    >>> fit_fan_in(np.array([0, 3, 3, 3])).best  # the zero is left out; the rest is constant
    'constant'
    """
    positive, n_excluded = _as_counts(values)
    if positive.size < 2 or positive[0] == positive[-1]:
        return _degenerate(positive, n_excluded)
    if x_min is not None and not (math.isfinite(float(x_min)) and float(x_min) >= 1):
        raise TopoError(f"x_min must be a positive whole number, got {x_min!r}")
    starts = np.flatnonzero(np.concatenate(([True], positive[1:] != positive[:-1])))
    support = positive[starts]
    counts = np.diff(np.append(starts, positive.size))
    n = int(positive.size)
    fits: dict[str, Fit] = {}

    logs = np.log(positive)
    mu, sigma = float(logs.mean()), float(logs.std())
    if sigma > 0:
        fits["lognormal"] = _discretised_fit(
            "lognormal",
            {"mu": mu, "sigma": sigma, "cv": float(math.sqrt(math.expm1(sigma**2)))},
            2,
            _Continuous("lognorm", mu=mu, sigma=sigma),
            support,
            counts,
        )
    else:  # cannot happen with two distinct positive values; kept for safety
        fits["lognormal"] = Fit("lognormal", {"mu": mu, "sigma": 0.0, "cv": 0.0}, _NAN, _NAN, _NAN, n)

    if x_min is None:
        candidates, _, ks = powerlaw_xmin_scan(support, counts, min_tail=min_tail, max_candidates=max_candidates)
        chosen = float(candidates[int(np.argmin(ks))]) if candidates.size else float(support[0])
    else:
        chosen = float(x_min)
    fits["powerlaw"] = _powerlaw_fit("powerlaw", support, counts, chosen, k=2)

    mean = float(positive.mean())
    fits["exponential"] = _discretised_fit(
        "exponential", {"rate": 1.0 / mean}, 1, _Continuous("expon", scale=mean), support, counts
    )
    std = float(positive.std())
    fits["normal"] = _discretised_fit(
        "normal", {"mean": mean, "std": std}, 2, _Continuous("norm", loc=mean, scale=std), support, counts
    )
    fits["powerlaw_full"] = _powerlaw_fit("powerlaw_full", support, counts, float(support[0]), k=1)

    compared = ("lognormal", "powerlaw_full", "exponential", "normal")
    scores = [(math.inf if math.isnan(fits[key].aic) else fits[key].aic, key) for key in compared]
    best_key = min(scores)[1]
    best = "powerlaw" if best_key == "powerlaw_full" else best_key
    return FanInFits(fits=fits, best=best, n=n, n_excluded=n_excluded, compared=compared)


def fit_layer(layer, **options) -> FanInFits:
    """:func:`fit_fan_in` of a :class:`~topo.topology.Layer`'s fan-in.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> layer = Layer.from_mask("fc1", np.arange(60).reshape(6, 10) % 7 < 3)
    >>> layer.fan_in.tolist(), fit_layer(layer).best
    ([6, 3, 5, 4, 4, 5], 'normal')
    """
    return fit_fan_in(layer.fan_in, **options)

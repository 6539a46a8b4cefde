"""Fan-in profiles within a layer: how a layer's weights are spread over its neurons.

The idea of profiled sparse networks: neuron ``i`` of ``n`` gets a fan-in ``k_i`` from
a continuous shape ``f`` at its position ``u_i = (i + 0.5) / n``, with one shape
parameter chosen so that the fan-ins have a target coefficient of variation (CV,
population std over mean); its inputs are then drawn uniformly without replacement.

Profiles (:data:`PROFILES`)
---------------------------
``random``
    The baseline: the layer's budget placed uniformly at random over all positions.
    The fan-ins are the realised row counts of that placement (multivariate
    hypergeometric, close to binomial); they may be 0 at high sparsity.  Takes no CV.
``constant``
    Every neuron gets ``budget / n`` (largest remainder; CV about 0).
Parametric families, shape parameter ``t >= 0`` (``t = 0`` is constant):
``linear``
    ``1 + t (1 - 2u)`` for ``t <= 1`` (a straight ramp down to 0 at ``u = 1`` when
    ``t = 1``, CV 0.58); beyond, the ramp ``max(0, 1 - t u)`` reaches 0 at ``u = 1/t``.
``exponential``
    ``exp(-t u)``.
``power``
    ``(1 - u) ** t``.
``logarithmic``
    ``1 + t / (1 - t) * ln(1/u)`` for ``t < 1`` (CV up to 1 at ``t -> 1``); beyond,
    ``max(0, ln(1 / (t u)))``, a logarithmic decay over the first ``1/t`` of the layer.
``sigmoid``
    ``logistic(10 min(t, 1) - 20 t u)``: a smooth step at ``u = 1/2`` that steepens
    until ``t = 1``, then the high plateau narrows to the first ``1/(2t)`` of the layer.
``gaussian``
    A bump in the middle, ``exp(-t**2 (u - 1/2)**2 / 2)``.
``ushaped``
    High at both ends, ``exp(t ((2u - 1)**2 - 1))``.
``step``
    Two levels: the first ``max(1, round(0.1 n))`` neurons at ``1 + t``, the rest at 1.
    Its CV is bounded by ``sqrt(1/0.1 - 1) = 3`` (less for small layers).
``lognormal``
    Quantiles of a lognormal with log-std ``t``: ``exp(t * Phi^-1(1 - u))``.
``powerlaw``
    ``k_i`` proportional to ``(i + 1) ** -t`` (rank-based, Zipf-like).

For a parametric family the shape parameter is found by bisection on the CV of the
real fan-ins, i.e. of ``budget * f(u_i) / sum f`` clipped to ``[1, n_in]`` with the
excess redistributed (where nothing is clipped this is the CV of ``f`` on the grid
``u_i``).  That CV grows with ``t`` in every family.  A family reaches at most the CV
of its shape at the largest ``t`` on ``n`` points (:func:`max_cv`; about
``sqrt(n - 1)`` for the families that concentrate on one neuron, so every family but
``step`` reaches a CV of 2.5 from 8 neurons on); a larger target raises TopoError.
Where clipping to ``[1, n_in]`` keeps the target out of reach, the closest CV within
reach is taken: check the achieved CV (:func:`topo.analysis.degree.coefficient_of_variation`
of the result).  The real fan-ins are rounded by largest remainder, so
``sum(k) == budget`` exactly and every ``k_i`` lies in ``[1, n_in]``.

Placement (``hub_placement``): ``"index"`` keeps the shape in neuron order, so the
decreasing families (all but ``gaussian`` and ``ushaped``) give neuron 0 the largest
fan-in, ``gaussian`` peaks at the middle neuron and ``ushaped`` at both ends;
``"shuffled"`` permutes the neurons with the generator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_expit, ndtri

from topo.errors import TopoError
from topo.training.densities import apportion, solve_scale

__all__ = [
    "PROFILES",
    "PARAMETRIC_PROFILES",
    "HUB_PLACEMENTS",
    "STEP_FRACTION",
    "fan_in_profile",
    "profile_weights",
    "max_cv",
    "sample_mask",
]

PARAMETRIC_PROFILES = (
    "linear",
    "exponential",
    "power",
    "logarithmic",
    "sigmoid",
    "gaussian",
    "ushaped",
    "step",
    "lognormal",
    "powerlaw",
)
PROFILES = ("random", "constant") + PARAMETRIC_PROFILES
HUB_PLACEMENTS = ("index", "shuffled")

STEP_FRACTION = 0.1
"""Fraction of neurons on the high level of the ``step`` profile."""

# Relative tolerance of the CV bisection; rounding to integers costs more than this.
_CV_TOLERANCE = 1e-5
_BISECTION_STEPS = 80


def _positions(n: int) -> np.ndarray:
    return (np.arange(n, dtype=np.float64) + 0.5) / n


def _log_weights(name: str, n: int, t: float) -> np.ndarray:
    """Natural log of the shape ``f`` at the ``n`` grid points (``-inf`` where 0)."""
    u = _positions(n)
    if t == 0.0:
        return np.zeros(n)
    with np.errstate(divide="ignore"):
        if name == "linear":
            if t <= 1.0:
                return np.log1p(t * (1.0 - 2.0 * u))
            return np.log(np.maximum(0.0, 1.0 - t * u))
        if name == "exponential":
            return -t * u
        if name == "power":
            return t * np.log1p(-u)
        if name == "logarithmic":
            if t < 1.0:
                return np.log1p(t / (1.0 - t) * -np.log(u))
            return np.log(np.maximum(0.0, -np.log(t * u)))
        if name == "sigmoid":
            return log_expit(10.0 * min(t, 1.0) - 20.0 * t * u)
        if name == "gaussian":
            return -0.5 * (t * (u - 0.5)) ** 2
        if name == "ushaped":
            return t * ((2.0 * u - 1.0) ** 2 - 1.0)
        if name == "step":
            high = max(1, int(np.floor(STEP_FRACTION * n + 0.5)))
            out = np.zeros(n)
            out[:high] = np.log1p(t)
            return out
        if name == "lognormal":
            return t * ndtri(1.0 - u)
        if name == "powerlaw":
            return -t * np.log(np.arange(1, n + 1, dtype=np.float64))
    raise TopoError(f"unknown fan-in profile {name!r} (choose from {', '.join(PROFILES)})")


def _largest_parameter(name: str, n: int) -> float:
    """A shape parameter beyond which the family's CV on ``n`` points no longer grows."""
    if name in ("linear", "logarithmic"):
        # Support [0, 1/t): beyond 1/u_1 only the first neuron is left.
        return 1.0 / _positions(n)[1] if n > 1 else 1.0
    if name == "step":
        return 1e12
    if name == "lognormal":
        return 60.0
    if name == "powerlaw":
        return 80.0
    # exponential, power, sigmoid, gaussian, ushaped: neighbouring points differ by
    # a factor exp(-c t / n) (gaussian: exp(-c t**2 / n**2)); make that negligible.
    return 80.0 * n


def profile_weights(name: str, n: int, t: float) -> np.ndarray:
    """The shape ``f`` of a parametric family at the ``n`` grid points, scaled to max 1.

    Parameters
    ----------
    name : str
        One of :data:`PARAMETRIC_PROFILES`.
    n : int
        Number of neurons.
    t : float
        Shape parameter, ``>= 0`` (0 gives a constant).

    Returns
    -------
    numpy.ndarray of float64, shape ``(n,)``

    Raises
    ------
    TopoError
        For a name that is not a parametric family or a negative ``t``.

    Examples
    --------
    ``linear`` at ``t = 1`` is ``2 - 2u`` at ``u = 1/8, 3/8, 5/8, 7/8``, over its maximum:

    >>> profile_weights("linear", 4, 1.0).round(4).tolist()
    [1.0, 0.7143, 0.4286, 0.1429]
    >>> profile_weights("exponential", 3, 0.0).tolist()  # t = 0 is constant
    [1.0, 1.0, 1.0]
    """
    if name not in PARAMETRIC_PROFILES:
        raise TopoError(f"{name!r} is not a parametric fan-in profile (choose from {', '.join(PARAMETRIC_PROFILES)})")
    if not t >= 0:
        raise TopoError(f"shape parameter must be >= 0, got {t!r}")
    logs = _log_weights(name, int(n), float(t))
    top = logs.max()
    if not np.isfinite(top):
        # Every point at 0 (a support narrower than the grid): keep the first neuron.
        out = np.zeros(int(n))
        out[0] = 1.0
        return out
    return np.exp(logs - top)


def _cv(values: np.ndarray) -> float:
    mean = values.mean()
    return float(values.std() / mean) if mean > 0 else 0.0


def max_cv(name: str, n: int) -> float:
    """Largest fan-in CV a profile family reaches on ``n`` neurons (before clipping).

    Parameters
    ----------
    name : str
        One of :data:`PROFILES`; ``constant`` gives 0, ``random`` NaN (it takes no CV).
    n : int
        Number of neurons in the layer.

    Returns
    -------
    float

    Examples
    --------
    >>> round(max_cv("step", 10), 6)  # one neuron high, nine low: sqrt(1/0.1 - 1)
    3.0
    >>> round(max_cv("exponential", 8), 4)  # all on one neuron: sqrt(8 - 1)
    2.6458
    >>> max_cv("constant", 8)
    0.0
    """
    if name == "constant":
        return 0.0
    if name == "random":
        return float("nan")
    return _cv(profile_weights(name, n, _largest_parameter(name, n)))


def _bisect(cv_of, target: float, low: float, high: float) -> float:
    """Parameter in ``[low, high]`` where the non-decreasing ``cv_of`` meets ``target``."""
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high) if high < 1e3 * max(low, 1.0) else np.sqrt(max(low, 1e-12) * high)
        value = cv_of(mid)
        if abs(value - target) <= _CV_TOLERANCE * max(target, 1e-3):
            return mid
        if value < target:
            low = mid
        else:
            high = mid
    return high


def _real_fan_in(weights: np.ndarray, budget: int, n_in: int) -> np.ndarray:
    """``budget * weights / sum(weights)`` clipped to ``[1, n_in]``, excess redistributed."""
    n = weights.size
    x, _ = solve_scale(weights, float(budget), np.ones(n), np.full(n, float(n_in)))
    return x


def _parametric_fan_in(name: str, n_out: int, n_in: int, budget: int, cv: float) -> np.ndarray:
    top_t = _largest_parameter(name, n_out)
    reach = _cv(profile_weights(name, n_out, top_t))
    if cv > reach * (1 + 1e-9) + 1e-12:
        raise TopoError(
            f"profile {name!r} reaches a fan-in CV of at most {reach:.3f} "
            f"on a layer of {n_out} neurons; asked for {cv:g}"
        )
    if cv == 0.0:
        t = 0.0
    else:
        t = _bisect(lambda s: _cv(profile_weights(name, n_out, s)), cv, 0.0, top_t)
    real = _real_fan_in(profile_weights(name, n_out, t), budget, n_in)
    achieved = _cv(real)
    if abs(achieved - cv) > _CV_TOLERANCE * max(cv, 1e-3):
        # Clipping to [1, n_in] moved the CV (it usually lowers it): solve again on the
        # clipped fan-ins.  Scan upward (or downward) for a bracket, then bisect.
        def clipped_cv(s: float) -> float:
            return _cv(_real_fan_in(profile_weights(name, n_out, s), budget, n_in))

        if achieved < cv:
            grid = np.geomspace(max(t, 1e-3), top_t, 48) if top_t > max(t, 1e-3) else np.array([top_t])
            values = np.array([clipped_cv(s) for s in grid])
            above = np.nonzero(values >= cv)[0]
            if above.size == 0:
                t = float(grid[int(np.argmax(values))])  # out of reach: the closest CV
            else:
                j = int(above[0])
                low = t if j == 0 else float(grid[j - 1])
                t = _bisect(clipped_cv, cv, low, float(grid[j]))
        else:
            t = _bisect(clipped_cv, cv, 0.0, t)
        real = _real_fan_in(profile_weights(name, n_out, t), budget, n_in)
    return apportion(real, budget, np.ones(n_out, dtype=np.int64), np.full(n_out, n_in, dtype=np.int64))


def _as_generator(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TopoError(f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__}")


def fan_in_profile(
    name: str,
    n_out: int,
    n_in: int,
    budget: int,
    *,
    cv: float | None = None,
    hub_placement: str = "index",
    rng=None,
) -> np.ndarray:
    """Fan-in of every neuron of a layer under a profile; see the module notes.

    Parameters
    ----------
    name : str
        One of :data:`PROFILES`.
    n_out, n_in : int
        Layer shape ``[out, in]``.
    budget : int
        Number of weights the layer keeps: ``n_out <= budget <= n_out * n_in``
        (``random``: ``0 <= budget <= n_out * n_in``).
    cv : float, optional
        Target fan-in CV, ``>= 0``; required by the parametric families, must be
        None for ``random`` and None or 0 for ``constant``.
    hub_placement : {"index", "shuffled"}
        ``"index"``: the shape in neuron order (neuron 0 largest for the decreasing
        families); ``"shuffled"``: neurons permuted with ``rng``.  ``random`` is
        unordered already and ignores it.
    rng : numpy.random.Generator or int, optional
        Randomness for ``random`` and ``"shuffled"``; an int is a seed, None is seed 0.

    Returns
    -------
    numpy.ndarray of int64, shape ``(n_out,)``
        ``sum == budget``; each in ``[1, n_in]`` (``random``: in ``[0, n_in]``).

    Raises
    ------
    TopoError
        For an unknown profile or placement, a budget out of range, a missing,
        negative or unreachable ``cv``, or a ``cv`` given to ``random``.

    Examples
    --------
    An 8-neuron layer keeping 64 of 160 weights, exponentially decreasing at a CV
    near 0.5 (rounding to integers moves it a little):

    >>> fan_in = fan_in_profile("exponential", 8, 20, 64, cv=0.5)
    >>> fan_in.tolist(), int(fan_in.sum()), round(float(fan_in.std() / fan_in.mean()), 2)
    ([16, 12, 10, 8, 6, 5, 4, 3], 64, 0.52)
    >>> fan_in_profile("constant", 3, 10, 10).tolist()
    [4, 3, 3]
    >>> fan_in_profile("exponential", 8, 20, 64, cv=5.0)
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: profile 'exponential' reaches a fan-in CV of at most 2.646 on a layer of 8 neurons; asked for 5
    """
    if name not in PROFILES:
        raise TopoError(f"unknown fan-in profile {name!r} (choose from {', '.join(PROFILES)})")
    if hub_placement not in HUB_PLACEMENTS:
        raise TopoError(f"unknown hub placement {hub_placement!r} (choose from {', '.join(HUB_PLACEMENTS)})")
    n_out, n_in, budget = int(n_out), int(n_in), int(budget)
    if n_out < 1 or n_in < 1:
        raise TopoError(f"layer shape must be positive, got ({n_out}, {n_in})")
    size = n_out * n_in
    if cv is not None:
        try:
            cv = float(cv)
        except (TypeError, ValueError):
            raise TopoError(f"cv must be a number, got {cv!r}") from None
        if not (np.isfinite(cv) and cv >= 0):
            raise TopoError(f"cv must be a finite number >= 0, got {cv!r}")

    if name == "random":
        if cv is not None:
            raise TopoError("profile 'random' takes no cv (its fan-ins follow from a uniform placement)")
        if not 0 <= budget <= size:
            raise TopoError(f"budget {budget} out of range [0, {size}] for a layer of shape ({n_out}, {n_in})")
        generator = _as_generator(rng)
        # Row counts of `budget` positions drawn uniformly from the whole matrix.
        if size >= _HYPERGEOMETRIC_LIMIT:
            return _uniform_position_counts(n_out, n_in, budget, generator)
        fan_in = generator.multivariate_hypergeometric(np.full(n_out, n_in, dtype=np.int64), budget)
        return fan_in.astype(np.int64)

    if not n_out <= budget <= size:
        raise TopoError(
            f"budget {budget} out of range [{n_out}, {size}] for a layer of shape ({n_out}, {n_in}) "
            f"(profile {name!r} gives every neuron at least one input)"
        )
    if name == "constant":
        if cv not in (None, 0.0):
            raise TopoError("profile 'constant' takes no cv other than 0")
        fan_in = apportion(np.ones(n_out), budget, np.ones(n_out, dtype=np.int64), np.full(n_out, n_in, dtype=np.int64))
    else:
        if cv is None:
            raise TopoError(f"profile {name!r} needs a target fan-in cv")
        fan_in = _parametric_fan_in(name, n_out, n_in, budget, cv)
    if hub_placement == "shuffled":
        fan_in = _as_generator(rng).permutation(fan_in)
    return fan_in.astype(np.int64)


def sample_mask(fan_in: np.ndarray, n_in: int, rng) -> np.ndarray:
    """A boolean mask whose row ``i`` has ``fan_in[i]`` inputs drawn without replacement.

    Every row is an independent uniform draw: the columns of a random permutation per
    row (one ``Generator.permuted`` call over the whole matrix), of which the first
    ``fan_in[i]`` are kept.

    Parameters
    ----------
    fan_in : array_like of int, shape ``(out,)``
        Inputs per neuron, each in ``[0, n_in]``.
    n_in : int
        Number of inputs of the layer.
    rng : numpy.random.Generator or int
        Randomness (an int is a seed).

    Returns
    -------
    numpy.ndarray of bool, shape ``(out, n_in)``
        Row sums equal ``fan_in``.

    Raises
    ------
    TopoError
        If a fan-in is outside ``[0, n_in]`` or ``fan_in`` is not 1-D.

    Examples
    --------
    >>> import numpy as np
    >>> mask = sample_mask(np.array([3, 1, 0]), 5, rng=0)
    >>> mask.shape, mask.sum(axis=1).tolist()
    ((3, 5), [3, 1, 0])
    """
    k = np.asarray(fan_in)
    n_in = int(n_in)
    if k.ndim != 1 or (k.size and not np.issubdtype(k.dtype, np.integer)):
        raise TopoError("fan_in must be a 1-D array of integers")
    if n_in < 1:
        raise TopoError(f"n_in must be positive, got {n_in}")
    if k.size and (k.min() < 0 or k.max() > n_in):
        raise TopoError(f"fan-ins must lie in [0, {n_in}], got {int(k.min())} to {int(k.max())}")
    generator = _as_generator(rng)
    n_out = k.size
    mask = np.zeros((n_out, n_in), dtype=bool)
    if n_out == 0:
        return mask
    index_type = np.int16 if n_in <= np.iinfo(np.int16).max else np.int32
    order = generator.permuted(np.broadcast_to(np.arange(n_in, dtype=index_type), (n_out, n_in)), axis=1)
    keep = np.arange(n_in)[None, :] < k[:, None]
    rows = np.broadcast_to(np.arange(n_out)[:, None], (n_out, n_in))[keep]
    mask[rows, order[keep]] = True
    return mask


#: numpy's multivariate_hypergeometric (method "marginals") takes fewer positions than this
_HYPERGEOMETRIC_LIMIT = 10**9


def _uniform_position_counts(n_out: int, n_in: int, budget: int, generator) -> np.ndarray:
    """Row counts of ``budget`` distinct positions drawn uniformly from ``[n_out, n_in]``.

    The same distribution as the multivariate hypergeometric row counts, for layers too
    large for numpy's sampler: positions are drawn with replacement and duplicates
    redrawn until ``budget`` are distinct; memory is proportional to ``budget``.
    """
    size = int(n_out) * int(n_in)
    keys = np.zeros(0, dtype=np.int64)
    while keys.size < budget:
        draw = generator.integers(0, size, size=budget - keys.size, dtype=np.int64)
        merged = np.concatenate([keys, draw])
        _, first = np.unique(merged, return_index=True)
        keys = merged[np.sort(first)]
    return np.bincount(keys // int(n_in), minlength=int(n_out)).astype(np.int64)

"""Priors from network theory: initial layer masks drawn from random-graph models.

Stier, Darji and Granitzer (2021) build sparse networks from random graphs and find
that their structure carries over to performance.  Here a random-graph model gives
the mask of each layer (the bipartite graph from its ``n_in`` inputs to its ``n_out``
outputs), in place of a fan-in profile.  Two models:

``ws:k=K,p=P`` (Watts-Strogatz small world)
    The ``n_in + n_out`` neurons sit on one ring, each layer spread evenly around it
    (output ``i`` at angle ``(i + 1/2) / n_out``, input ``j`` at ``(j + 1/2) / n_in`` of a
    turn).  The *ring lattice*: every output is joined to its ``K`` nearest inputs on
    the ring (ring distance, ties to the lower index), the bipartite form of WS's "each
    node joined to its K nearest neighbours" (a mask holds input-output edges only), a
    local receptive field.  *Rewiring*: each lattice edge, with probability ``P``, has
    its input end moved to an input chosen uniformly among those the output is not yet
    joined to (WS 1998: the output keeps its degree, duplicates are forbidden).
    ``P = 0`` is the lattice (many four-cycles, high square clustering), ``P = 1`` close
    to a random graph.  ``K`` defaults to ``round(budget / n_out)``, which leaves only
    the rounding remainder to adjust; ``P`` defaults to 0.1.
``ba:m=M`` (Barabási-Albert preferential attachment)
    The ``n_in + n_out`` neurons arrive one at a time in an order drawn with the seed;
    each new neuron is joined to ``min(M, arrived)`` distinct neurons of the other side
    among those that arrived before it, each chosen with probability proportional to
    its degree + 1 (BA's rule, with one unit of initial attractiveness so that neurons
    without edges can be chosen).  Early neurons become hubs on both sides: large
    fan-in among outputs, large fan-out among inputs.  ``M`` defaults to
    ``max(1, round(budget / (n_in + n_out)))``, which makes about ``budget`` edges.

``brf:r=R`` (bipartite receptive field, Zhang et al. 2025, arXiv 2501.19107, BRF with fixed
    degrees)
    Output ``i`` and input ``j`` sit at ``x_i = (i + 1/2) / n_out`` and ``x_j = (j + 1/2) / n_in``
    on one line (the adjacency matrix's main diagonal joins neurons at the same place);
    their distance is ``d_ij = |x_i - x_j|`` in ``[0, 1)``.  Every output gets the same
    fan-in ``floor(budget / n_out)`` (the remainder: one more input for outputs drawn
    uniformly at random), and draws its inputs without replacement with probability
    proportional to ``S_ij = (1 - d_ij) ^ ((1 - R) / R)`` (weighted sampling without
    replacement by exponential keys).  ``R = 0`` is the deterministic limit: each output
    takes its nearest inputs (ties to the lower index), a receptive field along the
    input order; ``R = 1`` makes every input equally likely (a random graph with constant
    fan-in).  ``R`` defaults to 0.3.  The budget is met exactly by construction.

Exact budget: the model's edge count rarely equals the layer's budget (from
:func:`topo.training.densities.layer_budgets`).  :func:`adjust_to_budget` then removes
edges chosen uniformly at random (keeping every output's last input while that is
possible) or adds absent positions chosen uniformly at random, with the same
generator, so every mask has exactly ``budget`` weights.  A layer whose budget is its
whole size is dense, whatever the prior.

All randomness comes from the generator passed in, so the same seed gives the same
masks bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from topo.errors import TopoError

__all__ = [
    "PRIORS",
    "Prior",
    "parse_prior",
    "is_prior_spec",
    "watts_strogatz_mask",
    "barabasi_albert_mask",
    "adjust_to_budget",
    "prior_mask",
    "receptive_field_mask",
]

#: prior names and the parameters each takes
PRIORS: Mapping[str, tuple[str, ...]] = {"ws": ("k", "p"), "ba": ("m",), "brf": ("r",)}


@dataclass(frozen=True)
class Prior:
    """A random-graph model and its parameters (None: derived from the layer's budget).

    Attributes
    ----------
    name : {"ws", "ba", "brf"}
        The model.
    params : dict
        ``{"k": int | None, "p": float}`` for ``ws``, ``{"m": int | None}`` for ``ba``,
        ``{"r": float}`` for ``brf``.

    Examples
    --------
    >>> prior = Prior("ws", {"k": 4, "p": 0.2})
    >>> prior.spec
    'ws:k=4,p=0.2'
    >>> Prior("ba", {"m": None}).spec  # a parameter left to the budget is not written
    'ba'
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The prior as ``--init`` text, e.g. ``"ws:k=4,p=0.1"``."""
        parts = [f"{key}={value}" for key, value in self.params.items() if value is not None]
        return self.name + (":" + ",".join(parts) if parts else "")


def is_prior_spec(spec: Any) -> bool:
    """Whether ``spec`` names a prior (``ws``, ``ba`` or ``brf``, with or without parameters).

    Parameters
    ----------
    spec : object
        An ``--init`` value, or anything else.

    Returns
    -------
    bool
        Only the model name is looked at; :func:`parse_prior` checks the parameters.

    Examples
    --------
    >>> is_prior_spec("ws:k=2"), is_prior_spec("ba"), is_prior_spec("masks:run/epoch_0.npz"), is_prior_spec(None)
    (True, True, False, False)
    """
    if not isinstance(spec, str):
        return False
    return spec.split(":", 1)[0] in PRIORS


def parse_prior(spec: str | Prior) -> Prior:
    """Read ``"ws:k=K,p=P"``, ``"ba:m=M"`` or ``"brf:r=R"`` (parameters optional).

    Parameters
    ----------
    spec : str or Prior
        The ``--init`` text; a :class:`Prior` is returned as it is.

    Returns
    -------
    Prior
        Parameters not given take their defaults (``p`` 0.1, ``r`` 0.3) or None
        (``k``, ``m``: derived from each layer's budget).

    Raises
    ------
    TopoError
        For an unknown model, an unknown or repeated parameter, or a value out of range
        (``k``, ``m``: integers >= 1; ``p``, ``r`` in [0, 1]).

    Examples
    --------
    >>> parse_prior("ws:k=4")
    Prior(name='ws', params={'k': 4, 'p': 0.1})
    >>> parse_prior("brf").params
    {'r': 0.3}
    >>> parse_prior("ws:p=2")
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: init 'ws:p=2': p must be in [0, 1], got '2'
    """
    if isinstance(spec, Prior):
        return spec
    text = str(spec).strip()
    name, _, rest = text.partition(":")
    if name not in PRIORS:
        raise TopoError(f"init: unknown prior {name!r} in {text!r} (choose from ws:k=K,p=P, ba:m=M or brf:r=R)")
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in PRIORS[name]:
            raise TopoError(f"init {text!r}: expected {', '.join(p + '=...' for p in PRIORS[name])}, got {item!r}")
        if key in values:
            raise TopoError(f"init {text!r}: {key} is given twice")
        values[key] = value.strip()

    def positive_int(key: str) -> int | None:
        if key not in values:
            return None
        try:
            number = float(values[key])
        except ValueError:
            number = float("nan")
        if not (number >= 1 and number == int(number)):
            raise TopoError(f"init {text!r}: {key} must be an integer >= 1, got {values[key]!r}")
        return int(number)

    def unit_interval(key: str, default: float) -> float:
        if key not in values:
            return default
        try:
            number = float(values[key])
        except ValueError:
            number = float("nan")
        if not (0.0 <= number <= 1.0):
            raise TopoError(f"init {text!r}: {key} must be in [0, 1], got {values[key]!r}")
        return number

    if name == "ws":
        return Prior("ws", {"k": positive_int("k"), "p": unit_interval("p", 0.1)})
    if name == "brf":
        return Prior("brf", {"r": unit_interval("r", 0.3)})
    return Prior("ba", {"m": positive_int("m")})


def _check_layer(n_out: int, n_in: int, budget: int) -> None:
    if n_out < 1 or n_in < 1:
        raise TopoError(f"layer shape must be positive, got ({n_out}, {n_in})")
    if not (0 <= budget <= n_out * n_in):
        raise TopoError(f"budget {budget} is outside [0, {n_out * n_in}] for a {n_out}x{n_in} layer")


def adjust_to_budget(mask: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Remove or add edges uniformly at random until ``mask`` has exactly ``budget`` edges.

    Removal visits the edges in a random order and drops each one whose output keeps at
    least one other input, until enough are gone; where that is not enough (a budget
    below ``n_out``), the remaining edges to drop are drawn uniformly from the rest.
    Addition draws absent positions uniformly without replacement.

    Parameters
    ----------
    mask : numpy.ndarray of bool, shape ``[out, in]``
        The model's mask (not modified).
    budget : int
        The number of edges wanted, in ``[0, out * in]``.
    rng : numpy.random.Generator
        Chooses the edges removed or added.

    Returns
    -------
    numpy.ndarray of bool
        A new mask with ``budget`` True entries.

    Raises
    ------
    TopoError
        For a budget outside ``[0, out * in]``.

    Examples
    --------
    >>> import numpy as np
    >>> int(adjust_to_budget(np.eye(3, dtype=bool), 5, np.random.default_rng(0)).sum())
    5
    >>> fewer = adjust_to_budget(np.ones((2, 3), dtype=bool), 2, np.random.default_rng(0))
    >>> fewer.sum(axis=1).tolist()  # every output keeps an input
    [1, 1]
    """
    mask = np.array(mask, dtype=bool, copy=True)
    n_out, n_in = mask.shape
    _check_layer(n_out, n_in, int(budget))
    excess = int(mask.sum()) - int(budget)
    if excess > 0:
        rows, cols = np.nonzero(mask)
        fan_in = mask.sum(axis=1)
        order = rng.permutation(rows.size)
        dropped = np.zeros(rows.size, dtype=bool)
        removed = 0
        for edge in order:
            if removed == excess:
                break
            if fan_in[rows[edge]] >= 2:
                fan_in[rows[edge]] -= 1
                dropped[edge] = True
                removed += 1
        if removed < excess:
            rest = np.flatnonzero(~dropped)
            dropped[rng.choice(rest, size=excess - removed, replace=False)] = True
        mask[rows[dropped], cols[dropped]] = False
    elif excess < 0:
        absent = np.flatnonzero(~mask.ravel())
        chosen = rng.choice(absent, size=-excess, replace=False)
        mask.ravel()[chosen] = True
    return mask


def watts_strogatz_mask(
    n_out: int,
    n_in: int,
    budget: int,
    *,
    k: int | None = None,
    p: float = 0.1,
    rng: np.random.Generator,
) -> np.ndarray:
    """A ``[out, in]`` mask from the bipartite Watts-Strogatz model (see the module docstring).

    Parameters
    ----------
    n_out, n_in : int
        Layer shape.
    budget : int
        Exact number of edges of the result.
    k : int, optional
        Lattice fan-in (clipped to ``[1, n_in]``); default ``round(budget / n_out)``.
    p : float
        Rewiring probability per edge.
    rng : numpy.random.Generator
        Draws the rewiring and the budget adjustment.

    Returns
    -------
    numpy.ndarray of bool

    Raises
    ------
    TopoError
        For a bad shape or budget.

    Examples
    --------
    Without rewiring, each output takes the two inputs nearest to it on the ring:

    >>> import numpy as np
    >>> watts_strogatz_mask(4, 8, 8, p=0.0, rng=np.random.default_rng(0)).astype(int)
    array([[1, 1, 0, 0, 0, 0, 0, 0],
           [0, 0, 1, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 1, 1, 0, 0],
           [0, 0, 0, 0, 0, 0, 1, 1]])
    >>> rewired = watts_strogatz_mask(4, 8, 8, p=0.5, rng=np.random.default_rng(0))
    >>> rewired.sum(axis=1).tolist()  # rewiring moves edges, every output keeps its degree
    [2, 2, 2, 2]
    """
    _check_layer(n_out, n_in, budget)
    k = int(round(budget / n_out)) if k is None else int(k)
    k = min(max(k, 1), n_in)
    out_pos = (np.arange(n_out) + 0.5) / n_out
    in_pos = (np.arange(n_in) + 0.5) / n_in
    gap = np.abs(out_pos[:, None] - in_pos[None, :])
    ring = np.minimum(gap, 1.0 - gap)
    # stable sort: equal distances go to the lower input index, so the lattice is deterministic
    nearest = np.argsort(ring, axis=1, kind="stable")[:, :k]
    mask = np.zeros((n_out, n_in), dtype=bool)
    np.put_along_axis(mask, nearest, True, axis=1)
    rewire = rng.random((n_out, k)) < float(p)
    for i in np.flatnonzero(rewire.any(axis=1)):
        row = mask[i]
        for j in nearest[i, rewire[i]]:
            free = np.flatnonzero(~row)
            if free.size == 0:
                break
            row[j] = False
            row[free[rng.integers(free.size)]] = True
    return adjust_to_budget(mask, budget, rng)


def barabasi_albert_mask(
    n_out: int,
    n_in: int,
    budget: int,
    *,
    m: int | None = None,
    rng: np.random.Generator,
) -> np.ndarray:
    """A ``[out, in]`` mask from bipartite preferential attachment (see the module docstring).

    Parameters
    ----------
    n_out, n_in : int
        Layer shape.
    budget : int
        Exact number of edges of the result.
    m : int, optional
        Edges per arriving neuron; default ``max(1, round(budget / (n_in + n_out)))``.
    rng : numpy.random.Generator
        Draws the arrival order, the attachments and the budget adjustment.

    Returns
    -------
    numpy.ndarray of bool

    Raises
    ------
    TopoError
        For a bad shape or budget.

    Examples
    --------
    >>> import numpy as np
    >>> mask = barabasi_albert_mask(4, 8, 10, rng=np.random.default_rng(0))
    >>> int(mask.sum()), mask.sum(axis=1).tolist()  # one output became a hub
    (10, [1, 1, 7, 1])
    """
    _check_layer(n_out, n_in, budget)
    n = n_in + n_out
    m = max(1, int(round(budget / n))) if m is None else int(m)
    # nodes 0..n_out-1 are outputs, n_out.. are inputs
    order = rng.permutation(n)
    degree = np.zeros(n, dtype=np.float64)
    arrived = np.zeros(n, dtype=bool)
    is_output = np.arange(n) < n_out
    mask = np.zeros((n_out, n_in), dtype=bool)
    for node in order:
        other = np.flatnonzero(arrived & (is_output != is_output[node]))
        if other.size:
            weights = degree[other] + 1.0
            picks = rng.choice(other, size=min(m, other.size), replace=False, p=weights / weights.sum())
            degree[picks] += 1.0
            degree[node] += picks.size
            if is_output[node]:
                mask[node, picks - n_out] = True
            else:
                mask[picks, node - n_out] = True
        arrived[node] = True
    return adjust_to_budget(mask, budget, rng)


def receptive_field_mask(
    n_out: int,
    n_in: int,
    budget: int,
    *,
    r: float = 0.3,
    rng: np.random.Generator,
) -> np.ndarray:
    """A ``[out, in]`` mask from the bipartite receptive-field model (see the module docstring).

    Parameters
    ----------
    n_out, n_in : int
        Layer shape.
    budget : int
        Exact number of edges of the result.
    r : float
        Randomness in [0, 1]: 0 takes each output's nearest inputs, 1 draws them uniformly.
    rng : numpy.random.Generator
        Draws the inputs (and which outputs take the remainder).

    Returns
    -------
    numpy.ndarray of bool

    Raises
    ------
    TopoError
        For a bad shape, budget or ``r``.

    Examples
    --------
    At ``r = 0`` every output takes its nearest inputs along the diagonal:

    >>> import numpy as np
    >>> receptive_field_mask(2, 4, 4, r=0.0, rng=np.random.default_rng(0)).astype(int)
    array([[1, 1, 0, 0],
           [0, 0, 1, 1]])
    >>> uniform = receptive_field_mask(3, 10, 7, r=1.0, rng=np.random.default_rng(0))
    >>> sorted(uniform.sum(axis=1).tolist())  # fan-in floor(7 / 3), one output takes the remainder
    [2, 2, 3]
    """
    _check_layer(n_out, n_in, budget)
    r = float(r)
    if not 0.0 <= r <= 1.0:
        raise TopoError(f"brf: r must be in [0, 1], got {r!r}")
    fan_in = np.full(n_out, budget // n_out, dtype=np.int64)
    fan_in[rng.choice(n_out, size=budget % n_out, replace=False)] += 1
    distance = np.abs((np.arange(n_out)[:, None] + 0.5) / n_out - (np.arange(n_in)[None, :] + 0.5) / n_in)
    if r == 0.0:
        # the deterministic limit: nearest inputs first, ties to the lower index
        order = np.argsort(distance, axis=1, kind="stable")
    else:
        # Efraimidis-Spirakis: the top-k of log(S) + Gumbel noise is a weighted draw without replacement
        exponent = (1.0 - r) / r
        log_score = exponent * np.log1p(-distance)
        keys = log_score - np.log(-np.log(rng.random((n_out, n_in))))
        order = np.argsort(-keys, axis=1, kind="stable")
    take = np.arange(n_in)[None, :] < fan_in[:, None]
    mask = np.zeros((n_out, n_in), dtype=bool)
    rows = np.broadcast_to(np.arange(n_out)[:, None], (n_out, n_in))
    mask[rows[take], order[take]] = True
    return mask


def prior_mask(prior: str | Prior, n_out: int, n_in: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """The mask of one layer under ``prior``, with exactly ``budget`` edges.

    Parameters
    ----------
    prior : str or Prior
        ``"ws:k=K,p=P"`` / ``"ba:m=M"`` / ``"brf:r=R"`` or a parsed :class:`Prior`.
    n_out, n_in : int
        Layer shape.
    budget : int
        Exact number of edges of the result; the whole size gives a dense mask.
    rng : numpy.random.Generator
        All the model's randomness.

    Returns
    -------
    numpy.ndarray of bool, shape ``[out, in]``

    Raises
    ------
    TopoError
        For a bad prior or budget.

    Examples
    --------
    >>> import numpy as np
    >>> prior_mask("brf:r=0", 2, 4, 4, np.random.default_rng(0)).astype(int)
    array([[1, 1, 0, 0],
           [0, 0, 1, 1]])
    >>> int(prior_mask("ba:m=2", 5, 6, 12, np.random.default_rng(0)).sum())
    12
    >>> bool(prior_mask("ws", 2, 3, 6, np.random.default_rng(0)).all())  # a full budget is dense
    True
    """
    prior = parse_prior(prior)
    if budget == n_out * n_in:
        return np.ones((n_out, n_in), dtype=bool)
    if prior.name == "ws":
        return watts_strogatz_mask(n_out, n_in, budget, k=prior.params.get("k"), p=prior.params.get("p", 0.1), rng=rng)
    if prior.name == "brf":
        return receptive_field_mask(n_out, n_in, budget, r=prior.params.get("r", 0.3), rng=rng)
    return barabasi_albert_mask(n_out, n_in, budget, m=prior.params.get("m"), rng=rng)

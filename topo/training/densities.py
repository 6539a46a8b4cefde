"""How many weights each layer keeps: uniform and Erdős–Rényi-kernel (ERK) densities.

A network of layers with ``[out, in]`` shapes and a target sparsity ``s`` keeps
``B = round((1 - s) * total size)`` weights (rounded to the nearest integer, halves
up).  :func:`layer_budgets` splits ``B`` into exact integer counts per layer:

- ``"uniform"``: every layer gets the same density ``1 - s``.
- ``"erk"``: as RigL (Evci et al. 2020, "Rigging the Lottery") defines it for dense
  layers, layer ``l`` gets density ``eps * (n_in + n_out) / (n_in * n_out)``, with one
  scale ``eps`` solved so that the counts add up to ``B``; a layer whose density would
  exceed 1 becomes dense and ``eps`` is solved again over the others, until none does.

Layers fixed by ``density_map`` or ``dense_output`` take their share first; the rest
share what remains by the rule.  The real counts are rounded by largest remainder, so
they add up to ``B`` exactly, never exceed a layer's size, and give each layer at least
``n_out`` weights (one input per neuron) wherever the budget allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = ["DENSITY_RULES", "layer_budgets", "total_budget", "apportion", "check_shapes", "resolve_layer", "solve_scale"]

DENSITY_RULES = ("erk", "uniform")


def total_budget(total_size: int, sparsity: float) -> int:
    """Number of weights a network of ``total_size`` weights keeps at ``sparsity``.

    ``round((1 - sparsity) * total_size)``, rounded to the nearest integer with halves
    up; a tiny tolerance absorbs floating-point error (``(1 - 0.9) * 100`` is 10).

    Parameters
    ----------
    total_size : int
        Number of weight positions.
    sparsity : float
        Fraction of positions that are zero, in ``[0, 1)``.

    Returns
    -------
    int

    Raises
    ------
    TopoError
        For a sparsity outside ``[0, 1)``.

    Examples
    --------
    >>> total_budget(100, 0.9)
    10
    >>> total_budget(5, 0.5)  # 2.5 rounds up
    3
    """
    _check_sparsity(sparsity)
    exact = (1.0 - float(sparsity)) * int(total_size)
    return int(math.floor(exact + 0.5 + 1e-9))


def _check_sparsity(sparsity: float) -> None:
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise TopoError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    if not (0.0 <= value < 1.0):
        raise TopoError(f"sparsity must be in [0, 1), got {sparsity!r}")


def check_shapes(shapes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Layer shapes as a list of positive ``(out, in)`` int pairs.

    Parameters
    ----------
    shapes : sequence of pairs of int
        ``(out, in)`` of each layer.

    Returns
    -------
    list of (int, int)

    Raises
    ------
    TopoError
        If ``shapes`` is empty, not a sequence of pairs, or a size is below 1.

    Examples
    --------
    >>> check_shapes([[3, 4], (2, 3)])
    [(3, 4), (2, 3)]
    >>> check_shapes([(3, 0)])
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: layer 0: shape must be positive, got (3, 0)
    """
    checked = []
    try:
        items = list(shapes)
    except TypeError:
        raise TopoError(f"layer shapes must be a list of (out, in) pairs, got {shapes!r}") from None
    if not items:
        raise TopoError("no layers: layer shapes are empty")
    for index, shape in enumerate(items):
        try:
            out, inp = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise TopoError(f"layer {index}: shape must be an (out, in) pair, got {shape!r}") from None
        if out < 1 or inp < 1:
            raise TopoError(f"layer {index}: shape must be positive, got {tuple(shape)!r}")
        checked.append((out, inp))
    return checked


def resolve_layer(key, n_layers: int, names: list[str] | None, what: str) -> int:
    """Index of the layer a mapping key names (int index, negative allowed, or name).

    Parameters
    ----------
    key : int or str
        A layer index (negative counts from the end) or a layer name.
    n_layers : int
        The number of layers.
    names : list of str or None
        The layer names, if the layers have any.
    what : str
        The setting the key comes from, for messages (e.g. ``"density_map"``).

    Returns
    -------
    int
        The index in ``[0, n_layers)``.

    Raises
    ------
    TopoError
        For an index out of range, an unknown name, or a key of another type.

    Examples
    --------
    >>> resolve_layer(-1, 3, None, "density_map")
    2
    >>> resolve_layer("fc2", 3, ["fc1", "fc2", "fc3"], "density_map")
    1
    >>> resolve_layer("out", 3, ["fc1", "fc2", "fc3"], "density_map")
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: density_map: no layer named 'out' (layers: fc1, fc2, fc3)
    """
    if isinstance(key, (bool, np.bool_)):
        raise TopoError(f"{what}: layer key must be an index or a name, got {key!r}")
    if isinstance(key, (int, np.integer)):
        index = int(key)
        if not -n_layers <= index < n_layers:
            raise TopoError(f"{what}: layer index {index} out of range for {n_layers} layers")
        return index % n_layers
    if isinstance(key, str):
        if names is None:
            raise TopoError(f"{what}: layer {key!r} given by name but the layers have no names")
        if key not in names:
            raise TopoError(f"{what}: no layer named {key!r} (layers: {', '.join(names)})")
        return names.index(key)
    raise TopoError(f"{what}: layer key must be an index or a name, got {key!r}")


def solve_scale(weights: np.ndarray, total: float, lower: np.ndarray, upper: np.ndarray):
    """Real ``x = clip(c * weights, lower, upper)`` with ``sum(x) == total``.

    ``g(c) = sum(clip(c * w, lo, hi))`` is continuous, non-decreasing and piecewise
    linear in ``c``, with breakpoints ``lo / w`` and ``hi / w``.  A binary search over
    the sorted breakpoints (evaluating ``g`` directly, so that breakpoints many orders
    of magnitude apart lose no precision) finds the segment where ``g`` reaches
    ``total``; there the clipped entries are known and ``c`` is solved exactly.
    Entries with weight 0 sit at ``lower`` unless the others are all at ``upper`` and
    budget is left, in which case the left budget is spread over them evenly.

    Parameters
    ----------
    weights : numpy.ndarray of float
        Non-negative weights.
    total : float
        The sum to reach.
    lower, upper : numpy.ndarray of float
        Bounds per entry.

    Returns
    -------
    (numpy.ndarray of float64, float)
        The real ``x`` and the scale ``c`` (``inf`` in that last case).

    Examples
    --------
    The entry of weight 2 is capped at 3, so the other two share the 7 left:

    >>> import numpy as np
    >>> x, scale = solve_scale(np.array([1.0, 1.0, 2.0]), 10.0, np.zeros(3), np.array([10.0, 10.0, 3.0]))
    >>> x.tolist(), scale
    ([3.5, 3.5, 3.0], 7.0)
    """
    w = np.asarray(weights, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    top = w.max() if w.size else 0.0
    if top > 0:
        w = w / top
    # Weights this small would put their breakpoints beyond float range; they count as 0.
    positive = w > 1e-200
    base = lo.sum()
    reach = base + (hi[positive] - lo[positive]).sum()
    if total <= base:
        return lo.copy(), 0.0
    if total >= reach:
        # The weighted entries are all full; the rest share what remains, evenly.
        x = np.where(positive, hi, lo)
        rest = ~positive
        if total > reach and rest.any():
            x_rest, _ = solve_scale(np.ones(int(rest.sum())), total - hi[positive].sum(), lo[rest], hi[rest])
            x[rest] = x_rest
        return x, math.inf
    wp, lop, hip = w[positive], lo[positive], hi[positive]
    fixed_low = lo[~positive].sum()

    def filled(scale: float) -> float:
        return fixed_low + np.clip(scale * wp, lop, hip).sum()

    points = np.unique(np.concatenate([lop / wp, hip / wp]))
    # First breakpoint where g reaches the total; g(points[0]) == base < total.
    left, right = 0, len(points) - 1
    while right - left > 1:
        middle = (left + right) // 2
        if filled(points[middle]) >= total:
            right = middle
        else:
            left = middle
    probe = 0.5 * (points[left] + points[right])
    scaled = probe * wp
    at_low = scaled <= lop
    at_high = scaled >= hip
    active = ~(at_low | at_high)
    rest = total - fixed_low - lop[at_low].sum() - hip[at_high].sum()
    scale = rest / wp[active].sum()
    x = lo.copy()
    x[positive] = np.clip(scale * wp, lop, hip)
    return x, float(scale)


def apportion(weights, total: int, lower, upper) -> np.ndarray:
    """Split an integer ``total`` in proportion to ``weights``, within integer bounds.

    Real shares ``x_i = clip(c * weights_i, lower_i, upper_i)`` are found with one
    scale ``c`` such that they add up to ``total`` (clipped entries give their excess
    to the others), then rounded by largest remainder: every share is floored and the
    units left go to the largest fractional parts, ties to the lower index.  The result
    keeps the order of the real shares (a larger share never gets a smaller count).

    Parameters
    ----------
    weights : array_like of float
        Non-negative weights.
    total : int
        The integer total to split; ``sum(lower) <= total <= sum(upper)``.
    lower, upper : array_like of int
        Bounds per entry, ``lower <= upper``.

    Returns
    -------
    numpy.ndarray of int64
        Counts with ``sum == total`` and ``lower <= count <= upper``.

    Raises
    ------
    TopoError
        If ``total`` lies outside ``[sum(lower), sum(upper)]`` or a weight is negative.

    Examples
    --------
    Real shares 3.5, 3.5, 3 (the last capped); the unit left over goes to the first
    of the tied remainders:

    >>> apportion([1, 1, 2], 10, [0, 0, 0], [10, 10, 3]).tolist()
    [4, 3, 3]
    >>> apportion([1, 1], 30, [0, 0], [10, 10])
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: cannot split 30 within bounds that allow 0 to 20
    """
    w = np.asarray(weights, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.int64)
    hi = np.asarray(upper, dtype=np.int64)
    total = int(total)
    if w.ndim != 1 or lo.shape != w.shape or hi.shape != w.shape:
        raise TopoError("apportion: weights and bounds must be 1-D arrays of the same length")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise TopoError("apportion: weights must be finite and non-negative")
    if np.any(lo > hi):
        raise TopoError("apportion: a lower bound exceeds its upper bound")
    if not int(lo.sum()) <= total <= int(hi.sum()):
        raise TopoError(f"cannot split {total} within bounds that allow {int(lo.sum())} to {int(hi.sum())}")
    x, _ = solve_scale(w, float(total), lo, hi)
    counts = np.clip(np.floor(x + 1e-9).astype(np.int64), lo, hi)
    fraction = x - counts
    left = total - int(counts.sum())
    if left > 0:
        order = np.argsort(-fraction, kind="stable")
        order = order[counts[order] < hi[order]]
        while left > 0:  # one pass in exact arithmetic; more only to absorb float error
            take = order[:left]
            counts[take] += 1
            left -= len(take)
            order = order[counts[order] < hi[order]]
    elif left < 0:
        order = np.argsort(fraction, kind="stable")
        order = order[counts[order] > lo[order]]
        while left < 0:
            take = order[:-left]
            counts[take] -= 1
            left += len(take)
            order = order[counts[order] > lo[order]]
    return counts


def layer_budgets(
    shapes: Sequence[tuple[int, int]],
    sparsity: float,
    *,
    rule: str = "erk",
    density_map: Mapping[int | str, float] | None = None,
    dense_output: bool = False,
    names: Sequence[str] | None = None,
    kernel_sizes: Sequence[Sequence[int]] | None = None,
) -> list[int]:
    """Exact integer number of weights each layer keeps.

    Parameters
    ----------
    shapes : sequence of (int, int)
        ``(out, in)`` of each layer, in order.
    sparsity : float
        Fraction of all weights that are zero, in ``[0, 1)``.  The network keeps
        ``round((1 - sparsity) * sum(out * in))`` weights (nearest, halves up).
    rule : {"erk", "uniform"}
        How the free layers share the budget: ERK (RigL's Erdős–Rényi for dense
        layers: density proportional to ``(n_in + n_out) / (n_in * n_out)``, layers
        that would exceed density 1 made dense and the scale solved again), or the
        same density for every layer.
    density_map : mapping of int or str to float, optional
        Explicit densities in ``(0, 1]`` for some layers, keyed by index (negative
        counts from the end) or by name; each such layer keeps
        ``round(density * size)`` weights (at least 1), taken from the budget first.
    dense_output : bool
        Keep the last layer dense; its weights count against the budget, like RigL's
        dense layers.
    names : sequence of str, optional
        Layer names, for ``density_map`` keys and messages.
    kernel_sizes : sequence of sequences of int, optional
        For convolutions given as the matrix ``[out, in_channels * prod(kernel)]``,
        each layer's kernel dimensions (empty for a dense layer). ERK is then RigL's
        Erdős–Rényi-kernel: density ``eps * (n_in + n_out + sum(kernel)) /
        (n_in * n_out * prod(kernel))`` with ``n_in`` the input channels.

    Returns
    -------
    list of int
        Counts that add up to the budget exactly, each at most the layer's size and,
        wherever the budget allows, at least its ``out`` (one input per neuron; when it
        binds, the other free layers give up the difference).

    Raises
    ------
    TopoError
        For a sparsity outside ``[0, 1)``, an unknown rule, bad shapes, a
        ``density_map`` key or value out of range, or budgets that cannot be met
        (fixed layers that need more than the budget, or free layers that cannot hold
        what is left).

    Examples
    --------
    A 784-100-10 network at 90% sparsity keeps 7,940 weights; ERK gives the small
    output layer a larger share than the uniform rule:

    >>> shapes = [(100, 784), (10, 100)]
    >>> layer_budgets(shapes, 0.9), layer_budgets(shapes, 0.9, rule="uniform")
    ([7061, 879], [7840, 100])
    >>> layer_budgets(shapes, 0.9, dense_output=True)
    [6940, 1000]
    >>> layer_budgets(shapes, 0.9, density_map={"fc2": 0.5}, names=["fc1", "fc2"])
    [7440, 500]
    """
    layers = check_shapes(shapes)
    _check_sparsity(sparsity)
    if rule not in DENSITY_RULES:
        raise TopoError(f"unknown density rule {rule!r} (choose from {', '.join(DENSITY_RULES)})")
    n_layers = len(layers)
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != n_layers:
            raise TopoError(f"{len(names)} layer names given for {n_layers} layers")
    label = (lambda i: names[i]) if names is not None else (lambda i: f"layer {i}")
    outs = np.array([o for o, _ in layers], dtype=np.int64)
    ins = np.array([i for _, i in layers], dtype=np.int64)
    sizes = outs * ins
    total = int(sizes.sum())

    fixed: dict[int, int] = {}
    if density_map:
        for key, value in density_map.items():
            index = resolve_layer(key, n_layers, names, "density_map")
            try:
                density = float(value)
            except (TypeError, ValueError):
                raise TopoError(f"density_map: density of {label(index)} must be a number, got {value!r}") from None
            if not (0.0 < density <= 1.0):
                raise TopoError(f"density_map: density of {label(index)} must be in (0, 1], got {value!r}")
            if index in fixed:
                raise TopoError(f"density_map: {label(index)} is given twice")
            fixed[index] = max(1, int(math.floor(density * int(sizes[index]) + 0.5 + 1e-9)))
    if dense_output:
        last = n_layers - 1
        if last in fixed and fixed[last] != int(sizes[last]):
            raise TopoError(f"dense_output keeps {label(last)} dense but density_map gives it a density below 1")
        fixed[last] = int(sizes[last])

    if float(sparsity) == 0.0 and not fixed:
        return [int(s) for s in sizes]

    budget = total_budget(total, sparsity)
    fixed_total = sum(fixed.values())
    free = np.array([i for i in range(n_layers) if i not in fixed], dtype=np.int64)
    remaining = budget - fixed_total
    if free.size == 0:
        if remaining != 0:
            raise TopoError(
                f"every layer has a fixed density; they keep {fixed_total} weights, "
                f"but sparsity {sparsity} keeps {budget}"
            )
        return [fixed[i] for i in range(n_layers)]
    if remaining < 0:
        raise TopoError(
            f"fixed-density layers keep {fixed_total} weights, more than the {budget} "
            f"that sparsity {sparsity} allows"
        )
    free_sizes = sizes[free]
    if remaining > int(free_sizes.sum()):
        raise TopoError(
            f"the free layers can hold {int(free_sizes.sum())} weights, fewer than the "
            f"{remaining} left after the fixed-density layers"
        )

    if rule == "uniform":
        weights = free_sizes.astype(np.float64)
    else:
        # RigL's ERK: density = eps * (n_in + n_out) / (n_in * n_out), so the number of
        # weights is eps * (n_in + n_out).  Clipping at the layer size with one common
        # scale is the same as RigL's loop that makes the overflowing layers dense and
        # solves eps again: the scale only grows when a layer is made dense.
        erk = (ins + outs).astype(np.float64)
        if kernel_sizes is not None:
            if len(kernel_sizes) != n_layers:
                raise TopoError(f"{len(kernel_sizes)} kernel sizes given for {n_layers} layers")
            for index, kernel in enumerate(kernel_sizes):
                kernel = [int(k) for k in kernel]
                positions = int(np.prod(kernel)) if kernel else 1
                if kernel and (min(kernel) < 1 or ins[index] % positions):
                    raise TopoError(f"{label(index)}: {ins[index]} inputs are not channels x kernel {kernel}")
                erk[index] = ins[index] // positions + outs[index] + sum(kernel)
        weights = erk[free]
    lower = np.minimum(outs[free], free_sizes)
    if int(lower.sum()) > remaining:
        # Not every neuron can have an input: drop the floor rather than refuse.
        lower = np.zeros_like(lower)
    counts = apportion(weights, remaining, lower, free_sizes)
    result = [0] * n_layers
    for index, count in fixed.items():
        result[index] = int(count)
    for index, count in zip(free.tolist(), counts.tolist()):
        result[index] = int(count)
    return result

"""What an analysis may allocate, and how much work it may do, checked before it starts.

A network read within the readers' limits (:mod:`topo.formats._policy`) can still be
too large for an analysis whose cost grows faster than its number of connections: a
quadratic cost matrix on a layer of 10^7 neurons asks for hundreds of terabytes. Such
steps estimate what they need from the shapes and degrees first, and stop with one line
that says so (:class:`AnalysisTooLarge`, a TopoError) instead of allocating, swapping
or running for hours.

Two limits, read from the environment each time so that a user can raise them for one
command:

- ``TOPO_MAX_ANALYSIS_BYTES``: memory one step may allocate (default: half of this
  machine's physical memory, or 8 GiB where that cannot be read);
- ``TOPO_MAX_ANALYSIS_STEPS``: elementary operations one step may take (edge visits,
  sparse product terms; default 5 x 10^9, about a minute).
"""

from __future__ import annotations

import os

import numpy as np

from topo.errors import TopoError

__all__ = [
    "BYTES_VARIABLE",
    "STEPS_VARIABLE",
    "DEFAULT_STEPS",
    "AnalysisTooLarge",
    "max_bytes",
    "max_steps",
    "check_bytes",
    "check_steps",
    "human_bytes",
]

BYTES_VARIABLE = "TOPO_MAX_ANALYSIS_BYTES"
STEPS_VARIABLE = "TOPO_MAX_ANALYSIS_STEPS"
DEFAULT_STEPS = 5 * 10**9
_FALLBACK_BYTES = 8 * 1024**3


class AnalysisTooLarge(TopoError):
    """An analysis step would need more memory or time than its limit allows.

    Examples
    --------
    >>> try:
    ...     check_bytes(2**70, "an NNSTD cost matrix")
    ... except AnalysisTooLarge as error:
    ...     print(error)
    refused: an NNSTD cost matrix needs 1048576 PiB, more than the analysis memory limit of ... (raise TOPO_MAX_ANALYSIS_BYTES to allow it)
    """


def _from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise TopoError(f"environment variable {variable}={raw!r} is not an integer") from None
    if value <= 0:
        raise TopoError(f"environment variable {variable}={raw!r} must be positive")
    return value


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def max_bytes() -> int:
    """Memory one analysis step may allocate (``TOPO_MAX_ANALYSIS_BYTES``).

    Examples
    --------
    >>> max_bytes() > 0
    True
    """
    physical = _physical_memory()
    return _from_env(BYTES_VARIABLE, physical // 2 if physical else _FALLBACK_BYTES)


def max_steps() -> int:
    """Elementary operations one analysis step may take (``TOPO_MAX_ANALYSIS_STEPS``).

    Examples
    --------
    >>> max_steps() > 0
    True
    """
    return _from_env(STEPS_VARIABLE, DEFAULT_STEPS)


def human_bytes(n: float) -> str:
    """``n`` bytes as people read them (``728 TiB``, ``74.5 GiB``, ``512 B``).

    Examples
    --------
    >>> human_bytes(1536), human_bytes(3 * 2**30)
    ('1.5 KiB', '3 GiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} EiB"  # pragma: no cover


def check_bytes(nbytes: float, what: str, *, path: object | None = None, hint: str = "") -> None:
    """Raise :class:`AnalysisTooLarge` if ``what`` needs more than :func:`max_bytes`.

    Parameters
    ----------
    nbytes : float
        The estimate (may exceed what an int64 holds).
    what : str
        The step and what it allocates, e.g. ``"NNSTD of layer 'fc1' (10,000,000 x
        10,000,000 neurons): its cost matrix"``.
    path : optional
        The file the network came from, named at the start of the message.
    hint : str
        What the user can do instead, appended after a semicolon.

    Examples
    --------
    >>> check_bytes(1024, "a 16x16 cost matrix")  # within the limit: nothing happens
    >>> check_bytes(2**70, "an NNSTD cost matrix")
    Traceback (most recent call last):
        ...
    topo.analysis.budget.AnalysisTooLarge: refused: an NNSTD cost matrix needs 1048576 PiB, ...
    """
    limit = max_bytes()
    if nbytes > limit:
        extra = f"; {hint}" if hint else ""
        raise AnalysisTooLarge(
            f"refused: {what} needs {human_bytes(nbytes)}, more than the analysis memory limit of "
            f"{human_bytes(limit)} (raise {BYTES_VARIABLE} to allow it){extra}",
            path=path,
        )


def check_steps(steps: float, what: str, *, path: object | None = None, hint: str = "") -> None:
    """Raise :class:`AnalysisTooLarge` if ``what`` takes more than :func:`max_steps` operations.

    Examples
    --------
    >>> check_steps(1e30, "an assignment")
    Traceback (most recent call last):
        ...
    topo.analysis.budget.AnalysisTooLarge: refused: an assignment takes about 1e+30 operations, ...
    """
    limit = max_steps()
    if steps > limit:
        extra = f"; {hint}" if hint else ""
        raise AnalysisTooLarge(
            f"refused: {what} takes about {steps:.3g} operations, more than the analysis limit of "
            f"{limit:.3g} (raise {STEPS_VARIABLE} to allow it){extra}",
            path=path,
        )


#: bytes NNSTD holds per pair of neurons that share an input (indices, cost, tie-broken cost)
_PAIR_BYTES = 48
#: a priced pair costs about this many elementary operations (product term, assignment)
_PAIR_STEPS = 25


def check_nnstd(a, b, *, match_output: bool = True) -> None:
    """Refuse an NNSTD between ``a`` and ``b`` whose pairs of neurons would not fit.

    NNSTD prices, per layer, the pairs of output neurons that share an input (all
    other pairs cost exactly 1) and matches them on that sparse graph (small layers
    densely, at most 10^6 entries). A layer's overlapping pairs come from a sparse
    product whose terms are at most ``sqrt(sum c_a^2 * sum c_b^2)`` by Cauchy-Schwarz,
    ``c`` being the inputs' fan-outs (whatever order the previous layer's matching
    puts them in), and never more than ``out_a x out_b``. Called where NNSTD is asked
    for (``topo compare``, matched hub overlap) before it starts.

    Parameters
    ----------
    a, b : Topology
    match_output : bool
        False: the output layer is not matched, so not counted.

    Raises
    ------
    AnalysisTooLarge
        Naming the layer with the most pairs, what they need and the limit.
    """
    layers = list(zip(a, b))
    if not match_output and layers:
        layers = layers[:-1]
    if not layers:
        return
    pairs = []
    for layer_a, layer_b in layers:
        fan_out_a = layer_a.fan_out.astype(np.float64)
        fan_out_b = layer_b.fan_out.astype(np.float64)
        bound = float(np.sqrt(np.dot(fan_out_a, fan_out_a) * np.dot(fan_out_b, fan_out_b)))
        pairs.append(min(bound, float(layer_a.n_out) * float(layer_b.n_out)))
    worst = int(np.argmax(pairs))
    layer_a, layer_b = layers[worst]
    name = layer_a.name if layer_a.name == layer_b.name else f"{layer_a.name} / {layer_b.name}"
    what = (
        f"NNSTD of layer {name!r} ({layer_a.n_out:,} x {layer_b.n_out:,} neurons, "
        f"up to {pairs[worst]:.3g} pairs that share inputs)"
    )
    path = a.info.get("path")
    check_bytes(_PAIR_BYTES * pairs[worst], what, path=path)
    check_steps(_PAIR_STEPS * sum(pairs), f"NNSTD ({sum(pairs):.3g} pairs of neurons that share inputs)", path=path)

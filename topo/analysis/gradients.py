"""The gradient hierarchy: do high-fan-in neurons (hubs) receive larger gradients?

Training stores a per-neuron gradient statistic in every checkpoint,
``layer.stats["grad_mean"]``: the mean over an epoch's steps of the mean ``|dL/dW|``
over the neuron's incoming weights, taken over the *dense* gradient (all positions,
active or not). From it:

- :func:`gradient_concentration`: mean gradient of the hub neurons (the top 10% by
  fan-in) over a baseline, by either of two definitions (:data:`CONCENTRATION_BASELINES`):

  * ``against="rest"``: **hubs against the rest**, over the mean of the non-hub neurons;
  * ``against="all"``: **hubs against all**, over the mean of all neurons, hubs included
    (the default, what topo reported before both were named).

  Both are about 1 for random masks. With ``k`` hubs among ``n`` neurons they are tied:
  ``rest = (n - k) * all / (n - k * all)``; hubs against the rest is the larger whenever
  hubs exceed 1 and grows without bound as the hubs carry all the gradient, while hubs
  against all stops at ``n / k`` (10 for the top 10%). A hubs-against-all of 2.07 with
  the top 10% as hubs, for instance, is a hubs-against-the-rest of 2.35. The Profiled
  Sparse Networks paper reports "a 2-5x gradient concentration at hub neurons compared
  to the ~1x uniform distribution in random baselines"; only its abstract could be
  consulted here, which gives no formula, so which of the two it used is not established.
- :func:`hierarchy_strength`: Spearman rank correlation of fan-in with the gradient.
- :func:`cv_concentration_correlation`: across many networks, the Pearson correlation
  of a layer's fan-in CV with its gradient concentration.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Iterable

import numpy as np
from scipy import stats

from topo.analysis.degree import coefficient_of_variation
from topo.analysis.hubs import hub_indices
from topo.errors import TopoError
from topo.topology import Layer, Topology

__all__ = [
    "CONCENTRATION_BASELINES",
    "gradient_concentration",
    "hierarchy_strength",
    "cv_concentration_correlation",
    "layer_gradient_stat",
    "gradient_rows",
]

_NAN = float("nan")

#: what the hubs' mean gradient is divided by: the mean of the non-hub neurons ("rest") or of all
#: neurons, hubs included ("all")
CONCENTRATION_BASELINES = ("rest", "all")


def layer_gradient_stat(layer: Layer, stat: str = "grad_mean") -> np.ndarray:
    """The per-neuron statistic ``stat`` of ``layer`` as float64.

    Raises
    ------
    TopoError
        If the layer does not carry it (the checkpoint has no gradient statistics).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> layer = Layer.from_mask("fc1", np.ones((2, 2)), stats={"grad_mean": np.array([0.5, 0.25])})
    >>> layer_gradient_stat(layer).tolist()
    [0.5, 0.25]
    >>> layer_gradient_stat(Layer.from_mask("fc2", np.eye(2)))
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: layer 'fc2' has no 'grad_mean' statistic: the checkpoint has no gradient statistics (topo train writes them)
    """
    if stat not in layer.stats:
        have = f" (it has: {', '.join(sorted(layer.stats))})" if layer.stats else ""
        raise TopoError(
            f"layer {layer.name!r} has no {stat!r} statistic{have}: the checkpoint has no gradient "
            "statistics (topo train writes them)"
        )
    return np.asarray(layer.stats[stat], dtype=np.float64)


def gradient_concentration(layer: Layer, *, fraction: float = 0.1, stat: str = "grad_mean",
                           against: str = "all") -> float:
    """Mean gradient of the hub neurons over that of the rest of the layer, or of all of it.

    Parameters
    ----------
    layer : Layer
        A layer with the per-neuron statistic ``stat``.
    fraction : float
        Share of neurons counted as hubs: the top ``ceil(fraction * n)`` by fan-in (at
        least one), ties broken by lower index (:func:`topo.analysis.hubs.hub_indices`).
    stat : str
        The statistic's name.
    against : {"all", "rest"}
        The denominator. ``"all"`` (hubs against all): the mean over all neurons, hubs
        included; at most ``n / k`` with ``k`` hubs of ``n``. ``"rest"`` (hubs against the
        rest): the mean over the non-hub neurons; larger than "all" whenever hubs get more
        than the others.

    Returns
    -------
    float
        About 1 when gradients do not depend on fan-in; NaN when the layer has no
        neurons, when every neuron is a hub (``against="rest"``: no rest), or when the
        baseline mean is 0 (or not finite).

    Raises
    ------
    TopoError
        If the layer lacks ``stat``, ``fraction`` is not in ``(0, 1]`` or ``against``
        is not one of :data:`CONCENTRATION_BASELINES`.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    >>> layer = Layer.from_mask("fc1", mask, stats={"grad_mean": np.array([0.4, 0.2, 0.1])})
    >>> round(gradient_concentration(layer, fraction=0.3), 3)  # 0.4 over the mean 0.7 / 3
    1.714
    >>> round(gradient_concentration(layer, fraction=0.3, against="rest"), 3)  # 0.4 over 0.15
    2.667
    """
    if not 0 < float(fraction) <= 1:
        raise TopoError(f"hub fraction must be in (0, 1], got {fraction}")
    if against not in CONCENTRATION_BASELINES:
        raise TopoError(f"gradient concentration against {against!r}: choose from {', '.join(CONCENTRATION_BASELINES)}")
    grad = layer_gradient_stat(layer, stat)
    if grad.size == 0:
        return _NAN
    hubs = hub_indices(layer, fraction=float(fraction), rule="top")
    if against == "all":
        baseline = grad
    else:
        rest = np.ones(grad.size, dtype=bool)
        rest[hubs] = False
        baseline = grad[rest]
    if baseline.size == 0:
        return _NAN
    mean = float(baseline.mean())
    if not (math.isfinite(mean) and mean != 0):
        return _NAN
    return float(grad[hubs].mean() / mean)


def hierarchy_strength(layer: Layer, *, stat: str = "grad_mean") -> float:
    """Spearman rank correlation between fan-in and the gradient statistic.

    Returns
    -------
    float
        In ``[-1, 1]``; positive when higher-fan-in neurons get larger gradients. NaN
        when either is constant or there are fewer than 2 neurons.

    Raises
    ------
    TopoError
        If the layer lacks ``stat``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    >>> hierarchy_strength(Layer.from_mask("fc1", mask, stats={"grad_mean": np.array([0.4, 0.2, 0.1])}))
    1.0
    >>> hierarchy_strength(Layer.from_mask("fc1", mask, stats={"grad_mean": np.array([0.1, 0.2, 0.4])}))
    -1.0
    """
    grad = layer_gradient_stat(layer, stat)
    fan_in = layer.fan_in
    if grad.size < 2 or np.all(fan_in == fan_in[0]) or np.all(grad == grad[0]) or not np.all(np.isfinite(grad)):
        return _NAN
    return float(stats.spearmanr(fan_in, grad).statistic)


def _topologies(items: Iterable[Any], load: Callable[[Any], Topology] | None) -> list[Topology]:
    out = []
    for item in items:
        if isinstance(item, Topology):
            out.append(item)
        elif load is None:
            raise TopoError(
                f"{type(item).__name__} {str(item)!r} is not a Topology: give Topologies, or a load "
                "function that reads the others (e.g. topo.runs.load_topology)"
            )
        else:
            out.append(load(item))
    return out


def gradient_rows(
    topologies: Iterable[Any] | Topology,
    *,
    fraction: float = 0.1,
    stat: str = "grad_mean",
    load: Callable[[Any], Topology] | None = None,
) -> list[dict]:
    """Per (network, layer) with the statistic: ``network`` (index), ``layer``,
    ``fan_in_cv``, ``concentration_rest`` (hubs against the rest), ``concentration_all``
    (hubs against all; see :func:`gradient_concentration`), ``hierarchy``. Layers without
    the statistic are skipped.

    ``topologies`` are Topologies, or references that ``load`` turns into them (e.g.
    paths with :func:`topo.runs.load_topology`).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer, Topology
    >>> mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    >>> net = Topology([Layer.from_mask("fc1", mask, stats={"grad_mean": np.array([0.4, 0.2, 0.1])})])
    >>> row = gradient_rows(net, fraction=0.3)[0]
    >>> row["network"], row["layer"], round(row["fan_in_cv"], 3), round(row["concentration_rest"], 3), row["hierarchy"]
    (0, 'fc1', 0.535, 2.667, 1.0)
    """
    if isinstance(topologies, Topology):
        topologies = [topologies]
    rows = []
    for index, topology in enumerate(_topologies(topologies, load)):
        for layer in topology:
            if stat not in layer.stats:
                continue
            rows.append(
                {
                    "network": index,
                    "layer": layer.name,
                    "fan_in_cv": coefficient_of_variation(layer.fan_in),
                    "concentration_rest": gradient_concentration(layer, fraction=fraction, stat=stat, against="rest"),
                    "concentration_all": gradient_concentration(layer, fraction=fraction, stat=stat, against="all"),
                    "hierarchy": hierarchy_strength(layer, stat=stat),
                }
            )
    return rows


def cv_concentration_correlation(
    topologies: Iterable[Any],
    *,
    fraction: float = 0.1,
    stat: str = "grad_mean",
    load: Callable[[Any], Topology] | None = None,
    against: str = "all",
) -> float:
    """Pearson correlation of per-layer fan-in CV with gradient concentration.

    Every layer of every network that carries ``stat`` contributes one point
    ``(fan-in CV, gradient concentration)``; layers without it are skipped, as are
    points where either value is NaN.

    Parameters
    ----------
    topologies : iterable of Topology
        Networks, or references that ``load`` turns into them.
    fraction, stat, against
        As in :func:`gradient_concentration` (``against``: hubs against all neurons or
        against the rest).
    load : callable, optional
        ``load(item) -> Topology`` for items that are not Topologies, e.g.
        :func:`topo.runs.load_topology` for checkpoint paths.

    Returns
    -------
    float
        Pearson r; NaN with fewer than 3 points or when either value is constant.

    Raises
    ------
    TopoError
        If no layer of any network has the statistic.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer, Topology
    >>> def network(mask, grad_mean):
    ...     return Topology([Layer.from_mask("fc1", np.array(mask), stats={"grad_mean": np.array(grad_mean)})])
    >>> nets = [
    ...     network([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], [0.4, 0.2, 0.1]),
    ...     network([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], [0.3, 0.2, 0.1]),
    ...     network([[1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]], [0.6, 0.1, 0.1]),
    ... ]
    >>> round(cv_concentration_correlation(nets, fraction=0.3), 3)
    0.754
    """
    if against not in CONCENTRATION_BASELINES:
        raise TopoError(f"gradient concentration against {against!r}: choose from {', '.join(CONCENTRATION_BASELINES)}")
    rows = gradient_rows(topologies, fraction=fraction, stat=stat, load=load)
    if not rows:
        raise TopoError(
            f"no layer has the {stat!r} statistic: the checkpoints have no gradient statistics "
            "(topo train writes them)"
        )
    cv = np.array([r["fan_in_cv"] for r in rows], dtype=np.float64)
    conc = np.array([r[f"concentration_{against}"] for r in rows], dtype=np.float64)
    keep = np.isfinite(cv) & np.isfinite(conc)
    cv, conc = cv[keep], conc[keep]
    if cv.size < 3 or np.ptp(cv) == 0 or np.ptp(conc) == 0:
        return _NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.pearsonr(cv, conc).statistic)

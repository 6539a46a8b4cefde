"""Hub neurons: the neurons with the largest fan-in, and how they persist.

A layer's hubs are its output neurons with the most inputs, either the top fraction
(``rule="top"``) or those whose fan-in lies more than ``z`` standard deviations above
the layer's mean (``rule="z"``). Two networks' hubs are compared per layer by the
Jaccard index of the hub sets, either by neuron index (same neurons, e.g. checkpoints
of one run) or after matching the neurons with NNSTD (independently trained networks,
whose neurons carry no common labels).

Where a method removed neurons (no input and no output: SRigL's ablation, chain
removal), ``fraction`` is still a share of the layer's full width; a removed neuron has
fan-in 0 and so is a hub only when every neuron of the layer ties at 0.

Where every neuron of a layer has the same fan-in (a dense layer, or a method that
keeps fan-in constant) no neuron stands out: there is no hub set, only a tie broken by
index. The overlap and persistence of such a layer's hubs are undefined (NaN), not 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from topo.errors import TopoError
from topo.topology import Layer, Topology

__all__ = [
    "RULES",
    "LayerHubs",
    "fan_ins_tie",
    "hub_indices",
    "hub_listing",
    "hub_overlap",
    "hub_persistence",
    "jaccard",
]

#: Names accepted by ``rule``.
RULES = ("top", "z")


def fan_ins_tie(layer: Layer) -> bool:
    """True when every output neuron of the layer has the same fan-in, so that no hub set exists.

    Examples
    --------
    >>> import numpy as np
    >>> fan_ins_tie(Layer.from_mask("out", np.ones((10, 4)))), fan_ins_tie(Layer.from_mask("fc", np.tril(np.ones((4, 4)))))
    (True, False)
    """
    fan_in = layer.fan_in
    return fan_in.size > 0 and bool(np.all(fan_in == fan_in[0]))


def hub_indices(layer: Layer, *, fraction: float = 0.1, rule: str = "top", z: float = 2.0) -> np.ndarray:
    """The hub neurons of a layer, by fan-in.

    Parameters
    ----------
    layer : Layer
    fraction : float
        For ``rule="top"``: the share of output neurons that are hubs, in ``(0, 1]``;
        ``ceil(fraction * n_out)`` neurons, at least 1. Ties in fan-in go to the lower
        index.
    rule : {"top", "z"}
        ``"top"``: the ``fraction`` with the largest fan-in. ``"z"``: every neuron
        whose fan-in exceeds ``mean + z * std`` (population std); may be empty.
    z : float
        Threshold of ``rule="z"`` in standard deviations.

    Returns
    -------
    numpy.ndarray of int64
        Indices of the hubs, ascending.

    Raises
    ------
    TopoError
        If ``rule`` is unknown or ``fraction`` is outside ``(0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> layer = Layer.from_mask("fc1", np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]))
    >>> hub_indices(layer, fraction=0.3).tolist()
    [0]
    >>> hub_indices(layer, rule="z", z=1.0).tolist()
    [0]
    """
    fan_in = layer.fan_in
    n = fan_in.size
    if rule == "top":
        if not (0.0 < fraction <= 1.0):
            raise TopoError(f"hub fraction must be in (0, 1], got {fraction}")
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        # round first: 0.1 * 30 is 3.0000000000000004 in floating point, not above 3
        count = max(1, math.ceil(round(fraction * n, 9)))
        if count >= n:
            return np.arange(n, dtype=np.int64)
        # linear time (a wide layer has millions of neurons): everything above the
        # count-th largest fan-in, then the lowest indices among those equal to it --
        # the first ``count`` of a stable sort by decreasing fan-in
        threshold = np.partition(fan_in, n - count)[n - count]
        above = np.flatnonzero(fan_in > threshold)
        ties = np.flatnonzero(fan_in == threshold)[: count - above.size]
        return np.sort(np.concatenate([above, ties])).astype(np.int64)
    if rule == "z":
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        values = fan_in.astype(np.float64)
        threshold = values.mean() + float(z) * values.std()
        return np.flatnonzero(values > threshold).astype(np.int64)
    raise TopoError(f"unknown hub rule {rule!r}; known: {', '.join(RULES)}")


def jaccard(first: np.ndarray, second: np.ndarray) -> float:
    """``|A & B| / |A | B|`` of two index sets; NaN when both are empty.

    Examples
    --------
    >>> import numpy as np
    >>> round(jaccard(np.array([0, 1]), np.array([1, 2])), 3)
    0.333
    """
    first = np.unique(np.asarray(first))
    second = np.unique(np.asarray(second))
    union = np.union1d(first, second).size
    if union == 0:
        return float("nan")
    return np.intersect1d(first, second, assume_unique=True).size / union


def hub_overlap(
    a: Topology,
    b: Topology,
    *,
    matched: bool = False,
    fraction: float = 0.1,
    rule: str = "top",
    z: float = 2.0,
    match_output: bool = True,
    matchings: Sequence[np.ndarray] | None = None,
) -> list[float]:
    """Jaccard index of two networks' hub sets, per layer.

    Parameters
    ----------
    a, b : Topology
        Networks with the same number of layers.
    matched : bool
        False: compare hubs by neuron index. True: first map ``b``'s hubs into ``a``'s
        neurons through the NNSTD matchings (:func:`topo.analysis.distance.nnstd`),
        so a copy of ``a`` with its hidden neurons permuted overlaps fully.
    fraction, rule, z
        How hubs are chosen; see :func:`hub_indices`.
    match_output : bool
        Passed to ``nnstd`` when ``matched``: False keeps output neurons by index.
    matchings : sequence of numpy.ndarray, optional
        With ``matched``: the matchings of an NNSTD of ``a`` and ``b`` already
        computed with the same ``match_output`` (``NNSTDResult.matchings``), so that
        it is not computed twice.

    Returns
    -------
    list of float
        One Jaccard index per layer, in ``[0, 1]``; NaN where neither layer has a hub
        (possible with ``rule="z"``) and where either layer's fan-ins all tie
        (:func:`fan_ins_tie`: no hub set exists, e.g. a dense layer).

    Raises
    ------
    TopoError
        If the numbers of layers differ, the networks cannot be matched, or the hub
        rule is invalid.
    AnalysisTooLarge
        If ``matched`` and NNSTD's cost matrices would exceed the analysis memory
        limit (:mod:`topo.analysis.budget`); checked before anything is allocated.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    >>> a = Topology.from_masks([mask])
    >>> b = Topology.from_masks([mask[[1, 0, 2]]])  # the same network, outputs 0 and 1 swapped
    >>> hub_overlap(a, b, fraction=0.3)
    [0.0]
    >>> hub_overlap(a, b, fraction=0.3, matched=True)
    [1.0]
    """
    if len(a) != len(b):
        name_a = a.info.get("path") or "network 1"
        name_b = b.info.get("path") or "network 2"
        raise TopoError(f"cannot compare hubs: {name_a} has {len(a)} layers, {name_b} has {len(b)}")
    if not matched:
        matchings = None
    elif matchings is None:
        from topo.analysis.budget import check_nnstd
        from topo.analysis.distance import nnstd  # imports scipy.optimize: only when matching

        check_nnstd(a, b, match_output=match_output)
        matchings = nnstd(a, b, match_output=match_output).matchings
    elif len(matchings) != len(a):
        raise TopoError(f"{len(matchings)} matchings given for {len(a)} layers")
    overlaps = []
    for k, (layer_a, layer_b) in enumerate(zip(a, b)):
        if fan_ins_tie(layer_a) or fan_ins_tie(layer_b):
            overlaps.append(float("nan"))
            continue
        hubs_a = hub_indices(layer_a, fraction=fraction, rule=rule, z=z)
        hubs_b = hub_indices(layer_b, fraction=fraction, rule=rule, z=z)
        if matchings is not None:
            from topo.analysis.distance import labels_in_a

            hubs_b = labels_in_a(matchings[k], layer_b.n_out)[hubs_b]
        overlaps.append(jaccard(hubs_a, hubs_b))
    return overlaps


def hub_persistence(
    topologies: Sequence[Topology], *, fraction: float = 0.1, rule: str = "top", z: float = 2.0
) -> np.ndarray:
    """How much of each checkpoint's hub set survives to the last checkpoint.

    Parameters
    ----------
    topologies : sequence of Topology
        Checkpoints of one run, in training order (the same neurons throughout, so
        hubs are compared by index).
    fraction, rule, z
        How hubs are chosen; see :func:`hub_indices`.

    Returns
    -------
    numpy.ndarray of float64, shape ``(n_checkpoints, n_layers)``
        Row ``t``: the Jaccard index of checkpoint ``t``'s hubs with the last
        checkpoint's, per layer; the last row is 1 (NaN where a layer has no hub, or
        where either checkpoint's fan-ins all tie: :func:`fan_ins_tie`).

    Raises
    ------
    TopoError
        If no topology is given or their numbers of layers differ.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> early = Topology.from_masks([np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])])
    >>> late = Topology.from_masks([np.array([[0, 1, 0, 0], [1, 1, 1, 0], [0, 1, 0, 0]])])
    >>> hub_persistence([early, late], fraction=0.3).tolist()
    [[0.0], [1.0]]
    """
    topologies = list(topologies)
    if not topologies:
        raise TopoError("hub persistence needs at least one checkpoint")
    last = topologies[-1]
    final = [hub_indices(layer, fraction=fraction, rule=rule, z=z) for layer in last]
    result = np.empty((len(topologies), len(last)), dtype=np.float64)
    for t, topology in enumerate(topologies):
        if len(topology) != len(last):
            name = topology.info.get("path") or f"checkpoint {t}"
            last_name = last.info.get("path") or "the last checkpoint"
            raise TopoError(
                f"cannot follow hubs: {name} has {len(topology)} layers, {last_name} has {len(last)}"
            )
        for k, layer in enumerate(topology):
            if fan_ins_tie(layer) or fan_ins_tie(last[k]):
                result[t, k] = np.nan
                continue
            result[t, k] = jaccard(hub_indices(layer, fraction=fraction, rule=rule, z=z), final[k])
    return result


@dataclass(frozen=True)
class LayerHubs:
    """The hubs of one layer, strongest first.

    Attributes
    ----------
    name : str
    n_out : int
        The layer's neurons.
    n_hubs : int
        Its hubs (all of them, also when ``hubs`` lists fewer).
    fan_in_mean : float or None
        The layer's mean fan-in (None without neurons).
    hubs : list of dict
        ``{"neuron", "fan_in", "grad_mean"}`` per hub listed, by decreasing fan-in,
        ties in index order; ``grad_mean`` is None where training recorded none.
    cut : bool
        True when ``hubs`` lists fewer than ``n_hubs`` (a ``limit`` was reached).
    dense : bool
        Every connection of the layer is present.
    tied : bool
        Every neuron has the same fan-in (:func:`fan_ins_tie`): no hub set exists.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])], names=["fc1"])
    >>> hubs = hub_listing(net, fraction=0.3)[0]
    >>> hubs.name, hubs.n_out, hubs.n_hubs, hubs.hubs
    ('fc1', 3, 1, [{'neuron': 0, 'fan_in': 3, 'grad_mean': None}])
    """

    name: str
    n_out: int
    n_hubs: int
    fan_in_mean: float | None
    hubs: list[dict[str, Any]]
    cut: bool = False
    dense: bool = False
    tied: bool = False


def hub_listing(
    topology: Topology,
    *,
    fraction: float = 0.1,
    rule: str = "top",
    z: float = 2.0,
    limit: int | None = None,
    include_dense: bool = False,
) -> list[LayerHubs]:
    """Each layer's hubs, strongest first, with their fan-in and gradient statistic.

    Parameters
    ----------
    topology : Topology
    fraction, rule, z
        How hubs are chosen; see :func:`hub_indices`.
    limit : int, optional
        List at most this many hubs per layer (the strongest); ``n_hubs`` still counts
        them all.
    include_dense : bool
        Also list the "hubs" of dense layers: the rule's picks by index, since their
        fan-ins all tie. By default a dense layer lists none (``n_hubs`` 0). Other
        layers whose fan-ins all tie (constant fan-in) are listed, marked ``tied``.

    Returns
    -------
    list of LayerHubs
        One per layer, in order.

    Raises
    ------
    TopoError
        If the hub rule is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])])
    >>> [(h["neuron"], h["fan_in"]) for h in hub_listing(net, fraction=0.6)[0].hubs]
    [(0, 3), (1, 1)]
    """
    from topo.analysis.degree import is_dense

    listing = []
    for layer in topology:
        tied = fan_ins_tie(layer)
        dense = is_dense(layer)
        hubs = hub_indices(layer, fraction=fraction, rule=rule, z=z)
        if dense and not include_dense:
            hubs = hubs[:0]
        fan_in = layer.fan_in
        gradient = layer.stats.get("grad_mean")
        # strongest first; ties in index order (a sort in numpy: a wide layer has a million hubs)
        order = hubs[np.lexsort((hubs, -fan_in[hubs]))]
        cut = limit is not None and order.size > limit
        if cut:
            order = order[:limit]
        values = fan_in[order].tolist()
        gradients = [None] * order.size if gradient is None else np.asarray(gradient, dtype=np.float64)[order].tolist()
        listing.append(
            LayerHubs(
                name=layer.name,
                n_out=layer.n_out,
                n_hubs=int(hubs.size),
                fan_in_mean=float(fan_in.mean()) if fan_in.size else None,
                hubs=[{"neuron": i, "fan_in": f, "grad_mean": g} for i, f, g in zip(order.tolist(), values, gradients)],
                cut=bool(cut),
                dense=dense,
                tied=tied,
            )
        )
    return listing

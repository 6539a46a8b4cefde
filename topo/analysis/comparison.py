"""Two networks side by side, layer by layer, with a summary of the whole network.

:func:`compare_topologies` gathers what :mod:`~topo.analysis.degree`,
:mod:`~topo.analysis.hubs` and :mod:`~topo.analysis.distance` say about a pair of
networks: per layer the densities and fan-in CVs, the Jaccard overlap of the hub sets
(by neuron index and after NNSTD matching), the NNSTD layer distance and, where every
layer's shape agrees, the mask turnover; then one summary row for the network.

Dense layers say nothing about topology: their fan-ins tie (so hub overlap is
undefined, NaN), their CV is 0 and two dense layers of one shape are at NNSTD 0. The
summary row is therefore over the sparse layers unless ``include_dense=True``: the
mean CV of each network leaves out its own dense layers, and the hub overlaps, NNSTD
and mask turnover leave out the layers dense in both networks. Each row says which
side is dense (``dense_a``, ``dense_b``); the densities in the summary are always the
whole network's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from topo.topology import Topology

__all__ = ["Comparison", "compare_topologies", "finite_mean"]


def finite_mean(values: Iterable[float | None]) -> float:
    """The mean of the finite values; NaN when there are none.

    Examples
    --------
    >>> finite_mean([1.0, float("nan"), None, 3.0])
    2.0
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


@dataclass(frozen=True)
class Comparison:
    """Two networks compared layer by layer.

    Attributes
    ----------
    rows : list of dict
        One per layer: ``layer`` (the name, ``"a / b"`` where they differ),
        ``density_a``, ``density_b``, ``fan_in_cv_a``, ``fan_in_cv_b``,
        ``hub_overlap_index``, ``hub_overlap_matched``, ``nnstd`` (the layer distance),
        ``mask_turnover`` (None where shapes differ), ``active_a``, ``active_b``
        (``"present/width"`` neurons), ``dense_a``, ``dense_b`` (every connection
        present), ``hub_note`` (why the hub overlap is undefined, else None).
    overall : dict
        The network: overall densities, the mean CVs and hub overlaps over the sparse
        layers (see the module notes), the NNSTD over them, and their turnover weighted
        by the layers' edge counts.
    nnstd : float
        NNSTD from A to B (normalised by A).
    fraction : float
        The share of each layer's neurons that count as hubs.
    match_output : bool
        Whether output neurons were matched (else kept by index).
    same_shapes : bool
        Whether every layer's shape agrees (mask turnover is defined).
    shrunk : bool
        Whether a method removed neurons on either side (``active`` below the width).
    include_dense : bool
        Whether the summary row includes the dense layers.
    excluded : list of str
        The layers the summary row left out (dense in both networks).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    >>> result = compare_topologies(Topology.from_masks([mask]), Topology.from_masks([mask[[1, 0, 2]]]), fraction=0.3)
    >>> result.nnstd, result.same_shapes, result.shrunk
    (0.0, True, False)
    """

    rows: list[dict[str, Any]]
    overall: dict[str, Any]
    nnstd: float
    fraction: float
    match_output: bool
    same_shapes: bool
    shrunk: bool
    include_dense: bool = False
    excluded: list[str] = field(default_factory=list)


def compare_topologies(
    a: Topology, b: Topology, *, fraction: float = 0.1, match_output: bool = True, include_dense: bool = False
) -> Comparison:
    """Compare networks A and B layer by layer.

    Parameters
    ----------
    a, b : Topology
        Networks with the same number of layers.
    fraction : float
        The share of each layer's neurons, by fan-in, that count as hubs, in ``(0, 1]``.
    match_output : bool
        Match output neurons in NNSTD (False keeps them by index: classes have fixed
        identities).
    include_dense : bool
        Let the summary row average the dense layers in (see the module notes).

    Returns
    -------
    Comparison

    Raises
    ------
    TopoError
        If the networks cannot be matched or ``fraction`` is out of range.
    AnalysisTooLarge
        If NNSTD's cost matrices would exceed the analysis memory limit; checked before
        anything is allocated.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    >>> row = compare_topologies(Topology.from_masks([mask]), Topology.from_masks([mask[[1, 0, 2]]]), fraction=0.3).rows[0]
    >>> row["hub_overlap_index"], row["hub_overlap_matched"], row["nnstd"]
    (0.0, 1.0, 0.0)
    """
    from topo.analysis.budget import check_nnstd
    from topo.analysis.degree import fan_in_cv, is_dense, summary_layers
    from topo.analysis.distance import mask_turnover, nnstd
    from topo.analysis.hubs import fan_ins_tie, hub_overlap

    # NNSTD's cost matrices grow with the product of the widths: refuse before allocating
    check_nnstd(a, b, match_output=match_output)
    result = nnstd(a, b, match_output=match_output, include_dense=include_dense)
    by_index = hub_overlap(a, b, fraction=fraction)
    matched = hub_overlap(a, b, matched=True, fraction=fraction, match_output=match_output, matchings=result.matchings)
    cv_a, cv_b = fan_in_cv(a), fan_in_cv(b)
    same_shapes = all(la.shape == lb.shape for la, lb in zip(a, b))
    turnover = mask_turnover(a, b) if same_shapes else [None] * len(a)

    dense_a = [is_dense(layer) for layer in a]
    dense_b = [is_dense(layer) for layer in b]
    rows = []
    for k, (layer_a, layer_b) in enumerate(zip(a, b)):
        name = layer_a.name if layer_a.name == layer_b.name else f"{layer_a.name} / {layer_b.name}"
        wa, wb = result.active_widths[k]
        tied = [side for side, layer in (("A", layer_a), ("B", layer_b)) if fan_ins_tie(layer)]
        rows.append({
            "layer": name,
            "density_a": layer_a.density,
            "density_b": layer_b.density,
            "fan_in_cv_a": cv_a[k],
            "fan_in_cv_b": cv_b[k],
            "hub_overlap_index": by_index[k],
            "hub_overlap_matched": matched[k],
            "nnstd": result.layer_distances[k],
            "mask_turnover": turnover[k],
            "active_a": f"{wa}/{layer_a.n_out}",
            "active_b": f"{wb}/{layer_b.n_out}",
            "dense_a": dense_a[k],
            "dense_b": dense_b[k],
            "hub_note": (
                f"fan-ins tie across the whole layer in {' and '.join(tied)}: no hub set" if tied else None
            ),
        })
    # the pair's summary leaves out layers dense in both; each network's CV its own dense layers
    pair = summary_layers([da and db for da, db in zip(dense_a, dense_b)], include_dense=include_dense)
    own_a = summary_layers(dense_a, include_dense=include_dense)
    own_b = summary_layers(dense_b, include_dense=include_dense)
    overall_turnover = None
    if same_shapes:
        # weighted by the layers' edge counts: the share of all connections that differ
        weights = [a[k].nnz + b[k].nnz for k in pair]
        total = sum(weights)
        overall_turnover = (
            sum(float(t) * w for t, w in zip((turnover[k] for k in pair), weights) if t is not None) / total if total else 0.0
        )
    overall = {
        "layer": "overall",
        "density_a": a.density,
        "density_b": b.density,
        "fan_in_cv_a": finite_mean(cv_a[k] for k in own_a),
        "fan_in_cv_b": finite_mean(cv_b[k] for k in own_b),
        "hub_overlap_index": finite_mean(by_index[k] for k in pair),
        "hub_overlap_matched": finite_mean(matched[k] for k in pair),
        "nnstd": result.distance,
        "mask_turnover": overall_turnover,
    }
    shrunk = any(wa < la.n_out or wb < lb.n_out for (wa, wb), la, lb in zip(result.active_widths, a, b))
    return Comparison(
        rows=rows,
        overall=overall,
        nnstd=result.distance,
        fraction=fraction,
        match_output=match_output,
        same_shapes=same_shapes,
        shrunk=shrunk,
        include_dense=bool(include_dense),
        excluded=[str(rows[k]["layer"]) for k in range(len(rows)) if k not in set(pair)],
    )

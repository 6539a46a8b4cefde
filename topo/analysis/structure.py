"""Graph-theoretic structure features of a sparse network: one vector per checkpoint.

The features follow Stier, Darji and Granitzer (2021), who predict a sparse
network's performance from its structure alone.  Everything is read off the CSR
masks with numpy/scipy sparse products; igraph serves betweenness only.

The graph
---------
Nodes are neurons ``(node layer, neuron)`` as in :mod:`topo.graph`.  Layers chain
into *chains*: maximal runs of consecutive layers none of which stands alone
(:meth:`topo.Topology.starts_chain`).  A plain MLP is one chain.  A chain's first
node layer holds its *inputs*, its last node layer its *outputs*; every path from an
input to an output runs inside one chain, since a standalone layer has no edges to
its neighbours.  Network-wide path figures add up (or pool) the chains.

Path lengths
------------
Every edge joins consecutive node layers, so in a chain of ``L`` layers *every*
input-output path has exactly ``L`` edges: ``path_length_min`` and
``path_length_max`` are the shortest and longest chain that has at least one
input-output path (equal for a plain MLP, NaN when no chain has one).  What does vary
is ``reach_depth``: the number of layers the inputs' signal gets through, i.e. the
last node layer (counted from the chain's inputs) that some input reaches, maximised
over chains; it is below ``L`` exactly when some layer cuts every path.

Path counts
-----------
The number of input-output paths of a chain is ``1^T M_L ... M_1 1``, computed as
sparse matrix-vector products on a float64 vector that is rescaled to a maximum of 1
after every layer while the scale is accumulated as a log10 (log-space), so no
network overflows.  The feature ``paths`` is that count as a float64 (``inf`` beyond
about 1e308) and ``log10_paths`` is ``log10(1 + paths)``, computed in log space (0 when
there is no path, finite for any network); :func:`count_paths` with ``exact=True``
returns the exact Python integer.

Clustering and betweenness
--------------------------
A layered graph has no triangles (edges only join consecutive node layers), so its
ordinary clustering coefficient is 0 by construction.  ``square_clustering`` is the
bipartite clustering of Robins and Alexander (2004): ``4 * C4 / L3``, four-cycles
over paths of three edges, from ``trace(A^4)`` of the undirected adjacency ``A``
(a sparse product).  ``betweenness_*`` summarise the directed betweenness of the
hidden neurons (neither a chain's input nor its output), normalised by
``(n - 1)(n - 2)``; exact when the graph has at most ``betweenness_exact_max`` nodes,
otherwise estimated from ``betweenness_samples`` source nodes drawn with ``seed``
(scaled by ``n / samples``), an estimate that is not exactly invariant to relabelling.

All features are invariant to permuting the neurons of any hidden node layer (the
sampled betweenness estimate aside).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from topo.analysis.degree import is_dense, summary_layers
from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.topology import Layer, Topology

__all__ = [
    "FEATURES_VERSION",
    "GRAPH_METRICS_HINT",
    "LAYER_FEATURES",
    "NETWORK_FEATURES",
    "chains",
    "count_paths",
    "log10_path_count",
    "reachability",
    "spectral_radius",
    "square_clustering",
    "hidden_betweenness",
    "structure_features",
    "feature_table",
]

#: bumped when a feature's definition changes (caches keyed on it)
FEATURES_VERSION = 2  # 2: fan_in_cv_mean/max over the sparse layers

#: per-layer features, named ``"<layer>.<feature>"`` in :func:`structure_features`
LAYER_FEATURES = (
    "density",
    "fan_in_mean",
    "fan_in_std",
    "fan_in_cv",
    "fan_in_skew",
    "fan_in_max",
    "fan_out_mean",
    "fan_out_std",
    "fan_out_cv",
    "fan_out_max",
    "no_inputs",
    "no_outputs",
    "spectral_radius",
    "on_path_fraction",
)

#: whole-network features, in the order :func:`structure_features` lists them
NETWORK_FEATURES = (
    "n_layers",
    "n_chains",
    "n_neurons",
    "nnz",
    "density",
    "in_degree_mean",
    "in_degree_std",
    "in_degree_cv",
    "in_degree_skew",
    "out_degree_mean",
    "out_degree_std",
    "out_degree_cv",
    "out_degree_skew",
    "degree_mean",
    "degree_std",
    "degree_cv",
    "degree_skew",
    "fan_in_cv_mean",
    "fan_in_cv_max",
    "no_inputs",
    "no_outputs",
    "isolated",
    "paths",
    "log10_paths",
    "inputs_reaching_outputs",
    "outputs_reachable",
    "on_path_fraction",
    "path_length_min",
    "path_length_max",
    "reach_depth",
    "spectral_radius_max",
    "square_clustering",
    "betweenness_mean",
    "betweenness_max",
    "betweenness_cv",
)


# -- small helpers --------------------------------------------------------------------
def _moments(values: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, population std, CV (NaN at mean 0) and skewness (0 when std is 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        nan = float("nan")
        return nan, nan, nan, nan
    mean = float(values.mean())
    std = float(values.std())
    cv = std / mean if mean != 0 else float("nan")
    skew = float(np.mean((values - mean) ** 3) / std**3) if std > 0 else 0.0
    return mean, std, cv, skew


def chains(topology: Topology) -> list[list[int]]:
    """Layer indices of each chain: maximal runs of layers that chain to each other.

    Parameters
    ----------
    topology : Topology

    Returns
    -------
    list of list of int
        A plain MLP gives ``[[0, 1, ..., L-1]]``; a standalone layer is a chain of its own.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer, Topology
    >>> chains(Topology.from_masks([np.ones((3, 2)), np.ones((1, 3))]))
    [[0, 1]]
    >>> chains(Topology([Layer.from_mask("a", np.eye(2)), Layer.from_mask("b", np.ones((1, 5)), standalone=True)]))
    [[0], [1]]
    """
    result: list[list[int]] = []
    for index in range(len(topology)):
        if topology.starts_chain(index):
            result.append([index])
        else:
            result[-1].append(index)
    return result


def _float_mask(layer: Layer) -> sp.csr_matrix:
    mask = layer.mask
    return sp.csr_matrix((np.ones(mask.nnz), mask.indices, mask.indptr), shape=mask.shape)


# -- paths ----------------------------------------------------------------------------
def _chain_log10_paths(topology: Topology, chain: Sequence[int]) -> float:
    """log10 of the number of input-output paths of one chain (``-inf`` when none)."""
    vector = np.ones(topology[chain[0]].n_in, dtype=np.float64)
    log_scale = 0.0
    for index in chain:
        vector = _float_mask(topology[index]) @ vector
        peak = float(vector.max()) if vector.size else 0.0
        if peak == 0.0:
            return float("-inf")
        # rescale every layer so the vector never overflows; keep the scale as a log
        vector /= peak
        log_scale += math.log10(peak)
    return log_scale + math.log10(float(vector.sum()))


def log10_path_count(topology: Topology) -> float:
    """log10 of the number of input-output paths, summed over chains.

    Parameters
    ----------
    topology : Topology

    Returns
    -------
    float
        ``-inf`` when no input reaches an output of its chain.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> round(log10_path_count(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])])), 3)  # 4 paths
    0.602
    """
    logs = np.array([_chain_log10_paths(topology, chain) for chain in chains(topology)])
    finite = logs[np.isfinite(logs)]
    if finite.size == 0:
        return float("-inf")
    top = float(finite.max())
    return top + math.log10(float(np.sum(10.0 ** (finite - top))))


def _float_path_count(topology: Topology) -> float:
    """The path count in plain float64 (exact below 2**53), from the log-space count where that overflows."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for chain in chains(topology):
            vector = np.ones(topology[chain[0]].n_in, dtype=np.float64)
            for index in chain:
                vector = _float_mask(topology[index]) @ vector
            total += float(vector.sum())
    if math.isfinite(total):
        return total
    with np.errstate(over="ignore"):
        return float(np.power(10.0, log10_path_count(topology)))


def count_paths(topology: Topology, *, exact: bool = False) -> float | int:
    """Number of input-output paths (summed over chains), by sparse products.

    Parameters
    ----------
    topology : Topology
    exact : bool
        False: a float64 from the log-space count (``inf`` beyond about 1e308).
        True: the exact Python integer (object arithmetic; slower, for checks and
        small networks).

    Returns
    -------
    float or int

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])])
    >>> count_paths(net), count_paths(net, exact=True)
    (4.0, 4)
    """
    if not exact:
        return _float_path_count(topology)
    total = 0
    for chain in chains(topology):
        counts = [1] * topology[chain[0]].n_in
        for index in chain:
            mask = topology[index].mask
            indptr, indices = mask.indptr, mask.indices
            counts = [
                sum(counts[j] for j in indices[indptr[i] : indptr[i + 1]]) for i in range(mask.shape[0])
            ]
        total += sum(counts)
    return total


def _reach(topology: Topology, chain: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per node layer of a chain: reached from the inputs (forward) and reaching the outputs (backward)."""
    forward = [np.ones(topology[chain[0]].n_in, dtype=bool)]
    for index in chain:
        forward.append(np.asarray(_float_mask(topology[index]) @ forward[-1].astype(np.float64)) > 0)
    backward = [np.ones(topology[chain[-1]].n_out, dtype=bool)]
    for index in reversed(chain):
        backward.append(np.asarray(_float_mask(topology[index]).T @ backward[-1].astype(np.float64)) > 0)
    backward.reverse()
    return forward, backward


def reachability(topology: Topology) -> dict[str, float]:
    """Which inputs reach the outputs and which outputs the inputs reach.

    Parameters
    ----------
    topology : Topology

    Returns
    -------
    dict
        ``inputs_reaching_outputs``: share of the chains' input neurons with a path to
        some output of their chain; ``outputs_reachable``: share of the chains' output
        neurons reached from some input; ``on_path_fraction``: share of hidden neurons
        (all node layers between a chain's inputs and outputs) that lie on some
        input-output path (NaN without hidden neurons); ``reach_depth``: the most
        layers the inputs' signal gets through in any chain.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> reachability(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])]))
    {'inputs_reaching_outputs': 1.0, 'outputs_reachable': 1.0, 'on_path_fraction': 1.0, 'reach_depth': 2.0}
    """
    inputs = reaching = outputs = reached = hidden = on_path = 0
    depth = 0
    for chain in chains(topology):
        forward, backward = _reach(topology, chain)
        inputs += forward[0].size
        reaching += int(np.count_nonzero(backward[0]))
        outputs += backward[-1].size
        reached += int(np.count_nonzero(forward[-1]))
        for f, b in zip(forward[1:-1], backward[1:-1]):
            hidden += f.size
            on_path += int(np.count_nonzero(f & b))
        reached_layers = [k for k, f in enumerate(forward) if f.any()]
        depth = max(depth, max(reached_layers))
    return {
        "inputs_reaching_outputs": reaching / inputs if inputs else float("nan"),
        "outputs_reachable": reached / outputs if outputs else float("nan"),
        "on_path_fraction": on_path / hidden if hidden else float("nan"),
        "reach_depth": float(depth),
    }


# -- spectra and clustering -----------------------------------------------------------
#: layers with at most this many positions use a dense SVD (exact, and fast at that size)
_DENSE_SVD_MAX = 200_000
#: larger layers with at most this many neurons on one side use that side's Gram matrix
_GRAM_MAX = 256


def spectral_radius(layer: Layer) -> float:
    """Spectral radius of a layer's bipartite graph: the largest singular value of its 0/1 mask.

    The bipartite adjacency ``[[0, M], [M^T, 0]]`` has eigenvalues ``±`` the singular
    values of ``M``.  Small layers use a dense SVD; larger ones
    ``scipy.sparse.linalg.svds(k=1)`` from the all-ones start vector (deterministic; by
    Perron-Frobenius the leading singular vector of a nonnegative matrix is nonnegative).

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    float
        0 for a layer without connections.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> round(spectral_radius(Layer.from_mask("fc1", np.array([[1, 1, 0], [0, 1, 1]]))), 3)  # sqrt(3)
    1.732
    """
    if layer.nnz == 0:
        return 0.0
    mask = _float_mask(layer)
    if layer.size <= _DENSE_SVD_MAX or min(layer.shape) < 3:
        return float(np.linalg.norm(mask.toarray(), 2))
    if min(layer.shape) <= _GRAM_MAX:
        # a wide, flat layer (e.g. 10 x 10^7): the largest eigenvalue of the small Gram
        # matrix is the squared spectral radius, far cheaper than iterating on the long side
        gram = mask @ mask.T if mask.shape[0] <= mask.shape[1] else mask.T @ mask
        return float(math.sqrt(max(0.0, float(np.linalg.eigvalsh(gram.toarray())[-1]))))
    from scipy.sparse.linalg import svds

    values = svds(mask, k=1, v0=np.ones(min(mask.shape)), return_singular_vectors=False, random_state=0)
    return float(values[0])


def _undirected_adjacency(topology: Topology) -> sp.csr_matrix:
    widths = np.array(topology.widths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    rows, cols = [], []
    for layer, (in_slot, out_slot) in zip(topology, topology.node_slots):
        coo = layer.mask.tocoo()
        rows.append(coo.col.astype(np.int64) + offsets[in_slot])
        cols.append(coo.row.astype(np.int64) + offsets[out_slot])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    n = int(offsets[-1])
    data = np.ones(2 * r.size)
    return sp.csr_matrix((data, (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n))


def square_clustering(topology: Topology) -> float:
    """Robins-Alexander bipartite clustering of the undirected neuron graph: ``4 C4 / L3``.

    ``C4`` (four-cycles) comes from ``trace(A^4) = 8 C4 + 2 sum(d^2) - 2 m`` and ``L3``
    (paths of three edges; the layered graph has no triangles) from
    ``sum over edges (d_u - 1)(d_v - 1)``.

    ``trace(A^4) = ||A^2||_F^2`` is assembled from the layers' masks without forming
    ``A^2`` (which a layer of 10^7 inputs would make enormous): ``A^2`` has the blocks
    ``M_k M_k^T`` and ``M_k^T M_k`` (each layer's two Gram matrices, of equal Frobenius
    norm), and ``M_{k+1} M_k`` for consecutive layers (twice off the diagonal, and once
    as the cross term of a hidden node layer's diagonal block), so
    ``trace(A^4) = 2 sum_k ||G_k||_F^2 + 4 sum_k ||M_{k+1} M_k||_F^2`` with ``G_k`` the
    cheaper of a layer's two Gram matrices.

    Parameters
    ----------
    topology : Topology

    Returns
    -------
    float
        In ``[0, 1]``; NaN when the graph has no path of three edges.

    Raises
    ------
    AnalysisTooLarge
        When the sparse products would exceed the analysis memory or time limit
        (:mod:`topo.analysis.budget`); checked first.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> square_clustering(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])]))
    0.5
    """
    in_degree, out_degree, _, _ = _neuron_degrees(topology)
    degree = (in_degree + out_degree).astype(np.float64)
    _check_square_product(topology)
    offsets = np.concatenate([[0], np.cumsum(np.array(topology.widths, dtype=np.int64))])
    masks = [_float_mask(layer) for layer in topology]
    trace4 = 0.0
    paths3 = 0.0
    for index, (mask, (in_slot, out_slot)) in enumerate(zip(masks, topology.node_slots)):
        if mask.nnz == 0:
            continue
        row_terms, col_terms = _gram_terms(mask)
        gram = mask @ mask.T if col_terms <= row_terms else mask.T @ mask
        trace4 += 2.0 * float(np.sum(np.square(gram.data)))
        if index > 0 and not topology.starts_chain(index) and masks[index - 1].nnz:
            chained = mask @ masks[index - 1]
            trace4 += 4.0 * float(np.sum(np.square(chained.data)))
        coo = mask.tocoo()
        paths3 += float(
            np.sum((degree[coo.col + offsets[in_slot]] - 1.0) * (degree[coo.row + offsets[out_slot]] - 1.0))
        )
    n_edges = float(topology.nnz)
    cycles = (trace4 - 2.0 * float(np.sum(degree**2)) + 2.0 * n_edges) / 8.0
    return 4.0 * cycles / paths3 if paths3 > 0 else float("nan")


def _gram_terms(mask: sp.csr_matrix) -> tuple[float, float]:
    """Terms of the sparse products ``M^T M`` (sum of squared row counts) and ``M M^T``
    (sum of squared column counts)."""
    rows = np.diff(mask.indptr).astype(np.float64)
    cols = np.bincount(mask.indices, minlength=mask.shape[1]).astype(np.float64)
    return float(np.dot(rows, rows)), float(np.dot(cols, cols))


def _square_terms(topology: Topology) -> float:
    """Terms of all sparse products :func:`square_clustering` computes."""
    terms = 0.0
    for index, layer in enumerate(topology):
        terms += min(_gram_terms(layer.mask))
        if index > 0 and not topology.starts_chain(index):
            # M_{k+1} M_k: one term per (input of M_k, output of M_{k+1}) pair through a middle neuron
            terms += float(np.dot(topology[index - 1].fan_in.astype(np.float64), layer.fan_out.astype(np.float64)))
    return terms


#: bytes per term of a sparse product held at once (index, value and scipy's workspace; measured)
_PRODUCT_TERM_BYTES = 20
#: a sparse product term costs about this many edge visits of a breadth-first search (measured)
_PRODUCT_TERM_STEPS = 25
#: bytes igraph and topo's vertex attributes take per vertex and per edge (measured)
_GRAPH_VERTEX_BYTES = 200
_GRAPH_EDGE_BYTES = 100
#: the end of a refusal of the graph metrics: how to do without them (a command line that
#: has a flag for ``graph_metrics`` puts its flag here)
GRAPH_METRICS_HINT = "graph_metrics=False skips square clustering and betweenness"


def _check_square_product(topology: Topology) -> None:
    """Refuse square clustering when its sparse products' terms exceed the analysis limits."""
    from topo.analysis.budget import check_bytes, check_steps

    terms = _square_terms(topology)
    what = f"square clustering (sparse products of {terms:.3g} terms)"
    path = topology.info.get("path")
    check_bytes(_PRODUCT_TERM_BYTES * terms, what, path=path, hint=GRAPH_METRICS_HINT)
    check_steps(_PRODUCT_TERM_STEPS * terms, what, path=path, hint=GRAPH_METRICS_HINT)


def _check_betweenness(topology: Topology, n_sources: int) -> None:
    """Refuse betweenness whose graph or breadth-first searches exceed the analysis limits."""
    from topo.analysis.budget import check_bytes, check_steps

    n, edges = float(topology.n_neurons), float(topology.nnz)
    path = topology.info.get("path")
    check_bytes(
        _GRAPH_VERTEX_BYTES * n + _GRAPH_EDGE_BYTES * edges,
        f"betweenness (a graph of {n:.3g} neurons and {edges:.3g} connections)",
        path=path,
        hint=GRAPH_METRICS_HINT,
    )
    check_steps(
        n_sources * (n + edges),
        f"betweenness ({n_sources} breadth-first searches over {n:.3g} neurons and {edges:.3g} connections)",
        path=path,
        hint=GRAPH_METRICS_HINT,
    )


def _hidden_vertices(topology: Topology) -> np.ndarray:
    """Global vertex ids of the neurons that are neither a chain's input nor its output."""
    widths = np.array(topology.widths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    slots = topology.node_slots
    hidden: list[np.ndarray] = []
    for chain in chains(topology):
        for index in chain[:-1]:
            out_slot = slots[index][1]
            hidden.append(np.arange(offsets[out_slot], offsets[out_slot + 1]))
    return np.concatenate(hidden) if hidden else np.empty(0, dtype=np.int64)


def hidden_betweenness(
    topology: Topology, *, exact_max: int = 3000, samples: int = 256, seed: int = 0
) -> np.ndarray:
    """Directed betweenness of every hidden neuron, normalised by ``(n - 1)(n - 2)``.

    Parameters
    ----------
    topology : Topology
    exact_max : int
        Graphs with at most this many nodes get exact betweenness (igraph, Brandes).
    samples : int
        Otherwise, the number of source nodes drawn with ``seed``; the estimate is
        scaled by ``n / samples``.
    seed : int
        Seed of the source sample.

    Returns
    -------
    numpy.ndarray of float64
        One value per hidden neuron, node layer by node layer (empty without hidden
        neurons).

    Raises
    ------
    AnalysisTooLarge
        When the graph or the breadth-first searches (one per source) would exceed
        the analysis memory or time limit (:mod:`topo.analysis.budget`); checked first.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> hidden_betweenness(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])])).round(3).tolist()
    [0.075, 0.075]
    """
    hidden = _hidden_vertices(topology)
    if hidden.size == 0:
        return np.empty(0)
    n_nodes = topology.n_neurons
    _check_betweenness(topology, n_nodes if n_nodes <= exact_max or samples >= n_nodes else int(samples))
    from topo.graph import to_igraph

    graph = to_igraph(topology, weights=False)
    n = graph.vcount()
    if n <= exact_max or samples >= n:
        values = np.asarray(graph.betweenness(vertices=hidden.tolist(), directed=True), dtype=np.float64)
    else:
        rng = np.random.default_rng(seed)
        sources = np.sort(rng.choice(n, size=int(samples), replace=False))
        values = np.asarray(
            graph.betweenness(vertices=hidden.tolist(), directed=True, sources=sources.tolist(), targets=None),
            dtype=np.float64,
        ) * (n / samples)
    scale = (n - 1) * (n - 2)
    return values / scale if scale > 0 else values


# -- the feature vector ---------------------------------------------------------------
def _neuron_degrees(topology: Topology) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """In- and out-degree of every neuron, and which neurons have an incoming / outgoing layer."""
    widths = topology.widths
    in_degree = [np.zeros(w, dtype=np.int64) for w in widths]
    out_degree = [np.zeros(w, dtype=np.int64) for w in widths]
    has_in = [False] * len(widths)
    has_out = [False] * len(widths)
    for layer, (in_slot, out_slot) in zip(topology, topology.node_slots):
        in_degree[out_slot] += layer.fan_in
        out_degree[in_slot] += layer.fan_out
        has_in[out_slot] = True
        has_out[in_slot] = True
    has_in_mask = np.concatenate([np.full(w, h) for w, h in zip(widths, has_in)])
    has_out_mask = np.concatenate([np.full(w, h) for w, h in zip(widths, has_out)])
    return np.concatenate(in_degree), np.concatenate(out_degree), has_in_mask, has_out_mask


def structure_features(
    topology: Topology,
    *,
    graph_metrics: bool = True,
    betweenness_exact_max: int = 3000,
    betweenness_samples: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """One feature vector of a network's structure.

    Parameters
    ----------
    topology : Topology
        Masks are all that is read.
    graph_metrics : bool
        Compute ``square_clustering`` and ``betweenness_*`` (the costly ones); NaN
        when False.
    betweenness_exact_max, betweenness_samples, seed
        See :func:`hidden_betweenness`.

    Returns
    -------
    dict of str to float
        Whole-network features (:data:`NETWORK_FEATURES`) first, then
        ``"<layer>.<feature>"`` for every layer and :data:`LAYER_FEATURES`.  Degree
        features: fan-in/out moments per layer; ``in_degree_*`` over neurons that some
        layer feeds, ``out_degree_*`` over neurons that feed some layer, ``degree_*``
        (in + out) over all neurons.  ``no_inputs`` counts neurons that some layer
        feeds but that have no input; ``no_outputs`` neurons that feed some layer but
        have no output; ``isolated`` neurons with no edge at all.
        ``fan_in_cv_mean`` and ``fan_in_cv_max`` are over the sparse layers (over
        every layer when all are dense).  The rest is described in the module
        docstring.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> features = structure_features(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])]))
    >>> features["n_layers"], features["nnz"], features["paths"], features["layer0.density"]
    (2.0, 6.0, 4.0, 0.667)
    """
    features: dict[str, float] = {}
    in_degree, out_degree, has_in, has_out = _neuron_degrees(topology)
    if graph_metrics:
        # the costly steps say at once whether they fit, before any other work is done
        _check_square_product(topology)
        n_nodes = topology.n_neurons
        exact = n_nodes <= betweenness_exact_max or betweenness_samples >= n_nodes
        if _hidden_vertices(topology).size:
            _check_betweenness(topology, n_nodes if exact else int(betweenness_samples))
    features["n_layers"] = float(len(topology))
    chain_list = chains(topology)
    features["n_chains"] = float(len(chain_list))
    features["n_neurons"] = float(topology.n_neurons)
    features["nnz"] = float(topology.nnz)
    features["density"] = float(topology.density)
    for prefix, values in (
        ("in_degree", in_degree[has_in]),
        ("out_degree", out_degree[has_out]),
        ("degree", in_degree + out_degree),
    ):
        mean, std, cv, skew = _moments(values)
        features[f"{prefix}_mean"] = mean
        features[f"{prefix}_std"] = std
        features[f"{prefix}_cv"] = cv
        features[f"{prefix}_skew"] = skew
    # over the sparse layers: a dense layer's CV is 0 by construction and would pull the mean down
    kept = summary_layers([is_dense(layer) for layer in topology])
    layer_cvs = np.array([_moments(topology[i].fan_in)[2] for i in kept])
    finite_cvs = layer_cvs[np.isfinite(layer_cvs)]
    features["fan_in_cv_mean"] = float(finite_cvs.mean()) if finite_cvs.size else float("nan")
    features["fan_in_cv_max"] = float(finite_cvs.max()) if finite_cvs.size else float("nan")
    features["no_inputs"] = float(np.count_nonzero(has_in & (in_degree == 0)))
    features["no_outputs"] = float(np.count_nonzero(has_out & (out_degree == 0)))
    features["isolated"] = float(np.count_nonzero((in_degree + out_degree) == 0))

    log_paths = log10_path_count(topology)
    features["paths"] = _float_path_count(topology)
    # log10(paths + 1) keeps networks without any path finite (0) and ordered
    features["log10_paths"] = 0.0 if log_paths == float("-inf") else float(np.logaddexp(log_paths * math.log(10), 0.0) / math.log(10))

    # per chain: reachability and which node layers lie on input-output paths
    per_layer_on_path: dict[int, float] = {}
    lengths = []
    for chain in chain_list:
        forward, backward = _reach(topology, chain)
        if backward[0].any():
            lengths.append(len(chain))
        for position, index in enumerate(chain):
            f, b = forward[position + 1], backward[position + 1]
            per_layer_on_path[index] = float(np.count_nonzero(f & b) / f.size) if f.size else float("nan")
    features.update(reachability(topology))
    features["path_length_min"] = float(min(lengths)) if lengths else float("nan")
    features["path_length_max"] = float(max(lengths)) if lengths else float("nan")

    radii = [spectral_radius(layer) for layer in topology]
    features["spectral_radius_max"] = float(max(radii))
    if graph_metrics:
        features["square_clustering"] = square_clustering(topology)
        betweenness = hidden_betweenness(
            topology, exact_max=betweenness_exact_max, samples=betweenness_samples, seed=seed
        )
        mean, _, cv, _ = _moments(betweenness)
        features["betweenness_mean"] = mean
        features["betweenness_max"] = float(betweenness.max()) if betweenness.size else float("nan")
        features["betweenness_cv"] = cv
    else:
        for name in ("square_clustering", "betweenness_mean", "betweenness_max", "betweenness_cv"):
            features[name] = float("nan")
    ordered = {name: features[name] for name in NETWORK_FEATURES}

    for index, (layer, radius) in enumerate(zip(topology, radii)):
        fan_in = layer.fan_in
        fan_out = layer.fan_out
        in_mean, in_std, in_cv, in_skew = _moments(fan_in)
        out_mean, out_std, out_cv, _ = _moments(fan_out)
        values = {
            "density": layer.density,
            "fan_in_mean": in_mean,
            "fan_in_std": in_std,
            "fan_in_cv": in_cv,
            "fan_in_skew": in_skew,
            "fan_in_max": float(fan_in.max()) if fan_in.size else float("nan"),
            "fan_out_mean": out_mean,
            "fan_out_std": out_std,
            "fan_out_cv": out_cv,
            "fan_out_max": float(fan_out.max()) if fan_out.size else float("nan"),
            "no_inputs": float(np.count_nonzero(fan_in == 0)),
            "no_outputs": float(np.count_nonzero(fan_out == 0)),
            "spectral_radius": radius,
            "on_path_fraction": per_layer_on_path[index],
        }
        for name in LAYER_FEATURES:
            ordered[f"{layer.name}.{name}"] = float(values[name])
    return ordered


def _features_of_item(job: tuple[Any, Callable[[Any], Topology] | None, Mapping[str, Any]]) -> dict[str, float]:
    """One item of :func:`feature_table` (module level so that processes can run it)."""
    item, load, options = job
    if isinstance(item, Topology):
        return structure_features(item, **options)
    if load is None:
        raise TopoError(
            f"{type(item).__name__} {str(item)!r} is not a Topology: give Topologies, or a load "
            "function that reads the others (e.g. topo.runs.load_topology)"
        )
    return structure_features(load(item), **options)


def feature_table(
    items: Sequence[Any],
    *,
    load: Callable[[Any], Topology] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> list[dict[str, float]]:
    """:func:`structure_features` of many networks, in order.

    Parameters
    ----------
    items : sequence
        Topologies, or references to networks (e.g. checkpoint paths) that ``load``
        reads.
    load : callable, optional
        ``load(item) -> Topology`` for the items that are not Topologies, called where
        the item is computed; :func:`topo.runs.load_topology` reads checkpoints and run
        folders without weights.
    workers, scheduler
        Where the jobs run (:func:`topo.parallel.map_jobs`); only references travel to
        other processes, so topologies are computed here.
    progress : callable, optional
        ``progress(done, total)``.
    **options
        Passed to :func:`structure_features`.

    Returns
    -------
    list of dict

    Raises
    ------
    TopoError
        If an item is not a Topology and no ``load`` is given, or ``load`` fails.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> nets = [Topology.from_masks([np.ones((2, 3)), np.ones((1, 2))]), Topology.from_masks([np.eye(2), np.ones((1, 2))])]
    >>> [row["paths"] for row in feature_table(nets)]
    [6.0, 2.0]
    """
    items = list(items)
    if all(isinstance(item, Topology) for item in items) or (workers == 1 and scheduler is None):
        results = []
        total = len(items)
        if progress:
            progress(0, total)
        for done, item in enumerate(items, start=1):
            results.append(_features_of_item((item, load, options)))
            if progress:
                progress(done, total)
        return results
    if any(isinstance(item, Topology) for item in items):
        raise TopoError("feature_table: with workers or a scheduler, give references (paths) rather than Topology objects")
    from topo.parallel import map_jobs

    return map_jobs(
        _features_of_item, [(item, load, dict(options)) for item in items], workers=workers, scheduler=scheduler, progress=progress
    )

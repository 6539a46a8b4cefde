"""Distances between the topologies of two sparse networks.

:func:`nnstd` is the Neural Network Sparse Topology Distance of Liu et al.
("Topological Insights into Sparse Neural Networks", ECML-PKDD 2020), computed the
way their published code computes it:

1. Every neuron is the set of its inputs. Two neurons with input sets ``a`` and
   ``b`` are ``(|a| + |b| - 2|a & b|) / |a | b|`` apart (float64, in exactly that
   arithmetic), 0 when both sets are empty and 1 when they share no input.
2. Layer by layer, the neurons of network 1 (rows) are matched to those of network 2
   (columns) by an optimal assignment (:func:`scipy.optimize.linear_sum_assignment`)
   of that cost matrix; the layer's distance is the matched cost over network 1's
   number of neurons.
3. The match propagates: before layer ``k+1`` is compared, network 2's inputs to it
   are relabelled by the match of layer ``k``, so input ``j`` of network 2 becomes the
   neuron of network 2 that was matched to network 1's neuron ``j``. The network's
   own inputs are never permuted.
4. NNSTD is the mean of the layer distances.

The arithmetic of step 1 matters: the optimal assignment usually has ties, and another
formula that is equal on paper (``1 - |a & b| / |a | b|``) rounds differently, makes
``linear_sum_assignment`` pick another optimal matching and so changes every later
layer. All intersections of a layer come from one sparse matrix product.

:func:`mask_turnover` is the simpler share of connections that differ between two
masks of the same shapes, with no matching.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence, Union

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from topo.errors import TopoError
from topo.topology import Layer, Topology

__all__ = ["NNSTDResult", "nnstd", "nnstd_matrix", "mask_turnover", "layer_cost_matrix"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class NNSTDResult:
    """The outcome of :func:`nnstd`.

    Attributes
    ----------
    distance : float
        NNSTD: the mean of ``layer_distances``, in ``[0, 1]``.
    layer_distances : list of float
        Per layer: the matched cost over network 1's number of output neurons.
    matchings : list of numpy.ndarray
        ``matchings[k][i]`` is the output neuron of network 2 matched to output neuron
        ``i`` of network 1 in layer ``k`` (int64, length network 1's width); ``-1``
        where network 1 is wider and neuron ``i`` has no partner.
    active_widths : list of (int, int)
        Per layer, the output neurons present in network 1 and in network 2 (with an
        input or an output; :func:`topo.analysis.exploration.present_neurons`). Where
        a method removed neurons these are below the widths: a removed neuron is an
        empty input set, 0 apart from another removed neuron and 1 from any present
        one, and the layer distance still divides by network 1's full width.
    """

    distance: float
    layer_distances: list[float] = field(default_factory=list)
    matchings: list[np.ndarray] = field(default_factory=list)
    active_widths: list[tuple[int, int]] = field(default_factory=list)


# -- one layer -----------------------------------------------------------------------
def _as_int_csr(mask: sp.csr_matrix, n_cols: int | None = None) -> sp.csr_matrix:
    """The mask as an int32 CSR matrix (so that products count), optionally widened."""
    n_rows, width = mask.shape
    data = np.ones(mask.indices.size, dtype=np.int32)
    return sp.csr_matrix(
        (data, mask.indices, mask.indptr), shape=(n_rows, width if n_cols is None else n_cols)
    )


def layer_cost_matrix(mask_a: sp.spmatrix, mask_b: sp.spmatrix) -> np.ndarray:
    """NNSTD's neuron-to-neuron cost matrix of two masks with the same inputs.

    Parameters
    ----------
    mask_a, mask_b : scipy.sparse matrix
        Masks ``[out_a, in]`` and ``[out_b, in]`` (nonzero means connected); the
        inputs (columns) must already be labelled alike.

    Returns
    -------
    numpy.ndarray of float64, shape ``(out_a, out_b)``
        ``(|a| + |b| - 2|a & b|) / |a | b|`` for every pair of neurons; 0 where both
        have no input, exactly 1 where they share no input.

    Raises
    ------
    TopoError
        If the masks have different numbers of inputs.
    """
    a = sp.csr_matrix(mask_a)
    b = sp.csr_matrix(mask_b)
    if a.shape[1] != b.shape[1]:
        raise TopoError(f"masks have {a.shape[1]} and {b.shape[1]} inputs; cannot compare their neurons")
    a.eliminate_zeros()
    b.eliminate_zeros()
    a.sort_indices()
    b.sort_indices()
    return _cost_matrix(_as_int_csr(a), _as_int_csr(b))


_scratch = threading.local()


def _scratch_matrix(n_rows: int, n_cols: int) -> np.ndarray:
    """A C-contiguous float64 ``(n_rows, n_cols)`` view of a buffer this thread reuses.

    A fresh 5 MB matrix per layer costs more in page faults than filling it; the
    cost matrix is dead once its layer is matched, so one buffer serves every layer.
    """
    size = n_rows * n_cols
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=np.float64)
        _scratch.buffer = buffer
    return buffer[:size].reshape(n_rows, n_cols)


def _cost_matrix(a: sp.csr_matrix, b: sp.csr_matrix, *, reuse: bool = False) -> np.ndarray:
    """Cost matrix of int32 CSR masks with equal column counts (see :func:`layer_cost_matrix`).

    With ``reuse`` the matrix lives in this thread's scratch buffer and is overwritten
    by the next call.
    """
    size_a = np.diff(a.indptr).astype(np.int64)
    size_b = np.diff(b.indptr).astype(np.int64)
    shape = (a.shape[0], b.shape[0])
    cost = _scratch_matrix(*shape) if reuse else np.empty(shape, dtype=np.float64)
    # Pairs that share no input cost (|a|+|b|)/(|a|+|b|) == 1.0 exactly, so only the
    # nonzero intersections of the one product need the formula.
    cost.fill(1.0)
    shared = (a @ b.T).tocoo()
    rows, cols = shared.row, shared.col
    both = shared.data.astype(np.int64)
    total = size_a[rows] + size_b[cols]
    cost[rows, cols] = (total - 2 * both) / (total - both)
    empty_a = np.flatnonzero(size_a == 0)
    empty_b = np.flatnonzero(size_b == 0)
    if empty_a.size and empty_b.size:
        cost[np.ix_(empty_a, empty_b)] = 0.0
    return cost


def _match(cost: np.ndarray, optimal: bool) -> tuple[float, np.ndarray]:
    """Matched cost (unmatched rows count 1 each) and ``match[i]`` = column of row ``i`` or -1."""
    n_a, n_b = cost.shape
    match = np.full(n_a, -1, dtype=np.int64)
    if optimal:
        rows, cols = linear_sum_assignment(cost)
    else:
        rows = cols = np.arange(min(n_a, n_b))
    match[rows] = cols
    total = float(cost[rows, cols].sum()) + float(n_a - rows.size)
    return total, match


def _labels_in_a(match: np.ndarray, width_b: int) -> np.ndarray:
    """For each neuron of network 2, its label in network 1's index space.

    ``match[i]`` is network 2's neuron matched to network 1's neuron ``i`` (-1: none);
    that neuron gets label ``i``. Network 2's neurons without a partner (network 2
    wider) keep their relative order as labels ``n_1, n_1 + 1, ...``, which no neuron
    of network 1 has.
    """
    label = np.full(width_b, -1, dtype=np.int64)
    matched = match >= 0
    label[match[matched]] = np.flatnonzero(matched)
    spare = np.flatnonzero(label < 0)
    label[spare] = match.size + np.arange(spare.size)
    return label


def _relabel_inputs(mask_b: sp.csr_matrix, match: np.ndarray, width: int) -> sp.csr_matrix:
    """Network 2's next layer with its inputs renamed into network 1's neuron indices.

    Input ``j`` becomes the neuron of network 2 matched to network 1's neuron ``j``;
    network 2's unmatched neurons become extra inputs past network 1's width, so they
    count in ``|b|`` but never in an intersection (see :func:`_labels_in_a`).
    """
    label = _labels_in_a(match, mask_b.shape[1])
    data = np.ones(mask_b.indices.size, dtype=np.int32)
    return sp.csr_matrix((data, label[mask_b.indices], mask_b.indptr), shape=(mask_b.shape[0], width))


def _name(topology: Topology, fallback: str) -> str:
    path = topology.info.get("path")
    return f"{path!s}" if path else fallback


def _check_comparable(a: Topology, b: Topology) -> None:
    name_a, name_b = _name(a, "network 1"), _name(b, "network 2")
    if len(a) != len(b):
        raise TopoError(
            f"cannot compare topologies with different numbers of layers: "
            f"{name_a} has {len(a)}, {name_b} has {len(b)}"
        )
    for k in range(len(a)):
        if (a.starts_chain(k) or b.starts_chain(k)) and a[k].n_in != b[k].n_in:
            raise TopoError(
                f"cannot compare topologies with different input widths at layer {k}: "
                f"{name_a} {a[k].name!r} has {a[k].n_in} inputs, {name_b} {b[k].name!r} has {b[k].n_in}"
            )


def nnstd(a: Topology, b: Topology, *, match_output: bool = True) -> NNSTDResult:
    """Neural Network Sparse Topology Distance (Liu et al. 2020) from ``a`` to ``b``.

    Parameters
    ----------
    a, b : Topology
        Networks with the same number of layers and the same input widths. Hidden
        widths may differ: the assignment is then rectangular, a neuron of ``a``
        without a partner costs 1, and neurons of ``b`` without a partner become extra
        inputs of ``b``'s next layer (after the matched ones, in their order) that no
        neuron of ``a`` has.
    match_output : bool
        Match the last layer's neurons too (the published method). False compares
        output neuron ``i`` with output neuron ``i`` (classes have fixed identities).

    Returns
    -------
    NNSTDResult
        ``distance`` (mean of the layer distances, in ``[0, 1]``), ``layer_distances``
        and the ``matchings``. Normalised by ``a``'s widths, so not symmetric in
        general. Layers that stand alone (and the layers after them) are compared on
        their own inputs, with no matching carried into or out of them.

    Raises
    ------
    TopoError
        If the layer counts differ, or two layers that read the network's inputs (or
        start a chain) have different input widths.
    """
    _check_comparable(a, b)
    n_layers = len(a)
    layer_distances: list[float] = []
    matchings: list[np.ndarray] = []
    previous: np.ndarray | None = None
    for k in range(n_layers):
        layer_a, layer_b = a[k], b[k]
        if previous is None or a.starts_chain(k) or b.starts_chain(k):
            mask_a = _as_int_csr(layer_a.mask)
            mask_b = _as_int_csr(layer_b.mask)
        else:
            width = max(layer_a.n_in, layer_b.n_in)
            mask_a = _as_int_csr(layer_a.mask, width)
            mask_b = _relabel_inputs(layer_b.mask, previous, width)
        cost = _cost_matrix(mask_a, mask_b, reuse=True)
        optimal = match_output or k < n_layers - 1
        total, match = _match(cost, optimal)
        n_a = layer_a.n_out
        if n_a:
            layer_distances.append(total / n_a)
        else:
            layer_distances.append(0.0 if layer_b.n_out == 0 else 1.0)
        matchings.append(match)
        previous = match
    from topo.analysis.exploration import active_widths

    return NNSTDResult(
        distance=float(np.mean(layer_distances)),
        layer_distances=layer_distances,
        matchings=matchings,
        active_widths=list(zip(active_widths(a), active_widths(b))),
    )


# -- many networks -------------------------------------------------------------------
def _masks_only(topology: Topology) -> Topology:
    """The same topology without weights, biases and statistics (cheap to send to a worker)."""
    return Topology(
        [
            Layer(layer.name, layer.mask, standalone=layer.standalone, source=layer.source)
            for layer in topology
        ],
        info={"path": topology.info.get("path")} if topology.info.get("path") else None,
    )


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> Topology:
    from topo.formats import load

    return _masks_only(load(path, weights=False))


def _resolve(item: Topology | PathLike) -> Topology:
    if isinstance(item, Topology):
        return item
    path = os.fspath(item)
    try:
        stat = os.stat(path)
        key = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (0, 0)  # let the loader raise its own error
    return _load_cached(os.path.abspath(path), *key)


def _nnstd_job(job: tuple) -> float:
    """One ordered pair for :func:`nnstd_matrix` (module level so that processes can run it)."""
    item_a, item_b, match_output = job
    return nnstd(_resolve(item_a), _resolve(item_b), match_output=match_output).distance


def _tiled_pairs(n: int, tile: int = 8) -> list[tuple[int, int]]:
    """Ordered pairs ``i != j`` in tiles, so a worker's small load cache sees few networks at a time."""
    pairs = []
    for i0 in range(0, n, tile):
        for j0 in range(0, n, tile):
            for i in range(i0, min(i0 + tile, n)):
                for j in range(j0, min(j0 + tile, n)):
                    if i != j:
                        pairs.append((i, j))
    return pairs


def nnstd_matrix(
    items: Sequence[Topology | PathLike],
    *,
    match_output: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """NNSTD between every ordered pair of networks.

    Parameters
    ----------
    items : sequence of Topology or path
        Networks, or paths that :func:`topo.formats.load` reads; a path is loaded
        (without weights) inside the worker that needs it, and each worker keeps the
        last 16 it loaded.
    match_output : bool
        Passed to :func:`nnstd`.
    workers : int
        Local processes (1: in this process).
    scheduler : str, optional
        Address of a running Dask distributed scheduler, ``"tcp://host:port"``;
        paths must then be readable on the cluster's workers.
    progress : callable, optional
        ``progress(done, total)`` over the ``N * (N - 1)`` pairs.

    Returns
    -------
    numpy.ndarray of float64, shape ``(N, N)``
        ``D[i, j] = nnstd(items[i], items[j]).distance``. NNSTD is normalised by the
        first network and the assignment's ties break by position, so ``D`` is not
        symmetric in general: every ordered pair ``i != j`` is computed. The diagonal
        is 0 by definition (not computed).

    Raises
    ------
    TopoError
        If a path cannot be read or two networks cannot be compared.
    """
    from topo.parallel import map_jobs

    resolved: list[Topology | str] = []
    for item in items:
        if isinstance(item, Topology):
            # weights and statistics are not needed; do not ship them to workers
            resolved.append(_masks_only(item) if (workers > 1 or scheduler) else item)
        else:
            path = os.fspath(item)
            if not os.path.exists(path):
                # fail before any worker starts, not after a part of the pairs
                raise TopoError("no such file or folder", path=path)
            resolved.append(path)
    n = len(resolved)
    pairs = _tiled_pairs(n)
    jobs = [(resolved[i], resolved[j], bool(match_output)) for i, j in pairs]
    values = map_jobs(_nnstd_job, jobs, workers=workers, scheduler=scheduler, progress=progress)
    matrix = np.zeros((n, n), dtype=np.float64)
    for (i, j), value in zip(pairs, values):
        matrix[i, j] = value
    return matrix


# -- without matching ----------------------------------------------------------------
def mask_turnover(a: Topology, b: Topology) -> list[float]:
    """Share of connections that differ between two networks' masks, per layer.

    Parameters
    ----------
    a, b : Topology
        Networks with the same layer shapes (e.g. two checkpoints of one run).

    Returns
    -------
    list of float
        ``|A xor B| / (|A| + |B|)`` over each layer's edge sets: 0 for identical
        masks, 1 for disjoint ones; 0 where both layers have no connection.

    Raises
    ------
    TopoError
        If the numbers of layers or a layer's shapes differ.
    """
    name_a, name_b = _name(a, "network 1"), _name(b, "network 2")
    if len(a) != len(b):
        raise TopoError(
            f"cannot compare masks: {name_a} has {len(a)} layers, {name_b} has {len(b)}"
        )
    turnover = []
    for layer_a, layer_b in zip(a, b):
        if layer_a.shape != layer_b.shape:
            raise TopoError(
                f"cannot compare masks of different shapes: {name_a} {layer_a.name!r} is "
                f"{layer_a.n_out}x{layer_a.n_in}, {name_b} {layer_b.name!r} is {layer_b.n_out}x{layer_b.n_in}"
            )
        both = int(layer_a.mask.multiply(layer_b.mask).count_nonzero())
        total = layer_a.nnz + layer_b.nnz
        turnover.append((total - 2 * both) / total if total else 0.0)
    return turnover

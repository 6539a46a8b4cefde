"""Distances between the topologies of two sparse networks.

:func:`nnstd` is the Neural Network Sparse Topology Distance of Liu et al.
("Topological Insights into Sparse Neural Networks", ECML-PKDD 2020):

1. Every neuron is the set of its inputs. Two neurons with input sets ``a`` and
   ``b`` are ``(|a| + |b| - 2|a & b|) / |a | b|`` apart (float64, in exactly that
   arithmetic), 0 when both sets are empty and 1 when they share no input.
2. Layer by layer, the neurons of network 1 (rows) are matched to those of network 2
   (columns) by an optimal assignment of that cost matrix; the layer's distance is the
   matched cost over network 1's number of neurons (a neuron without a partner costs 1).
3. The match propagates: before layer ``k+1`` is compared, network 2's inputs to it
   are relabelled by the match of layer ``k``, so input ``j`` of network 2 becomes the
   neuron of network 2 that was matched to network 1's neuron ``j``. The network's
   own inputs are never permuted.
4. NNSTD is the mean of the layer distances.

Optimal assignments are seldom unique (empty neurons, neurons that share no input
with anyone, equal overlaps), and which one step 3 propagates changes the later
layers' distances. Two rules are offered (``tie_break``):

``"canonical"`` (default): a stated rule that makes NNSTD a function of the two
    topologies, whichever solver runs. Pairs that share at least one input are the
    *overlapping pairs*; every other pair costs exactly 1 (or 0 for two empty neurons).

    1. Empty neurons are paired with empty neurons in index order: the ``k``-th empty
       neuron of network 1 with the ``k``-th empty neuron of network 2.
    2. Among the matchings of overlapping pairs (non-empty neurons) with the least
       total cost, the one with the smallest sum of tie keys is taken. Pair ``(i, j)``
       has the key 0 when ``i == j`` (a neuron keeps its index when nothing else
       decides, so a network is at distance 0 from itself) and otherwise
       ``0.5 + h(i, j) / 2``, with ``h`` a fixed 64-bit integer hash of the two indices
       in ``[0, 1)`` (:func:`tie_keys`). It is applied as the cost
       ``c + TIE_EPSILON * key`` with ``TIE_EPSILON = 2**-36``, so matchings whose
       costs differ by less than about ``1e-11`` per pair count as tied.
    3. The neurons left over (network 1's in index order) take the columns left over,
       in index order; each of these pairs costs exactly 1.

    A minimum-cost matching of the overlapping pairs, completed arbitrarily, is an
    optimal full assignment, because every other pair costs the same. So the rule is
    solved on the sparse graph of overlapping pairs (``solver="sparse"``: LAPMOD, the
    sparse Jonker-Volgenant algorithm of the ``lap`` package, on that graph plus one
    "stay unmatched" edge per neuron), or on a dense matrix of the active neurons
    (``solver="dense"``: :func:`scipy.optimize.linear_sum_assignment`), and both give
    the same matchings and distances. ``solver="auto"`` picks dense for small layers,
    where it is faster.

    On wide layers the sparse solver first solves on each neuron's cheapest pairs
    (those below a cost floor), then proves the matching optimal for all pairs with
    its dual values: a pair left out costs at least the floor, so only the neurons
    whose duals leave room for a cheaper pair have their overlaps computed again;
    pairs that would improve the matching join the graph and it is solved again.
    The rule is unchanged; only the work is.

``"reference"``: the published code's own choice, reproduced exactly: the whole
    dense cost matrix handed to :func:`scipy.optimize.linear_sum_assignment`, whose
    ties depend on the cost's floating-point rounding (another formula that is equal
    on paper, ``1 - |a & b| / |a | b|``, rounds differently and changes the matching).

Overlaps come from one sparse product per block of rows (int32 counts), so memory
grows with the number of overlapping pairs, not with the square of the width.

:func:`mask_turnover` is the simpler share of connections that differ between two
masks of the same shapes, with no matching.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.topology import Layer, Topology

__all__ = [
    "NNSTDResult",
    "nnstd",
    "nnstd_matrix",
    "masks_only",
    "mask_turnover",
    "labels_in_a",
    "layer_cost_matrix",
    "tie_keys",
    "TIE_BREAKS",
    "SOLVERS",
    "TIE_EPSILON",
]


TIE_BREAKS = ("canonical", "reference")
SOLVERS = ("auto", "dense", "sparse")
TIE_EPSILON = 2.0**-36
# "auto" solves a layer densely while its active neurons' matrix has at most this many
# entries: measured here on 784-W-W-W-10 fan-in-20 pairs, linear_sum_assignment (slowed
# by the tie keys, which leave it few equal costs) and LAPMOD cost the same near
# W = 1,000; at W = 2,000 the sparse solver takes 3.5 s a pair against 8.6 s dense,
# and on the SET networks (about 740 active neurons a layer) dense is 3x faster.
DENSE_MAX_ENTRIES = 1000 * 1000
# rows of network 1 whose overlaps are computed in one sparse product
_ROW_BLOCK_PAIRS = 4_000_000
# above this many overlapping pairs the sparse solver first solves on each neuron's
# cheapest pairs and checks the result against all pairs with its dual values
_PRUNE_ABOVE_PAIRS = 250_000  # measured: a 4,000-wide fan-in-20 layer (1.6 M pairs) solves 2x faster pruned
_KEEP_PER_NEURON = 32
_KEEP_SLACK = 4
# pairs a neuron adds to the graph per failed check (measured on a 16,000-wide fan-in-20
# layer: 16 solves it in 2.7 s, adding every violated pair in 3.7 s)
_ADD_PER_NEURON = 16
_MAX_CHECKS = 12
_DUAL_TOLERANCE = 1e-12


@dataclass(frozen=True)
class NNSTDResult:
    """The outcome of :func:`nnstd`.

    Attributes
    ----------
    distance : float
        NNSTD: the mean of ``layer_distances`` over the layers that are not dense in
        both networks (all layers with ``include_dense``, or when every layer is), in
        ``[0, 1]``.
    layer_distances : list of float
        Per layer: the matched cost over network 1's number of output neurons.
    matchings : list of numpy.ndarray
        ``matchings[k][i]`` is the output neuron of network 2 matched to output neuron
        ``i`` of network 1 in layer ``k`` (int64, length network 1's width); ``-1``
        where network 1 is wider and neuron ``i`` has no partner.
    active_widths : list of (int, int)
        Per layer, the output neurons present in network 1 and in network 2 (with an
        input or an output; :func:`topo.analysis.degree.present_neurons`). Where
        a method removed neurons these are below the widths: a removed neuron is an
        empty input set, 0 apart from another removed neuron and 1 from any present
        one, and the layer distance still divides by network 1's full width.
    dense_layers : list of bool
        Per layer, whether it is dense in both networks (every connection present).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    >>> result = nnstd(Topology.from_masks([mask]), Topology.from_masks([mask[[1, 0, 2]]]))
    >>> result.distance, result.layer_distances, result.matchings[0].tolist(), result.active_widths
    (0.0, [0.0], [1, 0, 2], [(3, 3)])
    """

    distance: float
    layer_distances: list[float] = field(default_factory=list)
    matchings: list[np.ndarray] = field(default_factory=list)
    active_widths: list[tuple[int, int]] = field(default_factory=list)
    dense_layers: list[bool] = field(default_factory=list)


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

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> a = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=bool))
    >>> b = sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 0]], dtype=bool))
    >>> layer_cost_matrix(a, b).round(3).tolist()
    [[1.0, 0.5], [0.0, 1.0]]
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


# -- the canonical rule ----------------------------------------------------------------
_HASH_MULTIPLIERS = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
)


def tie_keys(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The canonical rule's tie key of each neuron pair ``(rows[k], cols[k])``, in ``[0, 1)``.

    0 where ``i == j``; otherwise ``0.5 + h / 2`` with ``h`` a fixed hash:
    ``x = (i + 1) * 0x9E3779B97F4A7C15 + (j + 1) * 0xC2B2AE3D27D4EB4F`` (mod 2**64),
    then the mixing steps of SplitMix64 (``x ^= x >> 30; x *= 0xBF58476D1CE4E5B9;
    x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31``, mod 2**64), and
    ``h = (x >> 11) / 2**53``. It depends on the indices only, so every solver sees
    the same keys.

    Parameters
    ----------
    rows, cols : array of int
        Neuron indices in network 1 and network 2.

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> import numpy as np
    >>> keys = tie_keys(np.array([0, 0]), np.array([0, 1]))
    >>> float(keys[0]), bool(0.5 <= keys[1] < 1.0)
    (0.0, True)
    """
    k1, k2, k3, k4 = _HASH_MULTIPLIERS
    with np.errstate(over="ignore"):
        x = (np.asarray(rows, dtype=np.uint64) + np.uint64(1)) * k1
        x += (np.asarray(cols, dtype=np.uint64) + np.uint64(1)) * k2
        x ^= x >> np.uint64(30)
        x *= k3
        x ^= x >> np.uint64(27)
        x *= k4
        x ^= x >> np.uint64(31)
    key = 0.5 + (x >> np.uint64(11)).astype(np.float64) * 2.0**-54
    key[np.asarray(rows) == np.asarray(cols)] = 0.0
    return key


class _Overlaps:
    """The pairs of neurons of two masks that share an input, produced a block of rows at a time.

    Each block comes from one sparse product (int32 counts), so no temporary holds
    much more than a block's pairs; costs use the reference arithmetic.
    """

    def __init__(self, a: sp.csr_matrix, b: sp.csr_matrix):
        self.a, self.b, self.bt = a, b, b.T.tocsr()
        counts = np.int32 if max(a.shape[1], b.shape[1]) < 2**29 else np.int64
        self.index = np.int32 if max(a.shape[0], b.shape[0]) < 2**31 else np.int64
        self.size_a = np.diff(a.indptr).astype(counts)
        self.size_b = np.diff(b.indptr).astype(counts)
        fan_out_b = np.diff(self.bt.indptr).astype(np.int64)
        fan_out_a = np.bincount(a.indices, minlength=a.shape[1]).astype(np.int64)
        row_of_a = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        row_of_b = np.repeat(np.arange(b.shape[0]), np.diff(b.indptr))
        # shared inputs counted with multiplicity: an upper bound on a row's pairs
        per_row = np.bincount(row_of_a, weights=fan_out_b[a.indices], minlength=a.shape[0])
        self.bound = np.zeros(a.shape[0] + 1, dtype=np.int64)
        np.cumsum(per_row, out=self.bound[1:])
        self.active_rows = np.flatnonzero(per_row > 0)
        per_col = np.bincount(row_of_b, weights=fan_out_a[b.indices], minlength=b.shape[0])
        self.active_cols = np.flatnonzero(per_col > 0)

    @property
    def pair_bound(self) -> int:
        return int(self.bound[-1])

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(rows, cols, cost)`` of the overlapping pairs, row-major, a block at a time."""
        n_rows = self.a.shape[0]
        start = 0
        while start < n_rows:
            stop = int(np.searchsorted(self.bound, self.bound[start] + _ROW_BLOCK_PAIRS, side="right")) - 1
            stop = min(max(stop, start + 1), n_rows)
            shared = (self.a[start:stop] @ self.bt).tocsr()
            rows = np.repeat(np.arange(start, stop, dtype=self.index), np.diff(shared.indptr))
            cols = shared.indices.astype(self.index, copy=False)
            both = shared.data
            del shared
            # int32 counts where fan-ins fit (exact), then one float64 division
            total = self.size_a[rows] + self.size_b[cols]
            yield rows, cols, (total - 2 * both) / (total - both)
            start = stop

    def blocks_of(self, rows: np.ndarray, cols: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """As :meth:`blocks`, restricted to the pairs of ``rows`` x ``cols`` (sorted global indices)."""
        if not rows.size or not cols.size:
            return
        b_part = self.b[cols] if cols.size < self.b.shape[0] else self.b
        bt = b_part.T.tocsr() if cols.size < self.b.shape[0] else self.bt
        # the whole-network bound per row overestimates a subset's pairs: safe for chunking
        bound = np.cumsum(np.diff(self.bound)[rows])
        start = 0
        while start < rows.size:
            base = bound[start - 1] if start else 0
            stop = int(np.searchsorted(bound, base + _ROW_BLOCK_PAIRS, side="right"))
            stop = min(max(stop, start + 1), rows.size)
            chunk = rows[start:stop]
            shared = (self.a[chunk] @ bt).tocsr()
            block_rows = np.repeat(chunk.astype(self.index, copy=False), np.diff(shared.indptr))
            block_cols = cols[shared.indices].astype(self.index, copy=False)
            both = shared.data
            del shared
            total = self.size_a[block_rows] + self.size_b[block_cols]
            yield block_rows, block_cols, (total - 2 * both) / (total - both)
            start = stop

    def all_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = list(self.blocks())
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0)
        return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]


def _pair_costs(a: sp.csr_matrix, b: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The cost of each pair ``(rows[k], cols[k])``, in the reference arithmetic."""
    if not len(rows):
        return np.empty(0)
    both = np.asarray(a[rows].multiply(b[cols]).sum(axis=1), dtype=np.int64).ravel()
    total = np.diff(a.indptr)[rows].astype(np.int64) + np.diff(b.indptr)[cols].astype(np.int64)
    return (total - 2 * both) / (total - both)


def _solve_dense(overlaps: "_Overlaps", row_pos: np.ndarray, col_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global ``(rows, cols)`` of a minimum-cost matching of the overlapping pairs (tie keys
    included), by ``linear_sum_assignment`` on the active neurons' matrix (other pairs cost 1)."""
    matrix = _scratch_matrix(overlaps.active_rows.size, overlaps.active_cols.size)
    matrix.fill(1.0)
    for rows, cols, cost in overlaps.blocks():
        matrix[row_pos[rows], col_pos[cols]] = cost + TIE_EPSILON * tie_keys(rows, cols)
    picked_rows, picked_cols = linear_sum_assignment(matrix)
    keep = matrix[picked_rows, picked_cols] < 1.0
    return overlaps.active_rows[picked_rows[keep]], overlaps.active_cols[picked_cols[keep]]


class _SparseAssignment:
    """A minimum-cost matching of overlapping pairs by LAPMOD (sparse Jonker-Volgenant, ``lap``).

    Each active neuron of network 1 also gets a "stay unmatched" edge of cost 1, and
    each active neuron of network 2 one of cost 0; a dummy of network 2's neuron ``j``
    may pair with the dummy of network 1's neuron ``i`` wherever ``(i, j)`` overlaps.
    A minimum-cost perfect matching of that graph (it always has one) is a
    minimum-cost matching of the overlapping pairs in which a neuron left alone costs
    1. All costs are shifted by +1 so that none is zero (the shift adds the same
    amount to every perfect matching). scipy's LAPJVsp
    (``min_weight_full_bipartite_matching``) was measured too: it is slower here and
    does not finish on some real layers once the tie keys are added.

    ``local_rows``/``local_cols`` index ``n_rows`` active neurons of network 1 and
    ``n_cols`` of network 2.
    """

    def __init__(self, local_rows: np.ndarray, local_cols: np.ndarray, tied: np.ndarray, n_rows: int, n_cols: int):
        import lap

        self.n_rows, self.n_cols = n_rows, n_cols
        n = n_rows + n_cols
        graph_rows = np.concatenate(
            [local_rows, np.arange(n_rows), n_rows + np.arange(n_cols), n_rows + local_cols]
        )
        graph_cols = np.concatenate(
            [local_cols, n_cols + np.arange(n_rows), np.arange(n_cols), n_cols + local_rows]
        )
        weights = np.concatenate([tied + 1.0, np.full(n_rows, 2.0), np.full(n_cols, 1.0), np.ones(tied.size)])
        graph = sp.csr_matrix((weights, (graph_rows, graph_cols)), shape=(n, n))
        del graph_rows, graph_cols, weights
        graph.sum_duplicates()
        matched_col, _ = lap.lapmod(n, graph.data, graph.indptr, graph.indices, return_cost=False)
        self.graph = graph
        self.matched_col = np.asarray(matched_col, dtype=np.int64)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Local (row, column) of the matched overlapping pairs."""
        x = self.matched_col[: self.n_rows]
        real = np.flatnonzero((x >= 0) & (x < self.n_cols))
        return real, x[real]

    def potentials(
        self, start: np.ndarray | None = None, max_rounds: int = 5000
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Optimal dual values ``(u, v)`` of the matching, or None if they did not settle.

        ``start`` (the rows' duals of an earlier solve on fewer pairs) seeds the
        shortest paths: any values that settle satisfy every constraint, and an earlier
        solution is nearly settled, so far fewer rounds run.

        With the matching fixed, ``u_p + v_q <= w_pq`` on every edge and equality on the
        matched ones is a system of difference constraints: ``u_p <= u_k + w_pq - w_kq``
        where ``k`` holds column ``q``. Its shortest-path solution (Bellman-Ford,
        vectorised, from a source joined to every row by a zero arc) exists because the
        matching is optimal.
        """
        graph = self.graph.tocoo()
        rows, cols, weights = graph.row.astype(np.int64), graph.col.astype(np.int64), graph.data
        n = self.n_rows + self.n_cols
        x = self.matched_col
        y = np.empty(n, dtype=np.int64)
        y[x] = np.arange(n)
        matched = x[rows] == cols
        matched_weight = np.empty(n)
        matched_weight[cols[matched]] = weights[matched]
        free = ~matched
        source = y[cols[free]]
        target = rows[free]
        length = weights[free] - matched_weight[cols[free]]
        order = np.argsort(target, kind="stable")
        source, target, length = source[order], target[order], length[order]
        targets, starts = np.unique(target, return_index=True)
        u = np.zeros(n) if start is None else np.minimum(start, 0.0)
        for _ in range(max_rounds):
            if not targets.size:
                break
            best = np.minimum.reduceat(u[source] + length, starts)
            better = best < u[targets] - 1e-13
            if not better.any():
                break
            u[targets[better]] = best[better]
        else:
            return None
        return u, matched_weight - u[y]


def _cheapest_pairs(rows: np.ndarray, cost: np.ndarray, keep: int) -> tuple[np.ndarray, float]:
    """Positions of about ``keep`` cheap pairs per row, and a floor under the others' costs.

    Kept: the pairs below the block's cost quantile that leaves ``keep`` per row on
    average, and every row's cheapest pairs. Every pair left out costs at least the
    returned floor (``inf`` where all are kept). Strictly below the quantile, so that a
    cost most pairs share (two neurons sharing one input) is left out whole rather than
    kept whole. ``rows`` is non-decreasing (row-major blocks). A heuristic choice: the
    dual check in :func:`_solve_pruned` makes the result exact whatever is kept.
    """
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    target = keep * starts.size
    if target >= cost.size:
        return np.arange(cost.size), np.inf
    threshold = float(np.partition(cost, target)[target])
    row_min = np.minimum.reduceat(cost, starts)
    counts = np.diff(np.r_[starts, cost.size])
    at_most = cost <= threshold
    if np.count_nonzero(at_most) <= _KEEP_SLACK * target:
        # the pairs that tie with the quantile are few enough to keep: the next cost up floors the rest
        rest = cost[~at_most]
        floor = float(rest.min()) if rest.size else np.inf
        return np.flatnonzero(at_most), floor
    return np.flatnonzero((cost < threshold) | (cost <= np.repeat(row_min, counts))), threshold


def _first_per_row(rows: np.ndarray, score: np.ndarray, limit: int) -> np.ndarray:
    """Positions of each row's ``limit`` lowest scores (ties by position).

    The check adds a row's most violated pairs only: a neuron left unmatched by the
    first guess violates the duals with hundreds of pairs, of which the next solve
    needs a few, and a smaller graph solves faster (a pair left out is checked again).
    """
    order = np.lexsort((score, rows))
    sorted_rows = rows[order]
    first = np.r_[True, sorted_rows[1:] != sorted_rows[:-1]]
    rank = np.arange(order.size) - np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
    return order[rank < limit]


def _rows_to_check(
    floor: np.ndarray, u: np.ndarray, v: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Local rows and columns among whose pairs a left-out pair may violate the duals.

    A left-out pair ``(r, c)`` of row ``r`` costs at least ``floor[r]``, so its real
    edge's reduced cost is at least ``floor[r] + 1 - u[r] - v[c]``; its dummy edge's is
    ``1 - u[n_rows + c] - v[n_cols + r]`` (tie keys only raise them). A row (column)
    whose best case over all columns (rows) is non-negative cannot hold a violation.
    """
    u_real, u_dummy = u[:n_rows], u[n_rows:]
    v_real, v_dummy = v[:n_cols], v[n_cols:]
    finite = np.isfinite(floor)
    if not finite.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    slack = floor + 1.0 - u_real  # per row, >= reduced cost + v[c]
    rows = finite & (
        (slack - v_real.max() < -_DUAL_TOLERANCE) | (1.0 - u_dummy.max() - v_dummy < -_DUAL_TOLERANCE)
    )
    if not rows.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    cols = (slack[rows].min() - v_real < -_DUAL_TOLERANCE) | (1.0 - u_dummy - v_dummy[rows].max() < -_DUAL_TOLERANCE)
    return np.flatnonzero(rows), np.flatnonzero(cols)


def _solve_pruned(overlaps: "_Overlaps", row_pos: np.ndarray, col_pos: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """A minimum-cost matching of all overlapping pairs, solved on a few per neuron.

    Every neuron of network 1 keeps about :data:`_KEEP_PER_NEURON` cheap pairs; the
    matching of those is then checked against every pair with the optimal dual values
    (a pair left out can improve the matching only if its reduced cost is negative);
    pairs that fail the check join and the matching is solved again. Only the rows and
    columns whose duals leave room for a violation are recomputed
    (:func:`_rows_to_check`), and none where every pair was kept. Returns the matched
    pairs' global ``(rows, cols)``, or None where the check does not settle.
    """
    n_rows, n_cols = overlaps.active_rows.size, overlaps.active_cols.size
    kept = []
    floor = np.full(n_rows, np.inf)
    for rows, cols, cost in overlaps.blocks():
        if not rows.size:
            continue
        best, block_floor = _cheapest_pairs(rows, cost, _KEEP_PER_NEURON)
        kept.append((rows[best], cols[best], cost[best]))
        # the blocks are ranges of rows; rows without pairs are never checked
        floor[row_pos[rows[0]] : row_pos[rows[-1]] + 1] = block_floor
    rows, cols, cost = (np.concatenate(column) for column in zip(*kept))
    tied = cost + TIE_EPSILON * tie_keys(rows, cols)
    del kept
    duals = None
    for _ in range(_MAX_CHECKS):
        assignment = _SparseAssignment(row_pos[rows], col_pos[cols], tied, n_rows, n_cols)
        if not np.isfinite(floor).any():
            break  # every overlapping pair is in the graph: nothing to check
        duals = assignment.potentials(None if duals is None else duals[0])
        if duals is None:
            return None
        u, v = duals
        check_rows, check_cols = _rows_to_check(floor, u, v, n_rows, n_cols)
        extra = []
        violated = 0
        for block_rows, block_cols, block_cost in overlaps.blocks_of(
            overlaps.active_rows[check_rows], overlaps.active_cols[check_cols]
        ):
            r, c = row_pos[block_rows], col_pos[block_cols]
            reduced_real = block_cost + 1.0 - u[r] - v[c]
            reduced_dummy = 1.0 - u[n_rows + c] - v[n_cols + r]
            # tie keys only raise a reduced cost: compute them only where it is negative without
            near = np.flatnonzero((reduced_real < -_DUAL_TOLERANCE) | (reduced_dummy < -_DUAL_TOLERANCE))
            if near.size:
                near_tied = block_cost[near] + TIE_EPSILON * tie_keys(block_rows[near], block_cols[near])
                violated += int(np.count_nonzero(
                    (near_tied + 1.0 - u[r[near]] - v[c[near]] < -_DUAL_TOLERANCE)
                    | (reduced_dummy[near] < -_DUAL_TOLERANCE)
                ))
                worst = _first_per_row(
                    block_rows[near],
                    np.minimum(near_tied + 1.0 - u[r[near]] - v[c[near]], reduced_dummy[near]),
                    _ADD_PER_NEURON,
                )
                near, near_tied = near[worst], near_tied[worst]
                extra.append((block_rows[near], block_cols[near], block_cost[near], near_tied))
        extra = [part for part in extra if part[0].size]
        if not violated:
            break
        extra_rows, extra_cols, extra_cost, extra_tied = (np.concatenate(column) for column in zip(*extra))
        width = np.int64(overlaps.bt.shape[1])
        kept_keys = np.sort(rows.astype(np.int64) * width + cols)
        extra_keys = extra_rows.astype(np.int64) * width + extra_cols
        found = np.searchsorted(kept_keys, extra_keys)
        new = (found == kept_keys.size) | (kept_keys[np.minimum(found, kept_keys.size - 1)] != extra_keys)
        if not new.any():
            return None  # the check fails on pairs already in the graph: rounding; solve them all
        extra_rows, extra_cols, extra_cost, extra_tied = (
            extra_rows[new], extra_cols[new], extra_cost[new], extra_tied[new]
        )
        rows = np.concatenate([rows, extra_rows])
        cols = np.concatenate([cols, extra_cols])
        cost = np.concatenate([cost, extra_cost])
        tied = np.concatenate([tied, extra_tied])
    else:
        return None
    local_rows, local_cols = assignment.pairs()
    return overlaps.active_rows[local_rows], overlaps.active_cols[local_cols]


def _canonical_match(a: sp.csr_matrix, b: sp.csr_matrix, solver: str) -> tuple[float, np.ndarray]:
    """Matched cost and ``match`` of one layer under the canonical rule (module docstring)."""
    n_a, n_b = a.shape[0], b.shape[0]
    match = np.full(n_a, -1, dtype=np.int64)
    empty_a = np.flatnonzero(np.diff(a.indptr) == 0)
    empty_b = np.flatnonzero(np.diff(b.indptr) == 0)
    n_empty = min(empty_a.size, empty_b.size)
    match[empty_a[:n_empty]] = empty_b[:n_empty]  # rule 1
    overlaps = _Overlaps(a, b)
    n_rows, n_cols = overlaps.active_rows.size, overlaps.active_cols.size
    row_pos = np.full(n_a, -1, dtype=np.int64)
    row_pos[overlaps.active_rows] = np.arange(n_rows)
    col_pos = np.full(n_b, -1, dtype=np.int64)
    col_pos[overlaps.active_cols] = np.arange(n_cols)
    matched: tuple[np.ndarray, ...] | None = None
    if overlaps.pair_bound == 0:
        matched = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    elif solver == "dense" or (solver == "auto" and n_rows * n_cols <= DENSE_MAX_ENTRIES):
        matched = _solve_dense(overlaps, row_pos, col_pos)  # rule 2
    else:
        if overlaps.pair_bound > _PRUNE_ABOVE_PAIRS:
            matched = _solve_pruned(overlaps, row_pos, col_pos)
        if matched is None:
            rows, cols, cost = overlaps.all_pairs()
            tied = cost + TIE_EPSILON * tie_keys(rows, cols)  # rule 2
            del cost
            local_rows, local_cols = _SparseAssignment(row_pos[rows], col_pos[cols], tied, n_rows, n_cols).pairs()
            matched = overlaps.active_rows[local_rows], overlaps.active_cols[local_cols]
    matched_rows, matched_cols = matched
    match[matched_rows] = matched_cols
    # summed in sorted order, so that every solver's total rounds alike
    matched_cost = float(np.sort(_pair_costs(a, b, matched_rows, matched_cols)).sum())
    # rule 3: what is left pairs up in index order, at cost 1 each
    free_rows = np.flatnonzero(match < 0)
    taken = np.zeros(n_b, dtype=bool)
    taken[match[match >= 0]] = True
    free_cols = np.flatnonzero(~taken)
    n_rest = min(free_rows.size, free_cols.size)
    match[free_rows[:n_rest]] = free_cols[:n_rest]
    total = matched_cost + float(n_a - n_empty - matched_rows.size)
    return total, match


def _by_index(a: sp.csr_matrix, b: sp.csr_matrix) -> tuple[float, np.ndarray]:
    """As :func:`_match` without optimising: neuron ``i`` with neuron ``i``, no cost matrix."""
    n_a, n_b = a.shape[0], b.shape[0]
    m = min(n_a, n_b)
    size_a = np.diff(a.indptr)[:m].astype(np.int64)
    size_b = np.diff(b.indptr)[:m].astype(np.int64)
    both = np.asarray(a[:m].multiply(b[:m]).sum(axis=1), dtype=np.int64).ravel()
    total = size_a + size_b
    with np.errstate(invalid="ignore"):
        cost = np.where(total == 0, 0.0, (total - 2 * both) / (total - both))
    match = np.full(n_a, -1, dtype=np.int64)
    match[:m] = np.arange(m)
    return float(cost.sum()) + float(n_a - m), match


def labels_in_a(match: np.ndarray, width_b: int) -> np.ndarray:
    """For each neuron of network 2, its label in network 1's index space.

    ``match[i]`` is network 2's neuron matched to network 1's neuron ``i`` (-1: none);
    that neuron gets label ``i``. Network 2's neurons without a partner (network 2
    wider) keep their relative order as labels ``n_1, n_1 + 1, ...``, which no neuron
    of network 1 has. With it, indices of network 2's neurons (its hubs, say) can be
    compared with network 1's after an NNSTD matching.

    Parameters
    ----------
    match : numpy.ndarray of int
        One layer's matching, ``NNSTDResult.matchings[k]``: ``[n_1]``, network 2's
        neuron for each of network 1's, or -1.
    width_b : int
        Network 2's number of neurons in that layer.

    Returns
    -------
    numpy.ndarray of int
        ``[width_b]``: each of network 2's neurons' label.

    Examples
    --------
    >>> import numpy as np
    >>> labels_in_a(np.array([2, 0, -1]), 4).tolist()
    [1, 3, 0, 4]
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
    count in ``|b|`` but never in an intersection (see :func:`labels_in_a`).
    """
    label = labels_in_a(match, mask_b.shape[1])
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


def _check_options(tie_break: str, solver: str) -> None:
    if tie_break not in TIE_BREAKS:
        raise TopoError(f"unknown tie_break {tie_break!r}; choose one of {', '.join(TIE_BREAKS)}")
    if solver not in SOLVERS:
        raise TopoError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if tie_break == "reference" and solver == "sparse":
        raise TopoError("the reference tie-break is the dense solver's own; it cannot use solver='sparse'")


def nnstd(
    a: Topology,
    b: Topology,
    *,
    match_output: bool = True,
    tie_break: str = "canonical",
    solver: str = "auto",
    include_dense: bool = False,
    progress: ProgressCallback | None = None,
) -> NNSTDResult:
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
    tie_break : {"canonical", "reference"}
        Which of the optimal assignments is taken (module docstring): the stated
        canonical rule, the same for every solver, or exactly the published code's
        choice (dense matrix, ``linear_sum_assignment``).
    solver : {"auto", "dense", "sparse"}
        How the canonical rule's assignment is solved; all give the same result.
        "auto" takes the dense solver for small layers and LAPMOD on the sparse graph
        of overlapping pairs for large ones. The reference rule is always dense.
    include_dense : bool
        Average the layers that are dense in both networks into ``distance`` too
        (of equal widths, their distance is 0 whatever the rest of the network does, so
        they pull it toward 0); by default the mean is over the other layers (over all
        when every layer is dense in both).
    progress : callable, optional
        ``progress(done, total)`` after each layer (and once with ``done=0``).

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
        If the layer counts differ, two layers that read the network's inputs (or
        start a chain) have different input widths, or an option is unknown.

    Examples
    --------
    >>> import numpy as np, topo
    >>> net = topo.Topology.from_masks([np.eye(3), np.ones((2, 3))])
    >>> swapped = topo.Topology.from_masks([np.eye(3)[[2, 0, 1]], np.ones((2, 3))])
    >>> nnstd(net, swapped).distance
    0.0
    >>> nnstd(net, swapped).matchings[0].tolist()
    [1, 2, 0]
    """
    _check_options(tie_break, solver)
    _check_comparable(a, b)
    n_layers = len(a)
    report = progress or (lambda done, total: None)
    report(0, n_layers)
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
        optimal = match_output or k < n_layers - 1
        if not optimal:
            total, match = _by_index(mask_a, mask_b)
        elif tie_break == "reference":
            total, match = _match(_cost_matrix(mask_a, mask_b, reuse=True), optimal=True)
        else:
            total, match = _canonical_match(mask_a, mask_b, solver)
        n_a = layer_a.n_out
        if n_a:
            layer_distances.append(total / n_a)
        else:
            layer_distances.append(0.0 if layer_b.n_out == 0 else 1.0)
        matchings.append(match)
        previous = match
        report(k + 1, n_layers)
    from topo.analysis.degree import active_widths, is_dense, summary_layers

    dense = [is_dense(layer_a) and is_dense(layer_b) for layer_a, layer_b in zip(a, b)]
    kept = summary_layers(dense, include_dense=include_dense)
    return NNSTDResult(
        distance=float(np.mean([layer_distances[k] for k in kept])) if kept else float("nan"),
        dense_layers=dense,
        layer_distances=layer_distances,
        matchings=matchings,
        active_widths=list(zip(active_widths(a), active_widths(b))),
    )


# -- many networks -------------------------------------------------------------------
def masks_only(topology: Topology) -> Topology:
    """The same topology without weights, biases and statistics (cheap to send to a worker).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_weights([np.array([[0.5, 0.0], [0.0, -2.0]])])
    >>> net[0].weight is None, masks_only(net)[0].weight is None, masks_only(net).nnz
    (False, True, 2)
    """
    return Topology(
        [
            Layer(layer.name, layer.mask, standalone=layer.standalone, source=layer.source)
            for layer in topology
        ],
        info={"path": topology.info.get("path")} if topology.info.get("path") else None,
    )


def _resolve(item: Any, load: Callable[[Any], Topology] | None) -> Topology:
    if isinstance(item, Topology):
        return item
    if load is None:
        raise TopoError(
            f"{type(item).__name__} {str(item)!r} is not a Topology: give Topologies, or a load "
            "function that reads the others (e.g. topo.runs.load_masks)"
        )
    return load(item)


def _nnstd_job(job: tuple) -> float:
    """One ordered pair for :func:`nnstd_matrix` (module level so that processes can run it)."""
    item_a, item_b, options, load = job
    return nnstd(_resolve(item_a, load), _resolve(item_b, load), **options).distance


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
    items: Sequence[Any],
    *,
    load: Callable[[Any], Topology] | None = None,
    match_output: bool = True,
    tie_break: str = "canonical",
    solver: str = "auto",
    include_dense: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    layer_progress: ProgressCallback | None = None,
) -> np.ndarray:
    """NNSTD between every ordered pair of networks.

    Parameters
    ----------
    items : sequence
        Networks (Topology), or references to them (e.g. paths) that ``load`` turns
        into Topologies inside the worker that needs them.
    load : callable, optional
        ``load(item) -> Topology`` for the items that are not Topologies; it must be
        importable by name when the pairs run in other processes.
        :func:`topo.runs.load_masks` reads checkpoint paths (masks only) and keeps the
        last 16 it read.
    match_output, tie_break, solver, include_dense : optional
        Passed to :func:`nnstd`.
    workers : int
        Local processes (1: in this process).
    scheduler : str, optional
        Address of a running Dask distributed scheduler, ``"tcp://host:port"``;
        paths must then be readable on the cluster's workers.
    progress : callable, optional
        ``progress(done, total)`` over the ``N * (N - 1)`` pairs.
    layer_progress : callable, optional
        ``layer_progress(done, total)`` over the layers of all pairs (``total`` is the
        pairs times the first network's layers), for long pairs of wide networks;
        called only when the pairs run in this process (``workers=1``, no scheduler).

    Returns
    -------
    numpy.ndarray of float64, shape ``(N, N)``
        ``D[i, j] = nnstd(items[i], items[j]).distance``. NNSTD is normalised by the
        first network and its tie-break depends on the order of the pair, so ``D`` is
        not symmetric in general: every ordered pair ``i != j`` is computed. The diagonal
        is 0 by definition (not computed).

    Raises
    ------
    TopoError
        If an item is not a Topology and no ``load`` is given, ``load`` fails, or two
        networks cannot be compared.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    >>> nets = [Topology.from_masks([mask]), Topology.from_masks([mask[[1, 0, 2]]]), Topology.from_masks([np.ones((3, 4))])]
    >>> nnstd_matrix(nets).round(3).tolist()
    [[0.0, 0.0, 0.583], [0.0, 0.0, 0.583], [0.583, 0.583, 0.0]]
    """
    from topo.parallel import map_jobs

    _check_options(tie_break, solver)
    resolved: list[Any] = []
    for item in items:
        if isinstance(item, Topology):
            # weights and statistics are not needed; do not ship them to workers
            resolved.append(masks_only(item) if (workers > 1 or scheduler) else item)
        elif load is None:
            _resolve(item, load)  # fail before any worker starts, not after a part of the pairs
        else:
            resolved.append(item)
    n = len(resolved)
    pairs = _tiled_pairs(n)
    options = {
        "match_output": bool(match_output), "tie_break": tie_break, "solver": solver, "include_dense": bool(include_dense)
    }
    if workers == 1 and scheduler is None and layer_progress is not None:
        values = _pairs_here(resolved, pairs, options, load, progress, layer_progress)
    else:
        jobs = [(resolved[i], resolved[j], options, load) for i, j in pairs]
        values = map_jobs(_nnstd_job, jobs, workers=workers, scheduler=scheduler, progress=progress)
    matrix = np.zeros((n, n), dtype=np.float64)
    for (i, j), value in zip(pairs, values):
        matrix[i, j] = value
    return matrix


def _pairs_here(
    resolved: list,
    pairs: list[tuple[int, int]],
    options: dict,
    load: Callable[[Any], Topology] | None,
    progress: ProgressCallback | None,
    layer_progress: ProgressCallback,
) -> list[float]:
    """The pairs of :func:`nnstd_matrix` in this process, reporting every layer."""
    report_pairs = progress or (lambda done, total: None)
    report_pairs(0, len(pairs))
    values: list[float] = []
    total_layers = 0
    for number, (i, j) in enumerate(pairs):
        a, b = _resolve(resolved[i], load), _resolve(resolved[j], load)
        if not total_layers:
            total_layers = len(pairs) * len(a)
        base = number * len(a)

        def on_layer(done: int, total: int, base: int = base) -> None:
            layer_progress(min(base + done, total_layers), total_layers)

        values.append(nnstd(a, b, progress=on_layer, **options).distance)
        report_pairs(number + 1, len(pairs))
    return values


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

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> before = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 0]])])
    >>> after = Topology.from_masks([np.array([[1, 0, 1], [0, 1, 0]])])
    >>> [round(t, 3) for t in mask_turnover(before, after)]
    [0.333]
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

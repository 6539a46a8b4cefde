"""Is it really sparse? The pattern of each layer's mask, and requested against achieved sparsity.

A checkpoint pruned by SparseGPT, Wanda, torch.ao or neural-compressor keeps every
weight in a dense tensor of the same size, and its config often still says sparsity
0.0; what was pruned, and how, is only in where the zeros are. This module reads that
from the mask alone (``[out, in]``, CSR), in vectorised numpy over the stored
connections: nothing loops over neurons, and the cost grows with the connections,
not with ``out * in``.

Patterns
--------
``dense``
    Every connection present.
``empty``
    No connection present.
``N:M`` (``2:4``, ``4:8``, ``1:4``, ...)
    Along the input dimension: the inputs of each output neuron are cut into blocks
    of ``M`` consecutive inputs (the last block may be shorter), and a block complies
    when it holds at most ``N`` connections. ``M`` is a power of two from 2 to 128
    and ``N <= M / 2`` (at least half of every block pruned, as N:M kernels expect).
    A layer is ``N:M`` when at least :data:`COMPLIANCE_THRESHOLD` of its blocks
    comply, its density is ``N / M`` within :data:`FILL_TOLERANCE` (relative), and
    that many complying blocks would be a fluke, were the same number of connections
    placed at random (a one-sided binomial test at :data:`CHANCE_LEVEL`, each block
    complying by chance with the binomial probability of at most ``N`` of ``M``).
    So neither a very sparse unstructured layer, whose blocks comply by chance, nor
    a layer too small to tell is called ``1:4``. Of the ``N:M`` patterns that
    fit, the one with the smallest ``M`` is reported (a ``1:2`` layer is also
    ``2:4``); ``pattern_compliance`` is the share of its blocks that comply.
``block RxC`` (``block 4x1``: 4 output neurons by 1 input)
    The mask is tiled by ``R x C`` tiles aligned at 0 (edge tiles may be smaller),
    and a tile complies when it is all empty or all full. A layer is ``block RxC``
    when at least :data:`COMPLIANCE_THRESHOLD` of its connections lie in full tiles,
    at least that share of its missing connections lie in empty tiles (so neither a
    nearly dense nor a very sparse unstructured layer is called a block pattern), and
    that many complying tiles would be a fluke at random (the binomial test of N:M,
    a tile complying by chance with probability ``d**(R*C) + (1-d)**(R*C)`` at
    density ``d``). ``R`` and ``C`` are powers of two up to 64; the largest tile that fits
    is reported (a ``block 8x1`` layer is also ``block 4x1``).
    ``pattern_compliance`` is the share of all tiles that comply.
``unstructured``
    None of the above.

Whatever the pattern, ``compliance_2_4`` is the share of 4-input blocks holding at
most 2 connections, and ``runs_2_4`` says whether a 2:4 semi-structured kernel
(NVIDIA sparse tensor cores, ``torch.sparse.to_sparse_semi_structured``) could run
the layer as it is: every block complies and the number of inputs is a multiple of 4.
For a convolution the mask is its channel mask (``[out channels, in channels]``).

Requested sparsity
------------------
A reader that finds a target sparsity in a file (a topo run's configuration, a
tfmot / NNI / SparseML recipe) records it as ``topology.info["requested_sparsity"]``:
either one number in ``[0, 1]`` for the whole network, or a mapping of layer name to
number for single layers (a ``"*"`` key, when present, is the whole network).
:func:`sparsity_report` sets that against the sparsity achieved (``1 - density``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "BLOCK_SIZES",
    "CHANCE_LEVEL",
    "COMPLIANCE_THRESHOLD",
    "FILL_TOLERANCE",
    "GROUP_SIZES",
    "LayerPattern",
    "LayerSparsity",
    "SparsityReport",
    "block_compliance",
    "layer_pattern",
    "layer_patterns",
    "nm_block_counts",
    "nm_compliance",
    "pattern_summary",
    "requested_sparsity",
    "sparsity_report",
]

#: Share of blocks (N:M) or of connections and gaps (blocks of tiles) that must fit a
#: pattern for a layer to be reported as having it.
COMPLIANCE_THRESHOLD = 0.9
#: How far a layer's density may be from ``N / M`` for it to be called N:M (relative).
FILL_TOLERANCE = 0.1
#: Largest chance, were the connections placed at random, of as many blocks complying
#: as an N:M layer's do: below it the pattern is deliberate, not luck.
CHANCE_LEVEL = 1e-3
#: Block lengths ``M`` tried for N:M patterns, smallest first.
GROUP_SIZES = (2, 4, 8, 16, 32, 64, 128)
#: Tile sides tried for block patterns.
BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class LayerPattern:
    """The sparsity pattern of one layer's mask.

    Attributes
    ----------
    name : str
        The layer's name.
    n_out, n_in : int
        Shape of the mask.
    nnz : int
        Connections present.
    density : float
        ``nnz / (n_out * n_in)``.
    pattern : str
        ``"dense"``, ``"empty"``, ``"N:M"`` (e.g. ``"2:4"``), ``"block RxC"`` (e.g.
        ``"block 4x1"``) or ``"unstructured"`` (see the module notes).
    pattern_compliance : float or None
        Share of blocks (N:M) or tiles (block patterns) that comply with ``pattern``;
        1.0 for ``dense`` and ``empty``; None for ``unstructured``.
    n, m : int or None
        ``N`` and ``M`` of an N:M pattern.
    block : tuple of int or None
        ``(R, C)`` of a block pattern.
    compliance_2_4 : float
        Share of 4-input blocks holding at most 2 connections.
    runs_2_4 : bool
        Whether a 2:4 semi-structured kernel could run the layer as it is.
    """

    name: str
    n_out: int
    n_in: int
    nnz: int
    density: float
    pattern: str
    pattern_compliance: float | None
    n: int | None
    m: int | None
    block: tuple[int, int] | None
    compliance_2_4: float
    runs_2_4: bool

    def as_dict(self) -> dict[str, Any]:
        """Field -> value (``block`` as a list)."""
        out = asdict(self)
        out["block"] = None if self.block is None else list(self.block)
        return out


# -- the counting core ----------------------------------------------------------------
def _csr(mask: Any) -> sp.csr_matrix:
    """A CSR matrix with sorted indices and no stored zeros (a view when it already is one)."""
    if isinstance(mask, sp.csr_matrix) and mask.has_sorted_indices and mask.dtype == bool:
        return mask
    matrix = sp.csr_matrix(mask)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


class _Connections:
    """The stored connections of a mask as (row, column) arrays in CSR order, computed once."""

    def __init__(self, mask: Any) -> None:
        self.matrix = _csr(mask)
        self.n_out, self.n_in = (int(d) for d in self.matrix.shape)
        self.nnz = int(self.matrix.nnz)
        self.rows = np.repeat(np.arange(self.n_out, dtype=np.int64), np.diff(self.matrix.indptr))
        self.cols = self.matrix.indices.astype(np.int64)
        self._groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def groups(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Occupied blocks of ``m`` consecutive inputs: their rows, block columns and connections.

        Built from the blocks of ``m / 2`` when those are known (each step costs the
        occupied blocks, not the connections), else from the connections.
        """
        if m not in self._groups:
            half = self._groups.get(m // 2) if m % 2 == 0 else None
            if half is not None:
                rows, blocks, counts = half
                blocks = blocks // 2
                starts = _run_starts(rows * -(-self.n_in // m) + blocks)
                self._groups[m] = rows[starts], blocks[starts], np.add.reduceat(counts, starts)
            else:
                blocks = self.cols // m
                # CSR order keeps these keys sorted: equal keys are neighbours
                starts = _run_starts(self.rows * -(-self.n_in // m) + blocks)
                counts = np.diff(np.append(starts, self.nnz))
                self._groups[m] = self.rows[starts], blocks[starts], counts
        return self._groups[m]

    def group_histogram(self, m: int) -> np.ndarray:
        """Blocks of ``m`` inputs holding 0, 1, ..., ``m`` connections."""
        counts = self.groups(m)[2]
        hist = np.bincount(counts, minlength=m + 1)[: m + 1]
        hist[0] += self.n_out * -(-self.n_in // m) - counts.size
        return hist


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in a sorted array."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.empty(keys.size, dtype=bool)
    change[0] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def nm_block_counts(mask: Any, m: int) -> np.ndarray:
    """How many blocks of ``m`` consecutive inputs hold 0, 1, ..., ``m`` connections.

    Parameters
    ----------
    mask : scipy.sparse matrix or array-like
        ``[out, in]``; nonzero means connected.
    m : int
        Block length along the input dimension (the last block of each row may be shorter).

    Returns
    -------
    numpy.ndarray
        Length ``m + 1``: entry ``k`` is the number of blocks holding ``k`` connections.

    Examples
    --------
    >>> import numpy as np
    >>> nm_block_counts(np.array([[1, 1, 0, 0, 1, 0, 0, 0]]), 4).tolist()
    [0, 1, 1, 0, 0]
    """
    if int(m) < 1:
        raise ValueError(f"block length must be positive, got {m}")
    return _Connections(mask).group_histogram(int(m))


def nm_compliance(mask: Any, n: int, m: int) -> float:
    """Share of blocks of ``m`` consecutive inputs holding at most ``n`` connections.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.array([[1, 1, 0, 0, 1, 1, 1, 0]])  # blocks of 4 hold 2 and 3
    >>> nm_compliance(mask, 2, 4)
    0.5
    """
    hist = nm_block_counts(mask, m)
    total = hist.sum()
    return float(hist[: int(n) + 1].sum() / total) if total else 1.0


def _tile_counts(conn: _Connections, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Occupied ``rows x cols`` tiles: their connections and their sizes; and the number of tiles."""
    tile_cols = -(-conn.n_in // cols)
    n_tiles = -(-conn.n_out // rows) * tile_cols
    if rows == 1:
        tile_row, blocks, counts = conn.groups(cols)
        tiles = tile_row * tile_cols + blocks
    else:
        keys = (conn.rows // rows) * tile_cols + conn.cols // cols
        if n_tiles <= 16 * conn.nnz + 4096:  # a count per tile is cheaper than sorting
            per_tile = np.bincount(keys, minlength=n_tiles)
            tiles = np.flatnonzero(per_tile)
            counts = per_tile[tiles]
        else:  # rows of one tile interleave in CSR order
            keys = np.sort(keys)
            starts = _run_starts(keys)
            tiles, counts = keys[starts], np.diff(np.append(starts, keys.size))
    tr, tc = np.divmod(tiles, tile_cols)
    height = np.minimum(rows, conn.n_out - tr * rows)
    width = np.minimum(cols, conn.n_in - tc * cols)
    return counts, height * width, n_tiles


def _block_shares(conn: _Connections, rows: int, cols: int) -> tuple[float, float, float, int, int]:
    counts, areas, n_tiles = _tile_counts(conn, rows, cols)
    full = counts == areas
    in_full = float(counts[full].sum() / conn.nnz) if conn.nnz else 1.0
    missing = conn.n_out * conn.n_in - conn.nnz
    # gaps outside empty tiles are the gaps of the occupied, not-full tiles
    gaps_in_empty = 1.0 - float((areas[~full] - counts[~full]).sum() / missing) if missing else 1.0
    complying = int(n_tiles - counts.size + full.sum())
    compliance = complying / n_tiles if n_tiles else 1.0
    return compliance, in_full, gaps_in_empty, complying, n_tiles


def block_compliance(mask: Any, rows: int, cols: int) -> tuple[float, float, float]:
    """How well ``rows x cols`` tiles describe a mask.

    Parameters
    ----------
    mask : scipy.sparse matrix or array-like
        ``[out, in]``.
    rows, cols : int
        Tile shape: output neurons by inputs; tiles are aligned at 0, edge tiles may be smaller.

    Returns
    -------
    compliance : float
        Share of all tiles that are all empty or all full.
    in_full : float
        Share of the connections that lie in full tiles (1.0 when there are none).
    gaps_in_empty : float
        Share of the missing connections that lie in empty tiles (1.0 when none are missing).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((8, 3), dtype=bool)
    >>> mask[0:4, 0] = mask[4:8, 2] = True
    >>> block_compliance(mask, 4, 1)
    (1.0, 1.0, 1.0)
    >>> block_compliance(mask, 2, 2)[0]  # the tiles over rows 0-3, columns 0-1 are half full
    0.75
    """
    return _block_shares(_Connections(mask), int(rows), int(cols))[:3]


def _n_range(conn: _Connections, m: int) -> range:
    """The N that an N:M pattern could have: N <= M/2, density within FILL_TOLERANCE of N/M."""
    density = conn.nnz / (conn.n_out * conn.n_in)
    low = max(1, math.ceil(density * m / (1.0 + FILL_TOLERANCE) - 1e-9))
    high = min(m // 2, math.floor(density * m / (1.0 - FILL_TOLERANCE) + 1e-9))
    return range(low, high + 1)


def _best_nm(conn: _Connections) -> tuple[int, int, float] | None:
    """The N:M pattern with the smallest M that fits (see the module notes), or None."""
    for m in GROUP_SIZES:
        if m > conn.n_in:
            break
        candidates = _n_range(conn, m)
        if not candidates:
            continue
        from scipy import special

        hist = conn.group_histogram(m)
        blocks = int(hist.sum())
        complying = np.cumsum(hist)
        density = conn.nnz / (conn.n_out * conn.n_in)
        for n in candidates:
            share = float(complying[n] / blocks)
            if share < COMPLIANCE_THRESHOLD:
                continue
            # as many complying blocks by chance, were the connections placed at random?
            by_chance = float(special.bdtr(n, m, density))
            if float(special.bdtrc(int(complying[n]) - 1, blocks, by_chance)) <= CHANCE_LEVEL:
                return n, m, share
    return None


def _pairs_in_full(conn: _Connections, rows: int, cols: int) -> float:
    """Share of connections in full 2x1 (``rows=2``) or 1x2 tiles, counted straight from
    the connections: it rules block patterns out without tallying every tile."""
    if rows == 1:
        # neighbours in CSR order that fill one tile: same row, columns 2j and 2j + 1
        first = conn.cols[:-1]
        pairs = (conn.rows[1:] == conn.rows[:-1]) & (first % 2 == 0) & (conn.cols[1:] == first + 1)
        in_full = 2 * int(np.count_nonzero(pairs))
        if conn.n_in % 2:  # the last column alone is a tile one input wide
            in_full += int(np.count_nonzero(conn.cols == conn.n_in - 1))
        return in_full / conn.nnz
    n_pairs = conn.n_out // 2
    if n_pairs * conn.n_in <= 16 * conn.nnz + 4096:
        keys = (conn.rows // 2) * conn.n_in + conn.cols
        in_full = 2 * int(np.count_nonzero(np.bincount(keys[conn.rows < 2 * n_pairs]) == 2))
    else:  # very sparse and wide: intersect the even and the odd rows instead
        even, odd = conn.matrix[0 : 2 * n_pairs : 2], conn.matrix[1 : 2 * n_pairs : 2]
        in_full = 2 * int(even.multiply(odd).nnz)
    if conn.n_out % 2:  # the last row alone is a tile one row high
        in_full += int(conn.matrix.indptr[-1] - conn.matrix.indptr[-2])
    return in_full / conn.nnz


def _tiles_by_chance(conn: _Connections, area: int, complying: int, n_tiles: int) -> float:
    """Chance of at least ``complying`` of ``n_tiles`` tiles of ``area`` cells being empty
    or full, were the connections placed at random at the layer's density (a one-sided
    binomial tail; edge tiles are counted as whole ones)."""
    from scipy import special

    density = conn.nnz / (conn.n_out * conn.n_in)
    by_chance = density**area + (1.0 - density) ** area
    return float(special.bdtrc(complying - 1, n_tiles, by_chance)) if complying > 0 else 1.0


def _best_block(conn: _Connections) -> tuple[int, int, float] | None:
    """The largest ``R x C`` tile pattern that fits (see the module notes), or None."""
    fitting: dict[tuple[int, int], float | None] = {(1, 1): 1.0}

    def fits(rows: int, cols: int) -> float | None:
        if (rows, cols) not in fitting:
            fitting[(rows, cols)] = None
            if rows <= conn.n_out and cols <= conn.n_in and (
                (rows, cols) not in ((2, 1), (1, 2)) or _pairs_in_full(conn, rows, cols) >= COMPLIANCE_THRESHOLD
            ):
                compliance, in_full, gaps, complying, n_tiles = _block_shares(conn, rows, cols)
                if (
                    in_full >= COMPLIANCE_THRESHOLD
                    and gaps >= COMPLIANCE_THRESHOLD
                    and _tiles_by_chance(conn, rows * cols, complying, n_tiles) <= CHANCE_LEVEL
                ):
                    fitting[(rows, cols)] = compliance
        return fitting[(rows, cols)]

    best: tuple[int, int, float] | None = None
    # a tile pattern implies the patterns of the tiles it is made of (its halves), so a
    # shape is tried only when both halves fit: grow from 2x1 and 1x2 by doubling a side
    frontier = [(2, 1), (1, 2)]
    while frontier:
        rows, cols = frontier.pop(0)
        if (rows, cols) in fitting or rows > BLOCK_SIZES[-1] or cols > BLOCK_SIZES[-1]:
            continue
        halves_fit = (rows == 1 or fits(rows // 2, cols) is not None) and (
            cols == 1 or fits(rows, cols // 2) is not None
        )
        compliance = fits(rows, cols) if halves_fit else None
        if compliance is None:
            continue
        if best is None or rows * cols > best[0] * best[1]:
            best = (rows, cols, compliance)
        frontier += [(rows * 2, cols), (rows, cols * 2)]
    return best


def layer_pattern(mask: Any, name: str = "") -> LayerPattern:
    """The sparsity pattern of one mask (see the module notes).

    Parameters
    ----------
    mask : Layer, scipy.sparse matrix or array-like
        A :class:`~topo.topology.Layer` (its mask and name are used) or a mask ``[out, in]``.
    name : str
        The layer's name, when ``mask`` is not a Layer.

    Returns
    -------
    LayerPattern

    Examples
    --------
    >>> import numpy as np
    >>> two_four = np.tile([1, 1, 0, 0, 0, 1, 0, 1], (6, 2))
    >>> p = layer_pattern(two_four, "fc")
    >>> p.pattern, p.pattern_compliance, p.runs_2_4
    ('2:4', 1.0, True)
    >>> layer_pattern(np.repeat([[1, 1, 1, 0, 1, 1, 0, 1], [0, 1, 1, 1, 1, 0, 1, 1]], 4, axis=0)).pattern
    'block 4x1'
    >>> layer_pattern(np.ones((3, 5))).pattern
    'dense'
    """
    if hasattr(mask, "mask") and hasattr(mask, "name"):
        name = mask.name
        mask = mask.mask
    conn = _Connections(mask)
    n_out, n_in, nnz = conn.n_out, conn.n_in, conn.nnz
    size = n_out * n_in
    hist_4 = conn.group_histogram(4) if n_in else np.zeros(5, dtype=np.int64)
    total_4 = int(hist_4.sum())
    compliance_2_4 = float(hist_4[:3].sum() / total_4) if total_4 else 1.0
    runs_2_4 = bool(n_in % 4 == 0 and n_in > 0 and hist_4[3:].sum() == 0)
    pattern, compliance, n, m, block = "unstructured", None, None, None, None
    if size and nnz == size:
        pattern, compliance = "dense", 1.0
    elif nnz == 0:
        pattern, compliance = "empty", 1.0
    else:
        nm = _best_nm(conn)
        if nm is not None:
            n, m, compliance = nm
            pattern = f"{n}:{m}"
        else:
            tiles = _best_block(conn)
            if tiles is not None:
                rows, cols, compliance = tiles
                block = (rows, cols)
                pattern = f"block {rows}x{cols}"
    return LayerPattern(
        name=str(name),
        n_out=n_out,
        n_in=n_in,
        nnz=nnz,
        density=nnz / size if size else 0.0,
        pattern=pattern,
        pattern_compliance=compliance,
        n=n,
        m=m,
        block=block,
        compliance_2_4=compliance_2_4,
        runs_2_4=runs_2_4,
    )


def layer_patterns(topology: Iterable[Any]) -> list[LayerPattern]:
    """:func:`layer_pattern` of every layer of a Topology (or any iterable of Layers), in order."""
    return [layer_pattern(layer) for layer in topology]


def pattern_summary(patterns: Sequence[LayerPattern]) -> str:
    """One short phrase for a network: each pattern with how many layers have it, in order of first use.

    Examples
    --------
    >>> import numpy as np
    >>> ps = [layer_pattern(np.tile([1, 1, 0, 0], (16, 4))), layer_pattern(np.tile([0, 0, 1, 1], (16, 4))),
    ...       layer_pattern(np.ones((2, 4)))]
    >>> pattern_summary(ps)
    '2:4 x2, dense'
    """
    counts: dict[str, int] = {}
    for p in patterns:
        counts[p.pattern] = counts.get(p.pattern, 0) + 1
    return ", ".join(name if k == 1 else f"{name} x{k}" for name, k in counts.items())


# -- requested against achieved -------------------------------------------------------
@dataclass(frozen=True)
class LayerSparsity:
    """Requested and achieved sparsity of one layer.

    Attributes
    ----------
    name : str
    requested : float or None
        What the file asked for this layer (None when it does not say).
    achieved : float
        ``1 - density`` of the mask.
    """

    name: str
    requested: float | None
    achieved: float

    @property
    def gap(self) -> float | None:
        """``achieved - requested`` (None when nothing was requested)."""
        return None if self.requested is None else self.achieved - self.requested


@dataclass(frozen=True)
class SparsityReport:
    """Requested against achieved sparsity of a network.

    Attributes
    ----------
    requested : float or None
        Whole-network target, when the file records one; when it records targets
        for every layer but none for the whole, their mean weighted by layer size.
    achieved : float
        ``1 - density`` of the whole network (connections over possible connections).
    layers : tuple of LayerSparsity
        One per layer, in order.
    """

    requested: float | None
    achieved: float
    layers: tuple[LayerSparsity, ...]

    @property
    def any_requested(self) -> bool:
        """Whether the file records any target at all."""
        return self.requested is not None or any(layer.requested is not None for layer in self.layers)


def _fraction(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None


def requested_sparsity(info: Mapping[str, Any]) -> tuple[float | None, dict[str, float]]:
    """Read the ``requested_sparsity`` convention from a topology's ``info``.

    Returns
    -------
    overall : float or None
        The whole network's target.
    per_layer : dict
        Layer name -> target. Values that are not numbers in ``[0, 1]`` are left out.

    Examples
    --------
    >>> requested_sparsity({"requested_sparsity": 0.9})
    (0.9, {})
    >>> requested_sparsity({"requested_sparsity": {"*": 0.8, "fc1": 0.5, "fc2": "?"}})
    (0.8, {'fc1': 0.5})
    >>> requested_sparsity({})
    (None, {})
    """
    raw = info.get("requested_sparsity")
    if isinstance(raw, Mapping):
        per_layer = {str(k): v for k, v in ((k, _fraction(v)) for k, v in raw.items()) if v is not None}
        return per_layer.pop("*", None), per_layer
    return _fraction(raw), {}


def sparsity_report(topology: Any) -> SparsityReport:
    """Requested (``topology.info["requested_sparsity"]``) against achieved sparsity.

    Examples
    --------
    >>> import numpy as np
    >>> from topo.topology import Topology
    >>> net = Topology.from_masks([np.eye(4), np.ones((2, 4))], names=["a", "b"])
    >>> r = sparsity_report(net.with_info(requested_sparsity={"*": 0.5, "a": 0.75}))
    >>> r.requested, r.achieved, [(l.name, l.requested, l.achieved) for l in r.layers]
    (0.5, 0.5, [('a', 0.75, 0.75), ('b', None, 0.0)])
    """
    overall, per_layer = requested_sparsity(getattr(topology, "info", {}) or {})
    layers = tuple(
        LayerSparsity(name=layer.name, requested=per_layer.get(layer.name), achieved=1.0 - layer.density)
        for layer in topology
    )
    size = sum(layer.size for layer in topology)
    nnz = sum(layer.nnz for layer in topology)
    if overall is None and layers and size and all(layer.requested is not None for layer in layers):
        overall = sum(entry.requested * layer.size for entry, layer in zip(layers, topology)) / size
    return SparsityReport(requested=overall, achieved=1.0 - nnz / size if size else 0.0, layers=layers)

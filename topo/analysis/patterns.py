"""Is it really sparse? The pattern of each layer's mask, and requested against achieved sparsity.

A checkpoint pruned by SparseGPT, Wanda, torch.ao or neural-compressor keeps every
weight in a dense tensor of the same size, and its config often still says sparsity
0.0; what was pruned, and how, is only in where the zeros are. This module reads that
from the mask alone (``[out, in]``, CSR), in vectorised numpy: nothing loops over
neurons, and the cost grows with the connections, not with ``out * in``. Sparse
masks are counted from their stored connections; masks at least
:data:`DENSE_COUNTING_DENSITY` dense (pruned LLM layers: 50%, 2:4) from their dense
bitmap, a chunk of rows at a time, which is faster and lighter there and gives the
same counts.

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
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "BLOCK_SIZES",
    "CHANCE_LEVEL",
    "COMPLIANCE_THRESHOLD",
    "DENSE_COUNTING_DENSITY",
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

    Examples
    --------
    >>> import numpy as np
    >>> p = layer_pattern(np.tile([1, 1, 0, 0, 0, 1, 0, 1], (6, 2)), "fc")
    >>> p.name, p.n_out, p.n_in, p.density, p.pattern, p.n, p.m, p.block
    ('fc', 6, 16, 0.5, '2:4', 2, 4, None)
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
#: Layers at least this dense are counted on their dense bitmap (a byte per cell, in
#: chunks of rows); sparser ones from their stored connections (two int64 per
#: connection). Both give the same counts; the choice is only about time and memory.
DENSE_COUNTING_DENSITY = 1 / 16
#: Cells of the dense bitmap held at a time (rows of one chunk are a multiple of 64,
#: the tallest tile, so no tile straddles two chunks).
_CHUNK_CELLS = 2**20
#: The bitmap's columns are padded to a multiple of this (the longest N:M block), so
#: that blocks of every length are sums of neighbouring halves.
_PAD_COLUMNS = max(GROUP_SIZES)
_PAD_ROWS = max(BLOCK_SIZES)


def _csr(mask: Any) -> sp.csr_matrix:
    """A CSR matrix with sorted indices and no stored zeros (a view when it already is one)."""
    if isinstance(mask, sp.csr_matrix) and mask.has_sorted_indices and mask.dtype == bool:
        return mask
    matrix = sp.csr_matrix(mask)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _Connections:
    """The stored connections of a mask as (row, column) arrays in CSR order, computed once.

    The counting interface shared with :class:`_Bitmap`: ``n_blocks`` and
    ``blocks_at_most`` (N:M blocks), ``pairs_in_full`` and ``tile_stats`` (tiles).
    """

    def __init__(self, mask: Any) -> None:
        self.matrix = _csr(mask)
        self.n_out, self.n_in = (int(d) for d in self.matrix.shape)
        self.nnz = int(self.matrix.nnz)
        self.rows = np.repeat(np.arange(self.n_out, dtype=np.int64), np.diff(self.matrix.indptr))
        self.cols = self.matrix.indices.astype(np.int64)
        self._groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._histograms: dict[int, np.ndarray] = {}

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
        if m not in self._histograms:
            counts = self.groups(m)[2]
            hist = np.bincount(counts, minlength=m + 1)[: m + 1]
            hist[0] += self.n_out * -(-self.n_in // m) - counts.size
            self._histograms[m] = hist
        return self._histograms[m]

    def n_blocks(self, m: int) -> int:
        """Blocks of ``m`` consecutive inputs in the layer (the last of each row may be shorter)."""
        return self.n_out * _ceil_div(self.n_in, m)

    def blocks_at_most(self, m: int, n: int) -> int:
        """Blocks of ``m`` consecutive inputs holding at most ``n`` connections."""
        return int(self.group_histogram(m)[: n + 1].sum())

    def pairs_in_full(self, rows: int, cols: int) -> int:
        """Connections in full 2x1 (``rows=2``) or 1x2 tiles, counted straight from the
        connections: it rules block patterns out without tallying every tile."""
        if rows == 1:
            # neighbours in CSR order that fill one tile: same row, columns 2j and 2j + 1
            first = self.cols[:-1]
            pairs = (self.rows[1:] == self.rows[:-1]) & (first % 2 == 0) & (self.cols[1:] == first + 1)
            in_full = 2 * int(np.count_nonzero(pairs))
            if self.n_in % 2:  # the last column alone is a tile one input wide
                in_full += int(np.count_nonzero(self.cols == self.n_in - 1))
            return in_full
        n_pairs = self.n_out // 2
        if n_pairs * self.n_in <= 16 * self.nnz + 4096:
            keys = (self.rows // 2) * self.n_in + self.cols
            in_full = 2 * int(np.count_nonzero(np.bincount(keys[self.rows < 2 * n_pairs]) == 2))
        else:  # very sparse and wide: intersect the even and the odd rows instead
            even, odd = self.matrix[0 : 2 * n_pairs : 2], self.matrix[1 : 2 * n_pairs : 2]
            in_full = 2 * int(even.multiply(odd).nnz)
        if self.n_out % 2:  # the last row alone is a tile one row high
            in_full += int(self.matrix.indptr[-1] - self.matrix.indptr[-2])
        return in_full

    def tile_stats(self, rows: int, cols: int) -> tuple[int, int, int, int, int]:
        """Of the ``rows x cols`` tiles aligned at 0 (edge tiles may be smaller): how many
        are occupied, how many full, the connections in full tiles, the gaps in occupied
        tiles that are not full, and the number of tiles."""
        tile_cols = _ceil_div(self.n_in, cols)
        n_tiles = _ceil_div(self.n_out, rows) * tile_cols
        if rows == 1:
            tile_row, blocks, counts = self.groups(cols)
            tiles = tile_row * tile_cols + blocks
        else:
            keys = (self.rows // rows) * tile_cols + self.cols // cols
            if n_tiles <= 16 * self.nnz + 4096:  # a count per tile is cheaper than sorting
                per_tile = np.bincount(keys, minlength=n_tiles)
                tiles = np.flatnonzero(per_tile)
                counts = per_tile[tiles]
            else:  # rows of one tile interleave in CSR order
                keys = np.sort(keys)
                starts = _run_starts(keys)
                tiles, counts = keys[starts], np.diff(np.append(starts, keys.size))
        tr, tc = np.divmod(tiles, tile_cols)
        areas = np.minimum(rows, self.n_out - tr * rows) * np.minimum(cols, self.n_in - tc * cols)
        full = counts == areas
        return (
            int(counts.size), int(np.count_nonzero(full)), int(counts[full].sum()),
            int((areas[~full] - counts[~full]).sum()), int(n_tiles),
        )


#: Bytes 1, 3, 5, 7 of a 64-bit word: after ``x & (x >> 8)`` they say whether both cells
#: of a pair of neighbouring bytes are set.
_PAIR_BYTES = np.uint64(0x00FF00FF00FF00FF)
#: numpy >= 2 counts set bits in one pass; a bitmap's bytes are 0 or 1, so the set bits
#: of a 2-, 4- or 8-byte word are the connections in its 2, 4 or 8 cells.
_BITWISE_COUNT = getattr(np, "bitwise_count", None)


class _Levels:
    """Connections per block of ``2**k`` inputs of one chunk, each level computed when first
    asked for (into the arrays given: level 0 is the bitmap itself)."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.done = [True] + [False] * (len(arrays) - 1)

    def __getitem__(self, k: int) -> np.ndarray:
        if not self.done[k]:
            if _BITWISE_COUNT is not None and k <= 3:
                _BITWISE_COUNT(self.arrays[0].view(f"u{1 << k}"), out=self.arrays[k])
            else:
                half = self[k - 1]
                np.add(half[:, 0::2], half[:, 1::2], out=self.arrays[k])
            self.done[k] = True
        return self.arrays[k]

    def __len__(self) -> int:
        return len(self.arrays)


class _CsrRows:
    """The rows of a CSR mask written into a dense bitmap a chunk at a time: the source of
    :class:`_Bitmap` for a mask held in memory.

    A source of bitmap rows has ``shape``, ``nnz``, ``fill_rows(rows, bitmap)``,
    ``last_row_count()``, ``last_column_count()`` and ``csr()``; a reader can offer one
    that fills the bitmap from a file's stored values instead (a layer's
    ``bitmap_rows()``), so a layer read from disk is counted without its CSR mask.
    """

    def __init__(self, mask: Any) -> None:
        matrix = _csr(mask)
        self.matrix = matrix if matrix.dtype == bool else matrix.astype(bool)  # one byte per cell
        self.shape = tuple(int(d) for d in self.matrix.shape)
        self.nnz = int(self.matrix.nnz)

    def fill_rows(self, rows: int, bitmap: np.ndarray) -> Iterator[tuple[int, int]]:
        """Write rows ``start:stop`` of the mask, ``rows`` at a time, into the top of
        ``bitmap`` (bool, at least ``rows`` high and as wide as the mask), every other
        cell of the top ``rows`` (rounded up to a multiple of 64) zero; yield ``(start,
        stop)`` once each chunk is there."""
        indptr, indices, data = self.matrix.indptr, self.matrix.indices, self.matrix.data
        n_out, width = self.shape[0], bitmap.shape[1]
        for start in range(0, n_out, rows):
            stop = min(n_out, start + rows)
            height = min(bitmap.shape[0], _ceil_div(stop - start, _PAD_ROWS) * _PAD_ROWS)
            local = np.full(height + 1, indptr[stop] - indptr[start], dtype=indices.dtype)
            local[: stop - start + 1] = indptr[start : stop + 1] - indptr[start]
            part = slice(int(indptr[start]), int(indptr[stop]))
            # views of the layer's own arrays, written into the padded bitmap
            chunk = sp.csr_matrix((data[part], indices[part], local), shape=(height, width), copy=False)
            bitmap[:height].fill(0)
            chunk.toarray(out=bitmap[:height])
            yield start, stop

    def last_row_count(self) -> int:
        return int(self.matrix.indptr[-1] - self.matrix.indptr[-2])

    def last_column_count(self) -> int:
        return int(np.count_nonzero(self.matrix.indices == self.shape[1] - 1))

    def csr(self) -> sp.csr_matrix:
        return self.matrix


class _Bitmap:
    """The same counts as :class:`_Connections`, from the dense bitmap of a dense-ish mask.

    The mask is expanded a chunk of rows at a time into bytes (one per cell), padded
    with absent cells to whole tiles and blocks. The connections in blocks of 2, 4 and
    8 inputs are the set bits of 2-, 4- and 8-byte words, those in blocks of ``2m``
    the sums of neighbouring blocks of ``m`` (bytes: at most 128), and full pairs the
    bytes set in two words at once, so every count is a few vectorised passes over
    the chunk, whatever the number of connections.
    """

    def __init__(self, mask: Any) -> None:
        rows = mask if hasattr(mask, "fill_rows") else _CsrRows(mask)
        self.rows = rows
        self.n_out, self.n_in = (int(d) for d in rows.shape)
        self.nnz = int(rows.nnz)
        self.width = _ceil_div(max(self.n_in, 1), _PAD_COLUMNS) * _PAD_COLUMNS
        self.chunk_rows = max(_PAD_ROWS, _CHUNK_CELLS // self.width // _PAD_ROWS * _PAD_ROWS)
        self._at_most: dict[tuple[int, int], int] = {}
        self._pairs: dict[tuple[int, int], int] = {}
        self._levels = [m for m in GROUP_SIZES if m <= self.n_in]
        self._flags: np.ndarray | None = None

    @property
    def matrix(self) -> sp.csr_matrix:
        """The mask as CSR (built by the source when it holds none: only for rare counts)."""
        return self.rows.csr()

    def _chunks(self) -> Iterator[tuple[int, int, "_Levels"]]:
        """``(first row, rows, levels)`` per chunk: ``levels[k]`` holds the connections of
        every block of ``2**k`` inputs, ``[padded rows, width / 2**k]`` (uint8). The
        arrays are reused by the next chunk."""
        rows = min(self.chunk_rows, _ceil_div(self.n_out, _PAD_ROWS) * _PAD_ROWS)
        # np.empty, not np.zeros: numpy asks the kernel for huge pages only for the former
        bitmap = np.empty((rows, self.width), dtype=bool)
        levels = [bitmap.view(np.uint8)]
        while (1 << (len(levels) - 1)) < _PAD_COLUMNS:
            levels.append(np.empty((rows, levels[-1].shape[1] // 2), dtype=np.uint8))
        for start, stop in self.rows.fill_rows(self.chunk_rows, bitmap):
            height = _ceil_div(stop - start, _PAD_ROWS) * _PAD_ROWS
            yield start, stop - start, _Levels([level[:height] for level in levels])

    def _scratch(self, shape: tuple[int, ...], dtype: Any = bool) -> np.ndarray:
        """An array of ``shape`` for intermediate results, reused (its bytes are shared)."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if self._flags is None or self._flags.size < nbytes:
            self._flags = np.empty(max(nbytes, self.chunk_rows * self.width // 2), dtype=np.uint8)
        return self._flags[:nbytes].view(dtype).reshape(shape)

    def group_histogram(self, m: int) -> np.ndarray:
        """Blocks of ``m`` inputs holding 0, 1, ..., ``m`` connections (``m`` a power of two up to 128)."""
        level = int(m).bit_length() - 1
        if 1 << level != m or m > _PAD_COLUMNS:
            return _Connections(self.matrix).group_histogram(m)
        hist = np.zeros(m + 1, dtype=np.int64)
        blocks = _ceil_div(self.n_in, m)
        for _, rows, levels in self._chunks():
            hist += np.bincount(levels[level][:rows, :blocks].ravel(), minlength=m + 1)[: m + 1]
        return hist

    def n_blocks(self, m: int) -> int:
        return self.n_out * _ceil_div(self.n_in, m)

    def blocks_at_most(self, m: int, n: int) -> int:
        if 1 << (int(m).bit_length() - 1) != m or m > _PAD_COLUMNS:  # not a level of the bitmap
            return int(self.group_histogram(m)[: n + 1].sum())
        if (m, n) not in self._at_most:
            self._count(m, n)
        return self._at_most[(m, n)]

    def _count(self, m: int, n: int) -> None:
        """One pass for every count an N:M search and the 2:4 share can ask for (see
        :func:`_n_range`), the pair shares beside them; ``(m, n)`` too if it is none of those."""
        wanted = {(m, n), (4, 2)} | {(size, k) for size in self._levels for k in _n_range(self, size)}
        counts = dict.fromkeys(wanted, 0)
        pairs = {(2, 1): 0, (1, 2): 0}
        n_row_pairs = self.n_out // 2
        pair_blocks = _ceil_div(self.n_in, 2)
        for start, rows, levels in self._chunks():
            words = levels[0][:rows].view(np.uint64)
            # inputs 2j and 2j + 1 both present: the low byte of x & (x >> 8) in each pair
            both = np.right_shift(words, np.uint64(8), out=self._scratch(words.shape, np.uint64))
            np.bitwise_and(both, words, out=both)
            np.bitwise_and(both, _PAIR_BYTES, out=both)
            full_pairs = int(np.count_nonzero(both.view(bool)))
            pairs[(1, 2)] += 2 * full_pairs
            paired_rows = max(0, min(rows, 2 * n_row_pairs - start)) // 2
            all_words = levels[0].view(np.uint64)
            even, odd = all_words[0 : 2 * paired_rows : 2], all_words[1 : 2 * paired_rows : 2]
            both = np.bitwise_and(even, odd, out=self._scratch(even.shape, np.uint64))
            pairs[(2, 1)] += 2 * int(np.count_nonzero(both.view(bool)))
            for size, k in wanted:
                if (size, k) == (2, 1):  # a pair holds at most one connection unless it is full
                    counts[(size, k)] += rows * pair_blocks - full_pairs
                    continue
                level = levels[size.bit_length() - 1][:rows, : _ceil_div(self.n_in, size)]
                counts[(size, k)] += int(np.count_nonzero(np.less_equal(level, k, out=self._scratch(level.shape))))
        if self.n_in % 2:  # the last column alone is a tile one input wide
            pairs[(1, 2)] += self.rows.last_column_count()
        if self.n_out % 2:  # the last row alone is a tile one row high
            pairs[(2, 1)] += self.rows.last_row_count()
        self._at_most.update(counts)
        self._pairs.update(pairs)

    def pairs_in_full(self, rows: int, cols: int) -> int:
        if (rows, cols) not in self._pairs:
            self._count(4, 2)
        return self._pairs[(rows, cols)]

    def tile_stats(self, rows: int, cols: int) -> tuple[int, int, int, int, int]:
        tile_cols = _ceil_div(self.n_in, cols)
        n_tiles = _ceil_div(self.n_out, rows) * tile_cols
        level = int(cols).bit_length() - 1
        widths = np.minimum(cols, self.n_in - np.arange(tile_cols) * cols)
        occupied = n_full = in_full = gaps = 0
        for start, n_rows, levels in self._chunks():
            per_col = levels[level]
            height = per_col.shape[0]
            per_tile = per_col.reshape(height // rows, rows, -1).sum(axis=1, dtype=np.uint16)
            per_tile = per_tile[: _ceil_div(n_rows, rows), :tile_cols]
            first_tile = start // rows
            heights = np.minimum(rows, self.n_out - (first_tile + np.arange(per_tile.shape[0])) * rows)
            areas = heights[:, None] * widths[None, :]
            full = per_tile == areas
            partial = (per_tile > 0) & ~full
            occupied += int(np.count_nonzero(per_tile))
            n_full += int(np.count_nonzero(full))
            in_full += int(areas[full].sum())
            gaps += int((areas[partial] - per_tile[partial]).sum())
        return occupied, n_full, in_full, gaps, n_tiles


def _counter(mask: Any) -> "_Connections | _Bitmap":
    """The counting core for ``mask`` (or a source of its bitmap rows, see :class:`_CsrRows`):
    its bitmap when dense enough, else its connections."""
    source = mask if hasattr(mask, "fill_rows") else _CsrRows(mask)
    size = int(source.shape[0]) * int(source.shape[1])
    if size and source.nnz >= DENSE_COUNTING_DENSITY * size:
        return _Bitmap(source)
    return _Connections(source.csr())


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
    return _counter(mask).group_histogram(int(m))


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


def _block_shares(conn: Any, rows: int, cols: int) -> tuple[float, float, float, int, int]:
    occupied, n_full, in_full_count, gaps_partial, n_tiles = conn.tile_stats(rows, cols)
    in_full = float(in_full_count / conn.nnz) if conn.nnz else 1.0
    missing = conn.n_out * conn.n_in - conn.nnz
    # gaps outside empty tiles are the gaps of the occupied, not-full tiles
    gaps_in_empty = 1.0 - float(gaps_partial / missing) if missing else 1.0
    complying = int(n_tiles - occupied + n_full)
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
    return _block_shares(_counter(mask), int(rows), int(cols))[:3]


def _n_range(conn: Any, m: int) -> range:
    """The N that an N:M pattern could have: N <= M/2, density within FILL_TOLERANCE of N/M."""
    density = conn.nnz / (conn.n_out * conn.n_in)
    low = max(1, math.ceil(density * m / (1.0 + FILL_TOLERANCE) - 1e-9))
    high = min(m // 2, math.floor(density * m / (1.0 - FILL_TOLERANCE) + 1e-9))
    return range(low, high + 1)


def _best_nm(conn: Any) -> tuple[int, int, float] | None:
    """The N:M pattern with the smallest M that fits (see the module notes), or None."""
    for m in GROUP_SIZES:
        if m > conn.n_in:
            break
        candidates = _n_range(conn, m)
        if not candidates:
            continue
        from scipy import special

        blocks = conn.n_blocks(m)
        density = conn.nnz / (conn.n_out * conn.n_in)
        for n in candidates:
            complying = conn.blocks_at_most(m, n)
            share = float(complying / blocks)
            if share < COMPLIANCE_THRESHOLD:
                continue
            # as many complying blocks by chance, were the connections placed at random?
            by_chance = float(special.bdtr(n, m, density))
            if float(special.bdtrc(complying - 1, blocks, by_chance)) <= CHANCE_LEVEL:
                return n, m, share
    return None


def _pairs_in_full(conn: Any, rows: int, cols: int) -> float:
    """Share of connections in full 2x1 (``rows=2``) or 1x2 tiles, counted straight from
    the connections or the bitmap: it rules block patterns out without tallying every tile."""
    return conn.pairs_in_full(rows, cols) / conn.nnz


def _tiles_by_chance(conn: Any, area: int, complying: int, n_tiles: int) -> float:
    """Chance of at least ``complying`` of ``n_tiles`` tiles of ``area`` cells being empty
    or full, were the connections placed at random at the layer's density (a one-sided
    binomial tail; edge tiles are counted as whole ones)."""
    from scipy import special

    density = conn.nnz / (conn.n_out * conn.n_in)
    by_chance = density**area + (1.0 - density) ** area
    return float(special.bdtrc(complying - 1, n_tiles, by_chance)) if complying > 0 else 1.0


def _best_block(conn: Any) -> tuple[int, int, float] | None:
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
    bitmap_rows = getattr(mask, "bitmap_rows", None)
    if bitmap_rows is not None and hasattr(mask, "name"):
        # a layer read from a file offers its bitmap rows from the stored values: no CSR mask
        name = mask.name
        mask = bitmap_rows()
    elif hasattr(mask, "mask") and hasattr(mask, "name"):
        name = mask.name
        mask = mask.mask
    conn = _counter(mask)
    n_out, n_in, nnz = conn.n_out, conn.n_in, conn.nnz
    size = n_out * n_in
    total_4 = conn.n_blocks(4) if n_in else 0
    within_2_4 = conn.blocks_at_most(4, 2) if total_4 else 0
    compliance_2_4 = float(within_2_4 / total_4) if total_4 else 1.0
    runs_2_4 = bool(n_in % 4 == 0 and n_in > 0 and within_2_4 == total_4)
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
    """:func:`layer_pattern` of every layer of a Topology (or any iterable of Layers), in order.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.tile([1, 1, 0, 0, 0, 1, 0, 1], (6, 2)), np.ones((2, 6))], names=["fc1", "fc2"])
    >>> [(p.name, p.pattern) for p in layer_patterns(net)]
    [('fc1', '2:4'), ('fc2', 'dense')]
    """
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

    Examples
    --------
    >>> layer = LayerSparsity(name="fc1", requested=0.75, achieved=0.8)
    >>> round(layer.gap, 3), LayerSparsity(name="fc2", requested=None, achieved=0.5).gap
    (0.05, None)
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

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.eye(4)], names=["fc1"]).with_info(requested_sparsity=0.75)
    >>> report = sparsity_report(net)
    >>> report.requested, report.achieved, report.any_requested, report.layers[0].name
    (0.75, 0.75, True, 'fc1')
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

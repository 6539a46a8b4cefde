"""Shared machinery of the foreign-format readers: named tensors in, a Topology out.

Every reader turns its file into a list of :class:`Tensor` records (a key, the
array as stored, an explicit mask where the format has one, and the array's
layout) and hands them to :func:`build_topology`, which

- classifies them: 2-D arrays are linear layers, 3-D to 5-D arrays convolutions
  (channel-level layers), 1-D arrays biases (attached to the weight with the same
  prefix) or skipped, scalars and known buffers skipped;
- orders them: the format's own order, or a natural sort of the names
  (``layers.2`` before ``layers.10``) where the format has none;
- selects them by a regular expression over layer names (the ``layers`` option);
- turns every array into the ``[out, in]`` layout once, builds masks (explicit
  masks where given, otherwise the nonzero pattern) and weights;
- decides which layers chain: a layer whose inputs do not match the previous
  layer's outputs, an embedding or an attention projection becomes a
  *standalone* layer, and a warning saying so lands in ``topology.info["warnings"]``.

It also holds the guards that every reader shares: size limits checked against
declared sizes before anything is allocated, and the wrapper that turns any
failure inside a reader into one :class:`~topo.errors.TopoError` naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._policy import check_declared_size
from topo.progress import ProgressCallback
from topo.topology import Layer, Topology
from topo.values import natural_key

__all__ = [
    "Tensor",
    "MAX_TENSOR_BYTES",
    "MAX_EXPANSION",
    "EXPANSION_FLOOR_BYTES",
    "layer_name_from_key",
    "check_declared_size",
    "pair_masks",
    "build_topology",
    "reading",
    "one_line",
    "read_head",
    "layout_from_name",
    "apply_name_layouts",
]

# The budget lives in topo.formats._policy (configurable through TOPO_MAX_* variables);
# these names are its defaults, kept for readers that quote them.
#: Largest single array a reader allocates by default (declared size, before reading it).
MAX_TENSOR_BYTES = _policy.Limits.tensor_bytes
#: Default largest ratio of compressed data's declared size to its archive's size...
MAX_EXPANSION = _policy.Limits.expansion
#: ...applied only above this size, so that small, very compressible arrays still load.
EXPANSION_FLOOR_BYTES = _policy.EXPANSION_FLOOR_BYTES

_NUMERIC_KINDS = "biuf"

# Buffers that are 2-D but not weights: position ids, causal masks, rotary tables.
_BUFFER_RE = re.compile(
    r"(^|[._/])(position_ids|token_type_ids|num_batches_tracked|inv_freq|masked_bias|"
    r"causal_mask|rotary_emb\.\w+|attn\.bias|attention\.bias)(:\d+)?$"
)
_EMBEDDING_RE = re.compile(
    r"(^|[._/])(embed[a-z_]*|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|"
    r"token_type_embeddings|embeddings|shared)([._/:]|$)",
    re.IGNORECASE,
)
# Query / key / value projections: parallel branches of an attention block, not a chain.
_ATTENTION_RE = re.compile(
    r"(^|[._/])(q|k|v|qkv|query|key|value|q_proj|k_proj|v_proj|qkv_proj|c_attn|q_attn|"
    r"in_proj|wqkv|query_key_value|to_q|to_k|to_v|to_qkv|wq|wk|wv)$",
    re.IGNORECASE,
)
_WEIGHT_SUFFIX_RE = re.compile(r"([._/](weight|kernel|w)|_weight)(:\d+)?$", re.IGNORECASE)
_INDEX_SUFFIX_RE = re.compile(r":\d+$")


@dataclass
class Tensor:
    """One array of a file, as the reader found it.

    Parameters
    ----------
    key : str
        Its name in the file (state-dict key, variable name, initializer name).
    value : numpy.ndarray or scipy.sparse matrix
        The values as stored (a memory map is fine).
    mask : array-like, optional
        An explicit mask of the same shape as ``value`` (nonzero means kept).
    layout : {"out_in", "in_out"}
        For 2-D arrays, ``[out, in]`` (torch ``Linear``) or ``[in, out]`` (Keras,
        ONNX ``MatMul``, GPT-2 ``Conv1D``). For convolutions, ``"out_in"`` means
        ``[out, in, *kernel]`` (torch, ONNX) and ``"in_out"`` ``[*kernel, in, out]`` (Keras).
    name : str, optional
        The layer name; derived from ``key`` when omitted (``fc1.weight`` -> ``fc1``).
    kind : str, optional
        ``"embedding"``, ``"attention"`` or ``"recurrent"`` force a standalone layer;
        detected from the name when omitted.
    bias : array-like, optional
        A bias found by the reader; otherwise looked up among the 1-D tensors.
    groups : int
        Convolution groups (ONNX ``group``): the kernel's ``in`` is per group.
    source : str
        Where it came from (free text), e.g. ``"model.pt:fc1.weight"``.
    note : str
        A remark kept in the layer's ``info["note"]`` (e.g. how the mask was found).
    info : dict
        Extra facts kept in the layer's ``info``.

    Examples
    --------
    >>> import numpy as np
    >>> kernel = Tensor("dense/kernel:0", np.ones((4, 3)), layout="in_out", source="model.h5:dense/kernel:0")
    >>> kernel.key, kernel.layout, kernel.mask is None, kernel.groups
    ('dense/kernel:0', 'in_out', True, 1)
    >>> build_topology([kernel], path="model.h5", format="doc")["dense"].shape  # [out, in]
    (3, 4)
    """

    key: str
    value: Any
    mask: Any = None
    layout: str = "out_in"
    name: str | None = None
    kind: str | None = None
    bias: Any = None
    groups: int = 1
    source: str = ""
    note: str = ""
    info: dict = field(default_factory=dict)


# -- names --------------------------------------------------------------------------
def layer_name_from_key(key: str) -> str:
    """The layer a weight key belongs to: ``fc1.weight`` -> ``fc1``, ``dense/kernel:0`` -> ``dense``.

    Parameters
    ----------
    key : str
        A weight's name in its file.

    Returns
    -------
    str
        The key without its weight suffix (``.weight``, ``/kernel``, ``_weight``, ...)
        and index (``:0``); the key itself when nothing is left.

    Examples
    --------
    >>> layer_name_from_key("encoder.layers.3.fc1.weight")
    'encoder.layers.3.fc1'
    >>> layer_name_from_key("dense/kernel:0"), layer_name_from_key("params/Dense_0/kernel")
    ('dense', 'params/Dense_0')
    >>> layer_name_from_key("weight")
    'weight'
    """
    stripped = _WEIGHT_SUFFIX_RE.sub("", key)
    stripped = _INDEX_SUFFIX_RE.sub("", stripped)
    return stripped or _INDEX_SUFFIX_RE.sub("", key) or key


def _bias_candidates(key: str, name: str) -> list[str]:
    """Keys where the bias of weight ``key`` (layer ``name``) would be stored."""
    out = []
    base = _INDEX_SUFFIX_RE.sub("", key)
    suffix = key[len(base):]
    for sep in (".", "/", "_"):
        out.append(f"{name}{sep}bias")
        out.append(f"{name}{sep}bias{suffix}")
    for word in ("weight", "kernel"):
        if word in base:
            head, _, tail = base.rpartition(word)
            out.append(f"{head}bias{tail}{suffix}")
    return out


# -- layout from names --------------------------------------------------------------
_KERNEL_RE = re.compile(r"(^|[._/])(\w*_)?kernel$", re.IGNORECASE)
_TORCH_WEIGHT_RE = re.compile(r"(^|[._/])(\w*_)?weight(_orig)?$", re.IGNORECASE)


def layout_from_name(key: str) -> str | None:
    """The layout a parameter's name declares, whatever its shape.

    The one rule every reader follows: a ``kernel`` (Keras, Flax, Haiku-style names,
    also ``recurrent_kernel``) is ``[in, out]`` (convolutions ``[*kernel, in, out]``),
    a torch ``weight`` (also ``in_proj_weight``, ``weight_orig``) is ``[out, in]``
    (convolutions ``[out, in, *kernel]``). Square matrices make the difference
    invisible in the shapes, so only the name can tell.

    Parameters
    ----------
    key : str
        The parameter's full name (``params/Dense_0/kernel``, ``fc1.weight``,
        ``dense/kernel:0``).

    Returns
    -------
    {"in_out", "out_in"} or None
        None when the name says nothing (``w``, ``W_0``, ``arr_1``).

    Examples
    --------
    >>> layout_from_name("params/Dense_0/kernel"), layout_from_name("fc1.weight")
    ('in_out', 'out_in')
    >>> layout_from_name("dense/kernel:0"), layout_from_name("layer0") is None
    ('in_out', True)
    """
    stripped = _INDEX_SUFFIX_RE.sub("", str(key))
    if _KERNEL_RE.search(stripped):
        return "in_out"
    if _TORCH_WEIGHT_RE.search(stripped):
        return "out_in"
    return None


def apply_name_layouts(tensors: Sequence["Tensor"]) -> list[str]:
    """Set every tensor's layout from its name (:func:`layout_from_name`).

    Tensors whose name says nothing keep the layout the reader gave them; the keys of
    those with two or more dimensions (masks and known buffers aside) are returned, so the reader can decide them
    another way and say so in its warnings (never silently).

    Parameters
    ----------
    tensors : sequence of Tensor
        Changed in place (their ``layout``).

    Returns
    -------
    list of str
        Keys of the 2-D and larger tensors whose names say nothing.

    Examples
    --------
    >>> import numpy as np
    >>> tensors = [Tensor("Dense_0/kernel", np.ones((3, 2))), Tensor("fc.weight", np.ones((2, 2))),
    ...            Tensor("W_1", np.ones((2, 2)))]
    >>> apply_name_layouts(tensors)
    ['W_1']
    >>> [t.layout for t in tensors]
    ['in_out', 'out_in', 'out_in']
    """
    unknown = []
    for t in tensors:
        decided = layout_from_name(t.key)
        if decided is not None:
            t.layout = decided
        elif len(np.shape(t.value)) >= 2 and not _BUFFER_RE.search(t.key) and not _MASK_KEY_RE.match(t.key):
            unknown.append(t.key)
    return unknown


# -- guards -------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name).

    Parameters
    ----------
    exc : BaseException
        Often raised by a third-party library on corrupt input.

    Returns
    -------
    str
        The first line, stripped and cut at 300 characters; the exception type's
        name when the message is empty.

    Examples
    --------
    >>> one_line(ValueError("  bad header" + chr(10) + "  at byte 8"))
    'bad header'
    >>> one_line(ValueError("x" * 400)) == "x" * 300, one_line(EOFError())
    (True, 'EOFError')
    """
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else ""
    return line[:300] if line else type(exc).__name__


def read_head(path: Path, n: int = 64) -> bytes:
    """The first ``n`` bytes of a file, or ``b""`` when it cannot be read.

    Parameters
    ----------
    path : Path
        The file.
    n : int
        How many bytes at most.

    Returns
    -------
    bytes

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "w.npy"
    >>> np.save(path, np.eye(2))
    >>> read_head(path, 6)[1:], read_head(path.parent / "missing", 6)  # the .npy magic, after its first byte
    (b'NUMPY', b'')
    >>> temporary.cleanup()
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(n)
    except OSError:
        return b""


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn every failure inside a reader into one TopoError that names the file.

    Parameters
    ----------
    path : Path
        The file being read.
    what : str
        What kind of file it is (for the message), e.g. ``"ONNX model"``.

    Raises
    ------
    TopoError
        For any exception raised inside the block: a TopoError without a path gets
        this one; other exceptions become ``not a readable WHAT (first line)``.

    Examples
    --------
    >>> with reading("model.onnx", "ONNX model"):
    ...     raise KeyError("graph")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.onnx: not a readable ONNX model ('graph')
    >>> with reading("model.onnx", "ONNX model"):
    ...     raise TopoError("no weights")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.onnx: no weights
    """
    try:
        yield
    except TopoError as exc:
        if exc.path is None:
            raise TopoError(str(exc), path=path) from None
        raise
    except MemoryError:
        raise TopoError(f"not enough memory to read this {what}", path=path) from None
    except RecursionError:
        raise TopoError(f"not a readable {what} (nested too deeply)", path=path) from None
    except Exception as exc:  # corrupt input surfaces as any exception type of any library
        raise TopoError(f"not a readable {what} ({one_line(exc)})", path=path) from None


# -- masks beside weights -----------------------------------------------------------
_MASK_KEY_RE = re.compile(r"^(?P<head>.*?)(?P<sep>[._/])?(?P<word>weight_mask|mask)(?P<idx>:\d+)?$")


def pair_masks(tensors: Sequence[Tensor]) -> tuple[list[Tensor], list[str]]:
    """Attach tensors named like masks to the weights they belong to.

    ``X.weight`` is paired with ``X.weight_mask``, ``X.mask``, ``X_mask`` or
    ``X.weight.mask`` of the same shape. Masks without a weight stay as tensors of
    their own (a mask-only layer). Returns the tensors and a list of notes.

    Parameters
    ----------
    tensors : sequence of Tensor
        A reader's tensors; the weights that receive a mask are changed in place.

    Returns
    -------
    tensors : list of Tensor
        The tensors without the masks that were attached.
    notes : list of str

    Examples
    --------
    >>> import numpy as np
    >>> tensors = [Tensor("fc1.weight", np.eye(2)), Tensor("fc1.weight_mask", np.array([[1, 1], [0, 1]])),
    ...            Tensor("fc2.mask", np.ones((1, 2)))]
    >>> kept, notes = pair_masks(tensors)
    >>> [t.key for t in kept], kept[0].mask.tolist(), kept[0].note
    (['fc1.weight', 'fc2.mask'], [[1, 1], [0, 1]], "mask from 'fc1.weight_mask'")
    """
    by_key = {t.key: t for t in tensors}
    used: set[str] = set()
    notes: list[str] = []
    for t in tensors:
        match = _MASK_KEY_RE.match(t.key)
        if match is None or t.key in used:
            continue
        head = match.group("head")
        candidates = [
            head,
            f"{head}.weight",
            f"{head}/kernel{match.group('idx') or ''}",
            f"{head}.kernel",
            f"{head}_weight",
        ]
        if match.group("word") == "weight_mask":
            candidates.insert(0, f"{head}{match.group('sep') or ''}weight")
        for cand in candidates:
            target = by_key.get(cand)
            if target is None or target is t or target.mask is not None:
                continue
            if np.shape(target.value) != np.shape(t.value):
                continue
            target.mask = t.value
            target.note = (target.note + "; " if target.note else "") + f"mask from {t.key!r}"
            used.add(t.key)
            break
    return [t for t in tensors if t.key not in used], notes


# -- conversion to [out, in] ----------------------------------------------------------
def _numeric(value: Any, key: str, path: Path) -> None:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        raise TopoError(f"{key!r} is not an array", path=path)
    if np.dtype(dtype).kind not in _NUMERIC_KINDS:
        raise TopoError(
            f"{key!r} has non-numeric dtype {np.dtype(dtype)}; topo reads numeric weights only",
            path=path,
        )


def _n_out(t: Tensor) -> int:
    shape = np.shape(t.value)
    return int(shape[-1] if t.layout == "in_out" else shape[0])


#: Cells read at a time from a tensor that can be read row by row (1 Mi cells: the
#: scratch of one block stays in the CPU caches between the passes over it).
ROW_BLOCK_CELLS = 2**20

#: Rows at least this wide have their column indices found row by row (one short
#: ``nonzero`` per row, written straight into int32); narrower ones through the
#: cell numbers of the whole block, where a Python step per row would cost more.
_ROW_BY_ROW_WIDTH = 2048

#: IEEE-style floats by width: the bits that are not the sign (zero when the value is
#: +0 or -0) and the largest of those bits that is not NaN (the infinity, all exponent
#: bits set): the mask is ``bits & magnitude != 0``, NaN ``bits & magnitude > floor``.
_FLOAT_BITS = {
    np.dtype(np.float16): (np.uint16, 0x7FFF, 0x7C00),
    np.dtype(np.float32): (np.uint32, 0x7FFFFFFF, 0x7F800000),
    np.dtype(np.float64): (np.uint64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000),
}


#: numpy >= 2 counts set bits in one pass (see :func:`_row_counts`).
_BITWISE_COUNT = getattr(np, "bitwise_count", None)


def _row_blocks(value: Any, raw: bool = False, rows: int | None = None) -> Iterator[np.ndarray]:
    """A 2-D tensor that can be read by rows (see ``StoredTensor``) in blocks of ``rows``
    rows (by default :data:`ROW_BLOCK_CELLS` cells); each block is valid until the next
    one is read. With ``raw`` the blocks of a stored float tensor are its bits as
    unsigned integers (see ``StoredTensor.float_bits``)."""
    n_rows, n_cols = (int(s) for s in value.shape)
    step = max(1, ROW_BLOCK_CELLS // max(n_cols, 1)) if rows is None else max(1, int(rows))
    if hasattr(value, "row_blocks"):  # blocks straight from a memory map of the file
        yield from value.row_blocks(step, raw=raw)
        return
    buffer = np.empty(min(step, n_rows) * n_cols * np.dtype(value.dtype).itemsize + 64, dtype=np.uint8)
    for start in range(0, n_rows, step):
        yield value.read_rows(start, min(n_rows, start + step), buffer=buffer)


def _by_rows(t: Tensor) -> bool:
    """Whether ``t``'s mask can be built block by block from the file, never holding the whole array."""
    return t.mask is None and hasattr(t.value, "read_rows") and len(np.shape(t.value)) == 2


def _float_bits(value: Any) -> tuple[Any, int, int] | None:
    """``(unsigned dtype, magnitude bits, NaN floor)`` when ``value``'s zeros and NaN can be
    told from its bits (see :data:`_FLOAT_BITS`); None otherwise."""
    stored = getattr(value, "float_bits", None)
    if stored is not None:  # a stored tensor in a dtype numpy lacks (bfloat16, float8)
        return stored
    dtype = np.dtype(getattr(value, "dtype", np.uint8))
    return _FLOAT_BITS.get(dtype) if dtype.isnative else None


class _NonzeroScratch:
    """Buffers reused by every block of one tensor (fewer page faults than fresh arrays)."""

    def __init__(self, cells: int, bits_dtype: Any) -> None:
        self.nonzero = np.empty(cells, dtype=bool)
        self.bits = np.empty(cells if bits_dtype is not None else 0, dtype=bits_dtype or np.uint8)

    def find(self, block: np.ndarray, float_bits: tuple[Any, int, int] | None,
             out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """``block != 0`` (NaN counts as nonzero; written into ``out`` when given, a bool
        array of the block's shape) and the number of NaN in ``block``."""
        nonzero = self.nonzero[: block.size].reshape(block.shape) if out is None else out
        if float_bits is None:
            np.not_equal(block, 0, out=nonzero)
            if block.dtype.kind == "f":
                return nonzero, int(np.count_nonzero(np.isnan(block)))
            return nonzero, 0
        bits_dtype, magnitude, nan_floor = float_bits
        # integer work on the bits: float16 has no vectorised comparison in numpy
        bits = self.bits[: block.size].reshape(block.shape)
        np.bitwise_and(block.view(bits_dtype), bits_dtype(magnitude), out=bits)
        np.not_equal(bits, 0, out=nonzero)
        n_nan = 0
        if block.size and bits.max() > nan_floor:  # NaN are rare: counted only where present
            n_nan = int(np.count_nonzero(bits > nan_floor))
        return nonzero, n_nan


def _row_counts(nonzero: np.ndarray) -> np.ndarray:
    """True cells per row of a C-contiguous 2-D boolean block."""
    if _BITWISE_COUNT is not None and nonzero.shape[1] % 8 == 0 and nonzero.flags.c_contiguous:
        # a bool is one byte, 0 or 1: the set bits of eight cells read as one word are its True cells
        return _BITWISE_COUNT(nonzero.view(np.uint64)).sum(axis=1, dtype=np.int64)
    return np.count_nonzero(nonzero, axis=1)


def _columns_into(nonzero: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """Write the column index of every True cell of a 2-D block, row by row (CSR order), into ``out``."""
    n_cols = nonzero.shape[1]
    if n_cols >= _ROW_BY_ROW_WIDTH:
        begin = 0
        for row, end in enumerate(np.cumsum(counts).tolist()):
            if end > begin:
                out[begin:end] = nonzero[row].nonzero()[0]
            begin = end
        return
    flat = np.flatnonzero(nonzero)  # cell numbers, less each one's row start
    flat -= np.repeat(np.arange(nonzero.shape[0], dtype=flat.dtype) * n_cols, counts)
    out[:] = flat


def _raw_bits(value: Any) -> tuple[tuple[Any, int, int] | None, bool]:
    """``value``'s float bits (see :func:`_float_bits`) and whether blocks are read as those bits."""
    float_bits = _float_bits(value)
    return float_bits, float_bits is not None and hasattr(value, "float_bits")


def _mask_by_rows(value: Any) -> tuple[sp.csr_matrix, int]:
    """The CSR mask (nonzero pattern; NaN counts as nonzero) of a tensor read block by block,
    and its number of NaN values.

    Floats are tested on their bits (integer operations; ``-0.0`` is zero, NaN nonzero),
    which also spares decoding bfloat16 and float8 stored tensors. A first pass counts
    the connections of every row, a second writes their columns straight into the
    mask's own index array (a tensor of one block is looked at once): memory holds the
    mask and one block's scratch, nothing the size of the tensor besides.
    """
    n_out, n_in = (int(s) for s in value.shape)
    float_bits, raw = _raw_bits(value)
    step_rows = max(1, ROW_BLOCK_CELLS // max(n_in, 1))
    scratch = _NonzeroScratch(min(step_rows, n_out) * n_in, None if float_bits is None else float_bits[0])
    counts = np.zeros(n_out, dtype=np.int64)
    n_nan = row = 0
    nonzero = None
    for block in _row_blocks(value, raw=raw):
        nonzero, block_nan = scratch.find(block, float_bits)
        n_nan += block_nan
        counts[row : row + block.shape[0]] = _row_counts(nonzero)
        row += block.shape[0]
        del block
    # one block: its cells are still in the scratch
    last = nonzero if n_out <= step_rows else None
    del nonzero
    return _mask_from_counts(value, counts, scratch, last), n_nan


def _mask_from_counts(value: Any, counts: np.ndarray, scratch: "_NonzeroScratch | None" = None,
                      nonzero: np.ndarray | None = None) -> sp.csr_matrix:
    """The CSR mask of a tensor read block by block whose connections per row, ``counts``,
    are known: one pass writes the columns straight into the mask's index array (none
    when ``nonzero``, the whole tensor's cells, is still at hand)."""
    n_out, n_in = (int(s) for s in value.shape)
    float_bits, raw = _raw_bits(value)
    index_dtype = np.int32 if n_in <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=index_dtype)
    if nonzero is not None:
        _columns_into(nonzero, counts, indices)
    elif n_out:
        if scratch is None:
            step_rows = max(1, ROW_BLOCK_CELLS // max(n_in, 1))
            scratch = _NonzeroScratch(min(step_rows, n_out) * n_in, None if float_bits is None else float_bits[0])
        row = 0
        for block in _row_blocks(value, raw=raw):
            found, _ = scratch.find(block, float_bits)
            stop = row + block.shape[0]
            _columns_into(found, counts[row:stop], indices[indptr[row] : indptr[stop]])
            row = stop
            del block, found
    del scratch
    if indptr[-1] <= np.iinfo(np.int32).max and index_dtype == np.int32:
        indptr = indptr.astype(np.int32)
    mask = sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, indptr), shape=(n_out, n_in), copy=False)
    mask.has_sorted_indices = True  # built in CSR order: no pass over the indices to find out
    return mask


def _degrees_by_rows(value: Any, bitmap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Connections per row and per column of a tensor read block by block (NaN counts as a
    connection), and its number of NaN values: one pass over the stored bits. With
    ``bitmap`` (bool, the tensor's shape) the mask is written into it on the way."""
    n_out, n_in = (int(s) for s in value.shape)
    float_bits, raw = _raw_bits(value)
    step_rows = max(1, ROW_BLOCK_CELLS // max(n_in, 1))
    scratch = _NonzeroScratch(min(step_rows, n_out) * n_in, None if float_bits is None else float_bits[0])
    per_row = np.zeros(n_out, dtype=np.int64)
    per_column = np.zeros(n_in, dtype=np.int64)
    # a column of one block holds at most step_rows connections: the narrowest sum that fits
    column_sum = np.uint16 if step_rows <= np.iinfo(np.uint16).max else np.int64
    n_nan = row = 0
    for block in _row_blocks(value, raw=raw):
        out = None if bitmap is None else bitmap[row : row + block.shape[0]]
        nonzero, block_nan = scratch.find(block, float_bits, out=out)
        n_nan += block_nan
        per_row[row : row + block.shape[0]] = _row_counts(nonzero)
        per_column += np.add.reduce(nonzero.view(np.uint8), axis=0, dtype=column_sum)
        row += block.shape[0]
        del block, nonzero
    return per_row, per_column, n_nan


class _BitmapBuffer:
    """One buffer for the bitmaps of the layers of one read, each layer's in turn: a fresh
    array per layer would cost a page fault per page (about as much as counting it).
    ``generation`` tells a layer whether the buffer still holds its bitmap."""

    def __init__(self) -> None:
        self.array = np.empty(0, dtype=bool)
        self.generation = 0

    def take(self, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """A bool array of ``shape`` (the previous layer's bitmap is gone) and its generation."""
        cells = int(shape[0]) * int(shape[1])
        if self.array.size < cells:
            self.array = np.empty(0, dtype=bool)  # the old one freed before the new one is taken
            self.array = np.empty(cells, dtype=bool)
        self.generation += 1
        return self.array[:cells].reshape(shape), self.generation


class _StoredRows:
    """The bitmap rows of a stored tensor ``[out, in]`` for the pattern counts of
    :mod:`topo.analysis.patterns` (the protocol of its ``_CsrRows``), written from the
    stored bits a chunk at a time: the layer's CSR mask is never needed for them."""

    def __init__(self, layer: "StoredLayer") -> None:
        self.layer = layer
        self.shape = layer.shape
        self.nnz = layer.nnz

    def fill_rows(self, rows: int, bitmap: np.ndarray) -> Iterator[tuple[int, int]]:
        """Rows ``start:stop`` copied from the layer's bitmap into the top of ``bitmap``,
        ``rows`` at a time, every other cell of the top ``rows`` (rounded up to a
        multiple of 64) False."""
        kept = self.layer.bitmap()
        n_out, n_in = self.shape
        if bitmap.shape[1] > n_in:
            bitmap[:, n_in:] = False
        for start in range(0, n_out, max(1, rows)):
            stop = min(n_out, start + max(1, rows))
            bitmap[: stop - start, :n_in] = kept[start:stop]
            height = min(bitmap.shape[0], -(-(stop - start) // 64) * 64)
            bitmap[stop - start : height] = False
            yield start, stop

    def last_row_count(self) -> int:
        return int(self.layer.stored_fan_in[-1])

    def last_column_count(self) -> int:
        return int(self.layer.stored_fan_out[-1])

    def csr(self) -> sp.csr_matrix:
        return self.layer.mask


class StoredLayer(Layer):
    """A layer of a stored tensor read for its counts: the CSR mask is built on first use.

    What one pass over the stored bits gives is kept (connections per row and per
    column), so ``fan_in``, ``fan_out``, ``nnz`` and the sparsity pattern
    (:meth:`bitmap_rows`) cost no mask; anything that asks for ``mask`` gets it, read
    from the file then. Handed to a reader's ``on_layer`` (:func:`topo.formats.scan`);
    :meth:`with_` returns a plain :class:`~topo.topology.Layer`.
    """

    stored_value: Any  # the stored tensor, read by rows
    stored_bitmap: tuple[np.ndarray, _BitmapBuffer | None, int]  # its mask, one byte per cell, and where it lives
    stored_fan_in: np.ndarray  # connections per row (output neuron)
    stored_fan_out: np.ndarray  # connections per column (input neuron)
    stored_transposed: bool  # stored [in, out] (a GPT-2 Conv1D weight): the bitmap is too

    def __init__(self, name: str, value: Any, *, bitmap: tuple[np.ndarray, _BitmapBuffer | None, int],
                 fan_in: np.ndarray, fan_out: np.ndarray, transposed: bool = False,
                 bias: np.ndarray | None = None, source: str = "", info: Mapping[str, Any] | None = None) -> None:
        from types import MappingProxyType

        for key, item in (("name", str(name)), ("weight", None), ("bias", bias), ("stats", MappingProxyType({})),
                          ("source", source), ("standalone", False), ("info", MappingProxyType(dict(info or {}))),
                          ("stored_value", value), ("stored_bitmap", bitmap), ("stored_fan_in", fan_in),
                          ("stored_fan_out", fan_out), ("stored_transposed", transposed)):
            object.__setattr__(self, key, item)

    @functools.cached_property
    def mask(self) -> sp.csr_matrix:  # type: ignore[override]
        if not self.stored_transposed:
            return _mask_from_counts(self.stored_value, self.stored_fan_in, nonzero=self._stored_bitmap())
        # built in the stored layout [in, out] (its rows are the inputs), then turned once
        mask = _mask_from_counts(self.stored_value, self.stored_fan_out, nonzero=self._stored_bitmap()).T.tocsr()
        mask.sort_indices()
        return mask

    def _stored_bitmap(self) -> np.ndarray:
        """The mask in the stored layout, one byte per cell, read again from the file when the
        shared buffer it was counted into has moved on to another layer."""
        array, buffer, generation = self.stored_bitmap
        if buffer is not None and buffer.generation != generation:
            array = np.empty(np.shape(self.stored_value), dtype=bool)
            _degrees_by_rows(self.stored_value, array)
            object.__setattr__(self, "stored_bitmap", (array, None, 0))
        return array

    def bitmap(self) -> np.ndarray:
        """The mask ``[out, in]`` as a bool array (one byte per cell; a transposed view when
        stored ``[in, out]``)."""
        array = self._stored_bitmap()
        return array.T if self.stored_transposed else array

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.stored_fan_in.size), int(self.stored_fan_out.size))

    @property
    def n_out(self) -> int:
        return int(self.stored_fan_in.size)

    @property
    def n_in(self) -> int:
        return int(self.stored_fan_out.size)

    @property
    def nnz(self) -> int:
        return int(self.stored_fan_in.sum())

    @property
    def fan_in(self) -> np.ndarray:
        return self.stored_fan_in.copy()

    @property
    def fan_out(self) -> np.ndarray:
        return self.stored_fan_out.copy()

    def bitmap_rows(self) -> _StoredRows:
        """The source of the mask's bitmap rows for :func:`topo.analysis.patterns.layer_pattern`."""
        return _StoredRows(self)

    def with_(self, **changes: Any) -> Layer:
        """A plain Layer with some fields replaced (the mask is built unless replaced)."""
        kept = {f.name: getattr(self, f.name) for f in fields(Layer) if f.name not in changes}
        return Layer(**kept, **changes)


def _nan_count(values: Any) -> int:
    if sp.issparse(values):
        values = values.data
    if hasattr(values, "read_rows") and len(np.shape(values)) == 2:
        if np.dtype(values.dtype).kind != "f":
            return 0
        return sum(int(np.count_nonzero(np.isnan(block))) for block in _row_blocks(values))
    arr = np.asarray(values)
    if arr.dtype.kind != "f":
        return 0
    return int(np.count_nonzero(np.isnan(arr)))


def _linear(t: Tensor, weights: bool) -> tuple[Any, np.ndarray | None, dict]:
    """Mask (CSR or dense bool) and weight, both [out, in], of a 2-D tensor."""
    value = t.value
    transpose = t.layout == "in_out"
    info: dict[str, Any] = {"kind": "linear"}
    if transpose:
        info["stored_layout"] = "[in, out]"
    if not weights and _by_rows(t):  # masks only: never hold the whole array
        mask, info["nan_count"] = _mask_by_rows(value)
        return (mask.T.tocsr() if transpose else mask), None, info
    if sp.issparse(value):
        csr = sp.csr_matrix(value.T if transpose else value)
        if t.mask is not None:
            mask = _dense_or_sparse_mask(t.mask, transpose)
        else:
            csr.eliminate_zeros()  # explicit zeros are not connections; NaN stays (NaN != 0)
            mask = csr.astype(bool)
        weight = np.asarray(csr.toarray()) if weights and csr.dtype != bool else None
        return mask, weight, info
    arr = np.asarray(value)
    if transpose:
        arr = arr.T
    mask = _dense_or_sparse_mask(t.mask, transpose) if t.mask is not None else (arr != 0)
    weight = arr if weights and arr.dtype != bool else None
    return mask, weight, info


def _dense_or_sparse_mask(mask: Any, transpose: bool) -> Any:
    if sp.issparse(mask):
        m = sp.csr_matrix(mask.T if transpose else mask)
        m.eliminate_zeros()
        return m.astype(bool)
    arr = np.asarray(mask)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TopoError(f"mask has non-numeric dtype {arr.dtype}")
    arr = arr.T if transpose else arr
    return arr != 0


def _conv(t: Tensor) -> tuple[np.ndarray, dict]:
    """Channel-level mask [out, in * groups] of a convolution kernel, and its facts."""
    arr = np.asarray(t.value.toarray() if sp.issparse(t.value) else t.value)
    mask_src = arr if t.mask is None else np.asarray(t.mask)
    if mask_src.shape != arr.shape:
        raise TopoError(f"{t.key!r}: mask shape {mask_src.shape} differs from weight shape {arr.shape}")
    nd = arr.ndim
    if t.layout == "in_out":  # Keras [*kernel, in, out] -> [out, in, *kernel]
        mask_src = np.transpose(mask_src, (nd - 1, nd - 2, *range(nd - 2)))
    kernel_mask = mask_src != 0
    n_out, n_in_group = kernel_mask.shape[:2]
    kernel_size = [int(s) for s in kernel_mask.shape[2:]]
    channel = kernel_mask.reshape(n_out, n_in_group, -1).any(axis=2)
    groups = max(int(t.groups or 1), 1)
    if groups > 1 and n_out % groups == 0:
        # Output channel i of group g sees input channels g*n_in_group ... (g+1)*n_in_group - 1.
        # Built sparse: a dense block-diagonal matrix grows with groups squared (200,000 groups
        # of one channel each declare a 40 GB mask in a 0.8 MB file), its connections do not.
        per_group = n_out // groups
        rows, cols = np.nonzero(channel)
        cols = cols + (rows // per_group) * n_in_group
        channel = sp.csr_matrix(
            (np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n_out, n_in_group * groups)
        )
    info = {
        "kind": "conv",
        "kernel_size": kernel_size,
        "kernel_density": float(kernel_mask.mean()) if kernel_mask.size else 0.0,
        "kernel_nnz": int(np.count_nonzero(kernel_mask)),
        "groups": groups,
    }
    return channel, info


# -- warnings -----------------------------------------------------------------------
def _summarise(category: str, items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return f"{category}: {shown}{more}"


# -- budget ---------------------------------------------------------------------------
def _check_layer_budget(t: Tensor, weights: bool, path: Path, warnings: list[str]) -> bool:
    """Check the layer ``t`` will become against the budget before it is built.

    Returns whether its weights can be kept: a sparse array whose dense weight matrix
    would be over the dense-cell budget is kept as a mask only, with a warning.
    """
    shape = tuple(int(s) for s in np.shape(t.value))
    what = f"layer {t.key!r}"
    current = _policy.limits()
    if len(shape) == 2:
        n_out, n_in = (shape[1], shape[0]) if t.layout == "in_out" else shape
        dense_value = not sp.issparse(t.value)
        _policy.check_layer_shape(n_out, n_in, path=path, what=what, dense=dense_value, current=current)
        if dense_value or not weights:
            return weights
        try:
            _policy.check_layer_shape(n_out, n_in, path=path, what=what, dense=True, current=current)
        except TopoError:
            warnings.append(f"{t.key}: weights not kept (a dense {n_out:,} x {n_in:,} matrix is over the "
                            "TOPO_MAX_DENSE_CELLS budget); mask only")
            return False
        return weights
    # convolutions: the kernel mask and the channel mask [out, in * groups] are dense
    if t.layout == "in_out":
        n_out, n_in_group = shape[-1], shape[-2]
    else:
        n_out, n_in_group = shape[0], shape[1]
    groups = max(int(t.groups or 1), 1)
    # A grouped channel mask is built sparse (block-diagonal): only one group's block
    # [out, in / groups] is ever dense.
    grouped = groups > 1 and n_out % groups == 0
    _policy.check_layer_shape(n_out, n_in_group * groups, path=path, what=what, dense=not grouped)
    if grouped:
        _policy.check_dense_cells(n_out * n_in_group, path=path, what=f"the channel blocks of {what}")
    _policy.check_dense_cells(math.prod(shape), path=path, what=f"the kernel of {what}")
    return weights


# -- network order and grouped convolutions ----------------------------------------------
_STANDALONE_KINDS = ("embedding", "attention", "recurrent")
# Convolutions on a residual branch take the block's input, not the previous layer's output.
_SIDE_BRANCH_RE = re.compile(r"(^|[._/])(downsample|shortcut|skip|residual|identity)([._/]|$)", re.IGNORECASE)
#: Most steps spent looking for a shape-consistent order (beyond it the declared order stays).
MAX_ORDER_STEPS = 200_000


def _with_kind(t: Tensor) -> Tensor:
    """``t`` with its ``kind`` detected from the names where the reader set none.

    Embeddings also get their layout flipped.
    """
    if t.kind is not None:
        return t
    if _EMBEDDING_RE.search(t.key):
        layout = t.layout
        if len(np.shape(t.value)) == 2:
            # Embedding tables are stored [vocab, dim] in every framework: token j feeds
            # feature i, so topo's [out, in] is the transpose.
            layout = "in_out" if t.layout == "out_in" else "out_in"
        return replace(t, kind="embedding", layout=layout)
    if _ATTENTION_RE.search(t.name or t.key):
        return replace(t, kind="attention")
    return t


def _dims(t: Tensor) -> tuple[int, int, int]:
    """``(n_in, n_out, n_in_per_group)`` of a weight as it will be built."""
    shape = np.shape(t.value)
    if len(shape) == 2:
        n_in, n_out = (shape[0], shape[1]) if t.layout == "in_out" else (shape[1], shape[0])
        return int(n_in), int(n_out), int(n_in)
    n_out, n_group = (shape[-1], shape[-2]) if t.layout == "in_out" else (shape[0], shape[1])
    return int(n_group) * max(int(t.groups or 1), 1), int(n_out), int(n_group)


def _infer_groups(matrices: Sequence[Tensor]) -> tuple[list[Tensor], list[str]]:
    """The convolutions whose file records no groups, with the groups their neighbours imply.

    A kernel ``[out, in/g, *k]`` after a convolution with ``in`` outputs (``in`` a
    multiple of ``in/g``, ``out`` a multiple of ``g``) is grouped ``g`` ways (``g = in``:
    depthwise). Convolutions on a residual side branch (``downsample``, ``shortcut``)
    are left alone. Returns the tensors (new ones where groups were inferred) and notes
    naming what was inferred.
    """
    notes: list[str] = []
    result: list[Tensor] = []
    prev: Tensor | None = None
    for t in matrices:
        if t.kind in _STANDALONE_KINDS:
            result.append(t)
            continue
        ndim = len(np.shape(t.value))
        if ndim > 2 and prev is not None and len(np.shape(prev.value)) > 2 and max(int(t.groups or 1), 1) == 1 \
                and not _SIDE_BRANCH_RE.search(t.key):
            _, n_out, n_group = _dims(t)
            prev_out = _dims(prev)[1]
            if n_group and prev_out != n_group and prev_out % n_group == 0:
                groups = prev_out // n_group
                if n_out % groups == 0:
                    t = replace(t, groups=groups, info={**t.info, "groups_inferred": True})
                    notes.append(f"{t.name or t.key} ({groups} groups: [{n_out}, {n_group}, ...] after "
                                 f"{prev_out} channels)")
        result.append(t)
        prev = t
    return result, notes


def _chain_orders(edges: Sequence[tuple[int, int]], start_nodes: Sequence[int], limit: int) -> list[list[int]]:
    """Up to two orders of all ``edges`` (n_in, n_out) in which each output feeds the next input.

    A depth-first search (iterative: networks can be deeper than Python's recursion)
    that tries edges in their declared order, so the first order found is the one
    closest to the declaration. Returns ``[]`` when there is none; gives up after
    ``limit`` steps with what it found by then.
    """
    leaving: dict[int, list[int]] = {}
    for i, (n_in, _) in enumerate(edges):
        leaving.setdefault(n_in, []).append(i)
    found: list[list[int]] = []
    steps = 0
    for start in start_nodes:
        used = [False] * len(edges)
        order: list[int] = []
        # One frame per position in the order: the node it leaves from and the next candidate to try.
        frames: list[list[int]] = [[start, 0]]
        while frames and len(found) < 2 and steps <= limit:
            frame = frames[-1]
            node, next_candidate = frame
            candidates = leaving.get(node, [])
            while next_candidate < len(candidates) and used[candidates[next_candidate]]:
                next_candidate += 1
            if next_candidate >= len(candidates):
                frames.pop()  # dead end: undo the edge that led here
                if order:
                    used[order.pop()] = False
                continue
            frame[1] = next_candidate + 1
            edge = candidates[next_candidate]
            steps += 1
            used[edge] = True
            order.append(edge)
            if len(order) == len(edges):
                found.append(list(order))
                used[order.pop()] = False
                continue
            frames.append([edges[edge][1], 0])
        if len(found) >= 2 or steps > limit:
            break
    return found


def _shape_order(chainable: Sequence[Layer]) -> tuple[list[int] | None, bool]:
    """An order of ``chainable`` layers in which every layer's outputs are the next one's inputs.

    Returns ``(order, ambiguous)``: ``order`` is None when the declared order already
    chains or no such order exists; ``ambiguous`` when more than one order chains.
    """
    if len(chainable) < 2 or all(a.n_out == b.n_in for a, b in zip(chainable, chainable[1:])):
        return None, False
    edges = [(layer.n_in, layer.n_out) for layer in chainable]
    # An Eulerian trail through the shape graph: it starts where a size is consumed once
    # less than produced (the network input), or anywhere on a cycle.
    balance: dict[int, int] = {}
    for n_in, n_out in edges:
        balance[n_in] = balance.get(n_in, 0) + 1
        balance[n_out] = balance.get(n_out, 0) - 1
    sources = [node for node, b in balance.items() if b == 1]
    if len(sources) > 1 or any(abs(b) > 1 for b in balance.values()):
        return None, False
    starts = sources or list(dict.fromkeys(n_in for n_in, _ in edges))
    orders = _chain_orders(edges, starts, MAX_ORDER_STEPS)
    if not orders:
        return None, False
    return orders[0], len(orders) > 1


# -- the assembler ------------------------------------------------------------------
@dataclass(frozen=True)
class _Sorted:
    """A reader's tensors sorted by what they are."""

    matrices: list[Tensor]
    biases: dict[str, Tensor]
    skipped: list[str]
    warnings: list[str]


def _sort_tensors(tensors: Sequence[Tensor], path: Path) -> _Sorted:
    """Weights (2-D to 5-D), biases (1-D), and the keys that become no layer (with why, where it matters)."""
    biases: dict[str, Tensor] = {}
    matrices: list[Tensor] = []
    skipped: list[str] = []
    warnings: list[str] = []
    for t in tensors:
        _numeric(t.value, t.key, path)
        last = re.split(r"[./]", _INDEX_SUFFIX_RE.sub("", t.key))[-1]
        if _BUFFER_RE.search(t.key):
            skipped.append(t.key)
            continue
        ndim = len(np.shape(t.value))
        if ndim == 0 or 0 in np.shape(t.value):
            skipped.append(t.key)
        elif ndim == 1:
            biases[t.key] = t
        elif last.lower() in ("bias", "biases"):
            skipped.append(t.key)
        elif ndim > 5:
            skipped.append(t.key)
            warnings.append(f"{t.key!r} has {ndim} dimensions; not a layer topo understands, skipped")
        else:
            matrices.append(t)
    return _Sorted(matrices, biases, skipped, warnings)


def _unique_names(matrices: Sequence[Tensor]) -> list[Tensor]:
    """The tensors with layer names: from the key unless the reader chose one, kept unique."""
    seen: dict[str, int] = {}
    named = []
    for t in matrices:
        name = t.name or layer_name_from_key(t.key)
        if name in seen:
            name = t.key if t.key not in seen else f"{t.key}#{seen[name]}"
        seen[name] = seen.get(name, 0) + 1
        named.append(replace(t, name=name))
    return named


def _with_biases(matrices: Sequence[Tensor], biases: Mapping[str, Tensor]) -> tuple[list[Tensor], list[str]]:
    """The tensors with their biases (the 1-D tensor with the same prefix and the right length).

    Returns the tensors and the bias keys no weight took.
    """
    used_bias: set[str] = set()
    result = []
    for t in matrices:
        if t.bias is None:
            for cand in _bias_candidates(t.key, t.name or ""):
                b = biases.get(cand)
                if b is not None and cand not in used_bias and np.shape(b.value)[0] == _n_out(t):
                    t = replace(t, bias=b.value)
                    used_bias.add(cand)
                    break
        result.append(t)
    return result, [k for k in biases if k not in used_bias]


def _selected(matrices: Sequence[Tensor], layers: str | None, *, natural_order: bool, format: str,
              path: Path) -> list[Tensor]:
    """The tensors in the order asked for, those whose name matches ``layers`` alone.

    Raises
    ------
    TopoError
        A bad ``layers`` expression, or no layer left.
    """
    selected = list(matrices)
    if natural_order:
        selected = sorted(selected, key=lambda t: natural_key(t.name or t.key))
    if layers is not None:
        try:
            pattern = re.compile(layers)
        except re.error as exc:
            raise TopoError(f"option layers={layers!r} is not a valid regular expression ({exc})") from None
        selected = [t for t in selected if pattern.search(t.name or "")]
        if not selected:
            raise TopoError(f"no layer name matches layers={layers!r}", path=path)
    if not selected:
        raise TopoError(f"no weight matrix found (a {format} file with no 2-D or convolution weights)", path=path)
    return selected


def _build_layer(t: Tensor, *, weights: bool, path: Path, warnings: list[str],
                 stored: _BitmapBuffer | None = None) -> tuple[Layer, int]:
    """The layer of one tensor in topo's ``[out, in]`` layout, and its count of NaN weights.

    Warnings about it (weights over the budget, a bias that does not fit) are appended
    to ``warnings``. With ``stored`` (the buffer of the read's bitmaps), a masks-only
    tensor that can be read by rows becomes a :class:`StoredLayer` (counted, its mask
    built only if asked for).
    """
    name = t.name or t.key
    ndim = len(np.shape(t.value))
    if t.mask is not None and np.shape(t.mask) != np.shape(t.value):
        raise TopoError(
            f"{t.key!r}: mask shape {tuple(np.shape(t.mask))} differs from weight shape "
            f"{tuple(np.shape(t.value))}",
            path=path,
        )
    layer_info: dict[str, Any] = {"key": t.key}
    keep_weights = _check_layer_budget(t, weights, path, warnings)
    # a mask built from blocks of rows counts NaN in the same pass over the file
    n_nan = None if ndim == 2 and not keep_weights and _by_rows(t) else _nan_count(t.value)
    weight = None
    degrees = None
    if stored is not None and ndim == 2 and not keep_weights and _by_rows(t):
        # counted in one pass over the stored bits: what inspect and audit measure needs no CSR
        # its mask kept as a bitmap (a byte per cell) for the patterns and, if asked for, the CSR
        bitmap, generation = stored.take(np.shape(t.value))
        per_row, per_column, n_nan = _degrees_by_rows(t.value, bitmap)
        transposed = t.layout == "in_out"  # stored [in, out]: its rows are the inputs
        degrees = (per_column, per_row) if transposed else (per_row, per_column)
        mask: Any = None
        facts: Mapping[str, Any] = {"kind": "linear", "stored_layout": "[in, out]"} if transposed else {"kind": "linear"}
    elif ndim == 2:
        mask, weight, facts = _linear(t, keep_weights)
    else:
        mask, facts = _conv(t)
    facts = dict(facts)
    if n_nan is None:
        n_nan = facts.pop("nan_count", 0)
    layer_info.update(facts)
    layer_info.update(t.info)
    if t.note:
        layer_info["note"] = t.note
    if t.kind is not None and t.kind != layer_info.get("kind"):
        layer_info["role"] = t.kind
    bias = t.bias
    n_out = mask.shape[0] if mask is not None else int(np.shape(t.value)[0])
    if bias is not None and np.size(bias) != n_out:
        warnings.append(f"{name}: bias of length {np.size(bias)} does not match {n_out} outputs; dropped")
        bias = None
    if bias is not None:
        bias = np.asarray(bias)
        if bias.dtype.kind not in "fiu":
            bias = None
    layer_kwargs = dict(bias=bias, source=t.source or t.key, info=layer_info)
    if degrees is not None:
        return StoredLayer(name, t.value, bitmap=(bitmap, stored, generation), fan_in=degrees[0], fan_out=degrees[1],
                           transposed=transposed, **layer_kwargs), n_nan
    if weight is not None:
        weight = np.asarray(weight)
        if weight.dtype.kind != "f":
            weight = weight.astype(np.float32)
        return Layer.from_weight(name, weight, mask=mask, **layer_kwargs), n_nan
    if sp.isspmatrix_csr(mask) and mask.dtype == bool and mask.has_sorted_indices:
        return Layer(name=name, mask=mask, **layer_kwargs), n_nan  # already a layer's mask: no copy
    return Layer.from_mask(name, mask, **layer_kwargs), n_nan


def _shape_ordered(built: Sequence[tuple[Tensor, Layer]]) -> tuple[list[tuple[Tensor, Layer]], list[str]]:
    """The built layers in the order their shapes imply, where the declared order does not chain.

    Standalone kinds keep their places. Returns the (possibly reordered) layers and
    warnings saying what was done; no warnings means the order was kept.
    """
    ordered = list(built)
    chain_slots = [i for i, (t, _) in enumerate(ordered) if t.kind not in _STANDALONE_KINDS]
    order, ambiguous = _shape_order([ordered[i][1] for i in chain_slots])
    if order is None:
        return ordered, []
    moved = [ordered[chain_slots[j]] for j in order]
    for slot, item in zip(chain_slots, moved):
        ordered[slot] = item
    names = [layer.name for _, layer in moved]
    warnings = [_summarise("layers reordered so that each one's outputs feed the next "
                           "(the declared order does not chain)", names, limit=8)]
    if ambiguous:
        warnings.append("the order is ambiguous: more than one order of the layers chains by shape; "
                        "the one closest to the declared order was kept")
    return ordered, warnings


def _chained(built: Sequence[tuple[Tensor, Layer]]) -> tuple[list[Layer], list[str]]:
    """The layers, standalone where the parts do not form a chain, and a warning for each kind of break."""
    out_layers: list[Layer] = []
    standalone_by: dict[str, list[str]] = {"embedding": [], "attention": [], "recurrent": []}
    mismatches: list[str] = []
    for t, layer in built:
        standalone = False
        if t.kind in standalone_by:
            standalone = True
            standalone_by[t.kind].append(layer.name)
        elif out_layers and not out_layers[-1].standalone and out_layers[-1].n_out != layer.n_in:
            prev = out_layers[-1]
            standalone = True
            mismatches.append(f"{layer.name} [in={layer.n_in}] after {prev.name} [out={prev.n_out}]")
        out_layers.append(layer.with_(standalone=True) if standalone else layer)
    warnings: list[str] = []
    if standalone_by["embedding"]:
        warnings.append(_summarise("embeddings kept as standalone layers", standalone_by["embedding"]))
    if standalone_by["attention"]:
        warnings.append(
            _summarise(
                "attention projections (parallel branches, not a chain) kept standalone",
                standalone_by["attention"],
            )
        )
    if standalone_by["recurrent"]:
        warnings.append(_summarise("recurrent kernels kept standalone", standalone_by["recurrent"]))
    if mismatches:
        warnings.append(_summarise("layers that do not chain to the previous one kept standalone", mismatches))
    return out_layers, warnings


def build_topology(
    tensors: Sequence[Tensor],
    *,
    path: Path,
    format: str,
    natural_order: bool = False,
    layers: str | None = None,
    weights: bool = True,
    info: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    skipped: Sequence[str] = (),
    keep_order: bool = False,
    on_layer: Callable[[Layer], Layer] | None = None,
    progress: ProgressCallback | None = None,
) -> Topology:
    """Turn a reader's tensors into a Topology.

    Parameters
    ----------
    tensors : sequence of Tensor
        In the format's own order (state-dict order, node order, ``layer_names``).
    path : Path
        The file or folder read (for messages and ``info["path"]``).
    format : str
        The reader's name, stored as ``info["format"]``.
    natural_order : bool
        Sort layers by a natural sort of their names instead of keeping the given
        order (for formats without an order of their own).
    layers : str, optional
        Regular expression; keep only layers whose name it matches (``re.search``).
    weights : bool
        Keep weight values (False keeps masks and biases only, to save memory).
    info : mapping, optional
        Extra facts for the topology's ``info`` (epoch, step, config, ...).
    warnings, skipped : sequence of str
        Warnings and skipped keys the reader already collected.
    keep_order : bool
        The given order is authoritative: it comes from the model's graph (ONNX nodes,
        a Keras or Hugging Face config) or the user asked for it. Otherwise (a state dict's declaration order), where
        consecutive layers do not chain and another order of them does (each layer's
        outputs the next one's inputs), that order is used, with a warning; and
        convolutions whose file records no groups get the groups their neighbours'
        shapes imply (see :func:`_infer_groups`).
    on_layer : callable, optional
        Called with every layer as soon as it is built; what it returns is kept in its
        place. Ordering and chaining use only names and shapes, so a caller that
        summarises layers one at a time (:func:`topo.formats.scan`) returns a layer
        of the same shape without connections and never holds all masks at once.
    progress : callable, optional
        ``progress(done, total)`` after each layer is built.

    Returns
    -------
    Topology
        ``info`` holds ``format``, ``path``, ``warnings`` (list of str), ``skipped``
        (keys that became no layer), ``order`` and what the reader added.

    Raises
    ------
    TopoError
        Non-numeric arrays, a bad ``layers`` expression, no layer left, or
        inconsistent shapes.

    Examples
    --------
    An embedding becomes a standalone layer (with a warning), a bias is attached to
    the weight with its prefix, and a ``kernel`` ``[in, out]`` is turned ``[out, in]``:

    >>> import numpy as np
    >>> tensors = [
    ...     Tensor("embed.weight", np.ones((10, 4))),
    ...     Tensor("fc1.weight", np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0]])),
    ...     Tensor("fc1.bias", np.array([0.5, -0.5])),
    ...     Tensor("fc2.kernel", np.ones((2, 3)), layout="in_out"),
    ... ]
    >>> net = build_topology(tensors, path="model.bin", format="doc")
    >>> net.names, [layer.shape for layer in net], [layer.standalone for layer in net]
    (['embed', 'fc1', 'fc2'], [(4, 10), (2, 4), (3, 2)], [True, False, False])
    >>> net["fc1"].fan_in.tolist(), net["fc1"].bias.tolist(), net.info["warnings"]
    ([2, 1], [0.5, -0.5], ['embeddings kept as standalone layers: embed'])
    >>> build_topology(tensors, path="model.bin", format="doc", layers="^fc").names
    ['fc1', 'fc2']
    """
    path = Path(path)
    _policy.check_array_count(len(tensors), path=path)
    # every step returns new values: the reader's tensors and lists are left as they were
    found = _sort_tensors(tensors, path)
    warnings = [*warnings, *found.warnings]
    matrices = _unique_names(found.matrices)
    matrices, unused_biases = _with_biases(matrices, found.biases)
    skipped = [*skipped, *found.skipped, *unused_biases]
    matrices = _selected(matrices, layers, natural_order=natural_order, format=format, path=path)
    _policy.check_layer_count(len(matrices), path=path)
    matrices = [_with_kind(t) for t in matrices]
    matrices, inferred_groups = _infer_groups(matrices)
    if inferred_groups:
        warnings.append(_summarise("convolution groups inferred from neighbouring shapes", inferred_groups))

    built: list[tuple[Tensor, Layer]] = []
    nan_layers: list[str] = []
    bitmaps = _BitmapBuffer() if on_layer is not None else None
    for t in matrices:
        # a layer handed to on_layer may be a StoredLayer: counted, its mask built if asked for
        layer, n_nan = _build_layer(t, weights=weights, path=path, warnings=warnings, stored=bitmaps)
        if n_nan:
            nan_layers.append(f"{t.name or t.key} ({n_nan})")
        if on_layer is not None:
            layer = on_layer(layer)
            if isinstance(layer, StoredLayer):  # kept as it is: a plain layer, mask and all
                layer = layer.with_()
        built.append((t, layer))
        if progress is not None:
            progress(len(built), len(matrices))

    # Order: where the declared order does not chain, the order the shapes imply.
    order_note = "natural sort of names" if natural_order else "the format's own order"
    if not keep_order:
        built, order_warnings = _shape_ordered(built)
        if order_warnings:
            order_note = "inferred from shapes (the declared order does not chain)"
            warnings.extend(order_warnings)

    out_layers, chain_warnings = _chained(built)
    warnings.extend(chain_warnings)
    if nan_layers:
        warnings.append(_summarise("NaN weights (counted as connections in the mask)", nan_layers))

    meta: dict[str, Any] = {
        "format": format,
        "path": str(path),
        "order": order_note,
    }
    meta.update(info or {})
    if order_note.startswith("inferred"):
        meta["order"] = order_note
    meta["warnings"] = warnings
    meta["skipped"] = skipped
    try:
        return Topology(out_layers, info=meta)
    except TopoError as exc:
        raise TopoError(str(exc), path=path) from None

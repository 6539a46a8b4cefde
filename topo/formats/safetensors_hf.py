"""Plain ``.safetensors`` files and Hugging Face model folders.

topo's own checkpoints are ``.safetensors`` too; :mod:`topo.formats.native` reads
those and comes first in :data:`topo.formats.READERS`. This reader takes the rest:

- a ``.safetensors`` file of any origin;
- a Hugging Face model folder: ``model.safetensors``, sharded
  ``model.safetensors.index.json`` (+ shards), or ``pytorch_model.bin`` (sharded:
  ``pytorch_model.bin.index.json``; read through :mod:`topo.formats.pytorch`, so
  with ``weights_only=True``), and ``config.json`` where present.

The header is parsed and checked against the file's size before any tensor is
touched (a header or tensor that declares more bytes than the file has is refused),
then tensors are read one at a time (no torch); ``BF16`` and ``F8`` tensors, which
numpy lacks, are widened to float32 from the validated bytes. Masks alone (no
weights) are built from a read-only memory map of each tensor, a block of rows at a
time, from the stored bits (no float is decoded): memory holds one tensor's mask.

Order. safetensors writers sort tensors by dtype and name, and index files list keys
sorted, so neither carries the model's order (``layers.10`` sorts before
``layers.2``). Where the file's data order differs from that canonical sort (a
writer that kept its own order) the file order is used; otherwise names are sorted
naturally, transformer-aware: embeddings first, then numbered blocks by number
(``config.json``'s ``num_hidden_layers`` / ``n_layer`` checks the count), inside a
block attention before the MLP (q, k, v, output; gate/up, down), heads last.
GPT-2-style ``Conv1D`` weights (``model_type`` gpt2, or ``c_attn`` / ``c_fc`` /
``c_proj`` keys without a config) are stored ``[in, out]`` and are transposed.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._assemble import (
    Tensor,
    apply_name_layouts,
    build_topology,
    check_declared_size,
    one_line,
    pair_masks,
    reading,
)
from topo.topology import Topology
from topo.values import natural_key

__all__ = ["EXTENSIONS", "MAX_HEADER_BYTES", "StoredTensor", "sniff", "read", "read_header", "model_order"]

EXTENSIONS = (".safetensors",)

#: safetensors' own limit on the JSON header (100,000,000 bytes).
MAX_HEADER_BYTES = _policy.MAX_HEADER_BYTES

_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
_NUMPY_DTYPE = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
    "F16": np.float16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
    "I64": np.int64, "U64": np.uint64, "F64": np.float64,
}
#: Stored float dtypes whose zeros and NaN can be told from their bits (unsigned dtype,
#: the bits that are not the sign, the largest of those that is not NaN); float8 E4M3
#: (the FN variant) has no infinity: only all ones is NaN.
_FLOAT_BITS = {
    "F16": (np.uint16, 0x7FFF, 0x7C00),
    "BF16": (np.uint16, 0x7FFF, 0x7F80),
    "F32": (np.uint32, 0x7FFFFFFF, 0x7F800000),
    "F64": (np.uint64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000),
    "F8_E4M3": (np.uint8, 0x7F, 0x7E),
    "F8_E5M2": (np.uint8, 0x7F, 0x7C),
}
_GPT2_TYPES = {"gpt2", "openai-gpt", "imagegpt"}
_CONV1D_RE = re.compile(r"(^|\.)(c_attn|q_attn|c_proj|c_fc)\.weight$")
_HF_WEIGHT_FILES = (
    "model.safetensors.index.json", "model.safetensors",
    "pytorch_model.bin.index.json", "pytorch_model.bin",
)


# -- header ---------------------------------------------------------------------------
#: Parsed headers of the last few files (keyed by file identity): sniffing, reading and
#: topo's own reader all need the header, which is parsed once.
_HEADER_CACHE: "OrderedDict[tuple, tuple[dict, dict, int]]" = OrderedDict()
_HEADER_CACHE_SIZE = 2


def read_header(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str], int]:
    """Parse and validate a safetensors header without reading any tensor.

    The header is parsed once per file (later calls for the same unchanged file reuse
    it). It may hold at most :data:`MAX_HEADER_BYTES` (the safetensors library's own
    limit) and at most ``TOPO_MAX_ARRAYS`` tensors, counted before parsing; tensors
    must lie inside the file without overlapping, as the library requires.

    Returns
    -------
    entries : dict
        Tensor name -> ``{"dtype", "shape", "data_offsets"}``, in the header's order.
    metadata : dict
        The ``__metadata__`` strings.
    data_start : int
        Byte offset where tensor data begins.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` file.

    Raises
    ------
    TopoError
        Too short, a header or tensor that declares more bytes than the file holds,
        malformed JSON, unknown dtypes, inconsistent shapes, overlapping tensors, or
        over a budget.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from safetensors.numpy import save_file
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.safetensors"
    >>> save_file({"fc.weight": np.ones((2, 3), np.float32)}, str(path), metadata={"origin": "doc"})
    >>> entries, metadata, data_start = read_header(path)
    >>> entries["fc.weight"]
    {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}
    >>> metadata, data_start == path.stat().st_size - 24
    ({'origin': 'doc'}, True)

    A file cut short is refused before any tensor is read:

    >>> _ = path.write_bytes(path.read_bytes()[:-8])
    >>> read_header(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...model.safetensors: ...
    >>> temporary.cleanup()
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    cached = _HEADER_CACHE.get(key)
    if cached is not None:
        _HEADER_CACHE.move_to_end(key)
        entries, metadata, data_start = cached
        return dict(entries), dict(metadata), data_start
    parsed = _parse_header(path, stat.st_size)
    _HEADER_CACHE[key] = parsed
    while len(_HEADER_CACHE) > _HEADER_CACHE_SIZE:
        _HEADER_CACHE.popitem(last=False)
    entries, metadata, data_start = parsed
    return dict(entries), dict(metadata), data_start


def _parse_header(path: Path, size: int) -> tuple[dict[str, dict[str, Any]], dict[str, str], int]:
    if size == 0:
        raise TopoError("empty file, not a safetensors file", path=path)
    if size < 8:
        raise TopoError("too short to be a safetensors file (truncated)", path=path)
    with open(path, "rb") as handle:
        (n,) = struct.unpack("<Q", handle.read(8))
        if n > size - 8:
            raise TopoError(
                f"safetensors header declares {n:,} bytes but the file has only {size - 8:,} after the "
                "length field (truncated or corrupt)",
                path=path,
            )
        if n > MAX_HEADER_BYTES:
            raise TopoError(
                f"refused: safetensors header of {n:,} bytes exceeds the safetensors limit of {MAX_HEADER_BYTES:,}",
                path=path,
            )
        raw = handle.read(n)
    # Count the entries before building a Python object for each of them.
    _policy.check_array_count(raw.count(b'"data_offsets"'), path=path)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TopoError(f"safetensors header is not valid JSON ({one_line(exc)})", path=path) from None
    del raw
    if not isinstance(header, dict):
        raise TopoError("safetensors header is not a JSON object", path=path)
    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise TopoError("safetensors __metadata__ is not an object", path=path)
    budget = _policy.FileBudget(path, available=data_len)
    _policy.check_array_count(len(header), path=path, current=budget.limits)
    entries: dict[str, dict[str, Any]] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise TopoError(f"safetensors entry {name!r} is not an object", path=path)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _ITEMSIZE:
            raise TopoError(f"tensor {name!r} has dtype {dtype!r}, which topo cannot read", path=path)
        if (
            not isinstance(shape, list)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise TopoError(f"tensor {name!r} has a malformed shape or data_offsets", path=path)
        begin, end = offsets
        nbytes = math.prod(shape) * _ITEMSIZE[dtype]
        check_declared_size(nbytes, path=path, what=f"tensor {name!r}", available=data_len, current=budget.limits)
        if not 0 <= begin <= end <= data_len or end - begin != nbytes:
            raise TopoError(
                f"tensor {name!r} declares bytes {begin}..{end} of {data_len:,} for {nbytes:,} bytes of data "
                "(truncated or corrupt)",
                path=path,
            )
        budget.take(nbytes, f"tensor {name!r}")
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    # Tensors may not share bytes: many names over one region would multiply the file.
    spans = sorted((e["data_offsets"][0], e["data_offsets"][1], k) for k, e in entries.items() if e["data_offsets"][1] > e["data_offsets"][0])
    for (_, prev_end, prev_name), (begin, _, name) in zip(spans, spans[1:]):
        if begin < prev_end:
            raise TopoError(f"tensors {prev_name!r} and {name!r} overlap in the file (corrupt)", path=path)
    return entries, {str(k): str(v) for k, v in metadata.items()}, data_start


def _is_topo(metadata: Mapping[str, str]) -> bool:
    return metadata.get("format") == "topo-checkpoint"


# -- sniff ------------------------------------------------------------------------------
def _hf_files(folder: Path) -> dict[str, Path]:
    return {name: folder / name for name in _HF_WEIGHT_FILES if (folder / name).is_file()}


def sniff(path: Path) -> bool:
    """A safetensors file that is not a topo checkpoint, or a Hugging Face model folder.

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the header, not the suffix; never raises.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from safetensors.numpy import save_file
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> save_file({"fc.weight": np.eye(2, dtype=np.float32)}, str(folder / "model.safetensors"))
    >>> _ = save_checkpoint(Topology.from_masks([np.eye(2)]), folder / "topo.safetensors")
    >>> sniff(folder / "model.safetensors"), sniff(folder / "topo.safetensors"), sniff(folder)
    (True, False, True)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if path.is_dir():
            return _is_hf_folder(path)
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            head = handle.read(9)
        if len(head) < 9 or head[8:9] != b"{":
            return False
        try:
            _, metadata, _ = read_header(path)
        except TopoError:
            return True  # laid out like safetensors but broken: read() says what is wrong
        return not _is_topo(metadata)
    except Exception:
        return False


def _is_hf_folder(folder: Path) -> bool:
    """A Hugging Face model folder: the standard weight names, an index JSON, or a
    ``config.json`` beside weights. Any other folder of ``.safetensors`` files is a
    collection of separate models, each read on its own."""
    if _hf_files(folder):
        return True
    names = [p.name for p in folder.iterdir()]
    if any(name.endswith(".safetensors.index.json") for name in names):
        return True
    return "config.json" in names and (folder / "config.json").is_file() and any(
        name.endswith(".safetensors") and not name.startswith(".") for name in names
    )


# -- reading tensors ------------------------------------------------------------------
def _float8_table(dtype: str) -> np.ndarray:
    """float32 value of every byte of an 8-bit float (E4M3FN or E5M2)."""
    codes = np.arange(256, dtype=np.uint32)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    if dtype == "F8_E4M3":
        exp, man, bias, man_bits = (codes >> 3) & 0xF, codes & 0x7, 7, 3
    else:
        exp, man, bias, man_bits = (codes >> 2) & 0x1F, codes & 0x3, 15, 2
    normal = (1 + man / 2**man_bits) * np.power(2.0, exp.astype(np.float64) - bias)
    subnormal = (man / 2**man_bits) * 2.0 ** (1 - bias)
    values = sign * np.where(exp == 0, subnormal, normal)
    if dtype == "F8_E4M3":
        values[(codes & 0x7F) == 0x7F] = np.nan
    else:
        top = exp == 0x1F
        values[top & (man == 0)] = sign[top & (man == 0)] * np.inf
        values[top & (man != 0)] = np.nan
    return values.astype(np.float32)


class StoredTensor:
    """One tensor of a safetensors file, read from disk only when numpy asks for it.

    It has the ``shape``, ``dtype``, ``ndim`` and ``size`` of the array it stands for
    and turns into that array through ``numpy.asarray``. The bytes were validated
    against the header (inside the file, no overlap); ``BF16`` and ``F8`` become
    float32. Only the most recently read tensor is kept in memory, so reading a
    model tensor by tensor holds one tensor at a time.

    Parameters
    ----------
    path : Path
        The safetensors file.
    name : str
        The tensor's name in the header.
    entry : mapping
        Its header entry (``dtype``, ``shape``, ``data_offsets``; see :func:`read_header`).
    data_start : int
        Byte offset where the file's tensor data begins.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from safetensors.numpy import save_file
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.safetensors"
    >>> save_file({"fc.weight": np.arange(6, dtype=np.float16).reshape(3, 2)}, str(path))
    >>> entries, _, data_start = read_header(path)
    >>> tensor = StoredTensor(path, "fc.weight", entries["fc.weight"], data_start)
    >>> tensor
    StoredTensor(model.safetensors:fc.weight, F16, [3, 2])
    >>> tensor.shape, tensor.dtype, tensor.size
    ((3, 2), dtype('float16'), 6)
    >>> np.asarray(tensor).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    >>> tensor.read_rows(1, 2).tolist()
    [[2.0, 3.0]]
    >>> temporary.cleanup()
    """

    __slots__ = ("path", "name", "stored_dtype", "shape", "offset", "nbytes")

    def __init__(self, path: Path, name: str, entry: Mapping[str, Any], data_start: int) -> None:
        self.path = path
        self.name = name
        self.stored_dtype = entry["dtype"]
        self.shape = tuple(int(s) for s in entry["shape"])
        begin, end = entry["data_offsets"]
        self.offset = data_start + begin
        self.nbytes = end - begin

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_NUMPY_DTYPE.get(self.stored_dtype, np.float32))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def float_bits(self) -> tuple[Any, int, int] | None:
        """For a float dtype, ``(unsigned dtype, magnitude bits, NaN floor)``: a stored value
        is zero when ``bits & magnitude == 0`` and NaN when ``bits & magnitude > floor``
        (read with ``read_rows(raw=True)``); None for integers and booleans."""
        return _FLOAT_BITS.get(self.stored_dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = _read_stored(self)
        return array if dtype is None else array.astype(dtype, copy=False)

    def read_rows(self, start: int, stop: int, buffer: np.ndarray | None = None, raw: bool = False) -> np.ndarray:
        """Rows ``start:stop`` (of the first axis), read from the file without keeping them.

        With ``buffer`` (uint8, large enough) the bytes are read into it, and the rows
        returned may be a view of it. With ``raw`` and a float dtype (see
        :attr:`float_bits`), the stored bits as unsigned integers, not decoded.
        """
        row_cells = math.prod(self.shape[1:])
        itemsize = _ITEMSIZE[self.stored_dtype]
        start, stop = max(0, int(start)), min(int(stop), self.shape[0] if self.shape else 0)
        nbytes = max(0, stop - start) * row_cells * itemsize
        data = _read_bytes(self, self.offset + start * row_cells * itemsize, nbytes, buffer)
        shape = (max(0, stop - start), *self.shape[1:])
        bits = self.float_bits if raw else None
        if bits is not None:
            array = data.view(np.dtype(bits[0]).newbyteorder("<")).reshape(shape)
            return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
        return _decode(self, data, shape)

    def row_blocks(self, rows: int, raw: bool = False) -> Iterator[np.ndarray]:
        """The tensor in blocks of ``rows`` rows, straight from a read-only memory map of its bytes.

        Nothing is copied: each block is a view of the file's pages (numpy's native
        little-endian layout), valid until the next block is asked for; the map is
        released when the blocks are done. With ``raw`` and a float dtype, the stored
        bits as unsigned integers (see :attr:`float_bits`); dtypes numpy lacks are
        decoded block by block.
        """
        n_rows = self.shape[0] if self.shape else 0
        row_cells = math.prod(self.shape[1:])
        itemsize = _ITEMSIZE[self.stored_dtype]
        bits = self.float_bits if raw else None
        if bits is not None:
            view = np.dtype(bits[0]).newbyteorder("<")
        elif self.stored_dtype in _NUMPY_DTYPE:
            view = np.dtype(_NUMPY_DTYPE[self.stored_dtype]).newbyteorder("<")
        else:
            view = None  # BF16 / F8 values: decoded per block
        if not self.nbytes or (view is not None and not view.isnative):
            # nothing to map, or a big-endian machine: blocks read and converted instead
            for start in range(0, n_rows, max(1, rows)):
                yield self.read_rows(start, start + rows, raw=raw)
            return
        mapping, data = _map_tensor(self)
        try:
            for start in range(0, n_rows, max(1, rows)):
                stop = min(n_rows, start + max(1, rows))
                part = data[start * row_cells * itemsize : stop * row_cells * itemsize]
                shape = (stop - start, *self.shape[1:])
                block = part.view(view).reshape(shape) if view is not None else _decode(self, part, shape)
                del part
                yield block
                del block
        finally:
            del data
            try:
                mapping.close()
            except BufferError:
                pass  # the caller still holds a block (it stopped early): the map goes with it

    def __repr__(self) -> str:
        return f"StoredTensor({self.path.name}:{self.name}, {self.stored_dtype}, {list(self.shape)})"


def _map_tensor(tensor: StoredTensor) -> tuple[mmap.mmap, np.ndarray]:
    """A read-only memory map of one stored tensor's bytes, and those bytes as a uint8 array.

    The file's size is checked again when it is mapped (a tensor that no longer lies
    inside the file is refused, as a short read is). On Linux the pages are mapped at
    once (``MAP_POPULATE``: one call instead of a fault per page).
    """
    with open(tensor.path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size < tensor.offset + tensor.nbytes:
            raise TopoError(f"tensor {tensor.name!r} is truncated (file changed while reading?)", path=tensor.path)
        start = tensor.offset - tensor.offset % mmap.ALLOCATIONGRANULARITY
        length = tensor.offset + tensor.nbytes - start
        if hasattr(mmap, "MAP_SHARED"):
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            mapping = mmap.mmap(handle.fileno(), length, flags=flags, prot=mmap.PROT_READ, offset=start)
        else:
            mapping = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ, offset=start)
    return mapping, np.frombuffer(mapping, dtype=np.uint8, count=tensor.nbytes, offset=tensor.offset - start)


_LAST_READ: list[Any] = [None, None]  # (key, array) of the last tensor read


def _read_stored(tensor: StoredTensor) -> np.ndarray:
    key = (str(tensor.path), tensor.offset, tensor.nbytes, tensor.stored_dtype, tensor.shape)
    if _LAST_READ[0] == key:
        return _LAST_READ[1]
    _LAST_READ[0] = _LAST_READ[1] = None  # free the previous tensor before reading the next
    array = _decode(tensor, _read_bytes(tensor, tensor.offset, tensor.nbytes), tensor.shape)
    _LAST_READ[0], _LAST_READ[1] = key, array
    return array


def _read_bytes(tensor: StoredTensor, offset: int, nbytes: int, buffer: np.ndarray | None = None) -> np.ndarray:
    raw = (buffer[:nbytes] if buffer is not None and buffer.dtype == np.uint8 and buffer.size >= nbytes
           else np.empty(nbytes, dtype=np.uint8))
    with open(tensor.path, "rb") as handle:
        handle.seek(offset)
        got = handle.readinto(raw.data) if nbytes else 0
    if got != nbytes:
        raise TopoError(f"tensor {tensor.name!r} is truncated (file changed while reading?)", path=tensor.path)
    return raw


def _decode(tensor: StoredTensor, raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The values of ``raw`` bytes of ``tensor``'s stored dtype, as a native array of ``shape``."""
    dtype = tensor.stored_dtype
    if dtype in _NUMPY_DTYPE:
        array = raw.view(np.dtype(_NUMPY_DTYPE[dtype]).newbyteorder("<")).reshape(shape)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return array
    if dtype == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return _float8_table(dtype)[raw].reshape(shape)


def _safetensors_tensors(path: Path, *, config: Mapping[str, Any] | None, notes: list[str]) -> tuple[list[Tensor], list[str], bool]:
    """Tensors of one safetensors file, not yet read; returns them, the header's key order,
    and whether that order is meaningful."""
    entries, metadata, data_start = read_header(path)
    # an upper bound of the layers, checked before any per-tensor work
    _policy.check_layer_count(sum(len(e["shape"]) >= 2 for e in entries.values()), path=path)
    file_order = sorted(entries, key=lambda k: entries[k]["data_offsets"][0])
    canonical = sorted(entries, key=lambda k: (-_ITEMSIZE[entries[k]["dtype"]], k))
    meaningful = file_order not in (canonical, sorted(entries))
    tensors = [
        Tensor(key=name, value=StoredTensor(path, name, entries[name], data_start), source=f"{path.name}:{name}")
        for name in file_order
    ]
    return tensors, file_order, meaningful


# -- order ------------------------------------------------------------------------------
_BLOCK_RE = re.compile(r"^(?P<prefix>(?:.*?[._])?(?:h|layers?|blocks?|block|layer))[._](?P<idx>\d+)(?:[._]|$)")
_HEAD_RE = re.compile(r"(^|[._])(lm_head|classifier|pooler|score|cls|head|heads|qa_outputs|fc_out|output_projection|logits)([._]|$)")
_EMBED_RE = re.compile(r"(^|[._])(embed\w*|wte|wpe|shared|patch_embed\w*|tok_embeddings)([._]|$)", re.I)
# Among the embeddings, the token table comes first: the network starts from the tokens.
_TOKEN_TABLE_RE = re.compile(r"(^|[._])(wte|word_embeddings|embed_tokens|tok_embeddings|shared|token_embedding)([._]|$)",
                             re.I)
_ROLES = (
    (re.compile(r"(^|[._])(q|q_proj|query|wq|to_q)([._]|$)"), 0.0),
    (re.compile(r"(^|[._])(k|k_proj|key|wk|to_k)([._]|$)"), 0.1),
    (re.compile(r"(^|[._])(v|v_proj|value|wv|to_v)([._]|$)"), 0.2),
    (re.compile(r"(^|[._])(qkv|qkv_proj|c_attn|in_proj|wqkv|query_key_value|to_qkv|q_attn)([._]|$)"), 0.3),
    (re.compile(r"(^|[._])(o_proj|out_proj|wo_attn|to_out|dense_attn)([._]|$)|attn[._]c_proj|attention[._]output[._]dense|attn[._]proj|attention[._]dense|self_attn[._]o([._]|$)"), 1.0),
    (re.compile(r"(crossattention|encoder_attn|cross_attn)"), 1.5),
    (re.compile(r"(^|[._])(gate_proj|w1|fc1|c_fc|fc_in|dense_h_to_4h|wi|wi_0|gate)([._]|$)|intermediate[._]dense"), 2.0),
    (re.compile(r"(^|[._])(up_proj|w3|wi_1|up)([._]|$)"), 2.1),
    (re.compile(r"(^|[._])(down_proj|w2|fc2|fc_out|dense_4h_to_h|wo|down)([._]|$)|mlp[._]c_proj|output[._]dense"), 3.0),
)


def _role(rest: str) -> float:
    for pattern, rank in _ROLES:
        if pattern.search(rest):
            return rank
    return 1.8  # unknown parts of a block: between attention and MLP, by name


def model_order(names: Sequence[str], config: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """Order tensor names as a model runs them when the file does not say.

    Embeddings first; other parts outside blocks next (natural sort); numbered
    blocks by number (encoders before decoders), attention before MLP inside each;
    heads last. Returns the names in that order and notes (e.g. a block count that
    disagrees with ``config.json``).

    Parameters
    ----------
    names : sequence of str
        Tensor names.
    config : mapping, optional
        The model's ``config.json``; its block count (``num_hidden_layers``,
        ``n_layer``, ...) is checked against the names.

    Returns
    -------
    ordered : list of str
    notes : list of str

    Examples
    --------
    >>> names = ["lm_head.weight", "model.layers.10.mlp.down_proj.weight",
    ...          "model.layers.2.mlp.down_proj.weight", "model.layers.2.self_attn.q_proj.weight",
    ...          "model.embed_tokens.weight"]
    >>> for name in model_order(names)[0]:
    ...     print(name)
    model.embed_tokens.weight
    model.layers.2.self_attn.q_proj.weight
    model.layers.2.mlp.down_proj.weight
    model.layers.10.mlp.down_proj.weight
    lm_head.weight
    >>> model_order(["h.0.attn.c_attn.weight", "h.1.attn.c_attn.weight", "wte.weight"], {"n_layer": 3})
    (['wte.weight', 'h.0.attn.c_attn.weight', 'h.1.attn.c_attn.weight'], ['config.json says 3 layers but the weights have blocks h: 2'])
    """
    notes: list[str] = []
    blocks_seen: dict[str, set[int]] = {}

    def key(name: str) -> tuple:
        if _HEAD_RE.search(name) and not _BLOCK_RE.match(name):
            return (3, 0, "", 0, 0.0, natural_key(name))
        if _EMBED_RE.search(name) and not _BLOCK_RE.match(name):
            return (0, 0 if _TOKEN_TABLE_RE.search(name) else 1, "", 0, 0.0, natural_key(name))
        match = _BLOCK_RE.match(name)
        if match is None:
            return (1, 0, "", 0, 0.0, natural_key(name))
        prefix, idx = match.group("prefix"), int(match.group("idx"))
        blocks_seen.setdefault(prefix, set()).add(idx)
        stack = 1 if "decoder" in prefix else 0
        rest = name[match.end():]
        return (2, stack, prefix, idx, _role(rest), natural_key(rest))

    ordered = sorted(names, key=key)
    n_layers = None
    for field in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        if config and isinstance(config.get(field), int):
            n_layers = config[field]
            break
    if n_layers is not None and blocks_seen:
        counts = {p: len(s) for p, s in blocks_seen.items()}
        if not any(c == n_layers and s == set(range(n_layers)) for p, s in blocks_seen.items() for c in [counts[p]]):
            notes.append(
                f"config.json says {n_layers} layers but the weights have blocks "
                + ", ".join(f"{p}: {counts[p]}" for p in counts)
            )
    return ordered, notes


# -- folders ----------------------------------------------------------------------------
def _read_json(path: Path, what: str) -> Any:
    size = path.stat().st_size
    if size > 64 * 1024**2:
        raise TopoError(f"refused: {what} of {size:,} bytes is too large", path=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TopoError(f"{what} is not valid JSON ({one_line(exc)})", path=path) from None


def _shard_files(folder: Path, index_path: Path) -> list[Path]:
    _policy.confine(index_path, folder, what="index file")
    index = _read_json(index_path, "index file")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise TopoError("index file has no weight_map", path=index_path)
    shards: dict[str, Path] = {}
    for shard in weight_map.values():
        if isinstance(shard, str) and shard in shards:
            continue
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise TopoError(f"index names shard {shard!r} outside the model folder; refused", path=index_path)
        shard_path = folder / shard
        if not shard_path.is_file():
            raise TopoError(f"index names shard {shard!r}, which is missing", path=index_path)
        shards[shard] = shard_path
    return sorted(shards.values(), key=lambda p: natural_key(p.name))


def _conv1d_transpose(tensors: list[Tensor], config: Mapping[str, Any] | None, notes: list[str]) -> None:
    model_type = str((config or {}).get("model_type", "")).lower()
    if config and model_type:
        if model_type not in _GPT2_TYPES:
            return
        reason = f"model_type {model_type!r}"
    else:
        reason = "GPT-2 style key names (no config.json)"
    flipped = []
    for t in tensors:
        if _CONV1D_RE.search(t.key) and np.ndim(t.value) == 2:
            t.layout = "in_out"
            flipped.append(t.key)
    if flipped and reason.startswith("GPT-2"):
        notes.append(f"Conv1D layout [in, out] assumed from {reason} for {len(flipped)} weights")


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    on_layer: Any = None,
    progress: Any = None,
    **_: Any,
) -> Topology:
    """Read a safetensors file or a Hugging Face model folder as a Topology.

    Tensors are read from disk one at a time (over all shards); with ``weights=False``
    a mask is built from blocks of rows, so memory holds the masks and one block, not
    the model.

    Parameters
    ----------
    path : Path
        A ``.safetensors`` file, or a folder with ``model.safetensors``,
        ``model.safetensors.index.json`` + shards, or ``pytorch_model.bin``
        (+ index), and optionally ``config.json``.
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.
    on_layer : callable, optional
        Called with each layer as it is built (see :func:`topo.formats.scan`).
    progress : callable, optional
        ``progress(done, total)`` over the layers, shards included.

    Returns
    -------
    Topology
        ``info``: ``format`` (``"safetensors"`` or ``"huggingface"``), ``path``,
        ``order``, ``warnings``, ``skipped``, and ``model_type`` / ``config`` facts.

    Raises
    ------
    TopoError
        Truncated or corrupt files, headers that declare more than the file holds,
        shards outside the folder, unsupported dtypes, no weights.

    Examples
    --------
    A Hugging Face style folder: safetensors stores names sorted, so the model's
    order comes from the names (block 2 before block 10).

    >>> import json, pathlib, tempfile
    >>> import numpy as np
    >>> from safetensors.numpy import save_file
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> tensors = {
    ...     "encoder.layers.10.fc.weight": np.eye(3, dtype=np.float32),
    ...     "encoder.layers.2.fc.weight": np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], np.float32),
    ...     "encoder.layers.2.fc.bias": np.zeros(3, np.float32),
    ... }
    >>> save_file(tensors, str(folder / "model.safetensors"))
    >>> _ = (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    >>> net = read(folder)
    >>> net.names, net.nnz, net.info["format"], net.info["model_type"]
    (['encoder.layers.2.fc', 'encoder.layers.10.fc'], 6, 'huggingface', 'bert')
    >>> net["encoder.layers.2.fc"].fan_in.tolist(), read(folder, weights=False)["encoder.layers.2.fc"].weight is None
    ([1, 2, 0], True)
    >>> temporary.cleanup()
    """
    path = Path(path)
    if not path.exists():
        raise TopoError("no such file or folder", path=path)
    notes: list[str] = []
    config: dict[str, Any] | None = None
    info: dict[str, Any] = {}
    with reading(path, "safetensors file" if path.is_file() else "model folder"):
        if path.is_file():
            tensors, _header, meaningful = _safetensors_tensors(path, config=None, notes=notes)
            fmt = "safetensors"
            files = [path]
        else:
            fmt = "huggingface"
            if (path / "config.json").is_file():
                _policy.confine(path / "config.json", path, what="config.json")
                loaded = _read_json(path / "config.json", "config.json")
                config = loaded if isinstance(loaded, dict) else None
                if config:
                    info["model_type"] = config.get("model_type")
                    info["architectures"] = config.get("architectures")
            found = _hf_files(path)
            if "model.safetensors.index.json" in found:
                files = _shard_files(path, found["model.safetensors.index.json"])
            elif "model.safetensors" in found:
                files = [found["model.safetensors"]]
            elif "pytorch_model.bin.index.json" in found:
                files = _shard_files(path, found["pytorch_model.bin.index.json"])
            elif "pytorch_model.bin" in found:
                files = [found["pytorch_model.bin"]]
            else:
                files = sorted((p for p in path.iterdir() if p.suffix == ".safetensors"), key=lambda p: natural_key(p.name))
            if not files:
                raise TopoError("a folder without model weights (no *.safetensors or pytorch_model.bin)", path=path)
            for file in files:
                _policy.confine(file, path, what="weight file")
            tensors = []
            meaningful = True
            for file in files:
                if file.suffix == ".safetensors":
                    part, _header, file_meaningful = _safetensors_tensors(file, config=config, notes=notes)
                    meaningful = meaningful and file_meaningful and len(files) == 1
                else:
                    from topo.formats import pytorch

                    with reading(file, "torch checkpoint"):
                        part, _, more = pytorch.state_dict_tensors(pytorch.load_state_dict(file), source=file.name)
                    notes.extend(more)
                tensors.extend(part)
            if all(f.suffix != ".safetensors" for f in files):
                meaningful = len(files) == 1  # a single state dict keeps registration order
        _policy.check_layer_count(sum(len(np.shape(t.value)) >= 2 for t in tensors), path=path)
        # The names decide the layout (a Flax/Keras ``kernel`` is [in, out], a torch
        # ``weight`` [out, in]); GPT-2's Conv1D ``weight`` is the known exception below.
        unknown = apply_name_layouts(tensors)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 5 else "")
            notes.append(f"layout not known from the name, read as [out, in] (the torch layout): {shown}")
        _conv1d_transpose(tensors, config, notes)
        tensors = pair_masks(tensors)[0]
        if meaningful:
            info["order"] = "the file's own order"
        else:
            ordered, more = model_order([t.key for t in tensors], config)
            notes.extend(more)
            rank = {k: i for i, k in enumerate(ordered)}
            tensors.sort(key=lambda t: rank[t.key])
            info["order"] = "natural sort of names, transformer-aware (the file stores no order)"
        info["files"] = [f.name for f in files]
        return build_topology(
            tensors,
            path=path,
            format=fmt,
            layers=layers,
            weights=weights,
            info=info,
            warnings=notes,
            keep_order=meaningful or bool(config),  # the file's order, or one from config.json
            on_layer=on_layer,
            progress=progress,
        )

"""Flax / JAX msgpack files: ``flax.serialization.to_bytes`` and ``msgpack_serialize``.

Read with the ``msgpack`` package and numpy alone (no JAX). The layout, as Flax's
``flax/serialization.py`` writes it:

- the file is one msgpack map: the state dict of the saved object (a parameter tree
  ``{"params": {"Dense_0": {"kernel": ..., "bias": ...}}}``, a ``TrainState`` with
  ``step``, ``params`` and ``opt_state``, an NNX pure dict, ...); lists and tuples
  become maps with keys ``"0"``, ``"1"``, ...;
- every numpy or JAX array is a msgpack *extension* of type 1 whose payload is itself
  msgpack: ``[shape, dtype_name, raw C-order bytes]``; type 3 is a numpy scalar in the
  same form, type 2 a Python complex ``[real, imag]``;
- arrays over 1 GiB are split: ``{"__msgpack_chunked_array__": True, "shape": {"0": ..},
  "chunks": {"0": flat_part, ...}}``.

Which arrays are layers: the ``params`` collection when the tree has one (found at the
top or one or two levels down, e.g. ``target/params``), so optimizer moments are not
read as layers; otherwise every array, with a warning. Orientation comes from the names
(:func:`topo.formats._assemble.layout_from_name`): a ``kernel`` is ``[in, out]``
(convolutions ``[*kernel, in, out]``), a torch-style ``weight`` ``[out, in]``; an
``embedding`` (``nn.Embed``) is a ``[vocab, dim]`` table (standalone). A 2-D array whose
name says neither is read ``[in, out]`` (JAX's ``x @ W`` convention), with a warning.
Layer order is the file's own: Linen keeps modules in the order they were created;
NNX pure dicts are sorted by name, so that order is only as good as the names.

Every array's declared size (shape times item size) must equal the bytes stored for it
before it is viewed, and all arrays of a file together stay within the file budget.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._assemble import Tensor, apply_name_layouts, build_topology, read_head, reading
from topo.topology import Topology

__all__ = ["EXTENSIONS", "sniff", "read", "decode"]

EXTENSIONS = (".msgpack", ".flax")

_EXT_NDARRAY, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3
_CHUNKED = "__msgpack_chunked_array__"
_DTYPES = {
    name: np.dtype(name)
    for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64")
}
_MAX_DEPTH = 64
# An extension of type 1 whose payload starts with a 3-element array: [shape, dtype, bytes].
_ARRAY_EXT_RE = re.compile(rb"(\xc7.|\xc8..|\xc9....|\xd4|\xd5|\xd6|\xd7|\xd8)\x01\x93", re.DOTALL)
_MAP_MARKERS = set(range(0x80, 0x90)) | {0xDE, 0xDF}


_CHECKPOINT_FILE_RE = re.compile(r"^checkpoint_(\d+)$")


def _is_msgpack_state(path: Path) -> bool:
    head = read_head(path, 65536)
    return bool(head) and head[0] in _MAP_MARKERS and _ARRAY_EXT_RE.search(head) is not None


def checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    """``flax.training.checkpoints`` files of a folder (``checkpoint_<step>``), by step."""
    found = []
    for child in Path(folder).iterdir():
        match = _CHECKPOINT_FILE_RE.match(child.name)
        if match and child.is_file() and _is_msgpack_state(child):
            found.append((int(match.group(1)), child))
    return sorted(found)


def sniff(path: Path) -> bool:
    """A msgpack map that holds Flax's array extension near its start, or a folder of
    ``flax.training.checkpoints`` files (``checkpoint_<step>``).

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the content, not the suffix; never raises.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import msgpack
    >>> import numpy as np
    >>> def packed(array):  # Flax's array extension: type 1, payload [shape, dtype name, C-order bytes]
    ...     return msgpack.ExtType(1, msgpack.packb([list(array.shape), array.dtype.name, array.tobytes()]))
    >>> kernel = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]], dtype=np.float32)  # [in, out]
    >>> state = {"step": 30, "params": {"Dense_0": {"kernel": packed(kernel), "bias": packed(np.zeros(2, np.float32))}}}
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "state.msgpack"
    >>> _ = path.write_bytes(msgpack.packb(state))
    >>> _ = (path.parent / "plain.msgpack").write_bytes(msgpack.packb({"step": 30}))
    >>> sniff(path), sniff(path.parent / "plain.msgpack")
    (True, False)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if path.is_dir():
            return bool(checkpoint_files(path))
        return path.is_file() and _is_msgpack_state(path)
    except Exception:
        return False


def _msgpack(path: Path):
    try:
        import msgpack
    except ImportError:
        raise TopoError('reading Flax msgpack files needs msgpack: pip install "topo-toolkit[flax]"', path=path) from None
    return msgpack


class _Decoder:
    """Flax's extension types decoded into numpy, each checked before it is viewed."""

    def __init__(self, path: Path, msgpack: Any, budget: _policy.FileBudget) -> None:
        self.path = path
        self.msgpack = msgpack
        self.budget = budget

    def array(self, payload: bytes) -> np.ndarray:
        inner = self.msgpack.unpackb(payload, raw=False, strict_map_key=False)
        if not (isinstance(inner, (list, tuple)) and len(inner) == 3):
            raise TopoError("an array extension that is not [shape, dtype, bytes]", path=self.path)
        shape, dtype_name, buffer = inner
        if isinstance(dtype_name, bytes):
            dtype_name = dtype_name.decode("ascii", "replace")
        if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TopoError(f"an array extension with a bad shape {shape!r}", path=self.path)
        if not isinstance(buffer, (bytes, bytearray)):
            raise TopoError("an array extension without raw bytes", path=self.path)
        bfloat16 = dtype_name == "bfloat16"
        dtype = np.dtype("uint16") if bfloat16 else _DTYPES.get(str(dtype_name))
        if dtype is None:
            raise TopoError(f"an array of dtype {dtype_name!r}, which topo does not read", path=self.path)
        declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if declared != len(buffer):
            raise TopoError(
                f"an array declares shape {tuple(shape)} of {dtype_name} ({declared:,} bytes) but stores "
                f"{len(buffer):,} bytes", path=self.path,
            )
        self.budget.take(declared, f"a {tuple(shape)} {dtype_name} array")
        array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        if bfloat16:
            # bfloat16 is the upper half of a float32.
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    def ext_hook(self, code: int, payload: bytes) -> Any:
        if code == _EXT_NDARRAY:
            return self.array(payload)
        if code == _EXT_NPSCALAR:
            return self.array(payload).reshape(())
        if code == _EXT_COMPLEX:
            return None  # a Python complex: never a weight
        return None


def _unchunk(node: dict, path: Path, where: str) -> np.ndarray:
    shape_map, chunks = node.get("shape"), node.get("chunks")
    if not isinstance(shape_map, dict) or not isinstance(chunks, dict):
        raise TopoError(f"{where}: a chunked array without shape and chunks", path=path)
    shape = [shape_map[k] for k in sorted(shape_map, key=lambda k: int(k))]
    parts = [chunks[k] for k in sorted(chunks, key=lambda k: int(k))]
    if not all(isinstance(p, np.ndarray) and p.ndim == 1 for p in parts) or not all(isinstance(d, int) for d in shape):
        raise TopoError(f"{where}: a chunked array whose chunks are not flat arrays", path=path)
    total = sum(p.size for p in parts)
    if total != int(np.prod(shape, dtype=np.float64)):
        raise TopoError(f"{where}: chunks hold {total:,} values but the shape {tuple(shape)} needs "
                        f"{int(np.prod(shape, dtype=np.float64)):,}", path=path)
    return np.concatenate(parts).reshape(shape)


def decode(path: Path) -> Any:
    """The state dict of a Flax msgpack file, with arrays as numpy arrays.

    Parameters
    ----------
    path : Path
        A file written by ``flax.serialization.to_bytes`` or ``msgpack_serialize``.

    Returns
    -------
    object
        The msgpack tree (usually a dict) with Flax's arrays as numpy arrays.

    Raises
    ------
    TopoError
        Not msgpack, truncated, arrays whose declared size differs from the bytes
        stored, unknown dtypes, more than the file budget.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import msgpack
    >>> import numpy as np
    >>> def packed(array):  # Flax's array extension: type 1, payload [shape, dtype name, C-order bytes]
    ...     return msgpack.ExtType(1, msgpack.packb([list(array.shape), array.dtype.name, array.tobytes()]))
    >>> kernel = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]], dtype=np.float32)  # [in, out]
    >>> state = {"step": 30, "params": {"Dense_0": {"kernel": packed(kernel), "bias": packed(np.zeros(2, np.float32))}}}
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "state.msgpack"
    >>> _ = path.write_bytes(msgpack.packb(state))
    >>> tree = decode(path)
    >>> tree["step"], tree["params"]["Dense_0"]["kernel"].dtype, tree["params"]["Dense_0"]["kernel"].shape
    (30, dtype('float32'), (3, 2))

    An array whose declared shape asks for more bytes than it stores is refused:

    >>> lying = msgpack.ExtType(1, msgpack.packb([[1000, 1000], "float32", bytes(8)]))
    >>> _ = path.write_bytes(msgpack.packb({"params": {"w": lying}}))
    >>> decode(path)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../state.msgpack: an array declares shape (1000, 1000) of float32 (4,000,000 bytes) but stores 8 bytes
    >>> temporary.cleanup()
    """
    path = Path(path)
    msgpack = _msgpack(path)
    size = path.stat().st_size
    limits = _policy.limits()
    if size > limits.file_bytes:
        raise TopoError(f"refused: a {size:,}-byte msgpack file is over the limit of {limits.file_bytes:,} bytes",
                        path=path)
    decoder = _Decoder(path, msgpack, _policy.FileBudget(path, available=size))
    data = path.read_bytes()
    try:
        return msgpack.unpackb(data, ext_hook=decoder.ext_hook, raw=False, strict_map_key=False)
    except msgpack.ExtraData:
        raise TopoError("not a single msgpack object (extra data after the state dict)", path=path) from None
    except (ValueError, msgpack.UnpackException) as exc:
        if isinstance(exc, TopoError):
            raise
        detail = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
        if isinstance(exc, msgpack.StackError):
            detail = "nested too deeply"
        raise TopoError(f"not a readable msgpack file ({detail})", path=path) from None


def _walk(node: Any, prefix: tuple[str, ...], path: Path, depth: int = 0) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, leaf) of a decoded tree, in the file's order."""
    if depth > _MAX_DEPTH:
        raise TopoError(f"refused: a state dict nested deeper than {_MAX_DEPTH} levels", path=path)
    if isinstance(node, dict):
        if node.get(_CHUNKED) is True:
            yield prefix, _unchunk(node, path, "/".join(prefix))
            return
        if set(node) == {"value"} or set(node) == {"raw_value"}:  # an NNX variable's state
            yield from _walk(next(iter(node.values())), prefix, path, depth + 1)
            return
        for key, value in node.items():
            yield from _walk(value, (*prefix, str(key)), path, depth + 1)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, (*prefix, str(i)), path, depth + 1)
    else:
        yield prefix, node


def _params_root(tree: Any) -> tuple[Any, tuple[str, ...]] | None:
    """The ``params`` collection: at the top, or under one or two levels (``target/params``)."""
    frontier: list[tuple[Any, tuple[str, ...]]] = [(tree, ())]
    for _ in range(3):
        following: list[tuple[Any, tuple[str, ...]]] = []
        for node, keys in frontier:
            if not isinstance(node, dict):
                continue
            if isinstance(node.get("params"), dict):
                return node["params"], (*keys, "params")
            following.extend((v, (*keys, str(k))) for k, v in node.items() if isinstance(v, dict))
        frontier = following
    return None


def tensors_from_tree(tree: Any, path: Path, source: str, warnings: list[str]) -> tuple[list[Tensor], list[str], dict]:
    """A decoded Flax tree as layer tensors (shared with the Orbax reader).

    Returns the tensors, the keys that became no tensor, and facts for ``info``.
    """
    info: dict[str, Any] = {}
    found = _params_root(tree)
    if found is not None:
        root, keys = found
        info["collection"] = "/".join(keys)
        if isinstance(tree, dict) and "step" in tree and isinstance(tree["step"], (int, np.ndarray)):
            try:
                info["step"] = int(np.asarray(tree["step"]))
            except (TypeError, ValueError):
                pass
    else:
        root, keys = tree, ()
        warnings.append("no 'params' collection in the tree; every array read as a possible layer")
    tensors: list[Tensor] = []
    skipped: list[str] = []
    for key_path, leaf in _walk(root, (), path):
        key = "/".join((*keys, *key_path))
        if not isinstance(leaf, np.ndarray) or leaf.ndim == 0:
            continue
        name = "/".join(key_path[:-1]) or key
        tensors.append(Tensor(key=key, name=name if leaf.ndim >= 2 else None, value=leaf,
                              source=f"{source}:{key}"))
    unknown = set(apply_name_layouts(tensors))
    assumed = []
    for t in tensors:
        last = t.key.rsplit("/", 1)[-1].lower()
        if np.ndim(t.value) == 2 and last in ("embedding", "embeddings"):
            t.kind, t.layout = "embedding", "in_out"  # nn.Embed: [vocab, dim]
        elif t.key in unknown:
            t.layout = "in_out"
            assumed.append(t.key)
    if assumed:
        shown = ", ".join(assumed[:5]) + (f", ... ({len(assumed)} in all)" if len(assumed) > 5 else "")
        warnings.append(f"layout not known from the name, read as [in, out] (JAX's x @ W): {shown}")
    return tensors, skipped, info


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    **_: Any,
) -> Topology:
    """Read a Flax msgpack file as a Topology.

    Parameters
    ----------
    path : Path
        A file written by ``flax.serialization.to_bytes`` or ``msgpack_serialize``
        (also the legacy ``flax.training.checkpoints`` files), or a folder of such
        ``checkpoint_<step>`` files (its newest step is read).
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.

    Returns
    -------
    Topology
        ``info``: ``format`` ``"flax-msgpack"``, ``path``, ``collection`` (e.g.
        ``"params"``), ``step`` where recorded (and ``steps`` for a folder), ``order``,
        ``warnings``, ``skipped``.

    Raises
    ------
    TopoError
        Without msgpack; files that are not msgpack or hold no arrays; arrays whose
        declared size differs from their bytes; over the file budget.

    Examples
    --------
    A state dict in the layout ``flax.serialization.to_bytes`` writes, made here with
    msgpack: the ``kernel`` is ``[in, out]`` and comes out as an ``[out, in]`` layer.

    >>> import pathlib, tempfile
    >>> import msgpack
    >>> import numpy as np
    >>> def packed(array):  # Flax's array extension: type 1, payload [shape, dtype name, C-order bytes]
    ...     return msgpack.ExtType(1, msgpack.packb([list(array.shape), array.dtype.name, array.tobytes()]))
    >>> kernel = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]], dtype=np.float32)  # [in, out]
    >>> state = {"step": 30, "params": {"Dense_0": {"kernel": packed(kernel), "bias": packed(np.zeros(2, np.float32))}}}
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "state.msgpack"
    >>> _ = path.write_bytes(msgpack.packb(state))
    >>> net = read(path)
    >>> net.names, net["Dense_0"].shape, net.nnz
    (['Dense_0'], (2, 3), 3)
    >>> net.info["collection"], net.info["format"], net["Dense_0"].fan_in.tolist()
    ('params', 'flax-msgpack', [2, 1])
    >>> temporary.cleanup()
    """
    path = Path(path)
    facts: dict[str, Any] = {}
    folder = None
    if path.is_dir():
        files = checkpoint_files(path)
        if not files:
            raise TopoError("a folder without flax checkpoint files (checkpoint_<step>)", path=path)
        folder = path
        facts["steps"] = [step for step, _ in files]
        facts["step"], path = files[-1]
        _policy.confine(path, folder, what="checkpoint file")
    if not path.is_file():
        raise TopoError("no such file", path=path)
    if path.stat().st_size == 0:
        raise TopoError("empty file, not a msgpack file", path=path)
    named = _CHECKPOINT_FILE_RE.match(path.name)
    if named and "step" not in facts:
        facts["step"] = int(named.group(1))
    warnings: list[str] = []
    with reading(path, "Flax msgpack file"):
        tree = decode(path)
        if not isinstance(tree, dict):
            raise TopoError("a msgpack file whose top level is not a map (not a Flax state dict)", path=path)
        tensors, skipped, info = tensors_from_tree(tree, path, path.name, warnings)
        info.update(facts)
        info["order"] = "the file's own order (Flax keeps the order modules were created)"
        return build_topology(
            tensors, path=folder or path, format="flax-msgpack", layers=layers, weights=weights, info=info,
            warnings=warnings, skipped=skipped,
        )

"""ONNX models (``.onnx``): weights from the graph's initializers, order from its nodes.

(The module is not called ``onnx`` so that it never shadows the ``onnx`` package.)

Walking ``graph.node`` in order, every node that multiplies by a constant weight
becomes a layer, in that order:

- ``Gemm`` (``Y = A B + C``): ``B`` is ``[out, in]`` when ``transB=1`` (what
  ``torch.onnx.export`` writes for ``nn.Linear``) and ``[in, out]`` when ``transB=0``;
  ``C`` is the bias;
- ``MatMul``: a constant second input is ``[in, out]``; a constant first input
  (``W @ X``) is ``[out, in]``; a following ``Add`` of a 1-D constant is the bias;
- ``Conv``: weights ``[out, in / group, *kernel]``, with ``group`` expanded to the
  block-diagonal channel mask; ``B`` is the bias;
- ``Gather`` of a 2-D constant table: an embedding (standalone).

Constants are initializers, ``Constant`` nodes, and those passed through
``Identity`` or a 2-D ``Transpose``. Weights in external data files are read only
from files inside the model's folder. Every tensor's declared size is checked
before it is converted. ``onnx`` is imported only when a file is read; without it
the error names the ``onnx`` extra.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.formats._assemble import (
    Tensor,
    build_topology,
    check_declared_size,
    read_head,
    reading,
)
from topo.topology import Topology

__all__ = ["EXTENSIONS", "sniff", "read"]

EXTENSIONS = (".onnx",)

# Field tags of ModelProto (field number << 3 | wire type) that may follow ir_version.
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x52, 0x62, 0x72, 0x7A, 0x82}
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1}


def sniff(path: Path) -> bool:
    """A protobuf that starts like an ONNX ModelProto (``ir_version`` then a model field)."""
    try:
        path = Path(path)
        if not path.is_file():
            return False
        head = read_head(path, 3)
        # ir_version (field 1, varint) comes first in every writer; versions are small.
        return len(head) == 3 and head[0] == 0x08 and 1 <= head[1] <= 30 and head[2] in _MODEL_TAGS
    except Exception:
        return False


def _onnx(path: Path):
    try:
        import onnx
    except ImportError:
        raise TopoError('reading ONNX files needs onnx: pip install "topo-toolkit[onnx]"', path=path) from None
    return onnx


def _external_location(tensor: Any) -> str | None:
    for entry in tensor.external_data:
        if entry.key == "location":
            return entry.value
    return None


def _to_array(onnx: Any, tensor: Any, path: Path, size_available: int) -> np.ndarray:
    """A TensorProto as a numpy array, after checking its declared size."""
    from onnx import numpy_helper

    name = tensor.name or "(unnamed)"
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise TopoError(f"tensor {name!r} declares a negative dimension", path=path)
    itemsize = _ITEMSIZE.get(tensor.data_type)
    if itemsize is None:
        raise TopoError(f"tensor {name!r} has ONNX data type {tensor.data_type}, which topo cannot read "
                        "(non-numeric or unsupported)", path=path)
    nbytes = math.prod(dims) * itemsize
    base_dir = None
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        location = _external_location(tensor)
        folder = path.parent.resolve()
        if not location:
            raise TopoError(f"tensor {name!r} has external data without a location", path=path)
        target = (folder / location).resolve()
        if folder not in target.parents or not target.is_file():
            raise TopoError(f"tensor {name!r}: external data {location!r} is not a file inside the model's folder; refused",
                            path=path)
        check_declared_size(nbytes, path=path, what=f"tensor {name!r}", available=target.stat().st_size)
        base_dir = str(folder)
    else:
        check_declared_size(nbytes, path=path, what=f"tensor {name!r}", available=size_available)
    array = numpy_helper.to_array(tensor, base_dir=base_dir) if base_dir else numpy_helper.to_array(tensor)
    if array.dtype.kind not in "biuf":
        raise TopoError(f"tensor {name!r} has non-numeric dtype {array.dtype}", path=path)
    return array


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    **_: Any,
) -> Topology:
    """Read an ONNX model as a Topology.

    Parameters
    ----------
    path : Path
        An ``.onnx`` file (external data files beside it are read).
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.

    Returns
    -------
    Topology
        ``info``: ``format`` ``"onnx"``, ``path``, ``producer``, ``opset``,
        ``warnings``, ``skipped``.

    Raises
    ------
    TopoError
        Without onnx, corrupt or truncated files, external data outside the model's
        folder, tensors that declare more data than stored, no weights.
    """
    path = Path(path)
    if not path.is_file():
        raise TopoError("no such file", path=path)
    size = path.stat().st_size
    if size == 0:
        raise TopoError("empty file, not an ONNX model", path=path)
    onnx = _onnx(path)
    with reading(path, "ONNX model"):
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            raise TopoError(f"not a readable ONNX model: truncated or corrupt ({type(exc).__name__})", path=path) from None
        graph = model.graph
        if not graph.node and not graph.initializer:
            raise TopoError("an ONNX model with an empty graph (not an ONNX file?)", path=path)
        protos: dict[str, Any] = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for attr in node.attribute:
                    if attr.name == "value" and attr.HasField("t"):
                        protos[node.output[0]] = attr.t
        cache: dict[str, np.ndarray] = {}

        def const(name: str) -> tuple[np.ndarray | None, bool, str]:
            """Constant value of ``name``, whether it was transposed on the way, and its source name."""
            if name in protos:
                if name not in cache:
                    cache[name] = _to_array(onnx, protos[name], path, size)
                return cache[name], False, name
            producer = producers.get(name)
            if producer is not None and producer.op_type in ("Identity", "Transpose") and producer.input:
                value, flipped, source = const(producer.input[0])
                if value is None:
                    return None, False, name
                if producer.op_type == "Transpose":
                    perm = [a.ints for a in producer.attribute if a.name == "perm"]
                    if value.ndim == 2 and (not perm or list(perm[0]) == [1, 0]):
                        return value, not flipped, source
                    return None, False, name
                return value, flipped, source
            return None, False, name

        producers = {out: node for node in graph.node for out in node.output}
        consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for inp in node.input:
                consumers.setdefault(inp, []).append(node)

        def attr(node: Any, name: str, default: int) -> int:
            for a in node.attribute:
                if a.name == name:
                    return int(a.i)
            return default

        def following_bias(output: str, n_out: int) -> np.ndarray | None:
            for nxt in consumers.get(output, []):
                if nxt.op_type == "Add":
                    for inp in nxt.input:
                        if inp != output:
                            value, _, _ = const(inp)
                            if value is not None and value.ndim == 1 and value.shape[0] == n_out:
                                return value
            return None

        tensors: list[Tensor] = []
        used: set[str] = set()
        warnings: list[str] = []
        for index, node in enumerate(graph.node):
            label = node.name or f"{node.op_type}_{index}"
            if node.op_type == "Gemm" and len(node.input) >= 2:
                b, flipped, source = const(node.input[1])
                if b is None or b.ndim != 2 or source in used:
                    continue
                trans_b = attr(node, "transB", 0)
                if attr(node, "transA", 0):
                    warnings.append(f"{label}: Gemm with transA=1; weight read as usual")
                layout = "out_in" if (trans_b == 1) != flipped else "in_out"
                bias = None
                if len(node.input) >= 3 and node.input[2]:
                    c, _, _ = const(node.input[2])
                    n_out = b.shape[0] if layout == "out_in" else b.shape[1]
                    if c is not None and c.size == n_out:
                        bias = c.reshape(-1)
                tensors.append(_tensor(source, b, layout, bias, f"Gemm transB={trans_b}", path))
                used.add(source)
            elif node.op_type == "MatMul" and len(node.input) == 2:
                b, flipped, source = const(node.input[1])
                if b is not None and b.ndim == 2:
                    layout = "out_in" if flipped else "in_out"
                else:
                    b, flipped, source = const(node.input[0])
                    if b is None or b.ndim != 2:
                        continue
                    layout = "in_out" if flipped else "out_in"
                if source in used:
                    continue
                n_out = b.shape[1] if layout == "in_out" else b.shape[0]
                bias = following_bias(node.output[0], n_out) if node.output else None
                tensors.append(_tensor(source, b, layout, bias, "MatMul", path))
                used.add(source)
            elif node.op_type in ("Conv", "ConvTranspose") and len(node.input) >= 2:
                w, _, source = const(node.input[1])
                if w is None or w.ndim < 3 or source in used:
                    continue
                if node.op_type == "ConvTranspose":
                    # ConvTranspose weights are [in, out / group, *kernel].
                    w = np.swapaxes(w, 0, 1)
                    warnings.append(f"{label}: ConvTranspose read as [out, in] after swapping its axes")
                bias = None
                if len(node.input) >= 3 and node.input[2]:
                    bias, _, _ = const(node.input[2])
                t = _tensor(source, w, "out_in", bias, node.op_type, path)
                t.groups = attr(node, "group", 1)
                tensors.append(t)
                used.add(source)
            elif node.op_type == "Gather" and node.input:
                table, _, source = const(node.input[0])
                if table is None or table.ndim != 2 or source in used:
                    continue
                t = _tensor(source, table, "in_out", None, "Gather (embedding table [vocab, dim])", path)
                t.kind = "embedding"
                tensors.append(t)
                used.add(source)
        skipped = [n for n, p in protos.items() if n not in used and len(p.dims) >= 2]
        info = {
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "opset": {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        }
        return build_topology(
            tensors,
            path=path,
            format="onnx",
            layers=layers,
            weights=weights,
            info=info,
            warnings=warnings,
            skipped=skipped,
        )


def _tensor(source: str, value: np.ndarray, layout: str, bias: Any, how: str, path: Path) -> Tensor:
    return Tensor(
        key=source,
        value=value,
        layout=layout,
        bias=bias,
        source=f"{path.name}:{source}",
        note=f"{how}; stored {'[in, out]' if layout == 'in_out' else '[out, in]'}" if value.ndim == 2 else how,
    )

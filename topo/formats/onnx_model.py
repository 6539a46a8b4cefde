"""ONNX models (``.onnx``): weights from the graph's initializers, order from its graph.

(The module is not called ``onnx`` so that it never shadows the ``onnx`` package.)

The nodes are walked in the graph's topological order (a node after every node whose
outputs it reads; ties in the file's order), with the subgraphs of control flow
expanded in place: an ``If``'s ``then_branch`` then its ``else_branch``, a ``Loop``'s
or ``Scan``'s ``body``, recursively; a call of one of the model's local functions
(``model.functions``, written e.g. by ``export_modules_as_functions``) is replaced by
the function's nodes, its formal inputs bound to the call's. Every node that multiplies by a constant weight
becomes a layer, in that order:

- ``Gemm`` (``Y = A B + C``): ``B`` is ``[out, in]`` when ``transB=1`` (what
  ``torch.onnx.export`` writes for ``nn.Linear``) and ``[in, out]`` when ``transB=0``;
  ``C`` is the bias;
- ``MatMul``: a constant second input is ``[in, out]``; a constant first input
  (``W @ X``) is ``[out, in]``; a following ``Add`` of a 1-D constant is the bias;
- ``Conv``: weights ``[out, in / group, *kernel]``, with ``group`` expanded to the
  block-diagonal channel mask (built sparse, so a huge ``group`` costs its
  connections, not groups squared); ``B`` is the bias;
- ``LSTM`` / ``GRU`` / ``RNN``: per direction, the input matrix ``W[d]``
  ``[gates * hidden, input]`` and the recurrent matrix ``R[d]``
  ``[gates * hidden, hidden]`` become two layers of kind ``"recurrent"`` (standalone,
  named ``NODE/W``, ``NODE/R``, with ``[forward]``/``[reverse]`` when bidirectional),
  with their halves of ``B`` as biases;
- ``Gather`` of a 2-D constant table: an embedding (standalone).

Constants are initializers of the graph or of any subgraph (sparse initializers
too: 2-D ``SparseTensorProto`` weights become scipy sparse matrices, their indices
checked against their shape), ``Constant`` nodes anywhere (``value`` or
``sparse_value``), and those passed through ``Identity`` or a 2-D ``Transpose``. Weights in
external data files are read only from files inside the model's folder. Every
tensor's declared size is checked before it is converted; subgraph nesting and the
number of nodes are bounded. ``onnx`` is imported only when a file is read; without
it the error names the ``onnx`` extra.
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
    """A protobuf that starts like an ONNX ModelProto (``ir_version`` then a model field).

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the first bytes, not the suffix; never raises.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> import onnx
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> w1 = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]], np.float32)  # Gemm with transB=1: [out, in]
    >>> w2 = np.array([[1.0], [0.5]], np.float32)  # MatMul: [in, out]
    >>> nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
    ...          helper.make_node("Relu", ["h"], ["r"]),
    ...          helper.make_node("MatMul", ["r", "fc2.weight"], ["y"], name="fc2")]
    >>> constants = [numpy_helper.from_array(w1, "fc1.weight"), numpy_helper.from_array(np.zeros(2, np.float32), "fc1.bias"),
    ...              numpy_helper.from_array(w2, "fc2.weight")]
    >>> graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
    ...                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], initializer=constants)
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "mlp.onnx"
    >>> onnx.save(helper.make_model(graph, producer_name="doc"), str(path))
    >>> _ = (path.parent / "notes.onnx").write_text("not a model")
    >>> sniff(path), sniff(path.parent / "notes.onnx")
    (True, False)
    >>> temporary.cleanup()
    """
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

    Examples
    --------
    A two-layer model built with onnx's helpers: the ``Gemm`` weight (``transB=1``)
    is ``[out, in]``, the ``MatMul`` weight ``[in, out]``; both come out ``[out, in]``,
    in the graph's order.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> import onnx
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> w1 = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]], np.float32)  # Gemm with transB=1: [out, in]
    >>> w2 = np.array([[1.0], [0.5]], np.float32)  # MatMul: [in, out]
    >>> nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
    ...          helper.make_node("Relu", ["h"], ["r"]),
    ...          helper.make_node("MatMul", ["r", "fc2.weight"], ["y"], name="fc2")]
    >>> constants = [numpy_helper.from_array(w1, "fc1.weight"), numpy_helper.from_array(np.zeros(2, np.float32), "fc1.bias"),
    ...              numpy_helper.from_array(w2, "fc2.weight")]
    >>> graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
    ...                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], initializer=constants)
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "mlp.onnx"
    >>> onnx.save(helper.make_model(graph, producer_name="doc"), str(path))
    >>> net = read(path)
    >>> net.names, net.widths, net.nnz, net.info["producer"]
    (['fc1', 'fc2'], [3, 2, 1], 5, 'doc')
    >>> net["fc1"].fan_in.tolist(), net["fc1"].bias.tolist()
    ([2, 1], [0.0, 0.0])
    >>> temporary.cleanup()
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
        warnings: list[str] = []
        nodes, protos = _flatten(graph, path, warnings, model.functions)
        cache: dict[str, np.ndarray] = {}
        producers = {out: node for node in nodes for out in node.output if out}

        def const(name: str, depth: int = 0) -> tuple[np.ndarray | None, bool, str]:
            """Constant value of ``name``, whether it was transposed on the way, and its source name."""
            if name in protos:
                if name not in cache:
                    proto = protos[name]
                    if isinstance(proto, onnx.SparseTensorProto):
                        cache[name] = _sparse_to_matrix(onnx, proto, path, size)
                    else:
                        cache[name] = _to_array(onnx, proto, path, size)
                return cache[name], False, name
            producer = producers.get(name)
            if depth < 64 and producer is not None and producer.op_type in ("Identity", "Transpose") and producer.input:
                value, flipped, source = const(producer.input[0], depth + 1)
                if value is None:
                    return None, False, name
                if producer.op_type == "Transpose":
                    perm = [a.ints for a in producer.attribute if a.name == "perm"]
                    if value.ndim == 2 and (not perm or list(perm[0]) == [1, 0]):
                        return value, not flipped, source
                    return None, False, name
                return value, flipped, source
            return None, False, name

        consumers: dict[str, list[Any]] = {}
        for node in nodes:
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
                            value = const(inp)[0]
                            if value is not None and value.ndim == 1 and value.shape[0] == n_out:
                                return value
            return None

        tensors: list[Tensor] = []
        used: set[str] = set()
        for index, node in enumerate(nodes):
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
                    c = const(node.input[2])[0]
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
                w, _flipped, source = const(node.input[1])
                if w is None or w.ndim < 3 or source in used:
                    continue
                if node.op_type == "ConvTranspose":
                    # ConvTranspose weights are [in, out / group, *kernel].
                    w = np.swapaxes(w, 0, 1)
                    warnings.append(f"{label}: ConvTranspose read as [out, in] after swapping its axes")
                bias = None
                if len(node.input) >= 3 and node.input[2]:
                    bias = const(node.input[2])[0]
                t = _tensor(source, w, "out_in", bias, node.op_type, path)
                t.groups = attr(node, "group", 1)
                tensors.append(t)
                used.add(source)
            elif node.op_type in _RECURRENT_GATES and len(node.input) >= 3:
                tensors.extend(_recurrent(node, label, const, used, path))
            elif node.op_type == "Gather" and node.input:
                table, _flipped, source = const(node.input[0])
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
            "order": "the graph's topological order (control-flow subgraphs in place)",
        }
        return build_topology(
            tensors,
            path=path,
            format="onnx",
            keep_order=True,
            layers=layers,
            weights=weights,
            info=info,
            warnings=warnings,
            skipped=skipped,
        )


# Gates per op: W is [directions, gates * hidden, input], R [directions, gates * hidden, hidden].
_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DIRECTIONS = {1: ("",), 2: ("[forward]", "[reverse]")}
#: Subgraphs nested deeper than this are refused (a hostile file could nest without end).
MAX_SUBGRAPH_DEPTH = 32
#: Largest number of nodes walked, subgraphs included.
MAX_NODES = 1_000_000


def _subgraphs(node: Any) -> list[Any]:
    """The graphs a node holds in its attributes (``If`` branches, ``Loop``/``Scan`` bodies)."""
    out = []
    # An If's then_branch before its else_branch, whatever order the attributes are stored in.
    for a in sorted(node.attribute, key=lambda a: (a.name != "then_branch", a.name)):
        if a.HasField("g"):
            out.append(a.g)
        out.extend(a.graphs)
    return out


def _names_used(graph: Any, depth: int = 0) -> set[str]:
    """Every value name a graph (and its subgraphs) reads: its outer-scope dependencies among them."""
    names: set[str] = set()
    if depth > MAX_SUBGRAPH_DEPTH:
        return names
    for node in graph.node:
        names.update(i for i in node.input if i)
        for sub in _subgraphs(node):
            names |= _names_used(sub, depth + 1)
    return names


def _topological(nodes: list[Any], warnings: list[str], where: str) -> list[Any]:
    """``nodes`` in an order where every node comes after the nodes it reads from.

    Ties keep the file's order; a control-flow node depends on everything its subgraphs
    read from this graph. A cycle keeps the file's order with a warning.
    """
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer.setdefault(out, i)
    preds: list[set[int]] = []
    for i, node in enumerate(nodes):
        reads = {x for x in node.input if x}
        for sub in _subgraphs(node):
            reads |= _names_used(sub)
        preds.append({producer[x] for x in reads if x in producer and producer[x] != i})
    import heapq

    indegree = [len(p) for p in preds]
    successors: list[list[int]] = [[] for _ in nodes]
    for i, p in enumerate(preds):
        for j in p:
            successors[j].append(i)
    ready = [i for i, d in enumerate(indegree) if d == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for k in successors[i]:
            indegree[k] -= 1
            if indegree[k] == 0:
                heapq.heappush(ready, k)
    if len(order) != len(nodes):
        warnings.append(f"{where}: the nodes form a cycle; the file's node order kept")
        return list(nodes)
    if order != sorted(order):
        warnings.append(f"{where}: nodes are not stored in topological order; read in graph order")
    return [nodes[i] for i in order]


def _flatten(graph: Any, path: Path, warnings: list[str], functions: Any = ()) -> tuple[list[Any], dict[str, Any]]:
    """Every node of the model in network order, subgraphs expanded in place, and every constant.

    Constants are initializers (dense and sparse) of any (sub)graph and the ``value`` /
    ``sparse_value`` tensors of ``Constant`` nodes; ONNX names are unique across nested
    scopes, so one table holds them all. A call of one of the model's local functions
    (``model.functions``, what exporters write for modules kept as functions) is
    replaced by the function's nodes, its formal inputs and outputs renamed to the
    call's and its inner names prefixed with the call's name.
    """
    import onnx

    nodes: list[Any] = []
    protos: dict[str, Any] = {}
    library = {(f.domain, f.name): f for f in functions}

    def add_constant(node: Any) -> None:
        for a in node.attribute:
            if a.name == "value" and a.HasField("t"):
                protos.setdefault(node.output[0], a.t)
            elif a.name == "sparse_value" and a.HasField("sparse_tensor"):
                protos.setdefault(node.output[0], a.sparse_tensor)

    def expand(call: Any, function: Any) -> list[Any]:
        prefix = call.name or f"{function.name}_call{len(nodes)}"
        rename = {formal: actual for formal, actual in zip(function.input, call.input)}
        rename.update({formal: actual for formal, actual in zip(function.output, call.output)})
        out = []
        for inner in function.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(inner)
            del copy.input[:]
            copy.input.extend(rename.get(x, f"{prefix}/{x}") if x else x for x in inner.input)
            del copy.output[:]
            copy.output.extend(rename.get(x, f"{prefix}/{x}") if x else x for x in inner.output)
            copy.name = f"{prefix}/{inner.name or inner.op_type}"
            out.append(copy)
        return out

    def walk(node_list: list[Any], inits: Any, sparse_inits: Any, depth: int, where: str) -> None:
        if depth > MAX_SUBGRAPH_DEPTH:
            raise TopoError(f"refused: subgraphs or functions nested deeper than {MAX_SUBGRAPH_DEPTH} levels",
                            path=path)
        for init in inits:
            protos.setdefault(init.name, init)
        for sparse in sparse_inits:
            protos.setdefault(sparse.values.name, sparse)
        for node in _topological(list(node_list), warnings, where):
            if len(nodes) >= MAX_NODES:
                raise TopoError(f"refused: more than {MAX_NODES:,} nodes", path=path)
            function = library.get((node.domain, node.op_type))
            if function is not None:
                walk(expand(node, function), (), (), depth + 1, f"{where}/{node.name or node.op_type}")
                continue
            if node.op_type == "Constant" and node.output:
                add_constant(node)
            nodes.append(node)
            for i, sub in enumerate(_subgraphs(node)):
                walk(sub.node, sub.initializer, sub.sparse_initializer, depth + 1,
                     f"{where}/{node.name or node.op_type}:{sub.name or i}")

    walk(graph.node, graph.initializer, graph.sparse_initializer, 0, "graph")
    return nodes, protos


def _sparse_to_matrix(onnx: Any, proto: Any, path: Path, size_available: int) -> Any:
    """A 2-D SparseTensorProto as a scipy CSR matrix (values and indices checked first)."""
    import scipy.sparse as sp

    name = proto.values.name or "(unnamed)"
    dims = [int(d) for d in proto.dims]
    if len(dims) != 2 or any(d < 0 for d in dims):
        raise TopoError(f"sparse tensor {name!r} has shape {dims}; topo reads 2-D sparse weights only", path=path)
    values = _to_array(onnx, proto.values, path, size_available).reshape(-1)
    indices = _to_array(onnx, proto.indices, path, size_available)
    nnz = values.size
    cells = dims[0] * dims[1]
    if indices.ndim == 1 and indices.size == nnz:
        flat = indices.astype(np.int64)
        if nnz and (flat.min() < 0 or flat.max() >= cells):
            raise TopoError(f"sparse tensor {name!r} has indices outside its shape {tuple(dims)}", path=path)
        rows, cols = np.divmod(flat, dims[1]) if dims[1] else (flat, flat)
    elif indices.ndim == 2 and indices.shape == (nnz, 2):
        rows, cols = indices[:, 0].astype(np.int64), indices[:, 1].astype(np.int64)
        if nnz and (rows.min() < 0 or cols.min() < 0 or rows.max() >= dims[0] or cols.max() >= dims[1]):
            raise TopoError(f"sparse tensor {name!r} has indices outside its shape {tuple(dims)}", path=path)
    else:
        raise TopoError(f"sparse tensor {name!r}: indices of shape {indices.shape} do not match {nnz} values",
                        path=path)
    return sp.csr_matrix((values, (rows, cols)), shape=tuple(dims))


def _recurrent(node: Any, label: str, const: Any, used: set[str], path: Path) -> list[Tensor]:
    """``W`` (input) and ``R`` (recurrent) matrices of an LSTM / GRU / RNN node, per direction."""
    gates = _RECURRENT_GATES[node.op_type]
    w, _, w_source = const(node.input[1])
    r, _, r_source = const(node.input[2])
    if w is None or r is None or w.ndim != 3 or r.ndim != 3 or w_source in used:
        return []
    bias = None
    if len(node.input) >= 4 and node.input[3]:
        bias, _, b_source = const(node.input[3])
        if bias is not None:
            used.add(b_source)
    directions = _DIRECTIONS.get(w.shape[0], tuple(f"[{d}]" for d in range(w.shape[0])))
    out = []
    for d, suffix in enumerate(directions):
        for matrix, source, part, offset in ((w, w_source, "W", 0), (r, r_source, "R", 1)):
            b = None
            if bias is not None and bias.ndim == 2 and bias.shape[0] > d and bias.shape[1] == 2 * matrix.shape[1]:
                b = bias[d, offset * matrix.shape[1]:(offset + 1) * matrix.shape[1]]
            t = _tensor(f"{source}{suffix}", matrix[d], "out_in", b,
                        f"{node.op_type} {part}: {gates} gates stacked [gates * hidden, "
                        f"{'input' if part == 'W' else 'hidden'}]", path)
            t.name = f"{label}/{part}{suffix}"
            t.kind = "recurrent"
            out.append(t)
    used.add(w_source)
    used.add(r_source)
    return out


def _tensor(source: str, value: np.ndarray, layout: str, bias: Any, how: str, path: Path) -> Tensor:
    return Tensor(
        key=source,
        value=value,
        layout=layout,
        bias=bias,
        source=f"{path.name}:{source}",
        note=f"{how}; stored {'[in, out]' if layout == 'in_out' else '[out, in]'}" if value.ndim == 2 else how,
    )

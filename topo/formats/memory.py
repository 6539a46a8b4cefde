"""State dicts, live tensors and binary file objects, read with the file readers' rules.

What is in memory rather than in a file, and is not a live model: a state dict (any
mapping of names to ``torch.Tensor``, numpy or other numeric arrays) goes through the
PyTorch reader's state-dict rules (:func:`topo.formats.pytorch.state_dict_tensors`) and
the assembler every reader uses; a binary file object is spooled to a private temporary
file and read by the reader its content calls for. Live tensors are read as views,
without a copy, where their dtype and device allow.

:func:`topo.formats.load` comes here for what is not a path; live ``torch.nn.Module``
objects are read by :mod:`topo.integrations.live`, which uses the tensor records made
here. torch is never imported here: a tensor is recognised only when torch is already
loaded.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from topo.errors import TopoError
from topo.topology import Topology

__all__ = ["tensor_values", "tensor_record", "state_records", "from_state_dict", "from_file_object", "load_object"]


def _cpu_view(tensor):
    """A detached CPU tensor sharing memory with ``tensor`` where it already is on the CPU."""
    t = tensor.detach()
    return t if t.device.type == "cpu" else t.cpu()


def tensor_values(tensor):
    """A live tensor's values as numpy (a view for CPU float32/64 and integer tensors) or CSR.

    Parameters
    ----------
    tensor : torch.Tensor
        Dense, sparse (COO, CSR) or quantized; on any device.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_matrix
        bfloat16, float16 and float8 come back as float32 (numpy has no such types;
        the one case where values are copied), quantized tensors dequantized.

    Examples
    --------
    >>> import torch
    >>> weight = torch.eye(2)
    >>> values = tensor_values(weight)
    >>> values.tolist(), values.ctypes.data == weight.data_ptr()
    ([[1.0, 0.0], [0.0, 1.0]], True)
    >>> tensor_values(weight.to_sparse()).nnz
    2
    """
    import scipy.sparse as sp
    import torch

    t = _cpu_view(tensor)
    if t.is_quantized:
        t = t.dequantize()
    if t.layout != torch.strided:
        if t.layout == torch.sparse_csr:
            return sp.csr_matrix(
                (_dense_numpy(t.values()), t.col_indices().numpy(), t.crow_indices().numpy()), shape=tuple(t.shape)
            )
        coo = (t if t.layout == torch.sparse_coo else t.to_sparse_coo()).coalesce()
        index = coo.indices().numpy()
        return sp.coo_matrix((_dense_numpy(coo.values()), (index[0], index[1])), shape=tuple(t.shape)).tocsr()
    return _dense_numpy(t)


def _dense_numpy(t):
    import torch

    if t.dtype in (torch.bfloat16, torch.float16) or "float8" in str(t.dtype):
        t = t.float()  # numpy has no bfloat16: the one place a copy is made
    return t.numpy()


def tensor_record(tensor):
    """A live tensor as the PyTorch reader's tensor record, read lazily (and without a copy).

    Parameters
    ----------
    tensor : torch.Tensor

    Returns
    -------
    topo.formats._unpickle.StoredTensor
        Its shape, dtype and layout; the values are read (by :func:`tensor_values`)
        when asked for.

    Examples
    --------
    >>> import torch
    >>> record = tensor_record(torch.zeros(3, 2, dtype=torch.bfloat16))
    >>> record.shape, record.dtype_name, record.layout
    ((3, 2), 'bfloat16', 'strided')
    """
    from topo.formats._unpickle import StoredTensor

    layout = str(tensor.layout).removeprefix("torch.")
    dtype_name = str(tensor.dtype).removeprefix("torch.")
    return StoredTensor(tuple(tensor.shape), dtype_name, layout, lambda: tensor_values(tensor))


def state_records(value):
    """A state-dict value as the PyTorch reader's tensor record: torch tensors and numeric
    arrays (numpy, jax, ...) alike, without a copy; other values as they are.

    Parameters
    ----------
    value
        A tensor, an array-like, or a mapping or sequence of them (nested as a
        checkpoint dictionary nests them).

    Returns
    -------
    The same structure with every numeric array a tensor record.

    Examples
    --------
    >>> import numpy as np
    >>> records = state_records({"fc.weight": np.ones((2, 3)), "epoch": 4})
    >>> records["fc.weight"].shape, records["fc.weight"].dtype_name, records["epoch"]
    ((2, 3), 'float64', 4)
    """
    import sys

    import numpy as np

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return tensor_record(value)
    if isinstance(value, Mapping):
        return {k: state_records(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (int, float, bool, str)):
        return type(value)(state_records(v) for v in value)
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    try:
        array = np.asarray(value)
    except Exception:
        return value
    if array.dtype.kind not in "biuf":
        return value
    from topo.formats._unpickle import StoredTensor

    return StoredTensor(array.shape, array.dtype.name, "strided", lambda: array)


def from_state_dict(
    mapping: Mapping[str, Any],
    *,
    weights: bool = True,
    layers: str | None = None,
    name: str = "state dict",
) -> Topology:
    """Read a state dict (or any mapping of names to tensors or arrays) as a Topology.

    The rules are the PyTorch reader's: ``X.weight_orig`` + ``X.weight_mask``
    (``torch.nn.utils.prune``), parametrizations with their masks (``torch.ao``), a
    checkpoint dictionary holding the state dict under ``state_dict`` / ``model`` ...
    with ``masks`` beside it, layers in the mapping's order.

    Parameters
    ----------
    mapping : mapping
        Names to ``torch.Tensor``, numpy arrays or array-likes (e.g. jax arrays); nested
        mappings are flattened with dotted names.
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.
    name : str
        What to call the mapping in messages and ``info["path"]``.

    Returns
    -------
    Topology
        ``info["format"]`` is ``"state-dict"``.

    Raises
    ------
    TopoError
        If nothing in the mapping is a weight matrix, or a value is not numeric.

    Examples
    --------
    >>> import numpy as np, topo
    >>> net = topo.from_state_dict({"fc1.weight": np.eye(3), "fc2.weight": np.ones((2, 3))})
    >>> [layer.shape for layer in net]
    [(3, 3), (2, 3)]
    """
    from topo.formats._assemble import build_topology, reading
    from topo.formats.pytorch import state_dict_tensors

    if not isinstance(mapping, Mapping):
        raise TopoError(f"from_state_dict expects a mapping of names to tensors, got {type(mapping).__name__}")
    label = Path(f"<{name}>")
    with reading(label, "state dict"):
        converted = {str(k): state_records(v) for k, v in mapping.items()}
        tensors, facts, notes = state_dict_tensors(converted, source=name)
        return build_topology(
            tensors, path=label, format="state-dict", layers=layers, weights=weights, info=facts, warnings=notes
        )


def from_file_object(fileobj, *, format: str | None = None, **options: Any) -> Topology:
    """Read a checkpoint from a binary file object (``BytesIO``, an open file, a stream).

    Every format reader of :func:`topo.formats.load` works on a path (they memory-map,
    open zip members and HDF5 files by name), so the bytes are spooled to a private
    temporary file, read by the reader the content calls for, and the file is removed.

    Parameters
    ----------
    fileobj : binary file object
        Anything with ``read()`` returning bytes; read from its current position.
    format : str, optional
        Skip detection (a key of :data:`topo.formats.READERS`).
    **options
        Passed to the reader (``weights``, ``layers``).

    Returns
    -------
    Topology
        ``info["path"]`` is the file object's ``name`` (``"<BytesIO>"`` when it has none).

    Raises
    ------
    TopoError
        A text-mode file, an empty stream, or what the reader raises.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> buffer = io.BytesIO()
    >>> np.savez(buffer, fc1=np.eye(3), fc2=np.ones((2, 3)))
    >>> _ = buffer.seek(0)
    >>> net = from_file_object(buffer)
    >>> net.names, net.info["path"]
    (['fc1', 'fc2'], '<BytesIO>')
    """
    from topo.formats import load

    label = str(getattr(fileobj, "name", "") or f"<{type(fileobj).__name__}>")
    suffix = Path(label).suffix if not label.startswith("<") else ""
    with tempfile.TemporaryDirectory(prefix="topo-fileobj-") as folder:
        path = Path(folder) / f"checkpoint{suffix}"
        try:
            with open(path, "wb") as handle:
                first = fileobj.read(0)
                if isinstance(first, str):
                    raise TopoError(f"{label}: a text-mode file; open checkpoints in binary mode ('rb')")
                shutil.copyfileobj(fileobj, handle, length=1 << 22)
        except TopoError:
            raise
        except Exception as exc:
            from topo.formats._assemble import one_line

            raise TopoError(f"{label}: cannot read the file object ({one_line(exc)})") from None
        if path.stat().st_size == 0:
            raise TopoError(f"{label}: the file object holds no bytes")
        try:
            topology = load(path, format=format, **options)
        except TopoError as exc:
            message = str(exc).replace(str(path), label)
            raise TopoError(message) from None
    return topology.with_info(path=label)


def load_object(obj: Any, *, format: str | None = None, **options: Any) -> Topology:
    """:func:`topo.formats.load` for what is not a path: a binary file object or a state dict.

    Parameters
    ----------
    obj : binary file object or mapping
        What to read.
    format : str, optional
        For a file object: skip detection (a key of :data:`topo.formats.READERS`).
    **options
        Passed to the reader (``weights``, ``layers``).

    Returns
    -------
    Topology

    Raises
    ------
    TopoError
        For any other type, naming it (a live ``torch.nn.Module`` is read by
        :func:`topo.load` or :func:`topo.from_module`).

    Examples
    --------
    >>> import numpy as np
    >>> load_object({"fc1.weight": np.eye(3)}).widths
    [3, 3]
    >>> load_object(42)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: topo.formats.load: cannot read a int; give a path, a binary file object or a state dict (topo.load also reads a torch.nn.Module)
    """
    if hasattr(obj, "read"):
        return from_file_object(obj, format=format, **options)
    if isinstance(obj, Mapping):
        return from_state_dict(obj, **options)
    raise TopoError(
        f"topo.formats.load: cannot read a {type(obj).__name__}; give a path, a binary file object "
        "or a state dict (topo.load also reads a torch.nn.Module)"
    )

"""Keras 3 files: ``.keras`` archives and ``.weights.h5`` weight files.

The layout (Keras 3's saving library, ``keras.saving``):

- ``model.save("m.keras")`` writes a zip with ``config.json`` (the model's
  serialized config), ``metadata.json`` (``keras_version``) and ``model.weights.h5``;
- ``model.save_weights("m.weights.h5")`` writes that same HDF5 file alone;
- ``model.save("folder", zipped=False)`` writes the archive's three members as files.

In the HDF5 file every layer is a group ``layers/<key>`` whose variables are datasets
``vars/0``, ``vars/1``, ... in the layer's own order (a Dense layer: kernel, bias). ``<key>``
is the layer class in snake case with a counter (``dense``, ``dense_1``, ``conv2d``); nested models
repeat the scheme (``layers/sequential/layers/dense``) and recurrent layers keep their
variables in a cell (``layers/lstm/cell/vars``). Variables carry no names, so their
role comes from the layer class (from the config, else from the group's key):

- ``Dense`` and ``Conv1D/2D/3D``: ``vars/0`` is the kernel, ``[in, out]`` or
  ``[*kernel, in, out]``, ``vars/1`` the bias; ``Conv*Transpose`` kernels are
  ``[*kernel, out, in]``;
- ``EinsumDense``: the kernel's axes that meet the input (read from the config's
  equation; without one, the first axis) become ``in``, the others ``out``, flattened
  to a 2-D ``[in, out]`` kernel; ``MultiHeadAttention``: its ``query``/``key``/
  ``value`` EinsumDense kernels ``[dim, heads, head_dim]`` (standalone, kind
  ``"attention"``) and its output kernel ``[heads, head_dim, dim]``;
- ``Embedding``: the table ``[vocab, dim]`` (standalone); ``LSTM``/``GRU``/
  ``SimpleRNN``: kernel and recurrent kernel (standalone, kind ``"recurrent"``);
- ``SeparableConv``: the pointwise kernel (the depthwise part is not represented,
  with a warning); ``DepthwiseConv``: skipped with a warning; normalisation layers and
  1-D statistics: skipped;
- other classes: a single 2-D variable is read as a Dense kernel, with a warning (and
  a layer whose variables sit only in sublayers topo does not know is skipped with a
  warning);
- wrappers: ``Bidirectional`` gives its ``forward_layer`` and ``backward_layer``
  (``NAME/forward``, ``NAME/backward``); a wrapper with a ``layer`` child
  (``TimeDistributed``, pruning wrappers) gives the wrapped layer under the wrapper's
  name, and a variable of the wrapper itself shaped like the wrapped kernel is its
  mask (as in the TensorFlow Model Optimization ``prune_low_magnitude`` wrapper: the
  stored mask wins over the nonzero pattern).

Layer names come from the config (the groups are matched to its layers by Keras's own
naming scheme); a bare ``.weights.h5`` has only the group keys (``dense_1``). (The
``vars`` group's variable-length ``name`` attribute is not read: see ``_Walk``.)

Network order: a Sequential model's layer list; a Functional model's graph
(``inbound_nodes``), in topological order; without a config (a bare
``.weights.h5``), the order in which Keras wrote the layer groups.

The archive's ``model.weights.h5`` is read into memory (after checking its declared
size), never extracted to disk. Every dataset goes through :mod:`topo.formats._hdf5`:
no external storage, links or virtual datasets, and declared sizes checked against the
storage the file holds.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from topo.errors import TopoError
from topo.formats import _hdf5, _policy
from topo.formats._assemble import (
    Tensor,
    build_topology,
    check_declared_size,
    read_head,
    reading,
)
from topo.formats._requested import with_tfmot_targets  # re-exported: first defined here
from topo.topology import Topology
from topo.values import natural_key

__all__ = ["EXTENSIONS", "sniff", "read", "is_keras3_weights", "with_tfmot_targets"]

EXTENSIONS = (".keras",)

_ZIP_MAGIC = b"PK\x03\x04"
_WEIGHTS_MEMBER = "model.weights.h5"
_MAX_JSON_BYTES = 64 * 1024**2
_MAX_NESTING = 32

_DENSE_LIKE = {"dense", "conv1d", "conv2d", "conv3d", "convolution1d", "convolution2d", "convolution3d"}
_TRANSPOSED = {"conv1d_transpose", "conv2d_transpose", "conv3d_transpose"}
_RECURRENT = {"lstm", "gru", "simple_rnn", "lstm_cell", "gru_cell", "simple_rnn_cell"}
_NO_TOPOLOGY = {
    "batch_normalization", "layer_normalization", "group_normalization", "unit_normalization",
    "normalization", "rms_normalization", "spectral_normalization", "input_layer",
}


def _snake(name: str) -> str:
    """Keras's own snake case of a class name: ``Conv2D`` -> ``conv2d``."""
    step = re.sub(r"\W+", "", name)
    step = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", step)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", step).lower()


def _class_of_key(key: str) -> str:
    """``dense_3`` -> ``dense``."""
    return re.sub(r"_\d+$", "", key)


def _is_zip_archive(path: Path) -> bool:
    if read_head(path, 4) != _ZIP_MAGIC:
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except Exception:
        return False
    return _WEIGHTS_MEMBER in names and "config.json" in names


def is_keras3_weights(handle: Any) -> bool:
    """Whether an open HDF5 file has Keras 3's layout (``layers/``, ``vars/``, no ``layer_names``).

    Parameters
    ----------
    handle : h5py.File
        The open file.

    Returns
    -------
    bool
        False for Keras 2's layout (a ``layer_names`` attribute or ``model_weights``).

    Examples
    --------
    >>> import io
    >>> import h5py
    >>> import numpy as np
    >>> with h5py.File(io.BytesIO(), "w") as f:
    ...     f["layers/dense/vars/0"] = np.eye(2)
    ...     print(is_keras3_weights(f))
    True
    >>> with h5py.File(io.BytesIO(), "w") as f:
    ...     f.attrs["layer_names"] = [b"dense"]
    ...     print(is_keras3_weights(f))
    False
    """
    root = handle
    if "layer_names" in root.attrs or "model_weights" in root:
        return False
    return "layers" in root or "vars" in root


def _is_unzipped_model(folder: Path) -> bool:
    return (folder / _WEIGHTS_MEMBER).is_file() and (folder / "config.json").is_file()


def sniff(path: Path) -> bool:
    """A ``.keras`` archive, the folder ``model.save(..., zipped=False)`` writes, or an
    HDF5 file with Keras 3's weight layout.

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
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> with h5py.File(folder / "mlp.weights.h5", "w") as f:
    ...     f["layers/dense/vars/0"] = np.eye(2)
    >>> with h5py.File(folder / "keras2.h5", "w") as f:
    ...     f.attrs["layer_names"] = [b"dense"]
    >>> sniff(folder / "mlp.weights.h5"), sniff(folder / "keras2.h5")
    (True, False)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if path.is_dir():
            return _is_unzipped_model(path)
        if not path.is_file():
            return False
        if _is_zip_archive(path):
            return True
        from topo.formats import keras_h5

        if not keras_h5.sniff(path):
            return False
        with _hdf5.open_file(path, path) as handle:
            return is_keras3_weights(handle)
    except Exception:
        return False


# -- the model config ------------------------------------------------------------------
def _history_refs(value: Any, out: list[str], depth: int = 0) -> None:
    """Names of the layers whose outputs a layer call consumes (``keras_history``)."""
    if depth > 64:
        return
    if isinstance(value, dict):
        history = (value.get("config") or {}).get("keras_history") if isinstance(value.get("config"), dict) else None
        if isinstance(history, list) and history and isinstance(history[0], str):
            out.append(history[0])
        for item in value.values():
            _history_refs(item, out, depth + 1)
    elif isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and all(isinstance(v, int) for v in value[1:3]):
            out.append(value[0])  # Keras 2 style node: [name, node_index, tensor_index, kwargs]
        for item in value:
            _history_refs(item, out, depth + 1)


def _layer_name(layer: dict) -> str:
    cfg = layer.get("config")
    if not isinstance(cfg, dict):
        cfg = {}
    return str(cfg.get("name") or layer.get("name") or "")


def _graph_order(layers: list[dict], warnings: list[str], model_name: str) -> tuple[list[dict], bool]:
    """A Functional model's layers in topological order of their calls (ties: config order)."""
    names = [_layer_name(layer) for layer in layers]
    index = {name: i for i, name in enumerate(names)}
    preds: dict[int, set[int]] = {i: set() for i in range(len(layers))}
    has_graph = False
    for i, layer in enumerate(layers):
        refs: list[str] = []
        _history_refs(layer.get("inbound_nodes") or [], refs)
        for ref in refs:
            if ref in index and index[ref] != i:
                preds[i].add(index[ref])
                has_graph = True
    if not has_graph:
        return layers, False
    done: list[int] = []
    remaining = set(range(len(layers)))
    while remaining:
        ready = sorted(i for i in remaining if not (preds[i] & remaining))
        if not ready:
            warnings.append(f"{model_name}: the config's layer graph has a cycle; config order kept")
            return layers, False
        done.append(ready[0])
        remaining.discard(ready[0])
    return [layers[i] for i in done], True


def _model_layers(config: Any) -> list[dict] | None:
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if isinstance(layers, list) and all(isinstance(layer, dict) for layer in layers):
        return layers
    return None


# -- walking the weights file ------------------------------------------------------------
class _Walk:
    """The leaf layers of a Keras 3 weights file, in network order."""

    def __init__(self, path: Path, warnings: list[str]) -> None:
        self.path = path
        self.warnings = warnings
        self.order_notes: set[str] = set()

    def _layer_groups(self, container: Any) -> dict[str, Any]:
        """``layers/<key>`` groups of a container, keyed by their ``key``."""
        layers_group = _hdf5.member(container, "layers", self.path)
        if layers_group is None:
            return {}
        h5py = _hdf5.h5py_module(self.path)
        out = {}
        for key in _hdf5.children(layers_group, self.path):
            obj = _hdf5.member(layers_group, key, self.path)
            if isinstance(obj, h5py.Group):
                out[key] = obj
        return out

    # The layer's own name is also kept in the attribute ``vars/@name``, but as a
    # variable-length string: reading one makes libhdf5 parse the file's global heap,
    # which in a damaged file can loop forever inside the library (no Python signal can
    # stop it). Names come from the config instead, or are Keras's group keys.
    def _written_order(self, groups: dict[str, Any]) -> list[str]:
        """Keys in the order Keras created the groups (object header addresses grow as it writes)."""
        h5py = _hdf5.h5py_module(self.path)
        try:
            addr = {key: h5py.h5o.get_info(group.id).addr for key, group in groups.items()}
        except Exception:
            return sorted(groups, key=natural_key)
        ordered = sorted(groups, key=lambda k: addr[k])
        # Within one class, Keras numbers the groups in model order: the two orders must agree.
        by_class: dict[str, list[str]] = {}
        for key in ordered:
            by_class.setdefault(_class_of_key(key), []).append(key)
        if any(keys != sorted(keys, key=natural_key) for keys in by_class.values()):
            self.order_notes.add("names")
            return sorted(groups, key=natural_key)
        return ordered

    def leaves(self, container: Any, config: Any, prefix: str, depth: int = 0) -> Iterator[tuple[str, str, Any, Any, dict]]:
        """(layer name, snake-case class, group, wrapper group, extra) of every leaf layer, in network order."""
        if depth > _MAX_NESTING:
            raise TopoError(f"models nested deeper than {_MAX_NESTING} levels", path=self.path)
        groups = self._layer_groups(container)
        layers = _model_layers(config) if config is not None else None
        if layers is None:
            if config is not None:
                self.warnings.append(f"{prefix or 'model'}: config has no layer list; order of the weights file used")
            self.order_notes.add("written")
            for key in self._written_order(groups):
                group = groups[key]
                yield from self._leaf_or_nested(group, key, _class_of_key(key), None, f"{prefix}{key}", depth)
            return
        class_name = str(config.get("class_name", ""))
        if class_name != "Sequential":
            layers, graph = _graph_order(layers, self.warnings, prefix or "model")
            self.order_notes.add("graph" if graph else "config")
        else:
            self.order_notes.add("config")
        # Keras names the groups by class and counter in the model's own layer order.
        counters: dict[str, int] = {}
        scheme: dict[str, str] = {}
        for layer in _model_layers(config) or []:
            base = _snake(str(layer.get("class_name", "layer")))
            count = counters.get(base, 0)
            counters[base] = count + 1
            scheme[_layer_name(layer)] = base if count == 0 else f"{base}_{count}"
        used: set[str] = set()
        for layer in layers:
            name = _layer_name(layer)
            scheme_key = scheme.get(name)
            if scheme_key is None:
                continue
            group = groups.get(scheme_key)
            if group is None or scheme_key in used:
                continue  # a layer without variables (Flatten, Dropout, ...) has no group
            used.add(scheme_key)
            cls = _snake(str(layer.get("class_name", ""))) or _class_of_key(scheme_key)
            yield from self._leaf_or_nested(group, scheme_key, cls, layer, f"{prefix}{name}", depth)
        for key in sorted(set(groups) - used, key=natural_key):
            if self._has_variables(groups[key]):
                self.warnings.append(f"weights group layers/{key} matches no layer of the config; skipped")

    def _has_variables(self, group: Any) -> bool:
        found: list[bool] = []
        group.visit(lambda name: found.append(True) if "/vars/" in f"/{name}" else None)
        return bool(found)

    def _inner_class(self, inner: Any, layer: dict | None, field: str) -> str:
        """The class of a wrapped layer: from the wrapper's config; without one, a layer
        with a ``cell`` is recurrent and any other is not known."""
        cfg = layer.get("config") if isinstance(layer, dict) else None
        wrapped = cfg.get(field) if isinstance(cfg, dict) else None
        if isinstance(wrapped, dict) and wrapped.get("class_name"):
            return _snake(str(wrapped["class_name"]))
        return "simple_rnn" if _hdf5.member(inner, "cell", self.path) is not None else ""

    def _leaf_or_nested(self, group: Any, key: str, cls: str, layer: dict | None, name: str, depth: int):
        """Nested models recurse; wrappers yield the layers they wrap (with the wrapper, whose
        own variables may hold a mask); other layers are leaves: (name, class, group, wrapper)."""
        h5py = _hdf5.h5py_module(self.path)
        nested_layers = _model_layers(layer) if layer is not None else None
        if nested_layers is not None or (layer is None and "layers" in group):
            yield from self.leaves(group, layer, f"{name}/", depth + 1)
            return
        forward = _hdf5.member(group, "forward_layer", self.path)
        backward = _hdf5.member(group, "backward_layer", self.path)
        if isinstance(forward, h5py.Group) and isinstance(backward, h5py.Group):  # Bidirectional
            yield f"{name}/forward", self._inner_class(forward, layer, "layer"), forward, None, {}
            field = "backward_layer" if isinstance((layer or {}).get("config", {}).get("backward_layer"), dict) else "layer"
            yield f"{name}/backward", self._inner_class(backward, layer, field), backward, None, {}
            return
        inner = _hdf5.member(group, "layer", self.path)
        if isinstance(inner, h5py.Group):  # TimeDistributed, pruning wrappers, ...
            yield name, self._inner_class(inner, layer, "layer"), inner, group, {}
            return
        if cls == "multi_head_attention":
            # Four EinsumDense sublayers: query/key/value kernels [dim, heads, head_dim]
            # (input axis first), the output kernel [heads, head_dim, dim] (input axes first).
            for part in ("query_dense", "key_dense", "value_dense", "output_dense"):
                sub = _hdf5.member(group, part, self.path)
                if isinstance(sub, h5py.Group):
                    extra = {"in_axes": -1 if part == "output_dense" else 1,
                             "kind": None if part == "output_dense" else "attention"}
                    yield f"{name}/{part}", "einsum_dense", sub, None, extra
            return
        extra = {}
        if cls == "einsum_dense":
            cfg = (layer or {}).get("config") if isinstance(layer, dict) else None
            equation = cfg.get("equation") if isinstance(cfg, dict) else None
            if isinstance(equation, str):
                extra["equation"] = equation
        elif not self._has_own_variables(group) and self._has_variables(group):
            self.warnings.append(f"{name}: a Keras {cls or 'layer'} whose variables sit in sublayers topo does "
                                 "not know; skipped")
        yield name, cls, group, None, extra

    def _has_own_variables(self, group: Any) -> bool:
        h5py = _hdf5.h5py_module(self.path)
        return any(isinstance(_hdf5.member(group, sub, self.path), h5py.Group) for sub in ("vars", "cell/vars")) and \
            bool(_variables_listing(group, self.path))


def _variables_listing(group: Any, path: Path) -> list[str]:
    """Names of a layer's numbered datasets, without reading them."""
    h5py = _hdf5.h5py_module(path)
    for sub in ("vars", "cell/vars"):
        vars_group = _hdf5.member(group, sub, path)
        if isinstance(vars_group, h5py.Group):
            keys = [k for k in _hdf5.children(vars_group, path) if k.isdigit()]
            if keys:
                return keys
    return []


def _einsum_in_axes(equation: str, ndim: int) -> list[int] | None:
    """Axes of an EinsumDense kernel that meet the input (``"abc,cde->abde"``: ``c``)."""
    try:
        operands, _ = equation.replace("...", "").replace(" ", "").split("->")
        inputs, kernel = operands.split(",")
    except ValueError:
        return None
    if len(kernel) != ndim:
        return None
    return [i for i, letter in enumerate(kernel) if letter in inputs]


def _variables(group: Any, path: Path, what: str, budget: Any) -> list[tuple[str, np.ndarray]]:
    """The numbered datasets of a layer (``vars/0`` ...; a recurrent layer's ``cell/vars``)."""
    h5py = _hdf5.h5py_module(path)
    out = []
    for sub in ("vars", "cell/vars"):
        vars_group = _hdf5.member(group, sub, path)
        if not isinstance(vars_group, h5py.Group):
            continue
        keys = sorted((k for k in _hdf5.children(vars_group, path) if k.isdigit()), key=int)
        for k in keys:
            dataset = _hdf5.member(vars_group, k, path)
            if not isinstance(dataset, h5py.Dataset):
                continue
            out.append((f"{sub}/{k}", _hdf5.read_dataset(dataset, path, f"{what}/{sub}/{k}", budget)))
        if out:
            break
    return out


def _layer_tensors(
    name: str, cls: str, key: str, variables: list[tuple[str, np.ndarray]], path: Path,
    warnings: list[str], skipped: list[str], extra: dict | None = None,
) -> list[Tensor]:
    """Roles of one layer's unnamed variables, from its class (and ``extra`` facts:
    an EinsumDense equation or input axes, a kind)."""
    extra = extra or {}
    def tensor(var: str, array: np.ndarray, *, tname: str = name, kind: str | None = None,
               bias: np.ndarray | None = None, note: str = "") -> Tensor:
        return Tensor(key=f"{key}/{var}", name=tname, value=array, layout="in_out", kind=kind, bias=bias,
                      source=f"{path.name}:{key}/{var}", note=note)

    arrays = [a for _, a in variables]
    if not variables:
        return []
    if cls in _NO_TOPOLOGY:
        skipped.extend(f"{key}/{v}" for v, _ in variables)
        return []

    def maybe_bias(i: int, n_out: int) -> np.ndarray | None:
        if i < len(arrays) and arrays[i].ndim == 1 and arrays[i].shape[0] == n_out:
            return arrays[i]
        return None

    out: list[Tensor] = []
    first_var, first = variables[0]
    if cls in _DENSE_LIKE and 2 <= first.ndim <= 5:
        bias = maybe_bias(1, first.shape[-1])
        out.append(tensor(first_var, first, bias=bias, note=f"Keras {cls} kernel"))
        rest = variables[2:] if bias is not None else variables[1:]
    elif cls in _TRANSPOSED and 3 <= first.ndim <= 5:
        kernel = np.swapaxes(first, -1, -2)  # [*kernel, out, in] -> [*kernel, in, out]
        bias = maybe_bias(1, kernel.shape[-1])
        out.append(tensor(first_var, kernel, bias=bias, note=f"Keras {cls} kernel [*kernel, out, in]"))
        rest = variables[2:] if bias is not None else variables[1:]
    elif cls == "einsum_dense" and 2 <= first.ndim <= 6:
        if "equation" in extra:
            in_axes = _einsum_in_axes(extra["equation"], first.ndim)
        else:
            split = extra.get("in_axes", 1)
            in_axes = list(range(first.ndim - 1)) if split == -1 else list(range(split))
        out_axes = [a for a in range(first.ndim) if a not in (in_axes or [])]
        if not in_axes or not out_axes:
            warnings.append(f"{name}: EinsumDense kernel {first.shape} whose input axes are not known; skipped")
            rest = variables
        else:
            n_in = int(np.prod([first.shape[a] for a in in_axes]))
            kernel = np.transpose(first, in_axes + out_axes).reshape(n_in, -1)
            bias = None
            if len(arrays) > 1 and arrays[1].size == kernel.shape[1] and arrays[1].ndim >= 1:
                bias = arrays[1].reshape(-1)
            out.append(tensor(first_var, kernel, kind=extra.get("kind"), bias=bias,
                              note=f"Keras EinsumDense kernel {tuple(first.shape)} read as [in, out] {kernel.shape}"))
            rest = variables[2:] if bias is not None else variables[1:]
    elif cls == "embedding" and first.ndim == 2:
        out.append(tensor(first_var, first, kind="embedding", note="Keras Embedding table [vocab, dim]"))
        rest = variables[1:]
    elif cls in _RECURRENT and first.ndim == 2:
        out.append(tensor(first_var, first, tname=f"{name}/kernel", kind="recurrent", note=f"Keras {cls} kernel"))
        rest = variables[1:]
        if rest and rest[0][1].ndim == 2:
            var, array = rest[0]
            out.append(tensor(var, array, tname=f"{name}/recurrent_kernel", kind="recurrent",
                              note=f"Keras {cls} recurrent kernel"))
            rest = rest[1:]
    elif cls.startswith("separable_conv") and len(arrays) >= 2 and arrays[1].ndim >= 3:
        warnings.append(f"{name}: separable convolution read as its pointwise kernel; the depthwise part is not represented")
        skipped.append(f"{key}/{first_var}")
        var, pointwise = variables[1]
        bias = maybe_bias(2, pointwise.shape[-1])
        out.append(tensor(var, pointwise, bias=bias, note=f"Keras {cls} pointwise kernel"))
        rest = variables[3:] if bias is not None else variables[2:]
    elif cls.startswith("depthwise_conv"):
        warnings.append(f"{name}: depthwise convolution kernel not represented; skipped")
        rest = variables
    else:
        matrices = [(v, a) for v, a in variables if a.ndim == 2]
        if len(matrices) == 1 and all(a.ndim <= 2 for a in arrays):
            var, array = matrices[0]
            warnings.append(f"{name}: Keras layer class {cls!r} is not one topo knows; its 2-D variable read as a Dense kernel [in, out]")
            out.append(tensor(var, array, bias=maybe_bias(variables.index(matrices[0]) + 1, array.shape[-1])))
            rest = [(v, a) for v, a in variables if v != var]
        else:
            if any(a.ndim >= 2 for a in arrays):
                warnings.append(f"{name}: Keras layer class {cls!r} is not one topo knows; skipped")
            rest = variables
    used = {id(t.bias) for t in out if t.bias is not None}
    skipped.extend(f"{key}/{v}" for v, a in rest if id(a) not in used)
    return out


def _attach_wrapper_mask(
    tensors: list[Tensor], own: list[tuple[str, np.ndarray]], wrapper_key: str, skipped: list[str]
) -> None:
    """A wrapper's own variable shaped like the wrapped kernel is its mask (pruning wrappers
    such as ``prune_low_magnitude`` keep ``mask``, ``threshold`` and ``pruning_step``)."""
    kernel = next((t for t in tensors if t.kind is None and t.mask is None), None)
    for var, array in own:
        if kernel is not None and kernel.mask is None and array.shape == np.shape(kernel.value):
            kernel.mask = array
            kernel.note = (kernel.note + "; " if kernel.note else "") + f"mask from the wrapper's {wrapper_key}/{var}"
        else:
            skipped.append(f"{wrapper_key}/{var}")


def _read_json_file(folder: Path, name: str) -> Any:
    """A JSON file of an unzipped Keras model folder (None when absent)."""
    file = folder / name
    if not file.is_file():
        return None
    file = _policy.confine(file, folder, what=name)
    size = file.stat().st_size
    if size > _MAX_JSON_BYTES:
        raise TopoError(f"refused: {name} of {size:,} bytes is too large", path=file)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TopoError(f"{name} is not valid JSON ({type(exc).__name__})", path=file) from None


def _read_json_member(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    try:
        entry = archive.getinfo(name)
    except KeyError:
        return None
    if entry.file_size > _MAX_JSON_BYTES:
        raise TopoError(f"refused: archive member {name!r} declares {entry.file_size:,} bytes", path=path)
    try:
        return json.loads(archive.read(name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TopoError(f"archive member {name!r} is not valid JSON ({type(exc).__name__})", path=path) from None


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    **_: Any,
) -> Topology:
    """Read a Keras 3 ``.keras`` archive or ``.weights.h5`` file as a Topology.

    Parameters
    ----------
    path : Path
        A file written by Keras 3 ``model.save("m.keras")`` or
        ``model.save_weights("m.weights.h5")``, or the folder of
        ``model.save("m", zipped=False)``.
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.

    Returns
    -------
    Topology
        ``info``: ``format`` (``"keras"`` or ``"keras3-weights"``), ``path``,
        ``order``, ``keras_version`` where recorded, ``warnings``, ``skipped``, and
        ``requested_sparsity`` where the config holds tfmot pruning wrappers with a
        ``pruning_schedule``.

    Raises
    ------
    TopoError
        Without h5py; archives without ``model.weights.h5``; corrupt files; HDF5
        external storage, external links or virtual datasets; datasets that declare
        more data than the file stores.

    Examples
    --------
    A ``.keras`` archive in the layout Keras 3 writes, built here with zipfile and
    h5py: the layers take their names from the config, and the Dense kernels
    (``[in, out]``) come out as ``[out, in]`` layers.

    >>> import io, json, pathlib, tempfile, zipfile
    >>> import h5py
    >>> import numpy as np
    >>> kernels = {"dense": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "dense_1": np.ones((2, 1))}
    >>> weights = io.BytesIO()
    >>> with h5py.File(weights, "w") as f:
    ...     for key, kernel in kernels.items():
    ...         f[f"layers/{key}/vars/0"] = kernel
    ...         f[f"layers/{key}/vars/1"] = np.zeros(kernel.shape[1])
    >>> config = {"class_name": "Sequential", "config": {"name": "mlp", "layers": [
    ...     {"class_name": "Dense", "config": {"name": "hidden"}},
    ...     {"class_name": "Dense", "config": {"name": "out"}}]}}
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "mlp.keras"
    >>> with zipfile.ZipFile(path, "w") as archive:
    ...     archive.writestr("config.json", json.dumps(config))
    ...     archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
    ...     archive.writestr("model.weights.h5", weights.getvalue())
    >>> net = read(path)
    >>> net.names, net.widths, net.nnz
    (['hidden', 'out'], [3, 2, 1], 6)
    >>> net.info["format"], net.info["keras_version"], net["hidden"].fan_in.tolist()
    ('keras', '3.6.0', [2, 2])
    >>> temporary.cleanup()
    """
    path = Path(path)
    if path.is_dir():
        if not _is_unzipped_model(path):
            raise TopoError(f"a folder without config.json and {_WEIGHTS_MEMBER}: not a Keras 3 model", path=path)
        size = _policy.confine(path / _WEIGHTS_MEMBER, path, what=_WEIGHTS_MEMBER).stat().st_size
    elif not path.is_file():
        raise TopoError("no such file", path=path)
    else:
        size = path.stat().st_size
    if size == 0:
        raise TopoError("empty file, not a Keras file", path=path)
    warnings: list[str] = []
    skipped: list[str] = []
    info: dict[str, Any] = {}
    with reading(path, "Keras file"):
        config = None
        if path.is_dir():  # model.save(folder, zipped=False): the archive's members as files
            fmt = "keras"
            config = _read_json_file(path, "config.json")
            metadata = _read_json_file(path, "metadata.json")
            if isinstance(metadata, dict) and "keras_version" in metadata:
                info["keras_version"] = str(metadata["keras_version"])
            if isinstance(config, dict):
                info["model_class"] = str(config.get("class_name", ""))
            source: Path | bytes = path / _WEIGHTS_MEMBER
            weights_size = size
        elif read_head(path, 4) == _ZIP_MAGIC:
            fmt = "keras"
            with zipfile.ZipFile(path) as archive:
                try:
                    entry = archive.getinfo(_WEIGHTS_MEMBER)
                except KeyError:
                    raise TopoError(f"a zip archive without {_WEIGHTS_MEMBER}: not a Keras 3 model", path=path) from None
                check_declared_size(
                    entry.file_size, path=path, what=f"archive member {_WEIGHTS_MEMBER!r}",
                    available=entry.compress_size, compressed=entry.compress_type != zipfile.ZIP_STORED,
                )
                config = _read_json_member(archive, "config.json", path)
                metadata = _read_json_member(archive, "metadata.json", path)
                if isinstance(metadata, dict) and "keras_version" in metadata:
                    info["keras_version"] = str(metadata["keras_version"])
                source = archive.read(_WEIGHTS_MEMBER)
            weights_size = len(source)
            if isinstance(config, dict):
                info["model_class"] = str(config.get("class_name", ""))
        else:
            fmt = "keras3-weights"
            source = path
            weights_size = size
        budget = _hdf5.file_budget(path, weights_size)
        walk = _Walk(path, warnings)
        tensors: list[Tensor] = []
        with _hdf5.open_file(source, path) as handle:
            if not is_keras3_weights(handle):
                raise TopoError("an HDF5 file without Keras 3's layers/ and vars/ groups", path=path)
            for name, cls, group, wrapper, extra in walk.leaves(handle, config if isinstance(config, dict) else None, ""):
                key = group.name.lstrip("/")
                variables = _variables(group, path, key, budget)
                found = _layer_tensors(name, cls, key, variables, path, warnings, skipped, extra)
                if wrapper is not None:
                    wrapper_key = wrapper.name.lstrip("/")
                    own = _variables(wrapper, path, wrapper_key, budget)
                    _attach_wrapper_mask(found, own, wrapper_key, skipped)
                tensors.extend(found)
        notes = walk.order_notes
        if "graph" in notes:
            info["order"] = "the model config's layer graph, in topological order"
        elif "config" in notes and not ({"written", "names"} & notes):
            info["order"] = "the model config's layer list"
        elif "names" in notes:
            info["order"] = "natural sort of the weight groups' names"
            warnings.append("layer order taken from the weight groups' names (no model config in this file)")
        else:
            info["order"] = "the order Keras wrote the layers (no model config in this file)"
        topology = build_topology(
            tensors,
            path=path,
            format=fmt,
            layers=layers,
            weights=weights,
            info=info,
            warnings=warnings,
            skipped=skipped,
            # The config's graph, or the order Keras wrote model.layers in, is the model's own.
            keep_order="names" not in notes,
        )
        return with_tfmot_targets(topology, config)

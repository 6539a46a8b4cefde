"""Keras HDF5 files (``.h5`` / ``.hdf5``): ``model.save`` and ``save_weights`` (Keras 2 layout).

The layout (Keras's documented ``save_weights`` format): the file's root, or its
``model_weights`` group for whole-model saves, has an attribute ``layer_names``
listing the layers in order; every layer has a group of that name whose attribute
``weight_names`` lists its variables in order (``dense/kernel:0``, ``dense/bias:0``);
each variable is a dataset at that path inside the layer group. Attributes too large
for one HDF5 header are split as ``layer_names0``, ``layer_names1``, ...

Variables are understood by their last name part:

- ``kernel``: a weight; 2-D Dense kernels are ``[in, out]``, convolution kernels
  ``[*kernel, in, out]`` (both transposed to topo's ``[out, in]``);
- ``*mask*``: a mask, e.g. the ``prune_low_magnitude`` wrappers of the TensorFlow
  Model Optimization toolkit (``prune_low_magnitude_dense/mask:0``), paired with the
  kernel of the same shape in that layer;
- ``bias``: the kernel's bias; ``embeddings``: an embedding (standalone);
  ``recurrent_kernel``: a recurrent kernel (standalone);
- scalars and 1-D statistics (``threshold``, ``pruning_step``, ``gamma``,
  ``moving_mean``, ...) are skipped; ``depthwise_kernel`` is skipped with a warning.

Layer order is ``layer_names``. Every dataset is read through :mod:`topo.formats._hdf5`:
external links, external storage and virtual datasets are refused, and a dataset's
declared size is checked against the storage the file allocated for it before it is
read (HDF5 can declare huge, never-written datasets). Keras 3 files (``.keras``,
``.weights.h5``) are read by :mod:`topo.formats.keras3`.
h5py is imported only when a file is read; without it the error names the ``h5``
extra.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.formats import _hdf5
from topo.formats._assemble import (
    Tensor,
    build_topology,
    read_head,
    reading,
)
from topo.topology import Topology

__all__ = ["EXTENSIONS", "HDF5_SIGNATURE", "sniff", "read"]

EXTENSIONS = (".h5", ".hdf5", ".he5")

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 files may start with a user block of 512, 1024, 2048, ... bytes.
_SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)


def sniff(path: Path) -> bool:
    """An HDF5 file (its signature at offset 0 or after a user block).

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the signature; never raises. Keras 3 ``.weights.h5`` files are HDF5
        too: :mod:`topo.formats.keras3`, tried before this reader, takes those.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import h5py
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> with h5py.File(folder / "weights.hdf5", "w", userblock_size=512) as f:
    ...     f.attrs["layer_names"] = [b"dense"]
    >>> _ = (folder / "notes.h5").write_text("not HDF5")
    >>> sniff(folder / "weights.hdf5"), sniff(folder / "notes.h5")
    (True, False)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if not path.is_file():
            return False
        head = read_head(path, _SIGNATURE_OFFSETS[-1] + len(HDF5_SIGNATURE))
        return any(head[o:o + 8] == HDF5_SIGNATURE for o in _SIGNATURE_OFFSETS)
    except Exception:
        return False


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _string_list_attr(group: Any, name: str, path: Path) -> list[str] | None:
    """A list-of-strings attribute, joined from ``name0``, ``name1``, ... when Keras split it."""
    if name in group.attrs:
        return _hdf5.string_attr(group, name, path)
    if f"{name}0" not in group.attrs:
        return None
    parts: list[str] = []
    i = 0
    while f"{name}{i}" in group.attrs:
        parts.extend(_hdf5.string_attr(group, f"{name}{i}", path) or [])
        i += 1
    return parts


def _base(var_name: str) -> str:
    """``prune_low_magnitude_dense/mask:0`` -> ``mask``."""
    return re.sub(r":\d+$", "", var_name.split("/")[-1])


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    **_: Any,
) -> Topology:
    """Read a Keras HDF5 file as a Topology.

    Parameters
    ----------
    path : Path
        A file written by Keras ``model.save("x.h5")`` or ``save_weights("x.h5")``.
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.

    Returns
    -------
    Topology
        ``info``: ``format`` ``"keras-h5"``, ``path``, ``warnings``, ``skipped``,
        ``keras_version`` and ``backend`` where recorded.

    Raises
    ------
    TopoError
        Without h5py, for HDF5 files that are not Keras weights, corrupt files,
        datasets that declare more data than the file can hold, non-numeric data.

    Examples
    --------
    A file in the layout Keras 2's ``save_weights`` writes, made here with h5py: the
    Dense kernels are ``[in, out]`` and come out as ``[out, in]`` layers.

    >>> import pathlib, tempfile
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "mlp.h5"
    >>> kernels = {"dense": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "dense_1": np.ones((2, 1))}
    >>> with h5py.File(path, "w") as f:
    ...     f.attrs["layer_names"] = [name.encode() for name in kernels]
    ...     for name, kernel in kernels.items():
    ...         group = f.create_group(name)
    ...         group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
    ...         _ = group.create_dataset(f"{name}/kernel:0", data=kernel)
    ...         _ = group.create_dataset(f"{name}/bias:0", data=np.zeros(kernel.shape[1]))
    >>> net = read(path)
    >>> net.names, net.widths, net.nnz, net.info["format"]
    (['dense', 'dense_1'], [3, 2, 1], 6, 'keras-h5')
    >>> net["dense"].fan_in.tolist()
    [2, 2]
    >>> temporary.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        raise TopoError("no such file", path=path)
    size = path.stat().st_size
    if size == 0:
        raise TopoError("empty file, not an HDF5 file", path=path)
    h5py = _hdf5.h5py_module(path)
    with reading(path, "Keras HDF5 file"):
        with _hdf5.open_file(path, path) as handle:
            root = _hdf5.member(handle, "model_weights", path) if "model_weights" in handle else handle
            layer_names = _string_list_attr(root, "layer_names", path)
            if layer_names is None:
                raise TopoError(
                    "an HDF5 file, but not Keras weights (no layer_names attribute, and not Keras 3's "
                    "layers/ and vars/ layout)",
                    path=path,
                )
            info: dict[str, Any] = {}
            for attr in ("keras_version", "backend"):
                text = _hdf5.string_attr(root, attr, path, required=False) if attr in root.attrs else None
                if text:
                    info[attr] = text[0]
            tensors: list[Tensor] = []
            warnings: list[str] = []
            skipped: list[str] = []
            budget = _hdf5.file_budget(path, size)
            for layer_name in layer_names:
                group = _hdf5.member(root, layer_name, path)
                if not isinstance(group, h5py.Group):
                    warnings.append(f"layer {layer_name!r} is listed in layer_names but has no group; skipped")
                    continue
                weight_names = _string_list_attr(group, "weight_names", path) or []
                arrays: list[tuple[str, np.ndarray]] = []
                for var in weight_names:
                    dataset = _hdf5.member(group, var, path)
                    if not isinstance(dataset, h5py.Dataset):
                        warnings.append(f"{layer_name}: variable {var!r} is missing; skipped")
                        continue
                    # External storage, virtual datasets and never-written (fill value) datasets
                    # are refused there, before anything is allocated.
                    arrays.append((var, _hdf5.read_dataset(dataset, path, f"{layer_name}/{var}", budget)))
                tensors.extend(_layer_tensors(layer_name, arrays, path, warnings, skipped))
            config = _model_config(handle, path)
            if config is None and "model_config" in handle.attrs and any(
                name.startswith("prune_low_magnitude") for name in layer_names
            ):
                warnings.append(
                    "model_config is not a fixed-length string (not read: it can hang libhdf5); "
                    "the pruning wrappers' target sparsities are unknown"
                )
        topology = build_topology(
            tensors,
            path=path,
            format="keras-h5",
            keep_order=True,
            layers=layers,
            weights=weights,
            info=info,
            warnings=warnings,
            skipped=skipped,
        )
        from topo.formats._requested import with_tfmot_targets

        return with_tfmot_targets(topology, config)


def _model_config(handle: Any, path: Path) -> Any:
    """The ``model_config`` attribute ``model.save("x.h5")`` writes (JSON), or None.

    Only informative (it gives the tfmot pruning targets): a config that cannot be read is
    left out. tf.keras writes it as a variable-length string, read in a limited child process
    (see :func:`topo.formats._hdf5.string_attr`); a fixed-length one is read directly.
    """
    import json

    try:
        text = _hdf5.string_attr(handle, "model_config", path, required=False)
    except TopoError:
        return None
    if not text:
        return None
    try:
        return json.loads(text[0])
    except (ValueError, RecursionError):
        return None


def _layer_tensors(
    layer_name: str,
    arrays: list[tuple[str, np.ndarray]],
    path: Path,
    warnings: list[str],
    skipped: list[str],
) -> list[Tensor]:
    """The kernels of one Keras layer group, with their masks and biases."""
    kernels: list[tuple[str, np.ndarray, str | None]] = []  # (var, array, kind)
    masks: list[tuple[str, np.ndarray]] = []
    biases: list[tuple[str, np.ndarray]] = []
    for var, array in arrays:
        base = _base(var)
        lowered = base.lower()
        if "mask" in lowered:
            masks.append((var, array))
        elif lowered == "depthwise_kernel":
            warnings.append(f"{layer_name}: depthwise convolution kernel not represented; skipped")
            skipped.append(f"{layer_name}/{var}")
        elif lowered == "recurrent_kernel" and array.ndim == 2:
            kernels.append((var, array, "recurrent"))
        elif lowered in ("embeddings", "embedding") and array.ndim == 2:
            kernels.append((var, array, "embedding"))
        elif "kernel" in lowered and array.ndim >= 2:
            kernels.append((var, array, None))
        elif lowered == "bias" and array.ndim == 1:
            biases.append((var, array))
        elif array.ndim >= 2 and lowered not in ("gamma", "beta", "moving_mean", "moving_variance"):
            kernels.append((var, array, None))
        else:
            skipped.append(f"{layer_name}/{var}")

    tensors: list[Tensor] = []
    main = [k for k in kernels if k[2] is None]
    for var, array, kind in kernels:
        base = _base(var)
        is_main = kind is None and len(main) == 1
        name = layer_name if (len(kernels) == 1 or is_main) else f"{layer_name}/{base}"
        mask, note = None, ""
        for i, (mask_var, mask_array) in enumerate(masks):
            if mask_array.shape == array.shape and kind is None:
                mask, note = mask_array, f"mask from {mask_var!r}"
                masks.pop(i)
                break
        bias = None
        n_out = array.shape[-1]
        if kind is None:
            for i, (bias_var, bias_array) in enumerate(biases):
                if bias_array.shape == (n_out,):
                    bias = bias_array
                    biases.pop(i)
                    break
        # Keras stores every kernel [in, out] ([*kernel, in, out] for convolutions);
        # an embedding [vocab, dim] maps token j to features, i.e. [in=vocab, out=dim] too.
        layout = "in_out"
        tensors.append(
            Tensor(
                key=f"{layer_name}/{var}",
                name=name,
                value=array,
                mask=mask,
                layout=layout,
                kind=kind,
                bias=bias,
                source=f"{path.name}:{layer_name}/{var}",
                note=note,
            )
        )
    for mask_var, _ in masks:
        warnings.append(f"{layer_name}: mask {mask_var!r} matches no kernel; ignored")
        skipped.append(f"{layer_name}/{mask_var}")
    skipped.extend(f"{layer_name}/{var}" for var, _ in biases)
    return tensors

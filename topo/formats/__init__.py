"""Readers that turn checkpoint files into Topology objects.

Each module here handles one format and offers ``sniff(path) -> bool`` (decided by
content: magic bytes and headers, not only the extension) and
``read(path, **options) -> Topology``, and may list the file suffixes it claims in
``EXTENSIONS``: a file with such a suffix that no reader sniffs is handed to that
reader, whose error then says what is wrong with it (truncated, corrupt, ...). :func:`load` tries them in the order of
:data:`READERS` and uses the first whose ``sniff`` says yes.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable

from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.topology import Layer, Topology

__all__ = ["READERS", "detect_format", "load", "scan"]

#: Format name -> module under ``topo.formats``; tried in this order.
READERS: dict[str, str] = {
    "topo": "topo.formats.native",
    "safetensors": "topo.formats.safetensors_hf",
    "pytorch": "topo.formats.pytorch",
    "keras3": "topo.formats.keras3",
    "keras-h5": "topo.formats.keras_h5",
    "numpy": "topo.formats.numpy_npz",
    "onnx": "topo.formats.onnx_model",
    "flax-msgpack": "topo.formats.flax_msgpack",
    "orbax": "topo.formats.orbax",
}


def _module(name: str):
    return importlib.import_module(READERS[name])


def detect_format(path: str | os.PathLike) -> str | None:
    """The name of the first reader whose ``sniff`` accepts ``path``, or None.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "weights.npz"
    ...     np.savez(path, fc1=np.eye(3))
    ...     detect_format(path)
    'numpy'
    """
    for name in READERS:
        try:
            if _module(name).sniff(Path(path)):
                return name
        except TopoError:
            continue
    return None


def _claimed_by_extension(path: Path) -> str | None:
    """A reader whose ``EXTENSIONS`` include the file's suffix: when no reader's sniff
    accepted the file, that reader's ``read`` says precisely what is wrong with it."""
    suffix = path.suffix.lower()
    for name in READERS:
        if suffix and suffix in getattr(_module(name), "EXTENSIONS", ()):
            return name
    return None


def load(path: str | os.PathLike, *, format: str | None = None, **options: Any) -> Topology:
    """Read any supported checkpoint (a file or a folder) as a Topology.

    Parameters
    ----------
    path : path-like, binary file object or state dict
        Objects that are not paths go to :func:`topo.formats.memory.load_object`
        (a ``BytesIO`` of a checkpoint, a state dict); :func:`topo.load` also reads a
        live ``torch.nn.Module``.
        A checkpoint file, or a folder that one reader understands (a topo run folder
        gives its last checkpoint). Besides topo's own checkpoints: PyTorch files
        (``.pt``/``.pth``/``.bin``/``.ckpt``, read by an inert unpickler: no torch, no code run),
        safetensors files and Hugging Face model folders, ONNX models, Keras 3
        ``.keras`` archives and ``.weights.h5`` files, Keras 2 HDF5 files, Flax msgpack
        files (``flax.serialization.to_bytes``), Orbax checkpoint folders, NumPy ``.npz``/``.npy`` and scipy sparse files, and SET/NNSTD folders
        (``weight_l0.npz`` ...; a run folder of ``epoch_*`` folders gives its last epoch).
    format : str, optional
        Skip detection and use this reader (a key of :data:`READERS`).
    **options
        Passed to the reader: ``weights=False`` keeps masks only (less memory);
        foreign formats also take ``layers=REGEX`` (keep layers whose name matches).
        What a reader had to guess (layers kept standalone, NaN weights, assumed
        layouts) is listed in ``topology.info["warnings"]``. Names decide
        orientation everywhere: a ``kernel`` is ``[in, out]``, a torch ``weight``
        ``[out, in]``, whatever the shape.

    Raises
    ------
    TopoError
        If the path does not exist, no reader recognises it, or the reader fails.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "weights.npz"
    ...     np.savez(path, fc1=np.eye(3), fc2=np.ones((2, 3)))
    ...     net = load(path)
    >>> net.names, net.widths, net.nnz
    (['fc1', 'fc2'], [3, 3, 2], 9)
    """
    if not isinstance(path, (str, os.PathLike)):
        from topo.formats.memory import load_object

        return load_object(path, format=format, **options)
    path = Path(path)
    if not path.exists():
        raise TopoError("no such file or folder", path=path)
    if format is None:
        format = detect_format(path) or _claimed_by_extension(path)
        if format is None:
            raise TopoError("not a checkpoint format topo recognises", path=path)
    elif format not in READERS:
        raise TopoError(f"unknown format {format!r}; known: {', '.join(READERS)}")
    return _module(format).read(path, **options)


#: Readers that build layers one at a time and call ``on_layer`` (see :func:`scan`).
STREAMING_READERS = ("safetensors",)


def scan(
    path: str | os.PathLike,
    summarise: Callable[[Layer], Any],
    *,
    format: str | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> tuple[Topology, dict[str, Any]]:
    """Read a checkpoint layer by layer, keeping a summary of each layer instead of its mask.

    For large models whose masks together would not fit in memory: readers that can
    (:data:`STREAMING_READERS`: safetensors files and Hugging Face folders) hand over
    each layer as soon as it is built, ``summarise`` measures it, and only its shape
    is kept, so memory holds one layer at a time. Those layers are counted in one pass
    over the stored bits: ``fan_in``, ``fan_out``, ``nnz`` and the sparsity pattern
    (:func:`topo.analysis.patterns.layer_pattern`) cost no CSR mask, which is built only
    if ``summarise`` asks for ``layer.mask``. Other readers load the whole topology,
    then every layer is summarised.

    Parameters
    ----------
    path : path-like
        As for :func:`load`.
    summarise : callable
        ``summarise(layer) -> value`` for every layer (e.g.
        :func:`topo.analysis.degree.layer_degree`).
    format : str, optional
        As for :func:`load`.
    progress : callable, optional
        ``progress(done, total)`` over the layers, where the reader reports it.
    **options
        Passed to the reader (``weights`` is always False here).

    Returns
    -------
    topology : Topology
        Names, shapes, order, chaining and ``info`` of the network. Where the reader
        streamed, its layers have no connections (``info["streamed"]`` is True);
        otherwise they are the full layers.
    summaries : dict
        Layer name -> ``summarise(layer)``, in the topology's order.

    Raises
    ------
    TopoError
        As :func:`load`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "weights.npz"
    ...     np.savez(path, fc1=np.eye(3), fc2=np.ones((2, 3)))
    ...     net, nnz = scan(path, lambda layer: layer.nnz)
    >>> net.names, nnz
    (['fc1', 'fc2'], {'fc1': 3, 'fc2': 6})
    """
    import scipy.sparse as sp

    summaries: dict[str, Any] = {}

    def keep_summary(layer: Layer) -> Layer:
        summaries[layer.name] = summarise(layer)
        empty = sp.csr_matrix(layer.shape, dtype=bool)
        return layer.with_(mask=empty, weight=None)

    options["weights"] = False
    path = Path(path)
    name = format
    if name is None and path.exists():
        name = detect_format(path) or _claimed_by_extension(path)
    if name in STREAMING_READERS:
        topology = load(path, format=name, on_layer=keep_summary, progress=progress, **options)
        topology = topology.with_info(streamed=True)
    else:
        topology = load(path, format=format, **options)
        summaries = {layer.name: summarise(layer) for layer in topology}
    return topology, {layer.name: summaries[layer.name] for layer in topology}

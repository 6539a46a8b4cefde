"""topo's own checkpoint format and run folders.

A checkpoint is one ``.safetensors`` file. Per layer ``i`` it holds the tensors

- ``layers.{i}.mask``   bool ``[out, in]``, or, where that is smaller, the mask's CSR
  index arrays ``layers.{i}.mask.indptr`` (``[out + 1]``) and ``layers.{i}.mask.indices``
  (``[nnz]``, sorted within each row), int32 where the counts fit, else int64
- ``layers.{i}.weight`` float ``[out, in]`` (optional)
- ``layers.{i}.bias``   float ``[out]`` (optional)
- ``layers.{i}.stats.{name}`` float ``[out]``: per-neuron statistics (optional)

and string metadata: ``format`` (``"topo-checkpoint"``), ``format_version``, ``layers``
(a JSON list of the layers' names, sources, flags and info, in order), ``epoch``,
``step``, ``run`` (free-form JSON about the run) and ``info`` (the topology's info).

Reading uses safetensors' numpy interface, so analysing topo's own checkpoints never
imports torch.

A run folder is::

    RUN/run.json                         the configuration (JSON)
    RUN/metrics.jsonl                    one JSON object per line, one line per epoch
    RUN/checkpoints/epoch_0000.safetensors
    RUN/checkpoints/epoch_0003_step_00000450.safetensors   (taken inside epoch 3, at global step 450)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from topo.atomic import atomic_write_bytes, atomic_write_text
from topo.errors import TopoError
from topo.topology import Layer, Topology
from topo.values import finite_float

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "is_topo_checkpoint",
    "is_topo_metadata",
    "atomic_write_bytes",
    "atomic_write_text",
    "checkpoint_name",
    "parse_checkpoint_name",
    "list_checkpoints",
    "is_run_folder",
    "write_run_config",
    "read_run_config",
    "append_metrics",
    "read_metrics",
    "CHECKPOINT_DIR",
    "RUN_CONFIG",
    "METRICS_FILE",
    "write_metrics",
]

FORMAT_NAME = "topo-checkpoint"
# Version 2 stores masks as CSR indices where that is smaller; a file whose masks are
# all dense is still written as version 1, which older readers read.
FORMAT_VERSION = 2
CHECKPOINT_DIR = "checkpoints"
RUN_CONFIG = "run.json"
METRICS_FILE = "metrics.jsonl"
_SAFETENSORS_SUFFIX = ".safetensors"
_NAME_RE = re.compile(r"^epoch_(\d+)(?:_step_(\d+))?\.safetensors$")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True)


# -- checkpoints -------------------------------------------------------------------
def save_checkpoint(
    topology: Topology,
    path: str | os.PathLike,
    *,
    epoch: int | None = None,
    step: int | None = None,
    run_info: Mapping[str, Any] | None = None,
) -> Path:
    """Save a topology as one topo checkpoint, atomically.

    Parameters
    ----------
    topology : Topology
        The network to save: masks, and weights, biases and statistics where present.
    path : path-like
        Destination ``.safetensors`` file; its folder is created.
    epoch, step : int, optional
        Where in training this checkpoint was taken. Default to the topology's own
        ``info["epoch"]`` / ``info["step"]``.
    run_info : mapping, optional
        Free-form facts about the run, stored as JSON.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TopoError
        If safetensors cannot serialise a tensor (an object array, for example).
    OSError
        If the file cannot be written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from safetensors.numpy import load_file
    >>> net = Topology.from_masks([np.ones((2, 3)), np.eye(2)], names=["fc1", "fc2"])
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = save_checkpoint(net, pathlib.Path(folder.name) / "epoch_0004.safetensors", epoch=4)
    >>> tensors = load_file(str(path))
    >>> sorted(tensors), tensors["layers.1.mask"].tolist()
    (['layers.0.mask', 'layers.1.mask'], [[True, False], [False, True]])
    >>> read_checkpoint_metadata(path)["epoch"]
    4
    >>> folder.cleanup()
    """
    from safetensors.numpy import save as st_save

    tensors: dict[str, np.ndarray] = {}
    layer_meta = []
    version = 1
    for i, layer in enumerate(topology):
        mask_tensors = _encode_mask(layer.mask)
        if len(mask_tensors) > 1:
            version = 2
        tensors.update({f"layers.{i}.{key}": value for key, value in mask_tensors.items()})
        if layer.weight is not None:
            tensors[f"layers.{i}.weight"] = np.ascontiguousarray(layer.weight)
        if layer.bias is not None:
            tensors[f"layers.{i}.bias"] = np.ascontiguousarray(layer.bias)
        for key, value in layer.stats.items():
            tensors[f"layers.{i}.stats.{key}"] = np.ascontiguousarray(value)
        layer_meta.append(
            {
                "name": layer.name,
                "source": layer.source,
                "standalone": bool(layer.standalone),
                "shape": list(layer.shape),
                "info": dict(layer.info),
                "stats": sorted(layer.stats),
            }
        )
    info = {k: v for k, v in topology.info.items() if k not in ("path", "format")}
    epoch = info.pop("epoch", None) if epoch is None else epoch
    step = info.pop("step", None) if step is None else step
    info.pop("epoch", None)
    info.pop("step", None)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(version),
        "layers": _dumps(layer_meta),
        "epoch": "" if epoch is None else str(int(epoch)),
        "step": "" if step is None else str(int(step)),
        "run": _dumps(dict(run_info or {})),
        "info": _dumps(info),
    }
    try:
        data = st_save(tensors, metadata=metadata)
    except Exception as exc:  # safetensors refuses e.g. object arrays
        raise TopoError(f"cannot serialise checkpoint: {exc}", path=path) from exc
    return atomic_write_bytes(path, data)


def _encode_mask(mask) -> dict[str, np.ndarray]:
    """A mask's tensors: dense bool ``mask``, or CSR ``mask.indptr``/``mask.indices`` if smaller.

    Dense costs one byte per ``[out, in]`` entry; CSR costs ``(out + 1 + nnz)`` index
    entries, int32 where ``nnz`` and the width fit. At 0.1% density CSR is about 250x
    smaller than dense (three 16,000-wide layers: 0.77 GB dense, 3 MB as indices).
    """
    n_out, n_in = mask.shape
    nnz = int(mask.nnz)
    index_dtype = np.int32 if max(nnz, n_in) <= np.iinfo(np.int32).max else np.int64
    sparse_bytes = (n_out + 1 + nnz) * np.dtype(index_dtype).itemsize
    if sparse_bytes >= n_out * n_in:
        return {"mask": np.ascontiguousarray(mask.toarray())}
    csr = mask.tocsr()
    csr.sort_indices()
    return {
        "mask.indptr": np.ascontiguousarray(csr.indptr, dtype=index_dtype),
        "mask.indices": np.ascontiguousarray(csr.indices, dtype=index_dtype),
    }


def _decode_mask(handle, keys: set[str], prefix: str, shape: Any):
    """The mask of one layer, dense or from CSR indices, checked against its declared shape.

    CSR indices become a scipy CSR matrix directly; the dense ``[out, in]`` array is
    never formed. Raises TopoError if the arrays do not describe a valid mask.
    """
    if prefix + "mask.indptr" not in keys:
        return handle.get_tensor(prefix + "mask")
    import scipy.sparse as sp

    try:
        n_out, n_in = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise TopoError(f"layer {prefix[:-1]!r} stores a sparse mask without a valid shape") from None
    indptr = handle.get_tensor(prefix + "mask.indptr")
    indices = handle.get_tensor(prefix + "mask.indices")
    where = f"layer {prefix[:-1]!r} sparse mask"
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu" or indptr.ndim != 1 or indices.ndim != 1:
        raise TopoError(f"{where}: index arrays must be 1-D integers")
    if n_out < 0 or n_in < 0 or indptr.size != n_out + 1:
        raise TopoError(f"{where}: indptr has {indptr.size} entries for {n_out} rows")
    indptr = indptr.astype(np.int64, copy=False)
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise TopoError(f"{where}: indptr is not a non-decreasing run from 0 to {indices.size}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_in):
        raise TopoError(f"{where}: an input index lies outside 0..{n_in - 1}")
    data = np.ones(indices.size, dtype=bool)
    index_dtype = np.int32 if max(indices.size, n_in) <= np.iinfo(np.int32).max else np.int64
    csr = sp.csr_matrix(
        (data, indices.astype(index_dtype, copy=False), indptr.astype(index_dtype, copy=False)),
        shape=(n_out, n_in),
    )
    csr.sum_duplicates()  # sorted rows, and a repeated index counts one connection once
    return csr


def _open(path: Path):
    from safetensors import safe_open

    if not path.exists():
        raise TopoError("no such file", path=path)
    if path.is_dir():
        raise TopoError("is a folder, expected a checkpoint file", path=path)
    try:
        return safe_open(str(path), framework="np")
    except Exception as exc:
        raise TopoError(f"not a readable safetensors file ({_one_line(exc)})", path=path) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read a topo checkpoint's metadata without loading any tensor.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` file written by :func:`save_checkpoint`.

    Returns
    -------
    dict
        ``format_version``, ``layers`` (list of dicts), ``epoch``, ``step``, ``run``, ``info``.

    Raises
    ------
    TopoError
        If the file is missing, not safetensors, or not a topo checkpoint.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.ones((2, 3)), np.eye(2)], names=["fc1", "fc2"])
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = save_checkpoint(net, pathlib.Path(folder.name) / "c.safetensors", epoch=2, run_info={"method": "rigl"})
    >>> meta = read_checkpoint_metadata(path)
    >>> [layer["name"] for layer in meta["layers"]], meta["layers"][0]["shape"]
    (['fc1', 'fc2'], [2, 3])
    >>> meta["epoch"], meta["step"], meta["run"]
    (2, None, {'method': 'rigl'})
    >>> folder.cleanup()
    """
    path = Path(path)
    with _open(path) as handle:
        raw = handle.metadata() or {}
    return _parse_metadata(raw, path)


def _parse_json(text: str, what: str, path: Path) -> Any:
    """``json.loads`` whose every failure (syntax, nesting too deep) is one TopoError line."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, TypeError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else _one_line(exc)
        raise TopoError(f"{what} is not valid JSON ({reason})", path=path) from None


def _metadata_int(raw: Mapping[str, Any], key: str, path: Path) -> int | None:
    """An optional non-negative integer stored as text (``epoch``, ``step``); "" means none."""
    text = raw.get(key)
    if text is None or text == "":
        return None
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,18}", text.strip()):
        shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
        raise TopoError(f"checkpoint metadata {key!r} is not a non-negative integer ({shown})", path=path)
    return int(text)


def _parse_metadata(raw: Mapping[str, str], path: Path) -> dict[str, Any]:
    if not is_topo_metadata(raw):
        raise TopoError("a safetensors file, but not a topo checkpoint (no topo metadata)", path=path)
    version_text = raw.get("format_version", "")
    if not isinstance(version_text, str) or not re.fullmatch(r"[0-9]{1,9}", version_text.strip()):
        raise TopoError("checkpoint has no valid format_version", path=path)
    version = int(version_text)
    if version > FORMAT_VERSION:
        raise TopoError(
            f"checkpoint format version {version} is newer than this topo reads ({FORMAT_VERSION}); upgrade topo",
            path=path,
        )
    if "layers" not in raw:
        raise TopoError("checkpoint metadata is corrupt (no 'layers' entry)", path=path)
    layers = _parse_json(raw["layers"], "checkpoint metadata 'layers'", path)
    run = _parse_json(raw.get("run") or "{}", "checkpoint metadata 'run'", path)
    info = _parse_json(raw.get("info") or "{}", "checkpoint metadata 'info'", path)
    if not isinstance(layers, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in layers
    ):
        raise TopoError("checkpoint metadata 'layers' is not a list of layers with names", path=path)
    for key, value in (("run", run), ("info", info)):
        if not isinstance(value, dict):
            raise TopoError(f"checkpoint metadata {key!r} is not a JSON object", path=path)
    return {
        "format_version": version,
        "layers": layers,
        "epoch": _metadata_int(raw, "epoch", path),
        "step": _metadata_int(raw, "step", path),
        "run": run,
        "info": info,
    }


def is_topo_metadata(raw: Mapping[str, Any] | None) -> bool:
    """Whether a safetensors header's metadata declares a topo checkpoint.

    Parameters
    ----------
    raw : mapping or None
        The string metadata of a safetensors header (``None`` when it has none).

    Returns
    -------
    bool
        True when its ``format`` entry is :data:`FORMAT_NAME`.

    Examples
    --------
    >>> is_topo_metadata({"format": "topo-checkpoint", "format_version": "2"})
    True
    >>> is_topo_metadata({"format": "pt"}), is_topo_metadata(None)
    (False, False)
    """
    return isinstance(raw, Mapping) and raw.get("format") == FORMAT_NAME


def is_topo_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file that declares itself a topo checkpoint.

    Only the header is read, and only its ``format`` entry decides: a topo checkpoint
    whose other metadata is damaged is still recognised as one, so that loading it
    says what is wrong instead of another reader guessing at it.

    Parameters
    ----------
    path : path-like
        Any file or folder; a missing or unreadable one is not a checkpoint.

    Returns
    -------
    bool

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from safetensors.numpy import save_file
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> ours = save_checkpoint(Topology.from_masks([np.eye(2)]), folder / "ours.safetensors")
    >>> save_file({"fc1.weight": np.eye(2)}, str(folder / "theirs.safetensors"))
    >>> is_topo_checkpoint(ours), is_topo_checkpoint(folder / "theirs.safetensors"), is_topo_checkpoint(folder / "none")
    (True, False, False)
    >>> temporary.cleanup()
    """
    try:
        with _open(Path(path)) as handle:
            return is_topo_metadata(handle.metadata())
    except (TopoError, OSError):
        return False


def load_checkpoint(path: str | os.PathLike, *, weights: bool = True) -> Topology:
    """Load a topo checkpoint as a Topology, without importing torch.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` file written by :func:`save_checkpoint`.
    weights : bool
        Also load weight values. Masks, biases and statistics are always loaded;
        analyses of connectivity alone can skip the weights and read less.

    Returns
    -------
    Topology
        Its ``info`` holds ``epoch``, ``step``, ``run``, ``path`` and ``format``.

    Raises
    ------
    TopoError
        If the file is missing, truncated, corrupt or not a topo checkpoint.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> weights = [np.array([[0.5, 0.0, -1.0], [0.0, 2.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 3.0]])]
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "epoch_0001.safetensors"
    >>> _ = save_checkpoint(Topology.from_weights(weights, names=["fc1", "fc2"]), path, epoch=1)
    >>> net = load_checkpoint(path)
    >>> net.names, net.widths, net.nnz, net.epoch
    (['fc1', 'fc2'], [3, 2, 2], 5, 1)
    >>> net["fc1"].weight[0].tolist(), load_checkpoint(path, weights=False)["fc1"].weight is None
    ([0.5, 0.0, -1.0], True)
    >>> load_checkpoint(pathlib.Path(folder.name) / "missing.safetensors")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../missing.safetensors: no such file
    >>> folder.cleanup()
    """
    path = Path(path)
    with _open(path) as handle:
        meta = _parse_metadata(handle.metadata() or {}, path)
        keys = set(handle.keys())
        layers = []
        try:
            for i, entry in enumerate(meta["layers"]):
                prefix = f"layers.{i}."
                mask = _decode_mask(handle, keys, prefix, entry.get("shape"))
                weight = handle.get_tensor(prefix + "weight") if weights and prefix + "weight" in keys else None
                bias = handle.get_tensor(prefix + "bias") if prefix + "bias" in keys else None
                stats = {
                    key[len(prefix + "stats."):]: handle.get_tensor(key)
                    for key in sorted(keys)
                    if key.startswith(prefix + "stats.")
                }
                layers.append(
                    Layer.from_mask(
                        entry["name"],
                        mask,
                        weight=weight,
                        bias=bias,
                        stats=stats,
                        source=entry.get("source", ""),
                        standalone=bool(entry.get("standalone", False)),
                        info=entry.get("info") or {},
                    )
                )
        except TopoError as exc:
            raise TopoError(f"checkpoint is inconsistent: {exc}", path=path) from None
        except Exception as exc:  # truncated data, wrong dtypes, missing tensors
            raise TopoError(f"checkpoint is corrupt ({_one_line(exc)})", path=path) from exc
    info = dict(meta["info"])
    info.update(epoch=meta["epoch"], step=meta["step"], run=meta["run"], path=str(path), format=FORMAT_NAME)
    try:
        return Topology(layers, info=info)
    except TopoError as exc:
        raise TopoError(str(exc), path=path) from None


# -- run folders -------------------------------------------------------------------
def checkpoint_name(epoch: int, step: int | None = None) -> str:
    """File name of a run's checkpoint: ``epoch_0003.safetensors`` or ``epoch_0003_step_00000450.safetensors``.

    Parameters
    ----------
    epoch : int
        The epoch that ended (or, with ``step``, the epoch in progress).
    step : int, optional
        The global step, for a checkpoint taken inside an epoch.

    Returns
    -------
    str

    Examples
    --------
    >>> checkpoint_name(3)
    'epoch_0003.safetensors'
    >>> checkpoint_name(3, step=450)
    'epoch_0003_step_00000450.safetensors'
    """
    if step is None:
        return f"epoch_{int(epoch):04d}{_SAFETENSORS_SUFFIX}"
    return f"epoch_{int(epoch):04d}_step_{int(step):08d}{_SAFETENSORS_SUFFIX}"


def parse_checkpoint_name(name: str) -> tuple[int, int | None] | None:
    """``(epoch, step)`` from a checkpoint file name, or None if it is not one.

    Parameters
    ----------
    name : str
        A file name (not a path), as :func:`checkpoint_name` makes them.

    Returns
    -------
    tuple of (int, int or None), or None

    Examples
    --------
    >>> parse_checkpoint_name("epoch_0003_step_00000450.safetensors")
    (3, 450)
    >>> parse_checkpoint_name("epoch_0012.safetensors")
    (12, None)
    >>> parse_checkpoint_name("model.safetensors") is None
    True
    """
    match = _NAME_RE.match(name)
    if not match:
        return None
    return int(match.group(1)), (None if match.group(2) is None else int(match.group(2)))


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a topo run folder (has ``run.json`` or a ``checkpoints/`` folder).

    Parameters
    ----------
    path : path-like
        Any path; a file or a missing path is not a run folder.

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> is_run_folder(folder.name)
    False
    >>> _ = write_run_config(folder.name, {"method": "set"})
    >>> is_run_folder(folder.name)
    True
    >>> folder.cleanup()
    """
    path = Path(path)
    return path.is_dir() and ((path / RUN_CONFIG).is_file() or (path / CHECKPOINT_DIR).is_dir())


def list_checkpoints(run: str | os.PathLike, *, include_steps: bool = True) -> list[Path]:
    """A run's checkpoints in training order.

    ``epoch_0000`` holds the initial masks and ``epoch_E`` the state at the end of
    epoch E. A checkpoint taken inside epoch E is named ``epoch_E_step_S`` (E the
    epoch in progress, S the global step) and sorts after ``epoch_{E-1}`` and before
    ``epoch_E``.

    Parameters
    ----------
    run : path-like
        The run folder.
    include_steps : bool
        Also list checkpoints taken inside epochs.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    TopoError
        If ``run`` is not a run folder.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name)
    >>> net = Topology.from_masks([np.eye(2)])
    >>> for epoch, step in [(0, None), (1, None), (1, 20), (2, None)]:
    ...     _ = save_checkpoint(net, run / "checkpoints" / checkpoint_name(epoch, step))
    >>> [path.name for path in list_checkpoints(run)]
    ['epoch_0000.safetensors', 'epoch_0001_step_00000020.safetensors', 'epoch_0001.safetensors', 'epoch_0002.safetensors']
    >>> len(list_checkpoints(run, include_steps=False))
    3
    >>> folder.cleanup()
    """
    run = Path(run)
    if not run.exists():
        raise TopoError("no such run folder", path=run)
    if not is_run_folder(run):
        raise TopoError("not a topo run folder (no run.json and no checkpoints/)", path=run)
    found: list[tuple[tuple[int, int], Path]] = []
    folder = run / CHECKPOINT_DIR
    if folder.is_dir():
        for entry in folder.iterdir():
            parsed = parse_checkpoint_name(entry.name)
            if parsed is None:
                continue
            epoch, step = parsed
            if step is None:
                # the end of epoch e sorts after all checkpoints taken inside epoch e
                key = (epoch, 1 << 62)
            else:
                if not include_steps:
                    continue
                key = (epoch, step)
            found.append((key, entry))
    found.sort(key=lambda item: (item[0], item[1].name))
    return [p for _, p in found]


def write_run_config(run: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """Write ``run.json`` atomically (creates the run folder).

    Parameters
    ----------
    run : path-like
        The run folder.
    config : mapping
        The run's configuration; numpy scalars and arrays, paths, sets and tuples
        are written as their JSON equivalents.

    Returns
    -------
    pathlib.Path
        The ``run.json`` written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = write_run_config(pathlib.Path(folder.name) / "run", {"method": "rigl", "density": np.float64(0.1)})
    >>> path.name, read_run_config(path.parent)
    ('run.json', {'method': 'rigl', 'density': 0.1})
    >>> folder.cleanup()
    """
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(run / RUN_CONFIG, json.dumps(dict(config), default=_json_default, indent=2) + "\n")


def read_run_config(run: str | os.PathLike) -> dict[str, Any]:
    """Read ``run.json``; an empty dict when the run has none.

    Parameters
    ----------
    run : path-like
        The run folder.

    Returns
    -------
    dict

    Raises
    ------
    TopoError
        If the file cannot be read, is not UTF-8 JSON, is nested too deeply, or is
        not a JSON object.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name)
    >>> read_run_config(run)
    {}
    >>> _ = (run / "run.json").write_text("[1, 2]")
    >>> read_run_config(run)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../run.json: run configuration is not a JSON object (found an array)
    >>> folder.cleanup()
    """
    path = Path(run) / RUN_CONFIG
    if not path.exists():
        return {}
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise TopoError(f"run configuration is unreadable ({exc.strerror or exc})", path=path) from None
    except UnicodeDecodeError as exc:
        raise TopoError(f"run configuration is not UTF-8 text (byte {exc.start})", path=path) from None
    config = _parse_json(text, "run configuration", path)
    if not isinstance(config, dict):
        raise TopoError(f"run configuration is not a JSON object (found {_json_type(config)})", path=path)
    return config


def _json_type(value: Any) -> str:
    """How JSON calls the type of a parsed value (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _json_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics record with its non-finite floats as None (JSON has no NaN)."""
    return {k: finite_float(v) if isinstance(v, float) else v for k, v in record.items()}


def append_metrics(run: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``metrics.jsonl`` and flush it to disk.

    Non-finite floats are written as ``null`` so that the file stays valid JSON.

    Parameters
    ----------
    run : path-like
        The run folder (created if missing).
    record : mapping
        One epoch's metrics.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name)
    >>> append_metrics(run, {"epoch": 1, "train_loss": 0.5})
    >>> append_metrics(run, {"epoch": 2, "train_loss": float("nan")})
    >>> print((run / "metrics.jsonl").read_text().strip())
    {"epoch": 1, "train_loss": 0.5}
    {"epoch": 2, "train_loss": null}
    >>> folder.cleanup()
    """
    path = Path(run) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_json_record(record), default=_json_default)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc  # a full disk names the file


#: metrics fields that are whole numbers when present
_METRICS_INTS = ("epoch", "step", "nnz", "mask_updates")
#: metrics fields that are numbers or null when present
_METRICS_NUMBERS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr", "density", "epoch_time",
)
#: metrics fields that are lists of numbers (or nulls) when present
_METRICS_LISTS = ("densities", "fan_in_cv")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metrics_record(record: Any, number: int, path: Path) -> dict[str, Any]:
    """One ``metrics.jsonl`` record, its known fields type-checked (a bad one is a TopoError)."""
    if not isinstance(record, dict):
        raise TopoError(f"line {number} is not a JSON object (found {_json_type(record)})", path=path)
    for key in _METRICS_INTS:
        value = record.get(key)
        if value is not None and not (_is_int(value) and value >= 0):
            raise TopoError(f"line {number}: {key!r} is not a non-negative integer ({_short(value)})", path=path)
    for key in _METRICS_NUMBERS:
        value = record.get(key)
        if value is not None and not _is_number(value):
            raise TopoError(f"line {number}: {key!r} is not a number ({_short(value)})", path=path)
    for key in _METRICS_LISTS:
        value = record.get(key)
        if value is not None and not (
            isinstance(value, list) and all(v is None or _is_number(v) for v in value)
        ):
            raise TopoError(f"line {number}: {key!r} is not a list of numbers ({_short(value)})", path=path)
    return record


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_metrics(run: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``metrics.jsonl``; a last line cut short by an interruption is ignored.

    Every line must be a UTF-8 JSON object; the fields topo writes (``epoch``,
    ``step``, losses, accuracies, densities, ...) must have their types.

    Parameters
    ----------
    run : path-like
        The run folder.

    Returns
    -------
    list of dict
        One record per line, in file order; empty when the run has no metrics.

    Raises
    ------
    TopoError
        Naming the file and the line, for a line that is not UTF-8, not JSON (other
        than a last line cut short), nested too deeply, not an object, or has a
        wrongly typed field.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name)
    >>> _ = (run / "metrics.jsonl").write_text('{"epoch": 1, "val_acc": 0.81}' + chr(10) + '{"epoch": 2, "val_a')
    >>> read_metrics(run)
    [{'epoch': 1, 'val_acc': 0.81}]
    >>> _ = (run / "metrics.jsonl").write_text('{"epoch": -1}' + chr(10))
    >>> read_metrics(run)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../metrics.jsonl: line 1: 'epoch' is not a non-negative integer (-1)
    >>> folder.cleanup()
    """
    path = Path(run) / METRICS_FILE
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TopoError(f"metrics are unreadable ({exc.strerror or exc})", path=path) from None
    records = []
    lines = data.splitlines()
    for number, raw in enumerate(lines, start=1):
        last = number == len(lines)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            if last and not data.endswith(b"\n"):
                break  # a write cut short inside a character
            raise TopoError(f"line {number} is not UTF-8 text", path=path) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if last:
                break  # a write cut short at the end
            raise TopoError(f"line {number} is not valid JSON", path=path) from None
        except RecursionError:
            raise TopoError(f"line {number} is nested too deeply", path=path) from None
        records.append(_check_metrics_record(record, number, path))
    return records


def write_metrics(run: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Replace ``metrics.jsonl`` with ``records`` atomically (used when a run resumes).

    Parameters
    ----------
    run : path-like
        The run folder.
    records : iterable of mappings
        The records to keep, one line each (non-finite floats become ``null``).

    Returns
    -------
    pathlib.Path
        The ``metrics.jsonl`` written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name)
    >>> for epoch in (1, 2, 3):
    ...     append_metrics(run, {"epoch": epoch})
    >>> _ = write_metrics(run, read_metrics(run)[:2])
    >>> [record["epoch"] for record in read_metrics(run)]
    [1, 2]
    >>> folder.cleanup()
    """
    text = "".join(json.dumps(_json_record(r), default=_json_default) + "\n" for r in records)
    return atomic_write_text(Path(run) / METRICS_FILE, text)


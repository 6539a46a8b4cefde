"""topo's own checkpoints (``.safetensors`` with topo metadata) and run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from topo.checkpoint import CHECKPOINT_DIR, is_run_folder, is_topo_checkpoint, list_checkpoints, load_checkpoint
from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._assemble import reading
from topo.topology import Topology

__all__ = ["EXTENSIONS", "sniff", "read", "requested_sparsity"]

EXTENSIONS = (".safetensors",)


def _run_of(path: Path) -> Path:
    """The run folder that ``path`` stands for: itself, or the run of its ``checkpoints/`` folder."""
    if path.name == CHECKPOINT_DIR and is_run_folder(path.parent) and not is_run_folder(path):
        return path.parent
    return path


def sniff(path: Path) -> bool:
    """A topo checkpoint file, or a run folder (or its ``checkpoints/``) with at least one checkpoint.

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the safetensors header's ``format`` entry, not by the suffix;
        never raises.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> from safetensors.numpy import save_file
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name) / "run"
    >>> path = save_checkpoint(Topology.from_masks([np.eye(2)]), run / "checkpoints" / "epoch_0000.safetensors")
    >>> sniff(path), sniff(run), sniff(run / "checkpoints")
    (True, True, True)
    >>> save_file({"fc1.weight": np.eye(2)}, str(run / "other.safetensors"))
    >>> sniff(run / "other.safetensors")
    False
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if path.is_dir():
            run = _run_of(path)
            return is_run_folder(run) and bool(list_checkpoints(run))
        if not path.is_file():
            return False
        from topo.formats.safetensors_hf import read_header

        # the header is parsed (once, cached) before the safetensors library opens the file
        if read_header(path)[1].get("format") != "topo-checkpoint":
            return False
        return is_topo_checkpoint(path)
    except Exception:  # a damaged file is not this format; detection must never fail
        return False


def read(path: Path, *, weights: bool = True, **_: Any) -> Topology:
    """Load a checkpoint file, or a run folder's last checkpoint.

    A run's checkpoint that is a link out of the run folder is refused (see
    :func:`topo.formats._policy.confine`).

    Parameters
    ----------
    path : path-like
        A topo checkpoint, a run folder, or a run's ``checkpoints/`` folder.
    weights : bool
        Also load weight values.

    Returns
    -------
    Topology
        With ``info["requested_sparsity"]`` when the run's configuration gives it
        (see :func:`requested_sparsity`).

    Raises
    ------
    TopoError
        If the run has no checkpoints, the file is over the reading limits, or the
        checkpoint is damaged.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name) / "run"
    >>> masks = [np.ones((2, 3)), np.array([[1, 0, 0], [0, 1, 1]])]
    >>> for epoch, mask in enumerate(masks):
    ...     net = Topology.from_masks([mask], names=["fc1"])
    ...     _ = save_checkpoint(net, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch,
    ...                         run_info={"config": {"sparsity": 0.5}})
    >>> net = read(run)
    >>> net.epoch, net.nnz, net.info["requested_sparsity"]
    (1, 3, {'*': 0.5})
    >>> temporary.cleanup()
    """
    path = Path(path)
    if path.is_dir():
        run = _run_of(path)
        checkpoints = list_checkpoints(run)
        if not checkpoints:
            raise TopoError("run folder has no checkpoints", path=path)
        path = checkpoints[-1]
        _policy.confine(path, run, what="checkpoint")
    with reading(path, "topo checkpoint"):
        _check_budget(path)
        topology = load_checkpoint(path, weights=weights)
    requested = requested_sparsity(topology.info.get("run"), topology.names)
    if requested is not None and "requested_sparsity" not in topology.info:
        topology = topology.with_info(requested_sparsity=requested)
    return topology


def requested_sparsity(run: Any, names: list[str]) -> dict[str, float] | None:
    """The sparsity a topo training run asked for, from the run facts in its checkpoints.

    Returns the ``topology.info["requested_sparsity"]`` convention of
    :mod:`topo.analysis.patterns`: ``"*"`` is the whole network's ``sparsity``; layers
    fixed by ``density_map`` (by name or index) or ``dense_output`` (the last layer)
    get their own. None when the checkpoint was not written by ``topo train``.

    Parameters
    ----------
    run : object
        A checkpoint's ``info["run"]``; its ``config`` entry is ``topo train``'s configuration.
    names : list of str
        The layers' names, in order (``density_map`` may name layers by index).

    Returns
    -------
    dict of str to float, or None

    Examples
    --------
    >>> run = {"config": {"sparsity": 0.9, "density_map": {"0": 0.5}, "dense_output": True}}
    >>> requested_sparsity(run, ["fc1", "fc2", "out"])
    {'*': 0.9, 'fc1': 0.5, 'out': 0.0}
    >>> requested_sparsity({"method": "external"}, ["fc1"]) is None
    True
    """
    config = run.get("config") if isinstance(run, dict) else None
    if not isinstance(config, dict):
        return None
    try:
        requested = {"*": float(config["sparsity"])}
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    density_map = config.get("density_map")
    if isinstance(density_map, dict):
        for key, density in density_map.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                index = None
            name = names[index] if index is not None and -len(names) <= index < len(names) else str(key)
            try:
                requested[name] = 1.0 - float(density)
            except (TypeError, ValueError, OverflowError):
                continue
    if config.get("dense_output") is True and names:
        requested[names[-1]] = 0.0
    return requested


def _check_budget(path: Path) -> None:
    """Layer count and declared layer shapes from the header, checked before any tensor is read.

    Masks stored densely (``layers.K.mask``) are dense arrays; masks stored as CSR
    indices declare their shape in the metadata, which bounds the neurons per side.
    """
    import json

    from topo.formats.safetensors_hf import read_header

    entries, metadata, _ = read_header(path)  # the file's own budget (sizes, overlaps) is checked here
    try:
        layers = json.loads(metadata.get("layers") or "[]")
    except ValueError:
        return  # the checkpoint reader says what is wrong with it
    if not isinstance(layers, list):
        return
    current = _policy.limits()
    _policy.check_layer_count(len(layers), path=path, current=current)
    for index, entry in enumerate(layers):
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in shape):
            _policy.check_layer_shape(shape[0], shape[1], path=path, what=f"layer {index}", dense=False, current=current)
    for key, entry in entries.items():
        if key.endswith(".mask") and len(entry["shape"]) == 2:  # a mask stored densely
            n_out, n_in = entry["shape"]
            _policy.check_layer_shape(n_out, n_in, path=path, what=f"layer {key[: -len('.mask')]!r}", current=current)

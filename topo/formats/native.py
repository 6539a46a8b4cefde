"""topo's own checkpoints (``.safetensors`` with topo metadata) and run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from topo.checkpoint import CHECKPOINT_DIR, is_run_folder, is_topo_checkpoint, list_checkpoints, load_checkpoint
from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._assemble import reading
from topo.topology import Topology

__all__ = ["EXTENSIONS", "sniff", "read"]

EXTENSIONS = (".safetensors",)


def _run_of(path: Path) -> Path:
    """The run folder that ``path`` stands for: itself, or the run of its ``checkpoints/`` folder."""
    if path.name == CHECKPOINT_DIR and is_run_folder(path.parent) and not is_run_folder(path):
        return path.parent
    return path


def sniff(path: Path) -> bool:
    """A topo checkpoint file, or a run folder (or its ``checkpoints/``) with at least one checkpoint."""
    try:
        path = Path(path)
        if path.is_dir():
            run = _run_of(path)
            return is_run_folder(run) and bool(list_checkpoints(run))
        return path.is_file() and is_topo_checkpoint(path)
    except Exception:  # a damaged file is not this format; detection must never fail
        return False


def read(path: Path, *, weights: bool = True, **_: Any) -> Topology:
    """Load a checkpoint file, or a run folder's last checkpoint.

    A run's checkpoint that is a link out of the run folder is refused (see
    :func:`topo.formats._policy.confine`).
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
        return load_checkpoint(path, weights=weights)

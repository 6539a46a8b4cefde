"""Reading runs: run folders, their checkpoint series, epoch selection and profile files.

The analysis functions (:mod:`topo.analysis`) take Topologies, arrays and plain values
and never open a file. This module is where the command-line interface, the figures
and the report turn what a user names (a run folder, a checkpoint, a profile file, an
epoch selection such as ``"0-30:5"``) into those values:

- :func:`load_topology` and :func:`load_masks` read one checkpoint (any format
  :func:`topo.formats.load` knows) without weights; :func:`load_masks` also drops the
  statistics and keeps the last few it read, for the workers of
  :func:`topo.analysis.distance.nnstd_matrix`;
- :func:`load_run` and :func:`run_checkpoints` read a run's checkpoints in training
  order, the latter choosing epochs (:func:`parse_epochs` reads a selection);
- :func:`read_profile` and :func:`save_profile` read and write fan-in profile files
  (the equilibrium lognormal of :mod:`topo.analysis.drift`), and
  :func:`load_equilibrium` reads whatever a drift equilibrium may be named by;
- :func:`load_run_data` gathers what the report needs from one run;
- :func:`checkpoint_place` says which run and epoch a checkpoint is (for labels),
  :func:`run_metrics` and :func:`epoch_checkpoint_paths` read what figures need.

Profile file (JSON)::

    {"kind": "topo-fanin-profile", "version": 1, "distribution": "lognormal",
     "layers": {"fc1": {"mu": 3.2, "sigma": 0.41, "cv": 0.43, "mean_fan_in": 26.8}, ...}}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from topo.errors import TopoError, shorten_list
from topo.progress import ProgressCallback
from topo.topology import Topology

__all__ = [
    "PROFILE_KIND",
    "PROFILE_VERSION",
    "RunData",
    "checkpoint_place",
    "describe_epochs",
    "epoch_checkpoint_paths",
    "is_run",
    "load_equilibrium",
    "load_masks",
    "load_run",
    "load_run_data",
    "load_topology",
    "parse_epochs",
    "read_profile",
    "run_checkpoints",
    "run_metrics",
    "save_profile",
]

PROFILE_KIND = "topo-fanin-profile"
PROFILE_VERSION = 1



# -- one checkpoint ------------------------------------------------------------------------
def load_topology(path: str | os.PathLike) -> Topology:
    """A checkpoint's masks and statistics, without weights (:func:`topo.formats.load`).

    Module level, so that worker processes can be handed it as the ``load`` of
    :func:`topo.analysis.structure.feature_table` or
    :func:`topo.analysis.gradients.gradient_rows`.

    Raises
    ------
    TopoError
        If the file is missing, unsupported or cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> net = load_topology(run / "checkpoints" / "epoch_0001.safetensors")
    >>> net.epoch, net.nnz, net["fc1"].weight is None
    (1, 6, True)
    >>> folder.cleanup()
    """
    from topo.formats import load

    return load(path, weights=False)


@lru_cache(maxsize=16)
def _masks_cached(path: str, mtime_ns: int, size: int) -> Topology:
    from topo.analysis.distance import masks_only

    return masks_only(load_topology(path))


def load_masks(path: str | os.PathLike) -> Topology:
    """A checkpoint's masks alone (no weights, biases or statistics); the last 16 read are kept.

    The ``load`` that :func:`topo.analysis.distance.nnstd_matrix` calls in each worker:
    a worker that meets the same checkpoint in many pairs reads it once (a file that
    changed on disk since is read again).

    Raises
    ------
    TopoError
        If the file is missing, unsupported or cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> load_masks(run / "checkpoints" / "epoch_0001.safetensors").nnz
    6
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except OSError:
        raise TopoError("no such file or folder", path=path) from None
    return _masks_cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


# -- a run's checkpoints -------------------------------------------------------------------
def load_run(
    run: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    last_k: int | None = None,
    progress: ProgressCallback | None = None,
) -> list[Topology]:
    """Load a run's checkpoints in training order, masks and statistics only.

    Parameters
    ----------
    run : path-like or sequence of path-like
        A run folder (its checkpoints from :func:`topo.checkpoint.list_checkpoints`)
        or checkpoint files in order.
    last_k : int, optional
        Load only the last ``last_k`` checkpoints.
    progress : callable, optional
        ``progress(done, total)`` after each checkpoint.

    Raises
    ------
    TopoError
        If the run folder has no checkpoints or a file cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> [net.epoch for net in load_run(run)], [net.epoch for net in load_run(run, last_k=2)]
    ([0, 1, 2], [1, 2])
    >>> folder.cleanup()
    """
    from topo.checkpoint import list_checkpoints

    if isinstance(run, (str, os.PathLike)):
        paths = list_checkpoints(run)
        if not paths:
            raise TopoError("run folder has no checkpoints", path=run)
    else:
        paths = [Path(p) for p in run]
        if not paths:
            raise TopoError("no checkpoints given")
    if last_k is not None:
        paths = paths[-max(int(last_k), 1):]
    topologies = []
    for done, path in enumerate(paths, start=1):
        topologies.append(load_topology(path))
        if progress is not None:
            progress(done, len(paths))
    return topologies


def parse_epochs(text: str | None) -> list[int] | None:
    """Epochs from ``"0,5,10"``, ranges ``"0-30"`` or stepped ranges ``"0-30:5"``; None for None/empty.

    Examples
    --------
    >>> parse_epochs("0-10:5,12")
    [0, 5, 10, 12]

    Raises
    ------
    TopoError
        If a part is not a whole number, range or stepped range.
    """
    if text is None or not str(text).strip():
        return None
    epochs: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                span, _, step = part.partition(":")
                start, _, stop = span.partition("-")
                step_value = int(step) if step else 1
                if step_value < 1:
                    raise ValueError
                epochs.extend(range(int(start), int(stop) + 1, step_value))
            else:
                epochs.append(int(part))
        except ValueError:
            raise TopoError(
                f"epoch selection {text!r}: {part!r} is not an epoch, a range a-b or a stepped range a-b:s"
            ) from None
    return sorted(set(epochs))


def describe_epochs(epochs: Sequence[int]) -> str:
    """Epochs as runs of consecutive numbers, shortened when there are many runs.

    Examples
    --------
    >>> describe_epochs(range(101))
    '0-100'
    >>> describe_epochs([0, 1, 2, 5, 9, 10])
    '0-2, 5, 9-10'
    """
    values = sorted(set(int(e) for e in epochs))
    spans: list[str] = []
    start: int | None = None
    previous: int | None = None
    for value in [*values, None]:
        if start is not None and previous is not None and (value is None or value != previous + 1):
            spans.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if value is not None and start is None:
            start = value
        previous = value
    return shorten_list(spans)


def run_checkpoints(
    run: str | os.PathLike,
    *,
    epochs: Sequence[int] | None = None,
    include_steps: bool = False,
    progress: ProgressCallback | None = None,
) -> list[Topology]:
    """A run's checkpoints in training order, masks and statistics only (no weights).

    Parameters
    ----------
    run : path-like
        A run folder.
    epochs : sequence of int, optional
        Keep only the checkpoints at the end of these epochs.
    include_steps : bool
        Also load checkpoints taken inside epochs. When a run has none at epoch ends,
        they are used anyway.
    progress : callable, optional
        ``progress(done, total)`` after each checkpoint.

    Raises
    ------
    TopoError
        If ``run`` is not a run folder, has no checkpoints, or lacks a requested epoch
        (the message names the epochs it has).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> [net.epoch for net in run_checkpoints(run, epochs=[0, 2])]
    [0, 2]
    >>> folder.cleanup()
    """
    from topo.checkpoint import list_checkpoints, parse_checkpoint_name

    paths = list_checkpoints(run, include_steps=include_steps)
    if not paths and not include_steps:
        paths = list_checkpoints(run, include_steps=True)
    if not paths:
        raise TopoError("run folder has no checkpoints", path=run)
    if epochs is not None:
        wanted = set(int(e) for e in epochs)
        by_epoch: dict[int, Path] = {}
        for path in paths:
            parsed = parse_checkpoint_name(path.name)
            if parsed is not None and parsed[1] is None:
                by_epoch[parsed[0]] = path
        missing = sorted(wanted - set(by_epoch))
        if missing:
            has = f"it has epochs {describe_epochs(list(by_epoch))}" if by_epoch else "it has no epoch-end checkpoint"
            raise TopoError(
                f"no checkpoint at the end of epoch {shorten_list(missing)} in this run; {has}", path=run
            )
        paths = [by_epoch[e] for e in sorted(wanted)]
    return load_run(paths, progress=progress)


# -- profile files -------------------------------------------------------------------------
def save_profile(result_or_mapping: Any, path: str | os.PathLike) -> Path:
    """Write an equilibrium profile file (JSON, atomically).

    Parameters
    ----------
    result_or_mapping : DriftResult or mapping
        A drift result (its ``equilibrium_fit``, :class:`topo.analysis.drift.DriftResult`)
        or a mapping ``{layer: {"mu", "sigma", "cv"?, "mean_fan_in"?}}``.
    path : path-like
        The file to write.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TopoError
        If the mapping is not a valid profile (e.g. a layer's fit is NaN because it
        has no connections).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> from topo.analysis.drift import drift
    >>> path = save_profile(drift(load_run(run), last_k=2), pathlib.Path(folder.name) / "profile.json")
    >>> sorted(read_profile(path)["fc1"])
    ['cv', 'mean_fan_in', 'mu', 'sigma']
    >>> folder.cleanup()
    """
    from topo.analysis.drift import DriftResult, validate_profile
    from topo.checkpoint import atomic_write_text

    layers = result_or_mapping.profile() if isinstance(result_or_mapping, DriftResult) else result_or_mapping
    clean = validate_profile(layers)
    payload = {
        "kind": PROFILE_KIND,
        "version": PROFILE_VERSION,
        "distribution": "lognormal",
        "layers": clean,
    }
    return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def read_profile(path: str | os.PathLike, *, last_k: int = 3) -> dict[str, dict[str, float]]:
    """Read an equilibrium profile: a profile file, or a run folder's equilibrium.

    Parameters
    ----------
    path : path-like
        A profile file written by :func:`save_profile`, or a run folder, whose last
        ``last_k`` checkpoints give the profile
        (:func:`topo.analysis.drift.equilibrium_profile`).
    last_k : int
        Checkpoints pooled when ``path`` is a run folder.

    Returns
    -------
    dict
        ``{layer: {"mu", "sigma", "cv", "mean_fan_in"}}``. From a run folder, a layer
        without connections has NaN entries (a file never does).

    Raises
    ------
    TopoError
        Naming the file, if it is missing, not JSON, of another kind or a newer
        version, not a lognormal profile, or has a malformed layer entry.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> path = save_profile({"fc1": {"mu": 0.0, "sigma": 0.0}}, pathlib.Path(folder.name) / "profile.json")
    >>> read_profile(path)
    {'fc1': {'mu': 0.0, 'sigma': 0.0, 'cv': 0.0, 'mean_fan_in': 1.0}}
    >>> {name: round(value, 3) for name, value in read_profile(run, last_k=2)["fc1"].items()}  # a run folder: its equilibrium
    {'mu': 0.597, 'sigma': 0.454, 'cv': 0.478, 'mean_fan_in': 2.0}
    >>> folder.cleanup()
    """
    from topo.analysis.drift import equilibrium_profile, validate_profile
    from topo.checkpoint import is_run_folder

    path = Path(path)
    if not path.exists():
        raise TopoError("no such profile file or run folder", path=path)
    if path.is_dir():
        if not is_run_folder(path):
            raise TopoError("a folder, but neither a profile file nor a topo run folder", path=path)
        return equilibrium_profile(load_run(path, last_k=last_k), last_k=last_k)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TopoError(f"cannot read profile ({exc.__class__.__name__})", path=path) from None
    except json.JSONDecodeError as exc:
        raise TopoError(f"profile is not valid JSON (line {exc.lineno}: {exc.msg})", path=path) from None
    if not isinstance(document, dict) or document.get("kind") != PROFILE_KIND:
        raise TopoError(f"not a topo fan-in profile (expected \"kind\": \"{PROFILE_KIND}\")", path=path)
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TopoError(f"profile has no valid version, got {version!r}", path=path)
    if version > PROFILE_VERSION:
        raise TopoError(
            f"profile version {version} is newer than this topo reads ({PROFILE_VERSION}); upgrade topo", path=path
        )
    if document.get("distribution", "lognormal") != "lognormal":
        raise TopoError(f"unsupported profile distribution {document.get('distribution')!r} (only lognormal)", path=path)
    return validate_profile(document.get("layers"), path=path)


def load_equilibrium(
    source: Any, *, last_k: int = 3
) -> tuple[list[Topology] | dict[str, dict[str, float]] | None, str | None]:
    """What a drift equilibrium is named by, read into what :func:`topo.analysis.drift.drift` takes.

    Parameters
    ----------
    source : None, path-like, mapping, Topology or sequence of Topology
        A run folder (its last ``last_k`` checkpoints are read), a profile file, or
        something already in memory (returned as it is).
    last_k : int
        Checkpoints read from a run folder.

    Returns
    -------
    (equilibrium, description)
        The equilibrium to pass as ``drift(..., equilibrium=...)`` and, for a path, the
        path as ``equilibrium_source`` (None otherwise).

    Raises
    ------
    TopoError
        If the path is missing, or names neither a run folder nor a valid profile file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> equilibrium, source = load_equilibrium(run, last_k=2)
    >>> [net.epoch for net in equilibrium], source == str(run)
    ([1, 2], True)
    >>> load_equilibrium({"fc1": {"mu": 0.0, "sigma": 0.0}})[1] is None
    True
    >>> folder.cleanup()
    """
    from topo.checkpoint import is_run_folder

    if not isinstance(source, (str, os.PathLike)):
        return source, None
    path = Path(source)
    if path.is_dir() and is_run_folder(path):
        return load_run(path, last_k=last_k), str(path)
    return read_profile(path), str(path)


# -- what the report needs from one run ------------------------------------------------------
@dataclass
class RunData:
    """What the report needs from one run, loaded once.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> data = load_run_data(run)
    >>> data.name, len(data.topologies), data.drift.labels, data.drift_error
    ('run', 3, ['0', '1', '2'], None)
    >>> folder.cleanup()
    """

    path: Path
    name: str
    config: dict
    metrics: list
    topologies: list = field(default_factory=list)
    drift: Any = None
    drift_error: str | None = None


def load_run_data(run: str | os.PathLike, *, name: str | None = None, progress: ProgressCallback | None = None) -> RunData:
    """Read a run's configuration, metrics and checkpoints (masks and statistics), and its drift.

    Raises
    ------
    TopoError
        If ``run`` is not a topo run folder or a file in it cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> data = load_run_data(run, name="static")
    >>> data.name, data.metrics, [net.epoch for net in data.topologies]
    ('static', [], [0, 1, 2])
    >>> folder.cleanup()
    """
    from topo.analysis.drift import drift
    from topo.checkpoint import is_run_folder, list_checkpoints, read_metrics, read_run_config

    path = Path(run)
    if not path.exists():
        raise TopoError("no such run folder", path=run)
    if not is_run_folder(path):
        raise TopoError("not a topo run folder (no run.json and no checkpoints/)", path=run)
    data = RunData(
        path=path,
        name=name or Path(os.path.abspath(path)).name,
        config=read_run_config(path),
        metrics=read_metrics(path),
    )
    if list_checkpoints(path, include_steps=True):
        data.topologies = run_checkpoints(path, progress=progress)
        try:
            data.drift = drift(data.topologies)
        except TopoError as exc:
            data.drift_error = str(exc)
    return data


# -- where a checkpoint belongs; a run's files for figures -----------------------------------
def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a topo run folder (it has ``run.json`` or ``checkpoints/``).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    bool
        False for a file, a missing path or a folder of anything else.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> is_run(run), is_run(folder.name), is_run(run / "checkpoints" / "epoch_0000.safetensors")
    (True, False, False)
    >>> folder.cleanup()
    """
    from topo.checkpoint import is_run_folder

    return is_run_folder(path)


def run_metrics(run: str | os.PathLike) -> list[dict]:
    """A run's metrics records (``metrics.jsonl``, one per epoch; empty when there are none).

    Raises
    ------
    TopoError
        If ``run`` does not exist or is not a topo run folder.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> run_metrics(run)  # checkpoints but no metrics.jsonl
    []
    >>> from topo.checkpoint import append_metrics
    >>> append_metrics(run, {"epoch": 0, "val_acc": 0.25})
    >>> append_metrics(run, {"epoch": 1, "val_acc": 0.5})
    >>> [record["val_acc"] for record in run_metrics(run)]
    [0.25, 0.5]
    >>> folder.cleanup()
    """
    from topo.checkpoint import is_run_folder, read_metrics

    if not Path(run).exists():
        raise TopoError("no such run folder", path=run)
    if not is_run_folder(run):
        raise TopoError("not a topo run folder (no run.json and no checkpoints/)", path=run)
    return read_metrics(run)


def epoch_checkpoint_paths(run: str | os.PathLike) -> list[Path]:
    """A run's checkpoint files at epoch ends in training order, or all of them (those
    inside epochs too) where it has none at an epoch end.

    Parameters
    ----------
    run : path-like
        A run folder.

    Returns
    -------
    list of pathlib.Path
        Empty when the run has no checkpoints.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> _ = save_checkpoint(Topology.from_masks([masks[0]], names=["fc1"]), run / "checkpoints" / checkpoint_name(1, 5), epoch=1, step=5)
    >>> [path.name for path in epoch_checkpoint_paths(run)]  # the one inside epoch 1 is left out
    ['epoch_0000.safetensors', 'epoch_0001.safetensors', 'epoch_0002.safetensors']
    >>> folder.cleanup()
    """
    from topo.checkpoint import list_checkpoints

    return list_checkpoints(run, include_steps=False) or list_checkpoints(run)


def _point_of_file(path: Path) -> str | None:
    from topo.checkpoint import parse_checkpoint_name

    parsed = parse_checkpoint_name(path.name)
    if parsed is None:
        return None
    epoch, step = parsed
    return str(epoch) if step is None else f"{epoch}@{step}"


def checkpoint_place(item: Topology | str | os.PathLike) -> tuple[str | None, str | None]:
    """Which run a checkpoint belongs to and where in it: ``(run, point)``.

    ``run`` is the absolute path of the run folder (a file outside any run folder
    stands for itself; None for a Topology read from nowhere); ``point`` is the epoch
    (``"12"``), an epoch and step (``"12@4500"``) for a checkpoint inside an epoch, or
    None where unknown. A run folder stands for its last checkpoint. Nothing is loaded:
    epochs come from file names, or from the Topology itself.

    Parameters
    ----------
    item : Topology or path-like
        A loaded checkpoint, a checkpoint file or a run folder.

    Returns
    -------
    (str or None, str or None)

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from topo import Topology
    >>> from topo.checkpoint import checkpoint_name, save_checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(folder.name) / "run"
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> for epoch, mask in enumerate(masks + masks[1:]):
    ...     _ = save_checkpoint(Topology.from_masks([mask], names=["fc1"]), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    >>> where, point = checkpoint_place(run / "checkpoints" / "epoch_0001.safetensors")
    >>> pathlib.Path(where) == run.absolute(), point
    (True, '1')
    >>> checkpoint_place(run)[1]  # a run folder: its last checkpoint
    '2'
    >>> checkpoint_place(Topology.from_masks([masks[0]], names=["fc1"]))  # read from nowhere
    (None, None)
    >>> folder.cleanup()
    """
    if isinstance(item, Topology):
        where = item.info.get("path")
        epoch, step = item.epoch, item.step
        inside = where is not None and step is not None and "_step_" in Path(str(where)).name
        point = None if epoch is None else (f"{epoch}@{step}" if inside else str(epoch))
        if not where:
            return None, point
        path = Path(os.path.abspath(str(where)))
        return str(path.parent.parent if path.parent.name == "checkpoints" else path), point
    path = Path(os.path.abspath(item))
    if path.is_dir() and is_run(path):
        found = epoch_checkpoint_paths(path)
        return str(path), _point_of_file(found[-1]) if found else None
    if path.parent.name == "checkpoints":
        return str(path.parent.parent), _point_of_file(path)
    return str(path), _point_of_file(path)

"""The files of a training run folder: what is written, in which order, and the checks on resuming.

A run folder (see :mod:`topo.checkpoint`) holds ``run.json`` (the whole configuration,
the data set, versions, device, the initial masks' achieved fan-in CVs),
``metrics.jsonl`` (one record per epoch, epoch 0 being the untrained network),
``checkpoints/epoch_NNNN.safetensors`` (``epoch_0000`` holds the initial masks before
any training; ``--checkpoint-every`` adds ``epoch_E_step_S`` inside epochs; with
``--intermediate-checkpoints masks`` all but the final epoch's hold masks and
statistics only) and ``state/last.pt``, everything a resumed run needs (model,
optimiser, algorithm, the epoch and step), written atomically after every epoch (every
``--state-every`` epochs and after the last) and read back with
``torch.load(weights_only=True)``.

Files are written on one background thread (:class:`BackgroundWriter`): the training
loop copies the tensors into a job (:func:`checkpoint_job`, :func:`state_job`) and goes
on training while the job writes them. An epoch's files are written in the order
checkpoint, metrics line, state (:func:`epoch_job`), so a state on disk always has its
epoch's checkpoint and metrics. Before a run is trained into or resumed, the folder is
checked here: it must be fresh (:func:`check_fresh`), or a valid run (:func:`check_run_meta`,
:func:`load_state`), and what a killed writer left is removed (:func:`clean_temp_files`,
:func:`drop_epochs_after`).
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from topo.checkpoint import (
    CHECKPOINT_DIR,
    RUN_CONFIG,
    append_metrics,
    atomic_write_bytes,
    list_checkpoints,
    parse_checkpoint_name,
    read_metrics,
    save_checkpoint,
    write_metrics,
    write_run_config,
)
from topo.errors import TopoError, first_line
from topo.topology import Topology
from topo.training.config import TrainConfig, config_identity

__all__ = [
    "RunFolderTaken",
    "STATE_FILE",
    "STATE_FORMAT",
    "STATE_VERSION",
    "RUN_KIND",
    "BackgroundWriter",
    "default_run_dir",
    "write_new_run_config",
    "checkpoint_job",
    "state_job",
    "epoch_job",
    "copy_to_cpu",
    "clean_temp_files",
    "run_contents",
    "check_fresh",
    "check_run_meta",
    "load_state",
    "has_trained_epochs",
    "empty_run_folder",
    "drop_epochs_after",
    "holds_same_run",
]

STATE_FILE = Path("state") / "last.pt"
STATE_FORMAT = "topo-train-state"
STATE_VERSION = 1
#: ``run.json``'s ``kind`` for a run written by ``topo train``
RUN_KIND = "topo-train-run"


def default_run_dir(config: TrainConfig, *, root: str | os.PathLike = "runs") -> Path:
    """``runs/<dataset>-<method>-<YYYYmmdd-HHMMSS>``.

    Parameters
    ----------
    config : TrainConfig
        Its ``dataset`` (a path's file stem) and ``method`` name the folder.
    root : path-like
        The folder of runs.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> path = default_run_dir(TrainConfig(dataset="mnist", method="set"))
    >>> path.parent.name, path.name.startswith("mnist-set-"), len(path.name)
    ('runs', True, 25)
    >>> default_run_dir(TrainConfig(dataset="data/toy.npz"), root="/tmp/runs").name.startswith("toy-rigl-")
    True
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dataset = Path(str(config.dataset)).stem if ("/" in str(config.dataset) or os.sep in str(config.dataset)) else config.dataset
    return Path(root) / f"{dataset}-{config.method}-{stamp}"


# -- writing ------------------------------------------------------------------------
class BackgroundWriter:
    """Writes a run's files on one background thread, one batch of writes at a time.

    The training loop hands over a job whose tensors it has already copied, so that the
    next steps can change the model while the files are written; a new job, and
    :meth:`join`, first wait for the one before, and an error raised by a job is raised
    again in the training thread at that point. Every file is still written atomically.

    Examples
    --------
    >>> written = []
    >>> writer = BackgroundWriter()
    >>> writer.submit(lambda: written.append("epoch 1"))
    >>> writer.submit(lambda: written.append("epoch 2"))  # waits for the first
    >>> writer.join()
    >>> written
    ['epoch 1', 'epoch 2']
    >>> writer.submit(lambda: 1 / 0)
    >>> writer.join()  # the job's error, raised in the caller's thread
    Traceback (most recent call last):
    ...
    ZeroDivisionError: division by zero
    """

    def __init__(self) -> None:
        self._thread: Any = None  # a threading.Thread while a write is in flight
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], object]) -> None:
        """Wait for the write in flight (raising what it raised), then start ``job``."""
        import threading

        self.join()

        def target() -> None:
            try:
                job()
            except BaseException as exc:  # handed to the training thread by join()
                self._error = exc

        self._thread = threading.Thread(target=target, name="topo-train-writer")
        self._thread.start()

    def join(self) -> None:
        """Wait for the write in flight; raise what it raised."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def write_new_run_config(
    run_dir: Path,
    config: TrainConfig,
    data,
    *,
    names: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    algorithm: Mapping[str, Any],
    starting,
    versions: Mapping[str, str],
    device: str,
    threads: int,
    steps_per_epoch: int,
    total_epochs: int,
    total_steps: int,
    backends: Sequence[str] | None = None,
) -> None:
    """Write the ``run.json`` of a new run (creating the folder).

    Parameters
    ----------
    run_dir : Path
    config : TrainConfig
    data : Dataset
        The data set the run trains on.
    names, shapes
        The network's layer names and ``(out, in)`` shapes.
    algorithm : mapping
        The algorithm's own description (``describe()``).
    starting : StartingMasks
        The initial masks and where they came from (:mod:`topo.training.init`).
    versions : mapping
        Library versions.
    device : str
    threads : int
    steps_per_epoch, total_epochs, total_steps : int
    backends : sequence of str, optional
        Per layer, ``"sparse"`` or ``"masked"``: what ``--backend`` chose
        (:mod:`topo.training.backends`); stored as ``network.backends``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.checkpoint import read_run_config
    >>> from topo.training.data import load_dataset
    >>> from topo.training.init import library_versions, starting_masks
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(8,), method="static")
    >>> data = load_dataset("digits")
    >>> shapes, names = [(8, 64), (10, 8)], ["fc1", "fc2"]
    >>> write_new_run_config(folder / "run", config, data, names=names, shapes=shapes, algorithm={"name": "static"},
    ...                      starting=starting_masks(config, shapes, names), versions=library_versions(),
    ...                      device="cpu", threads=1, steps_per_epoch=21, total_epochs=30, total_steps=630)
    >>> meta = read_run_config(folder / "run")
    >>> meta["kind"], meta["network"], meta["dataset"]["n_classes"], meta["initial"]["budgets"]
    ('topo-train-run', {'layers': ['fc1', 'fc2'], 'shapes': [[8, 64], [10, 8]], 'backends': ['masked', 'masked']}, 10, [47, 12])
    >>> TrainConfig.from_dict(meta["config"]) == config
    True
    >>> import shutil; shutil.rmtree(folder)
    """
    init = starting.initial
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(
        run_dir,
        {
            "kind": RUN_KIND,
            "config": config.to_dict(),
            "dataset": {
                "name": data.name,
                "source": data.source,
                "n_features": int(data.n_features),
                "n_classes": int(data.n_classes),
                "n_train": int(len(data.y_train)),
                "n_val": int(len(data.y_val)),
                "n_test": int(len(data.y_test)),
            },
            "network": {
                "layers": list(names),
                "shapes": [list(s) for s in shapes],
                "backends": list(backends) if backends is not None else ["masked"] * len(shapes),
            },
            "algorithm": algorithm,
            "initial": {
                "achieved_cv": [float(c) for c in init.achieved_cv],
                "budgets": [int(b) for b in init.budgets],
                "profile_per_layer": starting.profile_per_layer,
                "prior": starting.prior,
            },
            "versions": dict(versions),
            "seed": int(config.seed),
            "device": device,
            "threads": threads,
            "steps_per_epoch": steps_per_epoch,
            "total_epochs": total_epochs,
            "total_steps": total_steps,
            "started": datetime.now().isoformat(timespec="seconds"),
        },
    )


def checkpoint_job(
    run_dir: Path,
    name: str,
    model,
    grad_mean,
    *,
    config: TrainConfig,
    dataset_name: str,
    epoch: int,
    step: int,
    metrics: Mapping[str, Any] | None = None,
    weights: bool = True,
) -> Callable[[], Path]:
    """A copy of ``model`` now, and the write of it as checkpoint ``name`` (to run later).

    Only the tensors are copied here; building the topology (sparse masks) and writing
    it happen when the job runs, on the writer's thread. With ``weights=False`` the
    checkpoint holds the masks and statistics only (``--intermediate-checkpoints masks``):
    no weight or bias is copied or written.

    Parameters
    ----------
    run_dir : pathlib.Path
    name : str
        The checkpoint's file name (:func:`topo.checkpoint.checkpoint_name`).
    model : MaskedMLP or SparseNetwork
    grad_mean : sequence of numpy.ndarray
        Per layer, each output neuron's mean ``|dL/dW|``.
    config : TrainConfig
    dataset_name : str
    epoch, step : int
    metrics : mapping, optional
        The epoch's record, kept in the checkpoint's info.
    weights : bool
        Copy and write the weights and biases.

    Returns
    -------
    callable
        ``job()`` writes the checkpoint and returns its path.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import torch
    >>> from topo.checkpoint import load_checkpoint
    >>> from topo.training.model import build_model
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> model = build_model([(2, 3)], [np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)])
    >>> job = checkpoint_job(folder, "epoch_0001.safetensors", model, [np.array([0.5, 0.25], np.float32)],
    ...                      config=TrainConfig(method="static"), dataset_name="toy", epoch=1, step=10)
    >>> with torch.no_grad():
    ...     _ = model.layers[0].weight.fill_(7.0)  # training goes on; the job holds a copy
    >>> net = load_checkpoint(job())
    >>> net.epoch, net.step, net.nnz, net["fc1"].stats["grad_mean"].tolist(), bool((net["fc1"].weight == 7).any())
    (1, 10, 3, [0.5, 0.25], False)
    >>> import shutil; shutil.rmtree(folder)
    """
    from topo.training.model import to_topology

    info = {"method": config.method, "dataset": dataset_name, "seed": config.seed}
    if metrics:
        info["metrics"] = {k: v for k, v in metrics.items() if k not in ("densities", "fan_in_cv")}
    if not weights:
        info["masks_only"] = True
    if hasattr(model, "kinds"):
        # a network of the sparse backend: CSR structure and values, never [out, in] for large layers
        from topo.training.backends import network_snapshot, network_topology

        snapshot, to_topology = network_snapshot(model), network_topology
    else:
        snapshot = _masked_snapshot(model, weights=weights)
    stats = [{"grad_mean": g} for g in grad_mean]
    path = run_dir / CHECKPOINT_DIR / name
    run_info = {"config": config.to_dict()}

    def write() -> Path:
        topology = to_topology(snapshot, stats=stats, info=info)
        if not weights:  # the sparse backend's snapshot carries its values: left out here
            topology = Topology([layer.with_(weight=None, bias=None) for layer in topology], info=topology.info)
        return save_checkpoint(topology, path, epoch=epoch, step=step, run_info=run_info)

    return write


def _masked_snapshot(model, *, weights: bool = True):
    """CPU copies of a MaskedMLP's masks, and of its weights and biases unless ``weights`` is False."""
    from types import SimpleNamespace

    return SimpleNamespace(
        names=list(model.names),
        layers=[
            SimpleNamespace(weight=layer.weight.detach().to("cpu", copy=True) if weights else None,
                            bias=layer.bias.detach().to("cpu", copy=True) if weights else None)
            for layer in model.layers
        ],
        masks=[mask.detach().to("cpu", copy=True) for mask in model.masks],
    )


def state_job(run_dir: Path, *, epoch: int, step: int, model, optimizer, algorithm) -> Callable[[], None]:
    """A copy of everything a resumed run needs now, and its write to ``state/last.pt``.

    Parameters
    ----------
    run_dir : pathlib.Path
    epoch, step : int
        How far the run has trained.
    model, optimizer, algorithm
        Anything with a ``state_dict()``.

    Returns
    -------
    callable
        ``job()`` writes ``run_dir / STATE_FILE`` atomically.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import torch
    >>> from topo.training.algorithms import get_algorithm
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> model = torch.nn.Linear(3, 2)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> job = state_job(folder, epoch=4, step=80, model=model, optimizer=optimizer, algorithm=get_algorithm("static"))
    >>> job()
    >>> state = load_state(folder / STATE_FILE)
    >>> state["epoch"], state["step"], sorted(state["model"])
    (4, 80, ['bias', 'weight'])
    >>> import shutil; shutil.rmtree(folder)
    """
    import torch

    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "epoch": int(epoch),
        "step": int(step),
        "model": copy_to_cpu(dict(model.state_dict())),
        "optimizer": copy_to_cpu(optimizer.state_dict()),
        "algorithm": copy_to_cpu(algorithm.state_dict()),
    }
    path = run_dir / STATE_FILE

    def write() -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    return write


def epoch_job(
    run_dir: Path, write_checkpoint: Callable[[], Any], record: Mapping[str, Any],
    write_state: Callable[[], None] | None,
) -> Callable[[], None]:
    """The writes of an epoch's files, in the order checkpoint, metrics line, state.

    A state on disk thus always has its epoch's checkpoint and metrics. ``write_state``
    is None for an epoch whose state is not written (``--state-every``).

    Parameters
    ----------
    run_dir : pathlib.Path
    write_checkpoint : callable
        The epoch's :func:`checkpoint_job`.
    record : mapping
        The epoch's metrics record (copied now), appended to ``metrics.jsonl``.
    write_state : callable or None
        The epoch's :func:`state_job`.

    Returns
    -------
    callable

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.checkpoint import read_metrics
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> order = []
    >>> job = epoch_job(folder, lambda: order.append("checkpoint"), {"epoch": 3, "val_acc": 0.5},
    ...                 lambda: order.append("state"))
    >>> job()
    >>> order, read_metrics(folder)
    (['checkpoint', 'state'], [{'epoch': 3, 'val_acc': 0.5}])
    >>> import shutil; shutil.rmtree(folder)
    """
    metrics_line = dict(record)

    def write() -> None:
        write_checkpoint()
        append_metrics(run_dir, metrics_line)
        if write_state is not None:
            write_state()

    return write


def copy_to_cpu(value):
    """A copy of a (nested) state on the CPU: tensors cloned, so later steps cannot change it.

    Parameters
    ----------
    value : tensor, numpy.ndarray, dict, list or other
        Dicts and lists are copied through; other values are returned as they are.

    Returns
    -------
    object

    Examples
    --------
    >>> import torch
    >>> state = {"weight": torch.ones(2), "moments": [np.zeros(2)], "step": 5}
    >>> copy = copy_to_cpu(state)
    >>> _ = state["weight"].add_(1.0)
    >>> copy["weight"].tolist(), state["weight"].tolist(), copy["step"]
    ([1.0, 1.0], [2.0, 2.0], 5)
    >>> copy["moments"][0] is state["moments"][0]
    False
    """
    if hasattr(value, "detach"):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: copy_to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_to_cpu(v) for v in value]
    return value


# -- checking and tidying a folder ----------------------------------------------------
def clean_temp_files(run_dir: Path) -> list[Path]:
    """Remove the temporaries that atomic writes killed mid-way left in a run folder.

    Call it only while holding the run's lock, so that no live writer owns them.

    Parameters
    ----------
    run_dir : pathlib.Path

    Returns
    -------
    list of pathlib.Path
        The files removed.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> run_tmp = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(run_tmp.name)
    >>> _ = (run / ".metrics.jsonl.k3j9x0ab.tmp").write_text("{")  # a killed write's leftover
    >>> _ = (run / "notes.txt").write_text("mine")
    >>> [path.name for path in clean_temp_files(run)], sorted(path.name for path in run.iterdir())
    (['.metrics.jsonl.k3j9x0ab.tmp'], ['notes.txt'])
    >>> import shutil; shutil.rmtree(run)
    """
    import re

    from topo.atomic import is_temp_file

    # only the temporaries of files that topo train writes (mkstemp adds 8 characters)
    patterns = {
        run_dir: re.compile(r"^\.(run\.json|metrics\.jsonl)\.[A-Za-z0-9_]{8}\.tmp$"),
        run_dir / CHECKPOINT_DIR: re.compile(r"^\.epoch_\d+(_step_\d+)?\.safetensors\.[A-Za-z0-9_]{8}\.tmp$"),
        run_dir / STATE_FILE.parent: re.compile(r"^\." + re.escape(STATE_FILE.name) + r"\.[A-Za-z0-9_]{8}\.tmp$"),
    }
    removed = []
    for folder, pattern in patterns.items():
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if is_temp_file(entry.name) and pattern.match(entry.name) and entry.is_file() and not entry.is_symlink():
                try:
                    entry.unlink()
                except FileNotFoundError:
                    continue
                removed.append(entry)
    return removed


def run_contents(run_dir: Path) -> list[Path]:
    """What a run folder holds, without the run lock (which does not make a folder a run).

    Parameters
    ----------
    run_dir : pathlib.Path

    Returns
    -------
    list of pathlib.Path
        Empty for a missing folder.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> sorted(path.name for path in run_contents(run))  # the lock file, .topo.lock, is left out
    ['checkpoints', 'metrics.jsonl', 'run.json', 'state']
    >>> run_contents(folder / "nothing")
    []
    >>> import shutil; shutil.rmtree(folder)
    """
    from topo.runlock import is_lock_file

    if not run_dir.is_dir():
        return []
    return [entry for entry in run_dir.iterdir() if not is_lock_file(entry.name)]


class RunFolderTaken(TopoError):
    """A new run was to be written into a folder that already holds one.

    The fix is to resume that run or to train into another folder; a command line
    names its own ways of doing either.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> run_tmp = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(run_tmp.name)
    >>> _ = (run / "metrics.jsonl").write_text("")
    >>> try:
    ...     check_fresh(run)
    ... except RunFolderTaken as exc:
    ...     print(isinstance(exc, TopoError), str(exc).endswith("resume it or choose another run folder"))
    True True
    >>> import shutil; shutil.rmtree(run)
    """


def check_fresh(run_dir: Path) -> None:
    """Refuse to train into a folder that holds anything (besides the lock and dead temporaries).

    Raises
    ------
    TopoError
        If ``run_dir`` is a file; :class:`RunFolderTaken` if it is a folder with contents.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> check_fresh(folder / "new")  # missing or empty: fine
    >>> check_fresh(run)
    Traceback (most recent call last):
    ...
    topo.training.run_folder.RunFolderTaken: ...run: the run folder already exists and is not empty; ...
    >>> import shutil; shutil.rmtree(folder)
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise TopoError("expected a run folder, found a file", path=run_dir)
    clean_temp_files(run_dir)
    if not run_contents(run_dir):
        return
    if (run_dir / RUN_CONFIG).is_file() and not (run_dir / STATE_FILE).is_file():
        raise RunFolderTaken(
            "the folder holds a run stopped before its first epoch ended; resume it (it restarts from "
            "the beginning) or choose another run folder",
            path=run_dir,
        )
    raise RunFolderTaken(
        "the run folder already exists and is not empty; resume it or choose another run folder",
        path=run_dir,
    )


def _is_count(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_run_meta(meta: Mapping[str, Any], run_dir: Path) -> tuple[dict[str, Any], TrainConfig]:
    """Validate a run's ``run.json`` for resuming; every problem is one line naming the file.

    Returns
    -------
    (dict, TrainConfig)
        The run's description and its (validated) training configuration.

    Raises
    ------
    TopoError
        If the folder is not a run written by ``topo train`` or its ``run.json`` is invalid.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> from topo.checkpoint import read_run_config
    >>> meta, stored = check_run_meta(read_run_config(run), run)
    >>> stored == config, meta["network"]["shapes"]
    (True, [[4, 64], [10, 4]])
    >>> check_run_meta({"kind": "topo-train-run", "config": {"lr": -1.0}, "network": {"shapes": [[4, 64]]}}, run)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...run.json: 'config' is not a valid training configuration: ...
    >>> import shutil; shutil.rmtree(folder)
    """
    where = run_dir / RUN_CONFIG
    if not meta:
        if not run_contents(run_dir):
            raise TopoError(
                f"not a run written by topo train: the folder is empty (a run stopped before it began?); "
                "train into it to start one",
                path=run_dir,
            )
        raise TopoError("not a run written by topo train (no run.json)", path=run_dir)
    if meta.get("kind") != RUN_KIND or "config" not in meta:
        raise TopoError("not a run written by topo train (run.json has no training configuration)", path=run_dir)
    if not isinstance(meta["config"], dict):
        raise TopoError("'config' is not a JSON object", path=where)
    try:
        config = TrainConfig.from_dict(meta["config"])
        config.validate()
    except TopoError as exc:
        raise TopoError(f"'config' is not a valid training configuration: {exc}", path=where) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TopoError(f"'config' is not a valid training configuration ({first_line(exc)})", path=where) from None
    network = meta.get("network")
    shapes = network.get("shapes") if isinstance(network, dict) else None
    if not (
        isinstance(shapes, list)
        and shapes
        and all(isinstance(s, list) and len(s) == 2 and all(_is_count(n, 1) for n in s) for s in shapes)
    ):
        raise TopoError("'network.shapes' is not a list of [out, in] layer sizes", path=where)
    for key in ("total_steps", "total_epochs", "steps_per_epoch"):
        if key in meta and not _is_count(meta[key]):
            raise TopoError(f"{key!r} is not a non-negative integer ({meta[key]!r:.40})", path=where)
    return dict(meta), config


def load_state(state_path: Path) -> dict[str, Any]:
    """``state/last.pt`` read with ``weights_only=True`` and checked; problems are one line.

    Raises
    ------
    TopoError
        If the file is unreadable, holds objects topo does not load, or is not a
        (valid, not newer) topo training state.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> state = load_state(run / STATE_FILE)
    >>> state["format"], state["epoch"], sorted(state)
    ('topo-train-state', 2, ['algorithm', 'epoch', 'format', 'model', 'optimizer', 'step', 'version'])
    >>> import torch
    >>> torch.save({"epoch": 1}, folder / "other.pt")
    >>> load_state(folder / "other.pt")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...other.pt: not a topo training state file
    >>> import shutil; shutil.rmtree(folder)
    """
    import torch

    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        import pickle
        import re

        text = str(exc)
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if refused or isinstance(exc, pickle.UnpicklingError):
            what = f" ({refused.group(1)})" if refused else ""
            raise TopoError(
                f"training state holds objects that topo does not load{what}; it was not written by "
                "topo train, or it was changed since: refusing to unpickle it",
                path=state_path,
            ) from None
        raise TopoError(f"training state is unreadable ({first_line(exc)})", path=state_path) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TopoError("not a topo training state file", path=state_path)
    version = state.get("version", 0)
    if not _is_count(version):
        raise TopoError("training state has no valid version", path=state_path)
    if version > STATE_VERSION:
        raise TopoError("training state was written by a newer topo; upgrade topo", path=state_path)
    for key in ("epoch", "step"):
        if not _is_count(state.get(key)):
            raise TopoError(f"training state's {key!r} is not a non-negative integer", path=state_path)
    for key in ("model", "optimizer", "algorithm"):
        if not isinstance(state.get(key), dict):
            raise TopoError(f"training state has no {key!r} entry", path=state_path)
    return state


def has_trained_epochs(run_dir: Path) -> bool:
    """Whether a run folder holds the results of any training epoch (epoch 1 or later).

    Parameters
    ----------
    run_dir : pathlib.Path

    Returns
    -------
    bool
        True also when ``metrics.jsonl`` is unreadable (nothing is thrown away then).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> has_trained_epochs(run)
    True
    >>> drop_epochs_after(run, 0)  # only the untrained network left
    >>> has_trained_epochs(run)
    False
    >>> import shutil; shutil.rmtree(folder)
    """
    checkpoints = run_dir / CHECKPOINT_DIR
    if checkpoints.is_dir():
        for entry in checkpoints.iterdir():
            parsed = parse_checkpoint_name(entry.name)
            if parsed is not None and parsed[0] >= 1:
                return True
    try:
        records = read_metrics(run_dir)
    except TopoError:
        return True  # unreadable metrics: do not throw away what may be there
    return any(int(r.get("epoch") or 0) >= 1 for r in records)


def empty_run_folder(run_dir: Path) -> None:
    """Remove what a run wrote (all but the run lock, which the caller holds).

    Parameters
    ----------
    run_dir : pathlib.Path

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> empty_run_folder(run)
    >>> run_contents(run), [path.name for path in run.iterdir()]
    ([], ['.topo.lock'])
    >>> import shutil; shutil.rmtree(folder)
    """
    import shutil

    for entry in run_contents(run_dir):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def drop_epochs_after(run_dir: Path, epoch: int) -> None:
    """Remove the checkpoints and metrics of epochs after ``epoch`` (what an interrupted epoch left).

    Parameters
    ----------
    run_dir : pathlib.Path
    epoch : int
        The last epoch to keep.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.trainer import train
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(4,), epochs=2, method="static", sparsity=0.5, device="cpu", threads=1)
    >>> run = train(config, run_dir=folder / "run").run_dir
    >>> drop_epochs_after(run, 1)
    >>> from topo.checkpoint import read_metrics
    >>> [path.name for path in list_checkpoints(run)], [record["epoch"] for record in read_metrics(run)]
    (['epoch_0000.safetensors', 'epoch_0001.safetensors'], [0, 1])
    >>> import shutil; shutil.rmtree(folder)
    """
    for path in list_checkpoints(run_dir):
        parsed = parse_checkpoint_name(path.name)
        if parsed is None:
            continue
        # epoch_E (end of E) and epoch_E_step_S (inside E) both belong to epoch E
        if parsed[0] > epoch:
            path.unlink()
    write_metrics(run_dir, [r for r in read_metrics(run_dir) if int(r.get("epoch", -1)) <= epoch])


def holds_same_run(meta: Mapping[str, Any], config: TrainConfig) -> bool:
    """Whether ``run.json``'s configuration is ``config`` (see :func:`topo.training.config.config_identity`).

    Parameters
    ----------
    meta : mapping
        A ``run.json``'s content.
    config : TrainConfig

    Returns
    -------
    bool
        False also when the stored configuration cannot be read.

    Examples
    --------
    >>> meta = {"config": TrainConfig(seed=3, threads=1).to_dict()}
    >>> holds_same_run(meta, TrainConfig(seed=3, threads=4, out="elsewhere"))  # where and how do not count
    True
    >>> holds_same_run(meta, TrainConfig(seed=4)), holds_same_run({"config": {"lr": "fast"}}, TrainConfig())
    (False, False)
    """
    try:
        stored = TrainConfig.from_dict(meta["config"])
    except (TopoError, TypeError, ValueError):
        return False
    return config_identity(stored) == config_identity(config)

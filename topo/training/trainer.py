"""Training runs: masked MLP + algorithm + data -> a run folder of checkpoints and metrics.

The entry points: :func:`train` (a new run), :func:`iter_train` (one epoch per
``next()``), :func:`resume` (continue an interrupted run from its last complete epoch)
and :func:`train_or_resume` (do only what is left of a run). Each holds the run's lock
(:mod:`topo.runlock`) while it writes, and puts together three modules with one purpose
each: :mod:`topo.training.init` (device, determinism, data, initial masks),
:mod:`topo.training.loop` (the steps and epochs) and :mod:`topo.training.run_folder`
(the run folder's files: ``run.json``, ``metrics.jsonl``, checkpoints and
``state/last.pt``, written on a background thread, and the checks before a folder is
trained into or resumed).

Every checkpoint carries ``stats["grad_mean"]`` per output neuron: the mean over the
epoch's steps of the mean ``|dL/dW|`` over the neuron's incoming weights, using the
dense gradient (all positions). For ``epoch_0000`` it is the same mean over the first
``grad_batches`` training batches (in data-set order) of the untrained network,
computed without updating anything.

Determinism: an epoch's randomness comes from generators seeded by ``(seed, epoch)``
alone, the learning rate is a function of the global step, and torch is set to
deterministic algorithms with a fixed number of threads. A run interrupted and resumed
from its last complete epoch therefore ends with the same masks, weights and metrics
(timing fields aside) as an uninterrupted one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from topo.checkpoint import append_metrics, checkpoint_name, list_checkpoints, read_metrics, read_run_config
from topo.errors import TopoError, first_line
from topo.progress import ProgressCallback
from topo.training.config import TrainConfig
from topo.training.init import (
    checkpoint_initial_masks,
    equilibrium_profile_per_layer,
    library_versions,
    load_training_data,
    resolve_device,
    set_determinism,
    starting_masks,
)
from topo.training.loop import TIMING_FIELDS, TrainingLoop, learning_rate
from topo.training.run_folder import (
    STATE_FILE,
    check_fresh,
    check_run_meta,
    clean_temp_files,
    default_run_dir,
    drop_epochs_after,
    empty_run_folder,
    has_trained_epochs,
    holds_same_run,
    load_state,
    run_contents,
    write_new_run_config,
)

__all__ = [
    "TrainResult",
    "train",
    "iter_train",
    "resume",
    "train_or_resume",
    "RUN_STATUSES",
    "default_run_dir",
    "learning_rate",
    "equilibrium_profile_per_layer",
    "checkpoint_initial_masks",
    "STATE_FILE",
    "TIMING_FIELDS",
]

#: what :func:`train_or_resume` did
RUN_STATUSES = ("trained", "resumed", "reused")


@dataclass
class TrainResult:
    """What a finished (or resumed) training run produced.

    Attributes
    ----------
    run_dir : Path
    config : TrainConfig
    epochs_done : int
        Last complete epoch.
    metrics : list of dict
        All records of ``metrics.jsonl`` (epoch 0 included).
    checkpoints : list of Path
        The run's checkpoints in training order.
    resumed_from : int or None
        The epoch a resumed run continued from.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(8,), epochs=1, method="static", device="cpu", threads=1)
    >>> result = train(config, run_dir=folder / "run")
    >>> result.epochs_done, [record["epoch"] for record in result.metrics], result.resumed_from
    (1, [0, 1], None)
    >>> [path.name for path in result.checkpoints]
    ['epoch_0000.safetensors', 'epoch_0001.safetensors']
    >>> import shutil; shutil.rmtree(folder)
    """

    run_dir: Path
    config: TrainConfig
    epochs_done: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: int | None = None


def iter_train(
    config: TrainConfig,
    *,
    run_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    on_step: Callable[[int, int], None] | None = None,
    dataset=None,
) -> Iterator[dict[str, Any]]:
    """Train as :func:`train` does, one epoch per ``next()``: yields each epoch's record.

    The first record is epoch 0 (the untrained network, written when it is yielded);
    every further ``next()`` trains one epoch, writes its checkpoint, metrics and
    state, and yields its record. Useful to interleave runs (benchmarks) or to stop
    early. Parameters as for :func:`train`.

    Returns
    -------
    iterator of dict
        The metrics records of epochs 0, 1, ...; the run's lock is held until the
        iterator is exhausted or closed.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(8,), epochs=3, method="set", device="cpu", threads=1)
    >>> for record in iter_train(config, run_dir=folder / "run"):
    ...     print(record["epoch"], record["nnz"])
    ...     if record["epoch"] == 2:
    ...         break  # stop early: epochs 0 to 2 are written, and can be resumed
    0 59
    1 59
    2 59
    >>> from topo.checkpoint import list_checkpoints
    >>> [path.name for path in list_checkpoints(folder / "run")]
    ['epoch_0000.safetensors', 'epoch_0001.safetensors', 'epoch_0002.safetensors']
    >>> import shutil; shutil.rmtree(folder)
    """
    return _iter_train(config, run_dir=run_dir, progress=progress, on_step=on_step, dataset=dataset,
                       defer_writes=False)


def _iter_train(config: TrainConfig, *, run_dir, progress, on_step, dataset, defer_writes: bool):
    """:func:`iter_train`; with ``defer_writes`` an epoch's files are written while the next trains.

    They are complete when the next epoch's are handed over and when the generator ends
    or is closed (before the run's lock is released).
    """
    from topo.runlock import run_lock

    config.validate()
    run_dir = Path(run_dir if run_dir is not None else (config.out or default_run_dir(config)))
    if run_dir.exists() and not run_dir.is_dir():
        raise TopoError("expected a run folder, found a file", path=run_dir)
    # one writer per run: the lock is held until the last epoch is written (or the
    # generator is closed), and the folder is checked only once it is held
    with run_lock(run_dir, purpose="train"):
        check_fresh(run_dir)
        yield from _train_epochs(config, run_dir, progress=progress, on_step=on_step, dataset=dataset,
                                 defer_writes=defer_writes)


def _train_epochs(
    config: TrainConfig, run_dir: Path, *, progress, on_step, dataset, defer_writes: bool = False
) -> Iterator[dict[str, Any]]:
    """The body of :func:`iter_train`, run while the run's lock is held."""
    from topo.training.model import layer_names, layer_shapes

    device = resolve_device(config.device)
    threads = set_determinism(config, device)
    data = dataset if dataset is not None else load_training_data(config)
    shapes = layer_shapes(data.n_features, config.hidden, data.n_classes)
    names = layer_names(len(shapes))
    starting = starting_masks(config, shapes, names)
    init = starting.initial
    run = TrainingLoop(config, run_dir, data, device, progress, None, on_step)
    run.build(init.masks)
    run.algorithm.setup(
        masks=init.masks, steps_per_epoch=run.steps_per_epoch, epochs=config.epochs, total_steps=run.total_steps
    )
    write_new_run_config(
        run_dir,
        config,
        data,
        names=names,
        shapes=shapes,
        algorithm=run.algorithm.describe(),
        starting=starting,
        versions=library_versions(),
        device=device,
        threads=threads,
        steps_per_epoch=run.steps_per_epoch,
        total_epochs=run.total_epochs,
        total_steps=run.total_steps,
        backends=run.steps.kinds(),
    )
    started = time.perf_counter()
    grad_mean = run.initial_grad_mean()
    record = run.record(0, run.initial_loss, None, 0.0, {"mask_updates": 0})
    record["epoch_time"] = time.perf_counter() - started
    run.save(checkpoint_name(0), grad_mean, epoch=0, step=0, metrics=record)
    append_metrics(run_dir, record)
    run.save_state()
    yield record
    run.defer_writes = defer_writes
    try:
        for epoch in range(1, run.total_epochs + 1):
            yield run.run_epoch(epoch)
    finally:
        run.writer.join()


def train(
    config: TrainConfig,
    *,
    run_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    dataset=None,
) -> TrainResult:
    """Train a masked MLP as ``config`` says and write a run folder.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path-like, optional
        Where the run goes; default ``config.out``, else :func:`default_run_dir`. It
        must not exist yet or be empty.
    progress : callable, optional
        ``progress(steps_done, total_steps)`` after every step.
    on_epoch : callable, optional
        ``on_epoch(record)`` after every epoch with its metrics record (also called
        with the epoch-0 record of the untrained network).
    on_step : callable, optional
        ``on_step(epoch, global_step)`` after every step (for tests and tools).
    dataset : Dataset, optional
        Use this data instead of loading ``config.dataset``.

    Returns
    -------
    TrainResult

    Raises
    ------
    TopoError
        For a bad option, missing data, an existing run folder, or a loss that became
        NaN or infinite (the checkpoints written so far are kept).

    Examples
    --------
    A 64-8-10 network on the bundled digits, 90% sparse, one epoch of SET:

    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(8,), epochs=1, method="set", sparsity=0.9, device="cpu", threads=1)
    >>> epochs = []
    >>> result = train(config, run_dir=folder / "run", on_epoch=lambda record: epochs.append(record["epoch"]))
    >>> result.epochs_done, epochs, round(result.metrics[-1]["density"], 3)
    (1, [0, 1], 0.1)
    >>> sorted(path.name for path in result.run_dir.iterdir() if not path.name.startswith("."))
    ['checkpoints', 'metrics.jsonl', 'run.json', 'state']
    >>> train(config, run_dir=folder / "run")  # a folder is trained into once
    Traceback (most recent call last):
    ...
    topo.training.run_folder.RunFolderTaken: ...run: the run folder already exists and is not empty; ...
    >>> import shutil; shutil.rmtree(folder)
    """
    run_dir = Path(run_dir if run_dir is not None else (config.out or default_run_dir(config)))
    epochs_done = 0
    # an epoch's files are written while the next epoch trains (all of them before train returns)
    for record in _iter_train(config, run_dir=run_dir, progress=progress, on_step=on_step, dataset=dataset,
                              defer_writes=True):
        epochs_done = int(record["epoch"])
        if on_epoch is not None:
            on_epoch(record)
    return TrainResult(run_dir, config, epochs_done, read_metrics(run_dir), list_checkpoints(run_dir))


def resume(
    run_dir: str | os.PathLike,
    *,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    dataset=None,
) -> TrainResult:
    """Continue a run from its last complete epoch.

    Checkpoints and metrics of later (incomplete) epochs are removed, the model,
    optimiser and algorithm state are restored from ``RUN/state/last.pt``, and the
    remaining epochs run with the run's own configuration. A finished run is left as
    it is. A run stopped before its first epoch ended (no ``state/last.pt`` and no
    trained epoch) starts again from the beginning with its own configuration
    (``resumed_from`` is then None).

    The run's lock (:mod:`topo.runlock`) is held throughout, so a second writer is
    refused; temporary files of atomic writes that a killed process left are removed.

    Parameters
    ----------
    run_dir : path-like
        A run folder written by :func:`train`.
    progress, on_epoch, on_step : callable, optional
        As for :func:`train`.
    device : str, optional
        Override the device (``cpu``, ``cuda``, ``auto``).
    data_dir : path-like, optional
        Override where the data set is read from.
    dataset : Dataset, optional
        Use this data instead of loading it.

    Raises
    ------
    TopoError
        If the folder is not a topo training run, its ``run.json`` is invalid, it has
        trained epochs but no state, or its state is unreadable or unsafe.
    RunLockedError
        If another process is writing the run (a TopoError naming that process).

    Examples
    --------
    A run stopped after its first epoch ends as the uninterrupted run does:

    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(8,), epochs=3, method="rigl", update_every=5, device="cpu", threads=1)
    >>> epochs = iter_train(config, run_dir=folder / "stopped")
    >>> [next(epochs)["epoch"], next(epochs)["epoch"]]
    [0, 1]
    >>> epochs.close()  # interrupted: epochs 0 and 1 are on disk
    >>> resumed = resume(folder / "stopped")
    >>> resumed.resumed_from, resumed.epochs_done
    (1, 3)
    >>> whole = train(config, run_dir=folder / "whole")
    >>> [r["val_loss"] for r in resumed.metrics] == [r["val_loss"] for r in whole.metrics]
    True
    >>> import shutil; shutil.rmtree(folder)
    """
    from topo.runlock import run_lock

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TopoError("no such run folder", path=run_dir)
    with run_lock(run_dir, purpose="resume"):
        return _resume_locked(
            run_dir, progress=progress, on_epoch=on_epoch, on_step=on_step, device=device, data_dir=data_dir,
            dataset=dataset,
        )


def _resume_locked(run_dir: Path, *, progress, on_epoch, on_step, device, data_dir, dataset) -> TrainResult:
    """The body of :func:`resume`, run while the run's lock is held."""
    clean_temp_files(run_dir)
    meta, config = check_run_meta(read_run_config(run_dir), run_dir)
    if device is not None:
        config.device = device
    if data_dir is not None:
        config.data_dir = str(data_dir)
    config.validate()
    state_path = run_dir / STATE_FILE
    if not state_path.is_file():
        if has_trained_epochs(run_dir):
            raise TopoError(
                "the run has trained epochs but no saved training state (state/last.pt); it cannot be resumed",
                path=run_dir,
            )
        # stopped before its first epoch ended: nothing to continue from, so start again
        empty_run_folder(run_dir)
        return train(config, run_dir=run_dir, progress=progress, on_epoch=on_epoch, on_step=on_step, dataset=dataset)
    state = load_state(state_path)
    epoch = state["epoch"]

    # drop what the interrupted epoch left behind
    drop_epochs_after(run_dir, epoch)

    resolved = resolve_device(config.device)
    set_determinism(config, resolved)
    data = dataset if dataset is not None else load_training_data(config)
    run = TrainingLoop(config, run_dir, data, resolved, progress, on_epoch, on_step)
    shapes = [tuple(s) for s in meta["network"]["shapes"]]
    from topo.training.model import layer_shapes

    if [tuple(s) for s in layer_shapes(data.n_features, config.hidden, data.n_classes)] != shapes:
        raise TopoError(
            "run.json's network shapes do not match its configuration and data set; cannot resume", path=run_dir
        )
    run.build(None, saved_model=state["model"])
    try:
        run.load_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TopoError(
            f"training state does not fit the run's network ({first_line(exc)})", path=state_path
        ) from None
    if run.total_steps != int(meta.get("total_steps", run.total_steps)):
        raise TopoError("the data set's size differs from the run's; cannot resume with other data", path=run_dir)
    run.loop()
    return TrainResult(run_dir, config, run.epoch, read_metrics(run_dir), list_checkpoints(run_dir), resumed_from=epoch)


def train_or_resume(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    dataset=None,
    data_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    replace_other: bool = False,
) -> tuple[TrainResult, str]:
    """Bring the run of ``config`` in ``run_dir`` to its end, doing only what is left.

    - a missing or empty folder: train (status ``"trained"``);
    - a run of the same configuration whose metrics reached ``config.total_epochs``:
      nothing is trained, the result is read from the folder (``"reused"``);
    - a run of the same configuration with training state (``state/last.pt``) but
      unfinished: :func:`resume` it (``"resumed"``);
    - a topo run folder without training state (the run crashed before its first
      epoch ended): delete it and train (``"trained"``).

    "The same configuration" compares every field but those that say where or how a
    run trains (:data:`topo.training.config.IDENTITY_EXCLUDED`: ``out``,
    ``data_dir``, ``threads``, ``device``).

    Parameters
    ----------
    config : TrainConfig
    run_dir : path-like
        The run's folder.
    dataset : Dataset, optional
        Use this data instead of loading ``config.dataset``.
    data_dir : path-like, optional
        Where the data set is read from (overrides ``config.data_dir``).
    progress, on_epoch : callable, optional
        As for :func:`train`; not called for a reused run.
    replace_other : bool
        Delete a topo run folder that holds another configuration and train this one
        in its place (for scratch folders); by default that is an error.

    Returns
    -------
    (TrainResult, str)
        The run and what was done: ``"trained"``, ``"resumed"`` or ``"reused"``.

    Raises
    ------
    TopoError
        If ``run_dir`` is a file, a non-empty folder that is not a topo run, or a run
        of another configuration (unless ``replace_other``); and as :func:`train`
        and :func:`resume` raise.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> config = TrainConfig(hidden=(8,), epochs=1, method="static", device="cpu", threads=1)
    >>> result, status = train_or_resume(config, folder / "run")
    >>> status, result.epochs_done
    ('trained', 1)
    >>> train_or_resume(config, folder / "run", data_dir=folder)[1]  # finished: where data is read does not matter
    'reused'
    >>> train_or_resume(TrainConfig(hidden=(8,), epochs=2, method="static", device="cpu", threads=1), folder / "run")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...run: the run folder holds a run of another configuration; move it away to rerun this one
    >>> import shutil; shutil.rmtree(folder)
    """
    from dataclasses import replace

    from topo.runlock import run_lock

    run_dir = Path(run_dir)
    if data_dir is not None:
        config = replace(config, data_dir=str(data_dir))
    if run_dir.exists() and not run_dir.is_dir():
        raise TopoError("expected a run folder, found a file", path=run_dir)
    # the decision and what follows happen under the run's lock: no second writer between them
    with run_lock(run_dir, purpose="train"):
        return _train_or_resume_locked(
            config, run_dir, dataset=dataset, progress=progress, on_epoch=on_epoch, replace_other=replace_other
        )


def _train_or_resume_locked(
    config: TrainConfig, run_dir: Path, *, dataset, progress, on_epoch, replace_other: bool
) -> tuple[TrainResult, str]:
    """The body of :func:`train_or_resume`, run while the run's lock is held."""
    from topo.checkpoint import is_run_folder

    clean_temp_files(run_dir)
    if run_contents(run_dir):
        if not is_run_folder(run_dir):
            raise TopoError("the folder is not empty and not a topo run folder; choose another folder", path=run_dir)
        meta = read_run_config(run_dir)
        if meta and "config" in meta and not holds_same_run(meta, config):
            if not replace_other:
                raise TopoError(
                    "the run folder holds a run of another configuration; move it away to rerun this one",
                    path=run_dir,
                )
            empty_run_folder(run_dir)
        elif not meta or not (run_dir / STATE_FILE).is_file():
            empty_run_folder(run_dir)  # died before its first state was saved: nothing to resume
        else:
            metrics = read_metrics(run_dir)
            done = max((int(r.get("epoch", -1)) for r in metrics), default=-1)
            if done >= config.total_epochs:
                return TrainResult(run_dir, config, done, metrics, list_checkpoints(run_dir)), "reused"
            result = resume(
                run_dir,
                progress=progress,
                on_epoch=on_epoch,
                device=config.device,
                data_dir=config.data_dir,
                dataset=dataset,
            )
            return result, "resumed"
    result = train(config, run_dir=run_dir, progress=progress, on_epoch=on_epoch, dataset=dataset)
    return result, "trained"

"""Training runs: masked MLP + algorithm + data -> a run folder of checkpoints and metrics.

A run folder (see :mod:`topo.checkpoint`) holds ``run.json`` (the whole configuration,
the data set, versions, device, the initial masks' achieved fan-in CVs),
``metrics.jsonl`` (one record per epoch, epoch 0 being the untrained network),
``checkpoints/epoch_NNNN.safetensors`` (``epoch_0000`` holds the initial masks before
any training; ``--checkpoint-every`` adds ``epoch_E_step_S`` inside epochs) and
``state/last.pt``, everything :func:`resume` needs (model, optimiser, algorithm, the
epoch and step), written atomically after every epoch and read back with
``torch.load(weights_only=True)``.

Files are written on one background thread: at the end of an epoch the loop copies the
tensors (weights, biases, masks, optimiser and algorithm state) and goes on training
while the copies are turned into the checkpoint, the metrics line and the state, in
that order. The next write, the end of the run, an error and :func:`iter_train`'s
yield wait for the write in flight, and its errors are raised in the training loop.

Every checkpoint carries ``stats["grad_mean"]`` per output neuron: the mean over the
epoch's steps of the mean ``|dL/dW|`` over the neuron's incoming weights, using the
dense gradient (all positions). For ``epoch_0000`` it is the same mean over the first
``grad_batches`` training batches (in data-set order) of the untrained network,
computed without updating anything.

Determinism: an epoch's randomness (the shuffling and the algorithm's tie-breaks and
random growth) comes from torch generators seeded by ``(seed, epoch)`` alone, the
learning rate is a function of the global step, and torch is set to deterministic
algorithms with a fixed number of threads. A run interrupted and resumed from its
last complete epoch therefore ends with the same masks, weights and metrics (timing
fields aside) as an uninterrupted one.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from topo.checkpoint import (
    CHECKPOINT_DIR,
    append_metrics,
    atomic_write_bytes,
    checkpoint_name,
    list_checkpoints,
    parse_checkpoint_name,
    read_metrics,
    read_run_config,
    save_checkpoint,
    write_metrics,
    write_run_config,
)
from topo.errors import TopoError
from topo.training.config import TrainConfig, config_identity
from topo.training.priors import is_prior_spec

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

STATE_FILE = Path("state") / "last.pt"
STATE_FORMAT = "topo-train-state"
STATE_VERSION = 1
#: metrics fields that measure time, and so differ between otherwise identical runs
TIMING_FIELDS = ("epoch_time", "elapsed", "time", "checkpoint_time")

ProgressCallback = Callable[[int, int], None]
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
    """

    run_dir: Path
    config: TrainConfig
    epochs_done: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: int | None = None


# -- small pieces -------------------------------------------------------------------
def default_run_dir(config: TrainConfig, *, root: str | os.PathLike = "runs") -> Path:
    """``runs/<dataset>-<method>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dataset = Path(str(config.dataset)).stem if ("/" in str(config.dataset) or os.sep in str(config.dataset)) else config.dataset
    return Path(root) / f"{dataset}-{config.method}-{stamp}"


def learning_rate(config: TrainConfig, step_index: int, total_steps: int) -> float:
    """The learning rate of 0-based step ``step_index`` of ``total_steps``.

    ``constant``: ``lr``; ``cosine``: ``lr (1 + cos(π i / total)) / 2``; ``step``:
    ``lr`` times 0.1 after half and again after three quarters of the steps.
    """
    base = float(config.lr)
    if total_steps <= 0 or config.schedule == "constant":
        return base
    progress = step_index / total_steps
    if config.schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return base * (0.1 ** (int(progress >= 0.5) + int(progress >= 0.75)))
    raise TopoError(f"unknown --schedule {config.schedule!r}")


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _generator(*parts: int):
    import torch

    return torch.Generator().manual_seed(_seed(*parts))


# purposes of per-epoch generators
_SHUFFLE, _ALGORITHM = 1, 2


def equilibrium_profile_per_layer(init: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """``profile_per_layer`` for ``--init equilibrium:RUN_OR_FILE``: lognormal, the profile's CVs.

    Raises
    ------
    TopoError
        If the profile cannot be read or names none of the network's layers.
    """
    spec = str(init)
    if not spec.startswith("equilibrium:") or not spec[len("equilibrium:"):]:
        raise TopoError(f"--init: expected equilibrium:RUN_OR_FILE, got {spec!r}")
    try:
        from topo.analysis.drift import read_profile
    except ImportError:  # pragma: no cover - the drift module ships with topo
        raise TopoError("--init equilibrium needs topo.analysis.drift.read_profile, which this topo lacks") from None
    profile = read_profile(spec[len("equilibrium:"):])
    per_layer = {}
    for name in names:
        entry = profile.get(name)
        if entry is None:
            continue
        cv = float(entry["cv"])
        if not math.isfinite(cv):
            continue
        per_layer[name] = {"profile": "lognormal", "cv": cv}
    if not per_layer:
        raise TopoError(
            f"--init: the profile names none of this network's layers ({', '.join(names)}); it has {', '.join(profile) or 'none'}"
        )
    return per_layer


def checkpoint_initial_masks(init: str, shapes: Sequence[tuple[int, int]], names: Sequence[str]):
    """Initial masks for ``--init masks:CHECKPOINT``: the masks of a saved network.

    The checkpoint is read with :func:`topo.formats.load` (masks only), so it may be a
    topo checkpoint, a run folder (its last checkpoint) or a foreign checkpoint topo
    reads. Its layers are taken in order and must have the network's shapes.

    Parameters
    ----------
    init : str
        ``"masks:PATH"``.
    shapes : sequence of (int, int)
        ``(out, in)`` of the network's layers.
    names : sequence of str
        The network's layer names (for messages).

    Returns
    -------
    InitialMasks
        The checkpoint's masks (bool ``[out, in]``), their fan-in CVs and sizes.

    Raises
    ------
    TopoError
        If ``init`` names no path, the checkpoint cannot be read, or its layer count
        or a layer's shape differs from the network's.
    """
    from topo.analysis.degree import coefficient_of_variation
    from topo.formats import load
    from topo.training.masks import InitialMasks

    spec = str(init)
    path = spec[len("masks:"):]
    if not spec.startswith("masks:") or not path:
        raise TopoError(f"--init: expected masks:CHECKPOINT, got {spec!r}")
    topology = load(path, weights=False)
    if len(topology) != len(shapes):
        raise TopoError(
            f"--init masks: the checkpoint has {len(topology)} layers, the network {len(shapes)}", path=path
        )
    masks: list[np.ndarray] = []
    for layer, shape, name in zip(topology, shapes, names):
        if tuple(layer.shape) != tuple(shape):
            raise TopoError(
                f"--init masks: layer {layer.name} is {layer.shape[0]}x{layer.shape[1]} ([out, in]), "
                f"the network's {name} is {shape[0]}x{shape[1]}",
                path=path,
            )
        masks.append(layer.mask.toarray().astype(bool))
    achieved = [coefficient_of_variation(m.sum(axis=1)) if m.any() else float("nan") for m in masks]
    return InitialMasks(masks=masks, achieved_cv=achieved, budgets=[int(m.sum()) for m in masks])


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TopoError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return name


def _set_determinism(config: TrainConfig, device: str) -> int:
    import torch

    threads = int(config.threads) if config.threads else min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    if device == "cuda":
        # cuBLAS is deterministic only with a fixed workspace. On the CPU every op the
        # trainer uses is deterministic already, and the switch costs seconds of imports.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return threads


def _versions() -> dict[str, str]:
    import torch

    from topo._version import __version__

    return {"topo": __version__, "torch": torch.__version__, "numpy": np.__version__}


# -- the run ------------------------------------------------------------------------
class _BackgroundWriter:
    """Writes a run's files on one background thread, one batch of writes at a time.

    The training loop hands over a job whose tensors it has already copied, so that the
    next steps can change the model while the files are written; a new job, and
    :meth:`join`, first wait for the one before, and an error raised by a job is raised
    again in the training thread at that point. Every file is still written atomically.
    """

    def __init__(self) -> None:
        self._thread = None
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
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


class _Run:
    """The state of one training run, shared by :func:`train` and :func:`resume`."""

    def __init__(self, config: TrainConfig, run_dir: Path, dataset, device: str, progress, on_epoch, on_step):
        import torch

        self.torch = torch
        self.config = config
        self.run_dir = run_dir
        self.device = device
        self.progress = progress
        self.on_epoch = on_epoch
        self.on_step = on_step
        self.data = dataset
        self.X_train = torch.as_tensor(dataset.X_train, dtype=torch.float32, device=device)
        self.y_train = torch.as_tensor(dataset.y_train, dtype=torch.int64, device=device)
        self.n_train = int(self.X_train.shape[0])
        if self.n_train == 0:
            raise TopoError(f"data set {dataset.name!r} has no training examples")
        self.steps_per_epoch = math.ceil(self.n_train / int(config.batch_size))
        self.total_epochs = config.total_epochs
        self.total_steps = self.steps_per_epoch * self.total_epochs
        self.step = 0
        self.epoch = 0
        self._init_loss: float | None = None
        self.writer = _BackgroundWriter()
        #: whether run_epoch returns before its files are written (they are, by the next write or join)
        self.defer_writes = False

    # -- building -------------------------------------------------------------------
    def build(self, masks) -> None:
        from topo.training.algorithms import get_algorithm
        from topo.training.model import build_model, layer_shapes

        config = self.config
        self.shapes = layer_shapes(self.data.n_features, config.hidden, self.data.n_classes)
        self.model = build_model(self.shapes, masks, seed=config.seed).to(self.device)
        self.names = list(self.model.names)
        params = self.model.parameters()
        if config.optimizer == "sgd":
            self.optimizer = self.torch.optim.SGD(
                params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = self.torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.algorithm = get_algorithm(config.method, **config.algorithm_options())

    # -- one pass -------------------------------------------------------------------
    def _loss(self, x, y):
        logits = self.model(x)
        return self.torch.nn.functional.cross_entropy(logits, y), logits

    def _check_finite(self, loss_value: float, epoch: int, batch: int) -> None:
        if not math.isfinite(loss_value):
            self.writer.join()
            kept = list_checkpoints(self.run_dir)
            last = kept[-1].name if kept else "none"
            raise TopoError(
                f"training diverged: the loss is {loss_value} at epoch {epoch}, step {batch} of "
                f"{self.steps_per_epoch} (global step {self.step + 1}); stopped, the last good checkpoint "
                f"is {last}; try a smaller --lr",
                path=self.run_dir,
            )

    @property
    def weights(self):
        return [layer.weight for layer in self.model.layers]

    def _grad_abs_mean(self):
        from topo.training.masking import grad_abs_mean

        return grad_abs_mean(self.weights, self.__dict__.setdefault("_grad_scratch", {}))

    def initial_grad_mean(self) -> list[np.ndarray]:
        """grad_mean of the untrained network over the first grad_batches batches (no update)."""
        torch = self.torch
        batches = min(int(self.config.grad_batches), self.steps_per_epoch)
        if batches == 0:
            return [np.zeros(o, dtype=np.float32) for o, _ in self.shapes]
        sums = [torch.zeros(o, device=self.device) for o, _ in self.shapes]
        size = int(self.config.batch_size)
        for b in range(batches):
            x = self.X_train[b * size:(b + 1) * size]
            y = self.y_train[b * size:(b + 1) * size]
            self.model.zero_grad(set_to_none=False)
            loss, _ = self._loss(x, y)
            loss.backward()
            for s, g in zip(sums, self._grad_abs_mean()):
                s += g
        self.model.zero_grad(set_to_none=True)
        self._init_loss = float(loss.detach())
        return [(s / batches).cpu().numpy().astype(np.float32) for s in sums]

    def evaluate(self, X, y) -> tuple[float | None, float | None]:
        """(mean loss, accuracy) on a split; (None, None) when it is empty."""
        torch = self.torch
        if X is None or len(X) == 0:
            return None, None
        X = torch.as_tensor(X, dtype=torch.float32, device=self.device)
        y = torch.as_tensor(y, dtype=torch.int64, device=self.device)
        self.model.eval()
        total_loss, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, X.shape[0], 4096):
                logits = self.model(X[start:start + 4096])
                target = y[start:start + 4096]
                total_loss += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
                correct += int((logits.argmax(dim=1) == target).sum())
        self.model.train()
        n = int(X.shape[0])
        return total_loss / n, correct / n

    def apply_new_masks(self, new_masks) -> bool:
        """Install masks from an algorithm (see :func:`topo.training.masking.install_masks`)."""
        from topo.training.masking import install_masks

        return any(install_masks(self.weights, self.model.masks, self.optimizer, new_masks))

    # -- checkpoints and state --------------------------------------------------------
    def topology(self, grad_mean, info: Mapping[str, Any]):
        from topo.training.model import to_topology

        stats = [{"grad_mean": g} for g in grad_mean]
        return to_topology(self.model, stats=stats, info=info)

    def checkpoint_job(self, name: str, grad_mean, *, epoch: int, step: int,
                       metrics: Mapping[str, Any] | None = None) -> Callable[[], Path]:
        """A copy of the network now, and the write of it as checkpoint ``name`` (to run later)."""
        info = {"method": self.config.method, "dataset": self.data.name, "seed": self.config.seed}
        if metrics:
            info["metrics"] = {k: v for k, v in metrics.items() if k not in ("densities", "fan_in_cv")}
        # the loop only copies the tensors; building the topology (sparse masks) and
        # writing it happen in the job, on the writer's thread
        from types import SimpleNamespace

        from topo.training.model import to_topology

        snapshot = SimpleNamespace(
            names=list(self.model.names),
            layers=[
                SimpleNamespace(weight=layer.weight.detach().to("cpu", copy=True),
                                bias=layer.bias.detach().to("cpu", copy=True))
                for layer in self.model.layers
            ],
            masks=[mask.detach().to("cpu", copy=True) for mask in self.model.masks],
        )
        stats = [{"grad_mean": g} for g in grad_mean]
        path = self.run_dir / CHECKPOINT_DIR / name
        run_info = {"config": self.config.to_dict()}

        def write() -> Path:
            topology = to_topology(snapshot, stats=stats, info=info)
            return save_checkpoint(topology, path, epoch=epoch, step=step, run_info=run_info)

        return write

    def save(self, name: str, grad_mean, *, epoch: int, step: int, metrics: Mapping[str, Any] | None = None) -> Path:
        """Write checkpoint ``name`` now (after any write in flight)."""
        self.writer.join()
        return self.checkpoint_job(name, grad_mean, epoch=epoch, step=step, metrics=metrics)()

    def state_job(self) -> Callable[[], None]:
        """A copy of everything :func:`resume` needs now, and its write to ``state/last.pt``."""
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "epoch": int(self.epoch),
            "step": int(self.step),
            "model": _to_cpu(dict(self.model.state_dict())),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "algorithm": _to_cpu(self.algorithm.state_dict()),
        }
        torch, path = self.torch, self.run_dir / STATE_FILE

        def write() -> None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            atomic_write_bytes(path, buffer.getvalue())

        return write

    def save_state(self) -> None:
        """Write ``state/last.pt`` now (after any write in flight)."""
        self.writer.join()
        self.state_job()()

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.model.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.algorithm.load_state_dict(state["algorithm"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])

    # -- records --------------------------------------------------------------------
    def record(self, epoch: int, train_loss, train_acc, epoch_time: float, extra: Mapping[str, Any]) -> dict[str, Any]:
        from topo.analysis.degree import coefficient_of_variation

        val_loss, val_acc = self.evaluate(self.data.X_val, self.data.y_val)
        test_loss, test_acc = self.evaluate(self.data.X_test, self.data.y_test)
        masks = self.model.masks
        nnz = [int(m.sum()) for m in masks]
        size = sum(m.numel() for m in masks)
        record = {
            "epoch": int(epoch),
            "step": int(self.step),
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": learning_rate(self.config, max(self.step - 1, 0), self.total_steps),
            "nnz": int(sum(nnz)),
            "density": sum(nnz) / size,
            "densities": [n / m.numel() for n, m in zip(nnz, masks)],
            "fan_in_cv": [coefficient_of_variation(m.sum(dim=1).cpu().numpy()) for m in masks],
        }
        record.update(extra)
        record["epoch_time"] = float(epoch_time)
        return record

    # -- the loop -------------------------------------------------------------------
    def run_epoch(self, epoch: int) -> dict[str, Any]:
        from topo.training.masking import algorithm_after_epoch, algorithm_generator, algorithm_update

        torch = self.torch
        config = self.config
        started = time.perf_counter()
        shuffle = _generator(config.seed, epoch, _SHUFFLE)
        algo_rng = algorithm_generator(config.seed, epoch)
        order = torch.randperm(self.n_train, generator=shuffle).to(self.device)
        size = int(config.batch_size)
        grad_sums = [torch.zeros(o, device=self.device) for o, _ in self.shapes]
        loss_sum = 0.0  # a Python float: the loss is read every step anyway (finiteness)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        updates = 0
        self.model.train()
        for batch in range(1, self.steps_per_epoch + 1):
            index = order[(batch - 1) * size: batch * size]
            x, y = self.X_train[index], self.y_train[index]
            lr = learning_rate(config, self.step, self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            # gradients set to None, so that backward writes them instead of adding to zeros
            self.optimizer.zero_grad(set_to_none=True)
            loss, logits = self._loss(x, y)
            loss.backward()
            loss_value = float(loss.detach())
            self._check_finite(loss_value, epoch, batch)
            loss_sum += loss_value * int(x.shape[0])
            correct += (logits.detach().argmax(dim=1) == y).sum()
            for s, g in zip(grad_sums, self._grad_abs_mean()):
                s += g
            step = self.step + 1
            # the step shared with sparsify() (topo.training.masking): update, or mask and step
            changed = algorithm_update(self.algorithm, step, self.weights, self.model.masks, self.optimizer, algo_rng)
            if changed:
                # RigL: the step that changes the masks does not also move the weights
                updates += 1
            else:
                self.model.mask_gradients()
                self.optimizer.step()
                self.model.apply_masks()
            self.step = step
            if self.progress is not None:
                self.progress(self.step, self.total_steps)
            if self.on_step is not None:
                self.on_step(epoch, self.step)
            every = config.checkpoint_every
            if every and self.step % int(every) == 0 and batch < self.steps_per_epoch:
                grad_mean = [(s / batch).cpu().numpy().astype(np.float32) for s in grad_sums]
                self.writer.submit(self.checkpoint_job(checkpoint_name(epoch, self.step), grad_mean, epoch=epoch,
                                                       step=self.step))
        train_loss = loss_sum / self.n_train
        train_acc = int(correct) / self.n_train
        grad_mean = [(s / self.steps_per_epoch).cpu().numpy().astype(np.float32) for s in grad_sums]
        record = self.record(epoch, train_loss, train_acc, 0.0, {"mask_updates": updates})
        record["masks_changed_after_epoch"] = algorithm_after_epoch(
            self.algorithm, epoch, self.weights, self.model.masks, self.optimizer, algo_rng
        )
        if record["masks_changed_after_epoch"]:
            nnz = [int(m.sum()) for m in self.model.masks]
            record["nnz_after_epoch"] = int(sum(nnz))
        self.epoch = epoch
        record["epoch_time"] = time.perf_counter() - started
        saving = time.perf_counter()
        # copies taken now, written on the writer's thread in this order (checkpoint,
        # metrics, state: a state on disk always has its epoch's checkpoint and metrics)
        write_checkpoint = self.checkpoint_job(checkpoint_name(epoch), grad_mean, epoch=epoch, step=self.step,
                                               metrics=record)
        metrics_line, run_dir = dict(record), self.run_dir
        write_state = self.state_job()

        def write_epoch() -> None:
            write_checkpoint()
            append_metrics(run_dir, metrics_line)
            write_state()

        self.writer.submit(write_epoch)
        if not self.defer_writes:
            self.writer.join()
        # what the loop waited for the epoch's checkpoint, metrics and state (reported
        # to callers, not in metrics.jsonl)
        record = dict(record, checkpoint_time=time.perf_counter() - saving)
        if self.on_epoch is not None:
            self.on_epoch(record)
        return record

    def loop(self) -> None:
        self.defer_writes = True
        try:
            for epoch in range(self.epoch + 1, self.total_epochs + 1):
                self.run_epoch(epoch)
        finally:
            self.writer.join()


def _to_cpu(value):
    """A copy of a (nested) state on the CPU: tensors cloned, so later steps cannot change it."""
    if hasattr(value, "detach"):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


# -- public entry points -------------------------------------------------------------
def _load_data(config: TrainConfig, data_dir=None):
    from topo.training.data import load_dataset

    return load_dataset(
        config.dataset,
        data_dir=data_dir if data_dir is not None else config.data_dir,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )


def _clean_temp_files(run_dir: Path) -> list[Path]:
    """Remove the temporaries that atomic writes killed mid-way left in a run folder.

    Called only while holding the run's lock, so no live writer owns them.
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


def _contents(run_dir: Path) -> list[Path]:
    """What a run folder holds, without the run lock (which does not make a folder a run)."""
    from topo.runlock import is_lock_file

    if not run_dir.is_dir():
        return []
    return [entry for entry in run_dir.iterdir() if not is_lock_file(entry.name)]


def _check_fresh(run_dir: Path) -> None:
    """Refuse to train into a folder that holds anything (besides the lock and dead temporaries)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TopoError("expected a run folder, found a file", path=run_dir)
    _clean_temp_files(run_dir)
    if not _contents(run_dir):
        return
    from topo.checkpoint import RUN_CONFIG

    if (run_dir / RUN_CONFIG).is_file() and not (run_dir / STATE_FILE).is_file():
        raise TopoError(
            f"the folder holds a run stopped before its first epoch ended; restart it with "
            f"topo train --resume {run_dir}, or choose another --out",
            path=run_dir,
        )
    raise TopoError(
        "the run folder already exists and is not empty; resume it with --resume or choose another --out",
        path=run_dir,
    )


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
        _check_fresh(run_dir)
        yield from _train_epochs(config, run_dir, progress=progress, on_step=on_step, dataset=dataset,
                                 defer_writes=defer_writes)


def _train_epochs(
    config: TrainConfig, run_dir: Path, *, progress, on_step, dataset, defer_writes: bool = False
) -> Iterator[dict[str, Any]]:
    """The body of :func:`iter_train`, run while the run's lock is held."""
    from topo.training.model import layer_names, layer_shapes

    device = _resolve_device(config.device)
    threads = _set_determinism(config, device)
    data = dataset if dataset is not None else _load_data(config)
    shapes = layer_shapes(data.n_features, config.hidden, data.n_classes)
    names = layer_names(len(shapes))
    from topo.training.algorithms import get_algorithm

    algorithm = get_algorithm(config.method, **config.algorithm_options())
    masks_init = str(config.init or "").startswith("masks:")
    # --init ws:... / ba:...: a random-graph prior draws the masks (topo.training.priors)
    prior = str(config.init) if config.init and is_prior_spec(str(config.init)) else None
    profile_per_layer = (
        equilibrium_profile_per_layer(config.init, names) if config.init and not masks_init and prior is None else None
    )
    init = algorithm.initial_masks(
        shapes,
        sparsity=config.sparsity,
        density=config.density,
        profile=config.profile,
        cv=config.cv,
        hub_placement=config.hub_placement,
        dense_output=config.dense_output,
        density_map=config.density_map,
        seed=config.seed,
        names=names,
        profile_per_layer=profile_per_layer,
        **({"prior": prior} if prior is not None else {}),
    )
    if masks_init:
        # start from a saved network's masks (e.g. a perturbed copy of another run's)
        init = checkpoint_initial_masks(config.init, shapes, names)
    run = _Run(config, run_dir, data, device, progress, None, on_step)
    run.build(init.masks)
    run.algorithm.setup(
        masks=init.masks, steps_per_epoch=run.steps_per_epoch, epochs=config.epochs, total_steps=run.total_steps
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(
        run_dir,
        {
            "kind": "topo-train-run",
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
            "network": {"layers": names, "shapes": [list(s) for s in shapes]},
            "algorithm": run.algorithm.describe(),
            "initial": {
                "achieved_cv": [float(c) for c in init.achieved_cv],
                "budgets": [int(b) for b in init.budgets],
                "profile_per_layer": profile_per_layer,
                "prior": prior,
            },
            "versions": _versions(),
            "seed": int(config.seed),
            "device": device,
            "threads": threads,
            "steps_per_epoch": run.steps_per_epoch,
            "total_epochs": run.total_epochs,
            "total_steps": run.total_steps,
            "started": datetime.now().isoformat(timespec="seconds"),
        },
    )
    started = time.perf_counter()
    grad_mean = run.initial_grad_mean()
    record = run.record(0, run._init_loss, None, 0.0, {"mask_updates": 0})
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
    import torch

    _clean_temp_files(run_dir)
    meta, config = _check_run_meta(read_run_config(run_dir), run_dir)
    if device is not None:
        config.device = device
    if data_dir is not None:
        config.data_dir = str(data_dir)
    config.validate()
    state_path = run_dir / STATE_FILE
    if not state_path.is_file():
        if _trained_epochs(run_dir):
            raise TopoError(
                "the run has trained epochs but no saved training state (state/last.pt); it cannot be resumed",
                path=run_dir,
            )
        # stopped before its first epoch ended: nothing to continue from, so start again
        _empty_run_folder(run_dir)
        return train(config, run_dir=run_dir, progress=progress, on_epoch=on_epoch, on_step=on_step, dataset=dataset)
    state = _load_state(torch, state_path)
    epoch = state["epoch"]

    # drop what the interrupted epoch left behind
    for path in list_checkpoints(run_dir):
        parsed = parse_checkpoint_name(path.name)
        if parsed is None:
            continue
        # epoch_E (end of E) and epoch_E_step_S (inside E) both belong to epoch E
        if parsed[0] > epoch:
            path.unlink()
    write_metrics(run_dir, [r for r in read_metrics(run_dir) if int(r.get("epoch", -1)) <= epoch])

    resolved = _resolve_device(config.device)
    _set_determinism(config, resolved)
    data = dataset if dataset is not None else _load_data(config)
    run = _Run(config, run_dir, data, resolved, progress, on_epoch, on_step)
    shapes = [tuple(s) for s in meta["network"]["shapes"]]
    from topo.training.model import layer_shapes

    if [tuple(s) for s in layer_shapes(data.n_features, config.hidden, data.n_classes)] != shapes:
        raise TopoError(
            "run.json's network shapes do not match its configuration and data set; cannot resume", path=run_dir
        )
    run.build([np.ones(s, dtype=bool) for s in shapes])
    try:
        run.load_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TopoError(
            f"training state does not fit the run's network ({_first_line(exc)})", path=state_path
        ) from None
    if run.total_steps != int(meta.get("total_steps", run.total_steps)):
        raise TopoError("the data set's size differs from the run's; cannot resume with other data", path=run_dir)
    run.loop()
    return TrainResult(run_dir, config, run.epoch, read_metrics(run_dir), list_checkpoints(run_dir), resumed_from=epoch)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _is_count(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_run_meta(meta: Mapping[str, Any], run_dir: Path) -> tuple[dict[str, Any], TrainConfig]:
    """Validate a run's ``run.json`` for resuming; every problem is one line naming the file."""
    from topo.checkpoint import RUN_CONFIG

    where = run_dir / RUN_CONFIG
    if not meta:
        if not _contents(run_dir):
            raise TopoError(
                f"not a run written by topo train: the folder is empty (a run stopped before it began?); "
                f"start one with topo train --out {run_dir}",
                path=run_dir,
            )
        raise TopoError("not a run written by topo train (no run.json)", path=run_dir)
    if meta.get("kind") != "topo-train-run" or "config" not in meta:
        raise TopoError("not a run written by topo train (run.json has no training configuration)", path=run_dir)
    if not isinstance(meta["config"], dict):
        raise TopoError("'config' is not a JSON object", path=where)
    try:
        config = TrainConfig.from_dict(meta["config"])
        config.validate()
    except TopoError as exc:
        raise TopoError(f"'config' is not a valid training configuration: {exc}", path=where) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TopoError(f"'config' is not a valid training configuration ({_first_line(exc)})", path=where) from None
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


def _load_state(torch, state_path: Path) -> dict[str, Any]:
    """``state/last.pt`` read with ``weights_only=True`` and checked; problems are one line."""
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
        raise TopoError(f"training state is unreadable ({_first_line(exc)})", path=state_path) from None
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


def _trained_epochs(run_dir: Path) -> bool:
    """Whether a run folder holds the results of any training epoch (epoch 1 or later)."""
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


def _empty_run_folder(run_dir: Path) -> None:
    """Remove what a run wrote (all but the run lock, which the caller holds)."""
    import shutil

    for entry in _contents(run_dir):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _holds_same_run(meta: Mapping[str, Any], config: TrainConfig) -> bool:
    try:
        stored = TrainConfig.from_dict(meta["config"])
    except (TopoError, TypeError, ValueError):
        return False
    return config_identity(stored) == config_identity(config)


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

    _clean_temp_files(run_dir)
    if _contents(run_dir):
        if not is_run_folder(run_dir):
            raise TopoError("the folder is not empty and not a topo run folder; choose another folder", path=run_dir)
        meta = read_run_config(run_dir)
        if meta and "config" in meta and not _holds_same_run(meta, config):
            if not replace_other:
                raise TopoError(
                    "the run folder holds a run of another configuration; move it away to rerun this one",
                    path=run_dir,
                )
            _empty_run_folder(run_dir)
        elif not meta or not (run_dir / STATE_FILE).is_file():
            _empty_run_folder(run_dir)  # died before its first state was saved: nothing to resume
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

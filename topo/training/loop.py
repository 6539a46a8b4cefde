"""The training loop: steps and epochs of a masked MLP, and the metrics record of each epoch.

:class:`TrainingLoop` holds one run's model, optimiser, algorithm and data on the
device, and trains it epoch by epoch. Every step sets the learning rate
(:func:`learning_rate`), computes the loss and the dense gradient, accumulates each
output neuron's mean ``|dL/dW|`` (``grad_mean``, stored in every checkpoint), and lets
the algorithm update the masks or masks the gradient and steps the optimiser (the step
shared with ``sparsify()``, :mod:`topo.training.masking`). At the end of an epoch the
loop evaluates the splits, builds the epoch's record and hands copies of the network
to the run folder's writer (:mod:`topo.training.run_folder`), which writes them while
the next epoch trains.

Determinism: an epoch's randomness (the shuffling and the algorithm's tie-breaks and
random growth) comes from torch generators seeded by ``(seed, epoch)`` alone, and the
learning rate is a function of the global step, so a run resumed from its last
complete epoch trains as an uninterrupted one does.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from topo.checkpoint import checkpoint_name, list_checkpoints
from topo.errors import TopoError
from topo.training.config import TrainConfig
from topo.training.run_folder import BackgroundWriter, checkpoint_job, epoch_job, state_job

__all__ = ["TrainingLoop", "learning_rate", "shuffle_generator", "TIMING_FIELDS"]

#: metrics fields that measure time, and so differ between otherwise identical runs
TIMING_FIELDS = ("epoch_time", "elapsed", "time", "checkpoint_time")

# the purpose of the shuffling generator, mixed into its seed (the algorithm's is
# topo.training.masking.algorithm_generator's)
_SHUFFLE = 1


def learning_rate(config: TrainConfig, step_index: int, total_steps: int) -> float:
    """The learning rate of 0-based step ``step_index`` of ``total_steps``.

    ``constant``: ``lr``; ``cosine``: ``lr (1 + cos(π i / total)) / 2``; ``step``:
    ``lr`` times 0.1 after half and again after three quarters of the steps.

    Parameters
    ----------
    config : TrainConfig
        Its ``lr`` and ``schedule``.
    step_index : int
        The step, counted from 0 over the whole run.
    total_steps : int
        The run's steps; 0 or less gives ``lr``.

    Returns
    -------
    float

    Raises
    ------
    TopoError
        For an unknown schedule.

    Examples
    --------
    >>> cosine = TrainConfig(lr=0.1, schedule="cosine")
    >>> [round(learning_rate(cosine, i, 100), 4) for i in (0, 50, 99)]
    [0.1, 0.05, 0.0]
    >>> step = TrainConfig(lr=0.1, schedule="step")
    >>> [round(learning_rate(step, i, 100), 4) for i in (49, 50, 75)]
    [0.1, 0.01, 0.001]
    """
    base = float(config.lr)
    if total_steps <= 0 or config.schedule == "constant":
        return base
    progress = step_index / total_steps
    if config.schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return base * (0.1 ** (int(progress >= 0.5) + int(progress >= 0.75)))
    raise TopoError(f"unknown schedule {config.schedule!r}")


def shuffle_generator(seed: int, epoch: int):
    """The torch generator that orders epoch ``epoch``'s training examples.

    Seeded from ``(seed, epoch)`` alone (a 63-bit seed mixed by numpy's SeedSequence).

    Parameters
    ----------
    seed : int
        The run's seed.
    epoch : int

    Returns
    -------
    torch.Generator

    Examples
    --------
    >>> import torch
    >>> first = torch.randperm(10, generator=shuffle_generator(0, 1))
    >>> torch.equal(first, torch.randperm(10, generator=shuffle_generator(0, 1)))  # resumed runs shuffle alike
    True
    >>> torch.equal(first, torch.randperm(10, generator=shuffle_generator(0, 2)))  # each epoch its own order
    False
    """
    import torch

    mixed = np.random.SeedSequence([int(seed), int(epoch), _SHUFFLE]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed >> np.uint64(1)))


class TrainingLoop:
    """One training run on its device: the model, optimiser, algorithm and data, trained by epochs.

    Parameters
    ----------
    config : TrainConfig
    run_dir : Path
        Where its files go.
    dataset : Dataset
    device : str
        A resolved torch device (``cpu``, ``cuda``).
    progress : callable or None
        ``progress(steps_done, total_steps)`` after every step.
    on_epoch : callable or None
        ``on_epoch(record)`` after every epoch of :meth:`run_epoch`.
    on_step : callable or None
        ``on_step(epoch, global_step)`` after every step.

    Examples
    --------
    What :func:`topo.training.trainer.train` puts together, on a toy data set of eight
    examples in memory:

    >>> import pathlib, tempfile
    >>> from topo.training.data import Dataset
    >>> from topo.training.init import starting_masks
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> X = np.eye(8, dtype=np.float32)
    >>> y = np.arange(8) % 2
    >>> data = Dataset("toy", X, y, X, y, X, y, n_features=8, n_classes=2, source="memory")
    >>> config = TrainConfig(hidden=(4,), epochs=2, batch_size=4, method="static", sparsity=0.5, device="cpu")
    >>> loop = TrainingLoop(config, folder, data, "cpu", None, None, None)
    >>> loop.steps_per_epoch, loop.total_steps
    (2, 4)
    >>> masks = starting_masks(config, [(4, 8), (2, 4)], ["fc1", "fc2"]).initial.masks
    >>> loop.build(masks)
    >>> loop.algorithm.setup(masks=masks, steps_per_epoch=2, epochs=2, total_steps=4)
    >>> record = loop.run_epoch(1)
    >>> record["epoch"], record["step"], record["nnz"], 0.0 <= record["val_acc"] <= 1.0
    (1, 2, 20, True)
    >>> sorted(path.name for path in folder.rglob("*") if path.is_file())
    ['epoch_0001.safetensors', 'last.pt', 'metrics.jsonl']
    >>> import shutil; shutil.rmtree(folder)
    """

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
        #: the loss of the last batch :meth:`initial_grad_mean` saw (epoch 0's train_loss)
        self.initial_loss: float | None = None
        self.writer = BackgroundWriter()
        #: whether run_epoch returns before its files are written (they are, by the next write or join)
        self.defer_writes = False

    # -- building -------------------------------------------------------------------
    def build(self, masks, *, saved_model=None) -> None:
        """Build the model (with ``masks``) on ``--backend``'s layers, its optimiser and the algorithm.

        ``masks`` None builds a model to load ``saved_model`` (a saved ``state_dict()``) into.
        """
        from topo.training.algorithms import get_algorithm
        from topo.training.backends import build_network, empty_network, saved_kinds, steps_for
        from topo.training.model import layer_shapes

        config = self.config
        self.shapes = layer_shapes(self.data.n_features, config.hidden, self.data.n_classes)
        if masks is None and config.backend != "masked":
            model = empty_network(self.shapes, saved_kinds(saved_model, len(self.shapes)), seed=config.seed)
        else:
            model, _ = build_network(config.backend, self.shapes, masks, seed=config.seed, method=config.method)
        self.model = model.to(self.device)
        #: the step of the model's backend (topo.training.backends)
        self.steps = steps_for(self.model)
        self.names = list(self.model.names)
        params = self.model.parameters()
        self.optimizer: Any
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

    def _grad_abs_mean(self):
        return self.steps.grad_abs_mean()

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
        self.initial_loss = float(loss.detach())
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
        # 4096 examples a pass, fewer for layers wider than 8192 (activations of at most 2^25 floats)
        chunk = max(1, min(4096, (1 << 25) // max(max(o for o, _ in self.shapes), 1)))
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                logits = self.model(X[start:start + chunk])
                target = y[start:start + chunk]
                total_loss += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
                correct += int((logits.argmax(dim=1) == target).sum())
        self.model.train()
        n = int(X.shape[0])
        return total_loss / n, correct / n

    # -- checkpoints and state --------------------------------------------------------
    def full_checkpoint(self, epoch: int, step: int) -> bool:
        """Whether the checkpoint at ``epoch`` / ``step`` holds the weights: the final epoch's
        always, every other one unless ``--intermediate-checkpoints masks``."""
        final = epoch >= self.total_epochs and step >= self.total_steps
        return final or self.config.intermediate_checkpoints != "masks"

    def writes_state(self, epoch: int) -> bool:
        """Whether the resume state is written after ``epoch`` (``--state-every``; the last always)."""
        return epoch % int(self.config.state_every) == 0 or epoch >= self.total_epochs

    def checkpoint_job(self, name: str, grad_mean, *, epoch: int, step: int,
                       metrics: Mapping[str, Any] | None = None) -> Callable[[], Path]:
        """A copy of the network now, and the write of it as checkpoint ``name`` (to run later)."""
        return checkpoint_job(self.run_dir, name, self.model, grad_mean, config=self.config,
                              dataset_name=self.data.name, epoch=epoch, step=step, metrics=metrics,
                              weights=self.full_checkpoint(epoch, step))

    def save(self, name: str, grad_mean, *, epoch: int, step: int, metrics: Mapping[str, Any] | None = None) -> Path:
        """Write checkpoint ``name`` now (after any write in flight)."""
        self.writer.join()
        return self.checkpoint_job(name, grad_mean, epoch=epoch, step=step, metrics=metrics)()

    def state_job(self) -> Callable[[], None]:
        """A copy of everything a resumed run needs now, and its write to ``state/last.pt``."""
        return state_job(self.run_dir, epoch=self.epoch, step=self.step, model=self.model,
                         optimizer=self.optimizer, algorithm=self.algorithm)

    def save_state(self) -> None:
        """Write ``state/last.pt`` now (after any write in flight)."""
        self.writer.join()
        self.state_job()()

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the model, optimiser, algorithm, epoch and step of a saved state."""
        if hasattr(self.model, "load_network_state"):
            self.model.load_network_state(state["model"])
        else:
            self.model.load_state_dict(state["model"])
        self.model.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.algorithm.load_state_dict(state["algorithm"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])

    # -- records --------------------------------------------------------------------
    def record(self, epoch: int, train_loss, train_acc, epoch_time: float, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The metrics record of ``epoch``: losses, accuracies, learning rate, densities, fan-in CVs."""
        from topo.analysis.degree import coefficient_of_variation

        val_loss, val_acc = self.evaluate(self.data.X_val, self.data.y_val)
        test_loss, test_acc = self.evaluate(self.data.X_test, self.data.y_test)
        nnz, sizes, fan_ins = self.steps.counts()
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
            "density": sum(nnz) / sum(sizes),
            "densities": [n / size for n, size in zip(nnz, sizes)],
            "fan_in_cv": [coefficient_of_variation(f) for f in fan_ins],
        }
        record.update(extra)
        record["epoch_time"] = float(epoch_time)
        return record

    # -- the loop -------------------------------------------------------------------
    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train epoch ``epoch``, hand its files to the writer, and return its record."""
        from topo.training.masking import algorithm_generator

        torch = self.torch
        config = self.config
        started = time.perf_counter()
        shuffle = shuffle_generator(config.seed, epoch)
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
            step = self.step + 1
            self.steps.before_backward(self.algorithm, step)
            loss, logits = self._loss(x, y)
            loss.backward()
            loss_value = float(loss.detach())
            self._check_finite(loss_value, epoch, batch)
            loss_sum += loss_value * int(x.shape[0])
            correct += (logits.detach().argmax(dim=1) == y).sum()
            self.steps.add_grad_abs_mean(grad_sums)
            # the step shared with sparsify() (topo.training.masking, .backends): update, or mask and step
            changed = self.steps.update(self.algorithm, step, self.optimizer, algo_rng)
            if changed:
                # RigL: the step that changes the masks does not also move the weights
                updates += 1
            else:
                self.steps.optimizer_step(self.optimizer)
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
        record["masks_changed_after_epoch"] = self.steps.after_epoch(self.algorithm, epoch, self.optimizer, algo_rng)
        if record["masks_changed_after_epoch"]:
            record["nnz_after_epoch"] = int(sum(self.steps.counts()[0]))
        self.epoch = epoch
        record["epoch_time"] = time.perf_counter() - started
        saving = time.perf_counter()
        # copies taken now, written on the writer's thread (checkpoint, metrics, state)
        write_checkpoint = self.checkpoint_job(checkpoint_name(epoch), grad_mean, epoch=epoch, step=self.step,
                                               metrics=record)
        write_state = self.state_job() if self.writes_state(epoch) else None
        self.writer.submit(epoch_job(self.run_dir, write_checkpoint, record, write_state))
        if not self.defer_writes:
            self.writer.join()
        # what the loop waited for the epoch's checkpoint, metrics and state (reported
        # to callers, not in metrics.jsonl)
        record = dict(record, checkpoint_time=time.perf_counter() - saving)
        if self.on_epoch is not None:
            self.on_epoch(record)
        return record

    def loop(self) -> None:
        """Train the epochs after :attr:`epoch`; every epoch's files are written when it returns."""
        self.defer_writes = True
        try:
            for epoch in range(self.epoch + 1, self.total_epochs + 1):
                self.run_epoch(epoch)
        finally:
            self.writer.join()

"""A Hugging Face ``TrainerCallback`` that logs topology metrics while a model trains.

Needs the optional extra ``transformers`` (``pip install "topo-toolkit[transformers]"``).
The metrics of a :class:`~topo.integrations.monitor.TopologyMonitor` go through
``Trainer.log``, the door every reporting integration of ``transformers`` listens at
(TensorBoard, W&B, MLflow, ... as chosen by ``report_to``), and into
``trainer.state.log_history``; each layer's fan-in goes as a histogram to the
TensorBoard and W&B integrations where they are active.

A callback receives the model but not the ``Trainer``, so the callback is given the
trainer::

    from topo.integrations.hf import track_topology
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    track_topology(trainer, every_n_steps=100)
    trainer.train()
"""

from __future__ import annotations

from typing import Any

from topo.errors import TopoError

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on what is installed
    raise TopoError(
        "topo.integrations.hf needs transformers: pip install \"topo-toolkit[transformers]\""
    ) from None

__all__ = ["TopologyCallback", "track_topology"]


class TopologyCallback(TrainerCallback):
    """Measure the model's topology at the start, every ``every_n_steps`` steps and at epoch ends.

    Parameters
    ----------
    trainer : transformers.Trainer, optional
        The trainer whose ``log`` receives the metrics; or call :meth:`attach` (or use
        :func:`track_topology`, which does both).
    monitor : TopologyMonitor, optional
        The monitor to update (default: a new one with ``monitor_options``).
    every_n_steps : int
        Measure after every ``every_n_steps``-th optimiser step (0: epoch ends only).
    on_epoch_end : bool
        Also measure at the end of every epoch.
    histograms : bool
        Log each layer's fan-in as a histogram to TensorBoard / W&B where active.
    prefix : str
        Prepended to every metric name.
    **monitor_options
        For a new :class:`~topo.integrations.monitor.TopologyMonitor`.

    Examples
    --------
    The callback logs through the Trainer it is given (:func:`track_topology` builds it,
    gives it the trainer and adds it):

    >>> import tempfile
    >>> import torch
    >>> import transformers
    >>> class Classifier(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    ...     def forward(self, x, labels):
    ...         return {"loss": torch.nn.functional.cross_entropy(self.net(x), labels)}
    >>> _ = torch.manual_seed(0)
    >>> data = [{"x": torch.randn(4), "labels": torch.tensor(k % 2)} for k in range(8)]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     args = transformers.TrainingArguments(tmp, max_steps=4, per_device_train_batch_size=2, use_cpu=True,
    ...                                           report_to=[], save_strategy="no", disable_tqdm=True)
    ...     trainer = transformers.Trainer(model=Classifier(), args=args, train_dataset=data)
    ...     trainer.remove_callback(transformers.PrinterCallback)  # keep the logs off the screen
    ...     callback = TopologyCallback(trainer, every_n_steps=2, histograms=False)
    ...     trainer.add_callback(callback)
    ...     _ = trainer.train()
    >>> [entry["step"] for entry in callback.monitor.history]
    [0.0, 2.0, 4.0]
    >>> [entry["topology/net.0/density"] for entry in trainer.state.log_history if "topology/density" in entry]
    [1.0, 1.0, 1.0]
    >>> TopologyCallback(every_n_steps=-1)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: every_n_steps must be >= 0, got -1
    """

    def __init__(
        self,
        trainer=None,
        *,
        monitor=None,
        every_n_steps: int = 50,
        on_epoch_end: bool = True,
        histograms: bool = True,
        prefix: str = "topology/",
        **monitor_options: Any,
    ) -> None:
        from topo.integrations.monitor import TopologyMonitor

        if int(every_n_steps) < 0:
            raise TopoError(f"every_n_steps must be >= 0, got {every_n_steps!r}")
        self.trainer = trainer
        self.monitor = monitor if monitor is not None else TopologyMonitor(**monitor_options)
        self.every_n_steps = int(every_n_steps)
        self.measure_on_epoch_end = bool(on_epoch_end)
        self.histograms = bool(histograms)
        self.prefix = prefix
        self._last_step: int | None = None

    def attach(self, trainer) -> "TopologyCallback":
        """Log through ``trainer`` (and return self)."""
        self.trainer = trainer
        return self

    def _histograms(self, fan_in: dict[str, Any], step: int) -> None:
        for callback in self.trainer.callback_handler.callbacks:
            writer = getattr(callback, "tb_writer", None)
            if writer is not None:
                for tag, values in fan_in.items():
                    writer.add_histogram(tag, values, global_step=step)
            wandb = getattr(callback, "_wandb", None)
            if type(callback).__name__ == "WandbCallback" and wandb is not None and getattr(wandb, "run", None):
                wandb.log({tag: wandb.Histogram(values) for tag, values in fan_in.items()}, commit=False)

    def _measure(self, state, model) -> None:
        if self.trainer is None:
            raise TopoError(
                "TopologyCallback needs the Trainer to log through: TopologyCallback(trainer), "
                ".attach(trainer) or track_topology(trainer)"
            )
        step = int(state.global_step)
        if step == self._last_step:
            return
        self._last_step = step
        self.monitor.update(model, step=step)
        self.trainer.log({f"{self.prefix}{k}": v for k, v in self.monitor.finite().items()})
        if self.histograms:
            self._histograms({f"{self.prefix}{n}/fan_in": v for n, v in self.monitor.fan_in().items()}, step)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._measure(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self._measure(state, model)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.measure_on_epoch_end:
            self._measure(state, model)


def track_topology(trainer, **options: Any) -> TopologyCallback:
    """Add a :class:`TopologyCallback` logging through ``trainer``; returns it.

    ``options`` are :class:`TopologyCallback`'s (``every_n_steps``, ``histograms``,
    ``monitor`` ...) and a new monitor's (``layers``, ``hub_fraction``, ``nnstd``).

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> import transformers
    >>> class Regressor(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(3, 1)
    ...     def forward(self, x, labels):
    ...         return {"loss": (self.fc(x).squeeze(-1) - labels).pow(2).mean()}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     args = transformers.TrainingArguments(tmp, max_steps=2, use_cpu=True, report_to=[], save_strategy="no")
    ...     trainer = transformers.Trainer(model=Regressor(), args=args,
    ...                                    train_dataset=[{"x": torch.ones(3), "labels": torch.tensor(1.0)}] * 4)
    ...     callback = track_topology(trainer, every_n_steps=0, histograms=False)
    >>> callback.trainer is trainer, callback in trainer.callback_handler.callbacks
    (True, True)
    """
    callback = TopologyCallback(trainer, **options)
    trainer.add_callback(callback)
    return callback

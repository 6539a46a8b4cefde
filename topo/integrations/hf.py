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
    """
    callback = TopologyCallback(trainer, **options)
    trainer.add_callback(callback)
    return callback

"""A PyTorch Lightning callback that logs topology metrics while a model trains.

Needs the optional extra ``lightning`` (``pip install "topo-toolkit[lightning]"``).
The metrics of a :class:`~topo.integrations.monitor.TopologyMonitor` go to every
logger of the ``Trainer`` through Lightning's own ``Logger.log_metrics`` (as
Lightning's ``LearningRateMonitor`` does), so TensorBoard, W&B, MLflow and CSV logs get
them with no code of topo's; each layer's fan-in goes as a histogram to loggers that
draw histograms (TensorBoard's ``add_histogram``, W&B's ``Histogram``)::

    from topo.integrations.lightning import TopologyCallback
    trainer = lightning.Trainer(callbacks=[TopologyCallback(every_n_steps=100)])
"""

from __future__ import annotations

from typing import Any

from topo.errors import TopoError

try:  # Lightning 2 ships as ``lightning``; the older package name still works
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning.callbacks import Callback  # type: ignore[assignment]  # same class, older name
    except ImportError:
        raise TopoError(
            "topo.integrations.lightning needs PyTorch Lightning: pip install \"topo-toolkit[lightning]\""
        ) from None

__all__ = ["TopologyCallback", "log_histograms"]


def log_histograms(loggers, histograms: dict[str, Any], step: int) -> int:
    """Send ``{tag: values}`` to every logger that draws histograms; how many got them.

    TensorBoard-like experiments (``add_histogram``) and W&B runs (``log`` with
    ``wandb.Histogram``) are recognised; other loggers are left alone.
    """
    sent = 0
    for logger in loggers:
        experiment = getattr(logger, "experiment", None)
        if experiment is None:
            continue
        if callable(getattr(experiment, "add_histogram", None)):
            for tag, values in histograms.items():
                experiment.add_histogram(tag, values, global_step=step)
            sent += 1
        elif type(logger).__name__ == "WandbLogger":
            import wandb

            experiment.log({tag: wandb.Histogram(values) for tag, values in histograms.items()}, commit=False)
            sent += 1
    return sent


class TopologyCallback(Callback):
    """Measure the model's topology every ``every_n_steps`` training steps and at epoch ends.

    Parameters
    ----------
    monitor : TopologyMonitor, optional
        The monitor to update (default: a new one with ``monitor_options``).
    every_n_steps : int
        Measure after every ``every_n_steps``-th optimiser step (0: epoch ends only).
    on_epoch_end : bool
        Also measure at the end of every training epoch.
    histograms : bool
        Log each layer's fan-in as a histogram where the logger takes histograms.
    prefix : str
        Prepended to every metric name.
    **monitor_options
        For a new :class:`~topo.integrations.monitor.TopologyMonitor` (``layers``,
        ``hub_fraction``, ``nnstd``, ``example_input``).
    """

    def __init__(
        self,
        monitor=None,
        *,
        every_n_steps: int = 50,
        on_epoch_end: bool = True,
        histograms: bool = True,
        prefix: str = "topology/",
        **monitor_options: Any,
    ) -> None:
        from topo.integrations.monitor import TopologyMonitor

        super().__init__()
        if int(every_n_steps) < 0:
            raise TopoError(f"every_n_steps must be >= 0, got {every_n_steps!r}")
        self.monitor = monitor if monitor is not None else TopologyMonitor(**monitor_options)
        self.every_n_steps = int(every_n_steps)
        self.measure_on_epoch_end = bool(on_epoch_end)
        self.histograms = bool(histograms)
        self.prefix = prefix
        self._last_step: int | None = None

    def _measure(self, trainer, pl_module) -> None:
        step = int(trainer.global_step)
        if step == self._last_step:
            return  # an epoch that ends on a measuring step is measured once
        self._last_step = step
        self.monitor.update(pl_module, step=step)
        metrics = {f"{self.prefix}{k}": v for k, v in self.monitor.finite().items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if self.histograms:
            fan_in = {f"{self.prefix}{name}/fan_in": values for name, values in self.monitor.fan_in().items()}
            log_histograms(trainer.loggers, fan_in, step)

    def on_train_start(self, trainer, pl_module) -> None:
        self._measure(trainer, pl_module)  # the initial masks: the reference NNSTD is measured from

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.measure_on_epoch_end:
            self._measure(trainer, pl_module)

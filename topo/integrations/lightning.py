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

    Examples
    --------
    A logger whose experiment draws histograms (TensorBoard's ``SummaryWriter`` has
    ``add_histogram``) gets them; a CSV logger does not:

    >>> import tempfile
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from lightning.pytorch.loggers import CSVLogger
    >>> drawn = []
    >>> writer = SimpleNamespace(add_histogram=lambda tag, values, global_step: drawn.append((tag, global_step)))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loggers = [SimpleNamespace(experiment=writer), CSVLogger(tmp)]
    ...     sent = log_histograms(loggers, {"topology/fc1/fan_in": np.array([2, 3, 1])}, step=10)
    >>> sent, drawn
    (1, [('topology/fc1/fan_in', 10)])
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

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> import lightning
    >>> class Classifier(lightning.LightningModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    ...     def training_step(self, batch, batch_idx):
    ...         x, y = batch
    ...         return torch.nn.functional.cross_entropy(self.net(x), y)
    ...     def configure_optimizers(self):
    ...         return torch.optim.SGD(self.parameters(), lr=0.1)
    >>> _ = torch.manual_seed(0)
    >>> data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    >>> callback = TopologyCallback(every_n_steps=2, histograms=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     trainer = lightning.Trainer(max_steps=4, default_root_dir=tmp, callbacks=[callback], accelerator="cpu",
    ...                                 enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    ...     trainer.fit(Classifier(), torch.utils.data.DataLoader(data, batch_size=2))
    >>> [entry["step"] for entry in callback.monitor.history]
    [0.0, 2.0, 4.0]
    >>> callback.monitor.compute()["net.0/density"], callback.monitor.compute()["nnstd"]
    (1.0, 0.0)
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

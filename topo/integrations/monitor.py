"""``TopologyMonitor``: topology metrics of a model while it trains, torchmetrics style.

``update(model)`` reads the model's masks (:func:`topo.integrations.live.from_module`,
masks only) and compares them with the first and the previous update; ``compute()``
returns the figures of the latest update as a flat ``{name: float}`` mapping that any
logger takes; ``reset()`` forgets everything. Every figure comes from topo's analysis
functions:

- ``<layer>/fan_in_cv``: :func:`topo.analysis.degree.fan_in_cv`;
- ``<layer>/density``: the layer's share of active connections;
- ``<layer>/turnover``: :func:`topo.analysis.distance.mask_turnover` since the previous
  update (from the second update on);
- ``<layer>/nnstd``: :func:`topo.analysis.distance.nnstd` from the first update (its
  per-layer distance; ``nnstd`` alone is the network's);
- ``<layer>/hub_overlap``: :func:`topo.analysis.hubs.hub_overlap` with the previous
  update (neurons by index, the top ``hub_fraction`` by fan-in);
- ``<layer>/no_input``: output neurons without any input; ``<layer>/no_output``: input
  neurons that feed nothing in this layer.

:meth:`TopologyMonitor.fan_in` gives each layer's fan-in of the latest update, for the
loggers that draw histograms.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from topo.errors import TopoError

if TYPE_CHECKING:
    from topo.topology import Topology

__all__ = ["TopologyMonitor"]


class TopologyMonitor:
    """Per-layer topology metrics over the updates of a training run.

    Parameters
    ----------
    layers : str, optional
        Regular expression; only layers whose name matches are measured (e.g. the
        layers :func:`topo.sparsify` masks: ``"|".join(controller.names)``).
    hub_fraction : float
        Share of each layer's output neurons counted as hubs (by fan-in).
    nnstd : bool
        Measure NNSTD to the first update (an assignment problem per layer; switch it
        off for very wide layers).
    example_input : optional
        Passed to :func:`~topo.integrations.live.from_module` to order layers by a
        forward pass (default: registration order).

    Attributes
    ----------
    history : list of dict
        The result of :meth:`compute` after every update, with its ``step``.

    Examples
    --------
    >>> monitor = TopologyMonitor()  # doctest: +SKIP
    >>> monitor.update(model, step=0)  # doctest: +SKIP
    >>> monitor.compute()["fc1/fan_in_cv"]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        layers: str | None = None,
        hub_fraction: float = 0.1,
        nnstd: bool = True,
        example_input: Any = None,
    ) -> None:
        if not 0.0 < float(hub_fraction) <= 1.0:
            raise TopoError(f"hub_fraction must be in (0, 1], got {hub_fraction!r}")
        self.layers = layers
        self.hub_fraction = float(hub_fraction)
        self.measure_nnstd = bool(nnstd)
        self.example_input = example_input
        self.reset()

    def reset(self) -> None:
        """Forget every update (the next one becomes the first)."""
        self._first: Topology | None = None
        self._previous: Topology | None = None
        self._latest: Topology | None = None
        self._values: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.updates = 0

    def update(self, model, *, step: int | None = None) -> None:
        """Read the model's masks now and measure them.

        Parameters
        ----------
        model : torch.nn.Module or Topology
            The model being trained (or a Topology already read).
        step : int, optional
            The training step, kept in :attr:`history`.
        """
        from topo.analysis.degree import fan_in_cv
        from topo.analysis.distance import mask_turnover, nnstd
        from topo.analysis.hubs import hub_overlap
        from topo.integrations.live import from_module
        from topo.topology import Topology

        if isinstance(model, Topology):
            current = model
        else:
            current = from_module(model, self.example_input, weights=False, layers=self.layers)
        if self._first is not None:
            before = [(layer.name, layer.shape) for layer in self._first]
            now = [(layer.name, layer.shape) for layer in current]
            if before != now:
                raise TopoError(f"the model's layers changed between updates ({before} then {now}); reset() first")
        values: dict[str, float] = {}
        for layer, cv in zip(current, fan_in_cv(current)):
            values[f"{layer.name}/fan_in_cv"] = float(cv)
            values[f"{layer.name}/density"] = float(layer.density)
            values[f"{layer.name}/no_input"] = float(np.count_nonzero(layer.fan_in == 0))
            values[f"{layer.name}/no_output"] = float(np.count_nonzero(layer.fan_out == 0))
        values["density"] = float(current.density)
        if self._latest is not None:
            for layer, share in zip(current, mask_turnover(self._latest, current)):
                values[f"{layer.name}/turnover"] = float(share)
            overlaps = hub_overlap(self._latest, current, fraction=self.hub_fraction)
            for layer, overlap in zip(current, overlaps):
                values[f"{layer.name}/hub_overlap"] = float(overlap)
        if self._first is not None and self.measure_nnstd:
            result = nnstd(self._first, current)
            for layer, distance in zip(current, result.layer_distances):
                values[f"{layer.name}/nnstd"] = float(distance)
            values["nnstd"] = float(result.distance)
        if self._first is None:
            self._first = current
        self._previous, self._latest = self._latest, current
        self._values = values
        self.updates += 1
        self.history.append({"step": float(step) if step is not None else float(self.updates - 1), **values})

    def compute(self) -> dict[str, float]:
        """The figures of the latest update, ``{"<layer>/<metric>": value, ...}``.

        Raises
        ------
        TopoError
            Before the first :meth:`update`.
        """
        if self._latest is None:
            raise TopoError("TopologyMonitor.compute() before any update(model)")
        return dict(self._values)

    def finite(self) -> dict[str, float]:
        """:meth:`compute` without NaN or infinite values (what loggers accept)."""
        return {k: v for k, v in self.compute().items() if math.isfinite(v)}

    def fan_in(self) -> dict[str, np.ndarray]:
        """Each layer's fan-in (inputs per output neuron) at the latest update."""
        if self._latest is None:
            raise TopoError("TopologyMonitor.fan_in() before any update(model)")
        return {layer.name: layer.fan_in for layer in self._latest}

    @property
    def topology(self):
        """The Topology (masks only) of the latest update, or None."""
        return self._latest

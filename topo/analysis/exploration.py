"""Exploration over a run: connections ever active, and each neuron's activity.

In-Time Over-Parameterization (ITOP; Liu et al., ICML 2021) measures how much of the
dense network dynamic sparse training has visited: the *exploration rate*

.. math::

    R = \\frac{\\sum_l \\lVert \\bigvee_{t} M_l^{(t)} \\rVert_0}{\\sum_l n^{out}_l n^{in}_l},

the share of all possible connections that were active in at least one of the masks
``M^(t)`` seen so far. ITOP reports that accuracy tracks ``R``: a run that explores
more finds better sparse networks.

The sums run over the sparse layers: a layer dense at the first checkpoint (ERK often
makes the output layer dense) has explored all of itself from the start and would only
dilute ``R``. ``include_dense=True`` sums over every layer, as does a network whose
layers are all dense.

:func:`exploration` computes ``R`` from a run's checkpoints (cumulatively, at every
checkpoint, for the whole network and per layer) and, per neuron:

- ``explored_fan_in``: the share of a neuron's possible inputs that were ever active
  (``R`` of its row);
- ``active_share``: the share of checkpoints in which the neuron is present. A neuron is
  *present* while it has an input or an output; a neuron with neither has been removed
  (SRigL's ablation, chain removal), so the layer's *active width* is its present
  neurons, which may shrink over a run while the mask keeps its shape.

Only the checkpoints given are seen: a connection active only between two of them is
missed, so ``R`` is a lower bound that tightens with more checkpoints (``topo train
--checkpoint-every``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from topo.analysis.degree import active_widths, present_neurons  # re-exported: first defined here
from topo.analysis.degree import is_dense, summary_layers
from topo.analysis.drift import checkpoint_labels
from topo.errors import TopoError
from topo.topology import Topology

__all__ = ["ExplorationResult", "exploration", "present_neurons", "active_widths"]


@dataclass
class ExplorationResult:
    """What :func:`exploration` measured over a sequence of checkpoints.

    Attributes
    ----------
    labels : list of str
        One per checkpoint (its epoch, ``epoch@step`` inside an epoch, or ``#i``).
    epochs : list of int or None
    layers : list of str
    rate : numpy.ndarray
        ``[n_checkpoints]``: the network's exploration rate ``R`` up to each checkpoint,
        over the layers in ``counted``.
    layer_rate : numpy.ndarray
        ``[n_checkpoints, n_layers]``: the same per layer.
    density : numpy.ndarray
        ``[n_checkpoints, n_layers]``: each checkpoint's own density, for comparison
        (``R`` starts at the initial density and can only grow).
    active_width : numpy.ndarray of int
        ``[n_checkpoints, n_layers]``: present output neurons of each layer.
    width : list of int
        Each layer's full width (its number of output neurons).
    explored_fan_in : list of numpy.ndarray
        Per layer, ``[n_out]``: share of each neuron's possible inputs ever active.
    active_share : list of numpy.ndarray
        Per layer, ``[n_out]``: share of the checkpoints in which each neuron is present.
    final_cv_present : list of float
        Per layer, the last checkpoint's fan-in CV over its present neurons (removed
        neurons left out, so SRigL's constant fan-in reads 0).
    counted : list of str
        The layers ``rate`` sums over.
    dense : list of str
        The layers dense at the first checkpoint (left out of ``rate`` unless
        ``include_dense``).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> a = Topology.from_masks([np.array([[1, 0], [0, 0]])], names=["fc"], info={"epoch": 0})
    >>> b = Topology.from_masks([np.array([[0, 1], [0, 0]])], names=["fc"], info={"epoch": 1})
    >>> result = exploration([a, b])
    >>> result.labels, result.layers, result.density.tolist(), result.layer_rate.tolist()
    (['0', '1'], ['fc'], [[0.25], [0.25]], [[0.25], [0.5]])
    """

    labels: list[str]
    epochs: list[int | None]
    layers: list[str]
    rate: np.ndarray
    layer_rate: np.ndarray
    density: np.ndarray
    active_width: np.ndarray
    width: list[int]
    explored_fan_in: list[np.ndarray] = field(default_factory=list)
    active_share: list[np.ndarray] = field(default_factory=list)
    #: per layer, the fan-in CV of the last checkpoint over its present neurons only
    final_cv_present: list[float] = field(default_factory=list)
    #: the layers ``rate`` sums over (the sparse ones, unless ``include_dense``)
    counted: list[str] = field(default_factory=list)
    #: the layers dense at the first checkpoint
    dense: list[str] = field(default_factory=list)

    @property
    def final_rate(self) -> float:
        """``R`` over all the checkpoints."""
        return float(self.rate[-1])

    @property
    def neurons_removed(self) -> list[int]:
        """Per layer: full width less the active width at the last checkpoint."""
        return [int(w - a) for w, a in zip(self.width, self.active_width[-1])]

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per checkpoint and layer: rate, density, active width."""
        rows = []
        for i, label in enumerate(self.labels):
            for j, name in enumerate(self.layers):
                rows.append({
                    "label": label,
                    "layer": name,
                    "exploration_rate": float(self.layer_rate[i, j]),
                    "density": float(self.density[i, j]),
                    "active_width": int(self.active_width[i, j]),
                    "width": int(self.width[j]),
                })
        return rows

    def layer_rows(self) -> list[dict[str, Any]]:
        """One row per layer: final rate, neurons removed, and per-neuron summaries."""
        rows = []
        for j, name in enumerate(self.layers):
            explored = self.explored_fan_in[j]
            share = self.active_share[j]
            rows.append({
                "layer": name,
                "exploration_rate": float(self.layer_rate[-1, j]),
                "initial_density": float(self.density[0, j]),
                "width": int(self.width[j]),
                "active_width": int(self.active_width[-1, j]),
                "neurons_removed": int(self.neurons_removed[j]),
                "explored_fan_in_mean": float(explored.mean()) if explored.size else float("nan"),
                "explored_fan_in_max": float(explored.max()) if explored.size else float("nan"),
                "always_present": float((share == 1.0).mean()) if share.size else float("nan"),
                "fan_in_cv_present": float(self.final_cv_present[j]) if self.final_cv_present else float("nan"),
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the overall rate per checkpoint, the per-checkpoint and per-layer rows,
        and per layer the per-neuron ``explored_fan_in`` and ``active_share``."""
        return {
            "labels": list(self.labels),
            "rate": [float(v) for v in self.rate],
            "final_rate": self.final_rate,
            "counted_layers": list(self.counted),
            "dense_layers": list(self.dense),
            "checkpoints": self.to_rows(),
            "layers": self.layer_rows(),
            "neurons": {
                name: {
                    "explored_fan_in": [float(v) for v in self.explored_fan_in[j]],
                    "active_share": [float(v) for v in self.active_share[j]],
                }
                for j, name in enumerate(self.layers)
            },
        }


def _where(topology: Topology, index: int) -> str:
    path = topology.info.get("path")
    return str(path) if path else f"checkpoint {index}"


def exploration(topologies: Sequence[Topology], *, include_dense: bool = False) -> ExplorationResult:
    """The exploration rate and per-neuron activity of a run (see the module notes).

    Parameters
    ----------
    topologies : sequence of Topology
        The run's checkpoints in training order, all with the same layers and shapes.
    include_dense : bool
        Sum the network's rate over every layer, the dense ones too (default: over the
        layers that are sparse at the first checkpoint).

    Returns
    -------
    ExplorationResult

    Raises
    ------
    TopoError
        If there are no checkpoints, or they differ in layers or shapes (naming the
        first checkpoint that differs).

    Examples
    --------
    >>> import numpy as np
    >>> from topo.topology import Topology
    >>> a = Topology.from_masks([np.array([[1, 0], [0, 0]])], names=["fc"])
    >>> b = Topology.from_masks([np.array([[0, 1], [0, 0]])], names=["fc"])
    >>> exploration([a, b]).rate.tolist()
    [0.25, 0.5]

    A dense layer beside it would only dilute the rate, so it is left out unless asked:

    >>> out = Topology.from_masks([np.ones((2, 2))], names=["out"]).layers
    >>> a2, b2 = (Topology([*t.layers, *out]) for t in (a, b))
    >>> exploration([a2, b2]).rate.tolist(), exploration([a2, b2], include_dense=True).rate.tolist()
    ([0.25, 0.5], [0.625, 0.75])
    """
    topologies = list(topologies)
    if not topologies:
        raise TopoError("exploration needs at least one checkpoint")
    first = topologies[0]
    names = first.names
    shapes = [layer.shape for layer in first]
    for i, topology in enumerate(topologies):
        if topology.names != names or [layer.shape for layer in topology] != shapes:
            raise TopoError(
                f"{_where(topology, i)} has layers {list(zip(topology.names, [l.shape for l in topology]))}, "
                f"expected {list(zip(names, shapes))} (exploration compares masks of one network)"
            )
    n_ckpt, n_layers = len(topologies), len(names)
    sizes = np.array([o * i for o, i in shapes], dtype=np.float64)
    dense = [is_dense(layer) for layer in first]
    counted = summary_layers(dense, include_dense=include_dense)
    counted_size = sizes[counted].sum()
    ever = [sp.csr_matrix(shape, dtype=np.int8) for shape in shapes]
    rate = np.zeros(n_ckpt)
    layer_rate = np.zeros((n_ckpt, n_layers))
    density = np.zeros((n_ckpt, n_layers))
    active_width = np.zeros((n_ckpt, n_layers), dtype=np.int64)
    present_count = [np.zeros(o, dtype=np.int64) for o, _ in shapes]
    for t, topology in enumerate(topologies):
        for j, layer in enumerate(topology):
            ever[j] = ((ever[j] + layer.mask.astype(np.int8)) > 0).astype(np.int8)
            layer_rate[t, j] = ever[j].nnz / sizes[j] if sizes[j] else float("nan")
            density[t, j] = layer.density
        rate[t] = sum(ever[j].nnz for j in counted) / counted_size if counted_size else float("nan")
        for j, present in enumerate(present_neurons(topology)):
            active_width[t, j] = int(present.sum())
            present_count[j] += present
    explored = [
        np.asarray(e.sum(axis=1)).ravel() / max(shape[1], 1) for e, shape in zip(ever, shapes)
    ]
    share = [count / n_ckpt for count in present_count]
    labels, epochs, _ = checkpoint_labels(topologies)
    from topo.analysis.degree import fan_in_cv

    return ExplorationResult(
        labels=labels, epochs=epochs, layers=list(names), rate=rate, layer_rate=layer_rate, density=density,
        active_width=active_width, width=[o for o, _ in shapes], explored_fan_in=explored, active_share=share,
        final_cv_present=fan_in_cv(topologies[-1], present_only=True),
        counted=[names[j] for j in counted], dense=[name for name, d in zip(names, dense) if d],
    )

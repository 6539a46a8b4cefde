"""Degree basics: fan-in, fan-out and their per-layer and whole-network summaries.

Everything is read off the CSR masks with numpy; no graph is walked.

Dense layers (every possible connection present, e.g. the output layer that ERK keeps
dense) have equal fan-ins and a CV of 0; averaged in, they pull a network's mean CV
toward 0 whatever its sparse layers do. Whole-network summaries are therefore taken
over the sparse layers unless ``include_dense=True`` (over all layers when every layer
is dense), and name the dense layers they left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from topo.topology import Layer, Topology

__all__ = [
    "is_dense",
    "dense_layer_names",
    "summary_layers",
    "fan_in",
    "fan_out",
    "coefficient_of_variation",
    "fan_in_cv",
    "present_neurons",
    "active_widths",
    "LayerDegree",
    "NetworkDegree",
    "layer_degree",
    "layer_degrees",
    "degree_summary",
    "summarise_degrees",
]


def is_dense(layer: Layer | "LayerDegree") -> bool:
    """True when every possible connection of the layer is present (and it has any).

    Parameters
    ----------
    layer : Layer or LayerDegree

    Examples
    --------
    >>> import numpy as np
    >>> is_dense(Layer.from_mask("out", np.ones((10, 4)))), is_dense(Layer.from_mask("fc", np.eye(4)))
    (True, False)
    """
    size = layer.n_out * layer.n_in
    return size > 0 and int(layer.nnz) == size


def dense_layer_names(layers: Sequence[Layer] | Sequence["LayerDegree"] | Topology) -> list[str]:
    """The names of the dense layers (:func:`is_dense`), in order.

    Parameters
    ----------
    layers : Topology or sequence of Layer or LayerDegree

    Returns
    -------
    list of str

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.eye(3), np.ones((2, 3))], names=["fc1", "out"])
    >>> dense_layer_names(net)
    ['out']
    """
    return [layer.name for layer in layers if is_dense(layer)]


def summary_layers(dense: Sequence[bool], *, include_dense: bool = False) -> list[int]:
    """Indices of the layers a network-level summary is taken over.

    Parameters
    ----------
    dense : sequence of bool
        Per layer, whether it is dense.
    include_dense : bool
        Take every layer.

    Returns
    -------
    list of int
        The sparse layers' indices; all indices when ``include_dense`` or when every
        layer is dense (a dense network is summarised as it is).

    Examples
    --------
    >>> summary_layers([False, False, True]), summary_layers([False, True], include_dense=True)
    ([0, 1], [0, 1])
    """
    flags = [bool(d) for d in dense]
    keep = [i for i, d in enumerate(flags) if include_dense or not d]
    return keep or list(range(len(flags)))


def _layer(topology: Topology, layer: int | str) -> Layer:
    return topology[layer]


def fan_in(topology: Topology, layer: int | str) -> np.ndarray:
    """Number of inputs of each output neuron of ``layer``.

    Parameters
    ----------
    topology : Topology
    layer : int or str
        Index or name of the layer.

    Returns
    -------
    numpy.ndarray of int64, shape ``(out,)``

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 0]])])
    >>> fan_in(net, 0).tolist()
    [2, 1]
    """
    return _layer(topology, layer).fan_in


def fan_out(topology: Topology, layer: int | str) -> np.ndarray:
    """Number of outputs of each input neuron of ``layer``, shape ``(in,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 0]])], names=["fc1"])
    >>> fan_out(net, "fc1").tolist()
    [1, 2, 0]
    """
    return _layer(topology, layer).fan_out


def coefficient_of_variation(values: np.ndarray) -> float:
    """Population standard deviation over mean; NaN when the mean is 0 or there are no values.

    Examples
    --------
    >>> coefficient_of_variation([1, 3])
    0.5
    >>> coefficient_of_variation([0, 0])
    nan
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    mean = values.mean()
    if mean == 0:
        return float("nan")
    return float(values.std() / mean)


def fan_in_cv(topology: Topology, *, present_only: bool = False) -> list[float]:
    """Coefficient of variation of the fan-in, per layer.

    Parameters
    ----------
    topology : Topology
    present_only : bool
        Leave out the neurons a method removed (no input and no output; see
        :func:`present_neurons`), so that a layer whose
        active width shrank is measured over the neurons it still has.

    Returns
    -------
    list of float
        ``std(fan_in) / mean(fan_in)`` (population std) for each layer; NaN for a
        layer without connections.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 1], [0, 1, 0]]), np.ones((2, 2))])
    >>> fan_in_cv(net)
    [0.5, 0.0]
    """
    if not present_only:
        return [coefficient_of_variation(layer.fan_in) for layer in topology]
    return [coefficient_of_variation(layer.fan_in[present]) for layer, present in zip(topology, present_neurons(topology))]


@dataclass(frozen=True)
class LayerDegree:
    """Degree figures of one layer.

    ``no_inputs`` counts this layer's output neurons with fan-in 0; ``no_outputs``
    counts its input neurons that feed no output of this layer (fan-out 0).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 0]])])
    >>> figures = layer_degree(net[0])
    >>> figures.nnz, figures.fan_in_max, figures.no_outputs
    (3, 2, 1)
    """

    name: str
    n_in: int
    n_out: int
    nnz: int
    density: float
    fan_in_mean: float
    fan_in_std: float
    fan_in_cv: float
    fan_in_min: int
    fan_in_max: int
    fan_out_mean: float
    fan_out_max: int
    no_inputs: int
    no_outputs: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NetworkDegree:
    """Whole-network degree figures.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> summary = degree_summary(Topology.from_masks([np.eye(3), np.ones((2, 3))]))
    >>> summary.n_layers, summary.n_neurons, summary.nnz, summary.size
    (2, 8, 9, 15)
    """

    n_layers: int
    n_neurons: int
    nnz: int
    size: int
    density: float
    fan_in_cv_mean: float
    fan_in_cv_max: float
    no_inputs: int
    no_outputs: int
    dense_layers: tuple[str, ...] = ()
    include_dense: bool = False

    def as_dict(self) -> dict:
        data = asdict(self)
        data["dense_layers"] = list(self.dense_layers)
        return data


def layer_degree(layer: Layer) -> LayerDegree:
    """Degree figures of one layer; see :class:`LayerDegree`.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Layer
    >>> figures = layer_degree(Layer.from_mask("fc1", np.array([[1, 1, 0], [0, 0, 0]])))
    >>> figures.fan_in_min, figures.no_inputs, figures.no_outputs
    (0, 1, 1)
    """
    fin = layer.fan_in
    fout = layer.fan_out
    has_in = fin.size > 0
    return LayerDegree(
        name=layer.name,
        n_in=layer.n_in,
        n_out=layer.n_out,
        nnz=layer.nnz,
        density=layer.density,
        fan_in_mean=float(fin.mean()) if has_in else float("nan"),
        fan_in_std=float(fin.std()) if has_in else float("nan"),
        fan_in_cv=coefficient_of_variation(fin),
        fan_in_min=int(fin.min()) if has_in else 0,
        fan_in_max=int(fin.max()) if has_in else 0,
        fan_out_mean=float(fout.mean()) if fout.size else float("nan"),
        fan_out_max=int(fout.max()) if fout.size else 0,
        no_inputs=int(np.count_nonzero(fin == 0)),
        no_outputs=int(np.count_nonzero(fout == 0)),
    )


def layer_degrees(topology: Topology) -> list[LayerDegree]:
    """Degree figures of every layer, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.eye(3), np.ones((2, 3))], names=["fc1", "fc2"])
    >>> [(d.name, d.nnz) for d in layer_degrees(net)]
    [('fc1', 3), ('fc2', 6)]
    """
    return [layer_degree(layer) for layer in topology]


def degree_summary(topology: Topology, *, include_dense: bool = False) -> NetworkDegree:
    """Whole-network figures: sizes, density, fan-in CV over layers, dead neurons.

    ``no_inputs`` counts neurons outside the network's input layers that receive no
    connection; ``no_outputs`` counts neurons that feed nothing, among all neurons
    that are inputs of some layer (the final outputs are not counted). The fan-in CV
    mean and maximum are over the sparse layers unless ``include_dense``
    (:func:`summary_layers`); ``dense_layers`` names the dense ones.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> summary = degree_summary(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 0]])]))
    >>> summary.nnz, summary.density, summary.no_outputs
    (3, 0.5, 1)
    """
    return summarise_degrees(layer_degrees(topology), n_neurons=topology.n_neurons, include_dense=include_dense)


def summarise_degrees(
    per_layer: Sequence[LayerDegree], *, n_neurons: int, include_dense: bool = False
) -> NetworkDegree:
    """:func:`degree_summary` from figures already measured per layer.

    For a network read layer by layer (:func:`topo.formats.scan`), whose masks were
    not all kept; ``n_neurons`` is the topology's ``n_neurons`` (it depends only on
    shapes and chaining).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.eye(3), np.ones((2, 3))])
    >>> summarise_degrees(layer_degrees(net), n_neurons=net.n_neurons) == degree_summary(net)
    True
    """
    dense = [is_dense(d) for d in per_layer]
    kept = summary_layers(dense, include_dense=include_dense)
    cvs = np.array([per_layer[i].fan_in_cv for i in kept], dtype=np.float64)
    finite = cvs[np.isfinite(cvs)]
    nnz = sum(d.nnz for d in per_layer)
    size = sum(d.n_in * d.n_out for d in per_layer)
    return NetworkDegree(
        n_layers=len(per_layer),
        n_neurons=int(n_neurons),
        nnz=nnz,
        size=size,
        density=nnz / size if size else 0.0,
        fan_in_cv_mean=float(finite.mean()) if finite.size else float("nan"),
        fan_in_cv_max=float(finite.max()) if finite.size else float("nan"),
        no_inputs=sum(d.no_inputs for d in per_layer),
        no_outputs=sum(d.no_outputs for d in per_layer),
        dense_layers=tuple(d.name for d, flag in zip(per_layer, dense) if flag),
        include_dense=bool(include_dense),
    )


def present_neurons(topology: Topology) -> list[np.ndarray]:
    """Per layer, a bool array over its output neurons: present (an input or an output).

    A neuron of the last layer (a network output) is present when it has an input.

    Parameters
    ----------
    topology : Topology

    Returns
    -------
    list of numpy.ndarray of bool
        One ``[n_out]`` array per layer.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1], [0, 0], [1, 0]]), np.array([[1, 0, 1]])])
    >>> [present.tolist() for present in present_neurons(net)]
    [[True, False, True], [True]]
    """
    layers = list(topology)
    present = []
    for k, layer in enumerate(layers):
        has_input = layer.fan_in > 0
        if k + 1 < len(layers) and layers[k + 1].n_in == layer.n_out:
            has_input = has_input | (layers[k + 1].fan_out > 0)
        present.append(np.asarray(has_input, dtype=bool))
    return present


def active_widths(topology: Topology) -> list[int]:
    """Per layer, the number of its output neurons that are present (see :func:`present_neurons`).

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1], [0, 0], [1, 0]]), np.array([[1, 0, 1]])])
    >>> net.widths, active_widths(net)
    ([2, 3, 1], [2, 1])
    """
    return [int(p.sum()) for p in present_neurons(topology)]

"""The value every part of topo passes around: a `Topology` of `Layer` masks.

A layer is a boolean connectivity mask of shape ``[out, in]`` (the torch ``Linear``
layout) stored as scipy CSR, with optional weight values, bias and per-neuron
statistics. Consecutive layers chain: layer k's outputs are layer k+1's inputs,
unless one of the two is marked as standing alone (an attention block, an embedding),
in which case it has no edges to its neighbours.

The graph behind a topology has *node layers*: node layer 0 holds the network's
inputs, and every layer adds the node layer of its outputs. A layer that does not
chain to the previous one starts a new input node layer of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from topo.errors import TopoError

__all__ = ["Layer", "Topology"]


def _as_csr_mask(mask: Any, name: str) -> sp.csr_matrix:
    """Turn a dense or sparse array into a boolean CSR matrix with sorted indices."""
    if sp.issparse(mask):
        if mask.ndim != 2:
            raise TopoError(f"layer {name!r}: mask must be 2-D, got {mask.ndim}-D")
        csr = sp.csr_matrix(mask)
        csr.eliminate_zeros()
        csr = csr.astype(bool)
    else:
        arr = np.asarray(mask)
        if arr.ndim != 2:
            raise TopoError(f"layer {name!r}: mask must be 2-D [out, in], got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise TopoError(f"layer {name!r}: mask has non-numeric dtype {arr.dtype}")
        csr = _dense_to_csr(arr != 0)
    csr.sort_indices()
    return csr


def _dense_to_csr(nonzero: np.ndarray) -> sp.csr_matrix:
    """A boolean CSR matrix from a dense boolean array, built directly from the flat
    nonzero positions, faster than scipy's general conversion)."""
    n_out, n_in = nonzero.shape
    flat = np.flatnonzero(nonzero)
    indices = (flat % n_in).astype(np.int32) if n_in else flat.astype(np.int32)
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(nonzero, axis=1), out=indptr[1:])
    data = np.ones(flat.size, dtype=bool)
    return sp.csr_matrix((data, indices, indptr), shape=(n_out, n_in))


def _frozen_stats(stats: Mapping[str, Any] | None, n_out: int, name: str) -> Mapping[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in (stats or {}).items():
        arr = np.asarray(value)
        if arr.shape != (n_out,):
            raise TopoError(
                f"layer {name!r}: statistic {key!r} has shape {arr.shape}, expected ({n_out},)"
            )
        out[str(key)] = arr
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class Layer:
    """One weight matrix seen as a bipartite graph from its inputs to its outputs.

    Parameters
    ----------
    name : str
        The layer's name, e.g. ``"fc1"`` or ``"encoder.layers.2.mlp.fc1"``.
    mask : scipy.sparse.csr_matrix
        Boolean connectivity of shape ``[out, in]``: ``mask[i, j]`` means input
        neuron ``j`` feeds output neuron ``i``. Use :meth:`from_mask` or
        :meth:`from_weight` to build one from other arrays.
    weight : numpy.ndarray, optional
        Dense weight values ``[out, in]`` (float), zero where the mask is off.
    bias : numpy.ndarray, optional
        Bias of length ``out``.
    stats : mapping of str to numpy.ndarray, optional
        Per-output-neuron statistics gathered in training (e.g. ``"grad_mean"``).
    source : str
        Where the layer came from (a file and key, a format); free text.
    standalone : bool
        True when the layer does not chain to its neighbours.
    info : mapping, optional
        Extra facts about the layer (e.g. ``{"kind": "conv", "kernel_density": 0.3}``).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Layer.from_mask("fc1", np.array([[1, 1, 0], [0, 1, 0]]))
    >>> layer
    Layer('fc1', 2x3, density=0.5)
    >>> layer.fan_in.tolist(), layer.fan_out.tolist()
    ([2, 1], [1, 2, 0])
    """

    name: str
    mask: sp.csr_matrix
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stats: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    standalone: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = str(self.name)
        object.__setattr__(self, "name", name)
        mask = self.mask
        if not (sp.isspmatrix_csr(mask) and mask.dtype == bool and mask.has_sorted_indices):
            mask = _as_csr_mask(mask, name)
        object.__setattr__(self, "mask", mask)
        n_out, n_in = mask.shape
        if self.weight is not None:
            weight = np.asarray(self.weight)
            if weight.shape != mask.shape:
                raise TopoError(
                    f"layer {name!r}: weight shape {weight.shape} differs from mask shape {mask.shape}"
                )
            object.__setattr__(self, "weight", weight)
        if self.bias is not None:
            bias = np.asarray(self.bias).reshape(-1)
            if bias.shape != (n_out,):
                raise TopoError(f"layer {name!r}: bias has length {bias.size}, expected {n_out}")
            object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "stats", _frozen_stats(self.stats, n_out, name))
        object.__setattr__(self, "info", MappingProxyType(dict(self.info or {})))

    # -- constructors -------------------------------------------------------------
    @classmethod
    def from_mask(cls, name: str, mask: Any, **kwargs: Any) -> "Layer":
        """Build a layer from a dense or sparse mask ``[out, in]`` (nonzero means connected)."""
        return cls(name=name, mask=_as_csr_mask(mask, name), **kwargs)

    @classmethod
    def from_weight(
        cls, name: str, weight: Any, mask: Any | None = None, **kwargs: Any
    ) -> "Layer":
        """Build a layer from weight values ``[out, in]``, dense or sparse.

        The mask is ``mask`` when given, otherwise the nonzero pattern of ``weight``.
        Weights outside the mask are set to zero.
        """
        if sp.issparse(weight):
            weight_dense = np.asarray(weight.toarray())
        else:
            weight_dense = np.array(weight, copy=True)
        if weight_dense.ndim != 2:
            raise TopoError(f"layer {name!r}: weight must be 2-D [out, in], got shape {weight_dense.shape}")
        if weight_dense.dtype.kind not in "biuf":
            raise TopoError(f"layer {name!r}: weight has non-numeric dtype {weight_dense.dtype}")
        csr = _as_csr_mask(weight_dense if mask is None else mask, name)
        if csr.shape != weight_dense.shape:
            raise TopoError(
                f"layer {name!r}: mask shape {csr.shape} differs from weight shape {weight_dense.shape}"
            )
        if mask is not None:
            weight_dense[~csr.toarray()] = 0
        return cls(name=name, mask=csr, weight=weight_dense, **kwargs)

    def with_(self, **changes: Any) -> "Layer":
        """A copy of this layer with some fields replaced."""
        return replace(self, **changes)

    # -- properties ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)``."""
        return tuple(self.mask.shape)  # type: ignore[return-value]

    @property
    def n_out(self) -> int:
        return int(self.mask.shape[0])

    @property
    def n_in(self) -> int:
        return int(self.mask.shape[1])

    @property
    def nnz(self) -> int:
        """Number of connections."""
        return int(self.mask.nnz)

    @property
    def size(self) -> int:
        """Number of possible connections, ``out * in``."""
        return self.n_out * self.n_in

    @property
    def density(self) -> float:
        """Share of possible connections that exist."""
        return self.nnz / self.size if self.size else 0.0

    @property
    def fan_in(self) -> np.ndarray:
        """Number of inputs of each output neuron, shape ``(out,)``."""
        return np.diff(self.mask.indptr).astype(np.int64)

    @property
    def fan_out(self) -> np.ndarray:
        """Number of outputs of each input neuron, shape ``(in,)``."""
        # bincount widens the indices it counts to int64 first: a slice at a time, that copy
        # stays small (a large layer's whole copy would cost more than the counting)
        indices = self.mask.indices
        step = max(2**18, 4 * self.n_in)
        counts = np.bincount(indices[:step], minlength=self.n_in).astype(np.int64, copy=False)
        for start in range(step, indices.size, step):
            counts += np.bincount(indices[start : start + step], minlength=self.n_in)
        return counts

    def __repr__(self) -> str:
        extra = ", standalone" if self.standalone else ""
        return f"Layer({self.name!r}, {self.n_out}x{self.n_in}, density={self.density:.4g}{extra})"


class Topology(Sequence[Layer]):
    """An ordered list of layers: a sparse network seen as a layered directed graph.

    Parameters
    ----------
    layers : iterable of Layer
        In forward order. Names must be unique.
    info : mapping, optional
        Facts about the whole network: epoch, step, the run's configuration, the
        file it was read from, warnings raised while reading it.

    Raises
    ------
    TopoError
        If there are no layers, names repeat, or two consecutive layers that do not
        stand alone fail to chain (``out`` of one differs from ``in`` of the next).

    Examples
    --------
    >>> import numpy as np
    >>> net = Topology.from_masks([np.ones((3, 4)), np.eye(3)], names=["fc1", "fc2"])
    >>> len(net), net.names, net.widths
    (2, ['fc1', 'fc2'], [4, 3, 3])
    >>> net.nnz, net.size, round(net.density, 3)
    (15, 21, 0.714)
    >>> net["fc2"].fan_in.tolist()
    [1, 1, 1]
    """

    def __init__(self, layers: Iterable[Layer], info: Mapping[str, Any] | None = None) -> None:
        self._layers: tuple[Layer, ...] = tuple(layers)
        self.info: Mapping[str, Any] = MappingProxyType(dict(info or {}))
        if not self._layers:
            raise TopoError("a topology needs at least one layer")
        seen: set[str] = set()
        for layer in self._layers:
            if not isinstance(layer, Layer):
                raise TopoError(f"expected Layer objects, got {type(layer).__name__}")
            if layer.name in seen:
                raise TopoError(f"layer name {layer.name!r} appears twice")
            seen.add(layer.name)
        for prev, layer in zip(self._layers, self._layers[1:]):
            if prev.standalone or layer.standalone:
                continue
            if prev.n_out != layer.n_in:
                raise TopoError(
                    f"layers do not chain: {prev.name!r} has shape [out={prev.n_out}, in={prev.n_in}] "
                    f"but {layer.name!r} has shape [out={layer.n_out}, in={layer.n_in}]"
                )

    # -- constructors -------------------------------------------------------------
    @classmethod
    def from_masks(
        cls,
        masks: Sequence[Any],
        names: Sequence[str] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> "Topology":
        """Build a topology from dense or sparse masks ``[out, in]``, one per layer."""
        names = list(names) if names is not None else [f"layer{i}" for i in range(len(masks))]
        if len(names) != len(masks):
            raise TopoError(f"{len(masks)} masks but {len(names)} names")
        return cls([Layer.from_mask(n, m) for n, m in zip(names, masks)], info=info)

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[Any],
        names: Sequence[str] | None = None,
        biases: Sequence[Any] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> "Topology":
        """Build a topology from weight matrices ``[out, in]``; masks are their nonzero patterns."""
        names = list(names) if names is not None else [f"layer{i}" for i in range(len(weights))]
        if len(names) != len(weights):
            raise TopoError(f"{len(weights)} weight matrices but {len(names)} names")
        biases = list(biases) if biases is not None else [None] * len(weights)
        return cls(
            [Layer.from_weight(n, w, bias=b) for n, w, b in zip(names, weights, biases)], info=info
        )

    def with_info(self, **info: Any) -> "Topology":
        """A topology with the same layers and ``info`` updated."""
        merged = dict(self.info)
        merged.update(info)
        return Topology(self._layers, info=merged)

    # -- sequence protocol --------------------------------------------------------
    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, str):
            for layer in self._layers:
                if layer.name == index:
                    return layer
            raise KeyError(index)
        if isinstance(index, slice):
            return self._layers[index]
        return self._layers[index]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self._layers

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    # -- node layers --------------------------------------------------------------
    def starts_chain(self, index: int) -> bool:
        """Whether layer ``index`` has its own input node layer (it does not chain to the previous one)."""
        if index == 0:
            return True
        return self._layers[index].standalone or self._layers[index - 1].standalone

    @property
    def node_slots(self) -> list[tuple[int, int]]:
        """For each layer, ``(input node layer, output node layer)`` indices."""
        slots: list[tuple[int, int]] = []
        next_slot = 0
        for i in range(len(self._layers)):
            if self.starts_chain(i):
                in_slot = next_slot
                next_slot += 1
            else:
                in_slot = slots[-1][1]
            out_slot = next_slot
            next_slot += 1
            slots.append((in_slot, out_slot))
        return slots

    @property
    def widths(self) -> list[int]:
        """Number of neurons in every node layer: ``[inputs, out of layer 0, out of layer 1, ...]``.

        Standalone layers add their own input node layer, so for a plain chain of
        ``L`` layers this has ``L + 1`` entries.
        """
        widths: list[int] = []
        for i, layer in enumerate(self._layers):
            if self.starts_chain(i):
                widths.append(layer.n_in)
            widths.append(layer.n_out)
        return widths

    @property
    def n_neurons(self) -> int:
        """Number of graph nodes: all node layers, inputs included."""
        return int(sum(self.widths))

    # -- sizes --------------------------------------------------------------------
    @property
    def nnz(self) -> int:
        """Number of connections in all layers."""
        return int(sum(layer.nnz for layer in self._layers))

    @property
    def size(self) -> int:
        """Number of possible connections in all layers."""
        return int(sum(layer.size for layer in self._layers))

    @property
    def density(self) -> float:
        """Overall share of possible connections that exist."""
        size = self.size
        return self.nnz / size if size else 0.0

    @property
    def densities(self) -> list[float]:
        """Density of each layer."""
        return [layer.density for layer in self._layers]

    @property
    def epoch(self) -> int | None:
        value = self.info.get("epoch")
        return None if value is None else int(value)

    @property
    def step(self) -> int | None:
        value = self.info.get("step")
        return None if value is None else int(value)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{layer.name}:{layer.n_out}x{layer.n_in}" for layer in self._layers)
        return f"Topology([{shapes}], density={self.density:.4g})"

"""A masked multi-layer perceptron (torch) and its conversion to and from Topology.

Every ``Linear`` layer carries one boolean mask ``[out, in]`` as a buffer. The weights
at masked positions are kept exactly zero: :meth:`MaskedMLP.apply_masks` re-applies
the masks after every optimiser step, :meth:`MaskedMLP.mask_gradients` zeroes the
gradient there before the step, and :func:`reset_optimizer_state` zeroes momentum
and Adam moments at positions that are switched off or newly grown. Because masked
weights are zero, the forward pass uses the plain weight, and ``weight.grad`` after a
backward pass is the dense gradient ``dL/d(W*M)`` at every position, which RigL's
grow step and the ``grad_mean`` statistic need.

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.topology import Layer, Topology

__all__ = [
    "MaskedMLP",
    "build_model",
    "layer_names",
    "layer_shapes",
    "to_topology",
    "from_topology",
    "reset_optimizer_state",
    "install_masks",
]


def layer_names(n_layers: int) -> list[str]:
    """``["fc1", "fc2", ...]``: the names of an MLP's layers, input side first.

    Parameters
    ----------
    n_layers : int
        The number of layers.

    Returns
    -------
    list of str

    Examples
    --------
    >>> layer_names(3)
    ['fc1', 'fc2', 'fc3']
    """
    return [f"fc{i + 1}" for i in range(n_layers)]


def layer_shapes(n_features: int, hidden: Sequence[int], n_classes: int) -> list[tuple[int, int]]:
    """Weight shapes ``[out, in]`` of the MLP ``n_features - hidden... - n_classes``.

    Parameters
    ----------
    n_features : int
        Inputs of the network.
    hidden : sequence of int
        Widths of the hidden layers.
    n_classes : int
        Outputs of the network.

    Returns
    -------
    list of (int, int)

    Examples
    --------
    >>> layer_shapes(784, [100, 50], 10)
    [(100, 784), (50, 100), (10, 50)]
    """
    widths = [int(n_features), *[int(h) for h in hidden], int(n_classes)]
    return [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]


def _module_class():
    import torch

    class MaskedMLP(torch.nn.Module):
        """An MLP with ReLU between layers and one boolean mask per layer.

        Parameters
        ----------
        shapes : sequence of (out, in)
            Weight shapes, chained.
        masks : sequence of bool arrays, optional
            One ``[out, in]`` mask per layer; all ones (dense) when omitted.
        seed : int
            Seeds the weight initialisation.

        Notes
        -----
        Weights are drawn from a normal distribution with standard deviation
        ``sqrt(2 / fan_in_i)`` where ``fan_in_i`` is output neuron i's number of active
        inputs (He initialisation scaled to the sparse fan-in, so that a sparse layer's
        activations have the variance of a dense one's); biases start at zero.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from topo.training.model import build_model
        >>> band = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
        >>> model = build_model([(3, 4), (2, 3)], [band, np.ones((2, 3), dtype=bool)], seed=0)
        >>> model.names, model.nnz(), model.densities()
        (['fc1', 'fc2'], [6, 6], [0.5, 1.0])
        >>> model(torch.zeros(5, 4)).shape
        torch.Size([5, 2])
        >>> bool((model.layers[0].weight[~model.masks[0]] == 0).all())  # masked weights are exactly 0
        True
        """

        def __init__(self, shapes: Sequence[tuple[int, int]], masks: Sequence[Any] | None = None, *, seed: int = 0):
            super().__init__()
            shapes = [(int(o), int(i)) for o, i in shapes]
            for prev, nxt in zip(shapes, shapes[1:]):
                if prev[0] != nxt[1]:
                    raise TopoError(f"layer shapes do not chain: {prev} then {nxt}")
            self.names = layer_names(len(shapes))
            # Any: a ModuleList item is typed Module, whose .weight mypy cannot see
            self.layers: Any = torch.nn.ModuleList(torch.nn.Linear(i, o) for o, i in shapes)
            if masks is None:
                masks = [np.ones(s, dtype=bool) for s in shapes]
            if len(masks) != len(shapes):
                raise TopoError(f"{len(masks)} masks for {len(shapes)} layers")
            for k, (mask, shape) in enumerate(zip(masks, shapes)):
                mask_t = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
                if tuple(mask_t.shape) != shape:
                    raise TopoError(f"mask of {self.names[k]} has shape {tuple(mask_t.shape)}, expected {shape}")
                self.register_buffer(f"mask{k}", mask_t.clone())
            self.reset_parameters(seed)

        # -- masks ------------------------------------------------------------------
        @property
        def masks(self) -> list["torch.Tensor"]:
            return [getattr(self, f"mask{k}") for k in range(len(self.layers))]

        def float_masks(self) -> list["torch.Tensor"]:
            """The masks as 0/1 tensors of the weights' dtype, cached until a mask changes
            (:class:`topo.training.masking.FloatMaskCache`)."""
            from topo.training.masking import FloatMaskCache

            cache = self.__dict__.setdefault("_float_masks", FloatMaskCache())
            return cache.get([layer.weight for layer in self.layers], self.masks)

        def set_mask(self, k: int, mask) -> None:
            """Replace layer k's mask (a bool tensor or array) and zero the weights it switches off."""
            current = getattr(self, f"mask{k}")
            new = torch.as_tensor(mask, dtype=torch.bool, device=current.device)
            if new.shape != current.shape:
                raise TopoError(f"mask of {self.names[k]} has shape {tuple(new.shape)}, expected {tuple(current.shape)}")
            current.copy_(new)
            with torch.no_grad():
                self.layers[k].weight.mul_(current)

        def _partial(self) -> tuple[list, list]:
            """The weights and float masks of the layers whose mask is not all ones.

            Multiplying by a mask of ones changes nothing, so a dense layer is skipped;
            whether a mask is full is cached with its in-place version counter.
            """
            full = self.__dict__.setdefault("_full_masks", {})
            weights, masks = [], []
            for k, (layer, mask, float_mask) in enumerate(zip(self.layers, self.masks, self.float_masks())):
                key = (mask._version, mask.data_ptr())
                hit = full.get(k)
                if hit is None or hit[0] != key:
                    hit = (key, bool(mask.all()))
                    full[k] = hit
                if not hit[1]:
                    weights.append(layer.weight)
                    masks.append(float_mask)
            return weights, masks

        def apply_masks(self) -> None:
            """Set every masked weight to exactly zero."""
            from topo.training.masking import apply_masks

            apply_masks(*self._partial())

        def mask_gradients(self) -> None:
            """Zero the gradient at masked positions (call after reading the dense gradient)."""
            from topo.training.masking import mask_gradients

            mask_gradients(*self._partial())

        @torch.no_grad()
        def reset_parameters(self, seed: int = 0) -> None:
            generator = torch.Generator().manual_seed(int(seed))
            for layer, mask in zip(self.layers, self.masks):
                fan_in = mask.sum(dim=1, keepdim=True).clamp(min=1).to(torch.float32)
                std = torch.sqrt(2.0 / fan_in)
                values = torch.randn(layer.weight.shape, generator=generator) * std.cpu()
                layer.weight.copy_(values.to(layer.weight.device))
                layer.bias.zero_()
            self.apply_masks()

        def forward(self, x):
            last = len(self.layers) - 1
            for k, layer in enumerate(self.layers):
                x = layer(x)
                if k < last:
                    x = torch.relu(x)
            return x

        @property
        def shapes(self) -> list[tuple[int, int]]:
            return [tuple(layer.weight.shape) for layer in self.layers]

        def nnz(self) -> list[int]:
            return [int(m.sum()) for m in self.masks]

        def densities(self) -> list[float]:
            return [int(m.sum()) / m.numel() for m in self.masks]

    return MaskedMLP


_MASKED_MLP = None


def __getattr__(name: str):
    # MaskedMLP is built on first use so that importing this module does not import torch
    global _MASKED_MLP
    if name == "MaskedMLP":
        if _MASKED_MLP is None:
            _MASKED_MLP = _module_class()
        return _MASKED_MLP
    if name == "__test__":
        # doctest asks for __test__ with getattr: the class's Examples then run too
        return {"MaskedMLP": __getattr__("MaskedMLP")}
    raise AttributeError(name)


def build_model(shapes: Sequence[tuple[int, int]], masks: Sequence[Any] | None = None, *, seed: int = 0):
    """A :class:`MaskedMLP` with the given weight shapes ``[out, in]`` and masks.

    Parameters
    ----------
    shapes : sequence of (out, in)
        Weight shapes, chained (each layer's ``out`` is the next one's ``in``).
    masks : sequence of bool arrays, optional
        Dense when omitted.
    seed : int
        Seeds the initial weights.

    Returns
    -------
    MaskedMLP

    Raises
    ------
    TopoError
        If the shapes do not chain or a mask has the wrong shape.

    Examples
    --------
    >>> model = build_model([(3, 4), (2, 3)])
    >>> model.nnz()  # dense without masks
    [12, 6]
    >>> build_model([(3, 4), (2, 5)])
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: layer shapes do not chain: (3, 4) then (2, 5)
    """
    return __getattr__("MaskedMLP")(shapes, masks, seed=seed)


def to_topology(
    model,
    *,
    stats: Sequence[Mapping[str, Any]] | None = None,
    info: Mapping[str, Any] | None = None,
    source: str = "topo train",
) -> Topology:
    """The model's masks, weights [out, in] (float32), biases and statistics as a Topology.

    Parameters
    ----------
    model : MaskedMLP
        The model.
    stats : sequence of mappings, optional
        Per layer, per-output-neuron statistics (e.g. ``{"grad_mean": array}``).
    info : mapping, optional
        The topology's info (epoch, step, metrics, ...).
    source : str
        Recorded as every layer's source.

    Returns
    -------
    Topology

    Examples
    --------
    >>> import numpy as np
    >>> band = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    >>> topology = to_topology(build_model([(3, 4), (2, 3)], [band, np.ones((2, 3), dtype=bool)]), info={"epoch": 0})
    >>> topology
    Topology([fc1:3x4, fc2:2x3], density=0.6667)
    >>> topology[0].mask.toarray().astype(int)
    array([[1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    >>> topology.info["epoch"], topology[1].info["activation"]
    (0, 'none')
    """
    import torch

    layers = []
    with torch.no_grad():
        for k, (name, layer, mask) in enumerate(zip(model.names, model.layers, model.masks)):
            mask_np = mask.detach().cpu().numpy().astype(bool)
            weight = bias = None  # a masks-only snapshot (see checkpoint_job) has neither
            if layer.weight is not None:
                weight = layer.weight.detach().to(torch.float32).cpu().numpy().copy()
                weight[~mask_np] = 0.0
            if layer.bias is not None:
                bias = layer.bias.detach().to(torch.float32).cpu().numpy().copy()
            layer_stats = {key: np.asarray(value, dtype=np.float32) for key, value in (stats[k] if stats else {}).items()}
            layers.append(
                Layer.from_mask(
                    name,
                    mask_np,
                    weight=weight,
                    bias=bias,
                    stats=layer_stats,
                    source=source,
                    info={"kind": "linear", "activation": "relu" if k < len(model.layers) - 1 else "none"},
                )
            )
    return Topology(layers, info=info)


def from_topology(topology: Topology, *, seed: int = 0):
    """A :class:`MaskedMLP` with the topology's masks, and its weights and biases where present.

    Layers without weights get the model's initialisation (seeded by ``seed``).

    Parameters
    ----------
    topology : Topology
        Chained layers, input side first.
    seed : int
        Seeds the initialisation of layers without weights.

    Returns
    -------
    MaskedMLP

    Raises
    ------
    TopoError
        If the layers do not chain (standalone layers are not an MLP).

    Examples
    --------
    A round trip keeps masks and weights:

    >>> import numpy as np, torch
    >>> band = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    >>> model = build_model([(3, 4), (2, 3)], [band, np.ones((2, 3), dtype=bool)], seed=1)
    >>> again = from_topology(to_topology(model))
    >>> torch.equal(again.layers[0].weight, model.layers[0].weight), again.nnz()
    (True, [6, 6])
    """
    import torch

    if any(layer.standalone for layer in topology):
        raise TopoError("a topology with standalone layers is not an MLP")
    model = build_model([layer.shape for layer in topology], [layer.mask.toarray() for layer in topology], seed=seed)
    with torch.no_grad():
        for module, layer in zip(model.layers, topology):
            if layer.weight is not None:
                module.weight.copy_(torch.as_tensor(np.asarray(layer.weight, dtype=np.float32)))
            if layer.bias is not None:
                module.bias.copy_(torch.as_tensor(np.asarray(layer.bias, dtype=np.float32)))
    model.apply_masks()
    return model


def reset_optimizer_state(optimizer, param, positions) -> None:
    """Zero the optimiser's per-weight state of ``param`` at ``positions``
    (see :func:`topo.training.masking.reset_optimizer_state`).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its state for ``param`` is modified in place.
    param : torch.nn.Parameter
        A weight of the model.
    positions : torch.Tensor of bool
        Where to zero the state, in ``param``'s shape.

    Examples
    --------
    >>> import torch
    >>> model = build_model([(1, 3)])
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> model(torch.ones(1, 3)).sum().backward()
    >>> optimizer.step()
    >>> weight = model.layers[0].weight
    >>> reset_optimizer_state(optimizer, weight, torch.tensor([[True, False, False]]))
    >>> optimizer.state[weight]["momentum_buffer"]
    tensor([[0., 1., 1.]])
    """
    from topo.training.masking import reset_optimizer_state as reset

    reset(optimizer, param, positions)


def install_masks(model, optimizer, new_masks) -> list[bool]:
    """Give ``model`` new masks, as algorithms return them; which layers changed.

    Weights switched off become zero, grown weights start at zero (they were masked,
    hence zero), and the optimiser state is zeroed at every position that was switched
    off or grown, so momentum and Adam moments never carry over a change of
    connectivity (:func:`topo.training.masking.install_masks`, shared with
    :func:`topo.integrations.sparsify`).

    Parameters
    ----------
    model : MaskedMLP
        Its masks are replaced, its weights zeroed where switched off.
    optimizer : torch.optim.Optimizer or None
        Its state is zeroed where the connectivity changed.
    new_masks : sequence of bool tensors or arrays, one per layer
        As an algorithm's hook returns them.

    Returns
    -------
    list of bool
        Per layer, whether its mask changed.

    Examples
    --------
    >>> import numpy as np
    >>> band = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    >>> model = build_model([(3, 4), (2, 3)], [band, np.ones((2, 3), dtype=bool)])
    >>> moved = band.copy()
    >>> moved[0] = [True, False, False, True]
    >>> install_masks(model, None, [moved, np.ones((2, 3), dtype=bool)])
    [True, False]
    >>> model.nnz(), float(model.layers[0].weight[0, 3].detach())  # the grown weight starts at 0
    ([6, 6], 0.0)
    """
    from topo.training.masking import install_masks as install

    return install([layer.weight for layer in model.layers], model.masks, optimizer, new_masks)

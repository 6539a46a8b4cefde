"""Where a layer's weights live in training: ``masked`` (dense matrix times a 0/1 mask) or ``sparse``.

``topo train --backend`` and ``sparsify(..., backend=)`` choose it:

- ``masked``: every layer is a dense ``[out, in]`` weight with a bool mask
  (:mod:`topo.training.model`, :mod:`topo.training.masking`); a 99% sparse network
  costs what a dense one does.
- ``sparse``: every layer that is not fully dense is a
  :class:`~topo.training.sparse_layers.SparseLinear`, which stores only its active
  weights and never forms ``[out, in]`` in a training step.
- ``auto``: per layer, ``sparse`` where the layer has at least :data:`AUTO_MIN_SIZE`
  weights and a density of at most :data:`AUTO_MAX_DENSITY`, else ``masked`` (the
  crossover measured on this CPU by ``benchmarks/bench_sparse_backend.py``).

Both give the same training: the same seed gives the same initial masks and weights,
and the algorithms see each layer as the dense matrices they always see (weights, the
dense gradient of the batch, masks) and their new masks are installed with the masked
backend's rule (weights switched off removed, grown weights and their optimiser state
starting at zero, kept weights keeping their state). So static, SET and RigL end with
the same masks and, within float tolerance, the same weights (tested).

Layers above :data:`DENSE_LIMIT` weights are never formed densely, even for an
algorithm: their initial masks are drawn row by row
(:func:`~topo.training.sparse_layers.sample_mask_csr`), their initial weights drawn for
the active connections only, RigL's regrowth takes the top-k ``|gradient|`` among
inactive positions in row blocks and SET's regrowth draws inactive positions by
rejection; these draw other random numbers than the dense rule, so such a network
trains the same way but not bit for bit as a masked one could. Their checkpoints hold
masks (CSR) and biases, without the dense weight matrix. Other algorithms need the
dense matrices and refuse such layers.

Statistic: a sparse layer's ``grad_mean`` is the mean ``|dL/dW|`` over each neuron's
active connections (the masked backend's is over all its inputs, from the dense
gradient, which the sparse backend does not form).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "BACKENDS",
    "AUTO_MIN_SIZE",
    "AUTO_MAX_DENSITY",
    "DENSE_LIMIT",
    "layer_backends",
    "SparseNetwork",
    "build_network",
    "MaskedSteps",
    "SparseSteps",
    "steps_for",
    "empty_network",
    "saved_kinds",
    "module_grad_abs_mean",
    "network_snapshot",
    "network_topology",
]

#: the choices of ``--backend``
BACKENDS = ("masked", "sparse", "auto")
#: ``auto`` makes a layer sparse only from this many weights (smaller ones are cheap either way)
AUTO_MIN_SIZE = 1 << 20
#: ``auto`` makes a layer sparse at this density or below. Measured on this 2-core CPU, one
#: thread, batch 128, forward and backward of one layer: at 1,024 x 1,024 the sparse layer
#: takes 0.63x the masked one's time at density 0.2, 0.42x at 0.1; at 4,096 x 4,096 0.91x
#: at 0.2, 0.50x at 0.1, 0.03x at 0.01 (and 1.9x-3.5x at 0.3-0.5): the crossover is near
#: density 0.2, and 0.1 leaves a margin of 2x
AUTO_MAX_DENSITY = 0.1
#: layers with more weights than this are never formed as dense ``[out, in]`` matrices
DENSE_LIMIT = 1 << 26
#: algorithms whose updates of layers above DENSE_LIMIT have a streamed implementation
_STREAMED = ("static", "rigl", "set")


def layer_backends(backend: str, shapes: Sequence[tuple[int, int]], nnz: Sequence[int]) -> list[str]:
    """Per layer, ``"sparse"`` or ``"masked"`` under ``backend``.

    A fully dense layer is always ``masked`` (nothing to skip); ``sparse`` makes every
    other layer sparse; ``auto`` those of at least :data:`AUTO_MIN_SIZE` weights and at
    most :data:`AUTO_MAX_DENSITY` density.

    Parameters
    ----------
    backend : {"masked", "sparse", "auto"}
        The run's choice.
    shapes : sequence of (int, int)
        ``(out, in)`` per layer.
    nnz : sequence of int
        Active weights per layer.

    Returns
    -------
    list of str

    Raises
    ------
    TopoError
        For an unknown backend.

    Examples
    --------
    >>> layer_backends("sparse", [(4, 6), (2, 4)], [12, 8])  # the second layer is full
    ['sparse', 'masked']
    >>> layer_backends("auto", [(2048, 2048), (10, 2048)], [200_000, 2_048])  # large and sparse, or small
    ['sparse', 'masked']
    >>> layer_backends("gpu", [(4, 6)], [12])
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: backend: 'gpu' is not one of masked, sparse, auto
    """
    if backend not in BACKENDS:
        raise TopoError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    chosen = []
    for (n_out, n_in), count in zip(shapes, nnz):
        size = int(n_out) * int(n_in)
        if backend == "masked" or count >= size:
            chosen.append("masked")
        elif backend == "sparse":
            chosen.append("sparse")
        else:
            chosen.append("sparse" if size >= AUTO_MIN_SIZE and count / size <= AUTO_MAX_DENSITY else "masked")
    return chosen


def _mask_nnz(mask) -> int:
    import scipy.sparse as sp

    if sp.issparse(mask):
        return int(mask.nnz)
    if hasattr(mask, "detach"):
        return int(mask.sum())
    return int(np.count_nonzero(mask))


def _network_class():
    import torch

    from topo.training.model import layer_names
    from topo.training.sparse_layers import sparse_linear

    class SparseNetwork(torch.nn.Module):
        """An MLP with ReLU between layers whose layers are sparse or masked, one by one.

        Parameters
        ----------
        shapes : sequence of (out, in)
            Weight shapes, chained.
        masks : sequence of masks (scipy sparse, numpy or torch bool ``[out, in]``), or None
            None builds empty sparse layers and dense masked ones (to load a state into).
        kinds : sequence of {"sparse", "masked"}
            Per layer, how it is stored.
        seed : int
            Seeds the initial weights, with :class:`~topo.training.model.MaskedMLP`'s rule
            (normal, standard deviation ``sqrt(2 / fan_in_i)``, biases zero), drawn as
            the whole ``[out, in]`` matrix (so equal to the masked backend's) for layers
            of at most :data:`DENSE_LIMIT` weights and for the active weights only beyond.

        Examples
        --------
        The same seed and masks give the masked backend's network, stored sparsely:

        >>> import torch
        >>> from topo.training.backends import build_network
        >>> from topo.training.masks import initial_masks
        >>> masks = initial_masks([(8, 6), (3, 8)], 0.5, seed=0).masks
        >>> sparse, kinds = build_network("sparse", [(8, 6), (3, 8)], masks, seed=0)
        >>> masked, _ = build_network("masked", [(8, 6), (3, 8)], masks, seed=0)
        >>> type(sparse).__name__, kinds, [layer.nnz for layer in sparse.layers]
        ('SparseNetwork', ['sparse', 'sparse'], [20, 16])
        >>> x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(sparse(x), masked(x), atol=1e-6)
        True
        """

        def __init__(self, shapes, masks, kinds, *, seed: int = 0) -> None:
            super().__init__()
            shapes = [(int(o), int(i)) for o, i in shapes]
            for prev, nxt in zip(shapes, shapes[1:]):
                if prev[0] != nxt[1]:
                    raise TopoError(f"layer shapes do not chain: {prev} then {nxt}")
            self.names = layer_names(len(shapes))
            self.kinds = list(kinds)
            layers = []
            for k, (shape, kind) in enumerate(zip(shapes, self.kinds)):
                mask = None if masks is None else masks[k]
                if kind == "sparse":
                    import scipy.sparse as sp

                    layers.append(sparse_linear(shape, mask if mask is not None else sp.csr_matrix(shape, dtype=bool)))
                else:
                    linear = torch.nn.Linear(shape[1], shape[0])
                    dense = np.ones(shape, dtype=bool) if mask is None else _dense_bool(mask)
                    if dense.shape != shape:
                        raise TopoError(f"mask of {self.names[k]} has shape {dense.shape}, expected {shape}")
                    linear.register_buffer("mask", torch.as_tensor(dense).clone())
                    layers.append(linear)
            # Any: a ModuleList item is typed Module, whose attributes mypy cannot see
            self.layers: Any = torch.nn.ModuleList(layers)
            self.reset_parameters(seed)

        @property
        def shapes(self) -> list[tuple[int, int]]:
            return [_shape(layer) for layer in self.layers]

        @torch.no_grad()
        def reset_parameters(self, seed: int = 0) -> None:
            generator = torch.Generator().manual_seed(int(seed))
            for layer in self.layers:
                n_out, n_in = _shape(layer)
                if _is_sparse(layer):
                    fan_in = layer.fan_in().clamp(min=1).to(torch.float32)
                    std = torch.sqrt(2.0 / fan_in)
                    if n_out * n_in <= DENSE_LIMIT:
                        drawn = torch.randn((n_out, n_in), generator=generator) * std[:, None]
                        values = drawn.reshape(-1)[layer.flat_positions()]
                    else:
                        values = torch.randn(layer.nnz, generator=generator) * std[layer.row_indices()]
                    layer.values.copy_(values)
                    layer.bias.zero_()
                else:
                    fan_in = layer.mask.sum(dim=1, keepdim=True).clamp(min=1).to(torch.float32)
                    values = torch.randn((n_out, n_in), generator=generator) * torch.sqrt(2.0 / fan_in)
                    layer.weight.copy_(values * layer.mask)
                    layer.bias.zero_()

        def forward(self, x):
            last = len(self.layers) - 1
            for k, layer in enumerate(self.layers):
                x = layer(x)
                if k < last:
                    x = torch.relu(x)
            return x

        def load_network_state(self, state) -> None:
            """Load a ``state_dict()`` of a network of the same shapes and kinds (any masks)."""
            for k, layer in enumerate(self.layers):
                prefix = f"layers.{k}."
                if _is_sparse(layer):
                    layer.set_structure(state[prefix + "crow_indices"], state[prefix + "col_indices"],
                                        state[prefix + "values"])
                    with torch.no_grad():
                        layer.bias.copy_(state[prefix + "bias"])
                else:
                    with torch.no_grad():
                        layer.weight.copy_(state[prefix + "weight"])
                        layer.bias.copy_(state[prefix + "bias"])
                        layer.mask.copy_(state[prefix + "mask"])

    return SparseNetwork


def _dense_bool(mask) -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(mask):
        return mask.toarray().astype(bool)
    if hasattr(mask, "detach"):
        return mask.detach().cpu().numpy().astype(bool)
    return np.asarray(mask, dtype=bool)


def _is_sparse(layer) -> bool:
    return hasattr(layer, "col_indices")


def _shape(layer) -> tuple[int, int]:
    """``(out, in)`` of a layer; a convolution's inputs are its input channels times its kernel."""
    if _is_sparse(layer):
        return tuple(layer.shape)
    return int(layer.weight.shape[0]), int(layer.weight.numel() // layer.weight.shape[0])


def _mask(layer):
    """A masked layer's bool mask (a SparseNetwork's ``mask``, or sparsify()'s buffer), weight-shaped."""
    mask = getattr(layer, "mask", None)
    if mask is None:
        from topo.training.masking import MASK_BUFFER

        mask = getattr(layer, MASK_BUFFER)
    return mask


_SPARSE_NETWORK = None


def __getattr__(name: str):
    # SparseNetwork is built on first use so that importing this module does not import torch
    global _SPARSE_NETWORK
    if name == "SparseNetwork":
        if _SPARSE_NETWORK is None:
            _SPARSE_NETWORK = _network_class()
        return _SPARSE_NETWORK
    if name == "__test__":
        # doctest asks for __test__ with getattr: the class's Examples then run too
        return {"SparseNetwork": __getattr__("SparseNetwork")}
    raise AttributeError(name)


def build_network(backend: str, shapes, masks, *, seed: int = 0, method: str | None = None):
    """The model of a run: a :class:`~topo.training.model.MaskedMLP` for ``masked``, else a
    :class:`SparseNetwork` with each layer's kind from :func:`layer_backends`.

    Parameters
    ----------
    backend : {"masked", "sparse", "auto"}
        The run's choice.
    shapes : sequence of (out, in)
        Weight shapes, chained.
    masks : sequence of masks, or None (dense masked layers, empty sparse ones: to load a state)
        The initial masks.
    seed : int
        Seeds the initial weights.
    method : str, optional
        The algorithm's name: layers above :data:`DENSE_LIMIT` weights are refused for
        methods without a streamed update.

    Returns
    -------
    (model, kinds)
        ``kinds`` is the list of ``"sparse"`` / ``"masked"`` per layer.

    Raises
    ------
    TopoError
        For an unknown backend, or a layer too large to form densely under a method
        that needs it dense (or under ``masked``).

    Examples
    --------
    >>> from topo.training.masks import initial_masks
    >>> masks = initial_masks([(8, 6), (3, 8)], 0.5, seed=0).masks
    >>> model, kinds = build_network("masked", [(8, 6), (3, 8)], masks)
    >>> type(model).__name__, kinds
    ('MaskedMLP', ['masked', 'masked'])
    >>> model, kinds = build_network("auto", [(8, 6), (3, 8)], masks)  # small layers stay masked
    >>> type(model).__name__, kinds
    ('SparseNetwork', ['masked', 'masked'])
    >>> import scipy.sparse as sp
    >>> huge = sp.csr_matrix((100_000, 100_000), dtype=bool)
    >>> build_network("sparse", [(100_000, 100_000)], [huge], method="granet")
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: method 'granet' needs dense gradients of every layer, ...
    """
    if backend not in BACKENDS:
        raise TopoError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    shapes = [(int(o), int(i)) for o, i in shapes]
    if backend == "masked":
        from topo.training.model import build_model

        for (n_out, n_in) in shapes:
            if n_out * n_in > DENSE_LIMIT * 16:
                raise TopoError(
                    f"a layer of {n_out} x {n_in} weights needs {n_out * n_in * 4 / 1e9:.1f} GB as a dense matrix "
                    "under backend 'masked'; use backend 'sparse'"
                )
        return build_model(shapes, None if masks is None else [_dense_bool(m) for m in masks], seed=seed), [
            "masked"
        ] * len(shapes)
    if masks is None:
        raise TopoError("build_network needs masks for the sparse backend (use load_network_state for a saved one)")
    kinds = layer_backends(backend, shapes, [_mask_nnz(m) for m in masks])
    for (n_out, n_in), kind in zip(shapes, kinds):
        if n_out * n_in > DENSE_LIMIT:
            if kind != "sparse":
                raise TopoError(
                    f"a layer of {n_out} x {n_in} weights is too large to train as a dense masked matrix; "
                    "use backend 'sparse'"
                )
            if method is not None and method not in _STREAMED:
                raise TopoError(
                    f"method {method!r} needs dense gradients of every layer, but a layer of {n_out} x {n_in} "
                    f"weights is never formed densely; the sparse backend trains such layers with "
                    f"{', '.join(_STREAMED)}"
                )
    return __getattr__("SparseNetwork")(shapes, masks, kinds, seed=seed), kinds


def saved_kinds(state, n_layers: int) -> list[str]:
    """Per layer, the kind a saved ``state_dict()`` holds (a sparse layer saves ``values``).

    Parameters
    ----------
    state : mapping or None
        A network's ``state_dict()``.
    n_layers : int
        The number of layers.

    Returns
    -------
    list of str

    Raises
    ------
    TopoError
        If ``state`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> masks = [np.eye(4, dtype=bool), np.ones((2, 4), dtype=bool)]
    >>> model, kinds = build_network("sparse", [(4, 4), (2, 4)], masks)
    >>> saved_kinds(model.state_dict(), 2)
    ['sparse', 'masked']
    """
    if state is None:
        raise TopoError("a saved network state is needed to rebuild a sparse network")
    return ["sparse" if f"layers.{k}.values" in state else "masked" for k in range(n_layers)]


def empty_network(shapes, kinds, *, seed: int = 0):
    """A :class:`SparseNetwork` of ``kinds`` without connections, to load a saved state into.

    Parameters
    ----------
    shapes : sequence of (out, in)
        Weight shapes, chained.
    kinds : sequence of {"sparse", "masked"}
        Per layer, as :func:`saved_kinds` reads them.
    seed : int
        Seeds the (overwritten) initial weights.

    Returns
    -------
    SparseNetwork

    Examples
    --------
    >>> import numpy as np, torch
    >>> masks = [np.eye(4, dtype=bool), np.ones((2, 4), dtype=bool)]
    >>> model, _ = build_network("sparse", [(4, 4), (2, 4)], masks, seed=3)
    >>> state = model.state_dict()
    >>> again = empty_network([(4, 4), (2, 4)], saved_kinds(state, 2))
    >>> again.layers[0].nnz
    0
    >>> again.load_network_state(state)
    >>> again.layers[0].nnz, torch.equal(again.layers[0].values, model.layers[0].values)
    (4, True)
    """
    return __getattr__("SparseNetwork")(shapes, None, kinds, seed=seed)


# -- the steps of a training loop ---------------------------------------------------------
class MaskedSteps:
    """The masked backend's step (:mod:`topo.training.masking`) over a MaskedMLP.

    Parameters
    ----------
    model : MaskedMLP
        The network trained.

    Examples
    --------
    One optimiser step keeps the masked weights at zero:

    >>> import numpy as np, torch
    >>> from topo.training.model import build_model
    >>> model = build_model([(3, 4)], [np.eye(3, 4, dtype=bool)])
    >>> steps = MaskedSteps(model)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> model(torch.ones(2, 4)).sum().backward()
    >>> steps.grad_abs_mean()[0].shape
    torch.Size([3])
    >>> steps.optimizer_step(optimizer)
    >>> steps.counts()[0], int((model.layers[0].weight != 0).sum())
    ([3], 3)
    """

    def __init__(self, model) -> None:
        self.model = model
        self._scratch: dict = {}
        # the weights are the same Parameter objects for the model's life (loading a
        # state and moving to a device change their data in place)
        self._weights = [layer.weight for layer in model.layers]

    @property
    def weights(self):
        return list(self._weights)

    def before_backward(self, algorithm, step: int) -> None:
        """Nothing: the dense gradient is always there."""

    def grad_abs_mean(self):
        from topo.training.masking import grad_abs_mean

        return grad_abs_mean(self.weights, self._scratch)

    def add_grad_abs_mean(self, sums) -> None:
        """Add this step's :meth:`grad_abs_mean` to ``sums`` (in place), allocating nothing.

        The same arithmetic as ``s += g`` over :meth:`grad_abs_mean` (``|g|`` into a
        buffer, a row sum, a division by the row's length), so the sums are the same
        bit for bit; only the per-step Python and the allocations are gone.
        """
        import torch

        scratch = self._scratch
        for k, (weight, total) in enumerate(zip(self._weights, sums)):
            grad = weight.grad
            if grad is None:
                continue  # adding zeros to sums that started at +0 changes nothing
            buffers = scratch.get(("add", k))
            if buffers is None or buffers[0].shape != grad.shape or buffers[0].dtype != grad.dtype \
                    or buffers[0].device != grad.device:
                buffers = (torch.empty_like(grad), torch.empty(grad.shape[0], dtype=grad.dtype, device=grad.device))
                scratch[("add", k)] = buffers
            absolute, row = buffers
            torch.abs(grad, out=absolute)
            total.add_(torch.sum(absolute, dim=1, out=row).div_(grad.shape[1]))

    def update(self, algorithm, step: int, optimizer, generator) -> bool:
        from topo.training.masking import algorithm_update

        return algorithm_update(algorithm, step, self._weights, self.model.masks, optimizer, generator)

    def optimizer_step(self, optimizer) -> None:
        from topo.training.masking import apply_masks, mask_gradients

        # the masked layers and their float masks, looked up once for both multiplications
        # (the optimiser's step changes no mask)
        weights, masks = self.model._partial()
        mask_gradients(weights, masks)
        optimizer.step()
        if not _keeps_masked_weights_zero(optimizer):
            apply_masks(weights, masks)

    def after_epoch(self, algorithm, epoch: int, optimizer, generator) -> bool:
        from topo.training.masking import algorithm_after_epoch

        return algorithm_after_epoch(algorithm, epoch, self.weights, self.model.masks, optimizer, generator)

    def counts(self) -> tuple[list[int], list[int], list[np.ndarray]]:
        """``(nnz, sizes, fan-ins)`` per layer."""
        masks = self.model.masks
        return (
            [int(m.sum()) for m in masks],
            [int(m.numel()) for m in masks],
            [m.sum(dim=1).cpu().numpy() for m in masks],
        )

    def kinds(self) -> list[str]:
        return ["masked"] * len(self.model.layers)


class SparseSteps:
    """The step of a :class:`SparseNetwork`: masked layers as the masked backend, sparse ones sparse.

    The algorithm sees every layer as dense matrices when all layers are at most
    :data:`DENSE_LIMIT` weights (the same inputs as under ``masked``, so the same new
    masks); otherwise the streamed updates of RigL and SET run layer by layer.

    Parameters
    ----------
    model : SparseNetwork
        The network trained.

    Examples
    --------
    A RigL update step on a sparse network keeps every layer's number of weights:

    >>> import torch
    >>> from topo.training.algorithms import RigL
    >>> from topo.training.masks import initial_masks
    >>> masks = initial_masks([(8, 6), (3, 8)], 0.5, seed=0).masks
    >>> model, _ = build_network("sparse", [(8, 6), (3, 8)], masks)
    >>> steps = SparseSteps(model)
    >>> algo = RigL(update_every=1, drop_fraction=0.5, end_fraction=1.0)
    >>> algo.setup(masks=[torch.from_numpy(m) for m in masks], steps_per_epoch=2, epochs=1, total_steps=2)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> steps.before_backward(algo, 1)  # step 1 updates: keep the batch for the dense gradient
    >>> model(torch.randn(4, 6, generator=torch.Generator().manual_seed(0))).pow(2).sum().backward()
    >>> steps.update(algo, 1, optimizer, torch.Generator())
    True
    >>> steps.counts()[0], steps.kinds()
    ([20, 16], ['sparse', 'sparse'])
    """

    def __init__(self, model) -> None:
        self.model = model
        self._scratch: dict = {}

    # -- layer views ---------------------------------------------------------------------
    def _all_small(self) -> bool:
        return all(o * i <= DENSE_LIMIT for o, i in (_shape(layer) for layer in self.model.layers))

    def before_backward(self, algorithm, step: int) -> None:
        """Keep the batch of a step on which the algorithm reads the dense gradient."""
        wanted = algorithm.is_update_step(step)
        for layer in self.model.layers:
            if _is_sparse(layer):
                layer.keep_batch = wanted
                layer.batch = None

    def grad_abs_mean(self):
        """Per layer, each output neuron's mean ``|dL/dW|`` (sparse layers: over active connections)."""
        return [module_grad_abs_mean(layer, self._scratch.setdefault(k, {}))
                for k, layer in enumerate(self.model.layers)]

    def add_grad_abs_mean(self, sums) -> None:
        """Add this step's :meth:`grad_abs_mean` to ``sums`` (in place)."""
        for total, mean in zip(sums, self.grad_abs_mean()):
            total += mean

    def _dense_views(self, with_grads: bool):
        import torch

        from topo.training.sparse_layers import dense_gradient

        weights, grads, masks = [], [], []
        for layer in self.model.layers:
            if _is_sparse(layer):
                weights.append(layer.dense_weight().cpu())
                masks.append(layer.dense_mask().cpu())
                if with_grads:
                    grads.append(dense_gradient(layer).cpu() if layer.batch is not None else
                                 torch.zeros(layer.shape))
            else:
                weights.append(layer.weight.detach().reshape(layer.weight.shape[0], -1).cpu())
                masks.append(_mask(layer).detach().reshape(layer.weight.shape[0], -1).to("cpu", copy=True))  # installing overwrites the layer's
                if with_grads:
                    grads.append(layer.weight.grad.detach().reshape(layer.weight.shape[0], -1).cpu()
                                 if layer.weight.grad is not None else torch.zeros(_shape(layer)))
        return weights, grads, masks

    # -- algorithm hooks -----------------------------------------------------------------
    def update(self, algorithm, step: int, optimizer, generator) -> bool:
        """The algorithm's update at ``step`` (1-based); whether a mask changed."""
        if not algorithm.is_update_step(step):
            return False
        try:
            if self._all_small():
                weights, grads, masks = self._dense_views(with_grads=True)
                new_masks = algorithm.update(step, weights, grads, masks, generator)
                if new_masks is None:
                    return False
                return any([self._install(k, new, optimizer) for k, new in enumerate(new_masks)])
            return self._streamed_rigl(algorithm, step, optimizer, generator)
        finally:
            for layer in self.model.layers:
                if _is_sparse(layer):
                    layer.keep_batch = False
                    layer.batch = None

    def mask_gradients(self) -> None:
        """Zero the masked layers' gradients at masked positions (sparse layers have none there)."""
        import torch

        with torch.no_grad():
            for layer in self.model.layers:
                if not _is_sparse(layer) and layer.weight.grad is not None:
                    layer.weight.grad.mul_(_mask(layer))

    def apply_masks(self) -> None:
        """Set the masked layers' weights at masked positions to exactly zero."""
        import torch

        with torch.no_grad():
            for layer in self.model.layers:
                if not _is_sparse(layer):
                    layer.weight.mul_(_mask(layer))

    def optimizer_step(self, optimizer) -> None:
        self.mask_gradients()
        optimizer.step()
        self.apply_masks()

    def after_epoch(self, algorithm, epoch: int, optimizer, generator) -> bool:
        """The algorithm's end-of-epoch hook; grown weights get its start values."""
        import torch

        if self._all_small():
            weights, _, masks = self._dense_views(with_grads=False)
            new_masks = algorithm.after_epoch(epoch, weights, masks, generator)
            if new_masks is None:
                return False
            changed = False
            for k, (old, new) in enumerate(zip(masks, new_masks)):
                new = torch.as_tensor(new).to(torch.bool).reshape(old.shape)
                if not self._install(k, new, optimizer):
                    continue
                changed = True
                grown = new & ~old
                count = int(grown.sum())
                values = algorithm.grown_values(count, generator) if count else None
                if values is not None:
                    self._set_values(k, torch.nonzero(grown.reshape(-1)).reshape(-1), values)
            return changed
        return self._streamed_set(algorithm, epoch, optimizer, generator)

    # -- installing masks ----------------------------------------------------------------
    def _install(self, k: int, new_mask, optimizer) -> bool:
        """Give layer k the mask ``new_mask`` (dense bool); whether it changed."""
        import torch

        layer = self.model.layers[k]
        new_mask = torch.as_tensor(new_mask).to(torch.bool)
        if not _is_sparse(layer):
            from topo.training.masking import install_masks

            return install_masks([layer.weight], [_mask(layer)], optimizer, [new_mask])[0]
        flat = torch.nonzero(new_mask.reshape(-1)).reshape(-1)
        return self._install_flat(k, flat, optimizer)

    def _install_flat(self, k: int, new_flat, optimizer) -> bool:
        """Give sparse layer k the connections at sorted row-major flat positions ``new_flat``.

        Kept connections keep their value and optimiser state; new ones start at 0 with
        zero state (the masked backend's rule).
        """
        import torch

        layer = self.model.layers[k]
        device = layer.values.device
        old_flat = layer.flat_positions()
        new_flat = new_flat.to(device)
        if old_flat.numel() == new_flat.numel() and torch.equal(old_flat, new_flat):
            return False
        where = torch.searchsorted(old_flat, new_flat)
        clamped = where.clamp(max=max(old_flat.numel() - 1, 0))
        kept = (where < old_flat.numel()) & (old_flat[clamped] == new_flat) if old_flat.numel() else \
            torch.zeros_like(new_flat, dtype=torch.bool)
        source = clamped[kept]

        def carried(old):
            fresh = torch.zeros(new_flat.numel(), dtype=old.dtype, device=old.device)
            fresh[kept] = old[source]
            return fresh

        n_in = layer.shape[1]
        rows, cols = new_flat // n_in, new_flat % n_in
        crow = torch.zeros(layer.shape[0] + 1, dtype=torch.int64, device=device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=layer.shape[0]), 0)
        state = optimizer.state.get(layer.values) if optimizer is not None else None
        old_size = layer.values.shape
        values = carried(layer.values.detach())
        if state:
            for key, value in list(state.items()):
                if torch.is_tensor(value) and value.shape == old_size:
                    state[key] = carried(value)
        layer.set_structure(crow, cols.contiguous(), values)
        return True

    def _set_values(self, k: int, flat_positions, values) -> None:
        """Set sparse (or masked) layer k's weights at flat positions (all active)."""
        import torch

        layer = self.model.layers[k]
        values = torch.as_tensor(values)
        with torch.no_grad():
            if not _is_sparse(layer):
                layer.weight.view(-1)[flat_positions.to(layer.weight.device)] = values.to(layer.weight)
                return
            index = torch.searchsorted(layer.flat_positions(), flat_positions.to(layer.values.device))
            layer.values[index] = values.to(layer.values)

    # -- streamed updates of layers too large to form densely ---------------------------
    def _check_streamed(self, algorithm) -> None:
        if algorithm.name not in _STREAMED:
            raise TopoError(
                f"method {algorithm.name!r} needs dense matrices of layers above {DENSE_LIMIT} weights; "
                f"the sparse backend streams only {', '.join(_STREAMED)}"
            )

    def _streamed_rigl(self, algorithm, step: int, optimizer, generator) -> bool:
        """RigL per layer: drop the smallest |w|, grow the top |g^T x| among inactive, in row blocks."""
        import torch

        from topo.training.algorithms.base import select_positions
        from topo.training.sparse_layers import top_gradient_positions

        self._check_streamed(algorithm)
        if algorithm.name != "rigl":
            return False
        alpha = algorithm.fraction(step)
        changed = False
        for k, layer in enumerate(self.model.layers):
            if k in algorithm.frozen or not _is_sparse(layer):
                if not _is_sparse(layer) and k not in algorithm.frozen:
                    raise TopoError(f"{self.model.names[k]}: a masked layer next to a layer too large to form densely")
                continue
            n = int(math.floor(alpha * layer.nnz))
            if n <= 0 or layer.batch is None:
                continue
            flat = layer.flat_positions()
            everyone = torch.ones(layer.nnz, dtype=torch.bool, device=flat.device)
            dropped = select_positions(layer.values.detach().abs(), everyone, n, generator, largest=False)
            keep = everyone.clone()
            keep[dropped] = False
            remaining = flat[keep]
            grown = top_gradient_positions(layer, remaining, n)
            new_flat = torch.sort(torch.cat([remaining, grown.to(remaining.device)])).values
            changed |= self._install_flat(k, new_flat, optimizer)
        return changed

    def _streamed_set(self, algorithm, epoch: int, optimizer, generator) -> bool:
        """SET per layer: drop the ζ smallest positive and negative weights, grow as many at random."""
        import torch

        from topo.training.algorithms.base import select_positions

        self._check_streamed(algorithm)
        if algorithm.name != "set" or epoch >= algorithm.epochs or algorithm.drop_fraction == 0.0:
            return False
        changed = False
        for k, layer in enumerate(self.model.layers):
            if k in algorithm.frozen:
                continue
            if not _is_sparse(layer):
                raise TopoError(f"{self.model.names[k]}: a masked layer next to a layer too large to form densely")
            values = layer.values.detach()
            positive, negative = values >= 0, values < 0
            n_pos = int(math.floor(algorithm.drop_fraction * int(positive.sum())))
            n_neg = int(math.floor(algorithm.drop_fraction * int(negative.sum())))
            keep = torch.ones(layer.nnz, dtype=torch.bool, device=values.device)
            keep[select_positions(values, positive, n_pos, generator, largest=False)] = False
            keep[select_positions(values, negative, n_neg, generator, largest=True)] = False
            remaining = layer.flat_positions()[keep]
            grown = _random_inactive(remaining.cpu(), n_pos + n_neg, layer.shape[0] * layer.shape[1], generator)
            new_flat = torch.sort(torch.cat([remaining, grown.to(remaining.device)])).values
            if self._install_flat(k, new_flat, optimizer):
                changed = True
                start = algorithm.grown_values(int(grown.numel()), generator) if grown.numel() else None
                if start is not None:
                    self._set_values(k, grown, start)
        return changed

    # -- records ---------------------------------------------------------------------------
    def counts(self) -> tuple[list[int], list[int], list[np.ndarray]]:
        """``(nnz, sizes, fan-ins)`` per layer."""
        nnz, sizes, fan_ins = [], [], []
        for layer in self.model.layers:
            n_out, n_in = _shape(layer)
            sizes.append(n_out * n_in)
            if _is_sparse(layer):
                nnz.append(layer.nnz)
                fan_ins.append(layer.fan_in().cpu().numpy())
            else:
                mask = _mask(layer).reshape(n_out, -1)
                nnz.append(int(mask.sum()))
                fan_ins.append(mask.sum(dim=1).cpu().numpy())
        return nnz, sizes, fan_ins

    def kinds(self) -> list[str]:
        return list(self.model.kinds)


def _keeps_masked_weights_zero(optimizer) -> bool:
    """Whether ``optimizer``'s step leaves every masked weight exactly as it was (zero).

    torch's own SGD and Adam (which ``topo train`` builds) move a weight only by its
    gradient, its weight decay term and its state (momentum, Adam's moments); at a
    masked position all three are zero (the gradient is masked before the step, the
    weight is zero, and the state is zeroed wherever a mask switches a weight off or
    on), so the step writes a zero there and multiplying by the mask afterwards would
    change no bit. Any other optimiser is masked after its step.
    """
    import torch

    return type(optimizer) in (torch.optim.SGD, torch.optim.Adam)


def _random_inactive(active_sorted, n: int, size: int, generator):
    """``n`` distinct flat positions in ``[0, size)`` outside ``active_sorted``, drawn uniformly
    by rejection (sorted, int64)."""
    import torch

    chosen = torch.zeros(0, dtype=torch.int64)
    if size - active_sorted.numel() < n:
        raise TopoError(f"cannot grow {n} connections: only {size - active_sorted.numel()} positions are free")
    while chosen.numel() < n:
        draw = torch.randint(0, size, (2 * (n - chosen.numel()) + 16,), generator=generator, dtype=torch.int64)
        if active_sorted.numel():
            where = torch.searchsorted(active_sorted, draw).clamp(max=active_sorted.numel() - 1)
            draw = draw[active_sorted[where] != draw]
        # keep first occurrences, in draw order
        merged = torch.cat([chosen, draw])
        unique, inverse = torch.unique(merged, return_inverse=True)
        first = torch.full((unique.numel(),), merged.numel(), dtype=torch.int64)
        first.scatter_reduce_(0, inverse, torch.arange(merged.numel()), reduce="amin")
        chosen = merged[torch.sort(first).values][:n]
    return torch.sort(chosen).values


def module_grad_abs_mean(module, scratch: dict | None = None):
    """One layer's per-output-neuron mean ``|dL/dW|``: over all inputs for a dense or masked
    layer, over the active connections for a sparse one (zeros without a gradient).

    Parameters
    ----------
    module : torch.nn.Module
        A ``Linear`` (or masked) layer, or a :class:`~topo.training.sparse_layers.SparseLinear`.
    scratch : dict, optional
        Buffers kept between steps (see :func:`topo.training.masking.grad_abs_mean`).

    Returns
    -------
    torch.Tensor
        ``[out]``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from topo.training.sparse_layers import sparse_linear
    >>> layer = sparse_linear((2, 3), np.array([[1, 0, 1], [0, 1, 0]], dtype=bool))
    >>> layer(torch.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    >>> module_grad_abs_mean(layer)  # (1 + 3) / 2 and 2 / 1: over the active connections
    tensor([2., 2.])
    >>> module_grad_abs_mean(torch.nn.Linear(3, 2))  # no backward pass yet
    tensor([0., 0.])
    """
    import torch

    from topo.training.masking import grad_abs_mean

    if not _is_sparse(module):
        return grad_abs_mean([module.weight], scratch)[0]
    grad = module.values.grad
    if grad is None:
        return torch.zeros(module.shape[0], device=module.values.device)
    sums = torch.zeros(module.shape[0], device=grad.device, dtype=grad.dtype)
    sums.index_add_(0, module.row_indices(), grad.abs())
    return sums / module.fan_in().clamp(min=1).to(grad.dtype)


def steps_for(model):
    """The step object of a model: :class:`SparseSteps` for a SparseNetwork, else :class:`MaskedSteps`.

    Parameters
    ----------
    model : MaskedMLP or SparseNetwork
        The network trained.

    Returns
    -------
    MaskedSteps or SparseSteps

    Examples
    --------
    >>> import numpy as np
    >>> masks = [np.eye(4, dtype=bool)]
    >>> type(steps_for(build_network("masked", [(4, 4)], masks)[0])).__name__
    'MaskedSteps'
    >>> type(steps_for(build_network("sparse", [(4, 4)], masks)[0])).__name__
    'SparseSteps'
    """
    if hasattr(model, "kinds"):
        return SparseSteps(model)
    return MaskedSteps(model)


def network_topology(model, *, stats=None, info=None, source: str = "topo train"):
    """A copy of a :class:`SparseNetwork` as a Topology: CSR masks, biases, weights where
    the layer has at most :data:`DENSE_LIMIT` weights, and ``stats`` per layer.

    Built from CPU copies, so it may run on a writer's thread while training goes on
    only if ``model`` is such a copy (:func:`network_snapshot`).

    Parameters
    ----------
    model : SimpleNamespace
        A :func:`network_snapshot`.
    stats : sequence of mappings, optional
        Per layer, per-output-neuron statistics.
    info : mapping, optional
        The topology's info.
    source : str
        Recorded as every layer's source.

    Returns
    -------
    Topology

    Examples
    --------
    >>> from topo.training.masks import initial_masks
    >>> masks = initial_masks([(8, 6), (3, 8)], 0.5, seed=0).masks
    >>> model, _ = build_network("sparse", [(8, 6), (3, 8)], masks)
    >>> topology = network_topology(network_snapshot(model), info={"epoch": 1})
    >>> topology
    Topology([fc1:8x6, fc2:3x8], density=0.5)
    >>> bool((topology[0].mask.toarray() == masks[0]).all())  # the same connections
    True
    """
    from topo.topology import Layer, Topology

    layers = []
    last = len(model.layers) - 1
    for k, (name, layer) in enumerate(zip(model.names, model.layers)):
        layer_stats = {key: np.asarray(v, dtype=np.float32) for key, v in (stats[k] if stats else {}).items()}
        extra = {"kind": "linear", "activation": "relu" if k < last else "none"}
        if layer["kind"] == "sparse":
            import scipy.sparse as sp

            n_out, n_in = layer["shape"]
            mask = sp.csr_matrix(
                (np.ones(layer["col"].size, dtype=bool), layer["col"], layer["crow"]), shape=(n_out, n_in)
            )
            weight = None
            if n_out * n_in <= DENSE_LIMIT:
                weight = sp.csr_matrix((layer["values"], layer["col"], layer["crow"]), shape=(n_out, n_in)).toarray()
            layers.append(Layer(name=name, mask=mask, weight=weight, bias=layer["bias"], stats=layer_stats,
                                source=source, info=extra))
        else:
            mask = layer["mask"]
            weight = layer["weight"].copy()
            weight[~mask] = 0.0
            layers.append(Layer.from_mask(name, mask, weight=weight, bias=layer["bias"], stats=layer_stats,
                                          source=source, info=extra))
    return Topology(layers, info=info)


def network_snapshot(model):
    """CPU numpy copies of a :class:`SparseNetwork`'s layers, for :func:`network_topology`.

    Parameters
    ----------
    model : SparseNetwork
        The network.

    Returns
    -------
    SimpleNamespace
        ``names`` and ``layers`` (one dict of arrays per layer, with its ``kind``).

    Examples
    --------
    >>> import numpy as np
    >>> model, _ = build_network("sparse", [(4, 4), (2, 4)], [np.eye(4, dtype=bool), np.ones((2, 4), dtype=bool)])
    >>> snapshot = network_snapshot(model)
    >>> snapshot.names, [layer["kind"] for layer in snapshot.layers]
    (['fc1', 'fc2'], ['sparse', 'masked'])
    >>> snapshot.layers[0]["col"].tolist()  # the identity's column indices
    [0, 1, 2, 3]
    """
    from types import SimpleNamespace

    import torch

    layers = []
    with torch.no_grad():
        for layer in model.layers:
            if _is_sparse(layer):
                layers.append({
                    "kind": "sparse",
                    "shape": tuple(layer.shape),
                    "crow": layer.crow_indices.cpu().numpy().copy(),
                    "col": layer.col_indices.cpu().numpy().copy(),
                    "values": layer.values.detach().to(torch.float32).cpu().numpy().copy(),
                    "bias": layer.bias.detach().to(torch.float32).cpu().numpy().copy(),
                })
            else:
                layers.append({
                    "kind": "masked",
                    "mask": layer.mask.cpu().numpy().astype(bool),
                    "weight": layer.weight.detach().to(torch.float32).cpu().numpy().copy(),
                    "bias": layer.bias.detach().to(torch.float32).cpu().numpy().copy(),
                })
    return SimpleNamespace(names=list(model.names), layers=layers)

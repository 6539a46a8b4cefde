"""Masked weights in a training step: the one implementation behind ``topo train`` and ``sparsify()``.

A masked weight is a parameter whose first dimension is its output neurons (a
``Linear`` weight ``[out, in]``, a convolution kernel ``[out, in / groups, *kernel]``)
with a boolean mask of the same shape. The step of a sparse training loop is, in order:

1. after the backward pass, :func:`grad_abs_mean` reads the dense gradient's per-neuron
   mean ``|dL/dW|`` (the ``grad_mean`` statistic of every checkpoint);
2. :func:`algorithm_update` asks the algorithm whether this step changes the masks and
   installs the new masks (:func:`install_masks`); a step that changed them does not
   also move the weights (RigL's rule);
3. otherwise :func:`mask_gradients`, the optimiser's step, :func:`apply_masks`;
4. at the end of an epoch, :func:`algorithm_after_epoch`.

Algorithms see every weight as the 2-D matrix ``[out, numel / out]`` (a kernel's inputs
are its input channels times its kernel positions), on the CPU, and never modify what
they are given. torch is imported inside the functions.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = [
    "FloatMaskCache",
    "apply_masks",
    "mask_gradients",
    "grad_abs_mean",
    "install_masks",
    "reset_optimizer_state",
    "algorithm_update",
    "algorithm_after_epoch",
    "as_matrix",
    "total_epochs",
    "algorithm_generator",
    "MASK_BUFFER",
]

#: name of the (non-persistent) buffer in which a masked layer keeps its mask in a user's
#: model (``sparsify()``); live readers and the sparse backend look for it by this name
MASK_BUFFER = "topo_weight_mask"


def as_matrix(tensor):
    """``tensor`` viewed as ``[out, numel / out]``, detached, on the CPU (a view where it is there).

    Parameters
    ----------
    tensor : torch.Tensor
        A weight (or its mask or gradient) whose first dimension is its outputs.

    Returns
    -------
    torch.Tensor
        2-D.

    Examples
    --------
    A convolution kernel ``[out, in, kh, kw]`` becomes ``[out, in * kh * kw]``:

    >>> import torch
    >>> as_matrix(torch.zeros(8, 3, 5, 5, requires_grad=True)).shape
    torch.Size([8, 75])
    """
    t = tensor.detach()
    t = t.reshape(t.shape[0], -1)
    return t if t.device.type == "cpu" else t.cpu()


class FloatMaskCache:
    """Masks as 0/1 tensors of the weights' dtype, rebuilt only when a mask changes.

    Multiplying by a float mask avoids the temporary that a bool mask costs on every
    step; the cache is keyed by each mask's in-place version counter, storage and dtype.

    Examples
    --------
    >>> import torch
    >>> cache = FloatMaskCache()
    >>> weight, mask = torch.ones(2, 2), torch.tensor([[True, False], [False, True]])
    >>> first = cache.get([weight], [mask])[0]
    >>> first
    tensor([[1., 0.],
            [0., 1.]])
    >>> cache.get([weight], [mask])[0] is first  # unchanged mask: the same tensor
    True
    >>> _ = mask.fill_(True)  # an in-place change bumps the version: rebuilt
    >>> cache.get([weight], [mask])[0]
    tensor([[1., 1.],
            [1., 1.]])
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[tuple, Any]] = {}

    def get(self, weights: Sequence[Any], masks: Sequence[Any]) -> list[Any]:
        out = []
        for k, (weight, mask) in enumerate(zip(weights, masks)):
            key = (mask._version, mask.data_ptr(), mask.device, weight.dtype)
            hit = self._cache.get(k)
            if hit is None or hit[0] != key:
                hit = (key, mask.to(weight.dtype))
                self._cache[k] = hit
            out.append(hit[1])
        return out


def apply_masks(weights: Sequence[Any], float_masks: Sequence[Any]) -> None:
    """Set every masked weight to exactly zero (in place).

    Parameters
    ----------
    weights : sequence of torch.Tensor
        The weights, modified in place.
    float_masks : sequence of torch.Tensor
        0/1 masks of the weights' shapes and dtypes (:class:`FloatMaskCache`).

    Examples
    --------
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.tensor([[0.5, -0.3], [0.2, 0.9]]))
    >>> apply_masks([weight], [torch.tensor([[1.0, 0.0], [0.0, 1.0]])])
    >>> weight.data
    tensor([[0.5000, 0.0000],
            [0.0000, 0.9000]])
    """
    import torch

    with torch.no_grad():
        for weight, mask in zip(weights, float_masks):
            weight.mul_(mask)


def mask_gradients(weights: Sequence[Any], float_masks: Sequence[Any]) -> None:
    """Zero the gradient at masked positions (after the dense gradient has been read).

    Parameters
    ----------
    weights : sequence of torch.Tensor
        The weights whose ``.grad`` is modified in place (those without one are skipped).
    float_masks : sequence of torch.Tensor
        0/1 masks of the weights' shapes and dtypes.

    Examples
    --------
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.ones(2, 2))
    >>> weight.sum().backward()
    >>> mask_gradients([weight], [torch.tensor([[1.0, 0.0], [0.0, 1.0]])])
    >>> weight.grad
    tensor([[1., 0.],
            [0., 1.]])
    """
    import torch

    with torch.no_grad():
        for weight, mask in zip(weights, float_masks):
            if weight.grad is not None:
                weight.grad.mul_(mask)


def grad_abs_mean(weights: Sequence[Any], scratch: dict | None = None) -> list[Any]:
    """Per output neuron, the mean ``|dL/dW|`` over its incoming weights (dense gradient).

    Parameters
    ----------
    weights : sequence of torch.nn.Parameter
        Weights after a backward pass.
    scratch : dict, optional
        Kept by the caller between steps: holds one buffer per weight for ``|g|``, so
        that a step allocates nothing (``|g|`` into a buffer, then a row sum, is several
        times faster on a CPU than a row-wise L1 norm).

    Returns
    -------
    list of torch.Tensor
        Float tensors of length ``out`` on the weights' devices; zeros for a weight
        without a gradient (a layer the batch did not reach).

    Examples
    --------
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.zeros(2, 3))
    >>> (weight * torch.tensor([[1.0, -2.0, 3.0], [0.0, 0.0, 6.0]])).sum().backward()
    >>> grad_abs_mean([weight])  # (1 + 2 + 3) / 3 and 6 / 3
    [tensor([2., 2.])]
    >>> grad_abs_mean([torch.nn.Parameter(torch.zeros(2, 2))])  # no gradient yet
    [tensor([0., 0.])]
    """
    import torch

    out = []
    for k, weight in enumerate(weights):
        grad = weight.grad
        if grad is None:
            out.append(torch.zeros(weight.shape[0], device=weight.device, dtype=weight.dtype))
            continue
        g = grad.detach()
        g = g.reshape(g.shape[0], -1)
        buffer = None if scratch is None else scratch.get(k)
        if buffer is None or buffer.shape != g.shape or buffer.dtype != g.dtype or buffer.device != g.device:
            buffer = torch.empty_like(g)
            if scratch is not None:
                scratch[k] = buffer
        torch.abs(g, out=buffer)
        out.append(buffer.sum(dim=1) / g.shape[1])
    return out


def reset_optimizer_state(optimizer, param, positions) -> None:
    """Zero the optimiser's per-weight state of ``param`` at ``positions`` (bool, param's shape).

    Covers SGD's ``momentum_buffer`` and Adam's ``exp_avg`` / ``exp_avg_sq`` (and any
    other state tensor of the parameter's shape). Called for weights that were switched
    off or grown, so that a grown weight starts without history and a dropped one
    cannot carry stale momentum back.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its state for ``param`` is modified in place (nothing happens without state).
    param : torch.nn.Parameter
        The weight.
    positions : torch.Tensor of bool
        Where to zero the state, in ``param``'s shape.

    Examples
    --------
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.ones(1, 3))
    >>> optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    >>> weight.sum().backward()
    >>> optimizer.step()
    >>> reset_optimizer_state(optimizer, weight, torch.tensor([[False, True, False]]))
    >>> optimizer.state[weight]["momentum_buffer"]
    tensor([[1., 0., 1.]])
    """
    import torch

    state = optimizer.state.get(param)
    if not state:
        return
    with torch.no_grad():
        keep = (~positions.to(device=param.device, dtype=torch.bool)).to(param.dtype)
        for value in state.values():
            if torch.is_tensor(value) and value.shape == param.shape:
                value.mul_(keep.to(value.dtype))


def install_masks(weights: Sequence[Any], masks: Sequence[Any], optimizer, new_masks: Sequence[Any]) -> list[bool]:
    """Give the weights new masks, as algorithms return them; which layers changed.

    ``masks`` are updated in place. Weights switched off become zero, grown weights
    start at zero (they were masked, hence zero), and the optimiser state is zeroed at
    every position switched off or grown (:func:`reset_optimizer_state`).

    Parameters
    ----------
    weights : sequence of torch.nn.Parameter
        The masked weights; those switched off are zeroed in place.
    masks : sequence of bool tensors
        The current masks, the weights' shapes; overwritten.
    optimizer : torch.optim.Optimizer or None
        Its state is zeroed where the connectivity changed.
    new_masks : sequence of bool tensors or arrays
        One per layer, in the weight's shape or as ``[out, numel / out]``.

    Returns
    -------
    list of bool
        Per layer, whether its mask changed.

    Raises
    ------
    TopoError
        If a new mask has the wrong number of elements.

    Examples
    --------
    >>> import torch
    >>> weights = [torch.nn.Parameter(torch.tensor([[0.5, 0.0], [0.0, 0.7]])), torch.nn.Parameter(torch.ones(1, 2))]
    >>> masks = [torch.tensor([[True, False], [False, True]]), torch.ones(1, 2, dtype=torch.bool)]
    >>> install_masks(weights, masks, None, [torch.tensor([[False, True], [False, True]]), torch.ones(1, 2)])
    [True, False]
    >>> weights[0].data  # 0.5 was switched off; the grown weight starts at 0
    tensor([[0.0000, 0.0000],
            [0.0000, 0.7000]])
    >>> masks[0]
    tensor([[False,  True],
            [False,  True]])
    """
    import torch

    from topo.errors import TopoError

    changed = []
    for weight, old, new in zip(weights, masks, new_masks):
        new = torch.as_tensor(new).to(device=old.device, dtype=torch.bool)
        if new.numel() != old.numel():
            raise TopoError(f"a new mask of shape {tuple(new.shape)} for a weight of shape {tuple(old.shape)}")
        new = new.reshape(old.shape)
        if torch.equal(old, new):
            changed.append(False)
            continue
        positions = ~(old & new)
        old.copy_(new)
        with torch.no_grad():
            weight.mul_(old)
        if optimizer is not None:
            reset_optimizer_state(optimizer, weight, positions)
        changed.append(True)
    return changed


def _grads(weights: Sequence[Any]) -> list[Any]:
    import torch

    return [as_matrix(w.grad) if w.grad is not None else torch.zeros(as_matrix(w).shape) for w in weights]


def algorithm_update(algorithm, step: int, weights: Sequence[Any], masks: Sequence[Any], optimizer, generator) -> bool:
    """Run the algorithm's update at global step ``step`` (1-based) if it wants one.

    Parameters
    ----------
    algorithm : Algorithm
        Set up for this run (:meth:`~topo.training.algorithms.base.Algorithm.setup`).
    step : int
        The global step.
    weights : sequence of torch.nn.Parameter
        The masked weights, after the backward pass (their ``.grad`` is the dense gradient).
    masks : sequence of bool tensors
        The current masks; overwritten by the new ones.
    optimizer : torch.optim.Optimizer or None
        Its state is zeroed where the connectivity changed.
    generator : torch.Generator
        The algorithm's randomness.

    Returns
    -------
    bool
        Whether any mask changed; the caller then skips this step's optimiser step.

    Examples
    --------
    RigL at its first update step moves ``floor(α_1 · 2) = 1`` connection
    (``α_1 = (1 + cos(π / 4)) / 2``): the smaller weight goes, the position of
    largest gradient comes in:

    >>> import torch
    >>> from topo.training.algorithms import RigL
    >>> weight = torch.nn.Parameter(torch.tensor([[0.9, 0.1, 0.0, 0.0]]))
    >>> mask = torch.tensor([[True, True, False, False]])
    >>> algo = RigL(update_every=1, drop_fraction=1.0, end_fraction=1.0)
    >>> algo.setup(masks=[mask], steps_per_epoch=4, epochs=1, total_steps=4)
    >>> (weight * torch.tensor([[0.0, 0.0, 0.2, 3.0]])).sum().backward()
    >>> algorithm_update(algo, 0, [weight], [mask], None, torch.Generator())  # not an update step
    False
    >>> algorithm_update(algo, 1, [weight], [mask], None, torch.Generator())
    True
    >>> mask
    tensor([[ True, False, False,  True]])
    """
    if not algorithm.is_update_step(step):
        return False
    new_masks = algorithm.update(
        step, [as_matrix(w) for w in weights], _grads(weights), [as_matrix(m) for m in masks], generator
    )
    if new_masks is None:
        return False
    return any(install_masks(weights, masks, optimizer, new_masks))


def algorithm_after_epoch(algorithm, epoch: int, weights: Sequence[Any], masks: Sequence[Any], optimizer, generator) -> bool:
    """Run the algorithm's end-of-epoch hook for epoch ``epoch`` (1-based); whether masks changed.

    New masks are installed as by :func:`install_masks`, then the grown weights take
    the algorithm's start values (SET draws them; most algorithms leave them at 0).

    Parameters
    ----------
    algorithm : Algorithm
        Set up for this run.
    epoch : int
        The epoch just finished.
    weights, masks, optimizer, generator
        As for :func:`algorithm_update`.

    Returns
    -------
    bool

    Examples
    --------
    >>> import torch
    >>> from topo.training.algorithms import SET
    >>> weight = torch.nn.Parameter(torch.tensor([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, -0.4, -0.8]]))
    >>> mask = weight.detach() != 0
    >>> algo = SET(drop_fraction=0.5, set_regrow_init="zero")
    >>> algo.setup(masks=[mask], steps_per_epoch=4, epochs=2, total_steps=8)
    >>> algorithm_after_epoch(algo, 1, [weight], [mask], None, torch.Generator().manual_seed(0))
    True
    >>> int(mask.sum()), bool(mask[0, 0] and mask[1, 3])  # same count; the largest of each sign stay
    (4, True)
    >>> algorithm_after_epoch(algo, 2, [weight], [mask], None, torch.Generator())  # SET leaves the last epoch alone
    False
    """
    new_masks = algorithm.after_epoch(epoch, [as_matrix(w) for w in weights], [as_matrix(m) for m in masks], generator)
    if new_masks is None:
        return False
    before = [m.clone() for m in masks]
    changed = install_masks(weights, masks, optimizer, new_masks)
    if any(changed):
        initialise_grown(algorithm, weights, before, masks, generator)
    return any(changed)


def initialise_grown(algorithm, weights: Sequence[Any], before: Sequence[Any], after: Sequence[Any], generator) -> None:
    """Give the weights grown between masks ``before`` and ``after`` the algorithm's
    start values (:meth:`~topo.training.algorithms.base.Algorithm.grown_values`)."""
    import torch

    for weight, old, new in zip(weights, before, after):
        grown = new & ~old
        count = int(grown.sum())
        if count == 0:
            continue
        values = algorithm.grown_values(count, generator)
        if values is None:
            continue
        with torch.no_grad():
            weight[grown] = torch.as_tensor(values).to(device=weight.device, dtype=weight.dtype)


def total_epochs(algorithm, epochs: int) -> int:
    """Epochs a run trains in all: ``epochs``, plus the algorithm's retraining epochs (pruning).

    Parameters
    ----------
    algorithm : Algorithm
        The run's algorithm.
    epochs : int
        The training epochs before any retraining.

    Returns
    -------
    int

    Examples
    --------
    >>> from topo.training.algorithms import Prune, RigL
    >>> total_epochs(RigL(), 10), total_epochs(Prune(retrain_epochs=5), 10)
    (10, 15)
    """
    extra = int(getattr(algorithm, "retrain_epochs", 0) or 0)
    return int(epochs) + (extra if int(epochs) > 0 else 0)


def algorithm_generator(seed: int, epoch: int):
    """The torch generator of an epoch's algorithm randomness (tie-breaks, random growth).

    Seeded from ``(seed, epoch)`` alone, so a run resumed at an epoch boundary draws
    what an uninterrupted one draws, in ``topo train`` and in ``sparsify()`` alike.

    Parameters
    ----------
    seed : int
        The run's seed.
    epoch : int
        The epoch.

    Returns
    -------
    torch.Generator

    Examples
    --------
    >>> import torch
    >>> a, b = algorithm_generator(0, 3), algorithm_generator(0, 3)
    >>> torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    True
    >>> algorithm_generator(0, 3).initial_seed() == algorithm_generator(0, 4).initial_seed()
    False
    """
    import numpy as np
    import torch

    mixed = np.random.SeedSequence([int(seed), int(epoch), _ALGORITHM_PURPOSE]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed >> np.uint64(1)))


#: the purpose code of the algorithm's generator among an epoch's generators (1 is shuffling)
_ALGORITHM_PURPOSE = 2

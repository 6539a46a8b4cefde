"""``rigl``: Rigged Lottery (Evci et al., 2020), drop by magnitude, grow by gradient.

Every ``update_every`` steps (ΔT) while ``step <= end_fraction * total_steps`` (T_end),
in each layer that does not start fully dense:

1. ``n = floor(α_t · nnz)`` with ``α_t = α (1 + cos(π t / T_end)) / 2`` and
   ``α = drop_fraction``;
2. drop the ``n`` active weights of smallest magnitude (random tie-break);
3. grow the ``n`` positions with the largest ``|dL/d(W⊙M)|`` (the dense gradient of the
   current batch) among the positions inactive after the drop, which includes the ones
   just dropped, so a dropped weight may come straight back;
4. grown weights start at 0 with zeroed optimiser state, and the trainer skips the
   optimiser step on an update step.

Every layer keeps exactly its number of active weights.
"""

from __future__ import annotations

import math
from typing import ClassVar

from topo.errors import TopoError
from topo.training.algorithms.base import Algorithm, cosine_drop_fraction, register, select_positions

__all__ = ["RigL", "rigl_update", "magnitude_drop"]


def magnitude_drop(weight, mask, n: int, generator, *, protect=None):
    """The mask after switching off the ``n`` active weights of smallest ``|weight|``.

    Parameters
    ----------
    weight, mask : torch.Tensor
        ``[out, in]``; not modified.
    n : int
        How many to drop (at most the number of droppable active weights).
    generator : torch.Generator
        Breaks ties at random.
    protect : torch.Tensor of bool, optional
        Active positions that must not be dropped.

    Returns
    -------
    torch.Tensor of bool, same shape

    Examples
    --------
    >>> import torch
    >>> weight = torch.tensor([[0.5, -0.1, 0.3], [0.05, -0.9, 0.2]])
    >>> mask = torch.ones(2, 3, dtype=torch.bool)
    >>> magnitude_drop(weight, mask, 2, torch.Generator()).int()
    tensor([[1, 0, 1],
            [0, 1, 1]], dtype=torch.int32)
    >>> protect = torch.tensor([[False, True, False], [False, False, False]])
    >>> magnitude_drop(weight, mask, 2, torch.Generator(), protect=protect).int()
    tensor([[1, 1, 1],
            [0, 1, 0]], dtype=torch.int32)
    """
    candidates = mask.reshape(-1).clone()
    if protect is not None:
        candidates &= ~protect.reshape(-1)
    drop = select_positions(weight.reshape(-1).abs(), candidates, n, generator, largest=False)
    new = mask.reshape(-1).clone()
    new[drop] = False
    return new.reshape(mask.shape)


def rigl_update(weight, grad, mask, n: int, generator):
    """One RigL mask update of one layer: drop ``n`` by magnitude, grow ``n`` by |gradient|.

    Parameters
    ----------
    weight, grad, mask : torch.Tensor
        ``[out, in]``: current weights, dense gradient of the batch, current bool mask.
    n : int
        Connections to move; clipped to the number of active weights.
    generator : torch.Generator
        Breaks ties.

    Returns
    -------
    torch.Tensor of bool
        The new mask, with exactly as many active positions as ``mask``.

    Examples
    --------
    The smallest active weight (0.1) goes, the inactive position with the largest
    gradient (``|-2.0|``) comes in:

    >>> import torch
    >>> weight = torch.tensor([[0.5, 0.0, 0.1], [0.0, -0.8, 0.0]])
    >>> grad = torch.tensor([[0.0, 0.3, 0.0], [-2.0, 0.1, 0.4]])
    >>> mask = torch.tensor([[True, False, True], [False, True, False]])
    >>> new = rigl_update(weight, grad, mask, 1, torch.Generator())
    >>> new.int()
    tensor([[1, 0, 0],
            [1, 1, 0]], dtype=torch.int32)
    >>> int(new.sum()) == int(mask.sum())
    True
    """
    n = int(min(n, _active(mask)))
    if n <= 0:
        return mask.clone()
    dropped = magnitude_drop(weight, mask, n, generator)
    grow = select_positions(grad.reshape(-1).abs(), ~dropped.reshape(-1), n, generator, largest=True)
    new = dropped.reshape(-1).clone()
    new[grow] = True
    return new.reshape(mask.shape)


def _active(mask) -> int:
    """The number of active positions of a bool mask (without the int64 copy of a bool sum)."""
    import torch

    return int(torch.count_nonzero(torch.as_tensor(mask)))


@register("rigl")
class RigL(Algorithm):
    """RigL: see the module docstring for the exact rule.

    Parameters
    ----------
    update_every : int
        ΔT, steps between mask updates.
    drop_fraction : float
        α in ``[0, 1]``, the share moved at step 0 (cosine-decayed).
    end_fraction : float
        The share of all steps after which masks stay fixed.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    >>> import torch
    >>> algo = RigL(update_every=10, drop_fraction=0.5, end_fraction=0.5)
    >>> masks = [torch.tensor([[True, True, False, False], [True, True, False, False]])]
    >>> algo.setup(masks=masks, steps_per_epoch=10, epochs=4, total_steps=40)
    >>> algo.end_step, [s for s in range(1, 41) if algo.is_update_step(s)]
    (20, [10, 20])
    >>> algo.counts(10, masks)  # floor(0.5 * (1 + cos(pi/2)) / 2 * 4)
    [1]
    >>> weights = [torch.tensor([[0.9, 0.1, 0.0, 0.0], [-0.5, 0.7, 0.0, 0.0]])]
    >>> grads = [torch.tensor([[0.0, 0.0, 0.2, 3.0], [0.0, 0.0, 0.1, 0.0]])]
    >>> algo.update(10, weights, grads, masks, torch.Generator())[0].int()
    tensor([[1, 0, 0, 1],
            [1, 1, 0, 0]], dtype=torch.int32)
    """

    option_names: ClassVar[tuple[str, ...]] = ("update_every", "drop_fraction", "end_fraction")

    def __init__(self, *, update_every: int = 100, drop_fraction: float = 0.3, end_fraction: float = 0.75) -> None:
        if int(update_every) < 1:
            raise TopoError(f"update_every must be a positive number of steps, got {update_every!r}")
        if not 0.0 <= float(drop_fraction) <= 1.0:
            raise TopoError(f"drop_fraction must be in [0, 1], got {drop_fraction!r}")
        if not 0.0 <= float(end_fraction) <= 1.0:
            raise TopoError(f"end_fraction must be in [0, 1], got {end_fraction!r}")
        super().__init__(update_every=int(update_every), drop_fraction=float(drop_fraction), end_fraction=float(end_fraction))
        self.update_every = int(update_every)
        self.drop_fraction = float(drop_fraction)
        self.end_fraction = float(end_fraction)

    @property
    def end_step(self) -> int:
        """T_end: the last step at which masks may change."""
        return int(math.floor(self.end_fraction * self.total_steps))

    def is_update_step(self, step: int) -> bool:
        return step > 0 and step % self.update_every == 0 and step <= self.end_step

    def fraction(self, step: int) -> float:
        """α_t, the share of each layer's active weights moved at ``step``."""
        return cosine_drop_fraction(step, self.drop_fraction, self.end_step)

    def counts(self, step: int, masks) -> list[int]:
        """Connections moved per layer at ``step``: ``floor(α_t · nnz)`` (0 for frozen layers)."""
        alpha = self.fraction(step)
        return [0 if k in self.frozen else int(math.floor(alpha * _active(m))) for k, m in enumerate(masks)]

    def update(self, step, weights, grads, masks, generator):
        counts = self.counts(step, masks)
        if not any(counts):
            return None
        return [
            rigl_update(w, g, m, n, generator) if n > 0 else m.clone()
            for w, g, m, n in zip(weights, grads, masks, counts)
        ]

"""``set``: Sparse Evolutionary Training (Mocanu et al., 2018).

At the end of every epoch except the last (so the final network holds only trained
weights), in each layer that does not start fully dense: of the active weights
``w >= 0`` drop the ``floor(ζ · count)`` smallest, of the active weights ``w < 0`` drop
the ``floor(ζ · count)`` closest to zero (``ζ = drop_fraction``; ties broken at random),
then grow as many connections at positions drawn uniformly at random among the
positions inactive after the drop (a just-dropped one may be drawn again). Grown
weights start at exactly 0 (not small random values; the gradient moves them in the
next epoch) with zeroed optimiser state. Every layer keeps its number of active weights.
"""

from __future__ import annotations

import math

from topo.errors import TopoError
from topo.training.algorithms.base import Algorithm, random_positions, register, select_positions

__all__ = ["SET", "set_update", "set_drop_counts"]


def set_drop_counts(weight, mask, fraction: float) -> tuple[int, int]:
    """``(n_nonnegative, n_negative)`` weights SET drops from one layer."""
    active = mask.reshape(-1)
    values = weight.reshape(-1)
    n_pos = int(((values >= 0) & active).sum())
    n_neg = int(((values < 0) & active).sum())
    return int(math.floor(fraction * n_pos)), int(math.floor(fraction * n_neg))


def set_update(weight, mask, fraction: float, generator):
    """One SET update of one layer; returns the new bool mask (same number of active positions).

    Parameters
    ----------
    weight, mask : torch.Tensor
        ``[out, in]``; not modified.
    fraction : float
        ζ, the share of the non-negative and of the negative weights dropped.
    generator : torch.Generator
    """
    flat_w = weight.reshape(-1)
    active = mask.reshape(-1)
    n_pos, n_neg = set_drop_counts(weight, mask, fraction)
    drop_pos = select_positions(flat_w, active & (flat_w >= 0), n_pos, generator, largest=False)
    drop_neg = select_positions(flat_w, active & (flat_w < 0), n_neg, generator, largest=True)
    new = active.clone()
    new[drop_pos] = False
    new[drop_neg] = False
    grow = random_positions(~new, n_pos + n_neg, generator)
    new[grow] = True
    return new.reshape(mask.shape)


@register("set")
class SET(Algorithm):
    """SET: see the module docstring for the exact rule."""

    option_names = ("drop_fraction",)

    def __init__(self, *, drop_fraction: float = 0.3) -> None:
        if not 0.0 <= float(drop_fraction) <= 1.0:
            raise TopoError(f"--drop-fraction must be in [0, 1], got {drop_fraction!r}")
        super().__init__(drop_fraction=float(drop_fraction))
        self.drop_fraction = float(drop_fraction)

    def after_epoch(self, epoch, weights, masks, generator):
        if epoch >= self.epochs or self.drop_fraction == 0.0:
            return None
        return [
            m.clone() if k in self.frozen else set_update(w, m, self.drop_fraction, generator)
            for k, (w, m) in enumerate(zip(weights, masks))
        ]

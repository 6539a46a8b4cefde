"""``set``: Sparse Evolutionary Training (Mocanu et al., 2018).

At the end of every epoch except the last (so the final network holds only trained
weights), in each layer that does not start fully dense: of the active weights
``w >= 0`` drop the ``floor(ζ · count)`` smallest, of the active weights ``w < 0`` drop
the ``floor(ζ · count)`` closest to zero (``ζ = drop_fraction``; ties broken at random),
then grow as many connections at positions drawn uniformly at random among the
positions inactive after the drop (a just-dropped one may be drawn again). Every layer
keeps its number of active weights, and grown weights start with zeroed optimiser state.

The values grown weights start at are the option ``--set-regrow-init``:

- ``normal`` (default): drawn from ``N(0, 1) / 10``, the rule of the reference SET
  implementation (Mocanu et al.'s ``set_mlp``: ``np.random.randn(n) / 10`` for the new
  connections), from the epoch's algorithm generator, so a resumed run draws the same;
- ``zero``: exactly 0 (the gradient moves them in the next epoch).
"""

from __future__ import annotations

import math

from topo.errors import TopoError
from topo.training.algorithms.base import Algorithm, random_positions, register, select_positions
from topo.training.schema import option

__all__ = ["SET", "set_update", "set_drop_counts", "SET_REGROW_INITS", "SET_REGROW_STD"]

#: the choices of ``--set-regrow-init``
SET_REGROW_INITS = ("normal", "zero")
#: the standard deviation of grown weights under ``normal`` (the reference code's ``randn / 10``)
SET_REGROW_STD = 0.1


def set_drop_counts(weight, mask, fraction: float) -> tuple[int, int]:
    """``(n_nonnegative, n_negative)`` weights SET drops from one layer.

    Parameters
    ----------
    weight, mask : torch.Tensor
        ``[out, in]`` weights and bool mask; only active positions count.
    fraction : float
        ζ, the share of each sign's active weights dropped (rounded down).

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> import torch
    >>> weight = torch.tensor([[0.5, -0.2, 0.1], [-0.7, 0.3, -0.4]])
    >>> mask = torch.tensor([[True, True, True], [True, True, False]])
    >>> set_drop_counts(weight, mask, 0.5)  # 3 active >= 0, 2 active < 0
    (1, 1)
    """
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
        Breaks ties among the dropped and draws the grown positions.

    Returns
    -------
    torch.Tensor of bool
        ``[out, in]``, with as many active positions as ``mask``.

    Examples
    --------
    >>> import torch
    >>> weight = torch.tensor([[0.5, -0.2, 0.1, 0.0], [-0.7, 0.3, -0.4, 0.0]])
    >>> mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    >>> new = set_update(weight, mask, 0.5, torch.Generator().manual_seed(0))
    >>> int(new.sum())  # the number of active weights stays exact
    6
    >>> bool(new[0, 0] & new[1, 0] & new[1, 1])  # the drop takes 0.1 and -0.2, never 0.5, -0.7, 0.3
    True
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
    """SET: see the module docstring for the exact rule.

    Parameters
    ----------
    drop_fraction : float
        ζ in ``[0, 1]``.
    set_regrow_init : {"normal", "zero"}
        The values grown weights start at.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    >>> import torch
    >>> algo = SET(drop_fraction=0.5)
    >>> masks = [torch.tensor([[True, True, False], [True, False, True]])]
    >>> algo.setup(masks=masks, steps_per_epoch=5, epochs=3, total_steps=15)
    >>> weights = [torch.tensor([[0.4, -0.3, 0.0], [0.2, 0.0, -0.6]])]
    >>> new = algo.after_epoch(1, weights, masks, torch.Generator().manual_seed(0))
    >>> int(new[0].sum())
    4
    >>> algo.after_epoch(3, weights, masks, torch.Generator()) is None  # the last epoch keeps its weights
    True
    >>> algo.grown_values(3, torch.Generator().manual_seed(0)).shape
    torch.Size([3])
    """

    option_names = ("drop_fraction",)
    declared_options = {
        "set_regrow_init": option(
            "normal", type=str, choices=SET_REGROW_INITS, choice_noun="regrowth initialisation",
            group="Method options",
            help="Values SET's grown weights start at: normal = N(0,1)/10 as the reference SET code, zero = exactly 0.",
        ),
    }

    def __init__(self, *, drop_fraction: float = 0.3, set_regrow_init: str = "normal") -> None:
        if not 0.0 <= float(drop_fraction) <= 1.0:
            raise TopoError(f"drop_fraction must be in [0, 1], got {drop_fraction!r}")
        if set_regrow_init not in SET_REGROW_INITS:
            raise TopoError(f"set_regrow_init must be one of {', '.join(SET_REGROW_INITS)}, got {set_regrow_init!r}")
        super().__init__(drop_fraction=float(drop_fraction), set_regrow_init=str(set_regrow_init))
        self.drop_fraction = float(drop_fraction)
        self.regrow_init = str(set_regrow_init)

    def grown_values(self, count: int, generator):
        """Start values of ``count`` grown weights of one layer; None keeps them at 0."""
        if self.regrow_init == "zero":
            return None
        import torch

        return torch.randn(count, generator=generator) * SET_REGROW_STD

    def after_epoch(self, epoch, weights, masks, generator):
        if epoch >= self.epochs or self.drop_fraction == 0.0:
            return None
        return [
            m.clone() if k in self.frozen else set_update(w, m, self.drop_fraction, generator)
            for k, (w, m) in enumerate(zip(weights, masks))
        ]

"""``granet``: gradual pruning with zero-cost neuroregeneration (Liu et al., NeurIPS 2021).

GraNet starts denser than its target (``initial_sparsity`` s_i; 0 starts dense) and
reaches the target ``sparsity`` s_f by gradual magnitude pruning on the cubic schedule
of Zhu & Gupta (2017); at every pruning step it also moves a share of the remaining
weights, dropping the smallest and regrowing where the gradient is largest, at no cost
in density ("neuroregeneration").

Counting is over the prunable layers (all, or all but the output layer with
``dense_output``), of total size ``S``. With ``ΔT = update_every``, ``T_end =
floor(end_fraction · total_steps)`` and ``n = floor(T_end / ΔT)`` pruning steps at
``t_j = j ΔT`` (``j = 1..n``; one step at the last training step when ``n = 0``):

1. target sparsity ``s_j = s_f + (s_0 - s_f) (1 - j / n)^3``, ``s_0`` the sparsity the
   masks start at; the prunable layers keep ``S - round(s_j · S)`` weights: the active
   weights of largest ``|w|`` over all of them together (one global threshold, random
   tie-break; a layer may lose more than another);
2. regeneration: ``r_j = α (1 + cos(π t_j / T_end)) / 2`` (``α = drop_fraction``); in
   each prunable layer drop the ``floor(r_j · nnz)`` active weights of smallest ``|w|``
   and grow as many inactive positions with the largest ``|dL/dW|`` of the current batch
   (RigL's rule; a weight just dropped or pruned may come back).

So after step ``j`` the prunable layers hold exactly ``S - round(s_j · S)`` weights, and
``s_f`` is reached at ``t_n``; the masks stay fixed after ``T_end``. Grown weights start
at 0 with zeroed optimiser state, and the trainer skips the optimiser step of a step
that changes the masks. The initial masks are the density rule's (ERK or uniform) at
``initial_sparsity``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.training.algorithms.base import Algorithm, cosine_drop_fraction, register
from topo.training.algorithms.prune import magnitude_prune
from topo.training.algorithms.rigl import rigl_update
from topo.training.schema import OptionError, option

__all__ = ["GraNet", "cubic_sparsity"]


def cubic_sparsity(j: int, n: int, initial: float, final: float) -> float:
    """Zhu & Gupta's schedule: ``s_j = final + (initial - final) (1 - j / n)^3`` (``final`` for ``n <= 0``).

    Parameters
    ----------
    j : int
        The pruning step, clipped to ``[0, n]``.
    n : int
        The number of pruning steps.
    initial, final : float
        The sparsity at step 0 and at step ``n``.

    Returns
    -------
    float

    Examples
    --------
    >>> [round(cubic_sparsity(j, 4, 0.5, 0.9), 4) for j in range(5)]  # fast at first, then slower
    [0.5, 0.7312, 0.85, 0.8938, 0.9]
    >>> cubic_sparsity(1, 0, 0.5, 0.9)
    0.9
    """
    if n <= 0:
        return float(final)
    j = min(max(int(j), 0), int(n))
    return float(final) + (float(initial) - float(final)) * (1.0 - j / n) ** 3


@register("granet")
class GraNet(Algorithm):
    """GraNet: see the module docstring for the exact rule.

    Parameters
    ----------
    sparsity : float
        s_f, the target in ``[0, 1)``.
    dense_output : bool
        Leave the output layer dense.
    update_every, drop_fraction, end_fraction
        ΔT, α and the share of all steps after which masks stay fixed (as in RigL).
    initial_sparsity : float
        s_i in ``[0, sparsity]``, the sparsity of the initial masks.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    A 4x4 layer starting at half density reaches 75% sparsity in three pruning steps:

    >>> import torch
    >>> algo = GraNet(sparsity=0.75, initial_sparsity=0.5, update_every=10, end_fraction=1.0)
    >>> mask = torch.zeros(4, 4, dtype=torch.bool)
    >>> mask[:, :2] = True
    >>> algo.setup(masks=[mask], steps_per_epoch=10, epochs=3, total_steps=30)
    >>> algo.pruning_steps(), [algo.target_nnz(step) for step in algo.pruning_steps()]
    ([10, 20, 30], [5, 4, 4])
    >>> _ = torch.manual_seed(0)
    >>> weight, grad = torch.randn(4, 4) * mask, torch.randn(4, 4)
    >>> new = algo.update(10, [weight], [grad], [mask], torch.Generator().manual_seed(0))
    >>> int(new[0].sum())
    5
    """

    option_names = ("sparsity", "dense_output", "update_every", "drop_fraction", "end_fraction")
    declared_options = {
        "initial_sparsity": option(
            0.5, type=float, low=0.0, high=1.0, high_open=True, group="Method options",
            help="Sparsity the masks start at before pruning to --sparsity on a cubic schedule (s_i; 0 starts dense).",
        ),
    }

    def __init__(self, *, sparsity: float = 0.9, dense_output: bool = False, update_every: int = 100,
                 drop_fraction: float = 0.3, end_fraction: float = 0.75, initial_sparsity: float = 0.5) -> None:
        if int(update_every) < 1:
            raise TopoError(f"update_every must be a positive number of steps, got {update_every!r}")
        for name, value in (("drop_fraction", drop_fraction), ("end_fraction", end_fraction)):
            if not 0.0 <= float(value) <= 1.0:
                raise OptionError(name, f"must be in [0, 1], got {value!r}")
        if not 0.0 <= float(initial_sparsity) <= float(sparsity) < 1.0:
            raise OptionError(
                "initial_sparsity", f"must be in [0, sparsity], got {initial_sparsity!r} with sparsity {sparsity!r}"
            )
        super().__init__(
            sparsity=float(sparsity), dense_output=bool(dense_output), update_every=int(update_every),
            drop_fraction=float(drop_fraction), end_fraction=float(end_fraction),
            initial_sparsity=float(initial_sparsity),
        )
        self.sparsity = float(sparsity)
        self.dense_output = bool(dense_output)
        self.update_every = int(update_every)
        self.drop_fraction = float(drop_fraction)
        self.end_fraction = float(end_fraction)
        self.initial_sparsity = float(initial_sparsity)
        #: sparsity of the prunable layers at the start (s_0) and their total size S
        self.start_sparsity = float(initial_sparsity)
        self.prunable_size = 0

    @classmethod
    def check_config(cls, config: Any) -> None:
        """The start must not be sparser than the target."""
        if config.initial_sparsity > config.sparsity:
            raise OptionError(
                "initial_sparsity",
                f"{config.initial_sparsity!r} is above sparsity {config.sparsity!r}; "
                "granet prunes from the initial sparsity to the target",
            )

    # -- schedule -------------------------------------------------------------------
    @property
    def end_step(self) -> int:
        """T_end: the last step at which masks may change."""
        return int(math.floor(self.end_fraction * self.total_steps))

    @property
    def n_steps(self) -> int:
        """n, the number of pruning steps."""
        return self.end_step // self.update_every

    def pruning_steps(self) -> list[int]:
        """The training steps at which the masks are pruned (and regenerated), in order."""
        if self.n_steps > 0:
            return [j * self.update_every for j in range(1, self.n_steps + 1)]
        return [self.total_steps] if self.total_steps > 0 else []

    def step_index(self, step: int) -> int | None:
        """``j`` of a pruning step, or None."""
        if self.n_steps > 0:
            if step > 0 and step % self.update_every == 0 and step // self.update_every <= self.n_steps:
                return step // self.update_every
            return None
        return 1 if self.total_steps > 0 and step == self.total_steps else None

    def target_sparsity(self, step: int) -> float:
        """``s_j`` after the pruning step at ``step`` (s_0 before the first)."""
        j = self.step_index(step)
        n = max(self.n_steps, 1)
        return cubic_sparsity(0 if j is None else j, n, self.start_sparsity, self.sparsity)

    def target_nnz(self, step: int) -> int:
        """``S - round(s_j · S)``: active weights of the prunable layers after the step at ``step``."""
        return self.prunable_size - int(round(self.target_sparsity(step) * self.prunable_size))

    # -- hooks ----------------------------------------------------------------------
    def initial_masks(self, shapes, **mask_options):
        """The density rule's masks at ``initial_sparsity`` (all ones at 0)."""
        from topo.training.masks import InitialMasks, initial_masks

        if self.initial_sparsity == 0.0:
            masks = [np.ones((int(o), int(i)), dtype=bool) for o, i in shapes]
            return InitialMasks(masks=masks, achieved_cv=[0.0] * len(masks), budgets=[m.size for m in masks])
        return initial_masks(shapes, **{**mask_options, "sparsity": self.initial_sparsity})

    def prunable(self, n_layers: int) -> set[int]:
        """Layers GraNet prunes: all, or all but the output layer with ``dense_output``."""
        return set(range(n_layers - 1)) if self.dense_output and n_layers > 1 else set(range(n_layers))

    def setup(self, *, masks, steps_per_epoch, epochs, total_steps):
        super().setup(masks=masks, steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total_steps)
        prunable = self.prunable(len(masks))
        self.frozen = set(range(len(masks))) - prunable  # a dense start is pruned by design
        arrays = [np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m, dtype=bool) for m in masks]
        self.prunable_size = int(sum(arrays[k].size for k in prunable))
        nnz = int(sum(arrays[k].sum() for k in prunable))
        self.start_sparsity = 1.0 - nnz / self.prunable_size if self.prunable_size else 0.0

    def is_update_step(self, step: int) -> bool:
        return self.step_index(step) is not None

    def update(self, step, weights, grads, masks, generator):
        if self.step_index(step) is None:
            return None
        prunable = self.prunable(len(masks))
        sparsity = 1.0 - self.target_nnz(step) / self.prunable_size
        pruned = magnitude_prune(weights, masks, sparsity, prune_class="class-blinded", prunable=prunable,
                                 generator=generator)
        rate = cosine_drop_fraction(step, self.drop_fraction, max(self.end_step, step))
        new = []
        for k, (w, g, m) in enumerate(zip(weights, grads, pruned)):
            n = int(math.floor(rate * int(m.sum()))) if k in prunable else 0
            new.append(rigl_update(w, g, m, n, generator) if n > 0 else m)
        return new

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"start_sparsity": self.start_sparsity, "prunable_size": self.prunable_size})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.start_sparsity = float(state.get("start_sparsity", self.initial_sparsity))
        self.prunable_size = int(state.get("prunable_size", 0))

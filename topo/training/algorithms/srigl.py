"""``srigl``: structured RigL, constant fan-in with neuron ablation (Lasby et al., ICLR 2024).

SRigL is RigL under one structural constraint: every active neuron of a sparse layer
has the same fan-in ``k``. The layer keeps its budget ``K`` (its number of active
weights at the start); neurons whose weights stop mattering are *ablated* (removed),
and their share of the budget goes to the neurons that remain.

Initial masks: each sparse layer gets ``k = clamp(round(K0 / n_out), 1, n_in)`` inputs
per neuron drawn uniformly at random, ``K0`` the layer's budget from the density rule
(ERK or uniform); ``K = k · n_out``. A layer that starts dense is left alone.

Every ``update_every`` steps (ΔT) while ``step <= end_fraction · total_steps`` (T_end),
layer by layer from the input side, with ``α_t = α (1 + cos(π t / T_end)) / 2``:

1. inputs from neurons the previous layer has removed are dropped (a removed neuron
   has neither inputs nor outputs);
2. ``n = floor(α_t · nnz)``: drop the ``n`` active weights of smallest ``|w|``
   (random tie-break), as RigL;
3. saliency: RigL would regrow the ``n`` inactive positions of largest ``|dL/dW|``
   (``G``); neuron ``i``'s salient weights are its kept weights plus its positions in
   ``G``. With ``γ = ablation_threshold`` (the paper's γ_sal), a neuron of a hidden layer
   with fewer than ``γ · k`` salient weights is ablated: all its inputs go, and its
   outputs go from the next layer (the output layer's neurons are never ablated, and
   at least one neuron of a layer always stays);
4. the new fan-in is ``k' = min(floor(K / a), n_allowed)``, ``a`` the neurons still
   active, ``n_allowed`` the inputs not removed upstream; every active neuron then gets
   exactly ``k'`` inputs: a neuron above ``k'`` drops its smallest ``|w|``, a neuron
   below grows the inactive allowed positions of its row with the largest
   ``|dL/dW|`` (a weight dropped in step 2 may come straight back).

So after every update each active neuron of a sparse layer has fan-in exactly ``k'``
(fan-in CV 0 over the active neurons) and the layer has ``k' · a`` active weights.
Grown weights start at 0 with zeroed optimiser state, and the trainer skips the
optimiser step of an update step, as for RigL. ``γ = 0`` never ablates. Dense layers
(frozen) are not updated, except that a removed neuron's column is switched off there
too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.training.algorithms.base import register, select_positions
from topo.training.algorithms.rigl import RigL, magnitude_drop
from topo.training.schema import option

__all__ = ["SRigL", "constant_fan_in_mask", "srigl_layer_update", "fan_in_target"]


def fan_in_target(budget: int, n_out: int, n_in: int) -> int:
    """``k = clamp(round(budget / n_out), 1, n_in)``: the constant fan-in of a layer's budget.

    Parameters
    ----------
    budget : int
        The layer's number of active weights.
    n_out, n_in : int
        The layer's shape.

    Returns
    -------
    int

    Examples
    --------
    >>> fan_in_target(10, 4, 8)  # round(2.5) is 2 (to even)
    2
    >>> fan_in_target(1, 4, 8), fan_in_target(100, 4, 8)  # at least 1, at most n_in
    (1, 8)
    """
    return int(min(max(int(round(int(budget) / max(int(n_out), 1))), 1), int(n_in)))


def constant_fan_in_mask(n_out: int, n_in: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A bool ``[n_out, n_in]`` mask whose every row has ``k`` inputs drawn uniformly at random.

    Parameters
    ----------
    n_out, n_in : int
        The mask's shape.
    k : int
        Inputs per row, at most ``n_in``.
    rng : numpy.random.Generator
        Draws the inputs.

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> import numpy as np
    >>> mask = constant_fan_in_mask(3, 5, 2, np.random.default_rng(0))
    >>> mask.shape, mask.sum(axis=1).tolist()
    ((3, 5), [2, 2, 2])
    """
    order = np.argsort(rng.random((int(n_out), int(n_in))), axis=1)[:, : int(k)]
    mask = np.zeros((int(n_out), int(n_in)), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def _rowwise_pick(scores, allowed, counts, generator, *, largest: bool):
    """Per row ``i``, a bool mask of the ``counts[i]`` allowed positions of largest (smallest) score.

    Ties are broken at random: the columns are put in one random order first and then
    sorted stably within each row.
    """
    import torch

    n_in = scores.shape[1]
    perm = torch.randperm(n_in, generator=generator)
    fill = -math.inf if largest else math.inf
    s = torch.where(allowed, scores.to(torch.float64), torch.full_like(scores, fill, dtype=torch.float64))[:, perm]
    order = torch.sort(s, dim=1, stable=True, descending=largest).indices
    take = torch.arange(n_in).unsqueeze(0) < counts.unsqueeze(1)
    picked = torch.zeros_like(allowed)
    rows = torch.arange(scores.shape[0]).unsqueeze(1).expand(-1, n_in)
    picked[rows[take], perm[order][take]] = True
    return picked & allowed


def srigl_layer_update(weight, grad, mask, budget: int, fan_in: int, n: int, generator, *,
                       removed_inputs=None, may_ablate: bool = True, threshold: float = 0.0):
    """One SRigL update of one layer (steps 1-4 of the module notes).

    Parameters
    ----------
    weight, grad, mask : torch.Tensor
        ``[out, in]``: weights, dense gradient of the batch, bool mask (not modified).
    budget : int
        ``K``, the layer's budget of active weights.
    fan_in : int
        ``k``, the current fan-in of every active neuron (the ablation threshold is ``γ k``).
    n : int
        Weights to drop by magnitude (``floor(α_t · nnz)``).
    generator : torch.Generator
        Breaks ties.
    removed_inputs : torch.Tensor of bool, optional
        ``[in]``: inputs whose neuron the previous layer has removed.
    may_ablate : bool
        Whether neurons of this layer may be ablated (False for the output layer).
    threshold : float
        γ_sal.

    Returns
    -------
    (torch.Tensor of bool, int)
        The new mask and its fan-in ``k'``; every active row has exactly ``k'`` inputs.

    Examples
    --------
    Three neurons of fan-in 2 (budget 6). Dropping the two smallest weights leaves
    neuron 2 with no salient weight (its gradient is 0 too), below ``0.5 · 2``, so it
    is ablated; the other two share the budget at ``k' = 6 // 2 = 3`` and each grows
    its input of largest gradient:

    >>> import torch
    >>> weight = torch.tensor([[0.9, 0.8, 0.0, 0.0], [0.0, 0.7, 0.6, 0.0], [0.01, 0.0, 0.0, 0.02]])
    >>> grad = torch.tensor([[0.0, 0.0, 0.5, 0.1], [0.3, 0.0, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0]])
    >>> new, k = srigl_layer_update(weight, grad, weight != 0, 6, 2, 2, torch.Generator(), threshold=0.5)
    >>> new.int(), k
    (tensor([[1, 1, 1, 0],
            [1, 1, 1, 0],
            [0, 0, 0, 0]], dtype=torch.int32), 3)
    """
    import torch

    n_out, n_in = mask.shape
    allowed_cols = torch.ones(n_in, dtype=torch.bool) if removed_inputs is None else ~removed_inputs
    allowed = allowed_cols.unsqueeze(0).expand(n_out, n_in)
    current = mask & allowed
    active_rows = mask.any(dim=1)
    n = int(min(max(int(n), 0), int(current.sum())))
    kept = magnitude_drop(weight, current, n, generator) if n > 0 else current.clone()
    if may_ablate and threshold > 0:
        candidates = (~kept) & allowed & active_rows.unsqueeze(1)
        grow = select_positions(grad.reshape(-1).abs(), candidates.reshape(-1), n, generator, largest=True)
        grown = torch.zeros(n_out * n_in, dtype=torch.bool)
        grown[grow] = True
        salient = kept.sum(dim=1) + grown.reshape(n_out, n_in).sum(dim=1)
        ablate = active_rows & (salient.to(torch.float64) < threshold * int(fan_in))
        if not bool((active_rows & ~ablate).any()):
            # a layer keeps at least one neuron: the most salient one
            best = torch.argmax(torch.where(active_rows, salient, torch.full_like(salient, -1)))
            ablate[best] = False
        active_rows = active_rows & ~ablate
    n_active = int(active_rows.sum())
    new_k = int(min(int(budget) // max(n_active, 1), int(allowed_cols.sum())))
    kept = kept & active_rows.unsqueeze(1)
    have = kept.sum(dim=1)
    # rows above k' lose their smallest weights, rows below gain their largest gradients
    excess = torch.clamp(have - new_k, min=0) * active_rows
    if bool(excess.any()):
        extra = _rowwise_pick(weight.abs(), kept, excess, generator, largest=False)
        kept = kept & ~extra
        have = kept.sum(dim=1)
    need = torch.clamp(new_k - have, min=0) * active_rows
    if bool(need.any()):
        room = (~kept) & allowed & active_rows.unsqueeze(1)
        kept = kept | _rowwise_pick(grad.abs(), room, need, generator, largest=True)
    return kept, new_k


@register("srigl")
class SRigL(RigL):
    """SRigL: see the module docstring for the exact rule.

    Parameters
    ----------
    update_every, drop_fraction, end_fraction
        As for :class:`~topo.training.algorithms.rigl.RigL`.
    ablation_threshold : float
        γ_sal in ``[0, 1]``; 0 never ablates.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    >>> import torch
    >>> algo = SRigL(update_every=10, drop_fraction=0.5)
    >>> start = algo.initial_masks([(4, 6), (2, 4)], sparsity=0.5, seed=0)
    >>> [m.sum(axis=1).tolist() for m in start.masks], start.budgets  # constant fan-in per layer
    ([[2, 2, 2, 2], [3, 3]], [8, 6])
    >>> masks = [torch.from_numpy(m) for m in start.masks]
    >>> algo.setup(masks=masks, steps_per_epoch=10, epochs=4, total_steps=40)
    >>> _ = torch.manual_seed(0)
    >>> weights = [torch.randn(4, 6) * masks[0], torch.randn(2, 4) * masks[1]]
    >>> grads = [torch.randn(4, 6), torch.randn(2, 4)]
    >>> new = algo.update(10, weights, grads, masks, torch.Generator().manual_seed(0))
    >>> [sorted(set(m.sum(dim=1).tolist()) - {0}) for m in new]  # one fan-in per layer still
    [[2], [3]]
    """

    option_names = ("update_every", "drop_fraction", "end_fraction")
    declared_options = {
        "ablation_threshold": option(
            0.3, type=float, low=0.0, high=1.0, group="Method options",
            help="γ_sal: a hidden neuron with fewer salient weights than this share of its fan-in is "
                 "ablated (removed) at an update; 0 never ablates.",
        ),
    }

    def __init__(self, *, update_every: int = 100, drop_fraction: float = 0.3, end_fraction: float = 0.75,
                 ablation_threshold: float = 0.3) -> None:
        if not 0.0 <= float(ablation_threshold) <= 1.0:
            raise TopoError(f"ablation_threshold must be in [0, 1], got {ablation_threshold!r}")
        super().__init__(update_every=update_every, drop_fraction=drop_fraction, end_fraction=end_fraction)
        self.options["ablation_threshold"] = float(ablation_threshold)
        self.ablation_threshold = float(ablation_threshold)
        #: per layer: budget K and current fan-in k (None for a frozen layer)
        self.budgets: list[int] = []
        self.fan_ins: list[int] = []

    @classmethod
    def check_config(cls, config: Any) -> None:
        """SRigL draws constant fan-in masks itself: no fan-in profile or random-graph prior."""
        if config.profile not in ("random", "constant") or config.cv is not None:
            raise TopoError("profile: srigl keeps every neuron's fan-in equal; drop profile/cv")
        if config.init is not None and not str(config.init).startswith("masks:"):
            raise TopoError(f"init: srigl draws constant fan-in masks; {config.init!r} does not apply (masks: does)")

    def initial_masks(self, shapes, **mask_options):
        """The density rule's budgets, then ``k`` random inputs per neuron (see the module notes)."""
        from topo.training.masks import InitialMasks, initial_masks

        base = initial_masks(shapes, **mask_options)
        rng = np.random.default_rng([int(mask_options.get("seed", 0)), 0x5121])
        masks, budgets, cvs = [], [], []
        for (n_out, n_in), mask in zip(shapes, base.masks):
            if bool(np.asarray(mask).all()):
                masks.append(np.asarray(mask, dtype=bool))
                budgets.append(int(mask.size))
                cvs.append(0.0)
                continue
            k = fan_in_target(int(np.asarray(mask).sum()), n_out, n_in)
            masks.append(constant_fan_in_mask(n_out, n_in, k, rng))
            budgets.append(k * int(n_out))
            cvs.append(0.0)
        return InitialMasks(masks=masks, achieved_cv=cvs, budgets=budgets)

    def setup(self, *, masks, steps_per_epoch, epochs, total_steps):
        super().setup(masks=masks, steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total_steps)
        self.budgets, self.fan_ins = [], []
        for m in masks:
            m = np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m, dtype=bool)
            rows = m.sum(axis=1)
            active = rows[rows > 0]
            self.budgets.append(int(m.sum()))
            self.fan_ins.append(int(active.max()) if active.size else 0)

    def update(self, step, weights, grads, masks, generator):
        import torch

        alpha = self.fraction(step)
        new = []
        removed = None  # outputs of the previous layer that are removed neurons
        last = len(masks) - 1
        for k, (w, g, m) in enumerate(zip(weights, grads, masks)):
            if k in self.frozen:
                cut = m & ~removed.unsqueeze(0) if removed is not None else m.clone()
                new.append(cut)
                removed = None  # a dense layer removes none of its own neurons
                continue
            usable = m if removed is None else m & ~removed.unsqueeze(0)
            n = int(math.floor(alpha * int(usable.sum())))
            mask, fan_in = srigl_layer_update(
                w, g, m, self.budgets[k], self.fan_ins[k], n, generator,
                removed_inputs=removed, may_ablate=k < last, threshold=self.ablation_threshold,
            )
            self.fan_ins[k] = fan_in
            new.append(mask)
            removed = ~mask.any(dim=1)
            if not bool(removed.any()):
                removed = None
        if all(bool(torch.equal(a, b)) for a, b in zip(new, masks)):
            return None
        return new

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"budgets": list(self.budgets), "fan_ins": list(self.fan_ins)})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.budgets = [int(v) for v in state.get("budgets", [])]
        self.fan_ins = [int(v) for v in state.get("fan_ins", [])]

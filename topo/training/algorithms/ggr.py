"""``ggr``: global gradient-based redistribution (after Parger et al., 2022).

RigL moves connections inside each layer; GGR pools them across layers, so that layer
densities follow the gradient. At the steps where RigL updates (every ``update_every``
steps while ``step <= end_fraction * total_steps``, ``α_t`` the same cosine schedule),
over the layers that do not start fully dense:

1. Drop, per layer: ``n_l = min(floor(α_t · nnz_l), nnz_l - r_l)`` active weights of
   smallest ``|w|``, where ``r_l`` counts the layer's output neurons that have at least
   one input; each such neuron's largest-``|w|`` input is protected from the drop, so
   every neuron keeps at least one input.
2. Pool ``N = Σ n_l``. Of these, ``N_explore = floor(β · N)`` (``β = explore_fraction``)
   are for exploration and ``N_grad = N - N_explore`` follow the gradient.
3. Candidates are the positions inactive after the drop in all those layers (the just
   dropped included). Score each by ``|g|``, the dense gradient of the current batch;
   with ``ggr_normalise`` by ``|g| / mean(|g| over the layer's candidates)``, so that
   layers whose gradients are on a larger scale do not take everything. Grow the
   ``N_grad`` candidates with the largest scores, ranked globally (random tie-break).
4. Grow ``N_explore`` more, drawn uniformly at random among the remaining candidates
   of all layers together.

The total number of active weights is unchanged; per-layer counts move. No layer can
exceed density 1 (only inactive positions grow). Grown weights start at 0 with zeroed
optimiser state, and the optimiser step is skipped on an update step (as in RigL).
"""

from __future__ import annotations

import math

from topo.errors import TopoError
from topo.training.algorithms.base import random_positions, register, select_positions
from topo.training.algorithms.rigl import RigL, magnitude_drop

__all__ = ["GGR", "ggr_update", "ggr_drop_counts"]


def _protected_inputs(weight, mask):
    """Bool mask of each output neuron's largest-|w| active input (neurons with inputs only)."""
    import torch

    score = torch.where(mask, weight.abs(), torch.full_like(weight, -1.0, dtype=weight.dtype))
    best = score.argmax(dim=1)
    protect = torch.zeros_like(mask)
    rows = torch.arange(mask.shape[0])
    has_input = mask.any(dim=1)
    protect[rows[has_input], best[has_input]] = True
    return protect


def ggr_drop_counts(masks, fraction: float, layers=None) -> list[int]:
    """``n_l = min(floor(fraction · nnz_l), nnz_l - r_l)`` for the given layers, 0 for the others.

    Parameters
    ----------
    masks : sequence of torch.Tensor
        Per layer ``[out, in]`` bool masks.
    fraction : float
        α_t, the share of each layer's active weights dropped.
    layers : collection of int, optional
        The layers that take part (default all).

    Returns
    -------
    list of int
        Per layer, how many active weights GGR drops.

    Examples
    --------
    A layer keeps one input per output neuron that has any, so the second layer
    (one weight, one neuron with inputs) drops nothing:

    >>> import torch
    >>> masks = [torch.tensor([[True, True, False], [True, True, False]]), torch.tensor([[True, False], [False, False]])]
    >>> ggr_drop_counts(masks, 0.5)
    [2, 0]
    >>> ggr_drop_counts(masks, 0.5, layers={1})
    [0, 0]
    """
    counts = []
    for k, mask in enumerate(masks):
        if layers is not None and k not in layers:
            counts.append(0)
            continue
        nnz = int(mask.sum())
        rows_with_input = int(mask.any(dim=1).sum())
        counts.append(max(0, min(int(math.floor(fraction * nnz)), nnz - rows_with_input)))
    return counts


def ggr_update(weights, grads, masks, fraction: float, explore_fraction: float, generator, *, normalise: bool = False, layers=None):
    """One GGR update over several layers; returns the new masks.

    Parameters
    ----------
    weights, grads, masks : sequences of torch.Tensor
        Per layer ``[out, in]``: weights, dense gradients, bool masks (not modified).
    fraction : float
        α_t, the share of each layer's active weights dropped.
    explore_fraction : float
        β, the share of the pooled regrowth placed at random.
    generator : torch.Generator
        Breaks ties and draws the exploration positions.
    normalise : bool
        Divide each layer's |gradient| by its mean over the layer's candidates.
    layers : collection of int, optional
        The layers that take part (default all); others are returned unchanged.

    Returns
    -------
    list of torch.Tensor of bool
        The total number of active positions equals the input's.

    Examples
    --------
    Layer 0 drops its two smallest weights (0.1 and -0.2; 0.9 and 0.5 are each
    neuron's protected input); the pooled two grow where the gradient is largest,
    one in each layer, so the second layer gains a weight the first lost:

    >>> import torch
    >>> weights = [torch.tensor([[0.9, 0.1, 0.0], [0.5, -0.2, 0.0]]), torch.tensor([[0.3, 0.0], [0.0, 0.0]])]
    >>> grads = [torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.2]]), torch.tensor([[0.0, 5.0], [0.0, 0.0]])]
    >>> masks = [w != 0 for w in weights]
    >>> new = ggr_update(weights, grads, masks, 0.5, 0.0, torch.Generator())
    >>> [m.int().tolist() for m in new]
    [[[1, 0, 0], [1, 0, 1]], [[1, 1], [0, 0]]]
    >>> [int(m.sum()) for m in masks], [int(m.sum()) for m in new]
    ([4, 1], [3, 2])
    """
    import torch

    layers = set(range(len(masks))) if layers is None else set(layers)
    counts = ggr_drop_counts(masks, fraction, layers)
    new = [m.clone() for m in masks]
    total = sum(counts)
    if total == 0:
        return new
    for k in layers:
        if counts[k]:
            new[k] = magnitude_drop(weights[k], masks[k], counts[k], generator, protect=_protected_inputs(weights[k], masks[k]))
    order = sorted(layers)
    sizes = [masks[k].numel() for k in order]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    candidates = torch.cat([~new[k].reshape(-1) for k in order])
    per_layer = []
    for k in order:
        g = grads[k].reshape(-1).abs().to(torch.float64)
        if normalise:
            cand = ~new[k].reshape(-1)
            mean = g[cand].mean() if bool(cand.any()) else torch.tensor(0.0, dtype=torch.float64)
            g = g / mean if float(mean) > 0 else torch.zeros_like(g)
        per_layer.append(g)
    scores = torch.cat(per_layer)
    n_explore = int(math.floor(explore_fraction * total))
    n_grad = total - n_explore
    grow = select_positions(scores, candidates, n_grad, generator, largest=True)
    candidates[grow] = False
    explore = random_positions(candidates, n_explore, generator)
    chosen = torch.cat([grow, explore])
    for i, k in enumerate(order):
        lo, hi = offsets[i], offsets[i + 1]
        mine = chosen[(chosen >= lo) & (chosen < hi)] - lo
        if mine.numel():
            flat = new[k].reshape(-1)
            flat[mine] = True
            new[k] = flat.reshape(masks[k].shape)
    return new


@register("ggr")
class GGR(RigL):
    """Global gradient-based redistribution: see the module docstring for the exact rule.

    Parameters
    ----------
    update_every, drop_fraction, end_fraction
        As for :class:`~topo.training.algorithms.rigl.RigL`.
    explore_fraction : float
        β in ``[0, 1]``, the share of the pooled regrowth placed at random.
    ggr_normalise : bool
        Score candidates by ``|g|`` over the mean of their layer.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    >>> import torch
    >>> algo = GGR(update_every=5, drop_fraction=0.5, explore_fraction=0.0)
    >>> weights = [torch.tensor([[0.9, 0.1, 0.0], [0.5, -0.2, 0.0]]), torch.tensor([[0.3, 0.0], [0.0, 0.0]])]
    >>> grads = [torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.2]]), torch.tensor([[0.0, 5.0], [0.0, 0.0]])]
    >>> masks = [w != 0 for w in weights]
    >>> algo.setup(masks=masks, steps_per_epoch=5, epochs=4, total_steps=20)
    >>> new = algo.update(5, weights, grads, masks, torch.Generator())
    >>> [int(m.sum()) for m in new]  # the total (5) stays, the layers' shares move
    [3, 2]
    """

    option_names = ("update_every", "drop_fraction", "end_fraction", "explore_fraction", "ggr_normalise")

    def __init__(
        self,
        *,
        update_every: int = 100,
        drop_fraction: float = 0.3,
        end_fraction: float = 0.75,
        explore_fraction: float = 0.1,
        ggr_normalise: bool = False,
    ) -> None:
        super().__init__(update_every=update_every, drop_fraction=drop_fraction, end_fraction=end_fraction)
        if not 0.0 <= float(explore_fraction) <= 1.0:
            raise TopoError(f"explore_fraction must be in [0, 1], got {explore_fraction!r}")
        self.explore_fraction = float(explore_fraction)
        self.normalise = bool(ggr_normalise)
        self.options.update(explore_fraction=self.explore_fraction, ggr_normalise=self.normalise)

    def update(self, step, weights, grads, masks, generator):
        active = [k for k in range(len(masks)) if k not in self.frozen]
        if not active:
            return None
        alpha = self.fraction(step)
        if sum(ggr_drop_counts(masks, alpha, set(active))) == 0:
            return None
        return ggr_update(weights, grads, masks, alpha, self.explore_fraction, generator, normalise=self.normalise, layers=active)

"""``prune``: magnitude pruning of a trained network (the three classes of See et al., 2016).

Training starts dense for ``epochs`` epochs; then the network is pruned to the target
``sparsity`` in ``prune_steps`` equal steps (step k of K reaches sparsity
``sparsity · k / K``), and trained ``retrain_epochs`` more epochs with the mask fixed
between and after the steps. Step k happens at the end of epoch
``epochs + floor((k - 1) · retrain_epochs / K)``, so the retraining epochs are shared out
evenly between the steps (several steps fall on one epoch when ``retrain_epochs < K``).

Sparsity is counted over the prunable layers (all layers, or all but the output layer
with ``dense_output``). Which weights go, with ``S`` the prunable size and ``s_k`` the
step's sparsity:

- ``class-blinded``: keep the ``S - round(s_k · S)`` active weights of largest ``|w|``
  over all prunable layers together (one global threshold);
- ``class-uniform``: in each prunable layer keep ``size_l - round(s_k · size_l)`` of
  largest ``|w|`` (the same fraction in every layer);
- ``class-distribution``: like class-blinded on ``|w| / σ_l``, σ_l the standard
  deviation of layer l's active weights: pruning ``|w| < λ σ_l`` with the one λ at
  which the total count hits the target.

A layer already below its target keeps its mask (nothing is grown back).
"""

from __future__ import annotations


from topo.errors import TopoError
from topo.training.algorithms.base import Algorithm, register, select_positions

__all__ = ["Prune", "magnitude_prune", "prune_targets", "PRUNE_CLASSES"]

PRUNE_CLASSES = ("class-blinded", "class-uniform", "class-distribution")


def prune_targets(shapes, sparsity: float, prune_class: str, prunable) -> tuple[list[int] | None, int]:
    """Active-weight targets: ``(per-layer keep counts or None, total keep count)`` over ``prunable``.

    Parameters
    ----------
    shapes : sequence of (int, int)
        Per layer ``(out, in)``.
    sparsity : float
        Target share of switched-off positions.
    prune_class : {"class-blinded", "class-uniform", "class-distribution"}
        Only ``class-uniform`` has per-layer targets.
    prunable : collection of int
        The layers pruning counts over.

    Returns
    -------
    tuple
        ``(list of int or None, int)``: the per-layer keep counts (all layers; those
        not prunable keep their size) and the total over ``prunable``.

    Examples
    --------
    >>> prune_targets([(2, 3), (2, 2)], 0.5, "class-uniform", {0, 1})
    ([3, 2], 5)
    >>> prune_targets([(2, 3), (2, 2)], 0.5, "class-blinded", {0, 1})
    (None, 5)
    >>> prune_targets([(2, 3), (2, 2)], 0.5, "class-uniform", {0})  # layer 1 keeps all 4
    ([3, 4], 3)
    """
    sizes = [int(o) * int(i) for o, i in shapes]
    if prune_class == "class-uniform":
        per_layer = [s - int(round(sparsity * s)) if k in prunable else s for k, s in enumerate(sizes)]
        return per_layer, sum(per_layer[k] for k in prunable)
    total = sum(sizes[k] for k in prunable)
    return None, total - int(round(sparsity * total))


def magnitude_prune(weights, masks, sparsity: float, *, prune_class: str = "class-blinded", prunable=None, generator=None):
    """Masks pruned by magnitude to ``sparsity`` over the prunable layers.

    Parameters
    ----------
    weights, masks : sequences of torch.Tensor
        Per layer ``[out, in]`` (not modified).
    sparsity : float
        Target share of switched-off positions in the prunable layers.
    prune_class : {"class-blinded", "class-uniform", "class-distribution"}
        How the target is shared between layers (see the module docstring).
    prunable : collection of int, optional
        Layers that may be pruned (default all).
    generator : torch.Generator, optional
        Breaks ties among equal magnitudes at random (seeded 0 when omitted).

    Returns
    -------
    list of torch.Tensor of bool

    Raises
    ------
    TopoError
        For an unknown prune class.

    Examples
    --------
    Layer 1's weights are ten times layer 0's. One global threshold prunes layer 0
    away; the uniform class halves each layer; dividing by each layer's spread
    keeps what stands out within its layer:

    >>> import torch
    >>> weights = [torch.tensor([[0.1, 0.2], [0.3, 0.4]]), torch.tensor([[1.0, 2.0], [3.0, 8.0]])]
    >>> masks = [torch.ones(2, 2, dtype=torch.bool)] * 2
    >>> for prune_class in ("class-blinded", "class-uniform", "class-distribution"):
    ...     pruned = magnitude_prune(weights, masks, 0.5, prune_class=prune_class)
    ...     print(prune_class, [m.int().tolist() for m in pruned])
    class-blinded [[[0, 0], [0, 0]], [[1, 1], [1, 1]]]
    class-uniform [[[0, 0], [1, 1]], [[0, 0], [1, 1]]]
    class-distribution [[[0, 1], [1, 1]], [[0, 0], [0, 1]]]
    >>> magnitude_prune(weights, masks, 0.5, prune_class="class-random")
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: unknown prune class 'class-random'; known: class-blinded, class-uniform, class-distribution
    """
    import torch

    if prune_class not in PRUNE_CLASSES:
        raise TopoError(f"unknown prune class {prune_class!r}; known: {', '.join(PRUNE_CLASSES)}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    prunable = set(range(len(masks))) if prunable is None else set(prunable)
    shapes = [tuple(m.shape) for m in masks]
    per_layer, total_keep = prune_targets(shapes, sparsity, prune_class, prunable)
    new = [m.clone() for m in masks]
    if per_layer is not None:
        for k in sorted(prunable):
            n_drop = int(masks[k].sum()) - per_layer[k]
            if n_drop > 0:
                drop = select_positions(weights[k].reshape(-1).abs(), masks[k].reshape(-1), n_drop, generator, largest=False)
                flat = new[k].reshape(-1)
                flat[drop] = False
                new[k] = flat.reshape(shapes[k])
        return new
    order = sorted(prunable)
    n_drop = sum(int(masks[k].sum()) for k in order) - total_keep
    if n_drop <= 0:
        return new
    scores, cands, offsets = [], [], [0]
    for k in order:
        score = weights[k].reshape(-1).abs().to(torch.float64)
        active = masks[k].reshape(-1)
        if prune_class == "class-distribution":
            values = weights[k].reshape(-1)[active].to(torch.float64)
            sigma = float(values.std(unbiased=False)) if values.numel() > 1 else 0.0
            score = score / sigma if sigma > 0 else torch.zeros_like(score)
        scores.append(score)
        cands.append(active)
        offsets.append(offsets[-1] + active.numel())
    drop = select_positions(torch.cat(scores), torch.cat(cands), n_drop, generator, largest=False)
    for i, k in enumerate(order):
        mine = drop[(drop >= offsets[i]) & (drop < offsets[i + 1])] - offsets[i]
        if mine.numel():
            flat = new[k].reshape(-1)
            flat[mine] = False
            new[k] = flat.reshape(shapes[k])
    return new


@register("prune")
class Prune(Algorithm):
    """Dense training, then magnitude pruning, then retraining: see the module docstring.

    Parameters
    ----------
    sparsity : float
        The target in ``[0, 1)``.
    prune_class : {"class-blinded", "class-uniform", "class-distribution"}
        How the target is shared between layers.
    prune_steps : int
        K, the number of pruning steps (at least 1).
    retrain_epochs : int
        Epochs trained after the dense phase, shared out between the steps.
    dense_output : bool
        Leave the output layer dense.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    Three dense epochs, then two steps to 80% over four retraining epochs:

    >>> import torch
    >>> algo = Prune(sparsity=0.8, prune_steps=2, retrain_epochs=4)
    >>> start = algo.initial_masks([(2, 5)])
    >>> bool(start.masks[0].all())  # pruning starts dense
    True
    >>> masks = [torch.from_numpy(start.masks[0])]
    >>> algo.setup(masks=masks, steps_per_epoch=10, epochs=3, total_steps=70)
    >>> algo.schedule()  # (epoch, sparsity) of each step
    [(3, 0.4), (5, 0.8)]
    >>> weights = [torch.arange(1.0, 11.0).reshape(2, 5)]
    >>> algo.after_epoch(3, weights, masks, torch.Generator())[0].int()  # the 4 smallest go
    tensor([[0, 0, 0, 0, 1],
            [1, 1, 1, 1, 1]], dtype=torch.int32)
    """

    option_names = ("sparsity", "prune_class", "prune_steps", "retrain_epochs", "dense_output")

    def __init__(
        self,
        *,
        sparsity: float = 0.9,
        prune_class: str = "class-blinded",
        prune_steps: int = 1,
        retrain_epochs: int = 5,
        dense_output: bool = False,
    ) -> None:
        if prune_class not in PRUNE_CLASSES:
            raise TopoError(f"prune_class: unknown {prune_class!r}; known: {', '.join(PRUNE_CLASSES)}")
        if int(prune_steps) < 1:
            raise TopoError(f"prune_steps must be at least 1, got {prune_steps!r}")
        if int(retrain_epochs) < 0:
            raise TopoError(f"retrain_epochs must be non-negative, got {retrain_epochs!r}")
        if not 0.0 <= float(sparsity) < 1.0:
            raise TopoError(f"sparsity must be in [0, 1), got {sparsity!r}")
        super().__init__(
            sparsity=float(sparsity), prune_class=prune_class, prune_steps=int(prune_steps),
            retrain_epochs=int(retrain_epochs), dense_output=bool(dense_output),
        )
        self.sparsity = float(sparsity)
        self.prune_class = prune_class
        self.prune_steps = int(prune_steps)
        self.retrain_epochs = int(retrain_epochs)
        self.dense_output = bool(dense_output)

    def initial_masks(self, shapes, **mask_options):
        """All ones: pruning starts from a dense network (``sparsity`` is the pruning target)."""
        import numpy as np

        from topo.training.masks import InitialMasks

        masks = [np.ones((int(o), int(i)), dtype=bool) for o, i in shapes]
        return InitialMasks(masks=masks, achieved_cv=[0.0] * len(masks), budgets=[m.size for m in masks])

    def setup(self, *, masks, steps_per_epoch, epochs, total_steps):
        super().setup(masks=masks, steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total_steps)
        self.frozen = set()  # pruning starts from dense layers by design

    def prunable(self, n_layers: int) -> set[int]:
        return set(range(n_layers - 1)) if self.dense_output and n_layers > 1 else set(range(n_layers))

    def schedule(self) -> list[tuple[int, float]]:
        """``(epoch, sparsity)`` of every pruning step, in order."""
        k_steps = self.prune_steps
        return [
            (self.epochs + (k - 1) * self.retrain_epochs // k_steps, self.sparsity * k / k_steps)
            for k in range(1, k_steps + 1)
        ]

    def after_epoch(self, epoch, weights, masks, generator):
        targets = [s for e, s in self.schedule() if e == epoch]
        if not targets or self.epochs == 0:
            return None
        new = list(masks)
        for sparsity in targets:
            new = magnitude_prune(weights, new, sparsity, prune_class=self.prune_class,
                                  prunable=self.prunable(len(masks)), generator=generator)
        return new

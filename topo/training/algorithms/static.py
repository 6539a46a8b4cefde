"""``static``: the initial masks never change."""

from __future__ import annotations

from topo.training.algorithms.base import Algorithm, register

__all__ = ["Static"]


@register("static")
class Static(Algorithm):
    """Sparse training with a fixed mask (or dense training at sparsity 0).

    Examples
    --------
    >>> import torch
    >>> algo = Static()
    >>> mask = torch.tensor([[True, False, True], [False, True, False]])
    >>> algo.setup(masks=[mask], steps_per_epoch=4, epochs=2, total_steps=8)
    >>> [algo.is_update_step(step) for step in range(1, 9)].count(True)
    0
    >>> algo.after_epoch(1, [torch.randn(2, 3)], [mask], torch.Generator()) is None
    True
    """

    option_names = ()

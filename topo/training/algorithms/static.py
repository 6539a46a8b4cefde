"""``static``: the initial masks never change."""

from __future__ import annotations

from topo.training.algorithms.base import Algorithm, register

__all__ = ["Static"]


@register("static")
class Static(Algorithm):
    """Sparse training with a fixed mask (or dense training at sparsity 0)."""

    option_names = ()

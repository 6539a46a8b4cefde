"""Sparse-training algorithms: one base class, a registry keyed by the name the CLI accepts.

>>> from topo.training.algorithms import get_algorithm
>>> algo = get_algorithm("rigl", update_every=100, drop_fraction=0.3)

Registered: ``static``, ``rigl``, ``set``, ``ggr``, ``prune`` (see each module).
"""

from topo.training.algorithms.base import (
    Algorithm,
    available_algorithms,
    cosine_drop_fraction,
    get_algorithm,
    get_algorithm_class,
    register,
    select_positions,
)
from topo.training.algorithms import static as _static  # noqa: F401  (registers "static")
from topo.training.algorithms import rigl as _rigl  # noqa: F401
from topo.training.algorithms import set as _set  # noqa: F401
from topo.training.algorithms import ggr as _ggr  # noqa: F401
from topo.training.algorithms import prune as _prune  # noqa: F401
from topo.training.algorithms.ggr import GGR, ggr_update
from topo.training.algorithms.prune import Prune, magnitude_prune
from topo.training.algorithms.rigl import RigL, magnitude_drop, rigl_update
from topo.training.algorithms.set import SET, set_update
from topo.training.algorithms.static import Static

__all__ = [
    "Algorithm",
    "register",
    "get_algorithm",
    "get_algorithm_class",
    "available_algorithms",
    "select_positions",
    "cosine_drop_fraction",
    "Static",
    "RigL",
    "SET",
    "GGR",
    "Prune",
    "rigl_update",
    "magnitude_drop",
    "set_update",
    "ggr_update",
    "magnitude_prune",
]

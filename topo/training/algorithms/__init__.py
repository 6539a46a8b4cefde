"""Sparse-training algorithms: one base class, a registry keyed by the name the CLI accepts.

>>> from topo.training.algorithms import get_algorithm
>>> algo = get_algorithm("rigl", update_every=100, drop_fraction=0.3)

Registered: ``static``, ``rigl``, ``set``, ``ggr``, ``prune``, ``srigl``, ``granet``, ``chts`` (see each module).
A new method is one module here plus its import below.
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
# importing each algorithm registers it; this order is the order the registry lists them
from topo.training.algorithms.static import Static  # isort: skip
from topo.training.algorithms.rigl import RigL, magnitude_drop, rigl_update  # isort: skip
from topo.training.algorithms.set import SET, set_update  # isort: skip
from topo.training.algorithms.ggr import GGR, ggr_update  # isort: skip
from topo.training.algorithms.prune import Prune, magnitude_prune  # isort: skip
from topo.training.algorithms.srigl import SRigL, srigl_layer_update  # isort: skip
from topo.training.algorithms.granet import GraNet, cubic_sparsity  # isort: skip
from topo.training.algorithms.chts import CHTs, ch2_l3n_scores  # isort: skip

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
    "SRigL",
    "GraNet",
    "CHTs",
    "rigl_update",
    "magnitude_drop",
    "set_update",
    "ggr_update",
    "magnitude_prune",
    "srigl_layer_update",
    "cubic_sparsity",
    "ch2_l3n_scores",
]

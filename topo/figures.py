"""The figure-composing functions under their earlier module name; they live in
:mod:`topo.plotting.compose` (and the labels in :mod:`topo.plotting.labels`).

Kept so that code written as ``from topo.figures import fanin_figure`` keeps working;
new code imports from :mod:`topo.plotting`.
"""

from topo.plotting.compose import (
    FIGURE_NAMES,
    curves_figure,
    default_figure_path,
    degree_figure,
    density_figure,
    distance_figure,
    distance_matrix,
    drift_figure,
    exploration_figure,
    fanin_figure,
    gradients_figure,
    hubs_figure,
    parse_epochs,
    run_checkpoints,
    select_evenly,
    select_layers,
)
from topo.plotting.labels import checkpoint_epochs, checkpoint_label

__all__ = [
    "FIGURE_NAMES",
    "default_figure_path",
    "parse_epochs",
    "select_evenly",
    "select_layers",
    "run_checkpoints",
    "checkpoint_label",
    "checkpoint_epochs",
    "fanin_figure",
    "drift_figure",
    "degree_figure",
    "distance_matrix",
    "distance_figure",
    "hubs_figure",
    "gradients_figure",
    "density_figure",
    "exploration_figure",
    "curves_figure",
]

"""The drawing functions under their earlier module name; they live in :mod:`topo.plotting`.

Kept so that code written as ``from topo.plot import fanin_ridge, save_figure`` keeps
working; new code imports from :mod:`topo.plotting` (or its ``draw_*`` modules).
"""

from topo.plotting.draw_connectivity import density_curves, exploration_curves
from topo.plotting.draw_degree import degree_distribution
from topo.plotting.draw_distance import nnstd_clustermap, nnstd_heatmap
from topo.plotting.draw_drift import drift_curves, drift_overview, fanin_cv_curves, turnover_curves
from topo.plotting.draw_fanin import fanin_ridge
from topo.plotting.draw_hubs import gradient_vs_fanin, hub_persistence_curves
from topo.plotting.draw_training import training_curves
from topo.plotting.output import DEFAULT_DPI, FIGURE_FORMATS, figure_bytes, figure_format, save_figure

__all__ = [
    "FIGURE_FORMATS",
    "DEFAULT_DPI",
    "figure_format",
    "figure_bytes",
    "save_figure",
    "fanin_ridge",
    "fanin_cv_curves",
    "drift_curves",
    "turnover_curves",
    "drift_overview",
    "degree_distribution",
    "nnstd_heatmap",
    "nnstd_clustermap",
    "hub_persistence_curves",
    "gradient_vs_fanin",
    "density_curves",
    "exploration_curves",
    "training_curves",
]

"""Figures of sparse networks, in two layers that never mix.

Drawing, ``draw_*`` modules: plain data in (arrays, mappings, the small result objects
that :mod:`topo.analysis` returns), one :class:`matplotlib.figure.Figure` out, and a
file when ``path`` is given. They know nothing about runs or checkpoints.

- :mod:`~topo.plotting.draw_fanin`: fan-in histograms over checkpoints (ridge plot)
- :mod:`~topo.plotting.draw_drift`: fan-in CV, drift toward equilibrium, mask turnover
- :mod:`~topo.plotting.draw_degree`: one checkpoint's fan-in distribution with fits
- :mod:`~topo.plotting.draw_distance`: NNSTD heatmap and clustermap
- :mod:`~topo.plotting.draw_hubs`: hub persistence, gradient against fan-in
- :mod:`~topo.plotting.draw_connectivity`: densities, exploration, active width
- :mod:`~topo.plotting.draw_training`: loss and accuracy

Composing, :mod:`~topo.plotting.compose`: turns run folders and checkpoints into that
data with the analysis functions and names what is drawn
(:mod:`~topo.plotting.labels`); ``topo plot`` and :mod:`topo.report` call it.
:mod:`~topo.plotting.output` writes figures (PNG, SVG, PDF, atomically).

matplotlib and seaborn are imported only when a figure is drawn.
"""

from topo.plotting.compose import (
    DENSE_CHOICES,
    FIGURE_NAMES,
    curves_figure,
    default_figure_path,
    degree_figure,
    dense_note,
    density_figure,
    distance_figure,
    distance_labels,
    distance_matrix,
    drift_figure,
    exploration_figure,
    fanin_figure,
    gradients_figure,
    hubs_figure,
    is_dense,
    parse_epochs,
    run_checkpoints,
    select_evenly,
    select_layers,
)
from topo.plotting.draw_connectivity import density_curves, exploration_curves
from topo.plotting.draw_degree import degree_distribution
from topo.plotting.draw_distance import nnstd_clustermap, nnstd_heatmap
from topo.plotting.draw_drift import drift_curves, drift_overview, fanin_cv_curves, turnover_curves
from topo.plotting.draw_fanin import fanin_ridge
from topo.plotting.draw_hubs import gradient_vs_fanin, hub_persistence_curves
from topo.plotting.draw_training import training_curves
from topo.plotting.labels import (
    Labels,
    checkpoint_epochs,
    checkpoint_label,
    checkpoint_point,
    run_epoch_labels,
    shortest_run_names,
)
from topo.plotting.output import DEFAULT_DPI, FIGURE_FORMATS, figure_bytes, figure_format, save_figure

__all__ = [
    # writing figures
    "FIGURE_FORMATS",
    "DEFAULT_DPI",
    "figure_format",
    "figure_bytes",
    "save_figure",
    # drawing from data
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
    # labels
    "Labels",
    "shortest_run_names",
    "run_epoch_labels",
    "checkpoint_point",
    "checkpoint_label",
    "checkpoint_epochs",
    # composing figures from runs and checkpoints
    "FIGURE_NAMES",
    "DENSE_CHOICES",
    "is_dense",
    "dense_note",
    "default_figure_path",
    "parse_epochs",
    "select_evenly",
    "select_layers",
    "run_checkpoints",
    "fanin_figure",
    "drift_figure",
    "degree_figure",
    "distance_labels",
    "distance_matrix",
    "distance_figure",
    "hubs_figure",
    "gradients_figure",
    "density_figure",
    "exploration_figure",
    "curves_figure",
]

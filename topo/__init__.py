"""topo: a graph-theoretic toolkit for the connectivity of sparse neural networks.

Read a network (topo's own checkpoint or another library's), view its weight masks
as a layered directed graph, and measure it::

    import topo
    net = topo.load("runs/demo/checkpoints/epoch_0030.safetensors")
    topo.fan_in_cv(net)
    topo.nnstd(net, topo.load("other.pt")).distance
    live = topo.from_module(model)            # a torch.nn.Module, while it trains
    sparse = topo.sparsify(model, optimizer, method="rigl", density=0.1, epochs=10, steps_per_epoch=len(loader))

Examples
--------
>>> import numpy as np
>>> import topo
>>> net = topo.Topology.from_masks([np.eye(3), np.ones((2, 3))])
>>> topo.fan_in(net, "layer1").tolist()
[3, 3]
>>> "nnstd" in dir(topo)
True
"""

from topo._version import __version__
from topo.analysis.degree import (
    LayerDegree,
    NetworkDegree,
    degree_summary,
    fan_in,
    fan_in_cv,
    fan_out,
    layer_degrees,
)
from topo.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    read_metrics,
    read_run_config,
    save_checkpoint,
)
from topo.errors import TopoError
from topo.integrations.live import load
from topo.graph import to_igraph, to_networkx, write_edgelist, write_gexf, write_graphml
from topo.topology import Layer, Topology

# analysis functions beyond degree basics, imported on first use (see topo.analysis)
_ANALYSIS = (
    "fit_fan_in",
    "hub_indices",
    "hub_overlap",
    "hub_persistence",
    "nnstd",
    "nnstd_matrix",
    "mask_turnover",
    "gradient_concentration",
    "hierarchy_strength",
)


# topo in the user's own PyTorch work, imported on first use (see topo.integrations)
_INTEGRATIONS = (
    "from_module",
    "from_state_dict",
    "sparsify",
    "SparseController",
    "TopologyMonitor",
)


def __getattr__(name: str):
    # taken from the module that defines the name, not the package: importing a
    # submodule of the same name (topo.integrations.sparsify) rebinds the package's
    # attribute to that module
    import importlib

    if name in _ANALYSIS:
        import topo.analysis

        return getattr(importlib.import_module(topo.analysis._LAZY[name]), name)
    if name in _INTEGRATIONS:
        import topo.integrations

        return getattr(importlib.import_module(topo.integrations._LAZY[name]), name)
    raise AttributeError(f"module 'topo' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (the lazily imported ones included) and the module's own attributes."""
    return sorted(set(__all__) | set(globals()))

__all__ = [
    "__version__",
    "Layer",
    "Topology",
    "TopoError",
    "load",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "read_run_config",
    "read_metrics",
    "to_networkx",
    "to_igraph",
    "write_graphml",
    "write_gexf",
    "write_edgelist",
    "fan_in",
    "fan_out",
    "fan_in_cv",
    "layer_degrees",
    "degree_summary",
    "LayerDegree",
    "NetworkDegree",
    *_ANALYSIS,
    *_INTEGRATIONS,
]

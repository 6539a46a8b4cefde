"""Measures over Topology objects: plain functions, numpy and scipy inside.

One topic per module: ``degree`` (fan-in, fan-out, CV), ``fits`` (fan-in distribution
fits), ``hubs`` (hub identity, overlap, persistence), ``distance`` (NNSTD, mask
turnover), ``drift`` (toward the equilibrium fan-in; its function ``drift`` is not re-exported, the module has that name), ``gradients`` (gradient
hierarchy), ``patterns`` (dense, unstructured, N:M and block sparsity; requested
against achieved sparsity), ``exploration`` (connections ever active, neuron activity
over a run). The most used functions are re-exported here; they are imported on first
use, so that ``import topo`` stays quick.
"""

from __future__ import annotations

import importlib

from topo.analysis.degree import (
    LayerDegree,
    NetworkDegree,
    coefficient_of_variation,
    degree_summary,
    fan_in,
    fan_in_cv,
    fan_out,
    is_dense,
    layer_degree,
    layer_degrees,
)

#: re-exported name -> module that defines it (imported lazily)
_LAZY = {
    "fit_fan_in": "topo.analysis.fits",
    "FanInFits": "topo.analysis.fits",
    "hub_indices": "topo.analysis.hubs",
    "hub_overlap": "topo.analysis.hubs",
    "hub_persistence": "topo.analysis.hubs",
    "nnstd": "topo.analysis.distance",
    "nnstd_matrix": "topo.analysis.distance",
    "masks_only": "topo.analysis.distance",
    "NNSTDResult": "topo.analysis.distance",
    "mask_turnover": "topo.analysis.distance",
    "DriftResult": "topo.analysis.drift",
    "gradient_concentration": "topo.analysis.gradients",
    "hierarchy_strength": "topo.analysis.gradients",
    "cv_concentration_correlation": "topo.analysis.gradients",
    "LayerPattern": "topo.analysis.patterns",
    "layer_pattern": "topo.analysis.patterns",
    "layer_patterns": "topo.analysis.patterns",
    "pattern_summary": "topo.analysis.patterns",
    "sparsity_report": "topo.analysis.patterns",
    "exploration": "topo.analysis.exploration",
    "ExplorationResult": "topo.analysis.exploration",
}

__all__ = [
    "LayerDegree",
    "NetworkDegree",
    "coefficient_of_variation",
    "degree_summary",
    "fan_in",
    "fan_in_cv",
    "fan_out",
    "is_dense",
    "layer_degree",
    "layer_degrees",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

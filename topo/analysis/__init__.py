"""Measures over Topology objects: plain functions, numpy and scipy inside."""

from topo.analysis.degree import (
    LayerDegree,
    NetworkDegree,
    coefficient_of_variation,
    degree_summary,
    fan_in,
    fan_in_cv,
    fan_out,
    layer_degree,
    layer_degrees,
)

__all__ = [
    "LayerDegree",
    "NetworkDegree",
    "coefficient_of_variation",
    "degree_summary",
    "fan_in",
    "fan_in_cv",
    "fan_out",
    "layer_degree",
    "layer_degrees",
]

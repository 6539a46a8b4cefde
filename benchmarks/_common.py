"""Helpers shared by the benchmark scripts: timing and synthetic networks."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np


def median_time(func: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time in seconds of ``func()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sparse_mlp(widths, density, seed=0, dense_output=True):
    """A Topology with random masks and weights: ``widths`` = [inputs, hidden..., outputs]."""
    from topo import Topology

    rng = np.random.default_rng(seed)
    weights = []
    shapes = list(zip(widths[1:], widths[:-1]))
    for index, (out, inp) in enumerate(shapes):
        w = rng.normal(size=(out, inp)).astype(np.float32)
        if not (dense_output and index == len(shapes) - 1):
            w[rng.random((out, inp)) >= density] = 0.0
        weights.append(w)
    return Topology.from_weights(weights, names=[f"fc{i + 1}" for i in range(len(weights))])


def verdict(value: float, goal: float) -> str:
    return "meets the goal" if value <= goal else "MISSES the goal"

"""Shared fixtures: the real data sets in ../shared/data, small synthetic networks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$TOPO_DATA_DIR`` or ``../shared/data`` beside the repository, if it exists."""
    candidates = []
    if os.environ.get("TOPO_DATA_DIR"):
        candidates.append(Path(os.environ["TOPO_DATA_DIR"]))
    candidates.append(REPO.parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture
def shared_data() -> Path:
    """The shared real data folder; the test skips with a reason where it is absent."""
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("real data folder not found (set TOPO_DATA_DIR or place it at ../shared/data)")
    return folder


def random_sparse_weights(shapes, density, seed=0):
    """Weight matrices [out, in] with about ``density`` of their entries nonzero."""
    rng = np.random.default_rng(seed)
    weights = []
    for out, inp in shapes:
        values = rng.normal(size=(out, inp)).astype(np.float32)
        values[rng.random((out, inp)) >= density] = 0.0
        weights.append(values)
    return weights


@pytest.fixture
def small_topology():
    """A 20-30-10 network at about 25% density, with weights and biases."""
    import topo

    weights = random_sparse_weights([(30, 20), (10, 30)], 0.25, seed=1)
    biases = [np.linspace(-1, 1, 30, dtype=np.float32), np.zeros(10, dtype=np.float32)]
    return topo.Topology.from_weights(weights, names=["fc1", "fc2"], biases=biases)

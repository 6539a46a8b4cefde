"""A tiny private reader of the SET networks in ../shared/data/set-mlp (tests only).

Each ``weight_lK.npz`` is a scipy sparse matrix of shape ``(n_in + 1, n_out)`` whose
last row is the bias; the mask is the transpose of the rest. The real reader lives in
topo.formats; this one exists so that distance tests do not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import scipy.sparse as sp

import topo


def load_set_network(folder: Path, network: int, epoch: int) -> topo.Topology:
    """The 784-784-784-784-10 network ``e5_s0_w{network}`` at ``epoch``."""
    base = Path(folder) / f"e5_s0_w{network}" / f"epoch_{epoch:03d}"
    layers = []
    for k in range(4):
        matrix = sp.load_npz(base / f"weight_l{k}.npz").tocsr()
        layers.append(topo.Layer.from_mask(f"l{k}", matrix[:-1].T.tocsr(), source=str(base)))
    return topo.Topology(layers, info={"path": str(base)})

"""Small synthetic run folders for the figure and report tests."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

import topo
from topo.checkpoint import append_metrics, checkpoint_name, save_checkpoint, write_run_config

SHAPES = ((24, 16), (12, 24), (4, 12))
NAMES = ("fc1", "fc2", "fc3")


def make_run(
    root: Path, *, epochs: int = 4, seed: int = 0, grads: bool = True, metrics: bool = True, dense: tuple[str, ...] = ()
) -> Path:
    """A run folder whose fan-in spreads out over epochs, as under RigL.

    Checkpoints epoch_0000..epoch_{epochs} with ``stats["grad_mean"]`` (when ``grads``),
    run.json with a nested configuration, and one metrics line per epoch. The layers
    named in ``dense`` have every connection at every epoch (as ERK makes a small
    output layer).
    """
    rng = np.random.default_rng(seed)
    write_run_config(
        root,
        {"config": {"method": "rigl", "dataset": "synthetic", "sparsity": 0.7, "hidden": [24, 12]},
         "note": "<b>escaped</b> & kept"},
    )
    for epoch in range(epochs + 1):
        layers = []
        for (n_out, n_in), name in zip(SHAPES, NAMES):
            weights = np.clip(rng.lognormal(0.0, 0.15 + 0.2 * epoch, size=n_out), 0.05, None)
            probability = np.clip(0.3 * weights / weights.mean(), 0.02, 1.0)
            mask = rng.random((n_out, n_in)) < probability[:, None]
            mask[np.arange(n_out), rng.integers(0, n_in, n_out)] = True  # no dead neurons
            if name in dense:
                mask[:] = True
            stats = {}
            if grads:
                stats["grad_mean"] = (mask.sum(axis=1) + 1.0) * rng.lognormal(0.0, 0.3, n_out) * 1e-3
            layers.append(topo.Layer.from_mask(name, mask, stats=stats))
        save_checkpoint(topo.Topology(layers), root / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
        if metrics and epoch > 0:
            append_metrics(root, {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.5 + 0.05 * epoch,
                                  "test_acc": 0.48 + 0.05 * epoch})
    return root


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; asserts the PNG signature."""
    data = Path(path).read_bytes()[:32]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def expected_size(fig, dpi: int) -> tuple[int, int]:
    width, height = fig.get_size_inches()
    return round(width * dpi), round(height * dpi)

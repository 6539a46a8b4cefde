"""``--init masks:CHECKPOINT``: training starts from the masks of a saved network."""

from __future__ import annotations

import numpy as np
import pytest

from topo.analysis.degree import coefficient_of_variation
from topo.checkpoint import load_checkpoint, read_run_config, save_checkpoint
from topo.errors import TopoError
from topo.topology import Topology
from topo.training.config import TrainConfig
from topo.training.trainer import checkpoint_initial_masks, train

TINY = dict(dataset="digits", hidden=(32,), batch_size=64, threads=1, device="cpu", sparsity=0.8)


def _masks(path):
    return [layer.mask.toarray() for layer in load_checkpoint(path, weights=False)]


def _saved_masks(tmp_path, shapes, seed=3):
    """Random masks of the network's shapes (not what seed 0 would draw), saved as a checkpoint."""
    rng = np.random.default_rng(seed)
    masks = [rng.random(shape) < 0.25 for shape in shapes]
    for mask in masks:
        mask[:, 0] = True  # every neuron keeps an input
    path = save_checkpoint(Topology.from_masks(masks, names=["fc1", "fc2"]), tmp_path / "start.safetensors")
    return masks, path


def test_config_accepts_masks_init():
    TrainConfig(init="masks:some/checkpoint.safetensors").validate()
    with pytest.raises(TopoError, match="masks:CHECKPOINT"):
        TrainConfig(init="weights:x").validate()


@pytest.mark.parametrize("method", ["static", "set"])
def test_training_starts_from_the_checkpoint_masks(tmp_path, method):
    masks, path = _saved_masks(tmp_path, [(32, 64), (10, 32)])
    run = tmp_path / method
    train(TrainConfig(**TINY, method=method, epochs=2, drop_fraction=0.3, init=f"masks:{path}"), run_dir=run)
    start = _masks(run / "checkpoints" / "epoch_0000.safetensors")
    assert all(np.array_equal(a, b) for a, b in zip(start, masks))
    end = _masks(run / "checkpoints" / "epoch_0002.safetensors")
    # the budget is the saved masks', not what --sparsity would give
    assert [int(m.sum()) for m in end] == [int(m.sum()) for m in masks]
    if method == "static":
        assert all(np.array_equal(a, b) for a, b in zip(end, masks))
    else:
        assert not np.array_equal(end[0], masks[0])
    meta = read_run_config(run)
    assert meta["initial"]["budgets"] == [int(m.sum()) for m in masks]
    assert meta["initial"]["achieved_cv"][0] == pytest.approx(coefficient_of_variation(masks[0].sum(axis=1)))


def test_a_run_folder_gives_its_last_checkpoint(tmp_path):
    first = tmp_path / "first"
    train(TrainConfig(**TINY, method="static", epochs=0, seed=5), run_dir=first)
    init = checkpoint_initial_masks(f"masks:{first}", [(32, 64), (10, 32)], ["fc1", "fc2"])
    assert all(np.array_equal(a, b) for a, b in zip(init.masks, _masks(first / "checkpoints" / "epoch_0000.safetensors")))


def test_bad_masks_init_is_refused(tmp_path):
    _, path = _saved_masks(tmp_path, [(32, 64), (10, 32)])
    with pytest.raises(TopoError, match=r"fc1 is 32x64.*fc1 is 16x64"):
        checkpoint_initial_masks(f"masks:{path}", [(16, 64), (10, 16)], ["fc1", "fc2"])
    with pytest.raises(TopoError, match="2 layers, the network 3"):
        checkpoint_initial_masks(f"masks:{path}", [(32, 64), (32, 32), (10, 32)], ["fc1", "fc2", "fc3"])
    with pytest.raises(TopoError, match="expected masks:CHECKPOINT"):
        checkpoint_initial_masks("masks:", [(32, 64), (10, 32)], ["fc1", "fc2"])
    with pytest.raises(TopoError, match="no such file"):
        checkpoint_initial_masks(f"masks:{tmp_path / 'missing.safetensors'}", [(32, 64), (10, 32)], ["fc1", "fc2"])
    with pytest.raises(TopoError, match="fc1 is 32x64"):
        train(TrainConfig(**{**TINY, "hidden": (16,)}, method="static", epochs=0, init=f"masks:{path}"),
              run_dir=tmp_path / "run")

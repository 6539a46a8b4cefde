"""The trainer's files written on a background thread: copies taken at the step, errors raised, all written."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import topo.checkpoint as checkpoint_module
import topo.training.trainer as trainer
from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics
from topo.training.config import TrainConfig
from topo.training.trainer import TIMING_FIELDS, STATE_FILE, iter_train, train

TINY = dict(dataset="digits", hidden=(32,), epochs=3, batch_size=64, threads=1, device="cpu",
            method="rigl", update_every=7, checkpoint_every=8)


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def _held_writes(monkeypatch, released: dict) -> None:
    """Checkpoint writes held back: inside an epoch for a while, at its end until the epoch's
    record has reached the caller, so that training runs on while they are in flight."""
    original = checkpoint_module.save_checkpoint

    def held(topology, path, **kwargs):
        if "_step_" in path.name:
            time.sleep(0.2)
        else:
            event = released.setdefault(path.name, threading.Event())
            assert event.wait(30), f"{path.name} was never released"
        return original(topology, path, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", held)


def _same_runs(a, b) -> None:
    assert _untimed(read_metrics(a)) == _untimed(read_metrics(b))
    names = [p.name for p in list_checkpoints(a)]
    assert names == [p.name for p in list_checkpoints(b)] and any("_step_" in n for n in names)
    for name in names:
        for la, lb in zip(load_checkpoint(a / "checkpoints" / name), load_checkpoint(b / "checkpoints" / name)):
            assert (la.mask != lb.mask).nnz == 0
            np.testing.assert_array_equal(la.weight, lb.weight)
            np.testing.assert_array_equal(la.bias, lb.bias)
            np.testing.assert_array_equal(la.stats["grad_mean"], lb.stats["grad_mean"])
    sa = torch.load(a / STATE_FILE, weights_only=True)
    sb = torch.load(b / STATE_FILE, weights_only=True)
    assert sa["epoch"] == sb["epoch"] == 3 and sa["step"] == sb["step"]
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key])
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])


def test_files_written_while_training_runs_on_hold_the_network_of_their_step(tmp_path, monkeypatch):
    config = TrainConfig(**TINY)
    # iter_train writes each epoch's files before it yields: the reference
    reference = tmp_path / "reference"
    for _ in iter_train(config, run_dir=reference):
        pass
    # train() hands the writes to the writer's thread; held back, they are still in
    # flight while the next steps change the weights, so only copies keep them right
    released = {"epoch_0000.safetensors": threading.Event()}  # written before training starts
    released["epoch_0000.safetensors"].set()
    _held_writes(monkeypatch, released)
    deferred = tmp_path / "deferred"
    in_flight = []

    def on_epoch(record):
        name = f"epoch_{record['epoch']:04d}.safetensors"
        if record["epoch"] >= 1:
            # the caller has the record before the epoch's checkpoint is on disk
            in_flight.append(not (deferred / "checkpoints" / name).exists())
            released.setdefault(name, threading.Event()).set()

    result = train(config, run_dir=deferred, on_epoch=on_epoch)
    assert result.epochs_done == 3 and in_flight == [True, True, True]
    _same_runs(reference, deferred)


def test_an_error_in_a_background_write_is_raised_in_the_training_thread(tmp_path, monkeypatch):
    calls = []
    original = checkpoint_module.save_checkpoint

    def failing(topology, path, **kwargs):
        calls.append(path.name)
        if path.name == "epoch_0002.safetensors":
            raise OSError(28, "No space left on device", str(path))
        return original(topology, path, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", failing)
    run = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        train(TrainConfig(**TINY), run_dir=run)
    # epoch 1 was written completely; epoch 2's metrics and state never were
    assert [m["epoch"] for m in read_metrics(run)] == [0, 1]
    assert torch.load(run / STATE_FILE, weights_only=True)["epoch"] == 1
    assert "epoch_0002.safetensors" in calls

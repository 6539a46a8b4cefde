"""The trainer's files written on a background thread: copies taken at the step, errors raised, all written."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import topo.checkpoint as checkpoint_module
import topo.training.run_folder as run_folder
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

    monkeypatch.setattr(run_folder, "save_checkpoint", held)


def _capture_states(monkeypatch) -> list:
    """Every training state written, as read back from its bytes (the file keeps only the last)."""
    import io

    states = []
    original = run_folder.atomic_write_bytes

    def capture(path, data, *args, **kwargs):
        if path.name == STATE_FILE.name:
            states.append(torch.load(io.BytesIO(data), weights_only=True))
        return original(path, data, *args, **kwargs)

    monkeypatch.setattr(run_folder, "atomic_write_bytes", capture)
    return states


def _same_states(sa, sb) -> None:
    assert sa["epoch"] == sb["epoch"] and sa["step"] == sb["step"]
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), (sa["epoch"], key)
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"]), sa["epoch"]


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
    assert sa["epoch"] == 3
    _same_states(sa, sb)


def test_files_written_while_training_runs_on_hold_the_network_of_their_step(tmp_path, monkeypatch):
    config = TrainConfig(**TINY)
    # iter_train writes each epoch's files before it yields: the reference
    reference = tmp_path / "reference"
    with monkeypatch.context() as patch:
        reference_states = _capture_states(patch)
        for _ in iter_train(config, run_dir=reference):
            pass
    states = _capture_states(monkeypatch)
    # train() hands the writes to the writer's thread; held back, they are still in
    # flight while the next steps change the weights, so only copies keep them right
    released = {"epoch_0000.safetensors": threading.Event()}  # written before training starts
    released["epoch_0000.safetensors"].set()
    _held_writes(monkeypatch, released)
    deferred = tmp_path / "deferred"
    in_flight = []

    def release(epoch):
        released.setdefault(f"epoch_{epoch:04d}.safetensors", threading.Event()).set()

    def on_epoch(record):
        epoch = record["epoch"]
        if epoch >= 1:
            # the caller has the record before the epoch's checkpoint is on disk
            in_flight.append(not (deferred / "checkpoints" / f"epoch_{epoch:04d}.safetensors").exists())
        if epoch == config.epochs:
            release(epoch)

    def on_step(epoch, step):
        if epoch >= 2 and step == (epoch - 1) * 21 + 2:
            # two steps of the next epoch have changed the weights and momentum in place:
            # only now is the last epoch's checkpoint, then its state, written
            release(epoch - 1)

    result = train(config, run_dir=deferred, on_epoch=on_epoch, on_step=on_step)
    assert result.epochs_done == 3 and in_flight == [True, True, True]
    _same_runs(reference, deferred)
    assert [s["epoch"] for s in states] == [s["epoch"] for s in reference_states] == [0, 1, 2, 3]
    for mine, theirs in zip(states, reference_states):
        _same_states(mine, theirs)


def test_an_error_in_a_background_write_is_raised_in_the_training_thread(tmp_path, monkeypatch):
    calls = []
    original = checkpoint_module.save_checkpoint

    def failing(topology, path, **kwargs):
        calls.append(path.name)
        if path.name == "epoch_0002.safetensors":
            raise OSError(28, "No space left on device", str(path))
        return original(topology, path, **kwargs)

    monkeypatch.setattr(run_folder, "save_checkpoint", failing)
    run = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        train(TrainConfig(**TINY), run_dir=run)
    # epoch 1 was written completely; epoch 2's metrics and state never were
    assert [m["epoch"] for m in read_metrics(run)] == [0, 1]
    assert torch.load(run / STATE_FILE, weights_only=True)["epoch"] == 1
    assert "epoch_0002.safetensors" in calls

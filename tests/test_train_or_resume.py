"""train_or_resume: train, reuse, resume, restart a crashed run, refuse what is not this run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics
from topo.errors import TopoError
from topo.training.config import IDENTITY_EXCLUDED, TrainConfig, config_identity
from topo.training.trainer import STATE_FILE, TIMING_FIELDS, train_or_resume

TINY = dict(dataset="digits", hidden=(16,), epochs=2, batch_size=128, threads=1, device="cpu", method="rigl",
            update_every=5)


def _config(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def _masks(run):
    return [layer.mask.toarray() for layer in load_checkpoint(list_checkpoints(run)[-1], weights=False)]


def test_identity_ignores_where_and_how_a_run_trains():
    a = _config()
    b = _config(out="elsewhere", data_dir="/data", threads=2, device="auto")
    assert config_identity(a) == config_identity(b)
    assert not set(IDENTITY_EXCLUDED) & set(config_identity(a))
    assert config_identity(a) != config_identity(_config(seed=1))


def test_new_then_reused_then_other_configuration(tmp_path):
    run = tmp_path / "run"
    result, status = train_or_resume(_config(), run)
    assert status == "trained" and result.epochs_done == 2
    records = read_metrics(run)

    # another machine's settings of the same run: read back, nothing trained
    again, status = train_or_resume(_config(threads=1, device="auto", data_dir=str(tmp_path)), run)
    assert status == "reused"
    assert again.epochs_done == 2 and again.metrics == records
    assert [p.name for p in again.checkpoints] == [p.name for p in list_checkpoints(run)]
    assert read_metrics(run) == records

    with pytest.raises(TopoError, match="another configuration"):
        train_or_resume(_config(seed=3), run)
    assert read_metrics(run) == records  # left alone


def test_replace_other_deletes_a_run_of_other_settings(tmp_path):
    run = tmp_path / "run"
    train_or_resume(_config(epochs=1, seed=3), run)
    result, status = train_or_resume(_config(epochs=1), run, replace_other=True)
    assert status == "trained" and json.loads((run / "run.json").read_text())["config"]["seed"] == 0


def test_interrupted_run_is_resumed_and_ends_as_an_uninterrupted_one(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train_or_resume(_config(), whole)

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_or_resume(_config(), cut, on_epoch=interrupt)
    assert [r["epoch"] for r in read_metrics(cut)] == [0, 1]
    seen = []
    result, status = train_or_resume(_config(), cut, on_epoch=lambda r: seen.append(r["epoch"]))
    assert status == "resumed" and result.resumed_from == 1 and result.epochs_done == 2 and seen == [2]
    assert _untimed(read_metrics(cut)) == _untimed(read_metrics(whole))
    for a, b in zip(_masks(whole), _masks(cut)):
        np.testing.assert_array_equal(a, b)


def test_run_without_state_is_deleted_and_trained(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # crashed before its first state: run.json alone, plus debris
    (run / "run.json").write_text(json.dumps({"kind": "topo-train-run", "config": _config(epochs=1).to_dict()}))
    (run / "debris.txt").write_text("x")
    result, status = train_or_resume(_config(epochs=1), run)
    assert status == "trained" and result.epochs_done == 1
    assert not (run / "debris.txt").exists() and (run / STATE_FILE).is_file()


def test_empty_folder_trains_and_other_paths_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train_or_resume(_config(epochs=1), empty)[1] == "trained"

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(TopoError, match="not a topo run folder"):
        train_or_resume(_config(epochs=1), folder)
    assert (folder / "keep.txt").read_text() == "mine"

    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(TopoError, match="found a file"):
        train_or_resume(_config(epochs=1), file)

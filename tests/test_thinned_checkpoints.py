"""Thinned checkpoints: masks-only intermediate checkpoints, the resume state every few epochs,
and every reader of a run folder coping with checkpoints that hold no weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import topo
from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics, read_run_config
from topo.training.config import TrainConfig
from topo.training.run_folder import STATE_FILE
from topo.training.trainer import TIMING_FIELDS, resume, train
from topo_cli.main import main

TINY = dict(dataset="digits", hidden=(32, 16), epochs=4, batch_size=64, threads=1, device="cpu",
            method="rigl", sparsity=0.8, update_every=7, checkpoint_every=8)


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run trained with full and with masks-only intermediate checkpoints."""
    root = tmp_path_factory.mktemp("thinned")
    train(TrainConfig(**TINY), run_dir=root / "full")
    train(TrainConfig(**TINY, intermediate_checkpoints="masks"), run_dir=root / "masks")
    return root / "full", root / "masks"


def test_masks_only_checkpoints_hold_the_same_masks_and_no_weights(runs):
    full, thin = runs
    names = [p.name for p in list_checkpoints(full)]
    assert names == [p.name for p in list_checkpoints(thin)]
    assert any("_step_" in name for name in names)  # --checkpoint-every's checkpoints are thinned too
    for name in names:
        a = load_checkpoint(full / "checkpoints" / name)
        b = load_checkpoint(thin / "checkpoints" / name)
        final = name == "epoch_0004.safetensors"
        assert all(layer.weight is not None for layer in a)
        assert all((layer.weight is not None) == final for layer in b), name
        assert all((layer.bias is not None) == final for layer in b), name
        for la, lb in zip(a, b):
            assert (la.mask != lb.mask).nnz == 0  # training is the same: only what is written differs
            np.testing.assert_array_equal(la.stats["grad_mean"], lb.stats["grad_mean"])
            if final:
                np.testing.assert_array_equal(la.weight, lb.weight)
        assert b.info.get("masks_only", False) == (not final)
        if not final:
            assert (thin / "checkpoints" / name).stat().st_size < (full / "checkpoints" / name).stat().st_size / 2
    assert _untimed(read_metrics(full)) == _untimed(read_metrics(thin))
    config = read_run_config(thin)["config"]
    assert config["intermediate_checkpoints"] == "masks" and config["state_every"] == 1


def test_state_every_writes_the_resume_state_less_often_and_resume_is_bit_for_bit(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 5}, intermediate_checkpoints="masks", state_every=2)
    whole = tmp_path / "whole"
    train(config, run_dir=whole)

    cut = tmp_path / "cut"
    states = []

    def interrupt(epoch, step):
        state = cut / STATE_FILE
        states.append((epoch, load_state_epoch(state)))
        if epoch == 4 and step == 3 * 23 + 5:  # inside epoch 4: the last state written is epoch 2's
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=cut, on_step=interrupt)
    # the state is written after epochs 0, 2 (every 2nd) and the last, not after 1 or 3
    assert {epoch: state for epoch, state in states} == {1: 0, 2: 0, 3: 2, 4: 2}
    assert [m["epoch"] for m in read_metrics(cut)] == [0, 1, 2, 3]
    result = resume(cut)
    assert result.resumed_from == 2 and result.epochs_done == 5
    assert _untimed(read_metrics(cut)) == _untimed(read_metrics(whole))
    assert [p.name for p in list_checkpoints(cut)] == [p.name for p in list_checkpoints(whole)]
    for path in list_checkpoints(whole):
        a, b = load_checkpoint(path), load_checkpoint(cut / "checkpoints" / path.name)
        for la, lb in zip(a, b):
            assert (la.mask != lb.mask).nnz == 0
            np.testing.assert_array_equal(la.stats["grad_mean"], lb.stats["grad_mean"])
            if la.weight is not None or lb.weight is not None:
                np.testing.assert_array_equal(la.weight, lb.weight)
    assert load_state_epoch(cut / STATE_FILE) == load_state_epoch(whole / STATE_FILE) == 5


def load_state_epoch(path):
    import torch

    return int(torch.load(path, weights_only=True)["epoch"]) if path.exists() else None


def test_every_reader_copes_with_masks_only_checkpoints(runs):
    """The library's readers and the commands that read run folders, on a thinned run."""
    _, thin = runs
    first = list_checkpoints(thin)[1]
    for path in list_checkpoints(thin):
        net = topo.load(path)
        assert len(net) == 3 and net.nnz > 0
        scanned, measured = topo.formats.scan(path, lambda layer: layer.nnz)
        assert list(measured.values()) == [layer.nnz for layer in net]
    from topo import runs as run_files

    series = run_files.load_run(thin)
    assert len(series) == len(list_checkpoints(thin))
    assert [t.nnz for t in run_files.run_checkpoints(thin, include_steps=True)] == [t.nnz for t in series]
    data = run_files.load_run_data(thin)
    assert len(data.metrics) == 5
    assert run_files.load_masks(first).nnz == series[1].nnz
    runner = CliRunner()
    commands = [
        ["inspect", str(first)],
        ["inspect", str(thin)],
        ["audit", str(thin), "--format", "json"],
        ["drift", str(thin)],
        ["hubs", str(thin)],
        ["distance", str(first), str(list_checkpoints(thin)[-1])],
        ["compare", str(thin), str(runs[0])],
        ["export", str(first), "--to", "gexf", "-o", str(thin.parent / "first.gexf")],
        ["report", str(thin), "-o", str(thin.parent / "report.html")],
    ]
    for args in commands:
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    audited = json.loads(runner.invoke(main, ["audit", str(thin), "--format", "json"]).output)
    assert all(row["status"] == "ok" for row in audited) and len(audited) == len(list_checkpoints(thin))


def test_the_options_are_flags_with_help():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert "--intermediate-checkpoints" in result.output and "--state-every" in result.output
    bad = CliRunner().invoke(main, ["train", "--state-every", "0", "--dataset", "digits"])
    assert bad.exit_code != 0 and "state-every" in bad.output


def test_masks_only_checkpoints_of_the_sparse_backend(tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 2, "checkpoint_every": None}, backend="sparse",
                         intermediate_checkpoints="masks")
    train(config, run_dir=tmp_path / "run")
    paths = list_checkpoints(tmp_path / "run")
    assert [p.name for p in paths] == ["epoch_0000.safetensors", "epoch_0001.safetensors", "epoch_0002.safetensors"]
    for path in paths[:-1]:
        net = load_checkpoint(path)
        assert all(layer.weight is None and layer.bias is None for layer in net) and net.nnz > 0
    final = load_checkpoint(paths[-1])
    assert all(layer.bias is not None for layer in final)

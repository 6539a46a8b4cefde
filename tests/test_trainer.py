"""The trainer: run folders, grad_mean, all methods' count invariants, resume, divergence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics, read_run_config
from topo.errors import TopoError
from topo.training.config import TrainConfig, parse_hidden
from topo.training.trainer import TIMING_FIELDS, learning_rate, resume, train

TINY = dict(dataset="digits", hidden=(32,), epochs=2, batch_size=64, threads=1, device="cpu")


def _config(**changes):
    values = dict(TINY)
    values.update(changes)
    return TrainConfig(**values)


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


# -- configuration -----------------------------------------------------------------
def test_config_json_round_trip():
    config = TrainConfig(hidden="300,100", density_map={"fc3": 1.0}, method="ggr", ggr_normalise=True, seed=7)
    back = TrainConfig.from_json(config.to_json())
    assert back == config and back.hidden == (300, 100)
    assert json.loads(config.to_json())["hidden"] == [300, 100]


def test_config_validation_names_the_option():
    # the configuration field that TrainConfig, sweep files and run.json share, not a flag
    with pytest.raises(TopoError, match=r"^sparsity must be in \[0, 1\), got 1\.0$"):
        TrainConfig(sparsity=1.0).validate()
    with pytest.raises(TopoError, match="^method must be a known method .*got 'magic'$"):
        TrainConfig(method="magic").validate()
    with pytest.raises(TopoError, match="^batch_size must be a positive integer, got 0$"):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(TopoError, match="hidden"):
        parse_hidden("300,abc")
    with pytest.raises(TopoError, match="unknown training options"):
        TrainConfig.from_dict({"epochs": 1, "bogus": 2})


def test_learning_rate_schedules():
    config = TrainConfig(lr=1.0, schedule="cosine")
    assert learning_rate(config, 0, 100) == pytest.approx(1.0)
    assert learning_rate(config, 50, 100) == pytest.approx(0.5)
    step = TrainConfig(lr=1.0, schedule="step")
    assert [learning_rate(step, i, 100) for i in (0, 49, 50, 75)] == pytest.approx([1.0, 1.0, 0.1, 0.01])


# -- a run folder ------------------------------------------------------------------
def test_run_folder_contents(tmp_path):
    run = tmp_path / "run"
    seen = []
    result = train(_config(method="rigl", update_every=5), run_dir=run, on_epoch=seen.append)
    names = [p.name for p in list_checkpoints(run)]
    assert names == ["epoch_0000.safetensors", "epoch_0001.safetensors", "epoch_0002.safetensors"]
    assert [r["epoch"] for r in seen] == [0, 1, 2] and result.epochs_done == 2
    metrics = read_metrics(run)
    assert [m["epoch"] for m in metrics] == [0, 1, 2]
    for key in ("train_loss", "val_acc", "test_acc", "epoch_time", "densities", "nnz"):
        assert key in metrics[1]
    assert metrics[1]["mask_updates"] > 0
    meta = read_run_config(run)
    assert meta["config"]["method"] == "rigl"
    assert meta["dataset"]["n_train"] > 0 and meta["dataset"]["name"] == "digits"
    assert set(meta["versions"]) == {"topo", "torch", "numpy"}
    assert len(meta["initial"]["achieved_cv"]) == 2
    assert (run / "state" / "last.pt").is_file()
    first = load_checkpoint(run / "checkpoints" / "epoch_0000.safetensors")
    last = load_checkpoint(run / "checkpoints" / "epoch_0002.safetensors")
    assert first.names == ["fc1", "fc2"] and first.epoch == 0 and last.epoch == 2
    for topology in (first, last):
        for layer in topology:
            grad = layer.stats["grad_mean"]
            assert grad.shape == (layer.n_out,) and np.all(np.isfinite(grad)) and np.all(grad >= 0)
            assert grad.max() > 0
            assert np.all(layer.weight[~layer.mask.toarray()] == 0)
    # RigL keeps every layer's count
    assert [layer.nnz for layer in first] == [layer.nnz for layer in last]
    assert any((a.mask != b.mask).nnz for a, b in zip(first, last))


def test_existing_run_folder_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("x")
    with pytest.raises(TopoError, match="already exists"):
        train(_config(), run_dir=tmp_path / "run")


def test_checkpoint_every_adds_step_checkpoints(tmp_path):
    run = tmp_path / "run"
    train(_config(epochs=1, checkpoint_every=10), run_dir=run)
    names = [p.name for p in list_checkpoints(run)]
    assert names == [
        "epoch_0000.safetensors",
        "epoch_0001_step_00000010.safetensors",
        "epoch_0001_step_00000020.safetensors",
        "epoch_0001.safetensors",
    ]
    inside = load_checkpoint(run / "checkpoints" / names[1])
    assert inside.epoch == 1 and inside.step == 10 and "grad_mean" in inside[0].stats


@pytest.mark.parametrize(
    "method, options",
    [
        ("static", {}),
        ("set", {"drop_fraction": 0.3}),
        ("ggr", {"update_every": 4, "explore_fraction": 0.2}),
        ("prune", {"sparsity": 0.5, "retrain_epochs": 2, "prune_steps": 2, "prune_class": "class-uniform"}),
    ],
)
def test_methods_keep_their_counts(tmp_path, method, options):
    run = tmp_path / method
    train(_config(method=method, hidden=(24, 16), **options), run_dir=run)
    tops = [load_checkpoint(p) for p in list_checkpoints(run)]
    counts = [[layer.nnz for layer in t] for t in tops]
    if method in ("static", "set"):
        assert all(c == counts[0] for c in counts)
        changed = any((a.mask != b.mask).nnz for a, b in zip(tops[0], tops[-1]))
        assert changed == (method == "set")
    elif method == "ggr":
        assert len({sum(c) for c in counts}) == 1
        assert all(min(layer.fan_in.min() for layer in t) >= 1 for t in tops)
    else:
        # dense for 2 epochs; checkpoint E holds the masks after epoch E's pruning step:
        # half way after epoch 2, the target after epoch 3, then one more epoch
        sizes = [layer.size for layer in tops[0]]
        assert counts[0] == counts[1] == sizes
        assert counts[2] == [s - round(0.25 * s) for s in sizes]
        assert counts[3] == counts[4] == [s - round(0.5 * s) for s in sizes]
        assert len(tops) == 5


def test_sparsity_zero_is_dense(tmp_path):
    run = tmp_path / "dense"
    train(_config(sparsity=0.0, method="rigl", update_every=3), run_dir=run)
    last = load_checkpoint(run / "checkpoints" / "epoch_0002.safetensors")
    assert last.density == 1.0


def test_accuracy_increases_with_the_default_network(tmp_path):
    run = tmp_path / "default"
    train(TrainConfig(epochs=3, threads=1, device="cpu"), run_dir=run)
    acc = [m["test_acc"] for m in read_metrics(run)]
    assert acc[0] < 0.3 < acc[1] < acc[3]
    assert acc[3] > 0.85


# -- resume ------------------------------------------------------------------------
def test_interrupted_then_resumed_run_matches_uninterrupted(tmp_path):
    config = _config(epochs=5, method="rigl", update_every=7, checkpoint_every=8)
    whole = tmp_path / "whole"
    train(config, run_dir=whole)

    cut = tmp_path / "cut"

    def interrupt(epoch, step):
        if epoch == 3 and step == 2 * 21 + 11:  # inside epoch 3 (21 steps per epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=cut, on_step=interrupt)
    assert [m["epoch"] for m in read_metrics(cut)] == [0, 1, 2]
    assert any("epoch_0003_step" in p.name for p in list_checkpoints(cut))
    result = resume(cut)
    assert result.resumed_from == 2 and result.epochs_done == 5

    assert _untimed(read_metrics(cut)) == _untimed(read_metrics(whole))
    assert [p.name for p in list_checkpoints(cut)] == [p.name for p in list_checkpoints(whole)]
    a = load_checkpoint(whole / "checkpoints" / "epoch_0005.safetensors")
    b = load_checkpoint(cut / "checkpoints" / "epoch_0005.safetensors")
    for la, lb in zip(a, b):
        assert (la.mask != lb.mask).nnz == 0
        np.testing.assert_array_equal(la.weight, lb.weight)
        np.testing.assert_array_equal(la.stats["grad_mean"], lb.stats["grad_mean"])


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    run = tmp_path / "run"
    train(_config(epochs=1), run_dir=run)
    before = read_metrics(run)
    result = resume(run)
    assert result.epochs_done == 1 and read_metrics(run) == before


def test_resume_refuses_a_folder_that_is_not_a_training_run(tmp_path):
    with pytest.raises(TopoError, match="not a run written by topo train"):
        resume(tmp_path)


# -- divergence --------------------------------------------------------------------
def test_nan_loss_stops_with_a_clear_error_and_keeps_good_checkpoints(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TopoError, match=r"diverged.*epoch 1, step \d+ of 21.*epoch_0000"):
        train(_config(lr=1e12, momentum=0.0, schedule="constant", epochs=3), run_dir=run)
    assert [p.name for p in list_checkpoints(run)] == ["epoch_0000.safetensors"]
    load_checkpoint(run / "checkpoints" / "epoch_0000.safetensors")


def test_init_equilibrium_uses_the_profile_cvs(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "kind": "topo-fanin-profile", "version": 1, "distribution": "lognormal",
        "layers": {"fc1": {"mu": 2.0, "sigma": 0.7, "cv": 0.8, "mean_fan_in": 9.0}},
    }))
    run = tmp_path / "run"
    train(_config(epochs=0, hidden=(256,), init=f"equilibrium:{profile}"), run_dir=run)
    meta = read_run_config(run)
    assert meta["initial"]["profile_per_layer"] == {"fc1": {"profile": "lognormal", "cv": 0.8}}
    assert abs(meta["initial"]["achieved_cv"][0] - 0.8) < 0.2
    with pytest.raises(TopoError, match="names none of this network's layers"):
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"kind": "topo-fanin-profile", "version": 1, "distribution": "lognormal",
                                     "layers": {"conv1": {"mu": 1.0, "sigma": 0.5, "cv": 0.5, "mean_fan_in": 3.0}}}))
        train(_config(epochs=0, init=f"equilibrium:{other}"), run_dir=tmp_path / "run2")

"""`topo train`: options, output, --epochs 0, --resume, and a real process killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from click.testing import CliRunner

from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics, read_run_config
from topo.training.trainer import TIMING_FIELDS
from topo_cli.main import main

TINY = ["--hidden", "32", "--threads", "1", "--device", "cpu"]


def _invoke(*args):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_epochs_zero_writes_only_the_initial_checkpoint(tmp_path):
    run = tmp_path / "run"
    result = _invoke("--epochs", "0", "--out", str(run), *TINY)
    assert result.exit_code == 0, result.output
    assert [p.name for p in list_checkpoints(run)] == ["epoch_0000.safetensors"]
    assert [m["epoch"] for m in read_metrics(run)] == [0]
    assert read_run_config(run)["config"]["epochs"] == 0


def test_train_prints_the_run_and_how_to_look_at_it(tmp_path):
    run = tmp_path / "run"
    result = _invoke("--epochs", "1", "--out", str(run), "--method", "static", "--sparsity", "0.5",
                     "--density", "uniform", "--optimizer", "adam", "--lr", "0.01", *TINY)
    assert result.exit_code == 0, result.output
    assert f"Run: {run}" in result.output
    assert f"topo inspect {run}" in result.output
    assert f"topo compare {run}/checkpoints/epoch_0000.safetensors {run}/checkpoints/epoch_0001.safetensors" in result.output
    assert f"topo drift {run}" in result.output
    assert "epoch 1/1" in result.output  # the per-epoch line (stderr, mixed in by CliRunner)
    top = load_checkpoint(run / "checkpoints" / "epoch_0001.safetensors")
    assert abs(top.density - 0.5) < 0.01


def test_bad_options_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(main, ["train", "--density-map", "{oops", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2  # a usage error
    assert "--density-map" in result.output and "not valid JSON" in result.output
    result = CliRunner().invoke(main, ["train", "--sparsity", "1.5", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--sparsity" in result.output
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 2 and "--epochs" in result.output


def test_the_library_names_the_field_and_the_command_line_its_flag(tmp_path):
    import pytest

    from topo.errors import TopoError
    from topo.training.config import TrainConfig

    # one option's range, and a rule between options that a method checks at validation
    cases = [
        ({"sparsity": 1.5}, ["--sparsity", "1.5"], "sparsity", "must be in [0, 1), got 1.5"),
        ({"method": "granet", "initial_sparsity": 0.95, "sparsity": 0.9},
         ["--method", "granet", "--initial-sparsity", "0.95", "--sparsity", "0.9"],
         "initial_sparsity", "0.95 is above sparsity 0.9"),
    ]
    for values, flags, field, problem in cases:
        with pytest.raises(TopoError) as info:
            TrainConfig(**values).validate()
        assert str(info.value).startswith(f"{field} {problem}") and "--" not in str(info.value)
        result = CliRunner().invoke(main, ["train", *flags, "--out", str(tmp_path / "r")])
        flag = "--" + field.replace("_", "-")
        assert result.exit_code == 2 and f"Invalid value for '{flag}': {problem}" in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_killed_process_resumes_to_the_same_run(tmp_path):
    args = ["--epochs", "30", "--update-every", "5", "--seed", "3", *TINY, "-q"]
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "topo_cli.main", "train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    second = killed / "checkpoints" / "epoch_0001.safetensors"
    deadline = time.monotonic() + 60
    while not second.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert second.exists(), proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL
    assert len(read_metrics(killed)) < 31

    result = _invoke("--resume", str(killed), "-q")
    assert result.exit_code == 0, result.output
    assert "Resumed" in result.output

    whole = tmp_path / "whole"
    assert _invoke(*args, "--out", str(whole)).exit_code == 0

    def untimed(run):
        return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_metrics(run)]

    assert untimed(killed) == untimed(whole)
    a = load_checkpoint(killed / "checkpoints" / "epoch_0030.safetensors")
    b = load_checkpoint(whole / "checkpoints" / "epoch_0030.safetensors")
    for la, lb in zip(a, b):
        assert (la.mask != lb.mask).nnz == 0
        np.testing.assert_array_equal(la.weight, lb.weight)

"""One writer per run: the run lock, a second `topo train --out same` refused, stale locks,
dead temporaries, runs without a complete epoch, unsafe state files, I/O errors that name
their path."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from topo.checkpoint import list_checkpoints, read_metrics, read_run_config
from topo.errors import TopoError
from topo.runlock import LOCK_FILE, RunLockedError, lock_holder, run_lock
from topo.training.config import TrainConfig
from topo.training.trainer import STATE_FILE, TIMING_FIELDS, resume, train, train_or_resume
from topo_cli.main import main

TINY = dict(dataset="digits", hidden=(16,), epochs=2, batch_size=64, threads=1, device="cpu")
TINY_CLI = ["--dataset", "digits", "--hidden", "16", "--threads", "1", "--device", "cpu", "-q"]


def _config(**changes):
    values = dict(TINY)
    values.update(changes)
    return TrainConfig(**values)


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


_HOLDER = textwrap.dedent(
    """
    import sys
    from topo.runlock import run_lock
    with run_lock(sys.argv[1], purpose="test"):
        print("held", flush=True)
        sys.stdin.read()  # hold until the test closes our stdin
    """
)


def _hold_in_other_process(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


# -- the lock itself -----------------------------------------------------------------
def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    run = tmp_path / "run"
    holder = _hold_in_other_process(run)
    try:
        with pytest.raises(RunLockedError) as err:
            with run_lock(run):
                pass
        message = str(err.value)
        assert f"pid {holder.pid}" in message and str(run) in message
        assert "\n" not in message
        assert err.value.holder["pid"] == holder.pid and err.value.holder["host"]
        assert isinstance(err.value, TopoError)
        # train, resume and train_or_resume all ask for the lock before touching the folder
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            train(_config(), run_dir=run)
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            train_or_resume(_config(), run)
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]
    finally:
        holder.stdin.close()
        holder.wait()
    # released when the holder exits: the lock is ours now
    with run_lock(run, purpose="after"):
        assert lock_holder(run)["pid"] == os.getpid()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    run = tmp_path / "run"
    holder = _hold_in_other_process(run)
    holder.kill()
    holder.wait()
    assert lock_holder(run)["pid"] == holder.pid  # its note is still there
    result = train(_config(epochs=1), run_dir=run)
    assert result.epochs_done == 1
    assert lock_holder(run)["pid"] == os.getpid() and lock_holder(run)["purpose"] == "train"


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    run = tmp_path / "run"
    with run_lock(run, purpose="outer"):
        with run_lock(run, purpose="inner"):
            assert lock_holder(run)["purpose"] == "outer"
        # still held: another process is refused
        probe = subprocess.run(
            [sys.executable, "-c", "import sys; from topo.runlock import run_lock\n"
             "try:\n with run_lock(sys.argv[1]): print('got it')\n"
             "except Exception as e: print(type(e).__name__)", str(run)],
            capture_output=True, text=True,
        )
        assert probe.stdout.strip() == "RunLockedError", probe.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from topo.runlock import run_lock\n"
         "with run_lock(sys.argv[1]): print('got it')", str(run)],
        capture_output=True, text=True,
    )
    assert probe.stdout.strip() == "got it", probe.stderr


def test_a_failed_start_leaves_no_folder_behind(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TopoError, match="no-such-data"):
        train(_config(dataset=str(tmp_path / "no-such-data.npz")), run_dir=run)
    assert not run.exists()


def test_two_concurrent_topo_train_processes_the_second_is_refused(tmp_path):
    run = tmp_path / "same"
    first = subprocess.Popen(
        [sys.executable, "-m", "topo_cli.main", "train", *TINY_CLI, "--epochs", "40", "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while lock_holder(run).get("pid") != first.pid and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.poll() is None, first.stderr.read().decode()
        second = subprocess.run(
            [sys.executable, "-m", "topo_cli.main", "train", *TINY_CLI, "--epochs", "40", "--seed", "1",
             "--out", str(run)],
            capture_output=True, text=True, timeout=300,
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"in use by another process: pid {first.pid}" in lines[0] and str(run) in lines[0]
        assert first.poll() is None  # the first was not disturbed
        # let the first write some epochs (a loaded machine can take a while) before stopping it
        deadline = time.monotonic() + 300
        while not list((run / "checkpoints").glob("epoch_0001*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.poll() is None, first.stderr.read().decode()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # only the first run's records, each epoch once, all from seed 0
    epochs = [r["epoch"] for r in read_metrics(run)]
    assert epochs == sorted(set(epochs))
    assert read_run_config(run)["config"]["seed"] == 0
    # the killed writer's lock went with it
    with run_lock(run):
        pass


# -- resuming -----------------------------------------------------------------------
def test_resume_removes_temporaries_of_killed_atomic_writes(tmp_path):
    run = tmp_path / "run"
    train(_config(epochs=1), run_dir=run)
    dead = [
        run / "checkpoints" / ".epoch_0002.safetensors.k3j2x9ab.tmp",
        run / "checkpoints" / ".epoch_0001_step_00000007.safetensors.k3j2_9ab.tmp",
        run / "state" / ".last.pt.a8f0qq12.tmp",
        run / ".run.json.zz81n0xy.tmp",
        run / ".metrics.jsonl.zz81n0xy.tmp",
    ]
    for path in dead:
        path.write_bytes(b"\0" * 4096)
    keep = [run / "checkpoints" / "notes.tmp", run / ".mine.k3j2x9ab.tmp"]  # not topo's temporaries
    for path in keep:
        path.write_text("mine")
    resume(run)
    assert not any(path.exists() for path in dead)
    assert all(path.exists() for path in keep)


def _killed_in_first_checkpoint(run: Path, monkeypatch) -> None:
    import topo.training.run_folder as run_folder

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(run_folder, "save_checkpoint", killed)
        with pytest.raises(KeyboardInterrupt):
            train(_config(), run_dir=run)
    assert (run / "run.json").is_file() and not (run / STATE_FILE).exists()


def test_a_run_without_a_complete_epoch_restarts_on_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _killed_in_first_checkpoint(run, monkeypatch)
    # a plain re-run says what to do
    with pytest.raises(TopoError, match=r"stopped before its first epoch ended; resume it \(it restarts from the beginning\)"):
        train(_config(), run_dir=run)
    result = resume(run)
    assert result.resumed_from is None and result.epochs_done == 2
    whole = train(_config(), run_dir=tmp_path / "whole")
    assert _untimed(read_metrics(run)) == _untimed(read_metrics(whole.run_dir))
    assert [p.name for p in list_checkpoints(run)] == [p.name for p in list_checkpoints(whole.run_dir)]


def test_cli_resume_of_a_run_without_a_complete_epoch(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _killed_in_first_checkpoint(run, monkeypatch)
    plain = CliRunner().invoke(main, ["train", *TINY_CLI, "--epochs", "2", "--out", str(run)])
    assert plain.exit_code == 1 and f"topo train --resume {run}" in plain.output
    again = CliRunner().invoke(main, ["train", "--resume", str(run), "-q"])
    assert again.exit_code == 0, again.output
    assert "Restarted" in again.output
    assert [r["epoch"] for r in read_metrics(run)] == [0, 1, 2]


def test_resume_keeps_a_run_that_trained_but_lost_its_state(tmp_path):
    run = tmp_path / "run"
    train(_config(), run_dir=run)
    (run / STATE_FILE).unlink()
    with pytest.raises(TopoError, match="no saved training state"):
        resume(run)
    assert [p.name for p in list_checkpoints(run)][-1] == "epoch_0002.safetensors"


@pytest.mark.parametrize(
    "change, complaint",
    [
        (lambda m: m.update(config=[1, 2]), "'config' is not a JSON object"),
        (lambda m: m["config"].update(epochs="three"), "'config' is not a valid training configuration"),
        (lambda m: m["config"].update(hidden={"a": 1}), "'config' is not a valid training configuration"),
        (lambda m: m["config"].update(bogus=1), "unknown training options"),
        (lambda m: m.update(network={"shapes": "64x16"}), "'network.shapes'"),
        (lambda m: m.update(network=None), "'network.shapes'"),
        (lambda m: m.update(total_steps="many"), "'total_steps'"),
        (lambda m: m.update(kind=7), "not a run written by topo train"),
    ],
)
def test_resume_validates_run_json_into_one_line(tmp_path, change, complaint):
    run = tmp_path / "run"
    train(_config(epochs=1), run_dir=run)
    meta = json.loads((run / "run.json").read_text())
    change(meta)
    (run / "run.json").write_text(json.dumps(meta))
    with pytest.raises(TopoError, match=complaint) as err:
        resume(run)
    assert "\n" not in str(err.value) and str(run) in str(err.value)
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert complaint.split("'")[0] in result.output


def test_an_unsafe_state_file_is_refused_without_torchs_advice(tmp_path):
    import torch

    run = tmp_path / "run"
    train(_config(epochs=1), run_dir=run)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = {"format": "topo-train-state", "version": 1, "epoch": 1, "step": 1, "x": Payload()}
    torch.save(state, run / STATE_FILE)
    with pytest.raises(TopoError) as err:
        resume(run)
    message = str(err.value)
    assert "refusing to unpickle" in message and str(run / STATE_FILE) in message
    assert "weights_only" not in message and "\n" not in message
    assert not marker.exists()


# -- I/O errors name their path ------------------------------------------------------
def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    from topo.atomic import atomic_write_bytes

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "run" / "checkpoints" / "epoch_0001.safetensors"
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic_write_bytes(target, b"x" * 100)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # no temporary left behind

    run = tmp_path / "run2"
    result = CliRunner().invoke(main, ["train", *TINY_CLI, "--epochs", "1", "--out", str(run)])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: {run}") and "No space left on device" in line


def test_metrics_appends_name_the_file_when_the_disk_is_full(tmp_path, monkeypatch):
    from topo.checkpoint import append_metrics

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        append_metrics(tmp_path, {"epoch": 1})
    assert err.value.filename == str(tmp_path / "metrics.jsonl")


def test_a_sweep_folder_has_one_writer(tmp_path):
    from topo.sweep import parse_sweep_spec, run_sweep

    out = tmp_path / "sweep"
    spec = parse_sweep_spec(
        {"sweep": {"name": "locked"}, "base": {"dataset": "digits", "hidden": [8], "threads": 1, "device": "cpu"},
         "grid": {"epochs": [0]}}
    )
    holder = _hold_in_other_process(out)
    try:
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            run_sweep(spec, out=out)
        assert not (out / "results.csv").exists()
    finally:
        holder.stdin.close()
        holder.wait()
    result = run_sweep(spec, out=out)
    assert [row["status"] for row in result.rows] == ["done"]
    assert lock_holder(out)["purpose"] == "sweep"

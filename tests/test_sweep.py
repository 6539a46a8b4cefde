"""Sweeps: spec parsing and errors, grid expansion and ids, running, skipping, resuming, CLI."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from topo.checkpoint import list_checkpoints, load_checkpoint
from topo.errors import TopoError
from topo.sweep import expand_grid, parse_sweep_spec, read_sweep_spec, run_id_for, run_sweep
from topo.training.config import TrainConfig
from topo.training.trainer import train

REPO = Path(__file__).resolve().parents[1]

TINY_BASE = """
[base]
dataset = "digits"
hidden = [16]
sparsity = 0.8
epochs = 2
lr = 0.1
update_every = 5
threads = 1
device = "cpu"
"""


def _spec(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _tiny(tmp_path, grid='method = ["static", "rigl"]', extra=""):
    return _spec(tmp_path, f'[sweep]\nname = "t"\n{TINY_BASE}\n[grid]\n{grid}\n{extra}')


def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- the spec ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, message",
    [
        ("[grid]\nmethod = [\"rigl\"]\nbogus = [1]", r"\[grid\] bogus: not a training option"),
        ("[base]\nwarmup = 3\n[grid]\nseed = [0]", r"\[base\] warmup: not a training option"),
        ("[grid]\nseed = []", r"\[grid\] seed: empty list"),
        ("[grid]\nseed = 3", r"\[grid\] seed: expected a list"),
        ("[grid]\nepochs = [\"two\"]", r"\[grid\] epochs: expected an integer"),
        ("[grid]\nsparsity = [0.5, 1.0]", r"\[grid\] sparsity: must be in \[0, 1\), got 1.0 \(run "),
        ("[base]\nlr = -1.0\n[grid]\nseed = [0]", r"\[base\] lr: must be in \(0, inf\), got -1.0 \(run "),
        ("[grid]\nmethod = [\"rigl\", \"magic\"]", r"\[grid\] method: must be a known method \(.*\), got 'magic'"),
        ("[grid]\nprofile = [\"zigzag\"]", r"\[grid\] profile: unknown fan-in profile"),
        ("[base]\nseed = 1\n[grid]\nseed = [0]", r"\[grid\] seed: also set in \[base\]"),
        ("[grid]\nseed = [0, 0]", r"\[grid\] seed: value 0 appears twice"),
        ("[grid]\nhidden = [\"16,x\"]", r"\[grid\] hidden: .*not an integer width"),
        ("[base]\nout = \"x\"\n[grid]\nseed = [0]", r"\[base\] out: the sweep places each run"),
        ("[sweep]\nworkers = 2\n[grid]\nseed = [0]", r"\[sweep\] workers: unknown key"),
        ("[grids]\nseed = [0]", r"\[grids\]: unknown section"),
        ("[grid]", r"\[grid\]: empty"),
        ("[base]\nseed = 1", r"no runs"),
        ("[[include]]\nprofile = \"random\"\ncv = 0.5", r"\[\[include\]\] #1: profile 'random' takes no cv"),
        ("[[include]]\nepochs = -1", r"\[\[include\]\] #1 epochs: must be a non-negative integer"),
        ("[grid]\nprofile = [\"lognormal\"]", r"no valid runs: .*needs a cv"),
        ("[grid\nseed = [0]", r"not valid TOML"),
    ],
)
def test_bad_specs_name_the_file_and_key(tmp_path, text, message):
    path = _spec(tmp_path, text)
    with pytest.raises(TopoError, match=message) as info:
        expand_grid(read_sweep_spec(path))
    assert str(info.value).startswith(str(path))
    assert info.value.path == str(path)


def test_missing_spec_file(tmp_path):
    with pytest.raises(TopoError, match="no such sweep spec"):
        read_sweep_spec(tmp_path / "nope.toml")


def test_expand_grid_order_ids_notes_and_includes(tmp_path):
    text = (
        TINY_BASE
        + '[grid]\nprofile = ["random", "lognormal"]\ncv = ["none", 0.5]\nseed = [0, 1]\n'
        + '[[include]]\nmethod = "set"\n[[include]]\nprofile = "random"\ncv = "none"\nseed = 0\n'
    )
    path = _spec(tmp_path, text)
    spec = read_sweep_spec(path)
    notes: list[str] = []
    runs = expand_grid(spec, notes=notes)
    # 8 combinations, 4 invalid by construction; include #2 repeats a grid run
    assert [(r.config.profile, r.config.cv, r.config.seed) for r in runs[:4]] == [
        ("random", None, 0), ("random", None, 1), ("lognormal", 0.5, 0), ("lognormal", 0.5, 1),
    ]
    assert len(runs) == 5 and runs[4].config.method == "set" and runs[4].source == "include #1"
    assert any("skipped 2 grid combinations: profile 'random' takes no cv" in n for n in notes)
    assert any("skipped 2 grid combinations: profile 'lognormal' needs a cv" in n for n in notes)
    assert any("include #2 is the same run as grid" in n for n in notes)
    assert runs[2].name == "lognormal_cv0.5_seed0_rigl"
    assert len({r.run_id for r in runs}) == 5
    for run in runs:
        assert run.run_id.startswith(run.name + "-") and len(run.run_id) == len(run.name) + 9
        assert run.config.hidden == (16,) and run.config.epochs == 2
    # same spec -> same ids; where/how fields do not change them, what fields do
    assert [r.run_id for r in expand_grid(read_sweep_spec(path))] == [r.run_id for r in runs]
    config = runs[0].config
    moved = TrainConfig(**{**config.to_dict(), "threads": 4, "data_dir": "/elsewhere", "out": "x"})
    assert run_id_for(moved, runs[0].name) == runs[0].run_id
    changed = TrainConfig(**{**config.to_dict(), "lr": 0.2})
    assert run_id_for(changed, runs[0].name) != runs[0].run_id


def test_parse_spec_values_and_defaults():
    spec = parse_sweep_spec(
        {"base": {"lr": 1, "density_map": {"fc3": 1}}, "grid": {"hidden": [[8], "4,4", 2], "cv": ["none", 1]}},
    )
    assert spec.name == "sweep" and spec.out is None and spec.path is None
    assert spec.base == {"lr": 1.0, "density_map": {"fc3": 1.0}} and isinstance(spec.base["lr"], float)
    assert spec.grid["hidden"] == [(8,), (4, 4), (2,)]
    assert spec.grid["cv"] == [None, 1.0] and isinstance(spec.grid["cv"][1], float)
    assert spec.config_keys == ["hidden", "cv", "lr", "density_map"]
    with pytest.raises(TopoError, match=r"\[base\] ggr_normalise: expected true or false"):
        parse_sweep_spec({"base": {"ggr_normalise": 1}, "grid": {"seed": [0]}})


# -- running ----------------------------------------------------------------------------------
def test_sweep_runs_in_processes_then_skips(tmp_path):
    path = _tiny(tmp_path)
    out = tmp_path / "out"
    seen = []
    result = run_sweep(path, out=out, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)
    assert result.out_dir == out and result.results_csv == out / "results.csv"
    rows = _csv_rows(result.results_csv)
    assert [r["method"] for r in rows] == ["static", "rigl"]
    assert [r["status"] for r in rows] == ["done", "done"]
    for row, api_row in zip(rows, result.rows):
        assert row["run_id"] == api_row["run_id"] and row["error"] == ""
        assert row["hidden"] == "16" and row["epochs"] == "2" and row["threads"] == "1"
        assert 0.3 < float(row["final_val_acc"]) <= 1 and 0.3 < float(row["final_test_acc"]) <= 1
        assert float(row["best_val_acc"]) >= float(row["final_val_acc"])
        assert row["epochs_done"] == "2"
        run_dir = Path(row["run_dir"])
        assert run_dir == out / "runs" / row["run_id"]
        assert [p.name for p in list_checkpoints(run_dir)][-1] == "epoch_0002.safetensors"
        last = load_checkpoint(list_checkpoints(run_dir)[-1], weights=False)
        for layer in ("fc1", "fc2"):
            cv = float(row[f"fan_in_cv_{layer}"])
            assert cv == pytest.approx(float(np.std(last[layer].fan_in) / np.mean(last[layer].fan_in)))
            assert row[f"converged_{layer}"] in ("", "0", "1", "2")  # "": not converged
            assert math.isfinite(float(row[f"grad_concentration_{layer}"]))
    static, rigl = rows
    # static masks never move: converged from the first checkpoint; rigl's fc1 changes
    assert static["converged_fc1"] == "0" and static["converged_fc2"] == "0"
    assert api_row["fan_in_cv_fc1"] == pytest.approx(float(rigl["fan_in_cv_fc1"]))

    # every file but the run lock's note (rewritten by each holder) stays untouched
    stamps = {
        p: p.stat().st_mtime_ns for r in rows for p in Path(r["run_dir"]).rglob("*") if p.is_file() and p.name != ".topo.lock"
    }
    again = run_sweep(path, out=out, workers=1)
    assert [r["status"] for r in again.rows] == ["skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained or rewritten
    for before, after in zip(result.rows, again.rows):
        for key in ("final_val_acc", "fan_in_cv_fc1", "converged_fc2", "grad_concentration_fc2"):
            assert after[key] == before[key]


def test_interrupted_and_crashed_runs_resume(tmp_path):
    path = _tiny(tmp_path, grid='method = ["rigl", "set"]')
    out = tmp_path / "out"
    rigl, set_run = expand_grid(read_sweep_spec(path))

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(rigl.config, run_dir=out / "runs" / rigl.run_id, on_epoch=stop_after_first)
    assert [p.name for p in list_checkpoints(out / "runs" / rigl.run_id)][-1] == "epoch_0001.safetensors"
    # a run that died before its first state: a folder with run.json alone
    crashed = out / "runs" / set_run.run_id
    crashed.mkdir(parents=True)
    (crashed / "run.json").write_text(json.dumps({"kind": "topo-train-run", "config": set_run.config.to_dict()}))

    result = run_sweep(path, out=out, workers=1)
    assert [r["status"] for r in result.rows] == ["resumed", "done"]
    assert [r["epochs_done"] for r in result.rows] == [2, 2]

    reference = train(rigl.config, run_dir=tmp_path / "reference")
    resumed = load_checkpoint(list_checkpoints(out / "runs" / rigl.run_id)[-1])
    uninterrupted = load_checkpoint(reference.checkpoints[-1])
    for a, b in zip(resumed, uninterrupted):
        assert (a.mask != b.mask).nnz == 0
        np.testing.assert_array_equal(a.weight, b.weight)


def test_failed_run_is_a_row_and_the_sweep_goes_on(tmp_path):
    path = _tiny(tmp_path, grid='dataset = ["digits", "/no/such/data.npz"]', extra="")
    text = path.read_text().replace('dataset = "digits"\n', "", 1)
    path.write_text(text)
    snapshots = []

    def snapshot(done, total):  # the CSV as it stands after each finished run
        snapshots.append([r["status"] for r in _csv_rows(tmp_path / "out" / "results.csv")])

    result = run_sweep(path, out=tmp_path / "out", progress=snapshot)
    assert snapshots == [["pending", "pending"], ["done", "pending"], ["done", "error"]]
    good, bad = result.rows
    assert good["status"] == "done" and good["error"] is None
    assert bad["status"] == "error" and "data.npz" in bad["error"]
    assert math.isnan(bad["final_val_acc"]) and bad["fan_in_cv_fc1"] is None
    assert result.count("error") == 1
    rows = _csv_rows(result.results_csv)
    assert rows[1]["status"] == "error" and rows[1]["final_val_acc"] == "" and rows[1]["error"]


def test_sweep_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = _spec(tmp_path, f"{TINY_BASE}\n[[include]]\nepochs = 1\n")
    with distributed.LocalCluster(
        n_workers=1, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=":0"
    ) as cluster:
        result = run_sweep(path, out=tmp_path / "out", scheduler=cluster.scheduler_address)
    (row,) = result.rows
    assert row["status"] == "done" and row["epochs_done"] == 1 and row["final_test_acc"] > 0.2


# -- the command -------------------------------------------------------------------------------
def test_cli_sweep_csv_table_and_strict(tmp_path):
    from topo_cli.main import main

    path = _tiny(tmp_path, grid='dataset = ["digits", "/no/such/data.npz"]')
    path.write_text(path.read_text().replace('dataset = "digits"\n', "", 1).replace("epochs = 2", "epochs = 1"))
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(main, ["sweep", str(path), "--out", str(out), "--workers", "1", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["status"] for r in rows] == ["done", "error"]
    assert rows == _csv_rows(out / "results.csv")
    assert "1 of 2 runs failed" in result.stderr

    table = runner.invoke(main, ["sweep", str(path), "--out", str(out)])
    assert table.exit_code == 0 and "skipped" in table.stdout and "conv fc1" in table.stdout
    strict = runner.invoke(main, ["sweep", str(path), "--out", str(out), "--strict", "--format", "json"])
    assert strict.exit_code == 3
    payload = json.loads(strict.stdout)
    assert [r["status"] for r in payload] == ["skipped", "error"]

    bad = _spec(tmp_path, "[grid]\nsparsity = [2.0]\n", name="bad.toml")
    failed = runner.invoke(main, ["sweep", str(bad), "--out", str(out)])
    assert failed.exit_code == 1
    assert f"Error: {bad}: [grid] sparsity" in failed.output and "Traceback" not in failed.output


def test_example_spec_is_valid():
    spec = read_sweep_spec(REPO / "examples" / "sweeps" / "tiny.toml")
    notes: list[str] = []
    runs = expand_grid(spec, notes=notes)
    assert len(runs) == 5 and len(notes) == 2
    assert all(run.config.threads == 1 and run.config.dataset == "digits" for run in runs)

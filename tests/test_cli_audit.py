"""``topo audit``: output formats, -o, exit codes, error rows without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

import topo
from topo import Topology
from topo.analysis.degree import degree_summary
from topo.checkpoint import checkpoint_name, save_checkpoint, write_run_config
from topo_cli.main import main

from conftest import random_sparse_weights


def make_net(seed: int) -> Topology:
    weights = random_sparse_weights([(40, 30), (50, 40), (10, 50)], 0.3, seed=seed)
    return Topology.from_weights(weights, names=["fc1", "fc2", "out"])


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    save_checkpoint(make_net(1), root / "a.safetensors")
    write_run_config(root / "run", {"seed": 0})
    for epoch in (0, 1):
        save_checkpoint(make_net(10 + epoch), root / "run" / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    (root / "readme.txt").write_text("skipped silently")
    return root


@pytest.fixture
def broken(folder, tmp_path):
    (folder / "empty.safetensors").write_bytes(b"")
    good = (folder / "a.safetensors").read_bytes()
    (folder / "cut.safetensors").write_bytes(good[:100])
    with open(folder / "evil.pth", "wb") as handle:
        pickle.dump(Evil(tmp_path / "MARKER"), handle)
    return folder


def run(*args):
    return CliRunner().invoke(main, ["audit", *map(str, args)])


def expected(path: Path) -> dict:
    net = topo.load(path, weights=False)
    summary = degree_summary(net)
    return {"nnz": summary.nnz, "total": summary.size, "density": summary.density,
            "cv_mean": summary.fan_in_cv_mean, "cv_max": summary.fan_in_cv_max, "epoch": net.epoch}


def test_csv_carries_the_right_values(folder):
    result = run(folder, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["a.safetensors", "epoch_0000.safetensors", "epoch_0001.safetensors"]
    for row in rows:
        want = expected(Path(row["path"]))
        assert row["status"] == "ok" and row["format"] == "topo"
        assert int(row["nnz"]) == want["nnz"] and int(row["total"]) == want["total"]
        assert float(row["density"]) == pytest.approx(want["density"])
        assert float(row["fan_in_cv_mean"]) == pytest.approx(want["cv_mean"])
        assert float(row["fan_in_cv_max"]) == pytest.approx(want["cv_max"])
        assert row["epoch"] == ("" if want["epoch"] is None else str(want["epoch"]))
        assert row["error"] == ""
    assert result.stderr == ""


def test_json_and_markdown(folder):
    result = run(folder, "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 3
    want = expected(folder / "a.safetensors")
    assert rows[0]["nnz"] == want["nnz"]
    assert rows[0]["density"] == pytest.approx(want["density"])
    assert rows[0]["fan_in_cv_mean"] == pytest.approx(want["cv_mean"])
    assert rows[0]["warnings"] == [] and rows[0]["error"] is None
    assert isinstance(rows[0]["hub_share"], float) and rows[0]["best_fit"]

    result = run(folder, "--format", "markdown")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 + 3
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:3] == ["path", "status", "format"] and "CV mean" in header
    assert set(lines[1].replace("|", "").replace(":", "")) == {"-"}
    first = dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))
    assert first["path"].endswith("a.safetensors")
    assert float(first["nnz"]) == want["nnz"]
    assert float(first["density"]) == pytest.approx(want["density"], rel=1e-3)
    assert float(first["CV mean"]) == pytest.approx(want["cv_mean"], rel=1e-3)


def test_table_and_output_file(folder, tmp_path):
    result = run(folder)
    assert result.exit_code == 0
    assert "a.safetensors" in result.stdout and "3 checkpoints, 0 unreadable" in result.stdout

    out = tmp_path / "report" / "audit.csv"
    out.parent.mkdir()
    result = run(folder, "--format", "csv", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert [p.name for p in out.parent.iterdir()] == ["audit.csv"]  # no temporary file left


def test_unreadable_rows_and_strict(broken, tmp_path):
    result = run(broken, "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["empty.safetensors"]["error"] == "empty file (0 bytes)"
    assert rows["cut.safetensors"]["status"] == "error"
    assert rows["evil.pth"]["status"] == "error"
    assert not (tmp_path / "MARKER").exists()
    assert "3 of 6 checkpoints could not be read" in result.stderr
    assert "Traceback" not in result.output

    result = run(broken, "--format", "csv", "--strict")
    assert result.exit_code == 3
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 6  # the rows still come

    result = run(broken / "a.safetensors", "--strict")
    assert result.exit_code == 0


def test_missing_path_and_empty_folder(folder, tmp_path):
    result = run(folder, tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'nope'}: no such file or folder"
    assert result.stdout == ""

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("nothing here")
    result = run(empty)
    assert result.exit_code == 0
    assert result.stderr.strip() == f"no checkpoints found under {empty}"
    assert run(empty, "--strict").exit_code == 3
    assert json.loads(run(empty, "--format", "json").stdout) == []


def test_layers_option(folder):
    result = run(folder / "a.safetensors", "--format", "json", "--layers", "^fc")
    row = json.loads(result.stdout)[0]
    net = topo.load(folder / "a.safetensors", weights=False)
    assert row["n_layers"] == 2 and row["nnz"] == net["fc1"].nnz + net["fc2"].nnz
    result = run(folder, "--layers", "(")
    assert result.exit_code == 1 and "regular expression" in result.stderr


def test_scheduler_option_gives_the_same_output(folder):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    local = run(folder, "--format", "json")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = run(folder, "--format", "json", "--scheduler", cluster.scheduler_address)
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.stdout) == json.loads(local.stdout)


def test_workers_option_reaches_the_library(folder, monkeypatch):
    import topo.audit

    seen = {}
    real = topo.audit.audit_paths

    def spy(paths, **options):
        seen.update(options)
        return real(paths, **{**options, "workers": 1})

    monkeypatch.setattr(topo.audit, "audit_paths", spy)
    result = run(folder, "--workers", "3", "--format", "csv")
    assert result.exit_code == 0 and seen["workers"] == 3 and seen["scheduler"] is None
    assert run(folder, "--workers", "0").exit_code == 2  # click's usage error

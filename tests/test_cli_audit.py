"""``topo audit``: output formats, -o, exit codes, error rows without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path

import numpy as np
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
    (root / "readme.txt").write_text("not a checkpoint: a skipped row")
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
    assert [Path(r["path"]).name for r in rows] == [
        "a.safetensors", "readme.txt", "epoch_0000.safetensors", "epoch_0001.safetensors",
    ]
    skipped = rows.pop(1)
    assert skipped["status"] == "skipped" and skipped["error"].startswith("not a checkpoint")
    assert skipped["nnz"] == ""
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
    assert [row["status"] for row in rows] == ["ok", "skipped", "ok", "ok"]
    want = expected(folder / "a.safetensors")
    assert rows[0]["nnz"] == want["nnz"]
    assert rows[0]["density"] == pytest.approx(want["density"])
    assert rows[0]["fan_in_cv_mean"] == pytest.approx(want["cv_mean"])
    assert rows[0]["warnings"] == [] and rows[0]["error"] is None
    assert isinstance(rows[0]["hub_share"], float) and rows[0]["best_fit"]

    result = run(folder, "--format", "markdown")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 + 4
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
    assert "a.safetensors" in result.stdout and "4 rows: 3 ok, 0 refused, 1 skipped" in result.stdout

    out = tmp_path / "report" / "audit.csv"
    out.parent.mkdir()
    result = run(folder, "--format", "csv", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["status"] for r in rows] == ["ok", "skipped", "ok", "ok"]
    assert [p.name for p in out.parent.iterdir()] == ["audit.csv"]  # no temporary file left


def test_unreadable_rows_and_strict(broken, tmp_path):
    result = run(broken, "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["empty.safetensors"]["error"] == "empty file (0 bytes)"
    assert rows["cut.safetensors"]["status"] == "refused"
    assert rows["evil.pth"]["status"] == "refused"
    assert not (tmp_path / "MARKER").exists()
    assert "3 of 7 refused" in result.stderr
    assert "Traceback" not in result.output

    result = run(broken, "--format", "csv", "--strict")
    assert result.exit_code == 3
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 7  # the rows still come

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
    rows = json.loads(run(empty, "--format", "json").stdout)
    assert [(Path(r["path"]).name, r["status"]) for r in rows] == [("notes.md", "skipped")]


def test_layers_option(folder):
    result = run(folder / "a.safetensors", "--format", "json", "--layers", "^fc")
    row = json.loads(result.stdout)[0]
    net = topo.load(folder / "a.safetensors", weights=False)
    assert row["n_layers"] == 2 and row["nnz"] == net["fc1"].nnz + net["fc2"].nnz
    result = run(folder, "--layers", "(")
    assert result.exit_code == 2 and "regular expression" in result.stderr  # a usage error


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
    real = topo.audit.audit_entries

    def spy(entries, **options):
        seen.update(options)
        return real(entries, **{**options, "workers": 1})

    monkeypatch.setattr(topo.audit, "audit_entries", spy)
    result = run(folder, "--workers", "3", "--format", "csv")
    assert result.exit_code == 0 and seen["workers"] == 3 and seen["scheduler"] is None
    assert run(folder, "--workers", "0").exit_code == 2  # click's usage error


def test_symlink_rows_and_follow_option(folder, tmp_path):
    outside = tmp_path / "outside.safetensors"
    save_checkpoint(make_net(9), outside)
    (folder / "link.safetensors").symlink_to(outside)
    result = run(folder, "--format", "json", "--strict")
    assert result.exit_code == 3  # a refused row counts under --strict
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["link.safetensors"]["status"] == "refused"
    assert "outside the audited folder" in rows["link.safetensors"]["error"]
    assert rows["link.safetensors"]["nnz"] is None
    assert "links out of the audited folder are read with --follow-symlinks" in result.stderr

    result = run(folder, "--format", "json", "--follow-symlinks", "--strict")
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["link.safetensors"]["status"] == "ok"
    assert rows["link.safetensors"]["nnz"] == make_net(9).nnz
    assert "--follow-symlinks" in CliRunner().invoke(main, ["audit", "--help"]).output


def two_four_net(seed=0):
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((12, 6, 4)), axis=2)[:, :, :2]
    mask = np.zeros((12, 6, 4), dtype=bool)
    np.put_along_axis(mask, keep, True, axis=2)
    return Topology.from_masks([mask.reshape(12, 24), rng.random((5, 12)) < 0.4], names=["pruned", "head"])


def test_pattern_fields_in_audit_and_inspect(tmp_path):
    path = tmp_path / "pruned.safetensors"
    save_checkpoint(two_four_net(), path, run_info={"config": {"sparsity": 0.5}})
    row = json.loads(run(path, "--format", "json").stdout)[0]
    assert row["pattern"] == "2:4, unstructured" and row["layers_2_4"] == 1
    assert row["requested_sparsity"] == 0.5
    assert [(layer["name"], layer["pattern"], layer["pattern_compliance"]) for layer in row["layers"]] == [
        ("pruned", "2:4", 1.0), ("head", "unstructured", None),
    ]
    table = run(path).stdout
    assert "2:4, unstructured" in table and "requested" in table
    assert "pattern" in next(csv.DictReader(io.StringIO(run(path, "--format", "csv").stdout)))

    runner = CliRunner()
    data = json.loads(runner.invoke(main, ["inspect", str(path), "--format", "json"]).stdout)
    first, second = data["layers"]
    assert first["pattern"] == "2:4" and first["pattern_compliance"] == 1.0 and first["runs_2_4"] is True
    assert second["pattern"] == "unstructured" and second["pattern_compliance"] is None
    assert data["summary"]["requested_sparsity"] == 0.5
    assert data["summary"]["sparsity"] == pytest.approx(1 - two_four_net().nnz / two_four_net().size)
    table = runner.invoke(main, ["inspect", str(path)]).stdout
    assert "2:4" in table and "sparsity requested 0.5, achieved" in table

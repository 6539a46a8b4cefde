"""``topo compare``, ``topo distance`` and ``topo hubs`` through click's test runner."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import topo
from topo.analysis.distance import mask_turnover, nnstd
from topo.analysis.hubs import hub_indices, hub_overlap
from topo_cli.main import main


def _network(seed, widths=(12, 10, 8, 4), with_grad=False):
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        mask = rng.random((n_out, n_in)) < 0.35
        stats = {"grad_mean": rng.random(n_out).astype(np.float32)} if with_grad else None
        layers.append(topo.Layer.from_mask(f"fc{k + 1}", mask, stats=stats))
    return topo.Topology(layers)


@pytest.fixture
def checkpoints(tmp_path):
    paths = []
    for seed in range(3):
        paths.append(topo.save_checkpoint(_network(seed, with_grad=True), tmp_path / f"n{seed}.safetensors", epoch=seed))
    wide = topo.save_checkpoint(_network(9, widths=(12, 14, 8, 4)), tmp_path / "wide.safetensors")
    return paths, wide


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_compare_json_matches_the_library(checkpoints):
    (a, b, _), _ = checkpoints
    result = run("compare", a, b, "--format", "json", "--fraction", "0.2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    ta, tb = topo.load(a), topo.load(b)
    expected = nnstd(ta, tb)
    assert data["nnstd"] == pytest.approx(expected.distance)
    assert [row["nnstd"] for row in data["layers"]] == pytest.approx(expected.layer_distances)
    assert [row["mask_turnover"] for row in data["layers"]] == pytest.approx(mask_turnover(ta, tb))
    assert [row["hub_overlap_matched"] for row in data["layers"]] == pytest.approx(
        hub_overlap(ta, tb, matched=True, fraction=0.2)
    )
    assert [row["density_a"] for row in data["layers"]] == pytest.approx(ta.densities)
    assert data["overall"]["density_b"] == pytest.approx(tb.density)
    # the overall turnover is the share of all connections that differ
    nnz = [la.nnz + lb.nnz for la, lb in zip(ta, tb)]
    weighted = sum(t * w for t, w in zip(mask_turnover(ta, tb), nnz)) / sum(nnz)
    assert data["overall"]["mask_turnover"] == pytest.approx(weighted)


def test_compare_table_csv_and_unequal_shapes(checkpoints):
    (a, _, _), wide = checkpoints
    table = run("compare", a, a)
    assert table.exit_code == 0, table.output
    assert "fc1" in table.output and "overall" in table.output
    rows = list(csv.DictReader(io.StringIO(run("compare", a, wide, "--format", "csv", "--no-match-output").output)))
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "fc3", "overall"]
    assert all(r["mask_turnover"] == "" for r in rows)  # shapes differ: no turnover
    expected = nnstd(topo.load(a), topo.load(wide), match_output=False)
    assert float(rows[-1]["nnstd"]) == pytest.approx(expected.distance)


def test_compare_refuses_different_depths(tmp_path, checkpoints):
    (a, _, _), _ = checkpoints
    shallow = topo.save_checkpoint(_network(4, widths=(12, 4)), tmp_path / "shallow.safetensors")
    result = run("compare", a, shallow)
    assert result.exit_code == 1
    assert "n0.safetensors" in result.output and "shallow.safetensors" in result.output
    assert "Traceback" not in result.output


def test_distance_matrix_csv_file_and_formats(tmp_path, checkpoints):
    paths, wide = checkpoints
    out = tmp_path / "sub" / "matrix.csv"
    args = [*paths, wide]
    result = run("distance", *args, "-o", out, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    nets = [topo.load(p) for p in args]
    for i in range(4):
        for j in range(4):
            want = 0.0 if i == j else nnstd(nets[i], nets[j]).distance
            assert data["matrix"][i][j] == pytest.approx(want, abs=1e-15)
    with open(out, newline="") as handle:
        written = list(csv.reader(handle))
    assert written[0] == ["checkpoint", *map(str, args)]
    assert [float(v) for v in written[2][1:]] == data["matrix"][1]
    stdout_csv = run("distance", *args, "--format", "csv").output
    assert stdout_csv == out.read_text()
    table = run("distance", *args)
    assert table.exit_code == 0 and "#3" in table.output


def test_distance_needs_two_and_readable_checkpoints(tmp_path, checkpoints):
    paths, _ = checkpoints
    assert run("distance", paths[0]).exit_code == 2
    missing = run("distance", paths[0], tmp_path / "gone.safetensors")
    assert missing.exit_code == 1 and "gone.safetensors" in missing.output


def test_hubs_with_gradients(checkpoints):
    (a, _, _), wide = checkpoints
    data = json.loads(run("hubs", a, "--format", "json", "--fraction", "0.25").output)
    net = topo.load(a)
    for entry, layer in zip(data["layers"], net):
        hubs = sorted(h["neuron"] for h in entry["hubs"])
        assert hubs == hub_indices(layer, fraction=0.25).tolist()
        for hub in entry["hubs"]:
            assert hub["fan_in"] == layer.fan_in[hub["neuron"]]
            assert hub["grad_mean"] == pytest.approx(float(layer.stats["grad_mean"][hub["neuron"]]))
    table = run("hubs", wide, "--z", "1.0")
    assert table.exit_code == 0, table.output
    assert "grad_mean" not in table.output  # no gradients recorded in that checkpoint
    rows = list(csv.DictReader(io.StringIO(run("hubs", a, "--format", "csv").output)))
    assert set(rows[0]) == {"layer", "neuron", "fan_in", "grad_mean"}
    assert run("hubs", a, "--z", "1", "--fraction", "0.2").exit_code == 2


def test_commands_do_not_import_torch(checkpoints):
    (a, b, c), _ = checkpoints
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from topo_cli.main import main\n"
        f"paths = {[str(a), str(b), str(c)]!r}\n"
        "for args in (['compare', *paths[:2]], ['distance', *paths], ['hubs', paths[0]]):\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('torch' if loaded else 'no torch')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no torch"

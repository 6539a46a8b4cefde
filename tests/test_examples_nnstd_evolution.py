"""examples/nnstd_evolution.py --smoke: the README, CSVs and figures are written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import shared_data_dir

from example_scripts import load_example


def _study():
    return load_example("nnstd_evolution")


def test_smoke_writes_the_report(tmp_path):
    data = shared_data_dir()
    argv = ["--smoke", "--out", str(tmp_path)] + (["--data-dir", str(data)] if data else [])
    assert _study().main(argv) == 0
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# NNSTD evolution")
    assert "Command: `python examples/nnstd_evolution.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    # topo's own runs need only digits: always there, at epochs 0 and 1, 3 networks each
    for family in ("topo SET (digits)", "topo RigL (digits)"):
        mine = [r for r in rows if r["family"] == family]
        assert [int(r["epoch"]) for r in mine] == [0, 1]
        assert all(int(r["networks"]) == 3 for r in mine)
        assert all(0.0 <= float(r["nnstd_mean"]) <= 1.0 for r in mine)
        # the variants start apart, but close: 1% of the connections moved per step
        assert 0.0 < float(mine[0]["nnstd_mean"]) < float(mine[0]["random_reference"])
        assert f"| {family.split(' (')[0]}: networks from masks 1% apart drift apart, accuracy alike |" in readme
    for name in ("topo_set_nnstd_epoch000.png", "topo_rigl_nnstd_epoch001.png", "topo_nnstd_over_epochs.png"):
        assert (tmp_path / name).stat().st_size > 1000
    accuracy = list(csv.DictReader((tmp_path / "accuracy.csv").open()))
    assert sum(r["family"].startswith("topo ") for r in accuracy) == 6
    if data is not None and (Path(data) / "set-mlp").is_dir():
        published = [r for r in rows if r["family"].startswith("published SET")]
        assert [int(r["epoch"]) for r in published] == [0, 190]
        assert float(published[1]["nnstd_mean"]) > float(published[0]["nnstd_mean"])
        assert "| Their topologies drift far apart during training |" in readme
        assert (tmp_path / "set_mlp_nnstd_epoch190.png").is_file()


def test_dense_layer_counted_and_earlier_run_compared(tmp_path):
    """The paper's mean counts the dense output layer as distance 0; --previous compares runs."""
    runs = tmp_path / "runs"
    first, second = tmp_path / "first", tmp_path / "second"
    assert _study().main(["--smoke", "--out", str(first), "--runs", str(runs)]) == 0
    rows = [r for r in csv.DictReader((first / "results.csv").open()) if r["family"].startswith("topo ")]
    # smoke: two sparse hidden layers and the dense output layer, which matches at distance 0
    for r in rows:
        assert float(r["nnstd_mean_all_layers"]) == pytest.approx(float(r["nnstd_mean"]) * 2 / 3, rel=1e-4)
    (first / "about.txt").write_text("the first smoke run\n")
    assert _study().main(["--smoke", "--out", str(second), "--runs", str(runs), "--previous", str(first)]) == 0
    readme = (second / "README.md").read_text()
    assert "## Against the earlier run (the first smoke run)" in readme
    # the same finished runs are reused, so nothing moved
    for r in rows:
        assert f"| {r['family']} | {r['epoch']} | {float(r['nnstd_mean_all_layers']):.3f} | " \
               f"{float(r['nnstd_mean_all_layers']):.3f} | +0.000 |" in readme


def test_previous_folder_without_results_is_a_usage_error(tmp_path, capsys):
    assert _study().main(["--smoke", "--out", str(tmp_path / "out"), "--previous", str(tmp_path / "nothing")]) == 2
    assert "--previous" in capsys.readouterr().err

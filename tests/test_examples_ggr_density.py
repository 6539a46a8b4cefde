"""The ggr_density study's --smoke mode writes its claim table, CSV and figures."""

from __future__ import annotations

import csv

from example_scripts import load_example


def _study():
    return load_example("ggr_density")


def test_smoke_writes_claims_csv_and_figures(tmp_path):
    study = _study()
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]
    assert study.main(argv) == 0

    readme = (out / "README.md").read_text()
    assert readme.startswith("# ggr_density")
    assert "python examples/ggr_density.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    assert "What differs from the paper: only its abstract could be consulted here" in readme
    assert "GGR finds better subnetworks than fixed ERK densities at very high sparsity (digits)" in readme
    assert "| sparsity | rigl-erk | ggr-erk | ggr-uniform |" in readme
    for name in ("accuracy_digits.png", "densities_digits.png", "density_digits_ggr-uniform_sp95.png",
                 "density_digits_ggr-erk_sp95.png"):
        assert (out / name).stat().st_size > 1000, name

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["arm"] for r in rows] == ["rigl-erk", "ggr-erk", "ggr-uniform"]
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 for r in rows)
    by_arm = {r["arm"]: r for r in rows}
    layers = ("fc1", "fc2", "fc3")
    # every arm keeps the network at its sparsity; RigL keeps each layer's density, GGR need not
    for row in rows:
        assert abs(float(row["network_density"]) - 0.05) < 0.005
    rigl = by_arm["rigl-erk"]
    assert all(rigl[f"initial_density_{l}"] == rigl[f"final_density_{l}"] for l in layers)
    assert by_arm["ggr-uniform"]["density"] == "uniform"
    uniform = [float(by_arm["ggr-uniform"][f"initial_density_{l}"]) for l in layers]
    erk = [float(by_arm["ggr-erk"][f"initial_density_{l}"]) for l in layers]
    assert max(uniform) - min(uniform) < max(erk) - min(erk)

    assert study.main(argv) == 0
    assert "(0 runs trained, 3 reused" in (out / "README.md").read_text()


def test_datasets_outside_the_mode_are_a_usage_error(tmp_path, capsys):
    assert _study().main(["--smoke", "--out", str(tmp_path / "out"), "--datasets", "mnist"]) == 2
    assert "smoke mode has digits" in capsys.readouterr().err
    assert not (tmp_path / "out" / "README.md").exists()


def test_datasets_left_out_are_named(tmp_path):
    out = tmp_path / "out"
    assert _study().main(["--quick", "--out", str(out), "--datasets", "digits", "--seeds", "1", "--epochs", "1",
                          "--data-dir", str(tmp_path / "no-data")]) == 0
    readme = (out / "README.md").read_text()
    assert "covtype (not asked for: --datasets)" in readme
    with open(out / "results.csv", newline="") as handle:
        assert {r["dataset"] for r in csv.DictReader(handle)} == {"digits"}

"""The rigl_equilibrium study's --smoke mode writes its claim table, CSVs and figures."""

from __future__ import annotations

import csv

from example_scripts import load_example


def _study():
    return load_example("rigl_equilibrium")


def test_smoke_writes_claims_csv_and_figures(tmp_path):
    study = _study()
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]
    assert study.main(argv) == 0

    readme = (out / "README.md").read_text()
    assert readme.startswith("# rigl_equilibrium")
    assert "python examples/rigl_equilibrium.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    assert "converges to a characteristic fan-in distribution (digits)" in readme
    assert "Lognormal init matched to the equilibrium beats ERK (digits)" in readme
    assert "(EMNIST) | +0.43% | not run: EMNIST is not available offline | n/a |" in readme
    assert "## Drift on digits" in readme and "## Equilibrium initialisation against ERK on digits" in readme

    starts = ("random", "erk", "lognormal-2.0")
    for name in ("fanin_ridge_digits_erk.png", "fanin_by_start_digits_initial.png",
                 "fanin_by_start_digits_final.png", "starts_digits_fc1.png", "starts_digits_fc2.png",
                 "drift_digits_erk.png"):
        assert (out / name).stat().st_size > 1000, name

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    drift_rows = [r for r in rows if r["part"] == "drift"]
    assert [r["arm"] for r in drift_rows] == list(starts)
    compare = [r for r in rows if r["part"] == "compare"]
    assert sorted(r["arm"] for r in compare) == ["equilibrium", "erk"]
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 for r in rows)
    # the equilibrium arm started from the saved profile: lognormal fan-in with its CVs
    from topo.runs import read_profile
    from topo.checkpoint import read_run_config

    runs = out / "runs" / "smoke" / "digits"
    saved = read_profile(runs / "equilibrium_profile.json")
    assert set(saved) == {"fc1", "fc2", "fc3"}
    initial = read_run_config(runs / "compare-equilibrium-s1")["initial"]["profile_per_layer"]
    assert initial["fc1"] == {"profile": "lognormal", "cv": saved["fc1"]["cv"]}
    assert read_run_config(runs / "compare-erk-s1")["initial"]["profile_per_layer"] is None
    with open(out / "pairwise_w1.csv", newline="") as handle:
        pairs = list(csv.DictReader(handle))
    assert len(pairs) == 3 * 3  # three pairs of starts, three layers
    assert all(float(p["w1_initial"]) >= 0 and float(p["w1_final"]) >= 0 for p in pairs)

    # a second call reuses every run
    assert study.main(argv) == 0
    assert "(0 runs trained, 5 reused" in (out / "README.md").read_text()

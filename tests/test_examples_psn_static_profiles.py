"""The psn_static_profiles study's --smoke mode writes its README table, CSV and figures."""

from __future__ import annotations

import csv

from example_scripts import load_example


def _study():
    return load_example("psn_static_profiles")


def test_smoke_writes_table_csv_and_figures(tmp_path):
    from topo.training.profiles import PROFILES

    study = _study()
    out = tmp_path / "out"
    assert study.main(["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 0

    readme = (out / "README.md").read_text()
    assert readme.startswith("# psn_static_profiles")
    assert "python examples/psn_static_profiles.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    # one gap row per profile, and the dense accuracy row
    for profile in PROFILES:
        label = profile if profile in ("random", "constant") else f"{profile} (CV 1)"
        assert f"| {label} | " in readme, label
    assert "| dense accuracy (%) |" in readme
    assert "## Sparsity sweep on digits" in readme and "## CV sweep" in readme
    for figure in ("gap_per_profile.png", "sparsity_sweep.png", "cv_sweep.png"):
        assert (out / figure).stat().st_size > 1000, figure

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    main_rows = [r for r in rows if r["part"] == "main"]
    assert {r["profile"] for r in main_rows} == set(PROFILES) | {"dense"}
    assert all(r["status"] == "ok" and 0.0 <= float(r["test_acc"]) <= 1.0 for r in main_rows)
    dense = next(r for r in main_rows if r["profile"] == "dense")
    assert float(dense["density"]) == 1.0
    sparse = next(r for r in main_rows if r["profile"] == "lognormal")
    assert abs(float(sparse["density"]) - 0.1) < 0.01
    assert {r["part"] for r in rows} == {"main", "profiled-output", "sparsity", "cv"}
    # the main comparison keeps the output layer dense; the variant profiles it too
    assert {r["dense_output"] for r in main_rows if r["profile"] != "dense"} == {"True"}
    assert {r["dense_output"] for r in rows if r["part"] == "profiled-output"} == {"False"}
    assert "| profile | digits | digits, profiled output |" in readme
    # the runs went to the scratch folder under --out, and a second call reuses them all
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == len({r["run"] for r in rows})
    assert study.main(["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 0
    assert "0 runs trained" in (out / "README.md").read_text()

"""The gradient_hierarchy study's --smoke mode writes its README table, CSV and figures."""

from __future__ import annotations

import csv
import math

from example_scripts import load_example


def _study():
    return load_example("gradient_hierarchy")


def test_smoke_writes_table_csv_and_figures(tmp_path):
    study = _study()
    out = tmp_path / "out"
    assert study.main(["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 0

    readme = (out / "README.md").read_text()
    assert readme.startswith("# gradient_hierarchy")
    assert "python examples/gradient_hierarchy.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    lines = readme.splitlines()
    # each claim twice: at the final checkpoint and averaged over epochs
    for paper in ("| 2-5x |", "| about 1x |", "| r = 0.93 |"):
        assert len([line for line in lines if paper in line]) == 2, paper
    assert "| random | - |" in readme and "| lognormal | 2 |" in readme
    for figure in ("concentration_vs_cv.png", "gradients_structured.png", "gradients_random.png"):
        assert (out / figure).stat().st_size > 1000, figure

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # smoke: random, constant, 2 families x 2 CVs = 6 runs, 3 layers each
    assert len(rows) == 6 * 3
    assert {r["layer"] for r in rows} == {"fc1", "fc2", "fc3"}
    assert set(rows[0]) >= {"fan_in_cv", "concentration_final", "concentration_mean", "hierarchy_final"}
    for row in rows:
        assert math.isfinite(float(row["concentration_final"])) and float(row["concentration_final"]) >= 0
    high = [float(r["fan_in_cv"]) for r in rows if r["profile"] == "lognormal" and r["cv"] == "2.0" and r["layer"] == "fc1"]
    assert high and abs(high[0] - 2.0) < 0.1

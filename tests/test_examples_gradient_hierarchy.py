"""The gradient_hierarchy study's --smoke mode writes its README table, CSV and figures."""

from __future__ import annotations

import csv
import math

import pytest

from example_scripts import load_example


def _study():
    return load_example("gradient_hierarchy")


def test_smoke_writes_table_csv_and_figures(tmp_path):
    study = _study()
    out = tmp_path / "out"
    assert study.main(["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 0

    readme = (out / "README.md").read_text()
    assert readme.startswith("# gradient_hierarchy")
    assert readme.splitlines()[2] == "mode: smoke, seeds: 1, data: digits (1294 training rows), epochs: 1"
    assert "Verdict on r = 0.93" in readme and "hubs against the rest: " in readme and "hubs against all: " in readme
    assert "python examples/gradient_hierarchy.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    lines = readme.splitlines()
    # each claim four times: both definitions, at the final checkpoint and averaged over epochs
    for paper in ("| 2-5x |", "| about 1x |", "| r = 0.93 |"):
        claim_lines = [line for line in lines if paper in line]
        assert len(claim_lines) == 4, paper
        assert sum("hubs against the rest" in line for line in claim_lines) == 2
        assert sum("hubs against all" in line for line in claim_lines) == 2
    assert "| random | - |" in readme and "| lognormal | 2 |" in readme
    for figure in ("concentration_vs_cv.png", "gradients_structured.png", "gradients_random.png"):
        assert (out / figure).stat().st_size > 1000, figure

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # smoke: random, constant, 2 families x 2 CVs = 6 runs, 3 layers each
    assert len(rows) == 6 * 3
    assert {r["layer"] for r in rows} == {"fc1", "fc2", "fc3"}
    assert set(rows[0]) >= {"fan_in_cv", "concentration_rest_final", "concentration_rest_mean",
                            "concentration_all_final", "concentration_all_mean", "hierarchy_final"}
    for row in rows:
        rest, every = float(row["concentration_rest_final"]), float(row["concentration_all_final"])
        assert math.isfinite(every) and every >= 0
        # hubs are 10% of the layer: rest = 0.9 all / (1 - 0.1 all) when n is a multiple of 10
        # (64, 32 and 10 neurons: ceil(0.1 n) hubs, so use the exact share)
        n = {"fc1": 64, "fc2": 32, "fc3": 10}[row["layer"]]
        k = math.ceil(0.1 * n)
        assert rest == pytest.approx((n - k) * every / (n - k * every), rel=1e-4)
        assert (rest > every) == (every > 1) or abs(every - 1) < 1e-9
    high = [float(r["fan_in_cv"]) for r in rows if r["profile"] == "lognormal" and r["cv"] == "2.0" and r["layer"] == "fc1"]
    assert high and abs(high[0] - 2.0) < 0.1


def test_jobs_trains_in_workers_and_matches_one_at_a_time(tmp_path, capsys):
    """--jobs 2 trains the runs in worker processes; the results equal those of one process,
    and a second pass reuses every run."""
    study = _study()
    data = ["--data-dir", str(tmp_path / "no-data")]
    assert study.main(["--smoke", "--out", str(tmp_path / "one")] + data) == 0
    capsys.readouterr()
    assert study.main(["--smoke", "--out", str(tmp_path / "two"), "--jobs", "2"] + data) == 0
    printed = capsys.readouterr().out
    assert "trained (2 at a time)" in printed
    assert "(6 runs trained, 0 reused)" in (tmp_path / "two" / "README.md").read_text()

    def table(folder):
        with open(folder / "results.csv", newline="") as handle:
            return [{k: v for k, v in row.items() if k != "run"} for row in csv.DictReader(handle)]

    assert table(tmp_path / "two") == table(tmp_path / "one")
    assert study.main(["--smoke", "--out", str(tmp_path / "two"), "--jobs", "2"] + data) == 0
    assert "(0 runs trained, 6 reused)" in (tmp_path / "two" / "README.md").read_text()


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(SystemExit):
        _study().main(["--smoke", "--out", str(tmp_path / "out"), "--jobs", "0"])

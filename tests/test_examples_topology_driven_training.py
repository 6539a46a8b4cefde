"""The topology_driven_training study's --smoke mode: every arm trained, the table, claims, CSV and figures."""

from __future__ import annotations

import csv
import math

import pytest

from example_scripts import load_example


def _study():
    return load_example("topology_driven_training")


def test_smoke_trains_every_arm_and_writes_the_report(tmp_path, capsys):
    study = _study()
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]
    assert study.main(argv) == 0

    readme = (out / "README.md").read_text()
    assert readme.startswith("# Topology-driven sparse training (smoke mode)")
    assert "Incomplete" not in readme
    assert "| data set | density | method | n | test accuracy (95% CI) |" in readme
    assert "| data set | density | claim | measured | Welch p | verdict |" in readme
    assert "- digits, 10% of the connections: CHTs " in readme and "SRigL's largest final CV in a hidden layer is 0," in readme
    assert "points (95% interval " in readme  # two seeds a cell: Welch's interval of each difference
    for claim in ("CHTs beats the dense MLP", "RigL beats SET", "SRigL matches RigL",
                  "SRigL keeps fan-in CV 0 (hidden layers)", "ITOP: exploration rate tracks accuracy"):
        assert claim in readme, claim
    for name in ("accuracy_vs_density.png", "fanin_cv_trajectories.png", "exploration_vs_accuracy.png"):
        assert (out / name).stat().st_size > 1000, name

    with open(out / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    arms = ["dense", "static", "set", "rigl", "ggr", "srigl", "granet", "chts"]
    assert sorted(r["method"] for r in rows) == sorted(arms * 2)  # two seeds each
    for row in rows:
        assert 0.0 <= float(row["test_acc"]) <= 1.0
        rate = float(row["exploration_rate"])
        if row["method"] == "dense":
            assert rate == 1.0 and row["hidden_neurons_removed"] == "0"
        else:
            assert 0.0 < rate < 1.0
        if row["method"] == "static":
            assert rate == pytest.approx(0.1, abs=0.01)  # never changes: the share of the initial masks
        if row["method"] == "srigl":
            assert float(row["final_cv_L1"]) == 0.0 and float(row["final_cv_L2"]) == 0.0
    dynamic = [float(r["exploration_rate"]) for r in rows if r["method"] in ("rigl", "chts")]
    static = [float(r["exploration_rate"]) for r in rows if r["method"] == "static"]
    assert min(dynamic) > max(static)

    # runs are reused on a second call
    capsys.readouterr()
    assert study.main(argv) == 0
    log = capsys.readouterr().out
    assert "16 of 16 runs finished before; 0 to train" in log and ": trained," not in log
    assert (out / "README.md").read_text().split("## Results")[1] == readme.split("## Results")[1]


def test_parallel_compacted_runs_summarise_the_same(tmp_path, capsys):
    """--jobs trains in worker processes; --compact-runs keeps only what the summary needs."""
    study = _study()
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data"), "--seeds", "2",
            "--jobs", "2", "--compact-runs"]
    assert study.main(argv) == 0
    readme = (out / "README.md").read_text()
    assert "Incomplete" not in readme
    runs = sorted((out / "runs" / "smoke").glob("*/*"))
    assert len(runs) == 16
    for run in runs:
        assert (run / study.MEASURES).is_file() and (run / study.FINAL_MASKS).is_file()
        assert not (run / "checkpoints").exists() and not (run / "state").exists()
    # the final masks come back exactly: their nnz is the run's last recorded nnz
    import json
    for run in runs:
        last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
        final = study.load_measures(run)["final"]
        assert sum(layer.mask.nnz for layer in final) == last["nnz"]
    capsys.readouterr()
    assert study.main(argv) == 0  # summarised again from the measures alone
    assert "16 of 16 runs finished before; 0 to train" in capsys.readouterr().out
    assert (out / "README.md").read_text().split("## Results")[1] == readme.split("## Results")[1]
    assert "share of the sparse layers' possible connections" in readme and "measured before that rule" not in readme
    # a run measured before the rate left dense layers out is named as such, not silently mixed in
    plain = json.loads((runs[0] / study.MEASURES).read_text())
    assert plain.pop("exploration_layers")
    (runs[0] / study.MEASURES).write_text(json.dumps(plain))
    assert study.main(argv) == 0
    assert "1 of the 16 runs were measured before that rule" in (out / "README.md").read_text()


def test_smoke_needs_an_output_folder(tmp_path):
    study = _study()
    assert study.main(["--smoke"]) == 2


def test_summarise_only_reports_an_incomplete_study(tmp_path):
    study = _study()
    out = tmp_path / "partial"
    assert study.main(["--smoke", "--out", str(out), "--summarise-only"]) == 0
    assert "**Incomplete: 0 of 16 runs.**" in (out / "README.md").read_text()


def test_mean_ci_is_the_t_interval():
    study = _study()
    mean, half = study.mean_ci([1.0, 2.0, 3.0])
    # sd 1, n 3: t(0.975, 2) = 4.302653 times 1 / sqrt(3)
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(study.mean_ci([0.5])[1])


def test_restate_exploration_matches_the_sparse_layer_rule(tmp_path, monkeypatch, capsys):
    """Rates measured over every layer, restated from runs.csv alone, equal exploration()'s
    sparse-layer rates of the same runs (a 64-64-8-10 MLP at 30%: ERK leaves the output layer
    dense, and GraNet's 50% start the last two)."""
    import numpy as np

    from topo.analysis.exploration import exploration
    from topo.runs import load_run

    study = _study()
    make_mode = study.make_mode

    def small_mode(name):
        mode = make_mode(name)
        mode.hidden, mode.densities, mode.seeds = (64, 8), (0.3,), (1,)
        return mode

    monkeypatch.setattr(study, "make_mode", small_mode)
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]
    assert study.main(argv) == 0
    mode = small_mode("smoke")
    truth, old = {}, {}
    for arm in study.ARMS:
        density = 1.0 if arm == "dense" else 0.3
        topologies = load_run(study.run_dir_of(out / "runs" / "smoke", "digits", arm, density, 1))
        truth[arm] = exploration(topologies).rate[-1]
        old[arm] = exploration(topologies, include_dense=True).rate[-1]
    assert sum(not np.isclose(truth[a], old[a]) for a in study.METHODS) >= 6  # the rule matters here

    # put the tables back as an older version wrote them: every layer counted
    with open(out / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["exploration_rate"] = f"{old[row['method']]:.6g}"
    study.write_csv(out / "runs.csv", rows)
    readme = (out / "README.md").read_text().replace(study.EXPLORATION_RULE + "; ", study.OLD_EXPLORATION_RULE)
    assert study.OLD_EXPLORATION_RULE in readme
    claims_before = readme.split(study.CLAIMS_HEADER)[1].split("\n\n")[0]
    # the claims table is rebuilt from runs.csv: rows an older version wrote are replaced
    readme = readme.replace("| RigL beats SET |", "| RigL beats SET (an old row) |")
    (out / "README.md").write_text(readme)

    assert study.main(argv + ["--restate-exploration"]) == 0
    with open(out / "runs.csv", newline="") as handle:
        restated = list(csv.DictReader(handle))
    assert len(restated) == len(rows)
    for row in restated:
        assert float(row["exploration_rate"]) == pytest.approx(truth[row["method"]], abs=2e-6), row["method"]
        assert float(row["exploration_rate_all_layers"]) == pytest.approx(old[row["method"]], rel=1e-5)
    text = (out / "README.md").read_text()
    assert "Exploration rates restated over the sparse layers" in text
    assert study.EXPLORATION_RULE in text and study.OLD_EXPLORATION_RULE not in text
    assert f"| digits | 30% | rigl | 1 |" in text
    rigl_row = next(line for line in text.splitlines() if line.startswith("| digits | 30% | rigl |"))
    assert f"| {truth['rigl']:.4f} |" in rigl_row

    claims_after = text.split(study.CLAIMS_HEADER)[1].split("\n\n")[0]
    assert "(an old row)" not in text and "| RigL beats SET |" in claims_after
    assert claims_after.count("\n| digits | 30% |") == claims_before.count("\n| digits | 30% |")
    assert "| -" in claims_after or "| +" in claims_after

    # a second pass restates nothing and changes nothing
    before, readme_before = (out / "runs.csv").read_text(), text
    capsys.readouterr()
    assert study.main(argv + ["--restate-exploration"]) == 0
    assert "nothing restated" in capsys.readouterr().out
    assert (out / "runs.csv").read_text() == before
    assert (out / "README.md").read_text() == readme_before


def test_restate_exploration_without_runs_is_one_line(tmp_path, capsys):
    study = _study()
    argv = ["--smoke", "--out", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "no-data"), "--restate-exploration"]
    assert study.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runs.csv" in err

"""The psn_static_profiles study's --smoke mode writes its README table, CSV and figures."""

from __future__ import annotations

import csv

import pytest

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


def test_parts_datasets_and_profiles_select_what_runs(tmp_path):
    study = _study()
    full = study._modes()["full"]
    assert all(seeds == (0, 1, 2, 3, 4) for seeds in full.seeds.values())
    chosen = study.select(full, ("main",), ("mnist", "fashion-mnist"), ("lognormal", "random"))
    assert chosen.datasets == ("mnist", "fashion-mnist") and chosen.profiles == ("lognormal", "random")
    assert chosen.parts == ("main",) and chosen.output_variant is None
    assert chosen.sweep_dataset == "" and chosen.cv_dataset == ""
    assert study.select(full).parts == study.PARTS
    for bad in ({"parts": ("mains",)}, {"datasets": ("emnist",)}, {"profiles": ("zipf",)}):
        try:
            study.select(full, **bad)
        except ValueError as error:
            assert "unknown" in str(error)
        else:
            raise AssertionError(f"{bad} was accepted")

    out = tmp_path / "out"
    argv = ["--smoke", "--parts", "main", "--profiles", "random,lognormal", "--out", str(out),
            "--data-dir", str(tmp_path / "no-data")]
    assert study.main(argv) == 0
    readme = (out / "README.md").read_text()
    assert readme.splitlines()[2] == "mode: smoke, seeds: 1, data: digits (1294 training rows), epochs: digits 1"
    assert "Parts not run in this invocation (`--parts`): profiled-output, sparsity, cv." in readme
    assert "digits: not testable here (one seed: no interval)" in readme
    assert "## Sparsity sweep" not in readme and "## CV sweep" not in readme
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["part"] for r in rows} == {"main"}
    assert [r["profile"] for r in rows] == ["dense", "random", "lognormal"]


def test_gap_interval_and_verdict_by_hand():
    import math

    study = _study()
    rows = [{"dataset": "d", "profile": "dense", "sparsity": 0.0, "cv": "", "seed": s, "status": "ok", "test_acc": a}
            for s, a in enumerate((0.90, 0.91, 0.92))]
    rows += [{"dataset": "d", "profile": "random", "sparsity": 0.9, "cv": "", "seed": s, "status": "ok", "test_acc": a}
             for s, a in enumerate((0.89, 0.89, 0.89))]
    g = study.gap(rows, "d", sparsity=0.9, profile="random", cv="")
    # paired gaps 1, 2, 3 pp: mean 2, std 1, t(0.975, 2 dof) = 4.3027
    assert g["gap"] == pytest.approx(2.0) and g["std"] == pytest.approx(1.0)
    assert g["half"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert g["low"] == pytest.approx(2.0 - g["half"]) and g["high"] == pytest.approx(2.0 + g["half"])

    def entry(gap, half):
        return {"gap": gap, "half": half, "low": gap - half, "high": gap + half, "dense": 98.0, "status": "ok"}

    assert study.interval_verdict({"random": entry(0.3, 0.2), "lognormal": entry(0.1, 0.4)}).startswith("reproduced")
    assert study.interval_verdict({"random": entry(0.3, 0.2), "lognormal": entry(1.5, 0.4)}).startswith("not reproduced")
    assert study.interval_verdict({"random": entry(0.5, 0.3)}).startswith("not decided")
    assert study.interval_verdict({"random": entry(0.5, math.nan)}).startswith("not testable")


def test_finished_only_reports_without_training(tmp_path):
    study = _study()
    out = tmp_path / "out"
    base = ["--smoke", "--parts", "main", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]
    # train dense and random only, then ask for lognormal too without training it
    assert study.main(base + ["--profiles", "random"]) == 0
    assert study.main(base + ["--profiles", "random,lognormal", "--finished-only"]) == 0
    readme = (out / "README.md").read_text()
    assert "Runs not finished when this README was written (`--finished-only`): 1 of 3 (digits lognormal)" in readme
    assert "| lognormal (CV 1) | - |" in readme
    assert "(0 runs trained, 2 reused" in readme
    with open(out / "results.csv", newline="") as handle:
        rows = {r["profile"]: r for r in csv.DictReader(handle)}
    assert rows["lognormal"]["status"] == "not run" and rows["random"]["status"] == "ok"
    assert len(list((out / "runs").iterdir())) == 2


def test_cost_note_names_only_the_parts_not_run():
    study = load_example("psn_static_profiles")
    note = study.not_run_full(["cv"])
    assert "CV sweep" in note and "sparsity sweep" not in note and "profiled-output" not in note
    full = study._modes()["full"]
    runs = len(full.cv_families) * len(full.cv_values) * len(full.cv_seeds)
    hours = runs * full.epochs["mnist"] * study.MNIST_EPOCH_SECONDS / 3600
    assert f"about {hours:.1f} CPU-hours" in note
    assert "3 families x 6 CVs x 5 seeds x 30 MNIST epochs" in note
    assert study.not_run_full([]) == ""


def test_cost_note_of_a_mode_trimmed_by_parts():
    """--parts cv alone leaves the sparsity sweep out of the mode; its cost is still that of the full mode's."""
    study = load_example("psn_static_profiles")
    full = study._modes()["full"]
    trimmed = study.select(full, parts=("cv",))
    assert trimmed.sweep_dataset == ""
    note = study.not_run_full(["sparsity", "main"], trimmed)
    runs = len(full.sweep_sparsities) * len(full.sweep_profiles) * len(full.sweep_seeds)
    hours = runs * full.epochs["mnist"] * study.MNIST_EPOCH_SECONDS / 3600
    assert "sparsity sweep" in note and f"about {hours:.1f} CPU-hours" in note


def test_sweep_reading_states_the_trend_from_the_cells():
    study = load_example("psn_static_profiles")

    def cell(gap):
        return {"gap": gap, "low": gap - 0.1, "high": gap + 0.1, "status": "ok"}

    sweep = {"random": [cell(0.4), cell(1.0), cell(6.0)], "constant": [cell(0.5), cell(0.9), None]}
    cv_sweep = {"lognormal": [cell(0.5), cell(0.7), cell(0.9)], "step": [cell(0.5), cell(0.6), cell(0.7)]}
    lines = study.sweep_reading(sweep, [0.8, 0.95, 0.99], "mnist", cv_sweep, [0.0, 1.0, 2.0], "mnist")
    assert "random +0.40 at 80.0%" in lines[0] and "random +6.00 at 99.0% (+5.90 to +6.10)" in lines[0]
    assert "constant +0.90 at 95.0%" in lines[0]  # its last buildable cell
    assert "every profile lies within 0.6 pp at 80% only." in lines[0]
    # slope over (0, .5), (1, .7), (2, .9), (0, .5), (1, .6), (2, .7): 0.15 pp per unit CV
    assert "by +0.15 pp per unit CV (least squares over 6 cells, CV 0-2)" in lines[1]
    assert "lognormal at CV 2 (+0.90, +0.80 to +1.00)" in lines[1]
    assert study.sweep_reading({}, [], "", {}, [], "") == []

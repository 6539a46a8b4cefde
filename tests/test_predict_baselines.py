"""Model choice by cross-validation, the density-only and shuffled-label baselines, the R² < 0 warning."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from topo.predict import choose_model, cross_validate, density_columns, fit_predictor, load_predictor, predict, save_predictor
from topo_cli.main import main


def _table(target, n=80, seed=0):
    """Feature rows of a two-layer network whose densities and fan-in CVs vary independently."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        rows.append({
            "density": float(rng.uniform(0.05, 0.5)),
            "fc1.density": float(rng.uniform(0.05, 0.5)),
            "fc2.density": float(rng.uniform(0.05, 0.5)),
            "fc1.fan_in_cv": float(rng.uniform(0.0, 2.0)),
            "fc2.fan_in_cv": float(rng.uniform(0.0, 2.0)),
            "fc1.fan_in_max": float(rng.uniform(1.0, 30.0)),
        })
    y = np.array([target(row, rng) for row in rows], dtype=np.float64)
    return rows, y


def _density_target(row, rng):
    return 0.5 + row["fc1.density"] - 0.5 * row["fc2.density"] + rng.normal(scale=0.005)


def _structure_target(row, rng):
    return 0.5 + 0.3 * row["fc1.fan_in_cv"] + rng.normal(scale=0.01)


def _noise_target(row, rng):
    return float(rng.normal())


def test_density_columns_prefer_layer_densities():
    assert density_columns(["density", "fc1.density", "x", "fc2.density"]) == [1, 3]
    assert density_columns(["density", "x"]) == [0]
    assert density_columns(["x", "y"]) == []


def test_structure_adds_nothing_when_the_target_depends_only_on_density():
    rows, y = _table(_density_target)
    predictor = fit_predictor(rows, y, folds=5, n_estimators=50)
    assert predictor.cv["density"].r2 > 0.9
    assert predictor.best_r2 > 0.9
    assert abs(predictor.structure_gain) < 0.05
    assert predictor.cv["shuffled"].r2 < 0.1
    assert predictor.warnings == []


def test_structure_adds_when_the_target_depends_on_a_structural_feature():
    rows, y = _table(_structure_target)
    predictor = fit_predictor(rows, y, folds=5, n_estimators=50)
    assert predictor.cv["density"].r2 < 0.15
    assert predictor.best_r2 > 0.9
    assert predictor.structure_gain > 0.75
    assert predictor.structure_gain == pytest.approx(predictor.best_r2 - predictor.cv["density"].r2)
    assert predictor.cv["shuffled"].r2 < 0.1


def test_a_noise_target_is_warned_about():
    rows, y = _table(_noise_target, n=40)
    predictor = fit_predictor(rows, y, folds=5, n_estimators=50)
    assert predictor.best_r2 < 0
    assert len(predictor.warnings) == 1 and "below 0" in predictor.warnings[0]


def test_the_model_with_the_better_cv_score_is_chosen_and_used():
    # a linear target: ridge must cross-validate better than boosting and be used
    rows, y = _table(_structure_target)
    predictor = fit_predictor(rows, y, folds=5, n_estimators=50)
    assert predictor.cv["linear"].r2 > predictor.cv["boosting"].r2
    assert predictor.chosen == "linear"
    np.testing.assert_allclose(predict(predictor, rows[:5]), predictor.baseline.predict(np.array(
        [[row[name] for name in predictor.feature_names] for row in rows[:5]])))
    # a threshold on one feature: boosting must win and be used
    rows, y = _table(lambda row, rng: float(row["fc1.fan_in_cv"] > 1.0) + float(row["fc2.fan_in_cv"] > 1.0))
    predictor = fit_predictor(rows, y, folds=5, n_estimators=50)
    assert predictor.cv["boosting"].r2 > predictor.cv["linear"].r2
    assert predictor.chosen == "boosting"
    np.testing.assert_allclose(predict(predictor, rows[:5]), predictor.model.predict(np.array(
        [[row[name] for name in predictor.feature_names] for row in rows[:5]])))


def test_choose_model_never_picks_a_worse_score():
    from topo.predict import CVScore

    def score(r2):
        return CVScore(r2=r2, fold_r2=[], predictions=np.zeros(1))

    assert choose_model({"boosting": score(-0.43), "linear": score(0.44)}) == "linear"
    assert choose_model({"boosting": score(0.5), "linear": score(0.44)}) == "boosting"
    assert choose_model({"boosting": score(0.3), "linear": score(0.3)}) == "linear"
    assert choose_model({"boosting": score(0.3), "linear": score(float("nan"))}) == "boosting"


def test_without_a_varying_density_the_baseline_is_the_training_mean():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    y = X[:, 0] + rng.normal(scale=0.01, size=30)
    scores = cross_validate(X, y, folds=5, n_estimators=20, feature_names=["fc1.fan_in_cv", "fc2.fan_in_cv"])
    # out-of-fold means of the other folds' targets: always a little below 0
    predictions = np.empty_like(y)
    from sklearn.model_selection import KFold

    for train, test in KFold(n_splits=5, shuffle=True, random_state=0).split(X):
        predictions[test] = y[train].mean()
    expected = 1 - np.sum((y - predictions) ** 2) / np.sum((y - y.mean()) ** 2)
    assert scores["density"].r2 == pytest.approx(expected)
    assert "density" not in cross_validate(X, y, folds=5, n_estimators=20)


def test_choice_and_baselines_survive_the_model_file(tmp_path):
    rows, y = _table(_structure_target, n=40)
    predictor = fit_predictor(rows, y, folds=4, n_estimators=20)
    path = save_predictor(predictor, tmp_path / "m.skops")
    loaded = load_predictor(path)
    assert loaded.chosen == predictor.chosen == "linear"
    assert loaded.structure_gain == pytest.approx(predictor.structure_gain)
    assert set(loaded.cv) == {"boosting", "linear", "shuffled", "density"}


def _sweep(folder, noise):
    from test_predict import fake_sweep

    results = fake_sweep(folder, n=20)
    if noise:
        with open(results, newline="") as handle:
            table = list(csv.DictReader(handle))
        rng = np.random.default_rng(3)
        for row in table:
            if row["status"] == "done":
                row["final_test_acc"] = str(float(rng.normal()))
        with open(results, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return results


def test_cli_fit_reports_baselines_and_structure_gain(tmp_path):
    results = _sweep(tmp_path, noise=False)
    model = tmp_path / "m.skops"
    result = CliRunner().invoke(main, ["predict", "fit", str(results), "-o", str(model), "--folds", "4", "--trees", "30"])
    assert result.exit_code == 0, result.output
    assert "layer densities only" in result.output and "labels shuffled" in result.output
    assert "(chosen)" in result.output and "structure adds" in result.output
    assert "warning" not in result.output
    result = CliRunner().invoke(main, ["predict", "fit", str(results), "-o", str(model), "--folds", "4", "--trees",
                                       "30", "--format", "json"])
    payload = json.loads(result.output)
    assert payload["chosen"] in ("boosting", "linear") and payload["warnings"] == []
    assert payload["cv"][payload["chosen"]]["r2"] >= max(payload["cv"]["boosting"]["r2"], payload["cv"]["linear"]["r2"])
    # accuracy is planted in fc1's density: structure adds little over density
    assert payload["cv"]["density"]["r2"] > 0.5 and payload["structure_gain"] < 0.2


def test_cli_warns_on_stderr_for_a_noise_target(tmp_path):
    results = _sweep(tmp_path, noise=True)
    model = tmp_path / "m.skops"
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "fit", str(results), "-o", str(model), "--folds", "4", "--trees", "30"])
    assert result.exit_code == 0, result.output
    assert "warning: the best cross-validated R² is" in result.stderr
    result = runner.invoke(main, ["predict", str(model), str(tmp_path / "runs" / "run00")])
    assert result.exit_code == 0, result.output
    assert "below 0" in result.stderr

"""The structure-to-performance predictor: planted relations, controls, model files, sweep tables."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest

from topo.errors import TopoError
from topo.predict import (
    LEGACY_MODEL_HEADER,
    cross_validate,
    feature_matrix,
    fit_predictor,
    load_predictor,
    predict,
    resolve_target,
    save_predictor,
    sweep_training_data,
)


def _planted(n=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        rows.append({f"x{i}": float(v) for i, v in enumerate(rng.normal(size=6))} | {"constant": 1.0})
    y = np.array([np.tanh(r["x0"]) + 0.5 * r["x1"] ** 2 for r in rows]) + rng.normal(scale=0.05, size=n)
    return rows, y


def test_predictor_recovers_a_planted_relation_and_the_control_does_not():
    rows, y = _planted(n=90)
    predictor = fit_predictor(rows, y, target="acc", folds=5, seed=0, n_estimators=60)
    assert "constant" not in predictor.feature_names  # constant columns carry nothing
    assert predictor.cv["boosting"].r2 > 0.8
    assert predictor.cv["shuffled"].r2 < 0.1
    assert predictor.cv["linear"].r2 < predictor.cv["boosting"].r2  # x1 enters squared
    top_two = set(list(predictor.importances)[:2])
    assert top_two == {"x0", "x1"}
    assert predictor.cv["boosting"].predictions.shape == y.shape


def test_cross_validate_is_seeded_and_checks_inputs():
    rows, y = _planted(n=40)
    X, names = feature_matrix(rows)
    a = cross_validate(X, y, folds=4, seed=3, n_estimators=20)
    b = cross_validate(X, y, folds=4, seed=3, n_estimators=20)
    assert a["boosting"].r2 == b["boosting"].r2 and len(a["linear"].fold_r2) == 4
    with pytest.raises(TopoError):
        cross_validate(X[:3], y[:3])
    with pytest.raises(TopoError):
        cross_validate(X, y[:-1])


def test_feature_matrix_columns():
    rows = [{"a": 1.0, "b": 2.0, "c": float("nan")}, {"a": 3.0, "b": 2.0, "c": float("inf")}, {"a": 2.0}]
    X, names = feature_matrix(rows)
    assert names == ["a"]  # b is constant, c missing in the last row
    assert X[:, 0].tolist() == [1.0, 3.0, 2.0]
    X, names = feature_matrix(rows[:2], ["a", "c"])
    assert np.isnan(X[:, 1]).all()
    with pytest.raises(TopoError, match="lacks"):
        feature_matrix(rows, ["a", "b"])


def test_model_file_round_trip_and_refusal(tmp_path):
    import zipfile

    rows, y = _planted(n=30)
    predictor = fit_predictor(rows, y, folds=3, n_estimators=20)
    path = save_predictor(predictor, tmp_path / "model.skops")
    with zipfile.ZipFile(path) as archive:  # a skops zip: JSON and .npy members, no pickle
        names = archive.namelist()
    assert "schema.json" in names and all(n == "schema.json" or n.endswith(".npy") for n in names)
    loaded = load_predictor(path)
    assert loaded.feature_names == predictor.feature_names and loaded.topo_version
    assert loaded.importances == predictor.importances and loaded.cv["boosting"].r2 == predictor.cv["boosting"].r2
    np.testing.assert_array_equal(loaded.cv["linear"].predictions, predictor.cv["linear"].predictions)
    np.testing.assert_allclose(predict(loaded, rows[:5]), predict(predictor, rows[:5]))
    np.testing.assert_allclose(predict(loaded, rows[:5], baseline=True), predictor.baseline.predict(feature_matrix(rows[:5], predictor.feature_names)[0]))

    import joblib
    import skops.io as sio

    plain = tmp_path / "plain.joblib"
    joblib.dump({"kind": "topo-structure-predictor"}, plain)
    pickled = tmp_path / "evil.pkl"
    pickled.write_bytes(pickle.dumps({"x": 1}))
    for bad in (plain, pickled):
        with pytest.raises(TopoError, match="not a topo model bundle"):
            load_predictor(bad)
    old = tmp_path / "old.joblib"
    old.write_bytes(LEGACY_MODEL_HEADER + pickle.dumps({"kind": "topo-structure-predictor"}))
    with pytest.raises(TopoError, match="written by an older topo.*re-run topo predict fit"):
        load_predictor(old)
    corrupt = tmp_path / "corrupt.skops"
    corrupt.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(TopoError, match="corrupt"):
        load_predictor(corrupt)
    wrong_kind = tmp_path / "wrong.skops"
    sio.dump({"kind": "something-else"}, wrong_kind)
    with pytest.raises(TopoError, match="wrong kind"):
        load_predictor(wrong_kind)
    with pytest.raises(TopoError, match="no such"):
        load_predictor(tmp_path / "missing.skops")


def test_resolve_target():
    columns = ["run_id", "final_test_acc", "best_val_acc", "run_dir"]
    assert resolve_target(columns, "test_acc") == "final_test_acc"
    assert resolve_target(columns, "final_test_acc") == "final_test_acc"
    assert resolve_target(columns, "best_val_acc") == "best_val_acc"
    with pytest.raises(TopoError, match="final_test_acc"):
        resolve_target(columns, "loss")


def fake_sweep(folder, n=24, seed=0):
    """A sweep results table whose runs' accuracy is planted in their first layer's density."""
    from topo.checkpoint import save_checkpoint, write_run_config
    from topo.topology import Topology

    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n):
        density = float(rng.uniform(0.05, 0.6))
        masks = [rng.random((12, 16)) < density, rng.random((4, 12)) < 0.5]
        run = folder / "runs" / f"run{index:02d}"
        write_run_config(run, {"kind": "topo-train-run"})
        save_checkpoint(Topology.from_masks([m.copy() for m in masks], names=["fc1", "fc2"]), run / "checkpoints" / "epoch_0000.safetensors", epoch=0)
        save_checkpoint(Topology.from_masks(masks, names=["fc1", "fc2"]), run / "checkpoints" / "epoch_0002.safetensors", epoch=2)
        accuracy = 0.3 + density + rng.normal(scale=0.01)
        rows.append({"run_id": f"run{index:02d}", "name": f"r{index}", "status": "done", "final_val_acc": accuracy,
                     "final_test_acc": accuracy, "run_dir": str(run)})
    rows.append({"run_id": "broken", "name": "b", "status": "error", "final_val_acc": "", "final_test_acc": "", "run_dir": ""})
    results = folder / "results.csv"
    with open(results, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return results


def test_sweep_training_data_caches_features(tmp_path):
    results = fake_sweep(tmp_path)
    data = sweep_training_data(results, target="test_acc")
    assert data.target_column == "final_test_acc"
    assert len(data.rows) == 24 and data.computed == 24
    assert data.skipped == ["broken: status error"]
    assert data.cache_path == tmp_path / "results.features.csv" and data.cache_path.is_file()
    again = sweep_training_data(results, target="test_acc")
    assert again.computed == 0
    for a, b in zip(data.rows, again.rows):
        assert a == pytest.approx(b, nan_ok=True)
    predictor = fit_predictor(data.rows, data.y, folds=4, n_estimators=50)
    assert predictor.cv["boosting"].r2 > 0.5 and predictor.cv["linear"].r2 > 0.5
    assert predictor.cv["shuffled"].r2 < 0.3
    first = sweep_training_data(results, checkpoint="first", cache=False)
    assert first.cache_path is None and first.computed == 24


def test_sweep_training_data_errors(tmp_path):
    results = fake_sweep(tmp_path, n=4)
    with pytest.raises(TopoError, match="no column"):
        sweep_training_data(results, target="loss")
    with pytest.raises(TopoError, match="no such"):
        sweep_training_data(tmp_path / "nothing.csv")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(TopoError, match="not a topo sweep"):
        sweep_training_data(other)

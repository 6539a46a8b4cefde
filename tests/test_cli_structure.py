"""``topo features`` and ``topo predict`` through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from click.testing import CliRunner

from topo_cli.main import main
from test_predict import fake_sweep


def test_features_formats(tmp_path):
    from topo.checkpoint import save_checkpoint
    from topo.topology import Topology

    rng = np.random.default_rng(0)
    paths = []
    for index in range(2):
        topology = Topology.from_masks([rng.random((8, 10)) < 0.4, rng.random((3, 8)) < 0.5], names=["fc1", "fc2"])
        paths.append(str(save_checkpoint(topology, tmp_path / f"net{index}.safetensors")))
    runner = CliRunner()
    result = runner.invoke(main, ["features", *paths, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["checkpoint"] for r in rows] == paths
    assert "log10_paths" in rows[0] and "fc1.spectral_radius" in rows[0]
    result = runner.invoke(main, ["features", paths[0], "--format", "json", "--no-graph"])
    payload = json.loads(result.output)
    assert payload[0]["features"]["betweenness_mean"] is None and payload[0]["features"]["nnz"] > 0
    result = runner.invoke(main, ["features", *paths])
    assert result.exit_code == 0 and "spectral_radius_max" in result.output and "net1" in result.output
    result = runner.invoke(main, ["features", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "Error:" in result.output


def test_predict_fit_then_predict(tmp_path):
    results = fake_sweep(tmp_path, n=16)
    model = tmp_path / "model.skops"
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "fit", str(results), "--target", "test_acc", "-o", str(model), "--folds", "4", "--trees", "30"])
    assert result.exit_code == 0, result.output
    assert "gradient boosting" in result.output and "ridge" in result.output and "shuffled" in result.output
    assert "feature importances" in result.output and model.is_file()
    assert (tmp_path / "results.features.csv").is_file()
    result = runner.invoke(main, ["predict", "fit", str(results), "-o", str(model), "--folds", "4", "--trees", "30", "--format", "json"])
    payload = json.loads(result.output)
    assert payload["target"] == "final_test_acc" and payload["n_runs"] == 16 and set(payload["cv"]) == {"boosting", "linear", "shuffled", "density"}
    run = str(tmp_path / "runs" / "run03")
    short = runner.invoke(main, ["predict", str(model), run, "--format", "json"])
    explicit = runner.invoke(main, ["predict", "run", str(model), run, "--format", "json"])
    assert short.exit_code == 0, short.output
    assert json.loads(short.output) == json.loads(explicit.output)
    assert 0.0 < json.loads(short.output)[0]["predicted_final_test_acc"] < 1.5


def test_predict_refuses_foreign_model_files(tmp_path):
    import pickle

    bad = tmp_path / "model.skops"
    bad.write_bytes(pickle.dumps({"kind": "topo-structure-predictor"}))
    result = CliRunner().invoke(main, ["predict", str(bad), str(tmp_path)])
    assert result.exit_code == 1
    assert "not a topo model bundle" in result.output and "Traceback" not in result.output
    help_text = " ".join(CliRunner().invoke(main, ["predict", "--help"]).output.split())
    assert "cannot run code" in help_text and "fit" in help_text

"""The structure-predicts-performance study's --smoke mode runs end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_study_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("structure_study", REPO / "examples" / "structure_predicts_performance.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    results = tmp_path / "report"
    assert study.main(["--smoke", "--out", str(tmp_path / "sweep"), "--results", str(results)]) == 0
    readme = (results / "README.md").read_text()
    assert readme.startswith("# Structure predicts performance")
    assert "--smoke" in readme and "gradient boosting" in readme and "## Verdict" in readme
    assert (results / "predicted_vs_measured.png").stat().st_size > 10_000
    payload = json.loads((results / "study.json").read_text())
    assert payload["used"] == payload["networks"] == 8
    assert set(payload["last"]["cv"]) == {"boosting", "linear", "shuffled", "density"}


def test_study_on_another_dataset_needs_its_data_folder(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("structure_study", REPO / "examples" / "structure_predicts_performance.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    missing = tmp_path / "no-data"
    argv = ["--smoke", "--dataset", "mnist", "--data-dir", str(missing), "--out", str(tmp_path / "sweep"),
            "--results", str(tmp_path / "report")]
    assert study.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "mnist" in err
    assert not (tmp_path / "report" / "README.md").exists()
    assert study.sweep_spec("full", "mnist")["base"]["dataset"] == "mnist"
    assert study.sweep_spec("full", "mnist")["sweep"]["name"] == "structure_full_mnist"
    assert study.sweep_spec("full")["sweep"]["name"] == "structure_full"  # digits keeps its folder


def test_digits_readme_points_at_the_other_datasets(tmp_path):
    spec = importlib.util.spec_from_file_location("structure_study", REPO / "examples" / "structure_predicts_performance.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    assert study.other_datasets(tmp_path, "digits") == []
    (tmp_path / "mnist").mkdir()
    payload = {"mode": "full", "networks": 300,
               "last": {"cv": {"boosting": {"r2": 0.84}, "linear": {"r2": 0.82}, "shuffled": {"r2": 0.9}},
                        "density_only": {"boosting": {"r2": 0.40}, "linear": {"r2": 0.31}}}}
    (tmp_path / "mnist" / "study.json").write_text(json.dumps(payload))
    (tmp_path / "covtype").mkdir()
    (tmp_path / "covtype" / "study.json").write_text("{torn")  # a damaged summary is passed over
    lines = study.other_datasets(tmp_path, "digits")
    assert lines[0] == ("The same study on mnist: [mnist/README.md](mnist/README.md) (mode full, 300 networks; "
                        "final checkpoint, boosting: R² 0.84, density alone 0.40).")
    assert lines[1:] == [""]

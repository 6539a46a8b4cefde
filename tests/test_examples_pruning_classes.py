"""examples/pruning_classes.py --smoke: the README table, CSV and figures are written."""

from __future__ import annotations

import csv


from example_scripts import load_example


def _study():
    return load_example("pruning_classes")


def test_smoke_writes_the_report(tmp_path):
    assert _study().main(["--smoke", "--out", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# Magnitude-pruning classes")
    assert "Command: `python examples/pruning_classes.py --smoke" in readme
    assert "| claim | paper | topo (setting) | agrees? |" in readme
    for claim in ("Class-blinded pruning to 80% with retraining reaches 97.5% on MNIST",
                  "Class-uniform is significantly worse than class-blinded"):
        assert f"| {claim} |" in readme
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert sorted(r["variant"] for r in rows) == ["class-blinded", "class-distribution", "class-uniform", "unpruned"]
    by = {r["variant"]: r for r in rows}
    assert float(by["unpruned"]["density"]) == 1.0
    for variant in ("class-blinded", "class-uniform", "class-distribution"):
        assert abs(float(by[variant]["density"]) - 0.2) < 0.01  # 80% of all weights pruned
        assert int(by[variant]["epochs"]) == 2  # 1 dense + 1 retraining epoch
        # the dense phase is the unpruned run's: same seed, same trajectory until pruning
        assert by[variant]["test_acc_before_pruning"] == by["unpruned"]["test_acc_before_pruning"]
    # class-uniform prunes every layer to the same density
    assert abs(float(by["class-uniform"]["density_fc1"]) - float(by["class-uniform"]["density_fc2"])) < 0.01
    for name in ("accuracy_curves.png", "layer_densities.png"):
        assert (tmp_path / name).stat().st_size > 1000

"""Smoke test of examples/own_loop.py (sparsify + monitor in a plain loop, then topo report)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_loop.py"


def test_own_loop_trains_saves_a_run_and_reports(tmp_path):
    spec = importlib.util.spec_from_file_location("own_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = tmp_path / "run"
    # digits (8x8, bundled with scikit-learn) keeps it quick; MNIST is the example's default
    code = module.main(["--out", str(run), "--dataset", "digits", "--epochs", "2", "--limit", "320",
                        "--update-every", "3", "--monitor-every", "2"])
    assert code == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["epoch_0000.safetensors", "epoch_0001.safetensors", "epoch_0002.safetensors"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[-1]["mask_updates"] > 0 and "val_acc" in records[-1]
    config = json.loads((run / "run.json").read_text())
    assert config["method"] == "rigl" and config["dataset"] == "digits"
    assert config["sparse_layers"] == ["conv2", "conv3", "fc1"]
    report = (run / "report.html").read_text()
    assert "<html" in report.lower() and "conv3" in report


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Use topo in your own training script"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    names = sorted(p.name for p in (tmp_path / "runs" / "mine" / "checkpoints").iterdir())
    assert names == [f"epoch_{e:04d}.safetensors" for e in range(6)]
    assert (tmp_path / "mine.pt").stat().st_size > 0

"""``topo hubs`` reports each layer's gradient concentration by both definitions."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from topo import Layer, Topology, save_checkpoint
from topo_cli.main import main


def _checkpoint(tmp_path):
    # fc1: 20 neurons, fan-in 20 - i, so the top 10% (2 hubs) are neurons 0 and 1; fc2 has no statistic
    fan_in = 20 - np.arange(20)
    mask = np.arange(30)[None, :] < fan_in[:, None]
    grad = np.ones(20)
    grad[:2] = [4.0, 2.0]
    fc1 = Layer.from_mask("fc1", mask, stats={"grad_mean": grad.astype(np.float32)})
    fc2 = Layer.from_mask("fc2", np.ones((5, 20), dtype=bool))
    return save_checkpoint(Topology([fc1, fc2]), tmp_path / "net.safetensors"), grad


def test_hubs_reports_concentration_against_rest_and_all(tmp_path):
    path, grad = _checkpoint(tmp_path)
    # by hand: hubs' mean 3; the rest's mean 1; all neurons' mean (6 + 18) / 20 = 1.2
    rest, every = 3.0 / 1.0, 3.0 / grad.mean()
    assert every == 2.5
    result = CliRunner().invoke(main, ["hubs", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    layers = {entry["name"]: entry for entry in json.loads(result.output)["layers"]}
    assert layers["fc1"]["concentration_rest"] == rest
    assert layers["fc1"]["concentration_all"] == every
    assert layers["fc2"]["concentration_rest"] is None and layers["fc2"]["concentration_all"] is None

    table = CliRunner().invoke(main, ["hubs", str(path)], terminal_width=400)
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert "hubs against the rest / hubs against all" in text
    assert "fc1 3.00 / 2.50" in text


def test_hubs_by_z_leaves_concentration_out(tmp_path):
    path, _ = _checkpoint(tmp_path)
    result = CliRunner().invoke(main, ["hubs", str(path), "--z", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    fc1 = json.loads(result.output)["layers"][0]
    assert fc1["concentration_rest"] is None and fc1["concentration_all"] is None

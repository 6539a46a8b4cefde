"""Exploration rate (ITOP) and neuron activity over a run, worked by hand; drift and report show it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from topo.analysis.exploration import active_widths, exploration, present_neurons
from topo.errors import TopoError
from topo.topology import Topology
from topo.training.config import TrainConfig
from topo.training.trainer import train
from topo_cli.main import main


def _net(first, second, epoch):
    return Topology.from_masks([np.array(first), np.array(second)], names=["fc1", "fc2"], info={"epoch": epoch})


@pytest.fixture
def three():
    return [
        _net([[1, 0], [0, 1], [0, 0]], [[1, 1, 0]], 0),
        _net([[0, 1], [0, 1], [0, 0]], [[1, 1, 0]], 1),
        _net([[0, 1], [0, 0], [1, 0]], [[1, 0, 1]], 2),
    ]


def test_rates_by_hand(three):
    result = exploration(three)
    # fc1 ever-active: {00, 11} -> + {01} -> + {20}; fc2: {00, 01} -> same -> + {02}
    np.testing.assert_allclose(result.layer_rate, [[2 / 6, 2 / 3], [3 / 6, 2 / 3], [4 / 6, 1.0]])
    np.testing.assert_allclose(result.rate, [4 / 9, 5 / 9, 7 / 9])
    assert result.final_rate == pytest.approx(7 / 9)
    np.testing.assert_allclose(result.density[:, 0], [2 / 6, 2 / 6, 2 / 6])
    np.testing.assert_allclose(result.explored_fan_in[0], [1.0, 0.5, 0.5])
    assert result.labels == ["0", "1", "2"]


def test_neuron_activity_by_hand(three):
    # fc1 neuron 2 has no input and no output at epochs 0 and 1 (removed), neuron 1 at epoch 2
    assert [p.tolist() for p in present_neurons(three[2])] == [[True, False, True], [True]]
    result = exploration(three)
    assert result.active_width[:, 0].tolist() == [2, 2, 2] and result.width == [3, 1]
    np.testing.assert_allclose(result.active_share[0], [1.0, 2 / 3, 1 / 3])
    assert result.neurons_removed == [1, 0]
    rows = {row["layer"]: row for row in result.layer_rows()}
    assert rows["fc1"]["neurons_removed"] == 1 and rows["fc1"]["always_present"] == pytest.approx(1 / 3)
    assert active_widths(three[0]) == [2, 1]
    neurons = result.to_dict()["neurons"]["fc1"]
    assert neurons["active_share"] == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert neurons["explored_fan_in"] == [1.0, 0.5, 0.5]


def test_checkpoints_of_other_networks_are_refused(three):
    other = Topology.from_masks([np.ones((4, 2)), np.ones((1, 4))], names=["fc1", "fc2"], info={"path": "odd.safetensors"})
    with pytest.raises(TopoError, match="odd.safetensors has layers"):
        exploration([three[0], other])
    with pytest.raises(TopoError, match="at least one checkpoint"):
        exploration([])


@pytest.fixture(scope="module")
def srigl_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("explore") / "run"
    config = TrainConfig(dataset="digits", hidden=(32, 16), epochs=3, threads=1, device="cpu", method="srigl",
                         update_every=3, drop_fraction=0.5, ablation_threshold=0.9, seed=1)
    train(config, run_dir=run)
    return run


def test_drift_reports_exploration_and_removed_neurons(srigl_run):
    from topo.checkpoint import list_checkpoints, load_checkpoint

    runner = CliRunner()
    data = json.loads(runner.invoke(main, ["drift", str(srigl_run), "--format", "json"]).stdout)
    last = load_checkpoint(list_checkpoints(srigl_run)[-1])
    fc1, fc2 = last["fc1"], last["fc2"]
    # a neuron of fc1 is removed when it has no input in fc1 and no output in fc2
    removed = int(((fc1.fan_in == 0) & (fc2.fan_out == 0)).sum())
    layers = {row["layer"]: row for row in data["exploration"]["layers"]}
    assert layers["fc1"]["neurons_removed"] == removed and removed > 0
    first = load_checkpoint(list_checkpoints(srigl_run)[0])
    assert data["exploration"]["rate"][0] == pytest.approx(first.density)
    assert data["exploration"]["final_rate"] > first.density
    assert data["checkpoints"][-1]["active"] is not None
    text = runner.invoke(main, ["drift", str(srigl_run)]).stdout
    assert "per layer: exploration" in text and "removed" in text


def test_report_has_the_exploration_figure_and_table(srigl_run, tmp_path):
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(srigl_run), "-o", str(out), "--dpi", "40"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    section = text[text.index('id="run1-exploration"'):text.index('id="run1-density"')]
    assert "<img" in section and "neurons removed" in section


def test_cv_over_present_neurons_and_nnstd_says_what_it_compares(srigl_run):
    from topo.analysis.degree import fan_in_cv
    from topo.analysis.distance import nnstd
    from topo.checkpoint import list_checkpoints, load_checkpoint

    first, last = (load_checkpoint(p) for p in (list_checkpoints(srigl_run)[0], list_checkpoints(srigl_run)[-1]))
    # srigl: every present neuron has the same fan-in, the removed ones have none
    assert fan_in_cv(last, present_only=True)[:2] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert fan_in_cv(last)[0] > 0
    result = nnstd(first, last)
    assert result.active_widths[0] == (32, active_widths(last)[0]) and active_widths(last)[0] < 32
    assert exploration([first, last]).final_cv_present[0] == pytest.approx(0.0, abs=1e-12)
    out = CliRunner().invoke(main, ["compare", str(list_checkpoints(srigl_run)[0]), str(list_checkpoints(srigl_run)[-1])])
    assert "active B" in out.stdout and f"{active_widths(last)[0]}/32" in out.stdout


def test_plot_exploration_writes_the_figure(srigl_run, tmp_path):
    out = tmp_path / "explore.svg"
    result = CliRunner().invoke(main, ["plot", "exploration", str(srigl_run), "-o", str(out), "--layers", "fc1"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "exploration rate" in text and "active width / width" in text


def test_fanin_figure_leaves_removed_neurons_out(srigl_run):
    from topo.plotting import fanin_figure

    fig = fanin_figure(srigl_run)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "fc1 (present neurons)" in titles and "fc3" in titles
    # every present neuron of a srigl layer has the same fan-in: each row's CV reads 0
    labels = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text().startswith("CV")]
    assert labels and all(text == "CV 0.00" for text in labels)


def test_sweep_rows_carry_exploration_and_removed_neurons(tmp_path):
    from topo.checkpoint import list_checkpoints, load_checkpoint
    from topo.sweep import run_sweep

    spec = tmp_path / "s.toml"
    spec.write_text(
        '[base]\ndataset = "digits"\nhidden = [32, 16]\nepochs = 2\nupdate_every = 3\ndrop_fraction = 0.5\n'
        'threads = 1\ndevice = "cpu"\nseed = 1\nablation_threshold = 0.9\n[grid]\nmethod = ["static", "srigl"]\n'
    )
    result = run_sweep(spec, out=tmp_path / "out", workers=1)
    static, srigl = result.rows
    run = [load_checkpoint(p) for p in list_checkpoints(static["run_dir"])]
    assert static["exploration_rate"] == pytest.approx(run[0].density)  # static masks never move
    assert static["neurons_removed_fc1"] == 0
    run = [load_checkpoint(p) for p in list_checkpoints(srigl["run_dir"])]
    assert srigl["exploration_rate"] == pytest.approx(exploration(run).final_rate)
    assert srigl["exploration_rate"] > run[0].density
    assert [srigl[f"neurons_removed_{n}"] for n in ("fc1", "fc2", "fc3")] == exploration(run).neurons_removed
    again = run_sweep(spec, out=tmp_path / "out", workers=1)  # read back from the summaries
    assert [r["exploration_rate"] for r in again.rows] == [static["exploration_rate"], srigl["exploration_rate"]]


def test_dense_layers_are_left_out_of_the_network_rate(three):
    """A layer dense at the first checkpoint has nothing to explore; it would dilute R."""
    dense_out = Topology.from_masks([np.ones((2, 1))], names=["out"]).layers
    run = [Topology([*t.layers, *dense_out], info=t.info) for t in three]
    result = exploration(run)
    np.testing.assert_allclose(result.rate, [4 / 9, 5 / 9, 7 / 9])  # as without the dense layer
    assert result.counted == ["fc1", "fc2"] and result.dense == ["out"]
    # --include-dense: its 2 connections, always active, join numerator and denominator
    np.testing.assert_allclose(exploration(run, include_dense=True).rate, [6 / 11, 7 / 11, 9 / 11])
    assert exploration(run, include_dense=True).counted == ["fc1", "fc2", "out"]
    # a network of dense layers only keeps its rate (1), not an empty sum
    assert exploration([Topology(dense_out)]).rate.tolist() == [1.0]

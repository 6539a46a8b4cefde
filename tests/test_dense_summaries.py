"""Network-level summaries that dense layers do not skew; hub overlap undefined where fan-ins tie.

The case from the issue: ERK at 90% sparsity on MNIST shapes keeps the output layer
dense. Its ten fan-ins tie, so it has no hub set; averaged in as a perfect 1.0 it
lifted the overall hub overlap far above the hidden layers'. Expected values are
computed here with numpy from the masks, never with topo.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from topo import Layer, Topology, save_checkpoint
from topo.analysis.degree import degree_summary, is_dense, summary_layers
from topo.analysis.distance import nnstd
from topo.analysis.hubs import fan_ins_tie, hub_listing, hub_overlap, hub_persistence
from topo.training.densities import layer_budgets
from topo_cli.main import main

MNIST = [(300, 784), (100, 300), (10, 100)]  # [out, in]
NAMES = ["fc1", "fc2", "fc3"]
FRACTION = 0.1


def _erk_masks(seed: int) -> list[np.ndarray]:
    budgets = layer_budgets(MNIST, 0.9, rule="erk")
    rng = np.random.default_rng(seed)
    masks = []
    for (n_out, n_in), budget in zip(MNIST, budgets):
        flat = np.zeros(n_out * n_in, dtype=bool)
        flat[rng.choice(n_out * n_in, size=budget, replace=False)] = True
        masks.append(flat.reshape(n_out, n_in))
    return masks


def _network(masks) -> Topology:
    return Topology([Layer.from_mask(name, mask) for name, mask in zip(NAMES, masks)])


def _hubs(mask: np.ndarray, fraction: float = FRACTION) -> set[int]:
    """Top ``ceil(fraction * n)`` neurons by fan-in, ties to the lower index."""
    fan_in = mask.sum(axis=1)
    count = max(1, math.ceil(round(fraction * fan_in.size, 9)))
    order = np.lexsort((np.arange(fan_in.size), -fan_in))
    return set(order[:count].tolist())


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b)


def _cv(mask: np.ndarray) -> float:
    fan_in = mask.sum(axis=1).astype(np.float64)
    return float(fan_in.std() / fan_in.mean())


@pytest.fixture(scope="module")
def erk_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("erk")
    masks_a, masks_b = _erk_masks(1), _erk_masks(2)
    path_a = save_checkpoint(_network(masks_a), folder / "a.safetensors", epoch=0)
    path_b = save_checkpoint(_network(masks_b), folder / "b.safetensors", epoch=0)
    return masks_a, masks_b, str(path_a), str(path_b)


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_erk_on_mnist_keeps_the_output_layer_dense(erk_pair):
    masks_a, masks_b, _, _ = erk_pair
    assert [bool(m.all()) for m in masks_a] == [False, False, True]
    assert [bool(m.all()) for m in masks_b] == [False, False, True]


def test_compare_overall_hub_overlap_is_the_mean_over_the_hidden_layers(erk_pair):
    masks_a, masks_b, a, b = erk_pair
    expected = [_jaccard(_hubs(ma), _hubs(mb)) for ma, mb in zip(masks_a[:2], masks_b[:2])]
    data = json.loads(_invoke("compare", a, b, "--format", "json").output)
    layers = data["layers"]
    assert [row["hub_overlap_index"] for row in layers[:2]] == pytest.approx(expected)
    assert layers[2]["hub_overlap_index"] is None and layers[2]["hub_overlap_matched"] is None
    assert "tie" in layers[2]["hub_note"]
    assert [row["dense_a"] for row in layers] == [False, False, True]
    overall = data["overall"]
    assert overall["hub_overlap_index"] == pytest.approx(np.mean(expected))
    # the dense layer counted as a perfect 1.0 would give this instead
    assert overall["hub_overlap_index"] != pytest.approx((sum(expected) + 1.0) / 3)
    matched = [row["hub_overlap_matched"] for row in layers[:2]]
    assert overall["hub_overlap_matched"] == pytest.approx(np.mean(matched))
    assert overall["fan_in_cv_a"] == pytest.approx(np.mean([_cv(m) for m in masks_a[:2]]))
    assert overall["fan_in_cv_b"] == pytest.approx(np.mean([_cv(m) for m in masks_b[:2]]))
    layer_nnstd = [row["nnstd"] for row in layers]
    assert layer_nnstd[2] == 0.0  # two dense layers of one shape
    assert overall["nnstd"] == pytest.approx(np.mean(layer_nnstd[:2])) and data["nnstd"] == overall["nnstd"]
    assert data["overall_excludes"] == ["fc3"] and data["include_dense"] is False


def test_compare_include_dense_reports_n_a_not_one(erk_pair):
    masks_a, masks_b, a, b = erk_pair
    data = json.loads(_invoke("compare", a, b, "--format", "json", "--include-dense").output)
    layers, overall = data["layers"], data["overall"]
    assert layers[2]["hub_overlap_index"] is None and layers[2]["hub_overlap_index"] != 1.0
    expected = [_jaccard(_hubs(ma), _hubs(mb)) for ma, mb in zip(masks_a[:2], masks_b[:2])]
    assert overall["hub_overlap_index"] == pytest.approx(np.mean(expected))  # n/a is not averaged in
    assert overall["nnstd"] == pytest.approx(np.mean([row["nnstd"] for row in layers]))
    assert overall["fan_in_cv_a"] == pytest.approx(np.mean([_cv(m) for m in masks_a[:2]] + [0.0]))
    table = _invoke("compare", a, b, "--include-dense").output
    line = next(text for text in table.splitlines() if "fc3 (dense)" in text)
    assert "n/a" in line
    assert "no hub set" in " ".join(table.split())
    default = " ".join(_invoke("compare", a, b).output.split())
    assert "leaving out dense fc3" in default


def test_distance_leaves_out_layers_dense_in_both(erk_pair):
    masks_a, masks_b, a, b = erk_pair
    net_a, net_b = _network(masks_a), _network(masks_b)
    full = nnstd(net_a, net_b, include_dense=True)
    sparse = nnstd(net_a, net_b)
    assert sparse.dense_layers == [False, False, True]
    assert full.distance == pytest.approx(np.mean(full.layer_distances))
    assert sparse.distance == pytest.approx(np.mean(full.layer_distances[:2]))
    data = json.loads(_invoke("distance", a, b, "--format", "json").output)
    assert data["matrix"][0][1] == pytest.approx(sparse.distance)
    data = json.loads(_invoke("distance", a, b, "--format", "json", "--include-dense").output)
    assert data["matrix"][0][1] == pytest.approx(full.distance)


def test_hubs_lists_no_hubs_for_a_dense_layer_unless_asked(erk_pair):
    masks_a, _, a, _ = erk_pair
    data = json.loads(_invoke("hubs", a, "--format", "json").output)
    fc3 = data["layers"][2]
    assert fc3["dense"] and fc3["no_hub_set"] and fc3["hubs"] == [] and fc3["n_hubs"] == 0
    assert sorted(h["neuron"] for h in data["layers"][0]["hubs"]) == sorted(_hubs(masks_a[0]))
    data = json.loads(_invoke("hubs", a, "--format", "json", "--include-dense").output)
    assert [h["neuron"] for h in data["layers"][2]["hubs"]] == [0]  # ceil(0.1 * 10) pick, by index
    table = " ".join(_invoke("hubs", a).output.split())
    assert "fc3 (dense) 0/10" in table and "no hub set" in table


def test_inspect_mean_cv_over_sparse_layers(erk_pair):
    masks_a, _, a, _ = erk_pair
    data = json.loads(_invoke("inspect", a, "--format", "json").output)
    assert data["summary"]["fan_in_cv_mean"] == pytest.approx(np.mean([_cv(m) for m in masks_a[:2]]))
    assert data["summary"]["dense_layers"] == ["fc3"]
    data = json.loads(_invoke("inspect", a, "--format", "json", "--include-dense").output)
    assert data["summary"]["fan_in_cv_mean"] == pytest.approx(np.mean([_cv(m) for m in masks_a[:2]] + [0.0]))
    assert "dense fc3 left out" in " ".join(_invoke("inspect", a).output.split())


def test_drift_counts_converged_sparse_layers(erk_pair, tmp_path):
    _, _, a, b = erk_pair
    data = json.loads(_invoke("drift", a, b, "--format", "json").output)
    assert data["summary_layers"] == ["fc1", "fc2"] and [row["dense"] for row in data["layers"]] == [False, False, True]
    converged = sum(row["converged_at"] is not None for row in data["layers"][:2])
    assert data["converged_layers"] == converged
    data = json.loads(_invoke("drift", a, b, "--format", "json", "--include-dense").output)
    assert data["summary_layers"] == NAMES
    assert data["converged_layers"] == converged + 1  # the dense layer is at W1 0 throughout


def test_tied_fan_ins_have_no_hub_set():
    rng = np.random.default_rng(0)
    sparse = Layer.from_mask("fc1", rng.random((20, 30)) < 0.3)
    dense = Layer.from_mask("out", np.ones((5, 20), dtype=bool))
    constant = Layer.from_mask("const", np.eye(6, dtype=bool))  # sparse, fan-in 1 everywhere
    assert fan_ins_tie(dense) and fan_ins_tie(constant) and not fan_ins_tie(sparse)
    assert is_dense(dense) and not is_dense(constant) and not is_dense(sparse)
    net = Topology([sparse, dense])
    overlap = hub_overlap(net, net)
    assert overlap[0] == 1.0 and math.isnan(overlap[1])
    persistence = hub_persistence([net, net])
    assert persistence[:, 0].tolist() == [1.0, 1.0] and np.isnan(persistence[:, 1]).all()
    listing = hub_listing(net)
    assert listing[1].dense and listing[1].tied and listing[1].hubs == []
    assert len(hub_listing(net, include_dense=True)[1].hubs) == 1
    # a constant fan-in layer that is not dense is still listed, marked as tied
    tied = hub_listing(Topology([constant]))[0]
    assert tied.tied and not tied.dense and len(tied.hubs) == 1


def test_degree_summary_and_summary_layers():
    assert summary_layers([False, True, False]) == [0, 2]
    assert summary_layers([False, True], include_dense=True) == [0, 1]
    assert summary_layers([True, True]) == [0, 1]  # a dense network is summarised as it is
    masks = _erk_masks(3)
    net = _network(masks)
    summary = degree_summary(net)
    assert summary.fan_in_cv_mean == pytest.approx(np.mean([_cv(m) for m in masks[:2]]))
    assert summary.fan_in_cv_max == pytest.approx(max(_cv(m) for m in masks[:2]))
    assert summary.dense_layers == ("fc3",)
    assert degree_summary(net, include_dense=True).fan_in_cv_mean == pytest.approx(
        np.mean([_cv(m) for m in masks[:2]] + [0.0])
    )


def test_report_summary_over_sparse_layers(erk_pair, tmp_path):
    from topo.report import build_report, run_summary
    from topo.runs import load_run_data

    masks_a, masks_b, _, _ = erk_pair
    run = tmp_path / "run"
    from topo.checkpoint import checkpoint_name, write_run_config

    write_run_config(run, {"config": {"method": "static"}})
    for epoch, masks in enumerate((masks_a, masks_b)):
        save_checkpoint(_network(masks), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    data = load_run_data(run)
    summary = run_summary(data)
    assert summary["dense_layers"] == ["fc3"]
    assert summary["fan_in_cv_mean"] == pytest.approx(np.mean([_cv(m) for m in masks_b[:2]]))
    assert summary["converged"].endswith("/2")
    with_dense = run_summary(data, include_dense=True)
    assert with_dense["fan_in_cv_mean"] == pytest.approx(np.mean([_cv(m) for m in masks_b[:2]] + [0.0]))
    assert with_dense["converged"].endswith("/3")
    page = build_report([data], dpi=30)
    assert "over the sparse layers" in page and "dense layers (fc3" in page


def test_audit_cv_over_sparse_layers(erk_pair):
    from topo.audit import audit_path

    masks_a, _, a, _ = erk_pair
    hidden = [_cv(m) for m in masks_a[:2]]
    row = audit_path(a)
    assert row.fan_in_cv_mean == pytest.approx(np.mean(hidden)) and row.fan_in_cv_max == pytest.approx(max(hidden))
    assert audit_path(a, include_dense=True).fan_in_cv_mean == pytest.approx(np.mean(hidden + [0.0]))
    rows = json.loads(_invoke("audit", a, "--format", "json", "--include-dense").output)
    assert rows[0]["fan_in_cv_mean"] == pytest.approx(np.mean(hidden + [0.0]))

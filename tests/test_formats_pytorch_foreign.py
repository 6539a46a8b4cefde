"""PyTorch checkpoints of other libraries, and network order from shapes.

The fixtures in tests/fixtures/pytorch/ were written by torch, NNI, Torch-Pruning
and transformers (see make_fixtures.py there); truth.npz holds what those libraries
held in memory, computed with torch / numpy when the fixtures were written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from topo.analysis.structure import count_paths
from topo.formats import load

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pytorch"
TRUTH = np.load(FIXTURES / "truth.npz")


def _mask(layer) -> np.ndarray:
    return layer.mask.toarray()


def test_whole_pickled_mlp_with_prune_hooks():
    net = load(FIXTURES / "mlp_whole.pt")
    assert net.names == ["0", "2", "4"]
    for layer in net:
        np.testing.assert_array_equal(_mask(layer), TRUTH[f"mlp_whole.{layer.name}"])
    np.testing.assert_allclose(net[0].weight, TRUTH["mlp_whole.0.weight"])
    assert not any(layer.standalone for layer in net)
    assert any("whole pickled module" in w and "Sequential" in w for w in net.info["warnings"])


@pytest.mark.parametrize("name, inferred", [("cnn_grouped_whole.pt", False), ("cnn_grouped_state.pt", True)])
def test_grouped_convolution_is_block_diagonal(name, inferred):
    net = load(FIXTURES / name)
    assert net.names == ["stem", "grouped", "head"]
    grouped = net[1]
    assert grouped.shape == (8, 8) and grouped.info["groups"] == 2
    np.testing.assert_array_equal(_mask(grouped), TRUTH["cnn.grouped"])
    assert grouped.density == pytest.approx(TRUTH["cnn.grouped"].mean())
    assert grouped.density < 0.5  # two 4x4 blocks, one link removed
    np.testing.assert_array_equal(_mask(net[0]), TRUTH["cnn.stem"])
    np.testing.assert_array_equal(_mask(net[2]), TRUTH["cnn.head"])
    assert not any(layer.standalone for layer in net)
    said = any("groups inferred" in w for w in net.info["warnings"])
    assert said == inferred  # the whole module records its groups; the state dict does not


def test_layers_declared_out_of_order_are_chained_by_shape():
    net = load(FIXTURES / "out_of_order.pt")
    assert net.names == list(TRUTH["out_of_order.order"])
    assert not any(layer.standalone for layer in net)
    assert count_paths(net, exact=True) == int(TRUTH["out_of_order.paths"])
    assert net.info["order"].startswith("inferred from shapes")
    assert any("reordered" in w for w in net.info["warnings"])


def test_nni_wrapped_model_and_saved_masks():
    net = load(FIXTURES / "nni_wrapped.pt")
    assert net.names == ["0", "2", "4"]
    for layer in net:
        np.testing.assert_array_equal(_mask(layer), TRUTH[f"nni.{layer.name}"])
        assert layer.density == pytest.approx(0.5, abs=0.07)
    assert any("NNI" in w for w in net.info["warnings"])
    masks = load(FIXTURES / "nni_masks.pth")  # NNI's defaultdict of masks, saved on its own
    assert masks.names == ["0", "2", "4"]
    for layer in masks:
        np.testing.assert_array_equal(_mask(layer), TRUTH[f"nni.{layer.name}"])


def test_rigl_torch_backward_masks_win_over_zero_weights():
    net = load(FIXTURES / "rigl_torch.pth")
    assert net.names == ["0", "2", "4"] and net.epoch == 3
    assert net[0].density == 1.0  # rigl-torch's first layer: no mask, dense
    for layer in net[1:]:
        truth = TRUTH[f"rigl.{layer.name}"]
        np.testing.assert_array_equal(_mask(layer), truth)
        assert truth[0].any() and not layer.weight[0].any()  # kept connections with zero weights


def test_torch_pruning_structurally_pruned_widths():
    net = load(FIXTURES / "torch_pruning_whole.pt")
    assert [list(layer.shape) for layer in net] == TRUTH["tp.shapes"].tolist()
    assert not any(layer.standalone for layer in net)


def test_gpt2_token_table_before_position_table():
    net = load(FIXTURES / "gpt2_tiny")
    assert net.names[:2] == ["wte", "wpe"]
    assert net[0].shape == (int(TRUTH["gpt2.wte_shape"][1]), int(TRUTH["gpt2.wte_shape"][0]))


def test_gpt2_state_dict_conv1d_is_read_in_out():
    net = load(FIXTURES / "gpt2_tiny_state.pt")
    assert net.names[:2] == ["wte", "wpe"]
    c_fc = net[net.names.index("h.0.mlp.c_fc")]
    np.testing.assert_array_equal(_mask(c_fc), TRUTH["gpt2.c_fc_out_in"])
    assert c_fc.shape == (32, 8)
    assert net.info["order"] == "the format's own order"
    assert any("Conv1D" in w for w in net.info["warnings"])


# -- order and groups from shapes, on state dicts torch writes here ------------------------
torch = pytest.importorskip("torch")


def _save(tmp_path, state, name="net.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_ambiguous_order_is_said(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {
        "c.weight": torch.randn(5, 20, generator=gen),
        "a.weight": torch.randn(20, 10, generator=gen),
        "b2.weight": torch.randn(20, 20, generator=gen),
        "b1.weight": torch.randn(20, 20, generator=gen),
    }
    net = load(_save(tmp_path, state))
    assert net.names == ["a", "b2", "b1", "c"]  # b1 / b2 interchangeable: declared order kept between them
    assert any("ambiguous" in w for w in net.info["warnings"])


def test_no_reorder_when_declared_order_chains_or_no_order_does(tmp_path):
    gen = torch.Generator().manual_seed(1)
    chained = {"x.weight": torch.randn(8, 4, generator=gen), "y.weight": torch.randn(8, 8, generator=gen),
               "z.weight": torch.randn(4, 8, generator=gen)}
    net = load(_save(tmp_path, chained, "chained.pt"))
    assert net.names == ["x", "y", "z"] and net.info["order"] == "the format's own order"
    # A residual block: the downsample takes the block's input, no order chains them all.
    block = {"conv1.weight": torch.randn(8, 3, 3, 3, generator=gen),
             "conv2.weight": torch.randn(8, 8, 3, 3, generator=gen),
             "downsample.0.weight": torch.randn(8, 4, 1, 1, generator=gen)}
    net = load(_save(tmp_path, block, "block.pt"))
    assert net.names == ["conv1", "conv2", "downsample.0"]
    assert net[2].info["groups"] == 1 and net[2].standalone  # not taken for a 2-group convolution
    assert not any("reordered" in w for w in net.info["warnings"])


def test_depthwise_convolution_inferred(tmp_path):
    gen = torch.Generator().manual_seed(2)
    state = {"stem.weight": torch.randn(6, 3, 3, 3, generator=gen),
             "dw.weight": torch.randn(6, 1, 3, 3, generator=gen),
             "pw.weight": torch.randn(4, 6, 1, 1, generator=gen)}
    net = load(_save(tmp_path, state))
    assert net[1].info["groups"] == 6
    np.testing.assert_array_equal(_mask(net[1]), np.eye(6, dtype=bool))
    assert not any(layer.standalone for layer in net)


def test_stored_mask_named_like_sparseml_wins(tmp_path):
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 5, generator=gen)  # no zero weights
    mask = torch.rand(6, 5, generator=gen) < 0.4
    net = load(_save(tmp_path, {"fc.weight": weight, "fc.weight_mask": mask.float()}))
    np.testing.assert_array_equal(_mask(net[0]), mask.numpy())


# -- requested sparsity ----------------------------------------------------------------
def _audit_layers(path: Path) -> dict:
    import json

    from click.testing import CliRunner

    from topo_cli.main import main

    result = CliRunner().invoke(main, ["audit", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    return {layer["name"]: layer for layer in json.loads(result.output)[0]["layers"]}


def test_nni_config_list_in_the_checkpoint_is_requested_sparsity():
    import json

    recorded = json.loads((FIXTURES / "nni_config.json").read_text())
    # The truth from the config list NNI was given: Linear layers 0.75, except "4" at 0.5.
    (types_entry, names_entry) = recorded["config_list"]
    truth = {name: types_entry["sparse_ratio"] for name in ("0", "2")} | {"4": names_entry["sparse_ratio"]}
    assert types_entry["exclude_op_names"] == names_entry["op_names"] == ["4"]
    net = load(FIXTURES / "nni_config.pt")
    assert net.info["requested_sparsity"] == truth
    rows = _audit_layers(FIXTURES / "nni_config.pt")
    for name, target in truth.items():
        assert rows[name]["requested_sparsity"] == target
        assert rows[name]["sparsity"] == pytest.approx(recorded["achieved"][name])
    from click.testing import CliRunner

    from topo_cli.main import main

    table = CliRunner().invoke(main, ["inspect", str(FIXTURES / "nni_config.pt")]).output
    assert "requested" in table and "0.75" in table
    # A checkpoint without a config list asks for nothing.
    assert "requested_sparsity" not in load(FIXTURES / "nni_wrapped.pt").info


def _recipe_truth(text: str) -> dict[str, float]:
    """Parameter name or ``re:`` pattern -> final_sparsity, read from the recipe's lines."""
    import re

    truth = {}
    for block in text.split("- !")[1:]:
        final = re.search(r"final_sparsity:\s*([0-9.]+)", block)
        params = re.search(r"params:\s*\[(.*)\]", block)
        if final and params:
            for param in re.findall(r"'([^']+)'|\"([^\"]+)\"", params.group(1)):
                truth[param[0] or param[1]] = float(final.group(1))
    return truth


@pytest.mark.parametrize("name", ["sparseml/model.pth", "sparseml_recipe_inside.pth"])
def test_sparseml_recipe_beside_or_inside_is_requested_sparsity(name):
    import re

    pytest.importorskip("yaml")
    torch = pytest.importorskip("torch")
    path = FIXTURES / name
    text = (FIXTURES / "sparseml" / "recipe.yaml").read_text()
    patterns = _recipe_truth(text)
    assert patterns == {r"re:hidden\.[0-9]+\.weight": 0.85, "inp.weight": 0.6}
    state = torch.load(path, weights_only=True)
    if "recipe" in state:
        assert state["recipe"] == text
        state = state["state_dict"]
    truth = {}
    for key in (k for k in state if k.endswith(".weight")):
        for pattern, target in patterns.items():
            if (pattern.startswith("re:") and re.fullmatch(pattern[3:], key)) or pattern == key:
                truth[key[: -len(".weight")]] = target
    assert truth == {"inp": 0.6, "hidden.0": 0.85, "hidden.1": 0.85}  # "out" is only held constant
    assert load(path).info["requested_sparsity"] == truth
    rows = _audit_layers(path)
    for layer, target in truth.items():
        weight = state[f"{layer}.weight"].numpy()
        assert rows[layer]["requested_sparsity"] == target
        assert rows[layer]["sparsity"] == pytest.approx(1 - np.count_nonzero(weight) / weight.size)
    assert rows["out"]["requested_sparsity"] is None


def test_recipe_that_is_not_yaml_or_names_nothing_asks_for_nothing(tmp_path):
    import shutil

    pytest.importorskip("yaml")
    shutil.copy(FIXTURES / "sparseml" / "model.pth", tmp_path / "model.pth")
    (tmp_path / "recipe.yaml").write_text("modifiers: [ !GMPruningModifier {final_sparsity: 0.9\n")
    assert "requested_sparsity" not in load(tmp_path / "model.pth").info
    (tmp_path / "recipe.yaml").write_text(
        "a: &a [!GMPruningModifier {final_sparsity: 0.9, params: ['nothing.weight']}]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d]\n"
    )
    assert "requested_sparsity" not in load(tmp_path / "model.pth").info


def test_recipe_without_pyyaml_is_said_not_read(tmp_path, monkeypatch):
    import builtins
    import shutil

    shutil.copy(FIXTURES / "sparseml" / "model.pth", tmp_path / "model.pth")
    shutil.copy(FIXTURES / "sparseml" / "recipe.yaml", tmp_path / "recipe.yaml")
    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("no yaml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    net = load(tmp_path / "model.pth")
    assert "requested_sparsity" not in net.info
    assert any("PyYAML is not installed" in w for w in net.info["warnings"])

"""Live models, state dicts and file objects read as Topologies (topo.integrations.live)."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.utils.prune as prune  # noqa: E402

import topo  # noqa: E402
from topo.errors import TopoError  # noqa: E402


def _mlp(seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def test_mlp_layers_shapes_masks_and_weights_match_the_tensors():
    net = _mlp()
    with torch.no_grad():
        net[2].weight[net[2].weight.abs() < 0.2] = 0.0
    t = topo.from_module(net)
    assert t.names == ["0", "2", "4"]
    for layer, module in zip(t, (net[0], net[2], net[4])):
        w = module.weight.detach().numpy()
        assert layer.shape == w.shape
        np.testing.assert_array_equal(layer.mask.toarray(), w != 0)
        np.testing.assert_array_equal(layer.weight, w)
        np.testing.assert_array_equal(layer.bias, module.bias.detach().numpy())
    assert t[1].nnz == int((net[2].weight != 0).sum())
    assert t.info["format"] == "torch-module"
    # parameters that require grad are read without a gradient and leave none behind
    assert all(p.requires_grad and p.grad is None for p in net.parameters())


def test_pruned_model_read_live_equals_the_saved_file(tmp_path):
    net = _mlp(1)
    prune.random_unstructured(net[0], "weight", amount=0.6)
    prune.l1_unstructured(net[2], "weight", amount=0.5)
    # a surviving weight that is exactly zero is still a connection: the mask decides
    with torch.no_grad():
        idx = net[0].weight_mask.nonzero()[0]
        net[0].weight_orig[idx[0], idx[1]] = 0.0
    live = topo.from_module(net)
    path = tmp_path / "pruned.pt"
    torch.save(net.state_dict(), path)
    saved = topo.load(path)
    assert live.names == saved.names
    for a, b in zip(live, saved):
        assert (a.mask != b.mask).nnz == 0
        np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(live[0].mask.toarray(), net[0].weight_mask.numpy() != 0)
    assert live[0].nnz == int(net[0].weight_mask.sum())


def test_ao_pruning_parametrization_mask_is_read():
    from torch.ao.pruning import WeightNormSparsifier

    net = _mlp(2)
    sparsifier = WeightNormSparsifier(sparsity_level=0.5, sparse_block_shape=(1, 2), zeros_per_block=1)
    sparsifier.prepare(net, config=[{"tensor_fqn": "2.weight"}])
    sparsifier.step()
    mask = net[2].parametrizations.weight[0].mask.numpy()
    assert 0 < mask.sum() < mask.size
    t = topo.from_module(net)
    assert t.names == ["0", "2", "4"]
    np.testing.assert_array_equal(t[1].mask.toarray(), mask != 0)


def test_small_cnn_is_read_at_channel_level_with_kernel_density():
    torch.manual_seed(3)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3, groups=2))
    with torch.no_grad():
        w = cnn[2].weight
        w[torch.rand(w.shape) < 0.7] = 0.0
        w[1, 2] = 0.0  # output channel 1 loses input channel 2 entirely
    t = topo.from_module(cnn, example_input=torch.zeros(1, 1, 12, 12))
    assert [layer.shape for layer in t] == [(4, 1), (6, 4), (8, 6)]
    kernel = cnn[2].weight.detach().numpy()
    np.testing.assert_array_equal(t[1].mask.toarray(), (kernel != 0).reshape(6, 4, -1).any(axis=2))
    assert not t[1].mask[1, 2]
    assert t[1].info["kernel_density"] == pytest.approx(float((kernel != 0).mean()))
    assert t[1].info["kernel_size"] == [3, 3]
    # groups=2: output channels 0-3 see input channels 0-2, channels 4-7 see 3-5
    grouped = t[2].mask.toarray()
    g_kernel = cnn[4].weight.detach().numpy()
    expected = np.zeros((8, 6), dtype=bool)
    expected[:4, :3] = (g_kernel[:4] != 0).reshape(4, 3, -1).any(axis=2)
    expected[4:, 3:] = (g_kernel[4:] != 0).reshape(4, 3, -1).any(axis=2)
    np.testing.assert_array_equal(grouped, expected)


def test_lstm_and_embedding_are_standalone_layers():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(20, 6)
            self.rnn = nn.LSTM(6, 5, num_layers=2)
            self.head = nn.Linear(5, 3)

        def forward(self, x):
            out, _ = self.rnn(self.tokens(x))
            return self.head(out)

    model = Tagger()
    t = topo.from_module(model, example_input=torch.zeros(4, 2, dtype=torch.long))
    assert t.names == [
        "tokens", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1", "head"
    ]
    # the embedding table [vocab, dim] is read transposed: token j feeds feature i
    assert t[0].shape == (6, 20) and t[0].standalone
    np.testing.assert_array_equal(t[0].weight, model.tokens.weight.detach().numpy().T)
    assert t[1].shape == (20, 6) and t[1].standalone  # 4 gates x 5 hidden, 6 inputs
    assert t[2].shape == (20, 5) and t[2].info["role"] == "recurrent"
    np.testing.assert_array_equal(t[2].weight, model.rnn.weight_hh_l0.detach().numpy())
    assert any("recurrent" in w for w in t.info["warnings"])


def test_forward_order_beats_registration_order(tmp_path):
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.second = nn.Linear(6, 4)  # registered first, called second
            self.first = nn.Linear(8, 6)

        def forward(self, x):
            return self.second(torch.relu(self.first(x)))

    model = Reversed()
    # registration order is a declared order, read by the file readers' rules: the same
    # Topology as the state dict saved and read back (reordered where the shapes chain)
    by_registration = topo.from_module(model)
    path = tmp_path / "reversed.pt"
    torch.save(model.state_dict(), path)
    assert by_registration.names == topo.load(path).names == ["first", "second"]
    assert any("reordered" in w for w in by_registration.info["warnings"])

    class Square(nn.Module):  # every order chains by shape: only a forward pass tells
        def __init__(self):
            super().__init__()
            self.b = nn.Linear(6, 6)
            self.a = nn.Linear(6, 6)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    square = Square()
    assert topo.from_module(square).names == ["b", "a"]
    by_call = topo.from_module(square, example_input=torch.zeros(2, 6))
    assert by_call.names == ["a", "b"]
    assert not any(layer.standalone for layer in by_call)
    assert by_call.info["order"] == "first calls in a forward pass"
    mismatch = topo.from_module(Reversed(), example_input=torch.zeros(1, 8))
    assert mismatch.names == ["first", "second"] and not mismatch.info["warnings"]


def test_forward_pass_leaves_training_mode_and_batchnorm_statistics_alone():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()
    before = model[1].running_mean.clone()
    topo.from_module(model, example_input=torch.randn(8, 4) * 5 + 3)
    assert model.training and model[1].training
    torch.testing.assert_close(model[1].running_mean, before)


def test_masked_mlp_masks_win_over_the_nonzero_pattern():
    from topo.training.model import build_model

    shapes = [(6, 8), (3, 6)]
    rng = np.random.default_rng(0)
    masks = [rng.random(s) < 0.5 for s in shapes]
    model = build_model(shapes, masks, seed=0)
    with torch.no_grad():
        i, j = np.argwhere(masks[0])[0]
        model.layers[0].weight[i, j] = 0.0  # an active weight that happens to be zero (just grown)
    t = topo.from_module(model)
    assert t.names == ["layers.0", "layers.1"]
    for layer, mask in zip(t, masks):
        np.testing.assert_array_equal(layer.mask.toarray(), mask)


def test_gpt2_conv1d_is_transposed_and_tied_weights_read_once():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=8, vocab_size=30, n_positions=10, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    t = topo.from_module(model, example_input=torch.zeros(1, 4, dtype=torch.long))
    names = t.names
    assert names[0] == "transformer.wte" and "lm_head" not in names
    assert any("tied weights read once: lm_head.weight" in w for w in t.info["warnings"])
    fc = t[names.index("transformer.h.0.mlp.c_fc")]
    conv1d = model.transformer.h[0].mlp.c_fc.weight.detach().numpy()  # stored [in, out]
    assert fc.shape == (32, 8)
    np.testing.assert_array_equal(fc.weight, conv1d.T)
    attention = t[names.index("transformer.h.0.attn.c_attn")]
    assert attention.standalone and attention.shape == (24, 8)


def test_from_state_dict_takes_tensors_arrays_and_checkpoint_dicts():
    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(5, 7)).astype(np.float32)
    w1[w1 > 0.5] = 0
    w2 = rng.normal(size=(2, 5)).astype(np.float32)
    from_arrays = topo.from_state_dict({"fc1.weight": w1, "fc1.bias": np.ones(5, np.float32), "fc2.weight": torch.from_numpy(w2)})
    assert from_arrays.names == ["fc1", "fc2"]
    np.testing.assert_array_equal(from_arrays[0].mask.toarray(), w1 != 0)
    np.testing.assert_array_equal(from_arrays[0].bias, np.ones(5))
    checkpoint = {"epoch": 7, "state_dict": {"fc1.weight": torch.from_numpy(w1), "fc2.weight": torch.from_numpy(w2)}}
    from_checkpoint = topo.load(checkpoint)
    assert from_checkpoint.info["epoch"] == 7
    assert from_checkpoint.info["format"] == "state-dict"
    with pytest.raises(TopoError, match="no weight matrix"):
        topo.from_state_dict({"only.bias": np.ones(3)})


def test_load_accepts_a_module_a_state_dict_and_binary_file_objects(tmp_path):
    from safetensors.torch import save as st_save

    net = _mlp(4)
    prune.random_unstructured(net[2], "weight", amount=0.5)
    expected = topo.from_module(net)
    assert topo.load(net).names == expected.names
    assert topo.load(net.state_dict()).names == expected.names
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    from_bytes = topo.load(buffer)
    assert from_bytes.info["path"] == "<BytesIO>"
    for a, b in zip(expected, from_bytes):
        assert (a.mask != b.mask).nnz == 0
    plain = {k: v.detach().contiguous() for k, v in _mlp(5).state_dict().items()}
    st = topo.load(io.BytesIO(st_save(plain)))
    np.testing.assert_array_equal(st[0].weight, plain["0.weight"].numpy())
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    with open(path, "rb") as handle:
        assert topo.load(handle).info["path"] == str(path)
    with open(path, "r", encoding="latin-1") as handle, pytest.raises(TopoError, match="binary mode"):
        topo.load(handle)
    with pytest.raises(TopoError, match="holds no bytes"):
        topo.load(io.BytesIO(b""))
    with pytest.raises(TopoError, match="cannot read a int"):
        topo.load(3)


def test_errors_are_topo_errors():
    with pytest.raises(TopoError, match="torch.nn.Module"):
        topo.from_module("not a model")
    with pytest.raises(TopoError, match="no layer topo reads"):
        topo.from_module(nn.ReLU())

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(TopoError, match="forward pass with example_input failed.*boom"):
        topo.from_module(Broken(), example_input=torch.zeros(1, 3))


def test_live_tensors_are_read_as_views_not_copies():
    from topo.formats.memory import tensor_values

    layer = nn.Linear(5, 4)
    array = tensor_values(layer.weight)
    assert array.ctypes.data == layer.weight.data_ptr()  # the same memory, no copy
    with torch.no_grad():
        layer.weight[0, 0] = 3.5
    assert array[0, 0] == 3.5
    # masks only: the Topology holds no weight values at all
    assert all(l.weight is None for l in topo.from_module(nn.Sequential(layer), weights=False))


def test_conv1d_conv3d_and_gru_are_read():
    torch.manual_seed(6)
    model = nn.ModuleDict({"c1": nn.Conv1d(3, 5, 4), "c3": nn.Conv3d(5, 2, (2, 3, 3)), "gru": nn.GRU(4, 6)})
    with torch.no_grad():
        model["c1"].weight[2] = 0.0  # output channel 2 has no input left
    t = topo.from_module(model)
    assert t.names == ["c1", "c3", "gru.weight_ih_l0", "gru.weight_hh_l0"]
    assert t[0].shape == (5, 3) and t[0].info["kernel_size"] == [4] and t[0].fan_in[2] == 0
    assert t[1].shape == (2, 5) and t[1].info["kernel_size"] == [2, 3, 3]
    assert t[2].shape == (18, 4) and t[3].shape == (18, 6)  # 3 gates x 6 hidden
    assert t[2].standalone and t[3].standalone

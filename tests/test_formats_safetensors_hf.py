"""topo.formats.safetensors_hf: plain safetensors files and Hugging Face model folders."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from topo.checkpoint import save_checkpoint
from topo.errors import TopoError
from topo.formats import detect_format, load
from topo.formats.safetensors_hf import model_order


def _sparse(rng, shape, density=0.3):
    values = rng.normal(size=shape).astype(np.float32)
    values[rng.random(shape) >= density] = 0
    return values


def test_plain_file_natural_order_and_biases(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"layers.{i}.weight": _sparse(rng, (8, 8)) for i in range(12)}
    tensors.update({f"layers.{i}.bias": np.full(8, i, dtype=np.float32) for i in range(12)})
    save_file(tensors, str(tmp_path / "mlp.safetensors"))
    assert detect_format(tmp_path / "mlp.safetensors") == "safetensors"
    net = load(tmp_path / "mlp.safetensors")
    assert net.names == [f"layers.{i}" for i in range(12)]  # layers.2 before layers.10
    for i, layer in enumerate(net):
        assert np.array_equal(layer.mask.toarray(), tensors[f"layers.{i}.weight"] != 0)
        assert np.all(layer.bias == i)
    assert net.info["format"] == "safetensors"


def test_topo_checkpoints_stay_with_the_native_reader(tmp_path, small_topology):
    save_checkpoint(small_topology, tmp_path / "epoch_0001.safetensors", epoch=1)
    assert detect_format(tmp_path / "epoch_0001.safetensors") == "topo"


def test_sharded_hf_folder_with_index_and_config(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "model"
    folder.mkdir()
    weights = {f"model.layers.{i}.weight": _sparse(rng, (16, 16)) for i in range(12)}
    weights["model.embed_tokens.weight"] = rng.normal(size=(50, 16)).astype(np.float32)
    weights["lm_head.weight"] = _sparse(rng, (50, 16))
    weights["model.norm.weight"] = np.ones(16, dtype=np.float32)
    names = sorted(weights)  # index files list keys sorted, as Hugging Face writes them
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: weights[k] for k in keys}, str(folder / shard))
        weight_map.update({k: shard for k in keys})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": dict(sorted(weight_map.items()))})
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 12}))

    assert detect_format(folder) == "safetensors"
    net = load(folder)
    assert net.names == ["model.embed_tokens"] + [f"model.layers.{i}" for i in range(12)] + ["lm_head"]
    assert net[0].standalone and net[0].shape == (16, 50)  # embedding [vocab, dim] -> [out=dim, in=vocab]
    assert not net[1].standalone and not any(layer.standalone for layer in net[2:13])
    assert net[13].shape == (50, 16) and not net[13].standalone
    assert any("embeddings" in w for w in net.info["warnings"])
    assert net.info["model_type"] == "llama"
    assert net.info["format"] == "huggingface"
    assert "model.norm.weight" in net.info["skipped"]

    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 16}))
    assert any("16 layers" in w for w in load(folder, weights=False).info["warnings"])


def test_index_pointing_outside_the_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"a.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "outside.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a.weight": "../outside.safetensors"}}))
    with pytest.raises(TopoError, match="outside the model folder"):
        load(folder)


def test_transformer_block_order_attention_before_mlp():
    names = [
        f"model.layers.{i}.{part}.weight"
        for i in (10, 2)
        for part in ("mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj",
                     "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj")
    ] + ["lm_head.weight", "model.embed_tokens.weight"]
    ordered, _ = model_order(names)
    block2 = [n.split("layers.2.")[1] for n in ordered if "layers.2." in n]
    assert block2 == [f"{p}.weight" for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    assert ordered[0] == "model.embed_tokens.weight" and ordered[-1] == "lm_head.weight"
    assert ordered.index("model.layers.2.mlp.down_proj.weight") < ordered.index("model.layers.10.self_attn.q_proj.weight")


def test_gpt2_conv1d_is_transposed_and_attention_standalone(tmp_path):
    rng = np.random.default_rng(2)
    d = 8
    folder = tmp_path / "gpt2"
    folder.mkdir()
    weights = {"wte.weight": rng.normal(size=(30, d)).astype(np.float32),
               "wpe.weight": rng.normal(size=(12, d)).astype(np.float32)}
    for i in range(2):
        weights[f"h.{i}.attn.c_attn.weight"] = _sparse(rng, (d, 3 * d))
        weights[f"h.{i}.attn.c_attn.bias"] = np.zeros(3 * d, np.float32)
        weights[f"h.{i}.attn.c_proj.weight"] = _sparse(rng, (d, d))
        weights[f"h.{i}.mlp.c_fc.weight"] = _sparse(rng, (d, 4 * d))
        weights[f"h.{i}.mlp.c_proj.weight"] = _sparse(rng, (4 * d, d))
        weights[f"h.{i}.attn.bias"] = np.ones((1, 1, 12, 12), np.float32)  # causal-mask buffer
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    net = load(folder)
    assert net.names[:2] == ["wpe", "wte"] or net.names[:2] == ["wte", "wpe"]
    block = [n for n in net.names if n.startswith("h.0.")]
    assert block == ["h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj"]
    c_attn = net["h.0.attn.c_attn"]
    assert c_attn.shape == (3 * d, d) and c_attn.standalone  # Conv1D [in, out] -> [out, in]
    assert np.array_equal(c_attn.mask.toarray(), weights["h.0.attn.c_attn.weight"].T != 0)
    assert net["h.0.mlp.c_fc"].shape == (4 * d, d) and not net["h.0.mlp.c_fc"].standalone
    assert net["h.0.mlp.c_proj"].shape == (d, 4 * d)
    assert "h.0.attn.bias" in net.info["skipped"]
    assert any("attention projections" in w for w in net.info["warnings"])


def test_bf16_and_f8_widened(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    w = torch.tensor([[0.5, 0.0], [-2.0, 1.0]])
    save_torch({"a.weight": w.bfloat16(), "b.weight": w.to(torch.float8_e4m3fn)}, str(tmp_path / "low.safetensors"))
    net = load(tmp_path / "low.safetensors")
    np.testing.assert_allclose(net["a"].weight, w.numpy())
    np.testing.assert_allclose(net["b"].weight, w.numpy())


def test_header_declaring_a_terabyte_is_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "huge_header.safetensors"
    path.write_bytes(struct.pack("<Q", 10**12) + header + bytes(16))
    with pytest.raises(TopoError, match="declares 1,000,000,000,000 bytes"):
        load(path)

    big = json.dumps({"w": {"dtype": "F32", "shape": [500000, 500000], "data_offsets": [0, 10**12]}}).encode()
    path2 = tmp_path / "huge_tensor.safetensors"
    path2.write_bytes(struct.pack("<Q", len(big)) + big + bytes(16))
    with pytest.raises(TopoError, match="declares"):
        load(path2)


def test_truncated_and_empty_files(tmp_path):
    rng = np.random.default_rng(3)
    save_file({"a.weight": _sparse(rng, (20, 20))}, str(tmp_path / "ok.safetensors"))
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(TopoError, match="cut.safetensors"):
        load(tmp_path / "cut.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(TopoError, match="empty.safetensors"):
        load(tmp_path / "empty.safetensors")


def test_hf_folder_with_pytorch_model_bin_keeps_state_dict_order(tmp_path):
    torch = pytest.importorskip("torch")
    folder = tmp_path / "bert_like"
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    state = {}
    for i in (0, 1, 2, 10, 11):  # registration order, not sorted
        state[f"encoder.layer.{i}.dense.weight"] = torch.randn(6, 6, generator=gen)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 5}))
    net = load(folder)
    assert net.names == [f"encoder.layer.{i}.dense" for i in (0, 1, 2, 10, 11)]
    assert net.info["format"] == "huggingface" and net.info["order"] == "the file's own order"


# -- budgets and the header (issue: untrusted files) -------------------------------------
def _raw_safetensors(path, header, data=b""):
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw + data)


def test_header_over_the_library_limit_is_refused(tmp_path):
    path = tmp_path / "big_header.safetensors"
    n = 100_000_008
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", n) + b"{")
        handle.truncate(8 + n + 64)  # a sparse file: nothing is really written
    with pytest.raises(TopoError, match=r"big_header\.safetensors: refused: .*100,000,008 bytes exceeds .*100,000,000"):
        load(path)


def test_header_is_parsed_once_per_load(tmp_path, monkeypatch):
    from topo.formats import safetensors_hf

    rng = np.random.default_rng(1)
    w = _sparse(rng, (5, 4))
    _raw_safetensors(
        tmp_path / "meta.safetensors",
        {"__metadata__": {"note": "x" * 200_000}, "fc.weight": {"dtype": "F32", "shape": [5, 4], "data_offsets": [0, 80]}},
        w.tobytes(),
    )
    calls = []
    original = safetensors_hf._parse_header
    monkeypatch.setattr(safetensors_hf, "_parse_header", lambda *a: calls.append(a) or original(*a))
    safetensors_hf._HEADER_CACHE.clear()
    net = load(tmp_path / "meta.safetensors")
    assert len(calls) == 1  # sniffing by both safetensors readers and reading share one parse
    assert np.array_equal(net[0].mask.toarray(), w != 0)
    assert np.array_equal(net[0].weight, w)


def test_overlapping_tensors_are_refused(tmp_path):
    spans = [(0, 64), (32, 96), (128, 192)]
    entries = {f"t{i}.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": list(s)} for i, s in enumerate(spans)}
    _raw_safetensors(tmp_path / "overlap.safetensors", entries, bytes(192))
    with pytest.raises(TopoError, match=r"overlap\.safetensors: tensors 't0.weight' and 't1.weight' overlap"):
        load(tmp_path / "overlap.safetensors")
    # many names over the same bytes are refused by the file's budget even before that
    entries = {f"t{i}.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]} for i in range(3)}
    _raw_safetensors(tmp_path / "same.safetensors", entries, bytes(64))
    with pytest.raises(TopoError, match=r"same\.safetensors: the arrays declare 128 bytes but the file holds only 64"):
        load(tmp_path / "same.safetensors")


def test_many_tensors_are_refused_before_any_is_read(tmp_path, monkeypatch):
    from topo.formats import safetensors_hf

    save_file({f"layers.{i}.weight": np.ones((1, 1), np.float32) for i in range(30)}, str(tmp_path / "many.safetensors"))
    monkeypatch.setenv("TOPO_MAX_LAYERS", "20")
    monkeypatch.setattr(safetensors_hf, "_read_stored", lambda *a: pytest.fail("a tensor was read"))
    with pytest.raises(TopoError, match=r"many\.safetensors: refused: this network has 30 layers.*TOPO_MAX_LAYERS"):
        load(tmp_path / "many.safetensors")
    monkeypatch.setenv("TOPO_MAX_ARRAYS", "25")
    safetensors_hf._HEADER_CACHE.clear()
    with pytest.raises(TopoError, match=r"many\.safetensors: refused: this file holds 30 arrays"):
        load(tmp_path / "many.safetensors")


def test_tensors_are_read_one_at_a_time(tmp_path):
    from topo.formats import safetensors_hf

    rng = np.random.default_rng(2)
    tensors = {f"layers.{i}.weight": _sparse(rng, (16, 16)) for i in range(4)}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    entries, _, start = safetensors_hf.read_header(tmp_path / "m.safetensors")
    stored = [safetensors_hf.StoredTensor(tmp_path / "m.safetensors", k, entries[k], start) for k in tensors]
    assert stored[0].shape == (16, 16) and stored[0].dtype == np.float32
    for s in stored:
        assert np.array_equal(np.asarray(s), tensors[s.name])
        # only the tensor read last is held
        assert safetensors_hf._LAST_READ[1] is np.asarray(s)
    net = load(tmp_path / "m.safetensors", weights=False)
    assert all(layer.weight is None for layer in net)
    assert [layer.nnz for layer in net] == [int(np.count_nonzero(tensors[f"layers.{i}.weight"])) for i in range(4)]

"""topo.formats.scan: a network read layer by layer, a summary kept per layer instead of its mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from topo.analysis.degree import degree_summary, layer_degree, summarise_degrees
from topo.formats import _assemble, load, scan
from topo.errors import TopoError
from topo.topology import Layer
from topo.formats import safetensors_hf


def _sparse(rng, shape, density=0.4, dtype=np.float32):
    values = rng.normal(size=shape).astype(dtype)
    values[rng.random(shape) >= density] = 0
    return values


@pytest.fixture
def model(tmp_path):
    rng = np.random.default_rng(7)
    tensors = {
        "model.embed_tokens.weight": _sparse(rng, (50, 12), dtype=np.float16),
        "model.layers.0.mlp.up_proj.weight": _sparse(rng, (24, 12), dtype=np.float16),
        "model.layers.0.mlp.down_proj.weight": _sparse(rng, (12, 24), dtype=np.float16),
        "model.layers.1.mlp.up_proj.weight": _sparse(rng, (24, 12), dtype=np.float16),
        "model.layers.1.mlp.down_proj.weight": _sparse(rng, (12, 24), dtype=np.float16),
        "lm_head.weight": _sparse(rng, (50, 12), dtype=np.float16),
    }
    tensors["model.layers.0.mlp.up_proj.weight"][3, 5] = np.nan  # NaN counts as a connection
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def test_scan_streams_safetensors_and_matches_load(model, monkeypatch):
    path, tensors = model
    full = load(path, weights=False)
    # masks-only reading never asks for a whole tensor: it reads blocks of rows
    monkeypatch.setattr(safetensors_hf.StoredTensor, "__array__", lambda *a, **k: pytest.fail("whole tensor read"))
    monkeypatch.setattr(_assemble, "ROW_BLOCK_CELLS", 50)  # several blocks per tensor
    done = []
    topology, measured = scan(path, layer_degree, progress=lambda d, t: done.append((d, t)))
    assert topology.info["streamed"] is True
    assert topology.names == full.names == list(measured)
    assert [layer.shape for layer in topology] == [layer.shape for layer in full]
    assert [layer.standalone for layer in topology] == [layer.standalone for layer in full]
    assert all(layer.nnz == 0 for layer in topology)  # only shapes were kept
    for layer in full:
        expected = layer_degree(layer)
        assert measured[layer.name] == expected
        key = layer.info["key"]
        assert measured[layer.name].nnz == int(np.count_nonzero(tensors[key] != 0))
    assert done[-1] == (len(full), len(full))
    # NaN found while the mask was built from blocks of rows, as when the whole array is read
    assert any("NaN weights" in w and "up_proj (1)" in w for w in topology.info["warnings"])
    assert topology.info["warnings"] == full.info["warnings"]
    summary = summarise_degrees(list(measured.values()), n_neurons=topology.n_neurons)
    assert summary == degree_summary(full)


def test_row_blocks_build_the_same_mask_as_the_whole_array(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    w = _sparse(rng, (37, 29))
    w[0, :] = 0
    w[5, 7] = np.nan
    save_file({"fc.weight": w}, str(tmp_path / "m.safetensors"))
    entries, _, start = safetensors_hf.read_header(tmp_path / "m.safetensors")
    stored = safetensors_hf.StoredTensor(tmp_path / "m.safetensors", "fc.weight", entries["fc.weight"], start)
    assert np.array_equal(stored.read_rows(4, 9), w[4:9], equal_nan=True)
    for cells in (1, 29, 30, 100, 10**6):
        for row_by_row in (1, 10**9):  # columns found row by row, or from the block's cell numbers
            monkeypatch.setattr(_assemble, "ROW_BLOCK_CELLS", cells)
            monkeypatch.setattr(_assemble, "_ROW_BY_ROW_WIDTH", row_by_row)
            mask, n_nan = _assemble._mask_by_rows(stored)
            assert mask.has_sorted_indices
            assert np.array_equal(mask.toarray(), w != 0)
            assert n_nan == _assemble._nan_count(stored) == 1
    monkeypatch.setattr(_assemble, "_BITWISE_COUNT", None)  # numpy < 2 counts the rows' cells another way
    assert np.array_equal(_assemble._mask_by_rows(stored)[0].toarray(), w != 0)


# Values whose bits are the corner cases of the zero and NaN tests: signed zeros, the
# smallest subnormal, infinities, NaN, and ordinary values.
_SPECIAL = [0.0, -0.0, 1.0, -2.5, float("inf"), float("-inf"), float("nan"), 1e-45, 0.0, 3.0, 0.0, -0.0]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2",
                                   "int8", "uint8", "int32", "int64", "bool"])
def test_masks_read_from_the_stored_bits_of_every_dtype(tmp_path, dtype):
    """Masks-only reading tests a float's bits, not its value: -0.0 is no connection, NaN and
    the smallest subnormal are; the truth is what torch wrote, compared as values."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    values = torch.tensor(_SPECIAL * 4).reshape(6, 8)
    if dtype == "bool" or dtype.startswith(("int", "uint")):
        values = torch.nan_to_num(values, nan=7.0, posinf=5.0, neginf=-5.0).round()
        if dtype == "uint8" or dtype == "bool":
            values = values.abs()
    stored = values.to(getattr(torch, dtype))
    save_torch({"fc.weight": stored, "fc2.weight": stored[:, :6].T.contiguous()}, str(tmp_path / "m.safetensors"))
    as_float = stored.to(torch.float64).numpy()  # bfloat16 and float8 widen exactly
    expected = (as_float != 0) | np.isnan(as_float)
    n_nan = int(np.isnan(as_float).sum())
    masks_only = load(tmp_path / "m.safetensors", weights=False)
    with_weights = load(tmp_path / "m.safetensors")
    assert np.array_equal(masks_only["fc"].mask.toarray(), expected)
    assert np.array_equal(masks_only["fc2"].mask.toarray(), expected[:, :6].T)
    assert np.array_equal(with_weights["fc"].mask.toarray(), expected)
    nan_warnings = [w for w in masks_only.info["warnings"] if "NaN weights" in w]
    assert nan_warnings == [w for w in with_weights.info["warnings"] if "NaN weights" in w]
    assert bool(nan_warnings) == bool(n_nan) and (not n_nan or f"fc ({n_nan})" in nan_warnings[0])


def test_stored_tensors_are_read_through_memory_maps_that_are_released(tmp_path, model):
    path, tensors = model
    scan(path, layer_degree)
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: no map of the file is left once the layers are read
        assert str(path) not in maps.read_text()
    entries, _, start = safetensors_hf.read_header(path)
    key = "model.layers.0.mlp.down_proj.weight"
    stored = safetensors_hf.StoredTensor(path, key, entries[key], start)
    blocks = list(np.array(block) for block in stored.row_blocks(5))
    assert np.array_equal(np.concatenate(blocks), tensors[key], equal_nan=True)
    raw = np.concatenate([np.array(block) for block in stored.row_blocks(5, raw=True)])
    assert raw.dtype == np.uint16 and np.array_equal(raw, tensors[key].view(np.uint16))


def test_a_tensor_cut_short_after_the_header_was_read_is_refused(tmp_path, model):
    path, _ = model
    entries, _, start = safetensors_hf.read_header(path)
    key = "lm_head.weight"
    stored = safetensors_hf.StoredTensor(path, key, entries[key], start)
    with open(path, "r+b") as handle:  # the file shrinks between the header and the data
        handle.truncate(stored.offset + 10)
    with pytest.raises(TopoError, match="truncated"):
        _assemble._mask_by_rows(stored)


def test_scan_of_other_formats_summarises_the_loaded_layers(tmp_path):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "a.npz", fc1=_sparse(rng, (6, 4)), fc2=_sparse(rng, (3, 6)))
    topology, measured = scan(tmp_path / "a.npz", lambda layer: layer.nnz)
    full = load(tmp_path / "a.npz")
    assert "streamed" not in topology.info
    assert measured == {layer.name: layer.nnz for layer in full}


def test_sharded_models_stream_with_progress_over_all_shards(tmp_path, monkeypatch):
    """A Hugging Face folder of two shards: read layer by layer from both, memory-mapped,
    with one progress count over every shard's layers."""
    import json

    rng = np.random.default_rng(9)
    shards = {
        "model-00001-of-00002.safetensors": {f"model.layers.{i}.mlp.up_proj.weight": _sparse(rng, (24, 12), dtype=np.float16)
                                             for i in range(2)},
        "model-00002-of-00002.safetensors": {f"model.layers.{i}.mlp.up_proj.weight": _sparse(rng, (24, 12), dtype=np.float16)
                                             for i in range(2, 5)},
    }
    folder = tmp_path / "model"
    folder.mkdir()
    weight_map = {}
    for shard, tensors in shards.items():
        save_file(tensors, str(folder / shard))
        weight_map.update({key: shard for key in tensors})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    monkeypatch.setattr(safetensors_hf.StoredTensor, "__array__", lambda *a, **k: pytest.fail("whole tensor read"))
    done = []
    topology, measured = scan(folder, layer_degree, progress=lambda d, t: done.append((d, t)))
    assert topology.info["streamed"] is True and topology.info["files"] == list(shards)
    assert done == [(k, 5) for k in range(1, 6)]  # one count over both shards, to the end
    every = {key: value for tensors in shards.values() for key, value in tensors.items()}
    assert [m.nnz for m in measured.values()] == [
        int(np.count_nonzero(every[f"model.layers.{i}.mlp.up_proj.weight"])) for i in range(5)]


def _two_four(rng, shape, dtype=np.float16):
    values = rng.normal(size=shape).astype(dtype)
    groups = values.reshape(shape[0], -1, 4)
    order = np.argsort(rng.random(groups.shape), axis=2)  # two of every four inputs pruned at random
    np.put_along_axis(groups, order[:, :, :2], 0, axis=2)
    return values


@pytest.fixture
def counted_model(tmp_path):
    """Layers of every kind the counts-only path meets: 2:4, unstructured with NaN and -0.0
    (odd sizes, not a multiple of the bitmap's padding), block 4x1, very sparse, integer,
    and a GPT-2 Conv1D weight stored [in, out]."""
    rng = np.random.default_rng(11)
    unstructured = _sparse(rng, (33, 37), density=0.5, dtype=np.float16)
    unstructured[2, 3], unstructured[4, 5], unstructured[6, 7] = np.nan, -0.0, np.inf
    block = np.repeat(_sparse(rng, (33, 300), density=0.5), 4, axis=0)[:130]  # the last chunk is short
    tensors = {
        "layers.0.up.weight": _two_four(rng, (131, 200)),
        "layers.1.down.weight": unstructured,
        "layers.2.fc.weight": block,
        "layers.3.fc.weight": _sparse(rng, (70, 90), density=0.03),
        "layers.4.fc.weight": _sparse(rng, (25, 19), density=0.6).astype(np.int8),
        "layers.5.c_fc.weight": _sparse(rng, (90, 40), density=0.5),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def _truth(tensors, key):
    """The mask [out, in] from the raw values: nonzero, NaN included (-0.0 is zero)."""
    values = tensors[key].astype(np.float64)
    mask = (values != 0) | np.isnan(values)
    return mask.T if "c_fc" in key else mask


def test_stored_layers_are_counted_without_building_their_masks(counted_model, monkeypatch):
    """scan hands a summariser layers counted from the stored bits in one pass: degrees and
    patterns come without a CSR mask, and equal numpy's counts and the CSR path's patterns."""
    from topo.analysis import patterns
    from topo.analysis.patterns import layer_pattern
    from topo.formats._assemble import StoredLayer

    path, tensors = counted_model
    monkeypatch.setattr(_assemble, "ROW_BLOCK_CELLS", 500)  # several blocks of rows per tensor
    monkeypatch.setattr(patterns, "_CHUNK_CELLS", 64 * 256)  # several bitmap chunks per tensor
    seen = {}

    def summarise(layer):
        figures = layer_degree(layer), layer_pattern(layer)
        seen[layer.name] = (type(layer), "mask" in vars(layer))
        return figures

    _, measured = scan(path, summarise)
    assert len(measured) == len(tensors)
    for name, (degree, found) in measured.items():
        key = next(k for k in tensors if k.startswith(name))
        truth = _truth(tensors, key)
        kind, mask_built = seen[name]
        assert kind is StoredLayer, name  # [in, out] too (GPT-2 Conv1D): counted on its stored rows
        # only a sparse layer's patterns are counted from its (small) CSR mask
        assert mask_built == (truth.mean() < patterns.DENSE_COUNTING_DENSITY), name
        assert degree.nnz == found.nnz == int(truth.sum())
        assert (degree.n_out, degree.n_in) == truth.shape
        fan_in, fan_out = truth.sum(axis=1), truth.sum(axis=0)
        assert (degree.fan_in_min, degree.fan_in_max) == (fan_in.min(), fan_in.max())
        assert degree.fan_in_std == pytest.approx(fan_in.std())
        assert (degree.no_inputs, degree.no_outputs) == (int((fan_in == 0).sum()), int((fan_out == 0).sum()))
        assert degree.fan_out_max == fan_out.max()
        padded = np.zeros((truth.shape[0], -(-truth.shape[1] // 4) * 4), dtype=bool)
        padded[:, : truth.shape[1]] = truth
        assert found.compliance_2_4 == pytest.approx((padded.reshape(len(padded), -1, 4).sum(axis=2) <= 2).mean())
        assert found == layer_pattern(truth, name)  # the same as counted from a CSR mask
    assert measured["layers.0.up"][1].pattern == "2:4"
    assert measured["layers.1.down"][1].pattern == "unstructured"
    assert measured["layers.2.fc"][1].pattern == "block 4x1"


def test_a_stored_layer_builds_its_mask_when_asked(counted_model):
    from topo.formats._assemble import StoredLayer

    path, tensors = counted_model
    masks = {}

    def summarise(layer):
        if isinstance(layer, StoredLayer):
            plain = layer.with_()
            assert type(plain) is Layer and plain.source == layer.source and plain.info == layer.info
            assert np.array_equal(plain.fan_in, layer.fan_in) and np.array_equal(plain.fan_out, layer.fan_out)
        masks[layer.name] = layer.mask.toarray()
        return layer.nnz

    scan(path, summarise)
    for name, mask in masks.items():
        key = next(k for k in tensors if k.startswith(name))
        assert np.array_equal(mask, _truth(tensors, key))


def test_a_reader_keeps_plain_layers_when_on_layer_returns_a_stored_one(counted_model):
    path, tensors = counted_model
    kept = safetensors_hf.read(path, weights=False, on_layer=lambda layer: layer)
    for layer in kept:
        assert type(layer) is Layer
        assert np.array_equal(layer.mask.toarray(), _truth(tensors, layer.info["key"]))


def test_stored_layers_kept_past_the_next_layer_read_their_own_bits_again(counted_model):
    """Layers of one read share one bitmap buffer; a layer a summariser keeps after the
    next one is read gets its own mask and patterns back, not the next layer's."""
    from topo.analysis.patterns import layer_pattern

    path, tensors = counted_model
    kept = []
    scan(path, kept.append)
    assert len(kept) == len(tensors)
    full = load(path, weights=False)
    for layer in kept:
        assert dict(layer.info) == dict(full[layer.name].info)  # kind, stored layout, key
        truth = _truth(tensors, layer.info["key"])
        assert layer_pattern(layer) == layer_pattern(truth, layer.name)
        assert np.array_equal(layer.mask.toarray(), truth)


def _raw_safetensors(path):
    """Every tensor of a safetensors file, decoded by hand from its bytes (the format's
    8-byte little-endian header length, JSON header, data): the truth, without topo."""
    import json
    import struct

    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header.pop("__metadata__", None)
    dtypes = {"F16": "<f2", "F32": "<f4"}
    out = {}
    for key, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = data[8 + length + begin : 8 + length + end]
        out[key] = np.frombuffer(raw, dtype=dtypes[entry["dtype"]]).reshape(entry["shape"])
    return out


def test_a_sharded_model_reads_as_its_shards_bytes_say(tmp_path, monkeypatch):
    """Three shards named by an index: masks, degrees and patterns, read layer by layer
    from memory maps, equal what the shards' bytes hold (decoded with numpy alone)."""
    import json

    from topo.analysis.patterns import layer_pattern

    rng = np.random.default_rng(21)
    folder = tmp_path / "model"
    folder.mkdir()
    weight_map = {}
    for shard in range(3):
        name = f"model-0000{shard + 1}-of-00003.safetensors"
        tensors = {f"model.layers.{shard}.mlp.up_proj.weight": _two_four(rng, (48, 32)),
                   f"model.layers.{shard}.mlp.down_proj.weight": _sparse(rng, (32, 48), density=0.5, dtype=np.float16)}
        save_file(tensors, str(folder / name))
        weight_map.update({key: name for key in tensors})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    truth = {}
    for name in sorted(set(weight_map.values())):
        for key, values in _raw_safetensors(folder / name).items():
            truth[key.removesuffix(".weight")] = (values != 0) | np.isnan(values)

    monkeypatch.setattr(safetensors_hf.StoredTensor, "__array__", lambda *a, **k: pytest.fail("whole tensor read"))
    full = load(folder, weights=False)
    assert sorted(layer.name for layer in full) == sorted(truth)
    for layer in full:
        assert np.array_equal(layer.mask.toarray(), truth[layer.name])
    done = []
    topology, measured = scan(folder, lambda layer: (layer_degree(layer), layer_pattern(layer)),
                              progress=lambda d, t: done.append((d, t)))
    assert done == [(k, 6) for k in range(1, 7)]
    assert topology.names == full.names
    for name, (degree, found) in measured.items():
        mask = truth[name]
        assert degree.nnz == int(mask.sum()) and degree.fan_in_max == mask.sum(axis=1).max()
        assert degree.no_outputs == int((mask.sum(axis=0) == 0).sum())
        assert found.pattern == ("2:4" if "up_proj" in name else "unstructured")
        assert found.runs_2_4 == bool((mask.reshape(len(mask), -1, 4).sum(axis=2) <= 2).all())

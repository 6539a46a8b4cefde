"""topo.formats.scan: a network read layer by layer, a summary kept per layer instead of its mask."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from topo.analysis.degree import degree_summary, layer_degree, summarise_degrees
from topo.formats import _assemble, load, scan
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
        monkeypatch.setattr(_assemble, "ROW_BLOCK_CELLS", cells)
        mask, n_nan = _assemble._mask_by_rows(stored)
        assert mask.has_sorted_indices
        assert np.array_equal(mask.toarray(), w != 0)
        assert n_nan == _assemble._nan_count(stored) == 1


def test_scan_of_other_formats_summarises_the_loaded_layers(tmp_path):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "a.npz", fc1=_sparse(rng, (6, 4)), fc2=_sparse(rng, (3, 6)))
    topology, measured = scan(tmp_path / "a.npz", lambda layer: layer.nnz)
    full = load(tmp_path / "a.npz")
    assert "streamed" not in topology.info
    assert measured == {layer.name: layer.nnz for layer in full}

import json
import subprocess
import sys

import numpy as np
import pytest

import topo
from topo import Layer, Topology, TopoError
from topo.checkpoint import (
    append_metrics,
    checkpoint_name,
    is_topo_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_checkpoint_metadata,
    read_metrics,
    read_run_config,
    save_checkpoint,
    write_metrics,
    write_run_config,
)


def _with_stats(topology):
    layers = [
        layer.with_(stats={"grad_mean": np.arange(layer.n_out, dtype=np.float32) / 7}, source=f"test:{i}")
        for i, layer in enumerate(topology)
    ]
    return Topology(layers, info={"note": "hello"})


def test_round_trip_is_bit_for_bit(tmp_path, small_topology):
    original = _with_stats(small_topology)
    path = save_checkpoint(original, tmp_path / "c.safetensors", epoch=3, step=120, run_info={"seed": 7})
    loaded = load_checkpoint(path)
    assert loaded.names == original.names
    for a, b in zip(original, loaded):
        assert (a.mask != b.mask).nnz == 0
        assert a.weight.dtype == b.weight.dtype and np.array_equal(a.weight, b.weight)
        assert np.array_equal(a.bias, b.bias)
        assert np.array_equal(a.stats["grad_mean"], b.stats["grad_mean"])
        assert b.source == a.source
    assert loaded.epoch == 3 and loaded.step == 120
    assert loaded.info["run"] == {"seed": 7}
    assert loaded.info["note"] == "hello"
    meta = read_checkpoint_metadata(path)
    assert meta["format_version"] == 1 and [l["name"] for l in meta["layers"]] == ["fc1", "fc2"]


def test_masks_only_loading_skips_weights(tmp_path, small_topology):
    path = save_checkpoint(small_topology, tmp_path / "c.safetensors")
    loaded = load_checkpoint(path, weights=False)
    assert all(layer.weight is None for layer in loaded)
    assert loaded.nnz == small_topology.nnz


def test_standalone_flag_round_trips(tmp_path):
    layers = [Layer.from_mask("a", np.eye(3)), Layer.from_mask("b", np.ones((2, 5)), standalone=True)]
    path = save_checkpoint(Topology(layers), tmp_path / "s.safetensors")
    assert [l.standalone for l in load_checkpoint(path)] == [False, True]


@pytest.mark.parametrize("cut", [0, 5, 200, -40])
def test_truncated_checkpoint_raises_naming_file(tmp_path, small_topology, cut):
    path = save_checkpoint(small_topology, tmp_path / "good.safetensors")
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(TopoError) as err:
        load_checkpoint(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(TopoError, match="bad.safetensors"):
        topo.load(bad)


def test_corrupted_header_and_foreign_safetensors(tmp_path, small_topology):
    from safetensors.numpy import save_file

    path = save_checkpoint(small_topology, tmp_path / "c.safetensors")
    data = bytearray(path.read_bytes())
    data[10:20] = b"\xff" * 10  # inside the JSON header
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(TopoError, match="corrupt.safetensors"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(foreign))
    with pytest.raises(TopoError, match="not a topo checkpoint"):
        load_checkpoint(foreign)
    assert not is_topo_checkpoint(foreign)
    with pytest.raises(TopoError, match="no such file"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, small_topology, monkeypatch):
    path = save_checkpoint(small_topology, tmp_path / "c.safetensors", epoch=1)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    # an interruption during the write keeps the old file and leaves no temporary behind
    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(small_topology, path, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def test_run_folder_helpers(tmp_path, small_topology):
    run = tmp_path / "run"
    write_run_config(run, {"method": "rigl", "seed": 1})
    for epoch in (0, 2, 1, 10):
        save_checkpoint(small_topology, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    save_checkpoint(small_topology, run / "checkpoints" / checkpoint_name(2, 150), epoch=2, step=150)
    (run / "checkpoints" / "notes.txt").write_text("ignored")
    names = [p.name for p in list_checkpoints(run)]
    assert names == [
        "epoch_0000.safetensors",
        "epoch_0001.safetensors",
        "epoch_0002_step_00000150.safetensors",
        "epoch_0002.safetensors",
        "epoch_0010.safetensors",
    ]
    assert "epoch_0002_step_00000150.safetensors" not in [p.name for p in list_checkpoints(run, include_steps=False)]
    assert read_run_config(run) == {"method": "rigl", "seed": 1}
    # a run folder loads as its last checkpoint
    assert topo.load(run).epoch == 10
    with pytest.raises(TopoError, match="not a topo run folder"):
        list_checkpoints(tmp_path)


def test_metrics_append_read_and_cut_short_last_line(tmp_path):
    run = tmp_path / "run"
    append_metrics(run, {"epoch": 1, "loss": 0.5})
    append_metrics(run, {"epoch": 2, "loss": float("nan")})
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "lo')  # interrupted mid-write
    records = read_metrics(run)
    assert records == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": None}]
    write_metrics(run, records[:1])
    assert read_metrics(run) == [{"epoch": 1, "loss": 0.5}]


def test_loading_topo_checkpoints_does_not_import_torch(tmp_path, small_topology):
    path = save_checkpoint(small_topology, tmp_path / "c.safetensors")
    code = (
        "import sys, topo\n"
        f"t = topo.load({str(path)!r})\n"
        "topo.fan_in_cv(t); topo.degree_summary(t)\n"
        "print(json.dumps('torch' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_written_files_get_the_usual_permissions(tmp_path, small_topology):
    import os

    old = os.umask(0o022)
    try:
        path = save_checkpoint(small_topology, tmp_path / "c.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_checkpoints_folder_stands_for_its_run_and_flat_folders_are_not_one_model(tmp_path, small_topology):
    run = tmp_path / "run"
    write_run_config(run, {})
    for epoch in (0, 1):
        save_checkpoint(small_topology, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    assert topo.load(run / "checkpoints").epoch == 1
    flat = tmp_path / "flat"
    flat.mkdir()
    for epoch in (0, 1):
        save_checkpoint(small_topology, flat / checkpoint_name(epoch), epoch=epoch)
    # two separate networks must not be merged into one model
    with pytest.raises(TopoError, match="not a checkpoint format"):
        topo.load(flat)


# -- mask encoding: dense bool or CSR indices, whichever is smaller ---------------------
def _random_csr(rng, n_out, n_in, fan_in):
    """A boolean CSR mask with exactly ``fan_in`` distinct inputs per neuron."""
    import scipy.sparse as sp

    indices = np.concatenate([np.sort(rng.choice(n_in, size=fan_in, replace=False)) for _ in range(n_out)])
    indptr = np.arange(n_out + 1, dtype=np.int64) * fan_in
    return sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, indptr), shape=(n_out, n_in))


def _stored_tensors(path):
    """The checkpoint's tensors as safetensors wrote them (numpy, no topo)."""
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_sparse_mask_is_stored_as_csr_indices_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    sparse_mask = _random_csr(rng, 300, 400, 3)  # 1% dense: indices are far smaller
    dense_mask = rng.random((6, 300)) < 0.7  # dense: one byte per entry is smaller
    net = Topology([Layer.from_mask("wide", sparse_mask), Layer.from_mask("head", dense_mask)])
    path = save_checkpoint(net, tmp_path / "mixed.safetensors")
    stored = _stored_tensors(path)
    assert "layers.0.mask" not in stored
    indptr, indices = stored["layers.0.mask.indptr"], stored["layers.0.mask.indices"]
    assert indptr.dtype == np.int32 and indices.dtype == np.int32
    np.testing.assert_array_equal(indptr, np.arange(301) * 3)
    rebuilt = np.zeros((300, 400), dtype=bool)
    rebuilt[np.repeat(np.arange(300), np.diff(indptr)), indices] = True
    np.testing.assert_array_equal(rebuilt, sparse_mask.toarray())
    assert stored["layers.1.mask"].dtype == np.bool_ and stored["layers.1.mask"].shape == (6, 300)
    assert read_checkpoint_metadata(path)["format_version"] == 2
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded[0].mask.toarray(), sparse_mask.toarray())
    np.testing.assert_array_equal(loaded[1].mask.toarray(), dense_mask)
    assert loaded[0].mask.dtype == np.bool_ and loaded[0].mask.has_sorted_indices


def test_dense_only_checkpoints_stay_version_1_and_old_files_load(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    mask = rng.random((4, 6)) < 0.5
    path = save_checkpoint(Topology.from_masks([mask]), tmp_path / "dense.safetensors")
    assert "layers.0.mask" in _stored_tensors(path)
    assert read_checkpoint_metadata(path)["format_version"] == 1
    # a file as topo wrote them before sparse masks existed: dense bool mask, version 1
    old = tmp_path / "old.safetensors"
    layers = json.dumps([{"name": "fc", "source": "", "standalone": False, "shape": [4, 6], "info": {}, "stats": []}])
    save_file(
        {"layers.0.mask": mask, "layers.0.weight": np.where(mask, 0.5, 0.0).astype(np.float32)},
        str(old),
        metadata={"format": "topo-checkpoint", "format_version": "1", "layers": layers,
                  "epoch": "2", "step": "", "run": "{}", "info": "{}"},
    )
    loaded = load_checkpoint(old)
    np.testing.assert_array_equal(loaded[0].mask.toarray(), mask)
    assert loaded.epoch == 2 and loaded[0].weight.dtype == np.float32


def test_wide_sparse_network_checkpoint_is_small_and_loads_without_dense_masks(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(2)
    width, fan_in = 16000, 16  # 0.1% density
    masks = [_random_csr(rng, width, width, fan_in) for _ in range(3)]
    path = save_checkpoint(Topology.from_masks(masks), tmp_path / "wide.safetensors")
    dense_bytes = 3 * width * width  # one byte per entry: 768 MB
    assert path.stat().st_size < 4 * (3 * (width + 1 + width * fan_in)) + 10_000  # int32 indices + header
    assert path.stat().st_size * 200 < dense_bytes
    tracemalloc.start()
    try:
        loaded = load_checkpoint(path, weights=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40_000_000  # a dense mask of one layer alone would be 256 MB
    for got, want in zip(loaded, masks):
        assert got.shape == (width, width) and got.nnz == want.nnz
        assert (got.mask != want).nnz == 0


@pytest.mark.parametrize(
    "indptr, indices, problem",
    [
        (np.array([0, 1, 2], dtype=np.int32), np.array([0, 9], dtype=np.int32), "outside"),
        (np.array([0, 2, 1], dtype=np.int32), np.array([0, 1], dtype=np.int32), "non-decreasing"),
        (np.array([0, 1], dtype=np.int32), np.array([0], dtype=np.int32), "entries for 2 rows"),
        (np.array([0, 1, 2], dtype=np.float32), np.array([0, 1], dtype=np.int32), "integers"),
    ],
)
def test_corrupt_sparse_mask_raises_naming_file(tmp_path, indptr, indices, problem):
    from safetensors.numpy import save_file

    layers = json.dumps([{"name": "fc", "source": "", "standalone": False, "shape": [2, 3], "info": {}, "stats": []}])
    bad = tmp_path / "bad.safetensors"
    save_file(
        {"layers.0.mask.indptr": indptr, "layers.0.mask.indices": indices},
        str(bad),
        metadata={"format": "topo-checkpoint", "format_version": "2", "layers": layers,
                  "epoch": "", "step": "", "run": "{}", "info": "{}"},
    )
    with pytest.raises(TopoError, match=f"bad.safetensors.*{problem}"):
        load_checkpoint(bad)

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

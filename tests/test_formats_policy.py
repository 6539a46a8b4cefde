"""The size and path policy of topo.formats._policy, as every reader applies it.

Bomb files are built at their real declared size where the file itself is small
(a sparse matrix declaring 10^9 x 10^9, a SET layer declaring (10^8+1) x 10^8);
the archive of many deflated members is scaled down by lowering the expansion floor.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from topo.errors import TopoError
from topo.formats import _policy, load


def _sparse_weights(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype(np.float32)
    w[rng.random(shape) < 0.6] = 0
    return w


# -- limits -------------------------------------------------------------------------
def test_limits_read_from_environment(monkeypatch):
    assert _policy.limits() == _policy.Limits()
    monkeypatch.setenv("TOPO_MAX_NEURONS", "1_000")
    monkeypatch.setenv("TOPO_MAX_LAYERS", "7")
    current = _policy.limits()
    assert current.neurons == 1000 and current.layers == 7
    monkeypatch.setenv("TOPO_MAX_LAYERS", "many")
    with pytest.raises(TopoError, match="TOPO_MAX_LAYERS"):
        _policy.limits()
    monkeypatch.setenv("TOPO_MAX_LAYERS", "0")
    with pytest.raises(TopoError, match="positive"):
        _policy.limits()


def test_file_budget_adds_up_members():
    budget = _policy.FileBudget("a.npz", available=1000, compressed=False)
    budget.take(600, "member 'a'")
    with pytest.raises(TopoError, match="a.npz: the arrays declare 1,200 bytes"):
        budget.take(600, "member 'b'")


# -- bombs --------------------------------------------------------------------------
def test_many_deflated_members_are_refused_by_their_total(tmp_path, monkeypatch):
    # Each member alone is under the floor; together they expand far beyond 50x the archive.
    monkeypatch.setattr(_policy, "EXPANSION_FLOOR_BYTES", 1024**2)
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, **{f"w{i}": np.zeros((500, 500), np.float32) for i in range(60)})
    assert all(m.file_size < 1024**2 for m in zipfile.ZipFile(path).infolist())
    with pytest.raises(TopoError, match=r"zeros\.npz: refused: the arrays of this .* would expand to"):
        load(path)


def test_sparse_matrix_declaring_a_huge_shape_is_refused(tmp_path):
    path = tmp_path / "huge.npz"
    coo = sp.coo_matrix((np.array([1.0], np.float32), (np.array([5]), np.array([7]))), shape=(10**9, 10**9))
    sp.save_npz(path, coo)
    assert path.stat().st_size < 2048
    with pytest.raises(TopoError, match=r"huge\.npz: refused: .*1,000,000,000 x 1,000,000,000.*TOPO_MAX_NEURONS"):
        load(path)


def test_set_layer_declaring_a_huge_shape_is_refused(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    coo = sp.coo_matrix((np.array([0.5], np.float32), (np.array([3]), np.array([4]))), shape=(10**8 + 1, 10**8))
    sp.save_npz(folder / "weight_l0.npz", coo)
    assert (folder / "weight_l0.npz").stat().st_size < 1024
    with pytest.raises(TopoError, match=r"weight_l0\.npz: refused: .*100,000,001 x 100,000,000"):
        load(folder)


@pytest.mark.parametrize("name", ["huge_sparse", "huge_set"])
def test_bombs_stay_small_in_a_fresh_process(tmp_path, name):
    """The refusal happens before allocation: a whole `topo inspect` stays far under 1 GB."""
    if name == "huge_sparse":
        target = tmp_path / "huge.npz"
        coo = sp.coo_matrix((np.ones(1, np.float32), (np.array([1]), np.array([1]))), shape=(10**9, 10**9))
        sp.save_npz(target, coo)
    else:
        target = tmp_path / "set"
        target.mkdir()
        coo = sp.coo_matrix((np.ones(1, np.float32), (np.array([1]), np.array([1]))), shape=(10**8 + 1, 10**8))
        sp.save_npz(target / "weight_l0.npz", coo)
    code = (
        "import resource, sys\n"
        "from click.testing import CliRunner\n"
        "from topo_cli.main import main\n"
        "result = CliRunner().invoke(main, ['inspect', sys.argv[1]])\n"
        "print(result.exit_code, int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]))\n"
        "print(result.output)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=120)
    first, *rest = done.stdout.splitlines()
    exit_code, peak_kib = (int(x) for x in first.split())
    assert exit_code != 0
    assert peak_kib < 1024**2, f"peak {peak_kib} KiB"
    assert any("refused" in line and str(target.name) in line for line in rest), done.stdout


def test_layer_count_cap(tmp_path, monkeypatch):
    path = tmp_path / "four.npz"
    np.savez(path, **{f"w{i}": _sparse_weights(i, (4, 4)) for i in range(4)})
    assert len(load(path)) == 4
    monkeypatch.setenv("TOPO_MAX_LAYERS", "3")
    with pytest.raises(TopoError, match=r"four\.npz: refused: this network has 4 layers.*TOPO_MAX_LAYERS"):
        load(path)


def test_array_count_cap(tmp_path, monkeypatch):
    path = tmp_path / "many.npz"
    np.savez(path, **{f"w{i}": _sparse_weights(i, (4, 4)) for i in range(6)})
    monkeypatch.setenv("TOPO_MAX_ARRAYS", "5")
    with pytest.raises(TopoError, match=r"many\.npz: refused: this file holds 6 arrays, more than the limit of 5 arrays"):
        load(path)


def test_dense_cell_cap_refuses_dense_layers_and_keeps_sparse_ones_as_masks(tmp_path, monkeypatch):
    dense = tmp_path / "dense.npz"
    np.savez(dense, w=_sparse_weights(1, (20, 20)))
    sparse_path = tmp_path / "sparse.npz"
    sp.save_npz(sparse_path, sp.csr_matrix(_sparse_weights(2, (20, 20))))
    monkeypatch.setenv("TOPO_MAX_DENSE_CELLS", "100")
    with pytest.raises(TopoError, match=r"dense\.npz: refused: .*dense 20 x 20 array.*TOPO_MAX_DENSE_CELLS"):
        load(dense)
    net = load(sparse_path)
    expected = _sparse_weights(2, (20, 20)) != 0
    assert net[0].weight is None
    assert np.array_equal(net[0].mask.toarray(), expected)
    assert any("weights not kept" in w for w in net.info["warnings"])


def test_neuron_cap_on_dense_layers(tmp_path, monkeypatch):
    path = tmp_path / "wide.npz"
    np.savez(path, w=_sparse_weights(3, (2, 300)))
    monkeypatch.setenv("TOPO_MAX_NEURONS", "299")
    with pytest.raises(TopoError, match=r"wide\.npz: refused: .*2 x 300 neurons"):
        load(path)


def test_conv_groups_are_checked_before_the_channel_mask(tmp_path, monkeypatch):
    from topo.formats._assemble import Tensor, build_topology

    kernel = np.ones((8, 1, 3, 3), np.float32)
    monkeypatch.setenv("TOPO_MAX_DENSE_CELLS", "1000")
    net = build_topology([Tensor(key="c.weight", value=kernel, groups=8)], path=tmp_path / "x", format="t")
    assert net[0].shape == (8, 8)
    with pytest.raises(TopoError, match="dense 8 x 2,000 array"):
        build_topology([Tensor(key="c.weight", value=kernel, groups=2000)], path=tmp_path / "x", format="t")


# -- paths --------------------------------------------------------------------------
def test_member_names_that_climb_out_are_refused(tmp_path):
    path = tmp_path / "slip.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("../evil.npy",):
            import io

            buffer = io.BytesIO()
            np.save(buffer, _sparse_weights(4, (3, 3)))
            archive.writestr(name, buffer.getvalue())
    with pytest.raises(TopoError, match=r"slip\.npz: refused: member '\.\./evil\.npy'"):
        load(path)
    for bad in ("/etc/x.npy", "a/../../x.npy", "C:x.npy"):
        with pytest.raises(TopoError):
            _policy.check_member_name(bad, path=path)
    _policy.check_member_name("archive/data/0", path=path)


def _set_folder(folder: Path, seed: int) -> None:
    folder.mkdir(parents=True)
    for k, shape in enumerate([(5, 4), (4, 3)]):
        sp.save_npz(folder / f"weight_l{k}.npz", sp.csr_matrix(_sparse_weights(seed + k, shape)))


def test_set_folder_with_a_link_out_is_refused(tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere"
    _set_folder(outside, 1)
    folder = tmp_path / "run" / "epoch_000"
    _set_folder(folder, 5)
    (folder / "weight_l1.npz").unlink()
    (folder / "weight_l1.npz").symlink_to(outside / "weight_l1.npz")
    with pytest.raises(TopoError, match=r"weight_l1\.npz: refused: SET weight file is a link to .*elsewhere"):
        load(folder)
    with pytest.raises(TopoError, match="refused"):
        load(tmp_path / "run")
    monkeypatch.setenv("TOPO_FOLLOW_LINKS", "1")
    assert len(load(folder)) == 2
    # a link that stays inside the folder is fine
    monkeypatch.delenv("TOPO_FOLLOW_LINKS")
    inside = tmp_path / "inside"
    _set_folder(inside, 9)
    (inside / "copy").mkdir()
    (inside / "weight_l1.npz").rename(inside / "copy" / "weight_l1.npz")
    (inside / "weight_l1.npz").symlink_to(Path("copy") / "weight_l1.npz")
    assert len(load(inside)) == 2


def test_set_run_whose_epoch_folder_links_out_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / "epoch_009"
    _set_folder(outside, 1)
    run = tmp_path / "run"
    _set_folder(run / "epoch_000", 2)
    (run / "epoch_001").symlink_to(outside)
    with pytest.raises(TopoError, match=r"epoch_001: refused: epoch folder is a link"):
        load(run)


def _safetensors_file(path: Path, seed: int) -> None:
    from safetensors.numpy import save_file

    save_file({"fc1.weight": _sparse_weights(seed, (6, 4)), "fc2.weight": _sparse_weights(seed + 1, (3, 6))}, str(path))


def test_hugging_face_folder_links_out_are_refused(tmp_path):
    outside = tmp_path / "secret.safetensors"
    _safetensors_file(outside, 1)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").symlink_to(outside)
    with pytest.raises(TopoError, match=r"model\.safetensors: refused: weight file is a link to .*secret"):
        load(model)
    # the file named directly is read as given
    assert len(load(model / "model.safetensors")) == 2

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    _safetensors_file(sharded / "model-00001-of-00002.safetensors", 2)
    (sharded / "model-00002-of-00002.safetensors").symlink_to(outside)
    index = {"weight_map": {"fc1.weight": "model-00001-of-00002.safetensors",
                            "fc2.weight": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(TopoError, match=r"model-00002-of-00002\.safetensors: refused"):
        load(sharded)

    config_link = tmp_path / "config_link"
    config_link.mkdir()
    _safetensors_file(config_link / "model.safetensors", 3)
    (tmp_path / "config.json").write_text("{}")
    (config_link / "config.json").symlink_to(tmp_path / "config.json")
    with pytest.raises(TopoError, match=r"config\.json: refused"):
        load(config_link)


def test_hugging_face_cache_snapshot_links_are_allowed(tmp_path):
    repo = tmp_path / "hub" / "models--org--tiny"
    (repo / "blobs").mkdir(parents=True)
    _safetensors_file(repo / "blobs" / "0123abcd", 4)
    snapshot = repo / "snapshots" / "rev1"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(Path("../../blobs/0123abcd"))
    assert len(load(snapshot)) == 2


def test_run_folder_checkpoint_linking_out_is_refused(tmp_path):
    from topo.checkpoint import save_checkpoint
    from topo.topology import Topology

    net = Topology.from_masks([_sparse_weights(1, (4, 3)) != 0, _sparse_weights(2, (2, 4)) != 0])
    outside = tmp_path / "elsewhere.safetensors"
    save_checkpoint(net, outside, epoch=3)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(net, run / "checkpoints" / "epoch_0001.safetensors", epoch=1)
    (run / "checkpoints" / "epoch_0002.safetensors").symlink_to(outside)
    with pytest.raises(TopoError, match=r"epoch_0002\.safetensors: refused: checkpoint is a link"):
        load(run)
    (run / "checkpoints" / "epoch_0002.safetensors").unlink()
    assert load(run).epoch == 1


def test_link_loops_are_one_clean_error(tmp_path):
    folder = tmp_path / "loop"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(folder / "model.safetensors")
    with pytest.raises(TopoError):
        load(folder)


def test_topo_checkpoint_budget_is_checked_from_the_header(tmp_path, monkeypatch):
    from topo.checkpoint import save_checkpoint
    from topo.topology import Topology

    net = Topology.from_masks([_sparse_weights(1, (4, 3)) != 0, _sparse_weights(2, (2, 4)) != 0])
    path = tmp_path / "epoch_0001.safetensors"
    save_checkpoint(net, path, epoch=1)
    assert [layer.nnz for layer in load(path)] == [layer.nnz for layer in net]
    monkeypatch.setenv("TOPO_MAX_LAYERS", "1")
    with pytest.raises(TopoError, match=r"epoch_0001\.safetensors: refused: this network has 2 layers"):
        load(path)
    monkeypatch.delenv("TOPO_MAX_LAYERS")
    monkeypatch.setenv("TOPO_MAX_DENSE_CELLS", "10")
    with pytest.raises(TopoError, match=r"epoch_0001\.safetensors: refused: layer 'layers.0'"):
        load(path)


def test_topo_checkpoint_with_sparse_masks_declaring_huge_shapes_is_refused(tmp_path):
    from safetensors.numpy import save_file

    from topo.checkpoint import save_checkpoint
    from topo.topology import Topology

    mask = np.zeros((200, 200), bool)
    mask[3, 4] = True  # very sparse: stored as CSR indices
    path = tmp_path / "epoch_0001.safetensors"
    save_checkpoint(Topology.from_masks([mask]), path, epoch=1)
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    assert "layers.0.mask.indptr" in tensors
    layers = json.loads(metadata["layers"])
    layers[0]["shape"] = [200, 10**12]  # the declared width: analyses would allocate per input neuron
    metadata["layers"] = json.dumps(layers)
    save_file(tensors, str(tmp_path / "wide.safetensors"), metadata=metadata)
    with pytest.raises(TopoError, match=r"wide\.safetensors: refused: layer 0 declares 200 x 1,000,000,000,000"):
        load(tmp_path / "wide.safetensors")

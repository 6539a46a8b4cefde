"""topo.formats.numpy_npz: .npz / .npy files, scipy sparse files and SET folders."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from topo.errors import TopoError
from topo.formats import _policy, detect_format, load
from topo.formats.numpy_npz import list_epochs


def _sparse(rng, shape, density=0.3):
    values = rng.normal(size=shape).astype(np.float32)
    values[rng.random(shape) >= density] = 0
    return values


def test_npz_keeps_archive_order_and_attaches_biases(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "layers.10.weight": _sparse(rng, (6, 8)),  # archive order: 10 first, as saved
        "layers.10.bias": np.arange(6, dtype=np.float32),
        "layers.2.weight": _sparse(rng, (4, 6)),
    }
    np.savez(tmp_path / "w.npz", **arrays)
    assert detect_format(tmp_path / "w.npz") == "numpy"
    net = load(tmp_path / "w.npz")
    assert net.names == ["layers.10", "layers.2"]
    assert np.array_equal(net[0].bias, np.arange(6))
    assert not net[1].standalone
    natural = load(tmp_path / "w.npz", order="natural", layout="out_in")
    assert natural.names == ["layers.2", "layers.10"] and natural[1].standalone
    assert any("do not chain" in w for w in natural.info["warnings"])


def test_npz_in_out_layout_is_detected_with_a_warning(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "keras_like.npz", _sparse(rng, (20, 30)), _sparse(rng, (30, 10)))
    net = load(tmp_path / "keras_like.npz")
    assert [layer.shape for layer in net] == [(30, 20), (10, 30)]
    assert any("[in, out]" in w for w in net.info["warnings"])
    forced = load(tmp_path / "keras_like.npz", layout="out_in")
    # read as [out, in], the arrays chain only the other way round: reordered, and said so
    assert forced.names == ["arr_1", "arr_0"] and not forced[1].standalone
    assert any("reordered" in w for w in forced.info["warnings"])


def test_npy_and_scipy_sparse_single_matrix(tmp_path):
    rng = np.random.default_rng(2)
    w = _sparse(rng, (5, 7))
    np.save(tmp_path / "w.npy", w)
    net = load(tmp_path / "w.npy")
    assert net[0].shape == (5, 7) and np.array_equal(net[0].mask.toarray(), w != 0)
    for fmt in ("csr", "csc", "coo"):
        sp.save_npz(tmp_path / f"m_{fmt}.npz", sp.random(9, 4, density=0.3, format=fmt, random_state=3))
        one = load(tmp_path / f"m_{fmt}.npz")
        assert one.info["format"] == "scipy-sparse" and one[0].shape == (9, 4)
        assert one[0].nnz == 11


def test_mask_arrays_pair_with_weights(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 6)).astype(np.float32)
    mask = rng.random((4, 6)) < 0.5
    np.savez(tmp_path / "m.npz", **{"fc.weight": w, "fc.mask": mask})
    net = load(tmp_path / "m.npz")
    assert net.names == ["fc"] and np.array_equal(net[0].mask.toarray(), mask)
    assert np.all(net[0].weight[~mask] == 0)


def test_set_folder_from_the_nnstd_study(shared_data):
    run = shared_data / "set-mlp" / "e5_s0_w0"
    if not run.is_dir():
        pytest.skip("set-mlp data not present")
    epochs = list_epochs(run)
    assert [p.name for p in epochs][:3] == ["epoch_000", "epoch_010", "epoch_020"]
    assert epochs[-1].name == "epoch_190" and len(epochs) == 9
    assert detect_format(run) == "numpy" and detect_format(epochs[0]) == "numpy"
    net = load(run)
    assert net.epoch == 190
    assert [layer.shape for layer in net] == [(784, 784)] * 3 + [(10, 784)]
    for density in net.densities[:3]:
        assert 0.004 < density < 0.007
    assert net.densities[3] == 1.0
    assert not any(layer.standalone for layer in net)
    # The last row is the bias, not an input: check against the raw file.
    raw = sp.load_npz(run / "epoch_190" / "weight_l0.npz")
    assert np.array_equal(net[0].mask.toarray(), (raw[:-1].toarray() != 0).T)
    np.testing.assert_allclose(net[0].bias, raw[-1].toarray().ravel())
    np.testing.assert_allclose(net[0].weight, raw[:-1].toarray().T)
    light = load(epochs[0], weights=False)
    assert light.epoch == 0 and light[0].weight is None and light[0].nnz == 3772
    single = load(run / "epoch_000" / "weight_l3.npz")
    assert single[0].shape == (10, 784) and single[0].bias.shape == (10,)


def test_list_epochs_refuses_other_folders(tmp_path):
    with pytest.raises(TopoError, match="not a SET run folder"):
        list_epochs(tmp_path)


def test_synthetic_set_run(tmp_path):
    rng = np.random.default_rng(4)
    for epoch in (0, 5, 12):
        folder = tmp_path / "run" / f"epoch_{epoch:03d}"
        folder.mkdir(parents=True)
        for k, (n_in, n_out) in enumerate([(6, 5), (5, 3)]):
            sp.save_npz(folder / f"weight_l{k}.npz", sp.csr_matrix(_sparse(rng, (n_in + 1, n_out))))
    net = load(tmp_path / "run")
    assert net.epoch == 12 and [layer.shape for layer in net] == [(5, 6), (3, 5)]
    assert net.info["epochs"] == ["epoch_000", "epoch_005", "epoch_012"]


def test_non_numeric_object_and_nan_arrays(tmp_path):
    np.savez(tmp_path / "s.npz", names=np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(TopoError, match="non-numeric"):
        load(tmp_path / "s.npz")
    np.save(tmp_path / "o.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(TopoError, match="o.npy"):
        load(tmp_path / "o.npy")
    w = np.ones((3, 3), np.float32)
    w[1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", w=w)
    net = load(tmp_path / "nan.npz")
    assert net[0].nnz == 9 and any("NaN" in x for x in net.info["warnings"])


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(_policy, "EXPANSION_FLOOR_BYTES", 1024**2)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, w=np.zeros((2048, 2048), np.float32))  # 16 MiB of zeros, a few KiB on disk
    with pytest.raises(TopoError, match="would expand"):
        load(path)
    monkeypatch.setattr(_policy, "EXPANSION_FLOOR_BYTES", 64 * 1024**2)
    monkeypatch.setenv("TOPO_MAX_TENSOR_BYTES", str(1024**2))
    with pytest.raises(TopoError, match="more than the limit.*TOPO_MAX_TENSOR_BYTES"):
        load(path)


def test_member_declaring_more_than_it_holds(tmp_path):
    path = tmp_path / "lie.npz"
    header = b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little")
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += text.encode().ljust(117) + b"\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", header + bytes(64))
    with pytest.raises(TopoError, match="declares"):
        load(path)


def test_truncated_and_empty(tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "ok.npz", w=_sparse(rng, (30, 30)))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(TopoError, match="cut.npz"):
        load(tmp_path / "cut.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(TopoError, match="empty.npz"):
        load(tmp_path / "empty.npz")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(TopoError, match="empty.npy"):
        load(tmp_path / "empty.npy")

"""topo.formats.keras_h5: files written with h5py in Keras's documented HDF5 layout."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from topo.errors import TopoError  # noqa: E402
from topo.formats import detect_format, load  # noqa: E402


def _write_layer(root, layer, variables):
    """One Keras layer group: ``weight_names`` attribute and one dataset per variable."""
    group = root.create_group(layer)
    group.attrs["weight_names"] = np.array([name.encode() for name, _ in variables])
    for name, value in variables:
        group.create_dataset(name, data=value)


def _sparse(rng, shape, density=0.3):
    values = rng.normal(size=shape).astype(np.float32)
    values[rng.random(shape) >= density] = 0
    return values


def test_save_weights_layout_dense(tmp_path):
    rng = np.random.default_rng(0)
    k1, k2 = _sparse(rng, (20, 30)), _sparse(rng, (30, 10))  # Dense kernels are [in, out]
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        # Listed out of alphabetical order: layer_names is the order.
        f.attrs["layer_names"] = np.array([b"hidden", b"dropout", b"a_output"])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = np.bytes_(b"2.15.0")  # fixed-length: variable-length ones are not read
        _write_layer(f, "hidden", [("hidden/kernel:0", k1), ("hidden/bias:0", np.ones(30, np.float32))])
        _write_layer(f, "dropout", [])
        _write_layer(f, "a_output", [("a_output/kernel:0", k2), ("a_output/bias:0", np.zeros(10, np.float32))])
    assert detect_format(path) == "keras-h5"
    net = load(path)
    assert net.names == ["hidden", "a_output"]
    assert [layer.shape for layer in net] == [(30, 20), (10, 30)]
    assert np.array_equal(net[0].mask.toarray(), k1.T != 0)
    np.testing.assert_allclose(net[0].weight, k1.T)
    assert np.all(net[0].bias == 1)
    assert net.info["keras_version"] == "2.15.0"


def test_model_save_layout_with_prune_low_magnitude_and_conv(tmp_path):
    rng = np.random.default_rng(1)
    conv = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)  # Keras Conv2D: [kh, kw, in, out]
    conv[:, :, 1, 3] = 0  # channel 1 -> 3 removed entirely
    kernel = rng.normal(size=(4, 6)).astype(np.float32)
    mask = (rng.random((4, 6)) < 0.4).astype(np.float32)
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = b"{}"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([b"conv2d", b"flatten", b"prune_low_magnitude_dense"])
        _write_layer(weights, "conv2d", [("conv2d/kernel:0", conv), ("conv2d/bias:0", np.zeros(4, np.float32))])
        _write_layer(weights, "flatten", [])
        _write_layer(
            weights,
            "prune_low_magnitude_dense",
            [
                ("prune_low_magnitude_dense/mask:0", mask),
                ("prune_low_magnitude_dense/threshold:0", np.float32(0.1)),
                ("prune_low_magnitude_dense/pruning_step:0", np.int64(100)),
                ("prune_low_magnitude_dense/kernel:0", kernel),
                ("prune_low_magnitude_dense/bias:0", np.zeros(6, np.float32)),
            ],
        )
        f.create_group("optimizer_weights")
    net = load(path)
    assert net.names == ["conv2d", "prune_low_magnitude_dense"]
    conv_layer = net[0]
    assert conv_layer.shape == (4, 2) and conv_layer.info["kind"] == "conv"
    assert not conv_layer.mask[3, 1] and conv_layer.nnz == 7
    assert conv_layer.info["kernel_density"] == pytest.approx(1 - 9 / conv.size)
    dense = net[1]
    assert dense.shape == (6, 4)
    assert np.array_equal(dense.mask.toarray(), mask.T != 0)  # the mask variable, not the kernel's pattern
    assert "mask" in dense.info["note"]


def test_split_layer_names_attribute(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "split.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names0"] = np.array([b"d1"])
        f.attrs["layer_names1"] = np.array([b"d2"])
        _write_layer(f, "d1", [("d1/kernel:0", _sparse(rng, (5, 4)))])
        _write_layer(f, "d2", [("d2/kernel:0", _sparse(rng, (4, 3)))])
    assert load(path).names == ["d1", "d2"]


def test_not_keras_and_non_numeric_and_huge_declared(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    with pytest.raises(TopoError, match="not Keras weights"):
        load(path)

    strings = tmp_path / "strings.h5"
    with h5py.File(strings, "w") as f:
        f.attrs["layer_names"] = np.array([b"d"])
        _write_layer(f, "d", [("d/kernel:0", np.array([[b"a", b"b"]]))])
    with pytest.raises(TopoError, match="non-numeric"):
        load(strings)

    huge = tmp_path / "huge.h5"
    with h5py.File(huge, "w") as f:
        f.attrs["layer_names"] = np.array([b"d"])
        group = f.create_group("d")
        group.attrs["weight_names"] = np.array([b"d/kernel:0"])
        group.create_dataset("d/kernel:0", shape=(200000, 200000), dtype="f4", chunks=(64, 64))  # never written
    with pytest.raises(TopoError, match="huge.h5: refused: dataset .* declares"):
        load(huge)


def test_truncated(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"d"])
        _write_layer(f, "d", [("d/kernel:0", _sparse(rng, (50, 40)))])
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(TopoError, match="cut.h5"):
        load(tmp_path / "cut.h5")


def test_model_config_pruning_schedule_is_requested_sparsity(tmp_path):
    """tf.keras 2 ``model.save("x.h5")`` keeps the model's JSON config in ``model_config``:
    a tfmot wrapper's ``pruning_schedule`` is that layer's requested sparsity."""
    import json

    rng = np.random.default_rng(3)
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "PruneLowMagnitude", "config": {
            "name": "prune_low_magnitude_dense",
            "pruning_schedule": {"class_name": "PolynomialDecay", "config": {
                "initial_sparsity": 0.2, "final_sparsity": 0.8, "begin_step": 0, "end_step": 100,
                "power": 3, "frequency": 10}},
            "layer": {"class_name": "Dense", "config": {"name": "dense", "units": 6}}}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 2}},
    ]}}
    mask = (rng.random((4, 6)) < 0.2).astype(np.float32)
    path = tmp_path / "pruned.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = np.bytes_(json.dumps(config))  # fixed-length
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([b"prune_low_magnitude_dense", b"dense_1"])
        _write_layer(weights, "prune_low_magnitude_dense", [
            ("prune_low_magnitude_dense/mask:0", mask),
            ("prune_low_magnitude_dense/kernel:0", rng.normal(size=(4, 6)).astype(np.float32)),
        ])
        _write_layer(weights, "dense_1", [("dense_1/kernel:0", _sparse(rng, (6, 2)))])
    net = load(path)
    assert net.info["requested_sparsity"] == {"prune_low_magnitude_dense": 0.8}
    from topo.analysis.patterns import sparsity_report

    report = sparsity_report(net)
    first = report.layers[0]
    assert (first.requested, first.achieved) == (0.8, pytest.approx(1 - np.count_nonzero(mask) / mask.size))
    assert report.layers[1].requested is None

    # A model_config that is not JSON is only informative: the weights still read, no target.
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = np.bytes_("{not json")
    assert "requested_sparsity" not in load(path).info
    # tf.keras's own variable-length string is read too (in a child process, see _hdf5).
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = json.dumps(config)
        assert h5py.h5a.open(f.id, b"model_config").get_type().is_variable_str()
    net = load(path)
    assert net.info["requested_sparsity"] == {"prune_low_magnitude_dense": 0.8}

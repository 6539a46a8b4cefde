"""topo.formats.keras3: ``.keras`` archives and ``.weights.h5`` files written by Keras 3.

The fixtures were written by Keras itself (tests/fixtures/keras3/make_fixtures.py); every
truth here is read straight from those files with zipfile, json and h5py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from topo.errors import TopoError  # noqa: E402
from topo.formats import detect_format, load  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "keras3"


def _h5(path: Path):
    """The weights HDF5 of a fixture (the archive's member, in memory, for ``.keras``)."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    return h5py.File(path, "r")


def _config(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _vars_name(group) -> str:
    name = group["vars"].attrs["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _chain_from_config(config: dict) -> list[str]:
    """Layer names from the input forward, following each call's keras_history (a chain)."""
    layers = config["config"]["layers"]
    consumer = {}
    for layer in layers:
        for node in layer.get("inbound_nodes", []):
            for arg in node["args"]:
                consumer[arg["config"]["keras_history"][0]] = layer["name"]
    name = config["config"]["input_layers"][0]
    order = []
    while name in consumer:
        name = consumer[name]
        order.append(name)
    return order


@pytest.mark.parametrize("name", ["mlp.keras", "mlp.weights.h5"])
def test_sequential_masks_weights_and_biases(name):
    path = FIXTURES / name
    assert detect_format(path) == "keras3"
    net = load(path)
    with _h5(path) as f:
        keys = ["dense", "dense_1", "dense_2"]  # Keras's group names, in model order
        kernels = [f[f"layers/{k}/vars/0"][()] for k in keys]
        biases = [f[f"layers/{k}/vars/1"][()] for k in keys]
        names = [_vars_name(f[f"layers/{k}"]) for k in keys]
    assert net.names == names
    assert [layer.shape for layer in net] == [k.T.shape for k in kernels]
    assert all(not layer.standalone for layer in net)
    for layer, kernel, bias in zip(net, kernels, biases):
        assert np.array_equal(layer.mask.toarray(), kernel.T != 0)  # Dense kernels are [in, out]
        np.testing.assert_array_equal(layer.weight, kernel.T)
        np.testing.assert_array_equal(layer.bias, bias)
    assert 0 < net[0].mask.nnz < kernels[0].size  # the fixture is sparse
    if name.endswith(".keras"):
        assert net.info["format"] == "keras"
        assert net.info["keras_version"].startswith("3.")
        assert net.info["order"] == "the model config's layer list"
    else:
        assert net.info["format"] == "keras3-weights"
        assert "no model config" in net.info["order"]


@pytest.mark.parametrize("name", ["functional.keras", "functional.weights.h5"])
def test_functional_order_is_the_graph(name):
    path = FIXTURES / name
    expected = _chain_from_config(_config(FIXTURES / "functional.keras"))
    assert expected != sorted(expected)  # names sort differently from the graph
    net = load(path)
    if name.endswith(".weights.h5"):  # without a config only Keras's group keys name the layers
        with _h5(path) as f:
            key_of = {_vars_name(f["layers"][key]): key for key in f["layers"] if "vars" in f["layers"][key]}
        expected = [key_of[layer_name] for layer_name in expected]
    assert net.names == expected
    assert all(not layer.standalone for layer in net)
    assert [layer.n_in for layer in net][1:] == [layer.n_out for layer in net][:-1]


def test_functional_config_listed_out_of_order_still_gives_graph_order(tmp_path):
    """The layer list of a config is not trusted: the calls (inbound_nodes) decide."""
    source = FIXTURES / "functional.keras"
    config = _config(source)
    expected = _chain_from_config(config)
    config["config"]["layers"] = list(reversed(config["config"]["layers"]))
    edited = tmp_path / "edited.keras"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(edited, "w") as new:
        for member in old.namelist():
            data = json.dumps(config).encode() if member == "config.json" else old.read(member)
            new.writestr(member, data)
    net = load(edited)
    assert net.names == expected
    assert net.info["order"] == "the model config's layer graph, in topological order"


def test_convolutions_become_channel_layers():
    path = FIXTURES / "cnn.keras"
    net = load(path)
    with _h5(path) as f:
        conv_a = f["layers/conv2d/vars/0"][()]  # [kh, kw, in, out]
        conv_b = f["layers/conv2d_1/vars/0"][()]
        dense = f["layers/dense/vars/0"][()]
    assert net.names == ["conv_a", "conv_b", "logits"]
    for layer, kernel in zip(net, (conv_a, conv_b)):
        channel = (kernel != 0).any(axis=(0, 1)).T  # [out, in]
        assert np.array_equal(layer.mask.toarray(), channel)
        assert layer.info["kernel_size"] == list(kernel.shape[:2])
        assert layer.info["kernel_density"] == pytest.approx(np.count_nonzero(kernel) / kernel.size)
    assert not net[0].mask.toarray().all()  # whole channel pairs were removed
    assert np.array_equal(net[2].mask.toarray(), dense.T != 0)
    assert all(not layer.standalone for layer in net)


@pytest.mark.parametrize("name", ["nested.keras", "nested.weights.h5"])
def test_nested_model_layers_in_place(name):
    path = FIXTURES / name
    net = load(path)
    with _h5(path) as f:
        stem = f["layers/dense/vars/0"][()]
        inner_a = f["layers/sequential/layers/dense/vars/0"][()]
        inner_b = f["layers/sequential/layers/dense_1/vars/0"][()]
        head = f["layers/dense_1/vars/0"][()]
        block = _vars_name(f["layers/sequential"])
    if name.endswith(".keras"):
        assert net.names == ["stem", f"{block}/inner_a", f"{block}/inner_b", "head"]
    else:  # without a config only Keras's group keys name the layers
        assert net.names == ["dense", "sequential/dense", "sequential/dense_1", "dense_1"]
    for layer, kernel in zip(net, (stem, inner_a, inner_b, head)):
        assert np.array_equal(layer.mask.toarray(), kernel.T != 0)
    assert all(not layer.standalone for layer in net)
    assert any(key.startswith("layers/batch_normalization") for key in net.info["skipped"])


def test_embedding_and_lstm_are_standalone():
    path = FIXTURES / "rnn.keras"
    net = load(path)
    with _h5(path) as f:
        table = f["layers/embedding/vars/0"][()]
        kernel = f["layers/lstm/cell/vars/0"][()]
        recurrent = f["layers/lstm/cell/vars/1"][()]
        out = f["layers/dense/vars/0"][()]
    assert net.names == ["tokens", "lstm/kernel", "lstm/recurrent_kernel", "out"]
    assert net[0].shape == (table.shape[1], table.shape[0])
    assert net[1].info.get("role") == "recurrent" and net[1].standalone
    assert np.array_equal(net[2].mask.toarray(), recurrent.T != 0)
    assert np.array_equal(net[1].mask.toarray(), kernel.T != 0)
    assert np.array_equal(net[3].mask.toarray(), out.T != 0)


def test_weights_false_keeps_masks_only():
    net = load(FIXTURES / "mlp.keras", weights=False)
    assert all(layer.weight is None for layer in net)
    assert net[0].mask.nnz > 0


def test_cli_inspect_reads_a_keras_archive():
    from click.testing import CliRunner

    from topo_cli.main import main

    result = CliRunner().invoke(main, ["inspect", str(FIXTURES / "functional.keras"), "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    text = json.dumps(payload)
    assert "z_first" in text and "a_head" in text


# -- hostile archives ------------------------------------------------------------------
def _keras_zip(path: Path, h5_bytes: bytes, compress: int = zipfile.ZIP_STORED) -> Path:
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d"}, "name": "d"}]}}
    with zipfile.ZipFile(path, "w", compression=compress) as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("model.weights.h5", h5_bytes)
    return path


def _keras3_h5(write) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars")
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "d"
        write(group)
    return buffer.getvalue()


def test_external_link_inside_a_keras_archive_is_refused(tmp_path):
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["w"] = np.ones((3, 2), np.float32)
    data = _keras3_h5(lambda g: g.__setitem__("0", h5py.ExternalLink(str(secret), "/w")))
    path = _keras_zip(tmp_path / "linked.keras", data)
    with pytest.raises(TopoError, match=r"linked\.keras: refused: HDF5 member .* external link"):
        load(path)


def test_external_storage_in_a_weights_file_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.arange(6, dtype=np.float32).tobytes())
    path = tmp_path / "external.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        group = f.create_group("layers/dense/vars")
        group.create_dataset("0", shape=(3, 2), dtype="f4", external=[(str(outside), 0, 24)])
    assert detect_format(path) == "keras3"
    with pytest.raises(TopoError, match=r"external\.weights\.h5: refused: dataset .* external files"):
        load(path)


def test_archive_without_weights_member_names_the_problem(tmp_path):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(TopoError, match=r"empty\.keras: a zip archive without model\.weights\.h5"):
        load(path)


def test_wrappers_bidirectional_time_distributed_and_a_stored_mask():
    path = FIXTURES / "wrappers.keras"
    config = _config(path)
    net = load(path)
    with _h5(path) as f:
        per_step = f["layers/time_distributed/layer/vars/0"][()]
        forward = f["layers/bidirectional/forward_layer/cell/vars/0"][()]
        backward_recurrent = f["layers/bidirectional/backward_layer/cell/vars/1"][()]
        kernel = f["layers/prune_low_magnitude/layer/vars/0"][()]
        mask = f["layers/prune_low_magnitude/vars/0"][()]
    names = [layer["name"] for layer in config["config"]["layers"]]
    assert names[1:] == ["steps", "both_ways", "pruned"]
    assert net.names == ["steps", "both_ways/forward/kernel", "both_ways/forward/recurrent_kernel",
                         "both_ways/backward/kernel", "both_ways/backward/recurrent_kernel", "pruned"]
    assert np.array_equal(net[0].mask.toarray(), per_step.T != 0)
    assert np.array_equal(net[1].mask.toarray(), forward.T != 0)
    assert np.array_equal(net[4].mask.toarray(), backward_recurrent.T != 0)
    assert all(net[i].info.get("role") == "recurrent" for i in range(1, 5))
    # The stored mask wins over the nonzero pattern: the kernel itself is dense.
    assert np.count_nonzero(kernel) == kernel.size and 0 < np.count_nonzero(mask) < mask.size
    assert np.array_equal(net[5].mask.toarray(), mask.T != 0)
    assert "mask from the wrapper" in net[5].info["note"]


def test_multi_head_attention_and_einsum_dense_by_equation():
    path = FIXTURES / "attention.keras"
    config = _config(path)
    equation = next(layer["config"]["equation"] for layer in config["config"]["layers"] if layer["name"] == "mix")
    assert equation == "abc,dc->abd"  # the kernel is [out, in]: only the equation says so
    net = load(path)
    with _h5(path) as f:
        parts = {p: f[f"layers/multi_head_attention/{p}/vars/0"][()] for p in
                 ("query_dense", "key_dense", "value_dense", "output_dense")}
        query_bias = f["layers/multi_head_attention/query_dense/vars/1"][()]
        mix = f["layers/einsum_dense/vars/0"][()]
    assert net.names == ["attn/query_dense", "attn/key_dense", "attn/value_dense", "attn/output_dense", "mix"]
    dim = parts["query_dense"].shape[0]
    for i, part in enumerate(("query_dense", "key_dense", "value_dense")):
        kernel = parts[part].reshape(dim, -1)  # [dim, heads, head_dim] -> [in, out]
        assert np.array_equal(net[i].mask.toarray(), kernel.T != 0)
        assert net[i].info.get("role") == "attention" and net[i].standalone
    np.testing.assert_array_equal(net[0].bias, query_bias.reshape(-1))
    output = parts["output_dense"].reshape(-1, dim)  # [heads, head_dim, dim] -> [in, out]
    assert np.array_equal(net[3].mask.toarray(), output.T != 0)
    assert np.array_equal(net[4].mask.toarray(), mix != 0)  # "dc": [out, in] already
    assert net[3].n_out == net[4].n_in and not net[4].standalone


def test_unzipped_model_folder():
    """``model.save(folder, zipped=False)``: the archive's members as files."""
    folder = FIXTURES / "mlp_unzipped_folder"
    assert detect_format(folder) == "keras3"
    net = load(folder)
    config = json.loads((folder / "config.json").read_text())
    with h5py.File(folder / "model.weights.h5", "r") as f:
        kernels = [f[f"layers/{k}/vars/0"][()] for k in ("dense", "dense_1", "dense_2")]
    assert net.names == [layer["config"]["name"] for layer in config["config"]["layers"]
                         if layer["class_name"] == "Dense"]
    for layer, kernel in zip(net, kernels):
        assert np.array_equal(layer.mask.toarray(), kernel.T != 0)
    assert net.info["format"] == "keras" and net.info["order"] == "the model config's layer list"


def test_unzipped_model_folder_with_weights_linked_from_elsewhere_is_refused(tmp_path):
    import os
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "mlp_unzipped_folder", folder)
    outside = tmp_path / "outside.h5"
    (folder / "model.weights.h5").rename(outside)
    os.symlink(outside, folder / "model.weights.h5")
    with pytest.raises(TopoError, match=r"model\.weights\.h5"):
        load(folder)


# -- requested sparsity: tfmot pruning schedules in the config ---------------------------
def test_tfmot_pruning_schedules_are_requested_beside_achieved():
    from click.testing import CliRunner

    from topo_cli.main import main

    path = FIXTURES / "scheduled.keras"
    wrappers = [layer for layer in _config(path)["config"]["layers"] if layer["class_name"] == "PruneLowMagnitude"]
    schedules = {w["config"]["name"]: w["config"]["pruning_schedule"] for w in wrappers}
    truth = {
        name: s["config"].get("target_sparsity", s["config"].get("final_sparsity")) for name, s in schedules.items()
    }
    assert truth == {"prune_low_magnitude_fc1": 0.75, "prune_low_magnitude_fc2": 0.9}
    with _h5(path) as f:
        achieved = {
            "prune_low_magnitude_fc1": 1 - np.count_nonzero(f["layers/prune_low_magnitude/vars/0"][()]) / 48,
            "prune_low_magnitude_fc2": 1 - np.count_nonzero(f["layers/prune_low_magnitude_1/vars/0"][()]) / 30,
        }
    assert load(path).info["requested_sparsity"] == truth

    result = CliRunner().invoke(main, ["audit", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {layer["name"]: layer for layer in json.loads(result.output)[0]["layers"]}
    for name, target in truth.items():
        assert rows[name]["requested_sparsity"] == target
        assert rows[name]["sparsity"] == pytest.approx(achieved[name])
    assert rows["head"]["requested_sparsity"] is None  # no wrapper, no target

    result = CliRunner().invoke(main, ["inspect", str(path), "--format", "json"])
    layers = {layer["name"]: layer for layer in json.loads(result.output)["layers"]}
    assert {name: layers[name]["requested_sparsity"] for name in truth} == truth
    table = CliRunner().invoke(main, ["inspect", str(path)]).output
    assert "requested" in table and "0.75" in table


def test_keras3_legacy_h5_save_reads_its_variable_length_names():
    """``model.save("x.h5")`` in Keras 3 writes ``layer_names`` as variable-length
    strings; the masks equal the kernels' nonzero patterns as h5py reads them."""
    path = FIXTURES / "mlp_legacy.h5"
    with h5py.File(path, "r") as f:
        weights = f["model_weights"]
        names = [str(n) for n in weights.attrs["layer_names"]]
        kernels = [weights[f"{n}/mlp/{n}/kernel"][()] for n in names]
    net = load(path)
    assert net.names == names
    for layer, kernel in zip(net.layers, kernels):
        np.testing.assert_array_equal(layer.mask.toarray(), kernel.T != 0)

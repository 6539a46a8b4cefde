"""topo.formats.onnx_model: exported and hand-built ONNX graphs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from topo.errors import TopoError  # noqa: E402
from topo.formats import detect_format, load  # noqa: E402


def _sparse(rng, shape, density=0.3):
    values = rng.normal(size=shape).astype(np.float32)
    values[rng.random(shape) >= density] = 0
    return values


def test_torch_export_of_a_pruned_mlp(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(12, 20), torch.nn.ReLU(), torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
    )
    with torch.no_grad():
        model[0].weight[model[0].weight.abs() < 0.15] = 0
    path = tmp_path / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 12),), str(path), dynamo=False)
    assert detect_format(path) == "onnx"
    net = load(path)
    assert [layer.shape for layer in net] == [(20, 12), (16, 20), (4, 16)]
    assert np.array_equal(net[0].mask.toarray(), (model[0].weight != 0).numpy())
    np.testing.assert_allclose(net[0].bias, model[0].bias.detach().numpy(), rtol=1e-6)
    assert net.info["format"] == "onnx"


def test_hand_built_gemm_transb_and_matmul(tmp_path):
    rng = np.random.default_rng(1)
    w_trans = _sparse(rng, (8, 6))  # Gemm transB=1: [out=8, in=6]
    w_plain = _sparse(rng, (8, 5))  # Gemm transB=0: [in=8, out=5]
    w_matmul = _sparse(rng, (5, 3))  # MatMul B: [in=5, out=3]
    bias = np.arange(3, dtype=np.float32)
    inits = [
        numpy_helper.from_array(w_trans, "fc_a.weight"),
        numpy_helper.from_array(w_plain, "fc_b.weight"),
        numpy_helper.from_array(w_matmul, "fc_c.weight"),
        numpy_helper.from_array(bias, "fc_c.bias"),
    ]
    nodes = [
        # Listed so that alphabetical order (fc_a, fc_b, fc_c) is not the node order.
        helper.make_node("Gemm", ["x", "fc_a.weight"], ["h1"], transB=1, name="first"),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "fc_b.weight"], ["h2"], transB=0, name="second"),
        helper.make_node("MatMul", ["h2", "fc_c.weight"], ["h3"], name="third"),
        helper.make_node("Add", ["h3", "fc_c.bias"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=inits,
    )
    path = tmp_path / "hand.onnx"
    onnx.save(helper.make_model(graph, producer_name="test"), str(path))
    net = load(path)
    assert net.names == ["fc_a", "fc_b", "fc_c"]
    assert [layer.shape for layer in net] == [(8, 6), (5, 8), (3, 5)]
    assert np.array_equal(net[0].mask.toarray(), w_trans != 0)
    assert np.array_equal(net[1].mask.toarray(), w_plain.T != 0)
    assert np.array_equal(net[2].mask.toarray(), w_matmul.T != 0)
    assert np.array_equal(net[2].bias, bias)
    assert not any(layer.standalone for layer in net)


def test_grouped_conv_and_gather_embedding(tmp_path):
    rng = np.random.default_rng(2)
    table = rng.normal(size=(10, 4)).astype(np.float32)
    conv = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)  # group=2: in 4 channels, 2 per group
    conv[0, 1] = 0
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("Conv", ["img", "conv.weight"], ["c"], group=2),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(conv, "conv.weight")],
    )
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph), str(path))
    net = load(path)
    emb, conv_layer = net
    assert emb.standalone and emb.shape == (4, 10)
    assert conv_layer.shape == (6, 4) and conv_layer.info["groups"] == 2
    expected = np.zeros((6, 4), bool)
    expected[:3, :2] = True
    expected[3:, 2:] = True
    expected[0, 1] = False
    assert np.array_equal(conv_layer.mask.toarray(), expected)


def test_corrupt_and_empty(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(TopoError, match="empty.onnx"):
        load(tmp_path / "empty.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f garbage")
    with pytest.raises(TopoError, match="junk.onnx"):
        load(tmp_path / "junk.onnx")


def test_declared_size_beyond_the_file_is_refused(tmp_path):
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[100000, 100000])
    tensor.raw_data = b"\x00" * 16
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[tensor],
    )
    path = tmp_path / "lie.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(TopoError, match="declares"):
        load(path)


def test_external_data_outside_the_folder_is_refused(tmp_path):
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[tensor],
    )
    path = tmp_path / "ext.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(TopoError, match="outside|inside the model"):
        load(path)

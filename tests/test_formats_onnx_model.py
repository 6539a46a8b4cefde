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


# -- fixtures written by torch.onnx.export and onnx.helper (tests/fixtures/onnx) ----------
FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "onnx"


def _initializers(model) -> dict:
    """Every initializer and Constant tensor of a model, subgraphs included, as numpy."""
    found = {}

    def walk(graph):
        for init in graph.initializer:
            found[init.name] = numpy_helper.to_array(init)
        for node in graph.node:
            for a in node.attribute:
                if node.op_type == "Constant" and a.name == "value":
                    found[node.output[0]] = numpy_helper.to_array(a.t)
                if a.HasField("g"):
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    return found


def test_if_branches_of_a_torch_cond_export():
    path = FIXTURES / "cond.onnx"
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node][-1] == "If"
    values = _initializers(model)
    net = load(path)
    assert net.names == ["stem", "head_pos", "head_neg"]  # then branch, then else branch
    for layer, key in zip(net, ("stem.weight", "head_pos.weight", "head_neg.weight")):
        assert np.array_equal(layer.mask.toarray(), values[key] != 0)  # Gemm transB=1: [out, in]
    assert not net[1].standalone and net[2].standalone  # the two heads are parallel branches


def test_constants_and_initializers_inside_if_and_loop_subgraphs():
    path = FIXTURES / "subgraph_constants.onnx"
    values = _initializers(onnx.load(str(path)))
    net = load(path)
    assert net.names == ["stem", "then", "else", "loop"]
    assert np.array_equal(net[0].mask.toarray(), values["stem_w"].T != 0)  # MatMul B is [in, out]
    assert np.array_equal(net[1].mask.toarray(), values["then_w"].T != 0)  # a Constant node in a branch
    assert np.array_equal(net[2].mask.toarray(), values["else_w"] != 0)  # a branch initializer, transB=1
    assert np.array_equal(net[3].mask.toarray(), values["loop_w"].T != 0)  # a Constant node in a Loop body
    assert [layer.standalone for layer in net] == [False, False, True, False]


def test_nodes_stored_out_of_order_are_read_in_graph_order():
    path = FIXTURES / "unsorted.onnx"
    model = onnx.load(str(path))
    values = _initializers(model)
    # The truth: follow the data from the graph input through the MatMuls.
    by_input = {n.input[0]: n for n in model.graph.node}
    name, chain = model.graph.input[0].name, []
    while name in by_input:
        node = by_input[name]
        if node.op_type == "MatMul":
            chain.append(node.input[1])
        name = node.output[0]
    assert chain != [n.input[1] for n in model.graph.node if n.op_type == "MatMul"]
    net = load(path)
    assert [layer.source.split(":")[1] for layer in net] == chain
    for layer, key in zip(net, chain):
        assert np.array_equal(layer.mask.toarray(), values[key].T != 0)
    assert all(not layer.standalone for layer in net)
    assert any("not stored in topological order" in w for w in net.info["warnings"])


def test_lstm_gru_rnn_matrices_are_recurrent_layers():
    path = FIXTURES / "recurrent.onnx"
    model = onnx.load(str(path))
    values = _initializers(model)
    net = load(path)
    expected = []
    for node in model.graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN"):
            w, r = values[node.input[1]], values[node.input[2]]
            b = values[node.input[3]]
            for d in range(w.shape[0]):
                expected.append((w[d], b[d, : w.shape[1]]))
                expected.append((r[d], b[d, w.shape[1]:]))
    recurrent = [layer for layer in net if layer.info.get("role") == "recurrent"]
    assert len(recurrent) == len(expected) == 2 + 4 + 2  # LSTM, bidirectional GRU, RNN
    for layer, (matrix, bias) in zip(recurrent, expected):
        assert np.array_equal(layer.mask.toarray(), matrix != 0)  # [gates * hidden, in]: already [out, in]
        np.testing.assert_array_equal(layer.bias, bias)
        assert layer.standalone
    assert recurrent[2].name.endswith("W[forward]") and recurrent[4].name.endswith("W[reverse]")
    assert net[-1].shape == values["fc.weight"].shape and not net[-1].standalone
    assert any("recurrent kernels kept standalone" in w for w in net.info["warnings"])


def test_grouped_conv_from_torch_export_is_block_diagonal():
    path = FIXTURES / "grouped_conv.onnx"
    model = onnx.load(str(path))
    values = _initializers(model)
    conv = [n for n in model.graph.node if n.op_type == "Conv"][1]
    groups = [a.i for a in conv.attribute if a.name == "group"][0]
    kernel = values[conv.input[1]]  # [out, in / groups, kh, kw]
    assert groups == 2
    n_out, n_in_group = kernel.shape[:2]
    expected = np.zeros((n_out, n_in_group * groups), bool)
    per_group = n_out // groups
    for g in range(groups):
        rows = slice(g * per_group, (g + 1) * per_group)
        expected[rows, g * n_in_group:(g + 1) * n_in_group] = (kernel[rows] != 0).any(axis=(2, 3))
    net = load(path)
    assert np.array_equal(net[1].mask.toarray(), expected)
    assert net[1].info["groups"] == 2
    assert [layer.standalone for layer in net] == [False, False, False]


def test_conv_with_200000_groups_reads_in_bounded_memory_and_time(tmp_path):
    """0.8 MB of weights that declare a 200,000 x 200,000 channel mask (40 GB dense)."""
    import subprocess
    import sys
    import textwrap
    import time

    groups = 200_000
    weight = np.ones((groups, 1, 1, 1), np.float32)
    weight[::3] = 0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=groups, name="bomb")],
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, groups, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, groups, 1, 1])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    path = tmp_path / "groups.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert path.stat().st_size < 1_000_000
    script = textwrap.dedent(
        f"""
        import resource, sys
        from topo.formats import load
        net = load({str(path)!r}, weights=False)
        layer = net[0]
        print(layer.shape[0], layer.shape[1], layer.mask.nnz)
        print("MAXRSS_KB", int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]))
        """
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    shape_line, rss_line = done.stdout.strip().splitlines()[-2:]
    assert shape_line.split() == [str(groups), str(groups), str(int(np.count_nonzero(weight)))]
    assert int(rss_line.split()[1]) < 1024**2
    assert elapsed < 10


def test_local_functions_from_export_modules_as_functions():
    """Each block is a call of a local function; its weights arrive as the call's inputs."""
    path = FIXTURES / "functions.onnx"
    model = onnx.load(str(path))
    assert model.functions and all(n.op_type == "Block" for n in model.graph.node)
    values = _initializers(model)
    weights = [n.input[1] for n in model.graph.node]  # the actual weight of each call
    net = load(path)
    assert len(net) == len(weights) == 3
    for layer, key in zip(net, weights):
        assert np.array_equal(layer.mask.toarray(), values[key] != 0)  # Gemm transB=1
        np.testing.assert_array_equal(layer.bias, values[key.replace("weight", "bias")])
    assert all(not layer.standalone for layer in net)


def test_sparse_initializer_and_sparse_constant(tmp_path):
    rng = np.random.default_rng(3)
    dense_a = _sparse(rng, (7, 5))  # MatMul B [in=7, out=5], stored sparse with linear indices
    dense_b = _sparse(rng, (5, 4))  # a Constant node's sparse_value, [nnz, 2] indices
    flat = np.flatnonzero(dense_a)
    sparse_a = helper.make_sparse_tensor(
        numpy_helper.from_array(dense_a.reshape(-1)[flat], "w_a"),
        numpy_helper.from_array(flat.astype(np.int64), "w_a_indices"), [7, 5])
    rows, cols = np.nonzero(dense_b)
    sparse_b = helper.make_sparse_tensor(
        numpy_helper.from_array(dense_b[rows, cols], "w_b_values"),
        numpy_helper.from_array(np.stack([rows, cols], 1).astype(np.int64), "w_b_indices"), [5, 4])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w_a"], ["h"], name="first"),
         helper.make_node("Constant", [], ["w_b"], sparse_value=sparse_b),
         helper.make_node("MatMul", ["h", "w_b"], ["y"], name="second")],
        "sparse",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        sparse_initializer=[sparse_a],
    )
    path = tmp_path / "sparse.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    net = load(path)
    assert [layer.shape for layer in net] == [(5, 7), (4, 5)]
    assert np.array_equal(net[0].mask.toarray(), dense_a.T != 0)
    assert np.array_equal(net[1].mask.toarray(), dense_b.T != 0)
    np.testing.assert_allclose(net[0].weight, dense_a.T)


def test_sparse_initializer_with_indices_outside_its_shape_is_refused(tmp_path):
    bad = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(2, np.float32), "w"),
        numpy_helper.from_array(np.array([0, 10**12], np.int64), "w_indices"), [3, 3])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        sparse_initializer=[bad],
    )
    path = tmp_path / "bad_sparse.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(TopoError, match=r"bad_sparse\.onnx: sparse tensor 'w' has indices outside its shape"):
        load(path)


def test_weights_inside_a_scan_body(tmp_path):
    rng = np.random.default_rng(8)
    cell = _sparse(rng, (4, 4))  # a Constant node inside the Scan body, MatMul B [in, out]
    head = _sparse(rng, (4, 2))
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["cell_w"], value=numpy_helper.from_array(cell, "cell_w")),
         helper.make_node("Add", ["state_in", "x_t"], ["mixed"]),
         helper.make_node("MatMul", ["mixed", "cell_w"], ["state_out"], name="cell"),
         helper.make_node("Identity", ["state_out"], ["y_t"])],
        "body",
        [helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [1, 4])],
    )
    graph = helper.make_graph(
        [helper.make_node("Scan", ["s0", "xs"], ["s_last", "ys"], body=body, num_scan_inputs=1, name="scan"),
         helper.make_node("MatMul", ["s_last", "head_w"], ["y"], name="head")],
        "scan",
        [helper.make_tensor_value_info("s0", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("xs", TensorProto.FLOAT, [3, 1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[numpy_helper.from_array(head, "head_w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path / "scan.onnx"
    onnx.save(model, str(path))
    net = load(path)
    assert [layer.source.split(":")[1] for layer in net] == ["cell_w", "head_w"]
    assert np.array_equal(net[0].mask.toarray(), cell.T != 0)
    assert np.array_equal(net[1].mask.toarray(), head.T != 0)
    assert not net[1].standalone

import numpy as np
import pytest
import scipy.sparse as sp

from topo import Layer, Topology, TopoError


def test_layer_from_weight_mask_and_degrees():
    weight = np.array([[0.5, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    layer = Layer.from_weight("fc", weight)
    assert layer.shape == (2, 3)
    assert layer.nnz == 2
    assert layer.density == pytest.approx(2 / 6)
    assert layer.fan_in.tolist() == [2, 0]
    assert layer.fan_out.tolist() == [1, 0, 1]
    assert layer.mask.dtype == bool and sp.isspmatrix_csr(layer.mask)


def test_explicit_mask_zeroes_weights_outside_it():
    weight = np.ones((2, 2), dtype=np.float32)
    layer = Layer.from_weight("fc", weight, mask=np.array([[1, 0], [0, 1]]))
    assert layer.weight.tolist() == [[1, 0], [0, 1]]
    assert layer.nnz == 2


def test_sparse_and_dense_constructors_agree():
    rng = np.random.default_rng(0)
    dense = rng.random((5, 7)) < 0.3
    a = Layer.from_mask("a", dense)
    b = Layer.from_mask("a", sp.coo_matrix(dense.astype(np.float64)))
    assert (a.mask != b.mask).nnz == 0


def test_chain_validation_names_layers_and_shapes():
    with pytest.raises(TopoError) as err:
        Topology.from_masks([np.ones((4, 3)), np.ones((2, 5))], names=["fc1", "fc2"])
    message = str(err.value)
    assert "fc1" in message and "fc2" in message and "out=4" in message and "in=5" in message


def test_standalone_layer_breaks_the_chain_without_error():
    layers = [
        Layer.from_mask("fc1", np.ones((4, 3))),
        Layer.from_mask("embed", np.ones((6, 9)), standalone=True),
        Layer.from_mask("fc2", np.ones((2, 7))),
    ]
    topology = Topology(layers)
    # fc1: inputs + outputs; embed: own inputs + outputs; fc2 cannot chain to a standalone layer
    assert topology.widths == [3, 4, 9, 6, 7, 2]
    assert topology.node_slots == [(0, 1), (2, 3), (4, 5)]


def test_widths_nnz_and_density(small_topology):
    assert small_topology.widths == [20, 30, 10]
    assert small_topology.nnz == small_topology[0].nnz + small_topology[1].nnz
    assert small_topology.size == 30 * 20 + 10 * 30
    assert small_topology.density == pytest.approx(small_topology.nnz / small_topology.size)
    assert small_topology.densities == [small_topology[0].density, small_topology[1].density]
    assert small_topology["fc2"] is small_topology[1]


def test_bad_inputs_raise_topo_error():
    with pytest.raises(TopoError):
        Topology([])
    with pytest.raises(TopoError):
        Layer.from_mask("x", np.ones(3))
    with pytest.raises(TopoError):
        Layer.from_weight("x", np.array([["a", "b"]]))
    with pytest.raises(TopoError, match="bias"):
        Layer.from_weight("x", np.ones((2, 2)), bias=np.ones(3))
    with pytest.raises(TopoError, match="twice"):
        Topology.from_masks([np.ones((2, 2)), np.ones((2, 2))], names=["a", "a"])
    with pytest.raises(TopoError, match="statistic"):
        Layer.from_mask("x", np.ones((2, 2)), stats={"grad_mean": np.ones(5)})

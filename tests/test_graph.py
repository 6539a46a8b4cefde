import csv

import networkx as nx
import numpy as np
import pytest

from topo import Layer, Topology, TopoError
from topo.graph import export_graph, to_igraph, to_networkx, write_edgelist, write_gexf, write_graphml


def _check_counts(topology, n_nodes, n_edges):
    assert n_nodes == sum(topology.widths)
    assert n_edges == topology.nnz


def test_networkx_view(small_topology):
    graph = to_networkx(small_topology)
    _check_counts(small_topology, graph.number_of_nodes(), graph.number_of_edges())
    w1 = small_topology[0].weight
    rows, cols = np.nonzero(w1)
    for i, j in list(zip(rows, cols))[:5]:
        assert graph.has_edge((0, int(j)), (1, int(i)))
        assert graph.edges[(0, int(j)), (1, int(i))]["weight"] == pytest.approx(float(w1[i, j]))
    i, j = np.argwhere(w1 == 0)[0]
    assert not graph.has_edge((0, int(j)), (1, int(i)))
    assert graph.nodes[(2, 3)] == {"layer": 2, "neuron": 3, "layer_name": "fc2"}
    assert graph.nodes[(0, 0)]["layer_name"] == "input"


def test_igraph_view(small_topology):
    graph = to_igraph(small_topology)
    _check_counts(small_topology, graph.vcount(), graph.ecount())
    w2 = small_topology[1].weight
    rows, cols = np.nonzero(w2)
    for i, j in list(zip(rows, cols))[:5]:
        source = 20 + int(j)  # hidden neurons follow the 20 inputs
        target = 20 + 30 + int(i)
        edge = graph.get_eid(source, target)
        assert graph.es[edge]["weight"] == pytest.approx(float(w2[i, j]))
    assert graph.vs[25]["layer"] == 1 and graph.vs[25]["neuron"] == 5


def test_graphml_read_back_by_networkx(tmp_path, small_topology):
    path = write_graphml(small_topology, tmp_path / "g.graphml")
    graph = nx.read_graphml(path)
    _check_counts(small_topology, graph.number_of_nodes(), graph.number_of_edges())
    by_position = {(d["layer"], d["neuron"]): n for n, d in graph.nodes(data=True)}
    w1 = small_topology[0].weight
    i, j = np.argwhere(w1 != 0)[0]
    edge = graph.edges[by_position[(0, int(j))], by_position[(1, int(i))]]
    assert edge["weight"] == pytest.approx(float(w1[i, j]))


def test_gexf_and_edgelist(tmp_path, small_topology):
    graph = nx.read_gexf(write_gexf(small_topology, tmp_path / "g.gexf"))
    _check_counts(small_topology, graph.number_of_nodes(), graph.number_of_edges())
    path = write_edgelist(small_topology, tmp_path / "g.csv")
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == small_topology.nnz
    first = rows[0]
    w = small_topology[0].weight
    assert float(first["weight"]) == pytest.approx(
        float(w[int(first["target_neuron"]), int(first["source_neuron"])]), rel=1e-6
    )
    assert {r["layer_name"] for r in rows} == {"fc1", "fc2"}


def test_masks_without_weights_and_standalone_layers(tmp_path):
    layers = [Layer.from_mask("a", np.eye(3)), Layer.from_mask("emb", np.ones((2, 4)), standalone=True)]
    topology = Topology(layers)
    graph = to_networkx(topology)
    _check_counts(topology, graph.number_of_nodes(), graph.number_of_edges())
    assert graph.has_edge((2, 0), (3, 1))  # the standalone layer has its own input node layer
    assert "weight" not in graph.edges[(0, 0), (1, 0)]
    assert to_igraph(topology).ecount() == 11
    with pytest.raises(TopoError, match="unknown graph format"):
        export_graph(topology, tmp_path / "x", "dot")

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


def test_gexf_is_streamed_and_reads_back_as_the_networkx_view(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    weight = np.where(rng.random((7, 5)) < 0.5, rng.normal(size=(7, 5)), 0.0)
    layers = [
        Layer.from_weight('fc <1> & "x"', weight),
        Layer.from_mask("head", rng.random((3, 7)) < 0.6),  # no weights
        Layer.from_mask("emb", np.ones((2, 4)), standalone=True),
    ]
    topology = Topology(layers)
    expected = to_networkx(topology)
    import topo.graph

    def no_graph(*args, **kwargs):
        raise AssertionError("the GEXF writer must not build a networkx graph")

    monkeypatch.setattr(topo.graph, "to_networkx", no_graph)
    graph = nx.read_gexf(write_gexf(topology, tmp_path / "g.gexf"))
    assert graph.is_directed()
    nodes = {node: {k: v for k, v in data.items() if k != "label"} for node, data in graph.nodes(data=True)}
    assert nodes == {f"{k}:{j}": data for (k, j), data in expected.nodes(data=True)}
    edges = {(s, t): {k: v for k, v in d.items() if k != "id"} for s, t, d in graph.edges(data=True)}
    want = {(f"{s[0]}:{s[1]}", f"{t[0]}:{t[1]}"): d for s, t, d in expected.edges(data=True)}
    assert edges == want  # weights round-trip exactly (17 significant digits)
    assert sorted(int(d["id"]) for _, _, d in graph.edges(data=True)) == list(range(topology.nnz))
    # without weights: no weight attribute at all
    bare = nx.read_gexf(write_gexf(topology, tmp_path / "bare.gexf", weights=False))
    assert all("weight" not in d for _, _, d in bare.edges(data=True))


def test_gexf_memory_is_bounded_by_a_chunk_not_the_graph(tmp_path):
    import tracemalloc

    import scipy.sparse as sp

    n = 2000
    layers = [
        Layer.from_mask(f"l{k}", sp.random(n, n, density=0.015, random_state=k, format="csr")) for k in range(4)
    ]

    def peak_and_size(topology, name):
        tracemalloc.start()
        try:
            write_gexf(topology, tmp_path / name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak, (tmp_path / name).stat().st_size

    one_peak, one_size = peak_and_size(Topology(layers[:1]), "one.gexf")
    four_peak, four_size = peak_and_size(Topology(layers), "four.gexf")  # 240,000 edges
    assert four_size > 3.5 * one_size > 10_000_000
    # four layers cost what one does: a chunk of text and one layer's index arrays
    assert four_peak < 1.3 * one_peak
    assert four_peak < four_size / 2

"""Exporting a network with one million edges: to igraph and to GraphML.

Goals: igraph view under 5 s, GraphML file under 30 s. Baselines measured in the same
run: the networkx view (to_networkx) and networkx's own GraphML writer, the latter
on a tenth of the network and scaled up (it is too slow to run whole every time).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, sparse_mlp, verdict  # noqa: E402

from topo.graph import to_igraph, to_networkx, write_graphml  # noqa: E402


def main() -> None:
    # 784-1500-1500-10 at density d has 784*1500*d + 1500*1500*d + 15000 edges: d = 0.2875 gives 1.0 M (the dense output layer adds 15,000)
    network = sparse_mlp([784, 1500, 1500, 10], 0.2875, seed=0)
    small = sparse_mlp([784, 1500, 1500, 10], 0.02875, seed=0)
    print(f"network: {network.nnz:,} edges, {network.n_neurons:,} nodes")
    with tempfile.TemporaryDirectory() as tmp:
        igraph_time = median_time(lambda: to_igraph(network), repeats=3)
        nx_time = median_time(lambda: to_networkx(network), repeats=1, warmup=0)
        gml_time = median_time(lambda: write_graphml(network, Path(tmp) / "g.graphml"), repeats=3)
        size_mb = (Path(tmp) / "g.graphml").stat().st_size / 1e6

        import networkx as nx

        graph_small = to_networkx(small)
        start = time.perf_counter()
        nx.write_graphml(graph_small, Path(tmp) / "nx.graphml")
        nx_gml_time = (time.perf_counter() - start) * network.nnz / small.nnz
    print(f"to_igraph       median {igraph_time:6.2f} s  (goal < 5 s: {verdict(igraph_time, 5)}); "
          f"networkx view {nx_time:6.2f} s -> {nx_time / igraph_time:.1f}x faster")
    print(f"write_graphml   median {gml_time:6.2f} s  ({size_mb:.0f} MB; goal < 30 s: {verdict(gml_time, 30)}); "
          f"networkx writer ~{nx_gml_time:6.1f} s (scaled from {small.nnz:,} edges) -> {nx_gml_time / gml_time:.1f}x faster")


if __name__ == "__main__":
    main()

"""Exporting a network with one million edges: to igraph, to GraphML and to GEXF.

Goals: igraph view under 5 s, GraphML file under 30 s, GEXF no slower than networkx's
own GEXF writer and in bounded memory. Baselines measured in the same run: the
networkx view (to_networkx); networkx's own GraphML writer on a tenth of the network,
scaled up (too slow to run whole every time); networkx's GEXF writer on the whole
network, once, in a child process of its own like topo's GEXF writer, so that each
one's peak memory (the peak resident set while writing, reset before it through
/proc/self/clear_refs, above the resident set before it) is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, sparse_mlp, verdict  # noqa: E402

from topo.graph import to_igraph, to_networkx, write_graphml  # noqa: E402


_GEXF_CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from _common import sparse_mlp
network = sparse_mlp([784, 1500, 1500, 10], 0.2875, seed=0)
import gc; gc.collect()
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
# building the network peaks higher than it stays: reset the peak (Linux) and start from now
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
start = time.perf_counter()
if {writer!r} == "topo":
    from topo.graph import write_gexf
    write_gexf(network, {path!r})
else:
    import networkx as nx
    from topo.graph import to_networkx
    graph = to_networkx(network)
    graph = nx.relabel_nodes(graph, {{n: f"{{n[0]}}:{{n[1]}}" for n in graph.nodes}}, copy=False)
    nx.write_gexf(graph, {path!r})
seconds = time.perf_counter() - start
after = status("VmHWM")
print(json.dumps({{"seconds": seconds, "extra_mb": (after - before) / 1024}}))
"""


def gexf_in_child(writer: str, path: Path) -> dict:
    """Seconds and peak extra memory (MB) of one GEXF writer, in a fresh process."""
    code = _GEXF_CHILD.format(bench=str(Path(__file__).resolve().parent), writer=writer, path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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

    with tempfile.TemporaryDirectory() as tmp:
        runs = [gexf_in_child("topo", Path(tmp) / "topo.gexf") for _ in range(3)]
        topo_gexf = sorted(runs, key=lambda r: r["seconds"])[1]
        topo_size = (Path(tmp) / "topo.gexf").stat().st_size / 1e6
        nx_gexf = gexf_in_child("networkx", Path(tmp) / "nx.gexf")
        nx_size = (Path(tmp) / "nx.gexf").stat().st_size / 1e6
    ratio = nx_gexf["seconds"] / topo_gexf["seconds"]
    print(f"write_gexf      median {topo_gexf['seconds']:6.2f} s over 3 ({topo_size:.0f} MB), "
          f"+{topo_gexf['extra_mb']:.0f} MB peak; networkx writer {nx_gexf['seconds']:6.2f} s once "
          f"({nx_size:.0f} MB), +{nx_gexf['extra_mb']:.0f} MB peak -> {ratio:.1f}x faster "
          f"(goal: no slower than networkx: {'meets the goal' if ratio >= 1 else 'MISSES the goal'})")


if __name__ == "__main__":
    main()

"""Graph views of a Topology (networkx, igraph) and graph file writers.

Nodes are ``(node_layer, neuron)``: node layer 0 holds the network's inputs and node
layer k+1 the outputs of layer k (see :attr:`topo.Topology.node_slots` for layers
that stand alone). An edge runs from input neuron j of a layer to its output neuron
i when ``mask[i, j]``, carrying the weight where the topology has weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from topo.atomic import atomic_output, atomic_write_bytes
from topo.errors import TopoError
from topo.topology import Topology

__all__ = [
    "node_layers",
    "edge_arrays",
    "to_networkx",
    "to_igraph",
    "write_graphml",
    "write_gexf",
    "write_edgelist",
    "EXPORT_FORMATS",
    "export_graph",
]

EXPORT_FORMATS = ("graphml", "gexf", "edgelist")


def node_layers(topology: Topology) -> list[tuple[int, str]]:
    """``(width, name)`` of every node layer, in order.

    The network's inputs are named ``"input"``; a standalone layer's inputs are
    named ``"<layer>.input"``; every other node layer carries the name of the layer
    whose outputs it holds.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> node_layers(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])], names=["fc1", "fc2"]))
    [(3, 'input'), (2, 'fc1'), (1, 'fc2')]
    """
    slots: list[tuple[int, str]] = []
    for i, layer in enumerate(topology):
        if topology.starts_chain(i):
            slots.append((layer.n_in, "input" if i == 0 else f"{layer.name}.input"))
        slots.append((layer.n_out, layer.name))
    return slots


def _offsets(topology: Topology) -> np.ndarray:
    widths = np.array(topology.widths, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(widths)])


def edge_arrays(topology: Topology) -> Iterator[tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per layer: ``(layer_index, in_slot, out_slot, sources, targets, weights)``.

    ``sources`` are input neuron indices within node layer ``in_slot`` and
    ``targets`` output neuron indices within ``out_slot``; ``weights`` is None when
    the layer has no weight values.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])])
    >>> [(k, i, o, s.tolist(), t.tolist(), w) for k, i, o, s, t, w in edge_arrays(net)]
    [(0, 0, 1, [0, 1, 1, 2], [0, 0, 1, 1], None), (1, 1, 2, [0, 1], [0, 0], None)]
    """
    for index, (layer, (in_slot, out_slot)) in enumerate(zip(topology, topology.node_slots)):
        coo = layer.mask.tocoo()
        rows = coo.row.astype(np.int64)
        cols = coo.col.astype(np.int64)
        weights = None if layer.weight is None else np.asarray(layer.weight[rows, cols], dtype=np.float64)
        yield index, in_slot, out_slot, cols, rows, weights


def _global_edges(topology: Topology) -> tuple[np.ndarray, np.ndarray | None]:
    offsets = _offsets(topology)
    pairs = []
    weights = []
    any_weights = any(layer.weight is not None for layer in topology)
    for _, in_slot, out_slot, sources, targets, w in edge_arrays(topology):
        pairs.append(np.stack([sources + offsets[in_slot], targets + offsets[out_slot]], axis=1))
        if any_weights:
            weights.append(w if w is not None else np.full(sources.size, np.nan))
    edges = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
    return edges, (np.concatenate(weights) if any_weights else None)


def _node_attributes(topology: Topology) -> tuple[np.ndarray, np.ndarray, list[str]]:
    slots = node_layers(topology)
    layer_index = np.concatenate([np.full(w, k, dtype=np.int64) for k, (w, _) in enumerate(slots)])
    neuron = np.concatenate([np.arange(w, dtype=np.int64) for w, _ in slots])
    names = [name for w, name in slots for _ in range(w)]
    return layer_index, neuron, names


def to_networkx(topology: Topology, *, weights: bool = True):
    """The topology as a ``networkx.DiGraph``.

    Parameters
    ----------
    topology : Topology
    weights : bool
        Put each edge's weight in its ``weight`` attribute where weights exist.

    Returns
    -------
    networkx.DiGraph
        Nodes ``(node_layer, neuron)`` with attributes ``layer`` (node layer index),
        ``neuron`` and ``layer_name``; edges with ``weight`` where known.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> graph = to_networkx(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])], names=["fc1", "fc2"]))
    >>> graph.number_of_nodes(), graph.number_of_edges()
    (6, 6)
    >>> graph.nodes[(1, 0)]
    {'layer': 1, 'neuron': 0, 'layer_name': 'fc1'}
    """
    import networkx as nx

    graph = nx.DiGraph()
    for k, (width, name) in enumerate(node_layers(topology)):
        graph.add_nodes_from(((k, j), {"layer": k, "neuron": j, "layer_name": name}) for j in range(width))
    for _, in_slot, out_slot, sources, targets, w in edge_arrays(topology):
        src = sources.tolist()
        dst = targets.tolist()
        if weights and w is not None:
            graph.add_weighted_edges_from(
                ((in_slot, s), (out_slot, t), float(x)) for s, t, x in zip(src, dst, w.tolist())
            )
        else:
            graph.add_edges_from(((in_slot, s), (out_slot, t)) for s, t in zip(src, dst))
    return graph


def to_igraph(topology: Topology, *, weights: bool = True):
    """The topology as a directed ``igraph.Graph``.

    Vertex ``v`` is neuron ``neuron[v]`` of node layer ``layer[v]``, numbered node
    layer by node layer; vertex attributes ``layer``, ``neuron``, ``layer_name``;
    edge attribute ``weight`` where weights exist.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> graph = to_igraph(Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])]))
    >>> graph.vcount(), graph.ecount(), graph.is_directed()
    (6, 6, True)
    """
    import igraph as ig

    edges, edge_weights = _global_edges(topology)
    layer_index, neuron, names = _node_attributes(topology)
    graph = ig.Graph(n=int(layer_index.size), edges=edges, directed=True)
    graph.vs["layer"] = layer_index.tolist()
    graph.vs["neuron"] = neuron.tolist()
    graph.vs["layer_name"] = names
    if weights and edge_weights is not None:
        graph.es["weight"] = edge_weights.tolist()
    return graph


def write_graphml(topology: Topology, path: str | os.PathLike, *, weights: bool = True) -> Path:
    """Write GraphML (through igraph, which streams large graphs quickly), atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import networkx as nx
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_graphml(net, pathlib.Path(folder) / "net.graphml")
    ...     nx.read_graphml(path).number_of_edges()
    6
    """
    path = Path(path)
    graph = to_igraph(topology, weights=weights)
    with atomic_output(path) as tmp:
        graph.write_graphml(tmp)
    return path


_GEXF_CHUNK = 16384  # nodes or edges formatted at a time: bounds memory, keeps numpy's speed


def _xml_attribute(text: str) -> str:
    """``text`` escaped for a double-quoted XML attribute value."""
    from xml.sax.saxutils import escape

    return escape(text, {'"': "&quot;", "\n": "&#10;", "\t": "&#9;", "\r": "&#13;"})


def _gexf_lines(template: str, *columns: np.ndarray) -> str:
    """Rows of the ``columns`` formatted with the ``%``-style ``template``, concatenated."""
    rows = zip(*(column.tolist() for column in columns))
    return "".join(template % row for row in rows)


def write_gexf(topology: Topology, path: str | os.PathLike, *, weights: bool = True) -> Path:
    """Write GEXF 1.2, streaming, atomically.

    Nodes and edges are formatted a chunk at a time straight into the file, so memory
    stays bounded by the chunk (not the graph) and no networkx graph is built. The file
    reads back with ``networkx.read_gexf`` as the graph of :func:`to_networkx`: node ids
    ``"layer:neuron"`` with attributes ``layer``, ``neuron``, ``layer_name``, and each
    edge's ``weight`` where the layer has weights (written with 17 significant digits,
    so the float64 value round-trips).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import networkx as nx
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_gexf(net, pathlib.Path(folder) / "net.gexf")
    ...     nx.read_gexf(path).number_of_edges()
    6
    """
    import datetime

    from topo._version import __version__

    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        out.write(
            "<?xml version='1.0' encoding='utf-8'?>\n"
            '<gexf xmlns="http://www.gexf.net/1.2draft" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.gexf.net/1.2draft http://www.gexf.net/1.2draft/gexf.xsd" '
            'version="1.2">\n'
            f'  <meta lastmodifieddate="{datetime.date.today().isoformat()}">\n'
            f"    <creator>topo {_xml_attribute(__version__)}</creator>\n"
            "  </meta>\n"
            '  <graph defaultedgetype="directed" mode="static">\n'
            '    <attributes mode="static" class="node">\n'
            '      <attribute id="0" title="layer" type="long" />\n'
            '      <attribute id="1" title="neuron" type="long" />\n'
            '      <attribute id="2" title="layer_name" type="string" />\n'
            "    </attributes>\n"
            "    <nodes>\n"
        )
        for k, (width, name) in enumerate(node_layers(topology)):
            # the layer's constant parts go into the template once; only neuron ids vary
            template = (
                f'      <node id="{k}:%d" label="{k}:%d"><attvalues>'
                f'<attvalue for="0" value="{k}" /><attvalue for="1" value="%d" />'
                f'<attvalue for="2" value="{_xml_attribute(name).replace("%", "%%")}" />'
                "</attvalues></node>\n"
            )
            for start in range(0, width, _GEXF_CHUNK):
                neurons = np.arange(start, min(start + _GEXF_CHUNK, width))
                out.write(_gexf_lines(template, neurons, neurons, neurons))
        out.write("    </nodes>\n    <edges>\n")
        edge_id = 0
        for _, in_slot, out_slot, sources, targets, w in edge_arrays(topology):
            with_weight = weights and w is not None
            columns: list[np.ndarray]
            template = (
                f'      <edge source="{in_slot}:%d" target="{out_slot}:%d" id="%d"'
                + (' weight="%s" />\n' if with_weight else " />\n")
            )
            for start in range(0, sources.size, _GEXF_CHUNK):
                stop = min(start + _GEXF_CHUNK, sources.size)
                ids = np.arange(edge_id + start, edge_id + stop)
                columns = [sources[start:stop], targets[start:stop], ids]
                if with_weight and w is not None:
                    columns.append(np.char.mod("%.17g", w[start:stop]))
                out.write(_gexf_lines(template, *columns))
            edge_id += sources.size
        out.write("    </edges>\n  </graph>\n</gexf>\n")
        out.flush()
        os.fsync(out.fileno())
    return path


def write_edgelist(topology: Topology, path: str | os.PathLike, *, weights: bool = True) -> Path:
    """Write an edge-list CSV, atomically.

    Columns: ``source_layer, source_neuron, target_layer, target_neuron, layer_name``
    and ``weight`` where weights exist. Layers are node-layer indices.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 1]]), np.array([[1, 1]])], names=["fc1", "fc2"])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     lines = write_edgelist(net, pathlib.Path(folder) / "net.csv").read_text().splitlines()
    >>> lines[:2], len(lines)
    (['source_layer,source_neuron,target_layer,target_neuron,layer_name', '0,0,1,0,fc1'], 7)
    """
    import io

    path = Path(path)
    any_weights = weights and any(layer.weight is not None for layer in topology)
    header = "source_layer,source_neuron,target_layer,target_neuron,layer_name" + (",weight" if any_weights else "")
    buffer = io.StringIO()
    buffer.write(header + "\n")
    for index, in_slot, out_slot, sources, targets, w in edge_arrays(topology):
        name = topology[index].name.replace('"', '""')
        quoted = f'"{name}"' if ("," in name or '"' in name) else name
        if sources.size == 0:
            continue
        columns: list[Any] = [
            np.full(sources.size, in_slot).astype(str),
            sources.astype(str),
            np.full(sources.size, out_slot).astype(str),
            targets.astype(str),
            np.full(sources.size, quoted, dtype=object),
        ]
        if any_weights:
            columns.append(np.char.mod("%.9g", w) if w is not None else np.full(sources.size, ""))
        rows = columns[0].astype(object)
        for col in columns[1:]:
            rows = rows + "," + col.astype(object)
        buffer.write("\n".join(rows.tolist()))
        buffer.write("\n")
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


_WRITERS = {"graphml": write_graphml, "gexf": write_gexf, "edgelist": write_edgelist}


def export_graph(topology: Topology, path: str | os.PathLike, fmt: str, *, weights: bool = True) -> Path:
    """Write the topology's graph in one of :data:`EXPORT_FORMATS`.

    Raises
    ------
    TopoError
        If ``fmt`` is not a known format or the file cannot be written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.eye(2)])
    >>> EXPORT_FORMATS
    ('graphml', 'gexf', 'edgelist')
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     len(export_graph(net, pathlib.Path(folder) / "net.csv", "edgelist").read_text().splitlines())
    3
    """
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise TopoError(f"unknown graph format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}") from None
    try:
        return writer(topology, path, weights=weights)
    except OSError as exc:
        raise TopoError(f"cannot write graph ({exc.strerror or exc})", path=path) from None

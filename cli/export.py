"""``topo export``: write a checkpoint's graph as GraphML, GEXF or an edge-list CSV."""

from __future__ import annotations

import click

from topo_cli import messages
from topo_cli.command import TopoCommand

EXPORT_FORMATS = ("graphml", "gexf", "edgelist")


@click.command("export", cls=TopoCommand)
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("--to", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="Graph file format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), required=True, help="File to write.")
@click.option("--no-weights", is_flag=True, help="Leave edge weights out.")
def export_command(checkpoint: str, fmt: str, output: str, no_weights: bool) -> None:
    """Write the layered graph of CHECKPOINT to a file.

    Nodes are neurons, named by (node layer, neuron) with node layer 0 the network's
    inputs; edges run from inputs to outputs and carry the weight. GraphML and GEXF
    open in Gephi, Cytoscape, networkx and igraph; the edge list is a CSV.
    """
    from topo.formats import load
    from topo.graph import export_graph

    topology = load(checkpoint, weights=not no_weights)
    path = export_graph(topology, output, fmt, weights=not no_weights)
    messages.note(f"wrote {path} ({fmt}: {topology.n_neurons:,} nodes, {topology.nnz:,} edges)")

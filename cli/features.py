"""``topo features``: the graph-theoretic structure features of checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option


def _label(path: str) -> str:
    """A short column header for a checkpoint: its run folder's name and the file's stem."""
    p = Path(path)
    if p.is_dir():
        return p.name or str(p)
    if p.parent.name == "checkpoints" and p.parent.parent.name:
        return f"{p.parent.parent.name}/{p.stem}"
    return p.name


@click.command("features", cls=TopoCommand, sections={
    "Features": ["no_graph", "samples", "seed"],
    "Output": ["fmt"],
    "Parallelism": ["workers"],
})
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--no-graph", is_flag=True, help="Skip square clustering and betweenness (the slow features on large networks).")
@click.option("--samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Betweenness source nodes sampled on graphs above 3000 neurons (exact below).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the betweenness sample.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Local processes.")
@format_option()
def features_command(checkpoints: tuple[str, ...], no_graph: bool, samples: int, seed: int, workers: int, fmt: str) -> None:
    """Structure features of each of CHECKPOINTS: one feature vector per checkpoint.

    A CHECKPOINT is a checkpoint file or a run folder (its last checkpoint). Features:
    degree moments and CV per layer and over the network, density, neurons without
    inputs / outputs / any edge, the number of input-output paths and its log10
    (sparse products in log space, never enumerating paths), the shares of inputs that
    reach an output and of outputs reached, path lengths and the depth the inputs
    reach, each layer's spectral radius (largest singular value of its mask), the
    bipartite (Robins-Alexander) clustering and the betweenness of hidden neurons.
    See topo.analysis.structure for the definitions.

    csv gives one row per checkpoint; the table one row per feature.
    """
    from topo.analysis.structure import GRAPH_METRICS_HINT, feature_table
    from topo.errors import TopoError
    from topo.runs import load_topology
    from topo_cli.progress import progress_bar

    options: dict[str, Any] = {"graph_metrics": not no_graph, "betweenness_samples": samples, "seed": seed}
    try:
        with progress_bar("features", enabled=len(checkpoints) > 1) as progress:
            rows = feature_table(list(checkpoints), load=load_topology, workers=workers, progress=progress, **options)
    except TopoError as exc:
        if GRAPH_METRICS_HINT not in str(exc):
            raise
        # the refusal names the library's parameter; here the flag does the same
        raise TopoError(str(exc).replace(GRAPH_METRICS_HINT, "--no-graph skips square clustering and betweenness")) from None
    names: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                names.append(name)
    if fmt == "csv":
        emit([{"checkpoint": c, **r} for c, r in zip(checkpoints, rows)], ["checkpoint", *names], fmt)
        return
    if fmt == "json":
        emit([], [], fmt, json_payload=[{"checkpoint": c, "features": r} for c, r in zip(checkpoints, rows)])
        return
    labels = []
    for checkpoint in checkpoints:
        label = _label(checkpoint)
        while label in labels:
            label += "'"
        labels.append(label)
    table = [{"feature": name, **{label: row.get(name) for label, row in zip(labels, rows)}} for name in names]
    emit(table, ["feature", *labels], fmt, title="structure features")

"""``topo inspect``: the per-layer degree table of one checkpoint."""

from __future__ import annotations

import click

from topo_cli.render import emit, format_option

COLUMNS = [
    "name", "n_in", "n_out", "nnz", "density",
    "fan_in_mean", "fan_in_std", "fan_in_cv", "fan_in_min", "fan_in_max",
    "no_inputs", "no_outputs",
]
HEADERS = {
    "name": "layer", "n_in": "in", "n_out": "out", "fan_in_mean": "fan-in mean",
    "fan_in_std": "std", "fan_in_cv": "CV", "fan_in_min": "min", "fan_in_max": "max",
    "no_inputs": "no inputs", "no_outputs": "no outputs",
}


@click.command("inspect")
@click.argument("checkpoint", type=click.Path(path_type=str))
@format_option()
def inspect_command(checkpoint: str, fmt: str) -> None:
    """Per-layer density and fan-in of CHECKPOINT.

    CHECKPOINT is a checkpoint file or a run folder (its last checkpoint). Columns:
    connections (nnz), density, fan-in mean / std / CV / min / max, output neurons
    with no inputs, and input neurons that feed nothing in that layer.
    """
    from topo.analysis.degree import degree_summary, layer_degrees
    from topo.formats import load

    topology = load(checkpoint, weights=False)
    rows = [d.as_dict() for d in layer_degrees(topology)]
    summary = degree_summary(topology).as_dict()
    where = []
    if topology.epoch is not None:
        where.append(f"epoch {topology.epoch}")
    if topology.step is not None:
        where.append(f"step {topology.step}")
    caption = (
        f"{summary['n_layers']} layers, {summary['nnz']:,} of {summary['size']:,} connections "
        f"(density {summary['density']:.4g}), mean fan-in CV {summary['fan_in_cv_mean']:.4g}"
    )
    warnings = list(topology.info.get("warnings") or [])
    if warnings:
        caption += f"\n{len(warnings)} reader warning(s): " + "; ".join(warnings[:3]) + (
            " ..." if len(warnings) > 3 else ""
        )
    emit(
        rows,
        COLUMNS,
        fmt,
        title=f"{checkpoint}" + (f" ({', '.join(where)})" if where else ""),
        headers=HEADERS,
        caption=caption,
        json_payload={
            "path": str(topology.info.get("path", checkpoint)),
            "format": topology.info.get("format"),
            "epoch": topology.epoch,
            "step": topology.step,
            "layers": rows,
            "summary": summary,
            "warnings": warnings,
        },
    )

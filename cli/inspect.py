"""``topo inspect``: the per-layer degree table of one checkpoint."""

from __future__ import annotations

import click

from topo_cli import messages
from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option

COLUMNS = [
    "name", "n_in", "n_out", "nnz", "density",
    "fan_in_mean", "fan_in_std", "fan_in_cv", "fan_in_min", "fan_in_max",
    "no_inputs", "no_outputs", "pattern", "pattern_compliance", "compliance_2_4", "runs_2_4",
    "sparsity", "requested_sparsity",
]
HEADERS = {
    "name": "layer", "n_in": "in", "n_out": "out", "fan_in_mean": "fan-in mean",
    "fan_in_std": "std", "fan_in_cv": "CV", "fan_in_min": "min", "fan_in_max": "max",
    "no_inputs": "no inputs", "no_outputs": "no outputs", "pattern_compliance": "complies",
    "compliance_2_4": "2:4 share", "runs_2_4": "2:4 kernel", "requested_sparsity": "requested",
}


@click.command("inspect", cls=TopoCommand)
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("--include-dense", is_flag=True,
              help="Average dense layers into the mean fan-in CV too (by default it is over the sparse layers).")
@format_option()
def inspect_command(checkpoint: str, include_dense: bool, fmt: str) -> None:
    """Per-layer density, fan-in and sparsity pattern of CHECKPOINT.

    CHECKPOINT is a checkpoint file or a run folder (its last checkpoint). Columns:
    connections (nnz), density, fan-in mean / std / CV / min / max, output neurons
    with no inputs, input neurons that feed nothing in that layer, and whether the
    layer is really sparse: its pattern (dense, unstructured, N:M along the inputs
    such as 2:4 or 4:8, block RxC such as block 4x1), the share of its blocks that
    comply with it, the share of 4-input blocks holding at most 2 connections, and
    whether a 2:4 kernel could run it. Where the file records the sparsity it asked
    for (a topo run's configuration), requested and achieved sparsity are shown side
    by side. JSON gives the same per layer ("pattern", "pattern_compliance", ...).

    The mean fan-in CV below the table is over the sparse layers: a dense layer's
    fan-ins all tie (CV 0) and would pull it down. --include-dense counts them.
    """
    from topo.analysis.degree import layer_degree, summarise_degrees
    from topo.analysis.patterns import layer_pattern, pattern_summary, sparsity_report
    from topo.formats import scan
    from topo_cli.progress import progress_bar

    # layer by layer: a large model's masks are measured one at a time, never all held
    with progress_bar("reading layers") as progress:
        topology, measured = scan(
            checkpoint, lambda layer: (layer_degree(layer), layer_pattern(layer)), progress=progress
        )
    degrees = [degree for degree, _ in measured.values()]
    patterns = [found for _, found in measured.values()]
    report = sparsity_report(_Measured(topology, degrees))
    rows = []
    for degree, found, wanted in zip(degrees, patterns, report.layers):
        row = degree.as_dict()
        row.update(
            pattern=found.pattern, pattern_compliance=found.pattern_compliance, n=found.n, m=found.m,
            block=None if found.block is None else list(found.block), compliance_2_4=found.compliance_2_4,
            runs_2_4=found.runs_2_4, sparsity=wanted.achieved, requested_sparsity=wanted.requested,
        )
        rows.append(row)
    summary = summarise_degrees(degrees, n_neurons=topology.n_neurons, include_dense=include_dense).as_dict()
    dense = summary["dense_layers"]
    over = ""
    if dense and len(dense) < len(degrees):
        over = (f" (all layers, dense {', '.join(dense)} included)" if include_dense
                else f" (sparse layers; dense {', '.join(dense)} left out, --include-dense counts them)")
    where = []
    if topology.epoch is not None:
        where.append(f"epoch {topology.epoch}")
    if topology.step is not None:
        where.append(f"step {topology.step}")
    caption = (
        f"{summary['n_layers']} layers, {summary['nnz']:,} of {summary['size']:,} connections "
        f"(density {summary['density']:.4g}), mean fan-in CV {summary['fan_in_cv_mean']:.4g}{over}"
        f"\npatterns: {pattern_summary(patterns)}; a 2:4 kernel could run "
        f"{sum(p.runs_2_4 for p in patterns)} of {len(patterns)} layers"
    )
    if report.requested is not None:
        caption += f"\nsparsity requested {report.requested:.4g}, achieved {report.achieved:.4g}"
    columns = COLUMNS
    if not any(layer.requested is not None for layer in report.layers):
        # achieved beside requested only where the file records a request (density says the rest)
        columns = [c for c in COLUMNS if c not in ("sparsity", "requested_sparsity")]
    warnings = list(topology.info.get("warnings") or [])
    if warnings:
        # every warning with --verbose, the first three otherwise
        shown = warnings if messages.level() >= messages.VERBOSE else warnings[:3]
        caption += f"\n{len(warnings)} reader warning(s): " + "; ".join(shown) + (
            " ... (--verbose lists all)" if len(shown) < len(warnings) else ""
        )
    emit(
        rows,
        columns,
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
            "summary": {
                **summary,
                "pattern": pattern_summary(patterns),
                "layers_2_4": sum(p.runs_2_4 for p in patterns),
                "sparsity": report.achieved,
                "requested_sparsity": report.requested,
            },
            "warnings": warnings,
        },
    )


class _Measured:
    """The layers' sizes and connection counts as measured while reading (for the sparsity report)."""

    class _Layer:
        def __init__(self, degree) -> None:
            self.name, self.nnz, self.size = degree.name, degree.nnz, degree.n_in * degree.n_out
            self.density = self.nnz / self.size if self.size else 0.0

    def __init__(self, topology, degrees) -> None:
        self.info = topology.info
        self._layers = [self._Layer(d) for d in degrees]

    def __iter__(self):
        return iter(self._layers)

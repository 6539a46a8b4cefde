"""``topo compare``: two checkpoints side by side, layer by layer."""

from __future__ import annotations

import click

from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option

COLUMNS = [
    "layer", "density_a", "density_b", "fan_in_cv_a", "fan_in_cv_b",
    "hub_overlap_index", "hub_overlap_matched", "nnstd", "mask_turnover",
]
HEADERS = {
    "density_a": "density A", "density_b": "density B", "fan_in_cv_a": "CV A",
    "fan_in_cv_b": "CV B", "hub_overlap_index": "hubs by index",
    "hub_overlap_matched": "hubs matched", "nnstd": "NNSTD", "mask_turnover": "turnover",
    "active_a": "active A", "active_b": "active B",
}


@click.command("compare", cls=TopoCommand)
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.1, show_default=True,
              help="Share of each layer's neurons, by fan-in, that count as hubs.")
@click.option("--no-match-output", is_flag=True,
              help="Keep output neurons by index (classes have fixed identities) instead of matching them.")
@format_option()
def compare_command(a: str, b: str, fraction: float, no_match_output: bool, fmt: str) -> None:
    """Compare the topologies of checkpoints A and B, layer by layer.

    Columns: density and fan-in CV of A and B; Jaccard overlap of their hubs (the top
    --fraction by fan-in), by neuron index and after NNSTD matching; the NNSTD layer
    distance (Liu et al. 2020; normalised by A, so not symmetric); and, where every
    layer's shape agrees, the mask turnover |A xor B| / (|A| + |B|). The last row
    sums up the network: overall density, mean CV and overlap, NNSTD and overall turnover.
    """
    from topo.analysis.comparison import compare_topologies
    from topo.runs import load_topology

    topo_a = load_topology(a)
    topo_b = load_topology(b)
    match_output = not no_match_output
    comparison = compare_topologies(topo_a, topo_b, fraction=fraction, match_output=match_output)
    rows, overall, shrunk = comparison.rows, comparison.overall, comparison.shrunk
    caption = (
        f"NNSTD {comparison.nnstd:.4g} (from A to B, output layer "
        f"{'matched' if match_output else 'by index'}); hubs: top {fraction:g} by fan-in"
        + ("" if comparison.same_shapes else "; layer shapes differ, so no mask turnover")
        + ("; active: neurons present / width (removed neurons count as empty input sets in NNSTD, "
           "and hub fractions are of the full width)" if shrunk else "")
    )
    emit(
        rows + [overall],
        COLUMNS[:1] + (["active_a", "active_b"] if shrunk else []) + COLUMNS[1:],
        fmt,
        title=f"A = {a}\nB = {b}",
        headers=HEADERS,
        caption=caption,
        json_payload={
            "a": str(topo_a.info.get("path", a)),
            "b": str(topo_b.info.get("path", b)),
            "fraction": fraction,
            "match_output": match_output,
            "nnstd": comparison.nnstd,
            "layers": rows,
            "overall": overall,
        },
    )

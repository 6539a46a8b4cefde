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


def _dense_sides(row: dict) -> str:
    """Which side's layer is dense: "A+B", "A", "B" or ""."""
    return "+".join(side for side, key in (("A", "dense_a"), ("B", "dense_b")) if row[key])


def _for_people(row: dict) -> dict:
    """A row for a table: dense layers marked, an undefined hub overlap shown as n/a."""
    sides = _dense_sides(row)
    shown = dict(row)
    if sides:
        shown["layer"] = f"{row['layer']} (dense)" if sides == "A+B" else f"{row['layer']} (dense in {sides})"
    if row["hub_note"]:
        shown["hub_overlap_index"] = shown["hub_overlap_matched"] = "n/a"
    return shown


@click.command("compare", cls=TopoCommand)
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.1, show_default=True,
              help="Share of each layer's neurons, by fan-in, that count as hubs.")
@click.option("--no-match-output", is_flag=True,
              help="Keep output neurons by index (classes have fixed identities) instead of matching them.")
@click.option("--include-dense", is_flag=True,
              help="Let the overall row average dense layers in too (by default it is over the sparse layers).")
@format_option()
def compare_command(a: str, b: str, fraction: float, no_match_output: bool, include_dense: bool, fmt: str) -> None:
    """Compare the topologies of checkpoints A and B, layer by layer.

    Columns: density and fan-in CV of A and B; Jaccard overlap of their hubs (the top
    --fraction by fan-in), by neuron index and after NNSTD matching; the NNSTD layer
    distance (Liu et al. 2020; normalised by A, so not symmetric); and, where every
    layer's shape agrees, the mask turnover |A xor B| / (|A| + |B|). The last row
    sums up the network: overall density, mean CV and overlap, NNSTD and overall turnover.

    Dense layers (every connection present, e.g. the output layer under ERK) are
    marked "dense" and left out of the overall row's CV, overlap, NNSTD and turnover,
    which they would skew; --include-dense counts them. Hub overlap is "n/a" where a
    layer's fan-ins all tie (a dense layer has no hub set).
    """
    from topo.analysis.comparison import compare_topologies
    from topo.runs import load_topology

    topo_a = load_topology(a)
    topo_b = load_topology(b)
    match_output = not no_match_output
    comparison = compare_topologies(
        topo_a, topo_b, fraction=fraction, match_output=match_output, include_dense=include_dense
    )
    rows, overall, shrunk = comparison.rows, comparison.overall, comparison.shrunk
    untied = [row["layer"] for row in rows if row["hub_note"]]
    caption = (
        f"NNSTD {comparison.nnstd:.4g} (from A to B, output layer "
        f"{'matched' if match_output else 'by index'}); hubs: top {fraction:g} by fan-in"
        + ("" if comparison.same_shapes else "; layer shapes differ, so no mask turnover")
        + ("; active: neurons present / width (removed neurons count as empty input sets in NNSTD, "
           "and hub fractions are of the full width)" if shrunk else "")
        + (f"; hub overlap n/a in {', '.join(untied)}: its fan-ins tie across the whole layer, so no hub set exists"
           if untied else "")
        + (f"; overall: over the sparse layers, leaving out dense {', '.join(comparison.excluded)} "
           "(--include-dense counts them)" if comparison.excluded else "")
        + ("; overall includes the dense layers" if include_dense and any(r["dense_a"] or r["dense_b"] for r in rows)
           else "")
    )
    shown = rows + [overall]
    columns = COLUMNS[:1] + (["active_a", "active_b"] if shrunk else []) + COLUMNS[1:]
    if fmt in ("table", "markdown"):
        shown = [_for_people(row) for row in rows] + [overall]
    elif fmt == "csv":
        shown = [{**row, "dense": _dense_sides(row)} for row in rows] + [overall]
        columns = columns + ["dense"]
    emit(
        shown,
        columns,
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
            "include_dense": include_dense,
            "overall_excludes": comparison.excluded,
            "layers": rows,
            "overall": overall,
        },
    )

"""``topo compare``: two checkpoints side by side, layer by layer."""

from __future__ import annotations

import math

import click

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


def _mean(values) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


@click.command("compare")
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
    from topo.analysis.budget import check_nnstd
    from topo.analysis.degree import fan_in_cv
    from topo.analysis.distance import mask_turnover, nnstd
    from topo.analysis.hubs import hub_overlap
    from topo.formats import load

    topo_a = load(a, weights=False)
    topo_b = load(b, weights=False)
    match_output = not no_match_output
    # NNSTD's cost matrices grow with the product of the widths: refuse before allocating
    check_nnstd(topo_a, topo_b, match_output=match_output)
    result = nnstd(topo_a, topo_b, match_output=match_output)
    by_index = hub_overlap(topo_a, topo_b, fraction=fraction)
    matched = hub_overlap(
        topo_a, topo_b, matched=True, fraction=fraction, match_output=match_output, matchings=result.matchings
    )
    cv_a, cv_b = fan_in_cv(topo_a), fan_in_cv(topo_b)
    same_shapes = all(la.shape == lb.shape for la, lb in zip(topo_a, topo_b))
    turnover = mask_turnover(topo_a, topo_b) if same_shapes else [None] * len(topo_a)

    rows = []
    for k, (layer_a, layer_b) in enumerate(zip(topo_a, topo_b)):
        name = layer_a.name if layer_a.name == layer_b.name else f"{layer_a.name} / {layer_b.name}"
        rows.append({
            "layer": name,
            "density_a": layer_a.density,
            "density_b": layer_b.density,
            "fan_in_cv_a": cv_a[k],
            "fan_in_cv_b": cv_b[k],
            "hub_overlap_index": by_index[k],
            "hub_overlap_matched": matched[k],
            "nnstd": result.layer_distances[k],
            "mask_turnover": turnover[k],
        })
    overall_turnover = None
    if same_shapes:
        # weighted by the layers' edge counts: the share of all connections that differ
        weights = [la.nnz + lb.nnz for la, lb in zip(topo_a, topo_b)]
        total = sum(weights)
        overall_turnover = sum(t * w for t, w in zip(turnover, weights)) / total if total else 0.0
    overall = {
        "layer": "overall",
        "density_a": topo_a.density,
        "density_b": topo_b.density,
        "fan_in_cv_a": _mean(cv_a),
        "fan_in_cv_b": _mean(cv_b),
        "hub_overlap_index": _mean(by_index),
        "hub_overlap_matched": _mean(matched),
        "nnstd": result.distance,
        "mask_turnover": overall_turnover,
    }
    # where a method removed neurons, say how many each side still has
    shrunk = any(wa < la.n_out or wb < lb.n_out for (wa, wb), la, lb in zip(result.active_widths, topo_a, topo_b))
    for row, (wa, wb), la, lb in zip(rows, result.active_widths, topo_a, topo_b):
        row["active_a"], row["active_b"] = f"{wa}/{la.n_out}", f"{wb}/{lb.n_out}"
    caption = (
        f"NNSTD {result.distance:.4g} (from A to B, output layer "
        f"{'matched' if match_output else 'by index'}); hubs: top {fraction:g} by fan-in"
        + ("" if same_shapes else "; layer shapes differ, so no mask turnover")
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
            "nnstd": result.distance,
            "layers": rows,
            "overall": overall,
        },
    )

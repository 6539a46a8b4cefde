"""``topo hubs``: the hub neurons of one checkpoint, per layer."""

from __future__ import annotations

from typing import Any

import click

from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option

COLUMNS = ["layer", "neuron", "fan_in", "grad_mean"]
#: hubs per layer a table shows (csv and json list them all)
TABLE_HUBS_PER_LAYER = 50
HEADERS = {"fan_in": "fan-in", "grad_mean": "gradient (grad_mean)"}


@click.command("hubs", cls=TopoCommand)
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("--fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Hubs are the top share of each layer's neurons by fan-in  [default: 0.1].")
@click.option("--z", "z", type=float, default=None,
              help="Hubs are the neurons whose fan-in exceeds mean + Z standard deviations.")
@click.option("--include-dense", is_flag=True,
              help="Also list the picks of dense layers (by index: their fan-ins all tie, so they "
                   "have no hub set).")
@format_option()
def hubs_command(checkpoint: str, fraction: float | None, z: float | None, include_dense: bool, fmt: str) -> None:
    """The hub neurons of CHECKPOINT: per layer, the neurons with the largest fan-in.

    By default the top 10% (--fraction; at least one per layer, ties to the lower
    index), or with --z every neuron whose fan-in lies more than Z standard deviations
    above its layer's mean. Where training recorded it, each hub's gradient statistic
    (grad_mean: mean |dL/dW| over its incoming weights) is shown, and with --fraction
    each layer's gradient concentration by both definitions: the hubs' mean gradient
    over the rest's (hubs against the rest) and over all neurons' (hubs against all).

    A layer whose fan-ins all tie has no hub set: the picks are by index, and the
    caption says so. Dense layers are marked and list none, unless --include-dense.
    """
    if fraction is not None and z is not None:
        raise click.UsageError("give either --fraction or --z, not both")
    from topo.analysis.gradients import gradient_concentration
    from topo.analysis.hubs import hub_listing
    from topo.runs import load_topology

    topology = load_topology(checkpoint)
    if z is not None:
        options: dict[str, Any]
        rule, options, described = "z", {"rule": "z", "z": z}, f"fan-in above mean + {z:g} std"
    else:
        fraction = 0.1 if fraction is None else fraction
        rule, options, described = "top", {"fraction": fraction}, f"top {fraction:g} by fan-in"
    # a table of a million rows helps no one and takes minutes to draw
    listing = hub_listing(
        topology, **options, limit=TABLE_HUBS_PER_LAYER if fmt == "table" else None, include_dense=include_dense
    )
    cut = any(entry.cut for entry in listing)
    rows = [{"layer": entry.name, **hub} for entry in listing for hub in entry.hubs]
    layers: list[dict[str, Any]] = [
        {"name": e.name, "n_out": e.n_out, "n_hubs": e.n_hubs, "fan_in_mean": e.fan_in_mean,
         "dense": e.dense, "no_hub_set": e.tied, "hubs": e.hubs}
        for e in listing
    ]
    concentrations = []
    for entry, layer in zip(layers, topology):
        both: dict[str, float | None] = {"concentration_rest": None, "concentration_all": None}
        if "grad_mean" in layer.stats and rule == "top" and fraction is not None:
            both = {f"concentration_{against}": gradient_concentration(layer, fraction=fraction, against=against)
                    for against in ("rest", "all")}
            concentrations.append(f"{layer.name} {both['concentration_rest']:.2f} / {both['concentration_all']:.2f}")
        entry.update(both)
    if fmt in ("table", "markdown"):
        marked = {e.name: f"{e.name} (dense)" for e in listing if e.dense}
        rows = [{**row, "layer": marked.get(row["layer"], row["layer"])} for row in rows]
    columns = COLUMNS
    if fmt == "table" and not any("grad_mean" in layer.stats for layer in topology):
        columns = COLUMNS[:-1]  # no gradients recorded (e.g. a foreign checkpoint)
    counts = ", ".join(
        f"{entry['name']}{' (dense)' if entry['dense'] else ''} {entry['n_hubs']}/{entry['n_out']}" for entry in layers
    )
    tied = [entry for entry in layers if entry["no_hub_set"]]
    if tied:
        counts += f"; fan-ins tie across the whole layer in {', '.join(e['name'] for e in tied)}, so no hub set exists"
        hidden = [e["name"] for e in tied if e["dense"] and not include_dense]
        if len(hidden) < len(tied):
            counts += " (listed: the picks by index)"
        if hidden:
            counts += f"; dense {', '.join(hidden)} not listed (--include-dense lists the picks)"
    if cut:
        counts += f"; the table shows the {TABLE_HUBS_PER_LAYER} strongest per layer (--format csv or json lists all)"
    if concentrations:
        counts += ("; gradient concentration, hubs against the rest / hubs against all (the hubs' mean grad_mean "
                   "over the other neurons' / over all neurons'): " + ", ".join(concentrations))
    emit(
        rows,
        columns,
        fmt,
        title=f"hubs of {checkpoint}",
        headers=HEADERS,
        caption=f"{described}; hubs per layer: {counts}",
        json_payload={
            "path": str(topology.info.get("path", checkpoint)),
            "rule": rule,
            **options,
            "layers": layers,
        },
    )

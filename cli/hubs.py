"""``topo hubs``: the hub neurons of one checkpoint, per layer."""

from __future__ import annotations

import click

from topo_cli.render import emit, format_option

COLUMNS = ["layer", "neuron", "fan_in", "grad_mean"]
#: hubs per layer a table shows (csv and json list them all)
TABLE_HUBS_PER_LAYER = 50
HEADERS = {"fan_in": "fan-in", "grad_mean": "gradient (grad_mean)"}


@click.command("hubs")
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("--fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Hubs are the top share of each layer's neurons by fan-in  [default: 0.1].")
@click.option("--z", "z", type=float, default=None,
              help="Hubs are the neurons whose fan-in exceeds mean + Z standard deviations.")
@format_option()
def hubs_command(checkpoint: str, fraction: float | None, z: float | None, fmt: str) -> None:
    """The hub neurons of CHECKPOINT: per layer, the neurons with the largest fan-in.

    By default the top 10% (--fraction; at least one per layer, ties to the lower
    index), or with --z every neuron whose fan-in lies more than Z standard deviations
    above its layer's mean. Where training recorded it, each hub's gradient statistic
    (grad_mean: mean |dL/dW| over its incoming weights) is shown.
    """
    if fraction is not None and z is not None:
        raise click.UsageError("give either --fraction or --z, not both")
    import numpy as np

    from topo.analysis.hubs import hub_indices
    from topo.formats import load

    topology = load(checkpoint, weights=False)
    if z is not None:
        rule, options, described = "z", {"rule": "z", "z": z}, f"fan-in above mean + {z:g} std"
    else:
        fraction = 0.1 if fraction is None else fraction
        rule, options, described = "top", {"fraction": fraction}, f"top {fraction:g} by fan-in"
    rows = []
    layers = []
    cut = False
    for layer in topology:
        hubs = hub_indices(layer, **options)
        fan_in = layer.fan_in
        gradient = layer.stats.get("grad_mean")
        # strongest first; ties in index order (a sort in numpy: a wide layer has a million hubs)
        order = hubs[np.lexsort((hubs, -fan_in[hubs]))]
        if fmt == "table" and order.size > TABLE_HUBS_PER_LAYER:
            # a table of a million rows helps no one and takes minutes to draw
            order, cut = order[:TABLE_HUBS_PER_LAYER], True
        values = fan_in[order].tolist()
        gradients = [None] * order.size if gradient is None else np.asarray(gradient, dtype=np.float64)[order].tolist()
        entries = [
            {"layer": layer.name, "neuron": i, "fan_in": f, "grad_mean": g}
            for i, f, g in zip(order.tolist(), values, gradients)
        ]
        rows.extend(entries)
        layers.append({
            "name": layer.name,
            "n_out": layer.n_out,
            "n_hubs": int(hubs.size),
            "fan_in_mean": float(fan_in.mean()) if fan_in.size else None,
            "hubs": [{k: e[k] for k in ("neuron", "fan_in", "grad_mean")} for e in entries],
        })
    columns = COLUMNS
    if fmt == "table" and not any("grad_mean" in layer.stats for layer in topology):
        columns = COLUMNS[:-1]  # no gradients recorded (e.g. a foreign checkpoint)
    counts = ", ".join(f"{entry['name']} {entry['n_hubs']}/{entry['n_out']}" for entry in layers)
    if cut:
        counts += f"; the table shows the {TABLE_HUBS_PER_LAYER} strongest per layer (--format csv or json lists all)"
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

"""``topo drift``: how a run's fan-in distributions drift toward their equilibrium."""

from __future__ import annotations

import click

from topo_cli import messages
from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option

COLUMNS = ["label", "layer", "cv", "wasserstein", "ks", "turnover"]
HEADERS = {"label": "epoch", "cv": "CV", "wasserstein": "W1", "ks": "KS", "turnover": "turnover",
           "explored": "explored", "active": "active"}
EXPLORATION_COLUMNS = ["layer", "exploration_rate", "initial_density", "width", "active_width", "neurons_removed",
                       "explored_fan_in_mean", "always_present", "fan_in_cv_present"]
EXPLORATION_HEADERS = {
    "exploration_rate": "explored",
    "initial_density": "initial density",
    "active_width": "active width",
    "neurons_removed": "removed",
    "explored_fan_in_mean": "explored fan-in (mean)",
    "always_present": "always present",
    "fan_in_cv_present": "last CV (present)",
}
LAYER_COLUMNS = ["layer", "converged_label", "final_wasserstein", "mu", "sigma", "cv", "mean_fan_in"]
LAYER_HEADERS = {
    "converged_label": "converged at",
    "final_wasserstein": "last W1",
    "mu": "eq. mu",
    "sigma": "eq. sigma",
    "cv": "eq. CV",
    "mean_fan_in": "eq. mean fan-in",
}


@click.command("drift", cls=TopoCommand, sections={
    "Equilibrium": ["last_k", "tolerance", "equilibrium"],
    "Output": ["fmt", "save_profile", "include_dense"],
})
@click.argument("run", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--last-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Checkpoints pooled for the equilibrium.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="W1 distance within which a layer counts as converged.")
@click.option("--equilibrium", "equilibrium", type=click.Path(exists=True, path_type=str), default=None,
              metavar="RUN_OR_PROFILE",
              help="Compare with another run's equilibrium or a profile file instead of RUN's own last checkpoints.")
@click.option("--save-profile", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="FILE",
              help="Write the equilibrium's lognormal profile (JSON) for `topo train --init equilibrium:FILE`.")
@click.option("--include-dense", is_flag=True,
              help="Count dense layers in the summary of converged layers and in the network's exploration "
                   "rate (by default only sparse layers).")
@format_option()
def drift_command(run: tuple[str, ...], last_k: int, tolerance: float, equilibrium: str | None,
                  save_profile: str | None, include_dense: bool, fmt: str) -> None:
    """Drift of RUN's fan-in distributions toward their equilibrium, and its exploration.

    RUN is a run folder (all its checkpoints, in training order) or checkpoint files
    in order. Per checkpoint and layer: fan-in CV, the Wasserstein-1 (W1) and KS
    distances of the normalised fan-in (fan-in / mean) to the equilibrium, and the
    mask turnover from the previous checkpoint. Then per layer: the checkpoint from
    which W1 stays within --tolerance, and the lognormal fit of the equilibrium
    (mu and sigma of ln fan-in, CV).

    The equilibrium is the pooled fan-in of RUN's last --last-k checkpoints, unless
    --equilibrium names another run or a profile file.

    Exploration (ITOP): per checkpoint, "explored" is the share of a layer's possible
    connections active in at least one checkpoint so far, and "active" the layer's
    neurons still present (with an input or an output; methods that remove neurons
    shrink it). Per layer: the final rate, neurons removed, the mean share of each
    neuron's possible inputs ever active, and the share of neurons present in every
    checkpoint. Only the checkpoints given are seen, so the rate is a lower bound.

    Dense layers (every connection present) have equal fan-ins and converge
    trivially: they are marked "dense" and the summary of converged layers counts
    the sparse layers only, unless --include-dense. The network's exploration rate
    likewise sums over the layers sparse at the first checkpoint.

    --format csv prints the per-checkpoint table only; json prints all three.
    """
    from pathlib import Path

    from topo.analysis.drift import drift
    from topo.runs import load_equilibrium, load_run, save_profile as write_profile
    from topo.analysis.exploration import exploration
    from topo.checkpoint import is_run_folder
    from topo.errors import TopoError
    from topo_cli.progress import progress_bar

    source: str | list[str]
    if len(run) == 1 and Path(run[0]).is_dir():
        if not is_run_folder(run[0]):
            raise TopoError("not a topo run folder (no run.json and no checkpoints/)", path=run[0])
        source = run[0]
    else:
        for path in run:
            if Path(path).is_dir():
                raise TopoError("give one run folder, or checkpoint files", path=path)
        source = list(run)
    with progress_bar("loading checkpoints") as progress:
        topologies = load_run(source, progress=progress)
    reference, source_name = load_equilibrium(equilibrium, last_k=last_k)
    result = drift(
        topologies, equilibrium=reference, equilibrium_source=source_name, last_k=last_k, tolerance=tolerance
    )

    from topo.analysis.degree import is_dense, summary_layers

    rows = result.to_rows()
    layer_rows = result.layer_rows()
    last = topologies[-1]
    for row in layer_rows:
        row["dense"] = is_dense(last[row["layer"]])
    counted = summary_layers([row["dense"] for row in layer_rows], include_dense=include_dense)
    converged = sum(layer_rows[i]["converged_at"] is not None for i in counted)
    dense_names = [row["layer"] for row in layer_rows if row["dense"]]
    try:
        explored = exploration(topologies, include_dense=include_dense)
    except TopoError as exc:  # checkpoints of differently shaped networks: drift only
        explored = None
        click.echo(f"exploration not computed: {exc}", err=True)
    if explored is not None:
        per_checkpoint = {(r["label"], r["layer"]): r for r in explored.to_rows()}
        for row in rows:
            found = per_checkpoint.get((row["label"], row["layer"]))
            row["explored"] = None if found is None else found["exploration_rate"]
            row["active"] = None if found is None else found["active_width"]
    if save_profile:
        written = write_profile(result, save_profile)
        messages.note(f"wrote profile {written} ({len(result.layers)} layers)")

    name = run[0] if len(run) == 1 else f"{len(run)} checkpoints"
    payload = {
        "run": list(run) if len(run) > 1 else run[0],
        "equilibrium": result.equilibrium_source,
        "last_k": result.last_k,
        "tolerance": result.tolerance,
        "checkpoints": rows,
        "layers": layer_rows,
        "converged_layers": converged,
        "summary_layers": [layer_rows[i]["layer"] for i in counted],
        "exploration": None if explored is None else explored.to_dict(),
    }
    if fmt == "json":
        emit(rows, COLUMNS, fmt, json_payload=payload)
        return
    extra = ["explored", "active"] if explored is not None else []
    if fmt == "csv":
        emit(rows, COLUMNS + extra + ["checkpoint", "epoch", "step"], fmt)
        return
    emit(
        rows,
        COLUMNS + extra,
        fmt,
        title=f"{name}: drift toward the equilibrium",
        headers=HEADERS,
        caption=f"equilibrium: {result.equilibrium_source}",
    )
    kind = "layers" if include_dense or len(counted) == len(layer_rows) else "sparse layers"
    emit(
        [{**row, "layer": f"{row['layer']} (dense)" if row["dense"] else row["layer"]} for row in layer_rows],
        LAYER_COLUMNS,
        fmt,
        title="per layer: convergence and equilibrium",
        headers=LAYER_HEADERS,
        caption=f"converged: W1 <= {result.tolerance:g} from that checkpoint on; '-' = not converged; "
                f"{converged} of {len(counted)} {kind} converged"
                + (f" (dense {', '.join(dense_names)} left out: equal fan-ins converge trivially; "
                   "--include-dense counts them)" if dense_names and kind == "sparse layers" else ""),
    )
    if explored is not None:
        emit(
            explored.layer_rows(),
            EXPLORATION_COLUMNS,
            fmt,
            title=f"per layer: exploration (network: {explored.final_rate:.4f} of the possible connections"
                  + (f" of the sparse layers; dense {', '.join(explored.dense)} left out)"
                     if len(explored.counted) < len(explored.layers) else ")"),
            headers=EXPLORATION_HEADERS,
            caption="explored: share of possible connections ever active; removed: neurons with no input and no output",
        )

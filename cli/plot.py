"""``topo plot``: figures of runs and checkpoints, written as PNG, SVG or PDF."""

from __future__ import annotations

import click

from topo_cli.command import GroupedOption, TopoSubgroup

_HELP_OUTPUT = "File to write; .png, .svg or .pdf. Default: RUN/figures/NAME.png for a run, else ./NAME.png."


def _figure_path(ctx, param, value):
    """A figure extension topo cannot write is a usage error (exit 2), found before any work."""
    if value is not None:
        from topo.errors import TopoError
        from topo.plotting.output import figure_format

        try:
            figure_format(value)
        except TopoError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _output_options(func):
    """-o/--output and --dpi, shared by every plot command."""
    func = click.option("--dpi", type=click.IntRange(30, 600), default=150, show_default=True,
                        cls=GroupedOption, help_group="Output",
                        help="Resolution of PNG output.")(func)
    func = click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
                        callback=_figure_path, cls=GroupedOption, help_group="Output",
                        metavar="FILE", help=_HELP_OUTPUT)(func)
    return func


def _layers_option(func):
    return click.option("--layers", default=None, metavar="NAMES",
                        help="Comma-separated layer names to draw (default: all).")(func)


def _split(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()] or None


def _target(output: str | None, source: str | None, name: str):
    """The output path, its extension checked before any work is done."""
    from pathlib import Path

    from topo.plotting import default_figure_path
    from topo.plotting import figure_format

    path = Path(output) if output else default_figure_path(source, name)
    figure_format(path)
    return path


def _done(path) -> None:
    click.echo(f"wrote {path}")


def _loading(description: str):
    from topo_cli.progress import progress_bar

    return progress_bar(description)


@click.group("plot", cls=TopoSubgroup)
def plot_group() -> None:
    """Draw figures of runs and checkpoints (PNG, SVG or PDF by the -o extension).

    RUN is a run folder written by `topo train`; CKPT a checkpoint file (or a run
    folder, standing for its last checkpoint). Each command prints the path it wrote.
    """


@plot_group.command("fanin")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@_layers_option
@click.option("--epochs", default=None, metavar="LIST",
              help="Epochs to draw: 0,5,10 or 0-30 or 0-30:5 (default: up to --max-rows spread evenly).")
@click.option("--max-rows", type=click.IntRange(min=1), default=12, show_default=True,
              help="Most checkpoints drawn when --epochs is not given.")
@click.option("--log-x", is_flag=True, help="Logarithmic fan-in axis (neurons with fan-in 0 left out).")
@_output_options
def fanin_command(run, layers, epochs, max_rows, log_x, output, dpi):
    """Ridge plot of fan-in histograms over RUN's epochs, one panel per layer.

    One row per checkpoint (first at the top), labelled by epoch, with each row's
    fan-in CV: how the fan-in distribution moves under RigL toward its equilibrium.
    """
    from topo.errors import TopoError
    from topo.plotting import fanin_figure
    from topo.runs import parse_epochs

    path = _target(output, run, "fanin")
    try:
        wanted = parse_epochs(epochs)
    except TopoError as exc:
        raise click.BadParameter(str(exc), param_hint="--epochs") from None
    with _loading("loading checkpoints") as progress:
        fanin_figure(run, layers=_split(layers), epochs=wanted, max_rows=max_rows, log_x=log_x,
                     path=path, dpi=dpi, progress=progress)
    _done(path)


@plot_group.command("drift")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@_layers_option
@click.option("--equilibrium", type=click.Path(exists=True, path_type=str), default=None, metavar="RUN_OR_PROFILE",
              help="Another run or a profile file as the equilibrium (default: RUN's last --last-k checkpoints).")
@click.option("--last-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Checkpoints pooled for the equilibrium.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="W1 distance within which a layer counts as converged.")
@_output_options
def drift_command(run, layers, equilibrium, last_k, tolerance, output, dpi):
    """Fan-in CV, W1 distance to the equilibrium, and mask turnover over RUN.

    Three panels, one line per layer; dotted vertical lines mark where a layer
    converged (W1 stays within --tolerance), the dashed line is the tolerance.
    """
    from topo.plotting import drift_figure

    path = _target(output, run, "drift")
    with _loading("loading checkpoints") as progress:
        drift_figure(run, layers=_split(layers), equilibrium=equilibrium, last_k=last_k, tolerance=tolerance,
                     path=path, dpi=dpi, progress=progress)
    _done(path)


@plot_group.command("distance")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option("--style", type=click.Choice(["heatmap", "clustermap"]), default="heatmap", show_default=True,
              help="clustermap: reordered by hierarchical clustering of the distances, with dendrograms.")
@click.option("--method", type=click.Choice(["average", "single", "complete", "weighted"]), default="average",
              show_default=True, help="Linkage method of the clustermap.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes computing distances.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT", help="A running Dask scheduler instead.")
@_output_options
def distance_command(checkpoints, style, method, workers, scheduler, output, dpi):
    """NNSTD between CHECKPOINTS as a heatmap or clustermap.

    Give two or more checkpoints (run folders stand for their last checkpoint), or
    one run folder for all its epoch checkpoints. Default output: ./distance.png.
    """
    from topo.plotting import distance_figure

    path = _target(output, None, "distance")
    with _loading("distances") as progress:
        distance_figure(list(checkpoints), style=style, method=method, workers=workers, scheduler=scheduler,
                        path=path, dpi=dpi, progress=progress)
    _done(path)


@plot_group.command("degree")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=str))
@_layers_option
@click.option("--kind", type=click.Choice(["ccdf", "pmf"]), default="ccdf", show_default=True,
              help="ccdf: share of neurons with fan-in >= x (with fits); pmf: share with fan-in = x.")
@click.option("--no-fit", is_flag=True, help="Leave the fitted curves out.")
@_output_options
def degree_command(checkpoint, layers, kind, no_fit, output, dpi):
    """Fan-in distribution of CHECKPOINT on log-log axes, with fitted curves.

    Lognormal, discrete power law (tail, x_min by KS), exponential and normal fits;
    the best by AIC is drawn solid, each labelled with its KS distance.
    """
    from topo.plotting import degree_figure

    path = _target(output, checkpoint, "degree")
    degree_figure(checkpoint, layers=_split(layers), kind=kind, fit=not no_fit, path=path, dpi=dpi)
    _done(path)


@plot_group.command("hubs")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@_layers_option
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="Share of neurons (by fan-in) that are hubs.")
@click.option("--rule", type=click.Choice(["top", "z"]), default="top", show_default=True,
              help="top: the top --fraction by fan-in; z: fan-in above mean + Z std.")
@click.option("--z", "z", type=float, default=2.0, show_default=True, help="Threshold of --rule z.")
@_output_options
def hubs_command(run, layers, fraction, rule, z, output, dpi):
    """Overlap of each checkpoint's hub neurons with RUN's final hubs, per layer."""
    from topo.plotting import hubs_figure

    path = _target(output, run, "hubs")
    with _loading("loading checkpoints") as progress:
        hubs_figure(run, layers=_split(layers), fraction=fraction, rule=rule, z=z, path=path, dpi=dpi, progress=progress)
    _done(path)


@plot_group.command("gradients")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@_layers_option
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="Hub share for the gradient concentration.")
@_output_options
def gradients_command(run, layers, fraction, output, dpi):
    """Per-neuron gradient against fan-in at RUN's last checkpoint (or a CKPT).

    Each panel carries the gradient concentration (hubs' mean gradient over all
    neurons') and the Spearman correlation of fan-in with the gradient.
    """
    from topo.plotting import gradients_figure

    path = _target(output, run, "gradients")
    gradients_figure(run, layers=_split(layers), fraction=fraction, path=path, dpi=dpi)
    _done(path)


@plot_group.command("density")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@_layers_option
@_output_options
def density_command(run, layers, output, dpi):
    """Density of every layer (and the network) over RUN's checkpoints."""
    from topo.plotting import density_figure

    path = _target(output, run, "density")
    with _loading("loading checkpoints") as progress:
        density_figure(run, layers=_split(layers), path=path, dpi=dpi, progress=progress)
    _done(path)


@plot_group.command("exploration")
@click.argument("run", type=click.Path(exists=True, path_type=str))
@_layers_option
@_output_options
def exploration_command(run, layers, output, dpi):
    """Exploration rate (connections ever active, ITOP) and active width over RUN's checkpoints."""
    from topo.plotting import exploration_figure

    path = _target(output, run, "exploration")
    with _loading("loading checkpoints") as progress:
        exploration_figure(run, layers=_split(layers), path=path, dpi=dpi, progress=progress)
    _done(path)


@plot_group.command("curves")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@_output_options
def curves_command(runs, output, dpi):
    """Loss and accuracy over epochs from RUNS' metrics.jsonl (several runs together)."""
    from topo.plotting import curves_figure

    path = _target(output, runs[0] if len(runs) == 1 else None, "curves")
    curves_figure(list(runs), path=path, dpi=dpi)
    _done(path)

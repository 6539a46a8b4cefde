"""``topo report``: one self-contained HTML file about one or more runs."""

from __future__ import annotations

import click

from topo_cli.command import TopoCommand


@click.command("report", cls=TopoCommand)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="FILE",
              help="HTML file to write. Default: RUN/report.html for one run, ./report.html for several.")
@click.option("--title", default=None, help="Title of the report.")
@click.option("--dpi", type=click.IntRange(30, 300), default=100, show_default=True,
              help="Resolution of the embedded figures.")
@click.option("--include-dense", is_flag=True,
              help="Count dense layers in the summaries (mean fan-in CV, layers converged, NNSTD); "
                   "by default these are over the sparse layers.")
def report_command(runs: tuple[str, ...], output: str | None, title: str | None, dpi: int, include_dense: bool) -> None:
    """Write an HTML report on RUNS that opens offline.

    Per run: final accuracy and loss, per-layer density, fan-in CV and drift
    convergence, gradient concentration, the run's configuration (run.json), and
    figures (training curves, fan-in ridge plot, drift, densities, hubs, gradients,
    fan-in distribution with fits). Several runs start with a comparison table, their
    curves together and the NNSTD between their final checkpoints. Figures are
    embedded; no network access or JavaScript is needed to view it.

    Dense layers (every connection present) are marked in the layer table and left
    out of the summaries, which they would skew; --include-dense counts them.
    """
    from pathlib import Path

    from topo.report import write_report
    from topo_cli.progress import progress_bar

    path = Path(output) if output else (Path(runs[0]) / "report.html" if len(runs) == 1 else Path("report.html"))
    with progress_bar("report") as progress:
        written = write_report(list(runs), path, title=title, dpi=dpi, include_dense=include_dense, progress=progress)
    click.echo(f"wrote {written}")

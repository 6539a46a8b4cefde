"""``topo distance``: the NNSTD matrix of many checkpoints."""

from __future__ import annotations

import csv
import io

import click

from topo_cli import messages
from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option


def _unique_labels(paths: tuple[str, ...]) -> list[str]:
    """The paths as given, with a suffix where one is given twice."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for path in paths:
        count = seen.get(path, 0) + 1
        seen[path] = count
        labels.append(path if count == 1 else f"{path} ({count})")
    return labels


def matrix_csv(labels: list[str], matrix) -> str:
    """CSV text: a header row ``checkpoint,<labels>``, then one row per checkpoint."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["checkpoint", *labels])
    for label, row in zip(labels, matrix):
        writer.writerow([label, *(repr(float(v)) for v in row)])
    return buffer.getvalue()


@click.command("distance", cls=TopoCommand, sections={
    "Matching": ["no_match_output", "tie_break", "solver", "include_dense"],
    "Output": ["fmt", "output"],
    "Parallelism": ["workers", "scheduler"],
})
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes that compute pairs.")
@click.option("--scheduler", metavar="ADDR", default=None,
              help="Run the pairs on a Dask cluster, e.g. tcp://127.0.0.1:8786 (needs the dask extra).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also write the matrix as CSV (header row of labels) to this file.")
@click.option("--no-match-output", is_flag=True,
              help="Keep output neurons by index instead of matching them.")
@click.option("--tie-break", type=click.Choice(["canonical", "reference"]), default="canonical",
              show_default=True,
              help="Which optimal matching propagates: topo's stated rule (the same for every solver) "
                   "or exactly the published script's choice (dense solver only).")
@click.option("--solver", type=click.Choice(["auto", "dense", "sparse"]), default="auto", show_default=True,
              help="Assignment solver for the canonical rule: dense for small layers, sparse (on the "
                   "pairs of neurons that share an input) for wide ones; all give the same result.")
@click.option("--include-dense", is_flag=True,
              help="Average layers dense in both networks into each NNSTD too (by default only the other layers).")
@format_option()
def distance_command(
    checkpoints: tuple[str, ...], workers: int, scheduler: str | None, output: str | None,
    no_match_output: bool, tie_break: str, solver: str, include_dense: bool, fmt: str,
) -> None:
    """NNSTD between every ordered pair of CHECKPOINTS (at least two).

    Row i, column j is the distance from network i to network j (Liu et al. 2020),
    normalised by network i's widths and so not symmetric in general; every ordered
    pair is computed and the diagonal is 0. Ties between optimal matchings follow
    --tie-break (see `topo.analysis.distance` for the canonical rule). A progress bar
    is drawn on stderr: per layer when the pairs run in this process, else per pair.

    Each NNSTD is the mean of the layer distances over the layers that are not dense
    in both networks (two dense layers of one shape are at distance 0 and would pull
    the mean down); --include-dense averages every layer.
    """
    if len(checkpoints) < 2:
        raise click.UsageError("give at least two checkpoints")
    from topo.analysis.distance import nnstd_matrix
    from topo.checkpoint import atomic_write_text
    from topo.runs import load_masks
    from topo_cli.progress import progress_bar

    if tie_break == "reference" and solver == "sparse":
        raise click.UsageError("--tie-break reference uses the dense solver; drop --solver sparse")
    labels = _unique_labels(checkpoints)
    here = workers == 1 and scheduler is None
    with progress_bar("NNSTD layers" if here else "NNSTD pairs") as progress:
        matrix = nnstd_matrix(
            list(checkpoints), load=load_masks, match_output=not no_match_output, include_dense=include_dense, tie_break=tie_break, solver=solver,
            workers=workers, scheduler=scheduler,
            progress=None if here else progress, layer_progress=progress if here else None,
        )
    if output is not None:
        atomic_write_text(output, matrix_csv(labels, matrix))
        messages.note(f"wrote {output} ({len(labels)} x {len(labels)} NNSTD matrix)")
    if fmt == "csv":
        click.echo(matrix_csv(labels, matrix), nl=False)
        return
    n = len(labels)
    columns = ["#", "path", *(f"#{j}" for j in range(n))]
    rows = [
        {"#": i, "path": labels[i], **{f"#{j}": float(matrix[i, j]) for j in range(n)}}
        for i in range(n)
    ]
    off_diagonal = [float(matrix[i, j]) for i in range(n) for j in range(n) if i != j]
    emit(
        rows,
        columns,
        fmt,
        title="NNSTD from row to column",
        headers={"path": "checkpoint"},
        caption=f"{n} checkpoints; mean off-diagonal NNSTD {sum(off_diagonal) / len(off_diagonal):.4g}; "
                + ("every layer averaged (--include-dense)" if include_dense
                   else "layers dense in both networks left out (--include-dense counts them)"),
        json_payload={
            "labels": labels,
            "match_output": not no_match_output,
            "tie_break": tie_break,
            "include_dense": include_dense,
            "matrix": matrix.tolist(),
        },
    )

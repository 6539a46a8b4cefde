"""``topo audit``: one row of connectivity figures per checkpoint found under the paths."""

from __future__ import annotations

import contextlib
import io
import sys

import click

from topo_cli.render import emit, format_option

#: exit code when --strict and something could not be read (or nothing was found)
STRICT_EXIT = 3

COLUMNS = [
    "path", "status", "format", "epoch", "step", "n_layers", "nnz", "total", "density",
    "layer_density_mean", "layer_density_max", "fan_in_cv_mean", "fan_in_cv_max",
    "no_inputs", "no_outputs", "best_fit", "best_fit_layer", "hub_share", "warnings", "error",
]
TABLE_COLUMNS = [
    "path", "status", "format", "n_layers", "nnz", "density", "fan_in_cv_mean", "fan_in_cv_max",
    "no_inputs", "no_outputs", "best_fit", "hub_share", "notes",
]
HEADERS = {
    "n_layers": "layers", "fan_in_cv_mean": "CV mean", "fan_in_cv_max": "CV max",
    "no_inputs": "no in", "no_outputs": "no out", "best_fit": "best fit", "hub_share": "hub share",
    "layer_density_mean": "layer density mean", "layer_density_max": "layer density max",
}


def _flat(row) -> dict:
    """A row for table, CSV and markdown: warnings joined, one ``notes`` cell."""
    data = row.as_dict()
    data["warnings"] = "; ".join(row.warnings)
    data["notes"] = row.error if row.error else data["warnings"]
    return data


@click.command("audit")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@format_option(("table", "csv", "json", "markdown"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write the output to FILE (atomically) instead of stdout.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes to read checkpoints with.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Read on a running Dask distributed cluster (tcp://host:port); needs the dask extra.")
@click.option("--strict", is_flag=True,
              help=f"Exit {STRICT_EXIT} when a checkpoint could not be read or a folder holds none.")
@click.option("--layers", metavar="REGEX", default=None,
              help="Audit only layers whose names match REGEX (re.search).")
def audit_command(paths, fmt, output, workers, scheduler, strict, layers) -> None:
    """Audit every checkpoint under PATHS: one row of connectivity figures each.

    PATHS are checkpoint files and folders. Folders are walked: every file a reader
    recognises is audited, and so is every file with a checkpoint suffix (.pt .pth
    .bin .ckpt .safetensors .onnx .h5 .hdf5 .keras .npz .npy), which gets a row with
    the reason when it cannot be read; other files are skipped. A folder that a
    reader reads as one checkpoint (a Hugging Face model, a SET epoch) is one row; a
    topo run folder gives one row per checkpoint, in training order. Masks only are
    read (no weights).

    Columns: connections present (nnz) and possible (total), density, the mean and
    maximum over layers of the fan-in CV (and, in csv/json, of the layer density),
    neurons without inputs / outputs, the best-fitting fan-in distribution of the
    layer with the most neurons whose fan-in varies, the hub share (connections into
    each layer's top-10% fan-in neurons, pooled), and warnings or the error.

    Exit status: 0; 1 when a PATH does not exist; with --strict, 3 when a checkpoint
    could not be read or a folder holds no checkpoint.
    """
    from topo.audit import audit_paths, find_checkpoints
    from topo.atomic import atomic_write_text
    from topo_cli.progress import progress_bar

    found = []
    empty = []
    for path in paths:  # every path is checked before anything is read
        checkpoints = find_checkpoints([path])
        if not checkpoints:
            empty.append(path)
        found.extend(checkpoints)
    for path in empty:
        click.echo(f"no checkpoints found under {path}", err=True)

    rows = []
    if found:
        with progress_bar("auditing") as progress:
            rows = audit_paths(found, workers=workers, scheduler=scheduler, progress=progress, layers=layers)
    failed = [row for row in rows if row.status == "error"]

    flat = [_flat(row) for row in rows]
    columns = TABLE_COLUMNS if fmt in ("table", "markdown") else COLUMNS
    caption = f"{len(rows)} checkpoint{'s' if len(rows) != 1 else ''}, {len(failed)} unreadable"
    buffer = io.StringIO()
    target = contextlib.redirect_stdout(buffer) if output else contextlib.nullcontext()
    with target:
        if rows or fmt != "table":
            emit(
                flat, columns, fmt, title="topo audit", headers=HEADERS, caption=caption,
                json_payload=[row.as_dict() for row in rows],
            )
    if output:
        atomic_write_text(output, buffer.getvalue())

    if failed:
        click.echo(f"{len(failed)} of {len(rows)} checkpoints could not be read", err=True)
    if strict and (failed or empty):
        sys.exit(STRICT_EXIT)

"""``topo audit``: one row of connectivity figures per checkpoint found under the paths."""

from __future__ import annotations

import contextlib
import io
import os
import sys

import click

from topo_cli import messages
from topo_cli.command import TopoCommand
from topo_cli.render import emit, format_option

#: exit code when --strict and something was refused (or nothing was found)
STRICT_EXIT = 3

COLUMNS = [
    "path", "status", "format", "epoch", "step", "n_layers", "nnz", "total", "density",
    "layer_density_mean", "layer_density_max", "fan_in_cv_mean", "fan_in_cv_max",
    "no_inputs", "no_outputs", "best_fit", "best_fit_layer", "hub_share",
    "sparsity", "requested_sparsity", "pattern", "layers_2_4", "warnings", "error",
]
TABLE_COLUMNS = [
    "path", "status", "format", "n_layers", "nnz", "density", "fan_in_cv_mean", "fan_in_cv_max",
    "no_inputs", "no_outputs", "best_fit", "hub_share", "pattern", "requested_sparsity", "notes",
]
HEADERS = {
    "n_layers": "layers", "fan_in_cv_mean": "CV mean", "fan_in_cv_max": "CV max",
    "no_inputs": "no in", "no_outputs": "no out", "best_fit": "best fit", "hub_share": "hub share",
    "layer_density_mean": "layer density mean", "layer_density_max": "layer density max",
    "requested_sparsity": "requested", "layers_2_4": "2:4 layers",
}


def _flat(row, base: str | None = None) -> dict:
    """A row for table, CSV and markdown: warnings joined, one ``notes`` cell; in a
    table, the path relative to ``base`` (the folder the paths were found under)."""
    data = row.as_dict()
    data["warnings"] = "; ".join(row.warnings)
    data["notes"] = row.error if row.error else data["warnings"]
    if base is not None:
        data["path"] = os.path.relpath(os.path.abspath(row.path), base)
    return data


def _common_folder(paths) -> str | None:
    """The folder every audited path lies in, when there is a narrower one than the root."""
    folders = [os.path.abspath(p) if os.path.isdir(p) else os.path.dirname(os.path.abspath(p)) for p in paths]
    try:
        common = os.path.commonpath(folders)
    except ValueError:
        return None
    return None if common == os.path.dirname(common) else common


def _regex(value):
    """A pattern Python cannot compile is a usage error (exit 2)."""
    if value is not None:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise click.BadParameter(f"{value!r} is not a valid regular expression ({exc})") from None
    return value


@click.command("audit", cls=TopoCommand, sections={
    "Output": ["fmt", "output", "strict", "include_dense"],
    "What is read": ["layers", "follow_symlinks"],
    "Parallelism": ["workers", "scheduler"],
})
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@format_option(("table", "csv", "json", "markdown"))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write the output to FILE (atomically) instead of stdout.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes to read checkpoints with.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Read on a running Dask distributed cluster (tcp://host:port); needs the dask extra.")
@click.option("--strict", is_flag=True,
              help=f"Exit {STRICT_EXIT} when something was refused or a folder holds no checkpoint.")
@click.option("--layers", metavar="REGEX", default=None, callback=lambda ctx, param, value: _regex(value),
              help="Audit only layers whose names match REGEX (re.search).")
@click.option("--follow-symlinks", is_flag=True, envvar="TOPO_FOLLOW_LINKS", show_envvar=True,
              help="Follow symbolic links that lead out of the audited folders (refused by default).")
@click.option("--include-dense", is_flag=True,
              help="Count dense layers in the fan-in CV mean and maximum (by default only sparse layers).")
def audit_command(paths, fmt, output, workers, scheduler, strict, layers, follow_symlinks, include_dense) -> None:
    """Audit everything under PATHS: one row per checkpoint, and a row for the rest.

    PATHS are checkpoint files and folders. Every file under a folder gets a row:
    ok (read and measured), refused (why: unreadable, corrupt, unsafe, a link out
    of the folder), or skipped (why: not a checkpoint, hidden). A model folder (a
    Hugging Face folder with config.json, an index JSON or model.safetensors; a
    Keras or Orbax folder; a SET epoch) is one row; any other folder's files are
    audited one by one, so two safetensors files are two models. A topo run folder
    gives one row per checkpoint, in training order. Symbolic links that lead out of
    the audited folder are refused unless --follow-symlinks. Masks only are read.

    Columns: connections present (nnz) and possible (total), density, the mean and
    maximum over the sparse layers of the fan-in CV (--include-dense: over all
    layers; a dense layer's CV is 0) and, in csv/json, of the layer density over all,
    neurons without inputs / outputs, the best-fitting fan-in distribution of the
    layer with the most neurons whose fan-in varies, the hub share (connections into
    each layer's top-10% fan-in neurons, pooled), the layers' sparsity patterns
    (dense, unstructured, N:M such as 2:4, block RxC), how many layers a 2:4 kernel
    could run, the requested sparsity where the file records one, and warnings or
    the reason. JSON adds, per row, a "layers" list with each layer's "pattern" and
    "pattern_compliance" (share of blocks that comply), "compliance_2_4",
    "runs_2_4", and requested against achieved sparsity.

    Exit status: 0; 1 when a PATH does not exist; with --strict, 3 when something
    was refused or a folder holds no checkpoint.
    """
    from topo.atomic import atomic_write_text
    from topo.audit import audit_entries, survey
    from topo_cli.progress import progress_bar

    entries = []
    empty = []
    seen = set()
    for path in paths:  # every path is checked before anything is read
        found = survey([path], follow_symlinks=follow_symlinks)
        if not any(entry.action == "audit" for entry in found):
            empty.append(path)
        for entry in found:
            key = os.path.abspath(entry.path)
            if key not in seen:
                seen.add(key)
                entries.append(entry)
    for path in empty:
        messages.note(f"no checkpoints found under {path}")

    with progress_bar("auditing") as progress:
        rows = audit_entries(
            entries, workers=workers, scheduler=scheduler, progress=progress, layers=layers,
            follow_symlinks=follow_symlinks, include_dense=include_dense,
        )
    refused = [row for row in rows if row.status == "refused"]
    skipped = [row for row in rows if row.status == "skipped"]
    ok = len(rows) - len(refused) - len(skipped)

    base = _common_folder(paths) if fmt in ("table", "markdown") else None
    flat = [_flat(row, base) for row in rows]
    columns = TABLE_COLUMNS if fmt in ("table", "markdown") else COLUMNS
    if fmt in ("table", "markdown") and not any(row.requested_sparsity is not None for row in rows):
        columns = [c for c in columns if c != "requested_sparsity"]  # only where a file records one
    caption = f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {ok} ok, {len(refused)} refused, {len(skipped)} skipped"
    buffer = io.StringIO()
    target = contextlib.redirect_stdout(buffer) if output else contextlib.nullcontext()
    with target:
        if rows or fmt != "table":
            emit(
                flat, columns, fmt, title="topo audit" + (f" of {base}" if base else ""), headers=HEADERS, caption=caption,
                json_payload=[row.as_dict() for row in rows],
            )
    if output:
        atomic_write_text(output, buffer.getvalue())

    if refused:
        messages.note(f"{len(refused)} of {len(rows)} refused")
        if any("outside the audited folder" in (row.error or "") for row in refused):
            # the rows name the library's parameter; here the flag does the same
            messages.note("links out of the audited folder are read with --follow-symlinks")
    if strict and (refused or empty):
        sys.exit(STRICT_EXIT)

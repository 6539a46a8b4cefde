"""``topo sweep``: run a grid of training runs from a TOML spec; one results table."""

from __future__ import annotations

import sys

import click

from topo_cli import messages
from topo_cli.command import TopoCommand
from topo_cli.options import data_dir_option
from topo_cli.render import emit, format_option

#: exit code when --strict and a run failed
STRICT_EXIT = 3

_FIXED = ("run_id", "name", "status", "final_val_acc", "final_test_acc", "best_val_acc", "epochs_done", "run_dir", "error")
_SHORT = {"fan_in_cv_": "CV ", "converged_": "conv ", "grad_concentration_": "conc ", "neurons_removed_": "removed "}
HEADERS = {
    "final_val_acc": "val acc", "final_test_acc": "test acc", "best_val_acc": "best val",
    "epochs_done": "epochs", "exploration_rate": "explored",
}


def _table_columns(result, varying) -> list[str]:
    """The readable subset: id, status, the keys that vary, accuracies, per-layer figures."""
    per_layer = [c for c in result.columns if c.startswith(tuple(_SHORT))]
    # removed neurons only where some run removed some (srigl's ablation)
    per_layer = [c for c in per_layer if not c.startswith("neurons_removed_") or any(row.get(c) for row in result.rows)]
    keys = [k for k in varying if k in result.columns]
    errors = ["error"] if result.count("error") else []
    return ["run_id", "status", *keys, "final_val_acc", "final_test_acc", "epochs_done", "exploration_rate",
            *per_layer, *errors]


def _headers(columns) -> dict[str, str]:
    headers = dict(HEADERS)
    for column in columns:
        for prefix, short in _SHORT.items():
            if column.startswith(prefix):
                headers[column] = short + column[len(prefix):]
    return headers


@click.command("sweep", cls=TopoCommand, sections={
    "Where": ["out", "data_dir"],
    "Output": ["fmt", "strict"],
    "Parallelism": ["workers", "scheduler"],
})
@click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs trained at once in local processes (each with one torch thread when > 1).")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Train on a running Dask distributed cluster (tcp://host:port) whose workers see --out.")
@click.option("--out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="The sweep's folder (default: the spec's [sweep] out, else runs/sweeps/<name>).")
@data_dir_option(help="Folder with the data files, for every run (default: ~/.cache/topo).")
@format_option()
@click.option("--strict", is_flag=True, help=f"Exit {STRICT_EXIT} when a run failed.")
def sweep_command(spec, workers, scheduler, out, data_dir, fmt, strict) -> None:
    """Train every run of the sweep SPEC (TOML) that has not finished; print the results.

    SPEC has [sweep] name and out, [base] (training options shared by every run),
    [grid] (lists whose cartesian product gives the runs) and optional [[include]]
    tables (extra runs). Keys are the options of `topo train` with underscores
    (update_every, hub_placement, ...); "none" unsets an option such as cv. See
    examples/sweeps/tiny.toml.

    Each run trains in OUT/runs/<run_id> (a readable name and a hash of its
    configuration). Running the sweep again skips finished runs and resumes
    interrupted ones. OUT/results.csv, rewritten as runs finish, holds every run's
    configuration, accuracies and, per layer, the final fan-in CV, the epoch at which
    the fan-in distribution converged (drift) and the gradient concentration.

    Grid combinations that cannot be built (profile random with a cv, a parametric
    profile without one) are skipped with a note on stderr.

    Exit status: 0 (also when runs failed: their rows say why); 1 for a bad spec or
    option; with --strict, 3 when a run failed.
    """
    from topo.sweep import expand_grid, read_sweep_spec, run_sweep
    from topo_cli.progress import progress_bar

    parsed = read_sweep_spec(spec)
    notes: list[str] = []
    expand_grid(parsed, notes=notes)  # checks every run before any starts
    for note in notes:
        messages.note(f"note: {note}")
    with progress_bar("sweep (runs)") as progress:
        result = run_sweep(parsed, out=out, workers=workers, scheduler=scheduler, data_dir=data_dir, progress=progress)

    counts = {status: result.count(status) for status in ("done", "resumed", "skipped", "error")}
    caption = (
        f"{len(result.rows)} run{'s' if len(result.rows) != 1 else ''}: "
        + ", ".join(f"{n} {status}" for status, n in counts.items()).replace(" error", " errors")
        + f"; results in {result.results_csv}"
    )
    if fmt == "table":
        columns = _table_columns(result, parsed.varying_keys)
        emit(result.rows, columns, fmt, title=f"topo sweep {parsed.name}", headers=_headers(columns), caption=caption)
    else:
        emit(result.rows, result.columns, fmt, json_payload=result.rows)
        messages.note(caption)
    if counts["error"]:
        click.echo(f"{counts['error']} of {len(result.rows)} runs failed (see the error column)", err=True)
        if strict:
            sys.exit(STRICT_EXIT)


"""A sweep's results table: one row per run from the runs' summaries, written as CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from topo.sweep.grid import SweepRun
from topo.sweep.job import FIGURES, read_summary
from topo.sweep.spec import SweepSpec
from topo.values import finite_float, natural_sorted

__all__ = ["ResultsTable", "results_columns", "STATUSES", "RUNS_DIR", "SUMMARIES_DIR", "RESULTS_FILE"]

#: what a row's ``status`` can be
STATUSES = ("done", "resumed", "skipped", "error", "pending")
RUNS_DIR = "runs"
SUMMARIES_DIR = "summaries"
RESULTS_FILE = "results.csv"


def _layer_names(summaries: Sequence[Mapping[str, Any] | None]) -> list[str]:
    names: list[str] = []
    for summary in summaries:
        for name in (summary or {}).get("layers", []) or []:
            if name not in names:
                names.append(name)
    return natural_sorted(names)


def results_columns(config_keys: Sequence[str], layers: Sequence[str]) -> list[str]:
    """The results table's columns for these spec keys and layer names.

    Parameters
    ----------
    config_keys : sequence of str
        The configuration fields the spec names (:attr:`SweepSpec.config_keys`).
    layers : sequence of str
        The layers of the runs, in order.

    Returns
    -------
    list of str
        ``run_id``, ``name``, ``status``, the keys, the run-level figures, four
        per-layer figures for each layer, ``run_dir``, ``error``.

    Examples
    --------
    >>> columns = results_columns(["method", "seed"], ["fc1", "fc2"])
    >>> columns[:5]
    ['run_id', 'name', 'status', 'method', 'seed']
    >>> [c for c in columns if c.endswith("fc2")]
    ['fan_in_cv_fc2', 'converged_fc2', 'grad_concentration_fc2', 'neurons_removed_fc2']
    >>> columns[-2:]
    ['run_dir', 'error']
    """
    return (
        ["run_id", "name", "status", *config_keys, *FIGURES]
        + [f"fan_in_cv_{layer}" for layer in layers]
        + [f"converged_{layer}" for layer in layers]
        + [f"grad_concentration_{layer}" for layer in layers]
        + [f"neurons_removed_{layer}" for layer in layers]
        + ["run_dir", "error"]
    )


def _config_cell(value: Any) -> Any:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _row(run: SweepRun, summary: Mapping[str, Any] | None, config_keys, layers, run_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run.run_id, "name": run.name}
    row["status"] = summary["status"] if summary else "pending"
    for key in config_keys:
        row[key] = _config_cell(getattr(run.config, key))
    summary = summary or {}
    for key in FIGURES:
        value = summary.get(key)
        row[key] = value if key == "epochs_done" else finite_float(value, math.nan)
    index_of = {name: i for i, name in enumerate(summary.get("layers") or [])}
    for figure in ("fan_in_cv", "converged", "grad_concentration", "neurons_removed"):
        values = summary.get(figure) or []
        for layer in layers:
            index = index_of.get(layer)
            value = values[index] if index is not None and index < len(values) else None
            if figure not in ("converged", "neurons_removed") and value is not None:
                value = finite_float(value, math.nan)
            row[f"{figure}_{layer}"] = value
    row["run_dir"] = str(run_dir)
    row["error"] = summary.get("error")
    return row


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, float):
            return "" if not math.isfinite(value) else repr(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return buffer.getvalue()


class ResultsTable:
    """The sweep's rows, refreshed from the runs' summary files and written as CSV.

    Parameters
    ----------
    spec : SweepSpec
    runs : sequence of SweepRun
        The sweep's runs (:func:`topo.sweep.grid.expand_grid`), in the table's order.
    out_dir : pathlib.Path
        The sweep's folder: ``results.csv``, ``runs/``, ``summaries/``.
    token : str
        This invocation's token: only summaries that carry it are picked up by
        :meth:`refresh` (older ones belong to an earlier invocation).

    Examples
    --------
    Before any run has finished, every row is pending:

    >>> import pathlib, tempfile
    >>> from topo.sweep.grid import expand_grid
    >>> from topo.sweep.spec import parse_sweep_spec
    >>> folder = tempfile.TemporaryDirectory()
    >>> spec = parse_sweep_spec({"base": {"hidden": [8]}, "grid": {"seed": [0, 1]}})
    >>> table = ResultsTable(spec, expand_grid(spec), pathlib.Path(folder.name), token="abc")
    >>> rows, columns = table.write()
    >>> [(row["name"], row["status"]) for row in rows]
    [('seed0', 'pending'), ('seed1', 'pending')]
    >>> print((pathlib.Path(folder.name) / "results.csv").read_text().splitlines()[0][:30])
    run_id,name,status,seed,hidden
    >>> table.summary_path(table.runs[0]).relative_to(folder.name).parent.name
    'summaries'
    >>> folder.cleanup()
    """

    def __init__(self, spec: SweepSpec, runs: Sequence[SweepRun], out_dir: Path, token: str):
        self.spec = spec
        self.runs = list(runs)
        self.out_dir = out_dir
        self.token = token
        self.summaries: dict[str, dict[str, Any] | None] = {run.run_id: None for run in runs}

    def summary_path(self, run: SweepRun) -> Path:
        """Where ``run``'s summary is kept: ``OUT/summaries/<run_id>.json``."""
        return self.out_dir / SUMMARIES_DIR / f"{run.run_id}.json"

    def run_dir(self, run: SweepRun) -> Path:
        """``run``'s folder: ``OUT/runs/<run_id>``."""
        return self.out_dir / RUNS_DIR / run.run_id

    def refresh(self) -> None:
        """Pick up the rows that jobs of this invocation have written so far."""
        for run in self.runs:
            if self.summaries[run.run_id] is not None:
                continue
            summary = read_summary(self.summary_path(run))
            if summary is not None and summary.get("token") == self.token:
                self.summaries[run.run_id] = summary

    def set(self, summary: Mapping[str, Any]) -> None:
        """Take ``summary`` (a :func:`topo.sweep.job.sweep_job` result) as its run's row."""
        self.summaries[summary["run_id"]] = dict(summary)

    def rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The rows in the runs' order (``pending`` where no summary is known yet) and the columns."""
        ordered = [self.summaries[run.run_id] for run in self.runs]
        layers = _layer_names(ordered)
        keys = self.spec.config_keys
        columns = results_columns(keys, layers)
        rows = [_row(run, s, keys, layers, self.run_dir(run)) for run, s in zip(self.runs, ordered)]
        return rows, columns

    def write(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Write ``results.csv`` atomically; returns :meth:`rows`."""
        from topo.atomic import atomic_write_text

        rows, columns = self.rows()
        atomic_write_text(self.out_dir / RESULTS_FILE, _csv_text(rows, columns))
        return rows, columns



"""Running a sweep: every unfinished run through :func:`topo.parallel.map_jobs`, the table kept current."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.sweep.grid import SweepRun, expand_grid
from topo.sweep.job import sweep_job
from topo.sweep.results import RESULTS_FILE, RUNS_DIR, SUMMARIES_DIR, ResultsTable
from topo.sweep.spec import SweepSpec, read_sweep_spec

__all__ = ["SweepResult", "run_sweep"]


@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    out_dir : Path
        The sweep's folder.
    results_csv : Path
        ``out_dir / "results.csv"``.
    rows : list of dict
        One row per run in the spec's order, keyed by ``columns`` (NaN where a figure
        is missing; per-layer figures of layers a run lacks are None).
    columns : list of str
        The results table's columns, in order.
    notes : list of str
        Grid combinations skipped as invalid, duplicates dropped.

    Examples
    --------
    >>> import pathlib
    >>> result = SweepResult(pathlib.Path("sweep"), pathlib.Path("sweep/results.csv"),
    ...                      [{"status": "done"}, {"status": "error"}, {"status": "done"}])
    >>> result.count("done"), result.count("pending")
    (2, 0)
    """

    out_dir: Path
    results_csv: Path
    rows: list[dict[str, Any]]
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many rows have ``status``."""
        return sum(1 for row in self.rows if row.get("status") == status)


def run_sweep(
    spec_or_path: SweepSpec | str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> SweepResult:
    """Run every run of a sweep that has not finished, and write the results table.

    Parameters
    ----------
    spec_or_path : SweepSpec or path-like
        A spec, or its TOML file.
    out : path-like, optional
        The sweep's folder; default the spec's ``out``, else ``runs/sweeps/<name>``.
    workers : int
        1 trains in this process; more trains that many runs at once in local
        processes, each with one torch thread.
    scheduler : str, optional
        A running Dask scheduler (``tcp://host:port``) to train on instead; its
        workers must see ``out`` at the same path. Runs use one torch thread.
    data_dir : path-like, optional
        Where the data sets are read from, for every run (does not change run ids).
    progress : callable, optional
        ``progress(done, total)`` in runs, after each finished (or skipped) run.

    Returns
    -------
    SweepResult

    Raises
    ------
    TopoError
        For a bad spec (before any run starts), ``workers`` below 1, ``out`` being a
        file, an unreachable scheduler, a worker process that died, or another
        process running a sweep in ``out`` (:class:`topo.runlock.RunLockedError`,
        naming it). A failing run does not raise: its row has status ``error``.

    Examples
    --------
    Two tiny runs on the bundled digits data set, then the same sweep again, which
    finds both finished:

    >>> import pathlib, tempfile
    >>> from topo.sweep.spec import parse_sweep_spec
    >>> folder = tempfile.TemporaryDirectory()
    >>> spec = parse_sweep_spec({
    ...     "base": {"hidden": [8], "epochs": 1, "method": "static", "device": "cpu", "threads": 1},
    ...     "grid": {"seed": [0, 1]},
    ... })
    >>> result = run_sweep(spec, out=pathlib.Path(folder.name) / "sweep")
    >>> [(row["name"], row["status"], row["epochs_done"]) for row in result.rows]
    [('seed0', 'done', 1), ('seed1', 'done', 1)]
    >>> result.columns[:4], result.results_csv.name
    (['run_id', 'name', 'status', 'seed'], 'results.csv')
    >>> again = run_sweep(spec, out=result.out_dir)
    >>> again.count("skipped"), [row["final_test_acc"] for row in again.rows] == [row["final_test_acc"] for row in result.rows]
    (2, True)
    >>> folder.cleanup()
    """
    notes: list[str] = []
    spec = spec_or_path if isinstance(spec_or_path, SweepSpec) else read_sweep_spec(spec_or_path)
    runs = expand_grid(spec, notes=notes)
    if int(workers) < 1:
        raise TopoError(f"workers must be at least 1, got {workers}")
    out_dir = Path(out if out is not None else (spec.out or Path("runs") / "sweeps" / spec.name))
    if out_dir.exists() and not out_dir.is_dir():
        raise TopoError("the sweep's output must be a folder, found a file", path=out_dir)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise TopoError("no such data folder", path=data_dir)
    from topo.runlock import run_lock

    # one sweep per folder at a time; each run is locked too, by train_or_resume
    with run_lock(out_dir, purpose="sweep"):
        return _run_sweep_locked(
            spec, runs, out_dir, notes, workers=workers, scheduler=scheduler, data_dir=data_dir, progress=progress
        )


def _run_sweep_locked(
    spec: SweepSpec,
    runs: Sequence[SweepRun],
    out_dir: Path,
    notes: list[str],
    *,
    workers: int,
    scheduler: str | None,
    data_dir: str | os.PathLike | None,
    progress: ProgressCallback | None,
) -> SweepResult:
    """The body of :func:`run_sweep`, run while the sweep folder's lock is held."""
    (out_dir / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARIES_DIR).mkdir(parents=True, exist_ok=True)

    token = uuid.uuid4().hex
    table = ResultsTable(spec, runs, out_dir, token)
    table.write()
    single_thread = int(workers) > 1 or scheduler is not None
    jobs = [
        {
            "run_id": run.run_id,
            "config": run.config.to_dict(),
            "run_dir": str(table.run_dir(run)),
            "summary": str(table.summary_path(run)),
            "token": token,
            "data_dir": None if data_dir is None else str(data_dir),
            "single_thread": single_thread,
        }
        for run in runs
    ]

    def report(done: int, total: int) -> None:
        if done:
            table.refresh()
            table.write()
        if progress is not None:
            progress(done, total)

    from topo.parallel import map_jobs

    try:
        summaries = map_jobs(sweep_job, jobs, workers=int(workers), scheduler=scheduler, progress=report)
    except Exception as exc:
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(exc, BrokenProcessPool):
            table.refresh()
            table.write()
            raise TopoError(
                "a worker process died (out of memory?); finished runs are in results.csv; "
                "run the sweep again to resume",
                path=out_dir,
            ) from None
        raise
    for summary in summaries:
        table.set(summary)
    rows, columns = table.write()
    return SweepResult(out_dir, out_dir / RESULTS_FILE, rows, columns, notes)

"""One run of a sweep, in a worker: trained or resumed to its end, measured, its row kept as JSON.

:func:`sweep_job` is what :func:`topo.parallel.map_jobs` runs for each run (in this
process, a local process or a Dask worker): it brings the run to its end with
:func:`topo.training.trainer.train_or_resume`, measures its figures (accuracies from the
metrics, topology figures from the checkpoints), and writes them as the run's summary,
``OUT/summaries/<run_id>.json``. A run that fails does not raise: its summary has
status ``error`` and the message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from topo.errors import TopoError
from topo.training.config import TrainConfig
from topo.values import finite_float

__all__ = ["sweep_job", "read_summary", "FIGURES", "SUMMARY_KIND", "SUMMARY_VERSION"]

SUMMARY_KIND = "topo-sweep-row"
SUMMARY_VERSION = 1
#: the run-level figures of a summary (and of the results table)
FIGURES = ("final_val_acc", "final_test_acc", "best_val_acc", "epochs_done", "exploration_rate")


def _figures(run_dir: Path) -> dict[str, Any]:
    """Accuracies from the metrics, topology figures from the checkpoints."""
    from topo.analysis.degree import fan_in_cv
    from topo.analysis.drift import drift
    from topo.analysis.exploration import exploration
    from topo.analysis.gradients import gradient_concentration
    from topo.checkpoint import list_checkpoints, read_metrics
    from topo.runs import load_run

    metrics = read_metrics(run_dir)
    if not metrics:
        raise TopoError("the run has no metrics", path=run_dir)
    final = metrics[-1]
    trained = [r for r in metrics if int(r.get("epoch", 0)) >= 1] or metrics
    val = [finite_float(r.get("val_acc"), math.nan) for r in trained]
    val = [v for v in val if not math.isnan(v)]
    topologies = load_run(run_dir)
    last = topologies[-1]
    result = drift(topologies)
    converged = [None if i is None else result.epochs[i] for i in result.convergence]
    explored = exploration(topologies)
    concentration = []
    for layer in last:
        try:
            concentration.append(gradient_concentration(layer))
        except TopoError:  # a checkpoint without gradient statistics
            concentration.append(math.nan)
    return {
        "final_val_acc": finite_float(final.get("val_acc"), math.nan),
        "final_test_acc": finite_float(final.get("test_acc"), math.nan),
        "best_val_acc": max(val) if val else math.nan,
        "epochs_done": int(final.get("epoch", 0)),
        "layers": list(last.names),
        "fan_in_cv": [float(v) for v in fan_in_cv(last)],
        "converged": converged,
        "grad_concentration": [float(v) for v in concentration],
        "neurons_removed": explored.neurons_removed,
        "exploration_rate": explored.final_rate,
        "final_checkpoint": list_checkpoints(run_dir)[-1].name,
    }


def read_summary(path: Path) -> dict[str, Any] | None:
    """A run's summary as :func:`sweep_job` wrote it, or None.

    Parameters
    ----------
    path : pathlib.Path
        ``OUT/summaries/<run_id>.json``.

    Returns
    -------
    dict or None
        None for a missing or unreadable file, or JSON that is not a summary of this
        version (such a run is measured again).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "run.json"
    >>> read_summary(path) is None
    True
    >>> _ = path.write_text(json.dumps({"kind": SUMMARY_KIND, "version": SUMMARY_VERSION, "status": "done"}))
    >>> read_summary(path)["status"]
    'done'
    >>> _ = path.write_text(json.dumps({"kind": "something-else"}))
    >>> read_summary(path) is None
    True
    >>> folder.cleanup()
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != SUMMARY_KIND or data.get("version") != SUMMARY_VERSION:
        return None
    return data


def _cached_figures(summary_path: Path, run_dir: Path) -> dict[str, Any] | None:
    """The figures of an earlier summary, if the run has not changed since."""
    from topo.checkpoint import list_checkpoints, read_metrics

    old = read_summary(summary_path)
    if old is None or old.get("status") not in ("done", "resumed", "skipped") or "layers" not in old:
        return None
    checkpoints = list_checkpoints(run_dir)
    metrics = read_metrics(run_dir)
    if not checkpoints or not metrics or old.get("final_checkpoint") != checkpoints[-1].name:
        return None
    if old.get("epochs_done") != int(metrics[-1].get("epoch", -1)):
        return None
    keys = ("layers", "fan_in_cv", "converged", "grad_concentration", "neurons_removed", "final_checkpoint") + FIGURES
    if any(k not in old for k in keys):  # a summary from before a figure existed: measure again
        return None
    return {k: old[k] for k in keys}


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if isinstance(exc, TopoError) else f"{type(exc).__name__}: {text}"


def sweep_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Bring one run to its end and measure it; never raises for the run's own failures.

    ``job`` (small, picklable): ``run_id``, ``config`` (TrainConfig as a dict),
    ``run_dir``, ``summary`` (path of the row's JSON), ``token`` (this sweep's
    invocation), ``data_dir`` (override or None), ``single_thread`` (bool).

    Parameters
    ----------
    job : mapping
        As above.

    Returns
    -------
    dict
        The summary written to ``job["summary"]``: ``status`` (``done``, ``resumed``,
        ``skipped`` or ``error``), ``error`` (the message, or None) and, for a run
        that reached its end, the figures (:data:`FIGURES`, per-layer lists).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.training.config import TrainConfig
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> job = {"run_id": "tiny", "run_dir": str(folder / "runs" / "tiny"), "summary": str(folder / "tiny.json"),
    ...        "token": "abc", "data_dir": None, "single_thread": True,
    ...        "config": TrainConfig(hidden=(8,), epochs=1, method="static", device="cpu").to_dict()}
    >>> row = sweep_job(job)
    >>> row["status"], row["epochs_done"], row["layers"], row["error"]
    ('done', 1, ['fc1', 'fc2'], None)
    >>> sweep_job(job)["status"]  # finished already: measured figures are read back
    'skipped'
    >>> failed = sweep_job(dict(job, run_id="bad", run_dir=str(folder / "runs" / "bad"),
    ...                         config=dict(job["config"], dataset="no-such-set")))
    >>> failed["status"], failed["error"][:30]  # the run's failure is its row's, not the sweep's
    ('error', "unknown data set 'no-such-set'")
    >>> import shutil; shutil.rmtree(folder)
    """
    from topo.atomic import atomic_write_text

    run_dir = Path(job["run_dir"])
    summary_path = Path(job["summary"])
    row: dict[str, Any] = {
        "kind": SUMMARY_KIND,
        "version": SUMMARY_VERSION,
        "token": job["token"],
        "run_id": job["run_id"],
        "status": "error",
        "error": None,
    }
    try:
        config = TrainConfig.from_dict(job["config"])
        if job.get("data_dir") is not None:
            config.data_dir = str(job["data_dir"])
        if job.get("single_thread"):
            config.threads = 1
        from topo.training.trainer import train_or_resume

        _, status = train_or_resume(config, run_dir, data_dir=job.get("data_dir"))
        row["status"] = {"reused": "skipped", "resumed": "resumed", "trained": "done"}[status]
        cached = _cached_figures(summary_path, run_dir) if status == "reused" else None
        row.update(cached if cached is not None else _figures(run_dir))
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
        row["status"] = "error"
        row["error"] = _error_text(exc)
    atomic_write_text(summary_path, json.dumps(row, indent=1) + "\n")
    return row



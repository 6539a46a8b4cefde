"""The features table: structure features as a matrix, and the features and targets of a sweep's runs.

:func:`feature_matrix` turns feature rows (:func:`topo.analysis.structure.structure_features`)
into the matrix the models take; :func:`sweep_training_data` reads a ``topo sweep``
results table and gives the features and targets of its finished runs, computed once
and cached beside the table (see :mod:`topo.predict`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.progress import ProgressCallback

__all__ = [
    "FINISHED",
    "TrainingData",
    "feature_matrix",
    "density_columns",
    "parse_number",
    "resolve_target",
    "sweep_training_data",
]

#: statuses of sweep rows whose runs finished
FINISHED = ("done", "resumed", "skipped")


def feature_matrix(
    rows: Sequence[Mapping[str, float]], names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """A float64 matrix of feature rows.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping of feature name to value per sample.
    names : sequence of str, optional
        Columns to take (a fitted model's).  Default: the names every row has, in the
        first row's order, minus those that are missing or constant in all rows.

    Returns
    -------
    (numpy.ndarray, list of str)
        ``[n_samples, n_features]`` (non-finite values as NaN) and the column names.

    Raises
    ------
    TopoError
        If ``names`` is given and a row lacks one of them, or no column is left.

    Examples
    --------
    Columns that are the same in every row (``n_layers``) are left out; a value that is
    not a number becomes NaN:

    >>> rows = [{"density": 0.1, "n_layers": 3, "fc1.fan_in_cv": 0.4},
    ...         {"density": 0.2, "n_layers": 3, "fc1.fan_in_cv": "n/a"},
    ...         {"density": 0.3, "n_layers": 3, "fc1.fan_in_cv": 0.6}]
    >>> X, names = feature_matrix(rows)
    >>> names
    ['density', 'fc1.fan_in_cv']
    >>> X
    array([[0.1, 0.4],
           [0.2, nan],
           [0.3, 0.6]])
    >>> feature_matrix(rows, ["n_layers"])[0].ravel().tolist()
    [3.0, 3.0, 3.0]
    """
    rows = list(rows)
    if not rows:
        raise TopoError("no feature rows")
    if names is None:
        common = [name for name in rows[0] if all(name in row for row in rows[1:])]
    else:
        common = list(names)
        for index, row in enumerate(rows):
            missing = [name for name in common if name not in row]
            if missing:
                raise TopoError(
                    f"network {index + 1} lacks {len(missing)} feature(s) the model needs, e.g. "
                    f"{', '.join(missing[:3])} (a different architecture than the model was fitted on?)"
                )
    matrix = np.array([[parse_number(row[name]) for name in common] for row in rows], dtype=np.float64)
    matrix[~np.isfinite(matrix)] = np.nan
    if names is None:
        varies = []
        for column in range(matrix.shape[1]):
            values = matrix[:, column]
            present = values[np.isfinite(values)]
            varies.append(present.size > 0 and np.ptp(present) > 0)
        keep = np.array(varies, dtype=bool)
        matrix = matrix[:, keep]
        common = [name for name, k in zip(common, keep) if k]
        if not common:
            raise TopoError("no feature varies between the networks; nothing to learn from")
    return matrix, common


def density_columns(names: Sequence[str]) -> list[int]:
    """Indices of the density features among ``names``.

    The per-layer densities (``<layer>.density``); where none is present, the network
    ``density``; empty where neither is.

    Examples
    --------
    >>> density_columns(["density", "fc1.density", "fc1.fan_in_cv", "fc2.density"])
    [1, 3]
    >>> density_columns(["density", "nnz"]), density_columns(["nnz"])
    ([0], [])
    """
    names = list(names)
    layers = [i for i, name in enumerate(names) if name.endswith(".density")]
    if layers:
        return layers
    return [i for i, name in enumerate(names) if name == "density"]


def parse_number(value: Any) -> float:
    """``float(value)``, or NaN where ``value`` is not a number (a table cell, a missing value).

    Examples
    --------
    >>> parse_number("0.91"), parse_number(3)
    (0.91, 3.0)
    >>> parse_number(""), parse_number(None)
    (nan, nan)
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class TrainingData:
    """Feature rows and targets of a sweep's finished runs.

    Attributes
    ----------
    rows : list of dict
        Features of each run.
    y : numpy.ndarray
        Targets.
    run_ids : list of str
    target_column : str
        The results column the targets came from.
    cache_path : pathlib.Path or None
        The features cache, where one was used.
    skipped : list of str
        Why rows were left out (``"<run_id>: <reason>"``).
    computed : int
        How many feature rows were computed (the rest came from the cache).

    Examples
    --------
    :func:`sweep_training_data` builds one from a sweep's results table; its fields are
    plain values:

    >>> import numpy as np
    >>> data = TrainingData(rows=[{"density": 0.1}], y=np.array([0.9]), run_ids=["r0"],
    ...                     target_column="final_test_acc", cache_path=None, skipped=[], computed=1)
    >>> data.run_ids, data.y.tolist()
    (['r0'], [0.9])
    """

    rows: list[dict[str, float]]
    y: np.ndarray
    run_ids: list[str]
    target_column: str
    cache_path: Path | None
    skipped: list[str]
    computed: int


def resolve_target(columns: Sequence[str], target: str) -> str:
    """The results column for ``target``: ``final_<target>`` where it exists, else ``target``.

    Raises
    ------
    TopoError
        If neither column exists.

    Examples
    --------
    >>> resolve_target(["run_id", "final_test_acc", "best_test_acc"], "test_acc")
    'final_test_acc'
    >>> resolve_target(["run_id", "best_test_acc"], "best_test_acc")
    'best_test_acc'
    >>> resolve_target(["run_id", "best_test_acc"], "loss")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: no column for target 'loss' (looked for final_loss and loss); try one of best_test_acc
    """
    columns = list(columns)
    for candidate in (f"final_{target}", target):
        if candidate in columns:
            return candidate
    known = [c for c in columns if c.endswith("_acc") or c.startswith(("final_", "best_"))]
    raise TopoError(f"no column for target {target!r} (looked for final_{target} and {target}); try one of {', '.join(known) or 'none'}")


def _run_folder(row: Mapping[str, str], results: Path) -> Path | None:
    candidates = []
    if row.get("run_dir"):
        candidates.append(Path(row["run_dir"]))
        candidates.append(results.parent / row["run_dir"])
    if row.get("run_id"):
        candidates.append(results.parent / "runs" / row["run_id"])
    for candidate in candidates:
        if (candidate / "run.json").is_file() or (candidate / "checkpoints").is_dir():
            return candidate
    return None


def _cache_key(run_id: str, checkpoint: Path) -> dict[str, str]:
    from topo.analysis.structure import FEATURES_VERSION

    stat = checkpoint.stat()
    return {
        "run_id": run_id,
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_size": str(stat.st_size),
        "checkpoint_mtime_ns": str(stat.st_mtime_ns),
        "features_version": str(FEATURES_VERSION),
    }


_KEY_COLUMNS = ("run_id", "checkpoint", "checkpoint_size", "checkpoint_mtime_ns", "features_version")


def _read_cache(path: Path) -> dict[tuple[str, ...], dict[str, float]]:
    if not path.is_file():
        return {}
    cached: dict[tuple[str, ...], dict[str, float]] = {}
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                key = tuple(row.get(c) or "" for c in _KEY_COLUMNS)
                cached[key] = {
                    name: parse_number(value) for name, value in row.items() if name not in _KEY_COLUMNS and value not in ("", None)
                }
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}  # an unreadable cache is recomputed, not an error
    return cached


def _write_cache(path: Path, entries: Sequence[tuple[dict[str, str], dict[str, float]]]) -> None:
    from topo.atomic import atomic_write_text

    names: list[str] = []
    seen: set[str] = set()
    for _, features in entries:
        for name in features:
            if name not in seen:
                seen.add(name)
                names.append(name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_KEY_COLUMNS, *names])
    for key, features in entries:
        cells = []
        for name in names:
            value = features.get(name)
            cells.append("" if value is None or not math.isfinite(value) else repr(float(value)))
        writer.writerow([key[c] for c in _KEY_COLUMNS] + cells)
    atomic_write_text(path, buffer.getvalue())


def sweep_training_data(
    results_csv: str | os.PathLike,
    *,
    target: str = "test_acc",
    checkpoint: str = "last",
    cache: bool = True,
    workers: int = 1,
    progress: ProgressCallback | None = None,
    feature_options: Mapping[str, Any] | None = None,
) -> TrainingData:
    """Features and targets of the finished runs of a ``topo sweep`` results table.

    Parameters
    ----------
    results_csv : path-like
        The sweep's ``results.csv``.
    target : str
        See :func:`resolve_target`.
    checkpoint : {"last", "first"}
        The run's final checkpoint, or its initial masks (``epoch_0000``).
    cache : bool
        Read and update ``<results stem>.features.csv`` beside the table (only with
        the default ``feature_options``).
    workers : int
        Local processes for the features.
    progress : callable, optional
        ``progress(done, total)`` over the feature computations.
    feature_options : mapping, optional
        Passed to :func:`structure_features`.

    Returns
    -------
    TrainingData

    Raises
    ------
    TopoError
        If the table cannot be read, lacks the target, or no run is usable.

    Examples
    --------
    A results table of three finished runs and a failed one, each run with one checkpoint:

    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     table = ["run_id,status,final_test_acc"]
    ...     for k, acc in enumerate([0.80, 0.85, 0.90]):
    ...         mask = np.zeros((4, 6))
    ...         mask[:, : k + 2] = 1
    ...         _ = save_checkpoint(Topology.from_masks([mask, np.ones((2, 4))]),
    ...                             Path(tmp) / "runs" / f"r{k}" / "checkpoints" / "epoch_0001.safetensors")
    ...         table.append(f"r{k},done,{acc}")
    ...     _ = (Path(tmp) / "results.csv").write_text("\\n".join(table + ["r3,failed,"]) + "\\n")
    ...     data = sweep_training_data(Path(tmp) / "results.csv", target="test_acc")
    ...     again = sweep_training_data(Path(tmp) / "results.csv", target="test_acc")
    >>> data.run_ids, data.y.tolist(), data.target_column, data.skipped
    (['r0', 'r1', 'r2'], [0.8, 0.85, 0.9], 'final_test_acc', ['r3: status failed'])
    >>> [round(row["density"], 3) for row in data.rows]
    [0.5, 0.625, 0.75]
    >>> data.cache_path.name, data.computed, again.computed
    ('results.features.csv', 3, 0)
    """
    from topo.analysis.structure import feature_table
    from topo.checkpoint import list_checkpoints

    if checkpoint not in ("last", "first"):
        raise TopoError(f"checkpoint must be 'last' or 'first', got {checkpoint!r}")
    results = Path(results_csv)
    if not results.is_file():
        raise TopoError("no such results table", path=results)
    try:
        with open(results, newline="") as handle:
            reader = csv.DictReader(handle)
            table = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise TopoError(f"cannot read the results table ({exc})", path=results) from None
    if "run_id" not in columns or ("run_dir" not in columns and "run_id" not in columns):
        raise TopoError("not a topo sweep results table (no run_id / run_dir columns)", path=results)
    target_column = resolve_target(columns, target)

    skipped: list[str] = []
    jobs: list[tuple[str, Path, float]] = []
    for row in table:
        run_id = row.get("run_id") or "?"
        status = row.get("status")
        if status is not None and status not in FINISHED:
            skipped.append(f"{run_id}: status {status}")
            continue
        value = parse_number(row.get(target_column))
        if not math.isfinite(value):
            skipped.append(f"{run_id}: no {target_column}")
            continue
        folder = _run_folder(row, results)
        if folder is None:
            skipped.append(f"{run_id}: run folder not found")
            continue
        try:
            found = list_checkpoints(folder, include_steps=False)
        except TopoError:
            found = []
        if not found:
            skipped.append(f"{run_id}: no checkpoint")
            continue
        jobs.append((run_id, found[-1] if checkpoint == "last" else found[0], value))
    if not jobs:
        raise TopoError(f"no finished run with a {target_column} and a checkpoint", path=results)

    # the cache holds features computed with the default options only
    cache_path = results.with_name(results.stem + ".features.csv") if cache and not feature_options else None
    cached = _read_cache(cache_path) if cache_path is not None else {}
    keys = [_cache_key(run_id, path) for run_id, path, _ in jobs]
    rows: list[dict[str, float] | None] = []
    missing: list[int] = []
    for index, key in enumerate(keys):
        hit = cached.get(tuple(key[c] for c in _KEY_COLUMNS))
        rows.append(hit)
        if hit is None:
            missing.append(index)
    if missing:
        from topo.runs import load_topology

        fresh = feature_table(
            [str(jobs[i][1]) for i in missing], load=load_topology, workers=workers, progress=progress, **dict(feature_options or {})
        )
        for index, features in zip(missing, fresh):
            rows[index] = features
        if cache_path is not None:
            _write_cache(cache_path, list(zip(keys, rows)))  # type: ignore[arg-type]
    elif progress is not None:
        progress(len(jobs), len(jobs))
    return TrainingData(
        rows=[dict(r) for r in rows if r is not None],
        y=np.array([value for _, _, value in jobs], dtype=np.float64),
        run_ids=[run_id for run_id, _, _ in jobs],
        target_column=target_column,
        cache_path=cache_path,
        skipped=skipped,
        computed=len(missing),
    )

"""Sweeps: a grid of training runs from one TOML spec, resumable, with one results table.

A *spec* names the runs::

    [sweep]
    name = "tiny"                  # default: the spec file's name
    out = "runs/sweeps/tiny"       # default: runs/sweeps/<name>; relative to the current folder

    [base]                         # TrainConfig fields shared by every run
    dataset = "digits"
    hidden = [16]
    epochs = 2

    [grid]                         # lists; their cartesian product gives the runs
    method = ["static", "rigl"]
    seed = [0, 1]

    [[include]]                    # optional extra runs, each merged over [base]
    method = "set"

Keys are :class:`~topo.training.config.TrainConfig` fields (``out`` excepted: the
sweep places each run). Values have the field's type; for a field that may be unset
(``cv``, ``init``, ``threads``, ...) the string ``"none"`` unsets it, e.g.
``cv = ["none", 0.5]``. ``hidden`` takes ``[256, 256]`` or ``"256,256"`` (in
``[grid]``, a list of those). The grid's first key varies slowest.

Combinations that are invalid by construction are skipped with a note
(:attr:`SweepResult.notes`), not raised: a grid of ``profile = ["random",
"lognormal"]`` and ``cv = [0.5, 1.0]`` runs the lognormal profile at both CVs and
skips ``random`` (which takes no cv). Add such a baseline with ``cv = ["none", ...]``
in the grid or with an ``[[include]]`` table. The rules (only where ``init`` is
unset, since an equilibrium init sets every layer's profile itself): ``random``
takes no cv, ``constant`` no cv other than 0, and every parametric profile needs
one. An ``[[include]]`` table that breaks them is an error, as is any other bad
value: every expanded configuration is checked before any run starts.

Run folders are ``OUT/runs/<run_id>``: ``run_id`` is a readable name (the values of
the keys that vary: the grid's and the includes') and 8 hex digits of a SHA-256 of
the whole configuration, minus the fields that say where or how a run trains rather
than what it trains (``out``, ``data_dir``, ``threads``, ``device``). The same spec
gives the same ids, so running a sweep again

- skips a run whose metrics reached the configuration's total epochs (status
  ``skipped``; its figures are read back, not recomputed, when nothing changed),
- resumes a run folder that has training state but is unfinished
  (:func:`topo.training.trainer.resume`; status ``resumed``),
- deletes and restarts a run folder without state (the run crashed before its first
  checkpointed state); new runs get status ``done``.

These rules are :func:`topo.training.trainer.train_or_resume`'s; a non-empty folder
there that is not a topo run, or a run of another configuration, is the run's error
(left alone, not deleted).

A run that fails (a :class:`~topo.errors.TopoError` such as a loss that became NaN,
or any other exception) gets status ``error`` and its message; the sweep goes on.
Runs that have not finished yet are listed as ``pending``.

Results: ``OUT/results.csv``, rewritten atomically whenever a run finishes, so an
interrupted sweep keeps what finished. One row per run: ``run_id``, ``name``,
``status``, every configuration field named in the spec (grid keys first, then
include keys, then base keys), ``final_val_acc``, ``final_test_acc``,
``best_val_acc`` (over the trained epochs), ``epochs_done``, then per layer
``fan_in_cv_<layer>`` (of the final checkpoint), ``converged_<layer>`` (the epoch
from which the layer's fan-in stays within the tolerance of its equilibrium,
:func:`topo.analysis.drift.drift` with its defaults over all the run's checkpoints;
empty when it has not converged), ``grad_concentration_<layer>``
(:func:`topo.analysis.gradients.gradient_concentration` of the final checkpoint),
``neurons_removed_<layer>`` (neurons with no input and no output at the end; see
:func:`topo.analysis.exploration.present_neurons`), ``run_dir`` and ``error``; after
``epochs_done`` comes ``exploration_rate``, the share of all possible connections
active in at least one checkpoint (:func:`topo.analysis.exploration.exploration`).
Each run's row is also kept as
``OUT/summaries/<run_id>.json``.

Runs execute through :func:`topo.parallel.map_jobs`: in this process, in local
processes (torch then uses one thread per run), or on a Dask cluster whose workers
see ``OUT`` at the same path.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from topo.errors import TopoError
from topo.training.config import IDENTITY_EXCLUDED, TrainConfig, coerce_option, config_identity, options_not_taken, training_options

__all__ = [
    "SweepSpec",
    "SweepRun",
    "SweepResult",
    "STATUSES",
    "IDENTITY_EXCLUDED",
    "read_sweep_spec",
    "parse_sweep_spec",
    "expand_grid",
    "run_id_for",
    "run_sweep",
    "results_columns",
]

ProgressCallback = Callable[[int, int], None]

#: what a row's ``status`` can be
STATUSES = ("done", "resumed", "skipped", "error", "pending")
RUNS_DIR = "runs"
SUMMARIES_DIR = "summaries"
RESULTS_FILE = "results.csv"
SUMMARY_KIND = "topo-sweep-row"
SUMMARY_VERSION = 1

_SECTIONS = ("sweep", "base", "grid", "include")
_SWEEP_KEYS = ("name", "out")
_NAME_LIMIT = 60
#: short prefixes of run names; fields whose values say enough alone map to ""
_NAME_PREFIX = {
    "dataset": "", "method": "", "profile": "", "density": "", "optimizer": "", "schedule": "",
    "hub_placement": "", "prune_class": "", "sparsity": "s", "cv": "cv", "seed": "seed",
    "hidden": "h", "epochs": "e", "lr": "lr", "batch_size": "bs", "update_every": "dt",
    "drop_fraction": "drop", "weight_decay": "wd", "momentum": "mom",
}
_FIGURES = ("final_val_acc", "final_test_acc", "best_val_acc", "epochs_done", "exploration_rate")


# -- the spec ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec (see the module notes).

    Attributes
    ----------
    name : str
    out : str or None
        The sweep's folder as the spec gives it.
    base : dict
        Field -> value shared by every run (values already of the field's type).
    grid : dict
        Field -> list of values, in the spec's order.
    include : list of dict
        Extra runs, each field -> value, merged over ``base``.
    path : str or None
        The spec file, for messages.
    """

    name: str
    out: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    include: list[dict[str, Any]] = field(default_factory=list)
    path: str | None = None

    @property
    def config_keys(self) -> list[str]:
        """Fields the spec names: grid keys, then include keys, then base keys."""
        keys = list(self.grid)
        for entry in self.include:
            keys += [k for k in entry if k not in keys]
        keys += [k for k in self.base if k not in keys]
        return keys

    @property
    def varying_keys(self) -> list[str]:
        """Fields whose values tell runs apart: the grid's and the includes'."""
        keys = list(self.grid)
        for entry in self.include:
            keys += [k for k in entry if k not in keys]
        return keys


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    Attributes
    ----------
    run_id : str
        ``<name>-<8 hex digits>``; the run's folder under ``OUT/runs``.
    name : str
        The readable part: the run's values of the keys that vary.
    config : TrainConfig
        The run's whole configuration (validated).
    source : str
        Where in the spec it comes from: ``"grid"`` or ``"include #N"`` (1-based).
    """

    run_id: str
    name: str
    config: TrainConfig
    source: str = "grid"


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
    """

    out_dir: Path
    results_csv: Path
    rows: list[dict[str, Any]]
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many rows have ``status``."""
        return sum(1 for row in self.rows if row.get("status") == status)


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else json.dumps(value)


def _coerce(name: str, value: Any, where: str) -> Any:
    """``value`` as training option ``name`` wants it (the option's schema); TopoError naming ``where name``."""
    return coerce_option(name, value, where)


def _check_keys(table: Mapping[str, Any], where: str) -> None:
    known = {item.name for item in training_options()}
    for key in table:
        if key == "out":
            raise TopoError(f"{where} out: the sweep places each run under OUT/runs; set [sweep] out instead")
        if key not in known:
            raise TopoError(f"{where} {key}: not a training option (see TrainConfig / topo train --help)")


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TopoError(f"[{key}]: expected a table, got {_describe(value)}")
    return value


def parse_sweep_spec(data: Mapping[str, Any], *, path: str | os.PathLike | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from the spec's tables (as TOML reads them).

    Parameters
    ----------
    data : mapping
        ``{"sweep": {...}, "base": {...}, "grid": {...}, "include": [{...}, ...]}``.
    path : path-like, optional
        The spec file: the default name, and the prefix of error messages.

    Raises
    ------
    TopoError
        For an unknown section or key, a value of the wrong type, an empty or
        non-list grid entry, a repeated grid value, a key in both ``[base]`` and
        ``[grid]``, or a spec with no runs at all; the message names the key.
    """
    where_file = None if path is None else str(path)
    try:
        return _parse(data, where_file)
    except TopoError as exc:
        if where_file is None or exc.path is not None:
            raise
        raise TopoError(str(exc), path=where_file) from None


def _parse(data: Mapping[str, Any], path: str | None) -> SweepSpec:
    unknown = [k for k in data if k not in _SECTIONS]
    if unknown:
        raise TopoError(f"[{unknown[0]}]: unknown section (expected {', '.join(_SECTIONS)})")
    meta = _table(data, "sweep")
    for key in meta:
        if key not in _SWEEP_KEYS:
            raise TopoError(f"[sweep] {key}: unknown key (expected {', '.join(_SWEEP_KEYS)})")
    for key in _SWEEP_KEYS:
        if key in meta and not (isinstance(meta[key], str) and meta[key].strip()):
            raise TopoError(f"[sweep] {key}: expected a non-empty string, got {_describe(meta[key])}")
    default_name = Path(path).stem if path else "sweep"
    name = meta.get("name", default_name)

    raw_base = _table(data, "base")
    _check_keys(raw_base, "[base]")
    base = {k: _coerce(k, v, "[base]") for k, v in raw_base.items()}

    raw_grid = _table(data, "grid")
    _check_keys(raw_grid, "[grid]")
    grid: dict[str, list[Any]] = {}
    for key, values in raw_grid.items():
        if key in base:
            raise TopoError(f"[grid] {key}: also set in [base]; keep it in one of them")
        if not isinstance(values, list):
            raise TopoError(f"[grid] {key}: expected a list of values, got {_describe(values)}")
        if not values:
            raise TopoError(f"[grid] {key}: empty list (a grid key needs at least one value)")
        coerced = [_coerce(key, v, "[grid]") for v in values]
        seen = []
        for value in coerced:
            if value in seen:
                raise TopoError(f"[grid] {key}: value {_describe(value)} appears twice")
            seen.append(value)
        grid[key] = coerced

    raw_include = data.get("include", [])
    if not isinstance(raw_include, list) or not all(isinstance(e, dict) for e in raw_include):
        raise TopoError("[[include]]: expected tables ([[include]] headers), one per extra run")
    include = []
    for number, entry in enumerate(raw_include, start=1):
        where = f"[[include]] #{number}"
        if not entry:
            raise TopoError(f"{where}: empty table (an extra run needs at least one key)")
        _check_keys(entry, where)
        include.append({k: _coerce(k, v, where) for k, v in entry.items()})

    if "grid" in data and not grid and not include:
        raise TopoError("[grid]: empty (give at least one key with a list of values, or [[include]] runs)")
    if not grid and not include:
        raise TopoError("no runs: give a [grid] table of lists or [[include]] tables")
    return SweepSpec(name=name, out=meta.get("out"), base=base, grid=grid, include=include, path=path)


def read_sweep_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep spec from a TOML file (see the module notes).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    SweepSpec

    Raises
    ------
    TopoError
        If the file is missing or not valid TOML, or its content is not a valid spec
        (see :func:`parse_sweep_spec`); the message names the file and the key.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise TopoError("no such sweep spec" if not path.exists() else "a sweep spec must be a file", path=path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise TopoError(f"not valid TOML ({exc})", path=path) from None
    except UnicodeDecodeError:
        raise TopoError("not valid TOML (not UTF-8 text)", path=path) from None
    return parse_sweep_spec(data, path=path)


# -- expanding the grid -------------------------------------------------------------------
def run_id_for(config: TrainConfig, name: str) -> str:
    """``<name>-<8 hex digits of the configuration's hash>`` (see the module notes)."""
    text = json.dumps(config_identity(config), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{name}-{digest}" if name else digest


def _name_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:4]
    text = str(value)
    if "/" in text or os.sep in text:  # a data set or profile path: its file name says enough
        text = Path(text).stem
    return text


def _run_name(config: TrainConfig, keys: Sequence[str]) -> str:
    if not keys:
        keys = ["dataset", "method"]
    parts = []
    ignored = options_not_taken(config)  # another method's own option says nothing of this run
    for key in keys:
        if key in ignored:
            continue
        value = getattr(config, key)
        prefix = _NAME_PREFIX.get(key, key.replace("_", "-"))
        text = (prefix if value else f"no-{prefix}") if isinstance(value, bool) else prefix + _name_value(value)
        parts.append(re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-"))
    name = "_".join(p for p in parts if p)
    return name[:_NAME_LIMIT].rstrip("-_.")


def _construction_problem(config: TrainConfig) -> str | None:
    """Why a profile/cv combination cannot be built, or None."""
    from topo.training.profiles import PROFILES

    if config.init is not None or config.profile not in PROFILES:
        return None
    if config.profile == "random" and config.cv is not None:
        return "profile 'random' takes no cv"
    if config.profile == "constant" and config.cv not in (None, 0.0):
        return "profile 'constant' takes no cv other than 0"
    if config.profile not in ("random", "constant") and config.cv is None:
        return f"profile {config.profile!r} needs a cv"
    return None


def _where_is(key: str, spec: SweepSpec, source: str) -> str | None:
    if source.startswith("include #"):
        number = int(source.split("#")[1])
        if key in spec.include[number - 1]:
            return f"[[include]] #{number}"
    elif key in spec.grid:
        return "[grid]"
    if key in spec.base:
        return "[base]"
    return None


def _validation_error(exc: TopoError, spec: SweepSpec, source: str, name: str) -> TopoError:
    """A validation message re-addressed to the spec's key."""
    text = str(exc)
    match = re.match(r"^--([a-z][a-z-]*): (.*)$", text)
    where = None
    if match:
        key = match.group(1).replace("-", "_")
        section = _where_is(key, spec, source)
        if section is not None:
            where = f"{section} {key}: {match.group(2)} (run {name})"
    if where is None:
        where = f"run {name} ({source}): {text}"
    return TopoError(where, path=spec.path)


def expand_grid(spec: SweepSpec, *, notes: list[str] | None = None) -> list[SweepRun]:
    """Every run of the spec: the grid's cartesian product, then the includes.

    Parameters
    ----------
    spec : SweepSpec
    notes : list, optional
        Receives one line per kind of grid combination skipped as invalid by
        construction (see the module notes) and per duplicate run dropped.

    Returns
    -------
    list of SweepRun
        Validated, with distinct ids, in the spec's order (the grid's first key
        varies slowest).

    Raises
    ------
    TopoError
        If a configuration is invalid (naming the spec file and the key), an include
        breaks a construction rule, or every grid combination was skipped and there
        are no includes.
    """
    from topo.training.profiles import PROFILES

    notes = notes if notes is not None else []
    keys = spec.varying_keys
    candidates: list[tuple[dict[str, Any], str]] = []
    if spec.grid:
        for values in itertools.product(*spec.grid.values()):
            candidates.append((dict(zip(spec.grid, values)), "grid"))
    for number, entry in enumerate(spec.include, start=1):
        candidates.append((dict(entry), f"include #{number}"))

    skipped: dict[str, list[str]] = {}
    runs: list[SweepRun] = []
    by_id: dict[str, SweepRun] = {}
    for changes, source in candidates:
        values = dict(spec.base)
        values.update(changes)
        config = TrainConfig(**values)
        name = _run_name(config, keys)
        if config.profile not in PROFILES:
            section = _where_is("profile", spec, source) or f"run {name}"
            raise TopoError(
                f"{section} profile: unknown fan-in profile {config.profile!r} (choose from {', '.join(PROFILES)})",
                path=spec.path,
            )
        problem = _construction_problem(config)
        if problem is not None:
            if source != "grid":
                number = source.split("#")[1]
                raise TopoError(f"[[include]] #{number}: {problem}", path=spec.path)
            skipped.setdefault(problem, []).append(name)
            continue
        try:
            config.validate()
        except TopoError as exc:
            raise _validation_error(exc, spec, source, name) from None
        run = SweepRun(run_id_for(config, name), name, config, source)
        if run.run_id in by_id:
            notes.append(f"{source} is the same run as {by_id[run.run_id].source} ({run.run_id}); it runs once")
            continue
        by_id[run.run_id] = run
        runs.append(run)
    for problem, names in skipped.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.append(
            f"skipped {len(names)} grid combination{'s' if len(names) != 1 else ''}: {problem} ({shown}); "
            "add such runs with cv = \"none\" in [grid] or an [[include]] table"
        )
    if not runs:
        raise TopoError("no valid runs: every grid combination was skipped (" + "; ".join(skipped) + ")", path=spec.path)
    return runs


# -- one run (in a worker) ----------------------------------------------------------------
def _finite_or_nan(value: Any) -> float:
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def _figures(run_dir: Path) -> dict[str, Any]:
    """Accuracies from the metrics, topology figures from the checkpoints."""
    from topo.analysis.degree import fan_in_cv
    from topo.analysis.drift import drift, load_run
    from topo.analysis.exploration import exploration
    from topo.analysis.gradients import gradient_concentration
    from topo.checkpoint import list_checkpoints, read_metrics

    metrics = read_metrics(run_dir)
    if not metrics:
        raise TopoError("the run has no metrics", path=run_dir)
    final = metrics[-1]
    trained = [r for r in metrics if int(r.get("epoch", 0)) >= 1] or metrics
    val = [_finite_or_nan(r.get("val_acc")) for r in trained]
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
        "final_val_acc": _finite_or_nan(final.get("val_acc")),
        "final_test_acc": _finite_or_nan(final.get("test_acc")),
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


def _read_summary(path: Path) -> dict[str, Any] | None:
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

    old = _read_summary(summary_path)
    if old is None or old.get("status") not in ("done", "resumed", "skipped") or "layers" not in old:
        return None
    checkpoints = list_checkpoints(run_dir)
    metrics = read_metrics(run_dir)
    if not checkpoints or not metrics or old.get("final_checkpoint") != checkpoints[-1].name:
        return None
    if old.get("epochs_done") != int(metrics[-1].get("epoch", -1)):
        return None
    keys = ("layers", "fan_in_cv", "converged", "grad_concentration", "neurons_removed", "final_checkpoint") + _FIGURES
    if any(k not in old for k in keys):  # a summary from before a figure existed: measure again
        return None
    return {k: old[k] for k in keys}


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if isinstance(exc, TopoError) else f"{type(exc).__name__}: {text}"


def _sweep_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Bring one run to its end and measure it; never raises for the run's own failures.

    ``job`` (small, picklable): ``run_id``, ``config`` (TrainConfig as a dict),
    ``run_dir``, ``summary`` (path of the row's JSON), ``token`` (this sweep's
    invocation), ``data_dir`` (override or None), ``single_thread`` (bool).
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


# -- the results table --------------------------------------------------------------------
def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _layer_names(summaries: Sequence[Mapping[str, Any] | None]) -> list[str]:
    names: list[str] = []
    for summary in summaries:
        for name in (summary or {}).get("layers", []) or []:
            if name not in names:
                names.append(name)
    return sorted(names, key=_natural)


def results_columns(config_keys: Sequence[str], layers: Sequence[str]) -> list[str]:
    """The results table's columns for these spec keys and layer names."""
    return (
        ["run_id", "name", "status", *config_keys, *_FIGURES]
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
    for key in _FIGURES:
        value = summary.get(key)
        row[key] = value if key == "epochs_done" else _finite_or_nan(value)
    index_of = {name: i for i, name in enumerate(summary.get("layers") or [])}
    for figure in ("fan_in_cv", "converged", "grad_concentration", "neurons_removed"):
        values = summary.get(figure) or []
        for layer in layers:
            index = index_of.get(layer)
            value = values[index] if index is not None and index < len(values) else None
            if figure not in ("converged", "neurons_removed") and value is not None:
                value = _finite_or_nan(value)
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


class _Table:
    """The sweep's rows, refreshed from the runs' summary files and written as CSV."""

    def __init__(self, spec: SweepSpec, runs: Sequence[SweepRun], out_dir: Path, token: str):
        self.spec = spec
        self.runs = list(runs)
        self.out_dir = out_dir
        self.token = token
        self.summaries: dict[str, dict[str, Any] | None] = {run.run_id: None for run in runs}

    def summary_path(self, run: SweepRun) -> Path:
        return self.out_dir / SUMMARIES_DIR / f"{run.run_id}.json"

    def run_dir(self, run: SweepRun) -> Path:
        return self.out_dir / RUNS_DIR / run.run_id

    def refresh(self) -> None:
        """Pick up the rows that jobs of this invocation have written so far."""
        for run in self.runs:
            if self.summaries[run.run_id] is not None:
                continue
            summary = _read_summary(self.summary_path(run))
            if summary is not None and summary.get("token") == self.token:
                self.summaries[run.run_id] = summary

    def set(self, summary: Mapping[str, Any]) -> None:
        self.summaries[summary["run_id"]] = dict(summary)

    def rows(self) -> tuple[list[dict[str, Any]], list[str]]:
        ordered = [self.summaries[run.run_id] for run in self.runs]
        layers = _layer_names(ordered)
        keys = self.spec.config_keys
        columns = results_columns(keys, layers)
        rows = [_row(run, s, keys, layers, self.run_dir(run)) for run, s in zip(self.runs, ordered)]
        return rows, columns

    def write(self) -> tuple[list[dict[str, Any]], list[str]]:
        from topo.atomic import atomic_write_text

        rows, columns = self.rows()
        atomic_write_text(self.out_dir / RESULTS_FILE, _csv_text(rows, columns))
        return rows, columns


# -- the sweep ---------------------------------------------------------------------------
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
    table = _Table(spec, runs, out_dir, token)
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
        summaries = map_jobs(_sweep_job, jobs, workers=int(workers), scheduler=scheduler, progress=report)
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

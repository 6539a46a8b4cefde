"""A sweep's runs: the grid's cartesian product and the includes, named, validated and deduplicated."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from topo.errors import TopoError
from topo.sweep.spec import SweepSpec
from topo.training.config import TrainConfig, config_identity, options_not_taken
from topo.training.schema import OptionError

__all__ = ["SweepRun", "expand_grid", "run_id_for"]

_NAME_LIMIT = 60
#: short prefixes of run names; fields whose values say enough alone map to ""
_NAME_PREFIX = {
    "dataset": "", "method": "", "profile": "", "density": "", "optimizer": "", "schedule": "",
    "hub_placement": "", "prune_class": "", "sparsity": "s", "cv": "cv", "seed": "seed",
    "hidden": "h", "epochs": "e", "lr": "lr", "batch_size": "bs", "update_every": "dt",
    "drop_fraction": "drop", "weight_decay": "wd", "momentum": "mom",
}


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

    Examples
    --------
    >>> from topo.sweep.spec import SweepSpec
    >>> spec = SweepSpec(name="tiny", base={"hidden": (16,)}, grid={"seed": [0]}, include=[{"seed": 1, "method": "set"}])
    >>> for run in expand_grid(spec):
    ...     print(run.name, run.source, run.config.method, run.run_id.startswith(run.name + "-"))
    seed0_rigl grid rigl True
    seed1_set include #1 set True
    """

    run_id: str
    name: str
    config: TrainConfig
    source: str = "grid"


def run_id_for(config: TrainConfig, name: str) -> str:
    """``<name>-<8 hex digits of the configuration's hash>`` (see the module notes).

    The hash is taken over :func:`topo.training.config.config_identity`: where or how a
    run trains (``out``, ``data_dir``, ``threads``, ``device``, ...) does not change it.

    Parameters
    ----------
    config : TrainConfig
    name : str
        The readable part; empty gives the hex digits alone.

    Returns
    -------
    str

    Examples
    --------
    >>> from topo.training.config import TrainConfig
    >>> run_id = run_id_for(TrainConfig(seed=0), "seed0")
    >>> run_id.startswith("seed0-"), len(run_id)
    (True, 14)
    >>> run_id == run_id_for(TrainConfig(seed=0, threads=2, out="elsewhere"), "seed0")
    True
    >>> run_id == run_id_for(TrainConfig(seed=1), "seed0")
    False
    >>> len(run_id_for(TrainConfig(), ""))
    8
    """
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
    if isinstance(exc, OptionError):
        section = _where_is(exc.option, spec, source)
        if section is not None:
            return TopoError(f"{section} {exc.option}: {exc.problem} (run {name})", path=spec.path)
    return TopoError(f"run {name} ({source}): {exc}", path=spec.path)


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

    Examples
    --------
    >>> from topo.sweep.spec import parse_sweep_spec
    >>> spec = parse_sweep_spec({
    ...     "base": {"hidden": [16], "epochs": 1},
    ...     "grid": {"profile": ["random", "lognormal"], "cv": [0.5, 1.0]},
    ... })
    >>> notes = []
    >>> [run.name for run in expand_grid(spec, notes=notes)]
    ['lognormal_cv0.5', 'lognormal_cv1']
    >>> print(notes[0])
    skipped 2 grid combinations: profile 'random' takes no cv (random_cv0.5, random_cv1); add such runs with cv = "none" in [grid] or an [[include]] table
    >>> expand_grid(parse_sweep_spec({"grid": {"lr": [0.1, -1.0]}}))
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: [grid] lr: ...
    """
    from topo.training.profiles import PROFILES

    notes = notes if notes is not None else []
    keys = spec.varying_keys
    candidates: list[tuple[dict[str, Any], str]] = []
    if spec.grid:
        for combination in itertools.product(*spec.grid.values()):
            candidates.append((dict(zip(spec.grid, combination)), "grid"))
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
                include_number = source.split("#")[1]
                raise TopoError(f"[[include]] #{include_number}: {problem}", path=spec.path)
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



"""The sweep spec: its TOML tables read and checked into a :class:`SweepSpec` (see :mod:`topo.sweep`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from topo.errors import TopoError
from topo.training.config import coerce_option, training_options

__all__ = ["SweepSpec", "parse_sweep_spec", "read_sweep_spec", "describe_value"]

_SECTIONS = ("sweep", "base", "grid", "include")
_SWEEP_KEYS = ("name", "out")


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

    Examples
    --------
    >>> spec = SweepSpec(name="tiny", base={"epochs": 1}, grid={"method": ["static", "rigl"], "seed": [0, 1]},
    ...                  include=[{"method": "set", "hidden": (16,)}])
    >>> spec.config_keys  # the results table's configuration columns
    ['method', 'seed', 'hidden', 'epochs']
    >>> spec.varying_keys  # what run names are made of
    ['method', 'seed', 'hidden']
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


def describe_value(value: Any) -> str:
    """A value as a message shows it (strings quoted as JSON).

    Parameters
    ----------
    value : object

    Returns
    -------
    str

    Examples
    --------
    >>> describe_value("rigl"), describe_value(0.5), describe_value([1, 2]), describe_value(None)
    ('"rigl"', '0.5', '[1, 2]', 'None')
    """
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
            raise TopoError(f"{where} {key}: not a training option (the options are the fields of TrainConfig)")


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TopoError(f"[{key}]: expected a table, got {describe_value(value)}")
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

    Examples
    --------
    >>> spec = parse_sweep_spec({
    ...     "sweep": {"name": "tiny"},
    ...     "base": {"hidden": "16,16", "epochs": 2},
    ...     "grid": {"method": ["static", "rigl"], "cv": ["none", 0.5]},
    ... })
    >>> spec.name, spec.base, spec.grid
    ('tiny', {'hidden': (16, 16), 'epochs': 2}, {'method': ['static', 'rigl'], 'cv': [None, 0.5]})
    >>> parse_sweep_spec({"grid": {"method": "rigl"}}, path="tiny.toml")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: tiny.toml: [grid] method: expected a list of values, got "rigl"
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
            raise TopoError(f"[sweep] {key}: expected a non-empty string, got {describe_value(meta[key])}")
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
            raise TopoError(f"[grid] {key}: expected a list of values, got {describe_value(values)}")
        if not values:
            raise TopoError(f"[grid] {key}: empty list (a grid key needs at least one value)")
        coerced = [_coerce(key, v, "[grid]") for v in values]
        seen = []
        for value in coerced:
            if value in seen:
                raise TopoError(f"[grid] {key}: value {describe_value(value)} appears twice")
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

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "tiny.toml"
    >>> _ = path.write_text('''
    ... [base]
    ... hidden = [16]
    ... epochs = 1
    ...
    ... [grid]
    ... seed = [0, 1]
    ...
    ... [[include]]
    ... method = "set"
    ... ''')
    >>> spec = read_sweep_spec(path)
    >>> spec.name, spec.out, spec.grid, spec.include
    ('tiny', None, {'seed': [0, 1]}, [{'method': 'set'}])
    >>> folder.cleanup()
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
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



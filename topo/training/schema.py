"""What one training option is: its type, default, range, choices, help and CLI group.

A training option is a dataclass field made with :func:`option`; its metadata is an
:class:`Option`. Everything that reads or writes training options works from that one
declaration: :class:`~topo.training.config.TrainConfig` (the core options), the options
an algorithm declares in its class (``Algorithm.declared_options``), the ``topo train``
command line (``cli/train.py`` generates its click options from the fields), the sweep
TOML validation (:func:`coerce_value`) and the ``run.json`` round-trip.

This module knows nothing of particular options; :mod:`topo.training.config` declares
them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from topo.errors import TopoError

__all__ = [
    "OptionError",
    "Option",
    "option",
    "option_of",
    "OptionField",
    "option_fields",
    "flag_name",
    "value_type",
    "check_value",
    "coerce_value",
    "describe_range",
]

#: the metadata key under which a field keeps its :class:`Option`
METADATA_KEY = "topo.option"


class OptionError(TopoError):
    """A training option has a value it cannot take.

    The message names the option as the configuration field that ``TrainConfig``, a
    sweep's TOML and ``run.json`` share (``"sparsity must be in [0, 1), got 1.5"``), not
    as a command-line flag; a command line that set the option from a flag can name the
    flag instead, from :attr:`option` and :attr:`problem`.

    Parameters
    ----------
    option : str
        The option's name, e.g. ``"sparsity"``.
    problem : str
        What is wrong, worded to follow the name: ``"must be in [0, 1), got 1.5"``.

    Examples
    --------
    >>> error = OptionError("sparsity", "must be in [0, 1), got 1.5")
    >>> str(error)
    'sparsity must be in [0, 1), got 1.5'
    >>> error.option, error.problem
    ('sparsity', 'must be in [0, 1), got 1.5')
    """

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option} {problem}")


@dataclass(frozen=True)
class Option:
    """The metadata of one training option (everything but its name, type and default).

    Attributes
    ----------
    help : str
        One sentence for ``--help``.
    group : str
        The ``--help`` section the option is listed under.
    low, high : float, optional
        Bounds of a number; ``low_open`` / ``high_open`` exclude them.
    choices : tuple of str or callable, optional
        Allowed strings, or a function returning them (read from a registry when asked,
        so a method or profile registered later is allowed).
    choice_noun : str
        What a choice is called in errors (``"method must be a known method (...), got 'x'"``).
    metavar : str, optional
        Placeholder for the value in ``--help``.
    parse : callable, optional
        Turns a command-line text (or a TOML/JSON value) into the option's value; raises
        :class:`TopoError` naming the option.
    describes_where : bool
        The option says where or how a run trains, not what it trains (``out``,
        ``device``, ...): it is left out of a configuration's identity.
    with_resume : bool
        ``topo train --resume`` accepts it (the rest come from the run's ``run.json``).
    cli : bool
        ``topo train`` has a flag for it.

    Examples
    --------
    >>> spec = Option(help="Share of weights moved.", low=0.0, high=1.0, high_open=True)
    >>> describe_range(spec), spec.allowed()
    ('[0, 1)', None)
    >>> Option(help="Optimiser.", choices=lambda: ("sgd", "adam")).allowed()  # read when asked
    ('sgd', 'adam')
    """

    help: str
    group: str = "Options"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | Callable[[], Sequence[str]] | None = None
    choice_noun: str = ""
    metavar: str | None = None
    parse: Callable[[Any], Any] | None = None
    describes_where: bool = False
    with_resume: bool = False
    cli: bool = True

    def allowed(self) -> tuple[str, ...] | None:
        """The allowed choices now (registries are read at each call), or None."""
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)


def option(default: Any, *, help: str, type: Any = None, **metadata: Any) -> Any:
    """A dataclass field that is a training option.

    Parameters
    ----------
    default
        The default value (immutable: tuples, not lists).
    help : str
        One sentence for ``--help``.
    type : type, optional
        The value's type; needed only where the field has no annotation (options an
        algorithm declares in a dict), otherwise the annotation says it.
    **metadata
        The other :class:`Option` attributes.

    Returns
    -------
    dataclasses.Field

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Config:
    ...     rate: float = option(0.5, help="Share moved.", low=0.0, high=1.0)
    ...     width: int | None = option(None, help="Width.", low=1, metavar="N")
    >>> Config(), Config(rate=0.1).rate
    (Config(rate=0.5, width=None), 0.1)
    >>> [(item.name, item.default, item.spec.metavar) for item in option_fields(Config)]
    [('rate', 0.5, None), ('width', None, 'N')]
    """
    spec = Option(help=help, **metadata)
    meta = {METADATA_KEY: spec}
    if type is not None:
        meta["topo.type"] = type
    return dataclasses.field(default=default, metadata=meta)


def option_of(field: dataclasses.Field) -> Option:
    """The :class:`Option` of a field made by :func:`option` (a plain one if it has none).

    Parameters
    ----------
    field : dataclasses.Field

    Returns
    -------
    Option

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Config:
    ...     seed: int = option(0, help="Seed.", low=0)
    ...     note: str = ""
    >>> seed, note = dataclasses.fields(Config)
    >>> option_of(seed).help, option_of(seed).low
    ('Seed.', 0)
    >>> option_of(note).help, option_of(note).group  # a plain field: an Option with no help
    ('', 'Options')
    """
    return field.metadata.get(METADATA_KEY) or Option(help="")


@dataclass(frozen=True)
class OptionField:
    """One option of a configuration class: name, type, default and :class:`Option`.

    Examples
    --------
    >>> item = OptionField("drop_fraction", float, 0.3, Option(help="Share moved.", low=0.0, high=1.0))
    >>> item.flag, describe_range(item.spec)
    ('--drop-fraction', '[0, 1]')
    """

    name: str
    type: Any
    default: Any
    spec: Option

    @property
    def flag(self) -> str:
        """The command-line flag, ``--name-with-dashes``."""
        return flag_name(self.name)


def option_fields(cls: type) -> list[OptionField]:
    """The options of a dataclass made of :func:`option` fields, in declaration order.

    Parameters
    ----------
    cls : type
        A dataclass; a field without an annotation takes the ``type`` given to
        :func:`option` (as the options an algorithm declares in a dict do).

    Returns
    -------
    list of OptionField

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Config:
    ...     epochs: int = option(30, help="Training epochs.", low=0, group="Optimisation")
    ...     cv: float | None = option(None, help="Target fan-in CV.", low=0.0)
    >>> for item in option_fields(Config):
    ...     print(item.name, item.type, item.default, item.spec.group)
    epochs <class 'int'> 30 Optimisation
    cv float | None None Options
    """
    hints = typing.get_type_hints(cls)
    return [
        OptionField(f.name, hints.get(f.name, f.metadata.get("topo.type")), f.default, option_of(f))
        for f in dataclasses.fields(cls)
    ]


def flag_name(name: str) -> str:
    """``"drop_fraction"`` -> ``"--drop-fraction"``.

    Parameters
    ----------
    name : str
        An option's name.

    Returns
    -------
    str

    Examples
    --------
    >>> flag_name("drop_fraction"), flag_name("lr")
    ('--drop-fraction', '--lr')
    """
    return "--" + name.replace("_", "-")


def value_type(kind: Any) -> tuple[Any, bool]:
    """``(inner type, may be None)`` of an annotation such as ``float | None``.

    Parameters
    ----------
    kind : type
        An annotation.

    Returns
    -------
    (type, bool)

    Examples
    --------
    >>> import typing
    >>> value_type(float | None), value_type(int), value_type(typing.Optional[str])
    ((<class 'float'>, True), (<class 'int'>, False), (<class 'str'>, True))
    """
    args = typing.get_args(kind)
    if type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else kind), True
    return kind, False


def describe_range(spec: Option) -> str:
    """``"[0, 1)"``-style text of a number option's range ('' when it has none).

    Parameters
    ----------
    spec : Option

    Returns
    -------
    str

    Examples
    --------
    >>> describe_range(Option(help="", low=0.0, low_open=True)), describe_range(Option(help="", low=0, high=1))
    ('(0, inf)', '[0, 1]')
    >>> describe_range(Option(help="Name."))
    ''
    """
    if spec.low is None and spec.high is None:
        return ""
    low = "-inf" if spec.low is None else f"{spec.low:g}"
    high = "inf" if spec.high is None else f"{spec.high:g}"
    opening = "(" if spec.low_open or spec.low is None else "["
    closing = ")" if spec.high_open or spec.high is None else "]"
    return f"{opening}{low}, {high}{closing}"


def _outside(value: float, spec: Option) -> bool:
    if spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low):
        return True
    if spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high):
        return True
    return False


def check_value(name: str, kind: Any, spec: Option, value: Any) -> None:
    """Check one option's value against its range and choices.

    Parameters
    ----------
    name : str
        The option's name (errors name it so, as the configuration field).
    kind : type
        The option's annotation.
    spec : Option
    value
        The value, already of the option's type (or None where it may be).

    Raises
    ------
    OptionError
        ``"<name> must be ..., got ..."``, saying what is wrong.

    Examples
    --------
    >>> spec = Option(help="Learning rate.", low=0.0, low_open=True)
    >>> check_value("lr", float, spec, 0.05)  # in range: nothing happens
    >>> check_value("cv", float | None, Option(help="CV.", low=0.0), None)  # may be unset
    >>> check_value("lr", float, spec, 0.0)
    Traceback (most recent call last):
    ...
    topo.training.schema.OptionError: lr must be in (0, inf), got 0.0
    >>> check_value("optimizer", str, Option(help="", choices=("sgd", "adam")), "lbfgs")
    Traceback (most recent call last):
    ...
    topo.training.schema.OptionError: optimizer must be one of (sgd, adam), got 'lbfgs'
    """
    inner, optional = value_type(kind)
    if value is None:
        if optional:
            return
        raise OptionError(name, "must be set")
    allowed = spec.allowed()
    if allowed is not None:
        if value not in allowed:
            noun = f"a known {spec.choice_noun}" if spec.choice_noun else "one of"
            raise OptionError(name, f"must be {noun} ({', '.join(allowed)}), got {value!r}")
        return
    if inner is int and not isinstance(value, bool):
        if int(value) != value or (spec.low is not None and value < spec.low):
            if spec.low == 1:
                raise OptionError(name, f"must be a positive integer, got {value!r}")
            if spec.low == 0:
                raise OptionError(name, f"must be a non-negative integer, got {value!r}")
            raise OptionError(name, f"must be an integer of at least {spec.low}, got {value!r}")
        if spec.high is not None and value > spec.high:
            raise OptionError(name, f"must be an integer of at most {spec.high}, got {value!r}")
        return
    if inner is float:
        number = float(value)
        if not math.isfinite(number) or _outside(number, spec):
            where = describe_range(spec) or "(-inf, inf)"
            raise OptionError(name, f"must be in {where}, got {value!r}")


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else json.dumps(value)


def coerce_value(name: str, kind: Any, spec: Option, value: Any, where: str) -> Any:
    """A value read from TOML or JSON as the option wants it (types only, not ranges).

    For an option that may be unset, ``None`` and the string ``"none"`` unset it.
    Options with a ``parse`` function (widths, layer tables) go through it; numbers
    must be numbers, integers integers, flags ``true``/``false``, strings strings.

    Parameters
    ----------
    name : str
    kind : type
        The option's annotation.
    spec : Option
    value
        As TOML or JSON gave it.
    where : str
        Prefix of error messages, e.g. ``"[grid]"``.

    Returns
    -------
    The value, of the option's type.

    Raises
    ------
    TopoError
        ``"<where> <name>: expected ..., got ..."``.

    Examples
    --------
    >>> coerce_value("lr", float, Option(help=""), 1, "[grid]")  # TOML's 1 is an integer
    1.0
    >>> coerce_value("cv", float | None, Option(help=""), "none", "[base]")
    >>> coerce_value("epochs", int, Option(help=""), 2.5, "[base]")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: [base] epochs: expected an integer, got 2.5
    """
    inner, optional = value_type(kind)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
        return None
    label = f"{where} {name}"
    if spec.parse is not None:
        try:
            return spec.parse(value)
        except OptionError as exc:
            raise TopoError(f"{label}: {exc.problem}") from None
    if typing.get_origin(inner) is dict:
        if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            raise TopoError(f"{label}: expected a table of layer = density, got {_describe(value)}")
        return {str(k): float(v) for k, v in value.items()}
    if inner is bool:
        if not isinstance(value, bool):
            raise TopoError(f"{label}: expected true or false, got {_describe(value)}")
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TopoError(f"{label}: expected an integer, got {_describe(value)}")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TopoError(f"{label}: expected a number, got {_describe(value)}")
        return float(value)
    if inner is str:
        if not isinstance(value, str):
            raise TopoError(f"{label}: expected a string, got {_describe(value)}")
        return value
    raise TopoError(f"{label}: unsupported value {_describe(value)}")  # pragma: no cover

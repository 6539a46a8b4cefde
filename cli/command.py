"""How every ``topo`` command looks and behaves, declared once.

- :class:`TopoCommand`: ``--help`` lists options in sections (a command names its
  sections in its decorator, ``sections={"Output": ["fmt", "output"]}``, or per option
  with :class:`GroupedOption`), and every command takes ``-q/--quiet`` and
  ``-v/--verbose`` (:mod:`topo_cli.messages`), listed under "General options".
- :class:`TopoSubgroup` (``topo data``, ``topo plot``, ``topo predict``): its commands are
  :class:`TopoCommand` and its command list shows whole summaries.
- :func:`usage_errors_in_one_line`: a usage error (bad value, bad choice, missing
  argument) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Mapping, Sequence

import click

from topo_cli import messages

__all__ = [
    "GENERAL",
    "GroupedOption",
    "TopoCommand",
    "TopoSubgroup",
    "SummaryListing",
    "OneLineUsageError",
    "usage_errors_in_one_line",
]

#: the heading of the options every command has (--quiet, --verbose, --help)
GENERAL = "General options"
_GENERAL_NAMES = ("quiet", "verbose")
#: long enough that a command's first sentence is never cut; the formatter wraps it
_SUMMARY_LIMIT = 1000


class GroupedOption(click.Option):
    """A click option that names the ``--help`` section it is listed in (``help_group``)."""

    def __init__(self, *args: Any, help_group: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_group = help_group


def _verbosity_options() -> list[click.Option]:
    return [
        click.Option(["-q", "--quiet"], is_flag=True,
                     help="No progress bars and no notes on stderr; results, warnings and errors still appear."),
        click.Option(["-v", "--verbose"], is_flag=True,
                     help="More on stderr: warnings in full (category, origin) and the time the command took."),
    ]


class TopoCommand(click.Command):
    """A ``topo`` command: option sections in ``--help``, ``--quiet`` and ``--verbose``.

    Parameters
    ----------
    sections
        Section heading -> names of the options listed under it (the Python names,
        e.g. ``"fmt"`` for ``--format``), in the order the sections are shown.
    group_order
        Headings of :class:`GroupedOption` groups, in the order they are shown (groups
        not named here follow in the order their first option appears).

    Options in no section are listed first, under "Options"; ``--quiet``, ``--verbose``
    and ``--help`` close the list under "General options".
    """

    def __init__(self, *args: Any, sections: Mapping[str, Sequence[str]] | None = None,
                 group_order: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        present = {param.name for param in self.params}
        self.params.extend(option for option in _verbosity_options() if option.name not in present)
        self.sections = {heading: tuple(names) for heading, names in (sections or {}).items()}
        unknown = [name for names in self.sections.values() for name in names if name not in present]
        if unknown:  # a typo in a decorator, caught when the module is imported
            raise TypeError(f"command {self.name!r} has no option named {', '.join(unknown)}")
        self.group_order = tuple(group_order)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        where = {name: heading for heading, names in self.sections.items() for name in names}
        listed: dict[str, list[tuple[str, str]]] = {"Options": []}
        listed.update((heading, []) for heading in (*self.group_order, *self.sections))
        general: list[tuple[str, str]] = []
        help_option = self.get_help_option(ctx)
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue
            if param.name in _GENERAL_NAMES or param is help_option:
                general.append(record)
                continue
            heading = getattr(param, "help_group", None) or where.get(param.name or "") or "Options"
            listed.setdefault(heading, []).append(record)
        listed[GENERAL] = general
        for heading, records in listed.items():
            if records:
                with formatter.section(heading):
                    formatter.write_dl(records)

    def invoke(self, ctx: click.Context) -> Any:
        quiet = bool(ctx.params.pop("quiet", False))
        verbose = bool(ctx.params.pop("verbose", False))
        if quiet and verbose:
            raise click.UsageError("give --quiet or --verbose, not both", ctx)
        messages.set_level(ctx, messages.QUIET if quiet else messages.VERBOSE if verbose else messages.NORMAL)
        started = time.perf_counter()
        try:
            with messages.python_warnings(verbose):
                return super().invoke(ctx)
        finally:
            messages.detail(f"{ctx.command_path}: {time.perf_counter() - started:.2f} s")


class SummaryListing(click.Group):
    """A group whose command list shows each command's first sentence whole."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=_SUMMARY_LIMIT)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class TopoSubgroup(SummaryListing):
    """A command group under ``topo`` whose commands are :class:`TopoCommand`."""

    command_class = TopoCommand


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line, ``Error: <problem> (see 'topo CMD --help')``; exit 2."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {' '.join(self.format_message().split())}{hint}", file=file, err=file is None)


# click >= 8.2 shows the help of a group called with no command through this usage error
_HELP_INSTEAD = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextlib.contextmanager
def usage_errors_in_one_line() -> Iterator[None]:
    """Re-raise click's usage errors (exit code 2) as :class:`OneLineUsageError`."""
    try:
        yield
    except OneLineUsageError:
        raise
    except click.UsageError as exc:
        if _HELP_INSTEAD and isinstance(exc, _HELP_INSTEAD):
            raise
        raise OneLineUsageError(exc.format_message(), exc.ctx) from None

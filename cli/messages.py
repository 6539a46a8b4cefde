"""What a command says on stderr besides its results, and how much: ``--quiet``/``--verbose``.

Every command takes ``-q/--quiet`` and ``-v/--verbose`` (declared once, in
:class:`topo_cli.command.TopoCommand`), which set the level for the whole command:

- quiet: no progress bars and no notes (``wrote FILE``, captions); results on stdout,
  warnings and errors still appear;
- normal: progress bars (on a terminal), notes and warnings;
- verbose: also details: warnings in full (category and where they were raised, every
  reader warning) and the time the command took.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import click

__all__ = ["QUIET", "NORMAL", "VERBOSE", "level", "set_level", "note", "detail", "warn", "python_warnings"]

QUIET, NORMAL, VERBOSE = -1, 0, 1
_KEY = "topo.verbosity"


def level() -> int:
    """The level of the command running now (:data:`NORMAL` outside a command)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return NORMAL
    return int(ctx.meta.get(_KEY, NORMAL))


def set_level(ctx: click.Context, value: int) -> None:
    """Set the level for ``ctx`` and every context under it (they share ``meta``)."""
    ctx.meta[_KEY] = value


def note(text: str) -> None:
    """Say ``text`` on stderr unless the command is quiet (what was written, captions)."""
    if level() >= NORMAL:
        click.echo(text, err=True)


def detail(text: str) -> None:
    """Say ``text`` on stderr only when the command is verbose."""
    if level() >= VERBOSE:
        click.echo(text, err=True)


def warn(text: str) -> None:
    """Say ``warning: text`` on stderr, whatever the level: a warning is never noise."""
    click.echo(f"warning: {text}", err=True)


@contextlib.contextmanager
def python_warnings(verbose: bool) -> Iterator[None]:
    """Show Python warnings raised inside (by topo's dependencies) as ``warning: ...`` lines.

    One line by default; with ``verbose``, with its category and the place that raised
    it, and also the kinds Python hides by default (deprecations), once per place. The previous warning settings come back on exit.
    """

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if verbose:
            text += f" ({category.__name__}, {filename}:{lineno})"
        warn(text)

    with warnings.catch_warnings():
        if verbose:
            warnings.simplefilter("default")
        warnings.showwarning = show
        yield

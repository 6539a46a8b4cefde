"""Turn errors a user can cause into one line on stderr and a non-zero exit code."""

from __future__ import annotations

import contextlib
from typing import Iterator

import click


class UserError(click.ClickException):
    """Printed as ``Error: <message>``; exit code 1."""

    exit_code = 1


@contextlib.contextmanager
def user_errors_as_click() -> Iterator[None]:
    """Re-raise topo's own error and OS errors (bad paths, permissions) as one-line click errors."""
    from topo.errors import TopoError

    try:
        yield
    except TopoError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        raise UserError(f"{where}{exc.strerror or exc}") from None

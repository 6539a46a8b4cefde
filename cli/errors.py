"""Turn errors a user can cause into one line on stderr and a non-zero exit code.

Every command runs inside :func:`user_errors_as_click` (``TopoGroup.invoke``), so this
is the one place where topo's own error, operating-system errors and running out of
memory become a message instead of a traceback.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import click

__all__ = ["UserError", "user_errors_as_click", "memory_error_message", "os_error_message"]


class UserError(click.ClickException):
    """Printed as ``Error: <message>``; exit code 1."""

    exit_code = 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def os_error_message(exc: OSError) -> str:
    """``<path>: <reason>`` for an OS error (both paths of a failed rename or link)."""
    where = ""
    if getattr(exc, "filename", None) is not None:
        where = f"{exc.filename}: "
        if getattr(exc, "filename2", None) is not None:
            where = f"{exc.filename} -> {exc.filename2}: "
    return _one_line(f"{where}{exc.strerror or exc}")


def memory_error_message(exc: MemoryError) -> str:
    """One line for running out of memory; numpy's message says how much was asked for."""
    detail = _one_line(str(exc))
    detail = f" ({detail})" if detail else ""
    return f"out of memory{detail}; the input is too large for this machine's memory"


@contextlib.contextmanager
def user_errors_as_click() -> Iterator[None]:
    """Re-raise topo's own error, OS errors, out-of-memory and runaway recursion as one-line click errors."""
    from topo.errors import TopoError

    try:
        yield
    except TopoError as exc:
        raise UserError(_one_line(str(exc))) from None
    except OSError as exc:
        raise UserError(os_error_message(exc)) from None
    except MemoryError as exc:
        raise UserError(memory_error_message(exc)) from None
    except RecursionError:
        raise UserError("the input is nested too deeply to process (Python's recursion limit)") from None

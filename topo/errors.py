"""The one exception type that user-caused problems raise."""

from __future__ import annotations

from typing import Iterable

__all__ = ["TopoError", "first_line", "shorten_list"]


class TopoError(ValueError):
    """A problem the user can fix: a bad path, a corrupt or unsupported file, a bad option.

    The message is one line that says what went wrong and where (usually the file).
    The command-line interface prints it as it is and exits non-zero.

    It subclasses :class:`ValueError` (a bad input is a bad value), so code that
    already guards a call with ``except ValueError`` keeps working.

    Parameters
    ----------
    message : str
        What went wrong; line breaks are folded into spaces so the text stays one line.
    path : path-like, optional
        The file or folder concerned; the message then starts with it.

    Attributes
    ----------
    path : str or None
        ``path`` as a string, or None when none was given.

    Examples
    --------
    >>> error = TopoError("not a checkpoint format topo recognises", path="runs/model.bin")
    >>> str(error)
    'runs/model.bin: not a checkpoint format topo recognises'
    >>> error.path
    'runs/model.bin'
    >>> str(TopoError("truncated header\\nexpected 8 bytes"))
    'truncated header expected 8 bytes'
    >>> isinstance(error, ValueError)
    True
    """

    def __init__(self, message: str, *, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        # one line, whatever the message was built from (an exception's text may span several)
        message = str(message)
        if "\n" in message or "\r" in message:
            message = " ".join(message.split())
        text = f"{self.path}: {message}" if self.path is not None else message
        super().__init__(text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none), for a one-line message.

    Parameters
    ----------
    exc : BaseException
        Any exception, often one raised by a third-party library.

    Returns
    -------
    str
        The first line of ``str(exc)`` with surrounding blanks removed, or the
        exception type's name when the text is empty.

    Examples
    --------
    >>> first_line(OSError("Unable to open file\\n(truncated file: eof = 96)"))
    'Unable to open file'
    >>> first_line(KeyError())
    'KeyError'
    """
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def shorten_list(items: Iterable[object], *, head: int = 3, tail: int = 1, sep: str = ", ") -> str:
    """A list for an error message, shortened when long: the first few, ``...``, the last,
    and how many there are.

    Parameters
    ----------
    items : iterable
        The values; each is shown with ``str``.
    head, tail : int
        How many to show from the start and from the end when the list is shortened.
    sep : str
        Between the values shown.

    Returns
    -------
    str
        ``"a, b, c"`` when there are at most ``head + tail + 1`` values, else
        ``"a, b, c, ..., z (26 in all)"``; ``"none"`` when there are none.

    Examples
    --------
    >>> shorten_list(range(102))
    '0, 1, 2, ..., 101 (102 in all)'
    >>> shorten_list(["fc1", "fc2"])
    'fc1, fc2'
    """
    values = [str(item) for item in items]
    if not values:
        return "none"
    if len(values) <= head + tail + 1:
        return sep.join(values)
    shown = values[:head] + ["..."] + (values[-tail:] if tail > 0 else [])
    return f"{sep.join(shown)} ({len(values)} in all)"

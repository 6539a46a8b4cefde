"""The one exception type that user-caused problems raise."""

from __future__ import annotations

__all__ = ["TopoError", "first_line"]


class TopoError(ValueError):
    """A problem the user can fix: a bad path, a corrupt or unsupported file, a bad option.

    The message is one line that says what went wrong and where (usually the file).
    The command-line interface prints it as it is and exits non-zero.

    It subclasses :class:`ValueError` (a bad input is a bad value), so code that
    already guards a call with ``except ValueError`` keeps working.
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
    """The first line of an exception's text (its type's name when it has none), for a one-line message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__

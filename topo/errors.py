"""The one exception type that user-caused problems raise."""

from __future__ import annotations

__all__ = ["TopoError"]


class TopoError(Exception):
    """A problem the user can fix: a bad path, a corrupt or unsupported file, a bad option.

    The message is one line that says what went wrong and where (usually the file).
    The command-line interface prints it as it is and exits non-zero.
    """

    def __init__(self, message: str, *, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        text = f"{self.path}: {message}" if self.path is not None else message
        super().__init__(text)

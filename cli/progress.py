"""Progress bars on stderr for long library calls, which report through a callback."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from topo.progress import ProgressCallback


@contextlib.contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yield ``callback(done, total)`` that draws a rich progress bar on stderr.

    The bar is drawn only when stderr is a terminal, ``enabled`` and the command is not
    ``--quiet``; otherwise the callback does nothing, so piped output stays clean.
    """
    from topo_cli import messages

    if not enabled or messages.level() < messages.NORMAL or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update

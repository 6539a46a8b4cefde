"""How library code reports progress: one callback type, shared by every long-running function.

Library code never prints; a function that takes a while accepts ``progress``, a
:data:`ProgressCallback` called as ``progress(done, total)`` (steps, runs, files,
pairs: whatever the function counts), and the CLI draws it as a progress bar.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ProgressCallback"]

#: ``progress(done, total)``: ``done`` of ``total`` units of work are finished
ProgressCallback = Callable[[int, int], None]

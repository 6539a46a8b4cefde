"""One writer per run folder: an exclusive lock held while a process writes a run.

``topo train``, ``topo train --resume`` and ``topo sweep`` hold an exclusive
:func:`fcntl.flock` on a lock file inside the folder they write (:data:`LOCK_FILE`)
for as long as they write it. A second process that wants the same folder is
refused at once with a :class:`RunLockedError` naming the holder (its pid, host,
start time and command), which the holder wrote into the lock file.

The operating system releases the lock when its holder exits, however it exits, so a
lock file left behind by a killed process does not block anyone: it is simply locked
again, and its contents overwritten. The lock file is never deleted (deleting it
would let a second process lock a new file while a third still holds the old one).

Within one process the lock is re-entrant: :func:`topo.training.train_or_resume`
takes it, then calls :func:`~topo.training.trainer.train` or
:func:`~topo.training.trainer.resume`, which take it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from topo.errors import TopoError

__all__ = ["LOCK_FILE", "RunLockedError", "run_lock", "lock_holder", "is_lock_file"]

#: the lock file inside a run (or sweep) folder
LOCK_FILE = ".topo.lock"

_guard = threading.Lock()
#: resolved folder -> [open lock file, how many times this process holds it]
_held: dict[str, list[Any]] = {}


class RunLockedError(TopoError):
    """Another process holds the folder's lock; ``holder`` is what it wrote about itself.

    Parameters
    ----------
    message : str
        What went wrong, in one line.
    path : path-like, optional
        The folder whose lock is held.
    holder : dict, optional
        What the holder wrote into the lock file (pid, host, started, purpose, command).

    Examples
    --------
    A lock taken through another open file (as another process would) refuses
    :func:`run_lock`:

    >>> import fcntl, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / LOCK_FILE).write_text('{"pid": 4242, "host": "node7"}')
    ...     with open(Path(tmp) / LOCK_FILE) as other:
    ...         fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    ...         try:
    ...             with run_lock(tmp):
    ...                 pass
    ...         except RunLockedError as exc:
    ...             print(exc.holder["pid"], "in message:", "pid 4242 on node7" in str(exc))
    4242 in message: True
    """

    def __init__(self, message: str, *, path: object | None = None, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message, path=path)
        self.holder = dict(holder or {})


def is_lock_file(name: str) -> bool:
    """Whether a file name is the run lock's (folders holding only it count as empty).

    Parameters
    ----------
    name : str
        A file name (not a path).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_lock_file(".topo.lock"), is_lock_file("run.json")
    (True, False)
    """
    return name == LOCK_FILE


def lock_holder(folder: str | os.PathLike) -> dict[str, Any]:
    """What the last holder of ``folder``'s lock wrote about itself (empty if nothing readable).

    Parameters
    ----------
    folder : path-like
        A run or sweep folder.

    Returns
    -------
    dict
        The holder's ``pid``, ``host``, ``started``, ``purpose`` and ``command``; empty
        when the folder has no readable lock file.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with run_lock(tmp, purpose="train"):
    ...         holder = lock_holder(tmp)
    >>> holder["pid"] == os.getpid(), holder["purpose"]
    (True, 'train')
    >>> lock_holder("no/such/folder")
    {}
    """
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (it has not said which yet)"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    text = "another process: " + " ".join(parts)
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _command() -> str:
    argv = [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv and sys.argv[0] else []
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, *, purpose: str = "write") -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    folder : path-like
        The run or sweep folder.
    purpose : str
        What the holder does (``"train"``, ``"resume"``, ``"sweep"``), written into the
        lock file for the message another process gets.

    Yields
    ------
    pathlib.Path
        The folder.

    Raises
    ------
    RunLockedError
        If another process holds the lock; the message names it (pid, host, start
        time, command).
    TopoError
        If the folder cannot be created or the lock file cannot be opened (naming it).

    Examples
    --------
    The lock is re-entrant within one process, and a folder it created stays only if
    something besides the lock file was written into it:

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = Path(tmp) / "run"
    ...     with run_lock(run, purpose="train") as folder:
    ...         with run_lock(run):
    ...             _ = (folder / "run.json").write_text("{}")
    ...     print(sorted(p.name for p in run.iterdir()))
    ...     with run_lock(Path(tmp) / "failed"):
    ...         pass
    ...     print((Path(tmp) / "failed").exists())
    ['.topo.lock', 'run.json']
    False
    """
    import fcntl

    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TopoError(f"cannot create the run folder ({exc.strerror or exc})", path=folder) from None
    key = os.path.realpath(folder)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield folder
        finally:
            with _guard:
                entry[1] -= 1
        return

    path = folder / LOCK_FILE
    try:
        # O_NOFOLLOW: the lock file is ours; a link planted in its place is not followed
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise TopoError(f"cannot open the run's lock file ({exc.strerror or exc})", path=path) from None
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        holder = lock_holder(folder)
        raise RunLockedError(
            f"the folder is in use by {_describe(holder)}; wait for it to finish or choose another folder",
            path=folder,
            holder=holder,
        ) from None
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "purpose": purpose,
        "command": _command(),
    }
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
    except OSError:
        pass  # the lock holds without the note; others are told "another process"
    entry = [handle, 1]
    with _guard:
        _held[key] = entry
    try:
        yield folder
    finally:
        with _guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            if created:
                _remove_if_only_lock(folder)
            # closing the file releases the flock
            handle.close()


def _remove_if_only_lock(folder: Path) -> None:
    """Remove a folder this lock created when nothing but the lock was written into it
    (a run that failed before it wrote anything, e.g. for missing data, leaves no trace)."""
    try:
        if [entry.name for entry in folder.iterdir()] == [LOCK_FILE]:
            (folder / LOCK_FILE).unlink()
            folder.rmdir()
    except OSError:
        pass

"""Atomic file writes: a temporary file in the same folder, then a rename.

A reader never sees a half-written file, and an interrupted write leaves the old
file (if any) in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["TEMP_SUFFIX", "atomic_output", "atomic_write_bytes", "atomic_write_text", "is_temp_file"]

#: suffix of the temporary file a write goes to before its rename
TEMP_SUFFIX = ".tmp"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    For writers that insist on a file name of their own (igraph, networkx). On any
    exception the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path-like
        The file to write; missing parent folders are created.

    Yields
    ------
    str
        The temporary file to write to (``.NAME.XXXX.tmp`` in the same folder).

    Raises
    ------
    OSError
        If the folder cannot be created or written to, or the rename fails; the
        error names ``path``, not the temporary file.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "edges.txt")
    ...     with atomic_output(path) as tmp:
    ...         with open(tmp, "w") as handle:
    ...             _ = handle.write("0 1")
    ...         print(is_temp_file(os.path.basename(tmp)), os.path.exists(path))
    ...     print(open(path).read(), sorted(os.listdir(folder)))
    True False
    0 1 ['edges.txt']

    A failed write leaves the old file as it was, and no temporary behind:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "edges.txt")
    ...     _ = atomic_write_text(path, "old")
    ...     try:
    ...         with atomic_output(path) as tmp:
    ...             raise RuntimeError("writer failed")
    ...     except RuntimeError:
    ...         pass
    ...     print(open(path).read(), os.listdir(folder))
    old ['edges.txt']
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """The same OS error, naming the file being written (a full disk or a refused write
    otherwise names nothing, or only the temporary file)."""
    if exc.filename is not None and exc.filename2 is None and exc.filename != str(path) and Path(exc.filename) in path.parents:
        return exc  # names the folder that could not be created: already precise
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def is_temp_file(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_output`'s temporaries (``.NAME.XXXX.tmp``).

    Parameters
    ----------
    name : str
        A file name (not a path).

    Returns
    -------
    bool
        True for names that start with a dot and end with :data:`TEMP_SUFFIX`.

    Examples
    --------
    >>> is_temp_file(".metrics.jsonl.k2j4x9.tmp")
    True
    >>> is_temp_file("metrics.jsonl"), is_temp_file(".tmp")
    (False, False)
    """
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and len(name) > len(TEMP_SUFFIX) + 2


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename.

    Parameters
    ----------
    path : path-like
        The file to write (replaced if it exists; missing parent folders are created).
    data : bytes
        The whole content.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        If the file cannot be written; ``path`` is then left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = atomic_write_bytes(pathlib.Path(folder) / "sub" / "mask.bin", bytes([1, 0, 1]))
    ...     print(path.name, list(path.read_bytes()))
    mask.bin [1, 0, 1]
    """
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) atomically; see :func:`atomic_write_bytes`.

    Parameters
    ----------
    path : path-like
        The file to write.
    text : str
        The whole content, encoded as UTF-8.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = atomic_write_text(pathlib.Path(folder) / "run.json", '{"method": "rigl"}')
    ...     print(path.read_text())
    {"method": "rigl"}
    """
    return atomic_write_bytes(path, text.encode("utf-8"))

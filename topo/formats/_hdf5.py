"""Safe reading of HDF5 files: every path inside the file, nothing outside it, bounded sizes.

HDF5 can make a dataset read bytes from anywhere on the machine, or allocate far more
memory than the file holds:

- *external storage* (``external=[("/etc/passwd", 0, n)]``): the dataset's bytes live
  in another file;
- *virtual datasets*: the dataset is a view of datasets in other files;
- *external links*: a group member that is an object in another file (and *soft links*,
  paths inside the file, that lead to one);
- *fill values*: a dataset that was declared but never written costs no bytes in the
  file, yet reading it allocates its whole declared shape (100 such datasets in a
  254 KB file ask for 13.6 GB).

Every Keras reader goes through :func:`member` (walks a path one link at a time,
refusing external links and soft links that leave the file or loop) and
:func:`read_dataset` (refuses external storage and virtual datasets, and compares the
storage the file really allocated for the dataset with its declared size before reading
it). :func:`open_file` opens a path or an in-memory copy of a zip member.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.formats._assemble import check_declared_size

__all__ = ["h5py_module", "open_file", "member", "children", "read_dataset", "file_budget", "string_attr"]

_MAX_LINK_DEPTH = 16


def h5py_module(path: Path):
    """The h5py module, or a TopoError naming the ``h5`` extra.

    Parameters
    ----------
    path : Path
        The file about to be read (for the message).

    Returns
    -------
    module
        ``h5py``, imported on first use.

    Raises
    ------
    TopoError
        If h5py is not installed.

    Examples
    --------
    >>> h5py_module("model.h5").__name__
    'h5py'
    """
    try:
        import h5py
    except ImportError:
        raise TopoError('reading HDF5 files needs h5py: pip install "topo-toolkit[h5]"', path=path) from None
    return h5py


def open_file(source: Path | bytes, path: Path):
    """Open an HDF5 file read-only: a path, or bytes already in memory (a zip member).

    External-link traversal is left to :func:`member`, which refuses them before h5py
    would follow one.

    Parameters
    ----------
    source : Path or bytes
        The file, or its whole content.
    path : Path
        The file the user named (for messages).

    Returns
    -------
    h5py.File
        Open for reading; close it (or use it in a ``with`` block).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.h5"
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("dense/kernel", data=np.eye(2))
    >>> with open_file(path.read_bytes(), path) as f:  # bytes, as from a zip member
    ...     f["dense/kernel"].shape
    (2, 2)
    >>> temporary.cleanup()
    """
    h5py = h5py_module(path)
    if isinstance(source, (bytes, bytearray)):
        return h5py.File(io.BytesIO(source), "r")
    return h5py.File(source, "r")


def _link(group: Any, name: str, path: Path, where: str) -> Any:
    try:
        return group.get(name, getlink=True)
    except (KeyError, ValueError):
        return None
    except Exception as exc:  # a corrupt link table
        raise TopoError(f"HDF5 member {where!r} cannot be read ({type(exc).__name__})", path=path) from None


def member(root: Any, relpath: str, path: Path, *, _depth: int = 0) -> Any:
    """The object at ``relpath`` under ``root``, or None when there is none.

    Each component is looked up as a link first: an external link is refused, a soft
    link is followed only as a path inside the same file (with a bound on chains).

    Parameters
    ----------
    root : h5py.Group
        Where the path starts (often the open file).
    relpath : str
        A ``/``-separated path below ``root``.
    path : Path
        The file (for messages).

    Returns
    -------
    h5py.Group, h5py.Dataset or None

    Raises
    ------
    TopoError
        For external links, soft-link loops, or an object that lives in another file.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.h5"
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("dense/kernel", data=np.eye(2))
    ...     f["alias"] = h5py.SoftLink("/dense")
    ...     f["stolen"] = h5py.ExternalLink("/etc/secrets.h5", "/data")
    >>> with h5py.File(path, "r") as f:
    ...     print(member(f, "alias/kernel", path).name, member(f, "dense/bias", path))
    /dense/kernel None
    >>> with h5py.File(path, "r") as f:
    ...     member(f, "stolen", path)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../model.h5: refused: HDF5 member 'stolen' is an external link to '/etc/secrets.h5':'/data' (topo reads nothing outside the given file)
    >>> temporary.cleanup()
    """
    h5py = h5py_module(path)
    if _depth > _MAX_LINK_DEPTH:
        raise TopoError(f"refused: HDF5 soft links nested deeper than {_MAX_LINK_DEPTH} at {relpath!r}", path=path)
    current = root
    parts = [p for p in str(relpath).split("/") if p]
    for i, part in enumerate(parts):
        where = "/".join(parts[: i + 1])
        if not isinstance(current, h5py.Group):
            return None
        link = _link(current, part, path, where)
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise TopoError(
                f"refused: HDF5 member {where!r} is an external link to {link.filename!r}:{link.path!r} "
                "(topo reads nothing outside the given file)",
                path=path,
            )
        if isinstance(link, h5py.SoftLink):
            target = link.path
            base = current.file if target.startswith("/") else current
            current = member(base, target, path, _depth=_depth + 1)
            if current is None:
                return None
        else:
            current = current[part]
        _same_file(current, root, path, where)
    return current


def _same_file(obj: Any, root: Any, path: Path, where: str) -> None:
    try:
        same = obj.file.id == root.file.id
    except Exception:
        same = False
    if not same:
        raise TopoError(f"refused: HDF5 member {where!r} lives in another file", path=path)


def children(group: Any, path: Path) -> list[str]:
    """Names of a group's members (links are resolved later, by :func:`member`).

    Parameters
    ----------
    group : h5py.Group
        The group to list.
    path : Path
        The file (for messages).

    Returns
    -------
    list of str
        In the file's order (h5py lists names alphabetically unless the file tracks
        creation order).

    Raises
    ------
    TopoError
        If the group's link table cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.h5"
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("dense/kernel", data=np.eye(2))
    ...     _ = f.create_dataset("dense/bias", data=np.zeros(2))
    >>> with h5py.File(path, "r") as f:
    ...     children(f["dense"], path)
    ['bias', 'kernel']
    >>> temporary.cleanup()
    """
    try:
        return [str(k) for k in group.keys()]
    except Exception as exc:
        raise TopoError(f"HDF5 group {group.name!r} cannot be listed ({type(exc).__name__})", path=path) from None


#: Most strings one attribute may hold (Keras's ``layer_names`` of a very large model).
MAX_ATTR_STRINGS = 1_000_000
#: Seconds and address space a child process may use to read one variable-length
#: string attribute (libhdf5 can loop forever or crash on a damaged global heap).
VLEN_TIMEOUT_S = 30
VLEN_MEMORY_BYTES = 2 * 1024**3

# Runs in a child process: a hang or crash inside libhdf5 then costs the child, not topo.
_VLEN_SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[4]), int(sys.argv[4])))
import h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    value = f[sys.argv[2]].attrs[sys.argv[3]]
    items = np.atleast_1d(np.asarray(value, dtype=object)).tolist()
    json.dump([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in items], sys.stdout)
"""


def _variable_strings(obj: Any, name: str, path: Path) -> list[str]:
    """A variable-length string attribute, read in a child process with a time and memory
    limit; only for files on disk (an in-memory archive member is not handed to a child)."""
    filename = obj.file.filename
    if not isinstance(filename, str) or not os.path.isfile(filename):
        raise TopoError(f"HDF5 attribute {name!r} of {obj.name!r} is a variable-length string "
                        "inside an archive (not read: it can hang libhdf5)", path=path)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _VLEN_SCRIPT, filename, obj.name, name, str(VLEN_MEMORY_BYTES)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=VLEN_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise TopoError(f"HDF5 attribute {name!r} of {obj.name!r}: reading it did not finish in "
                        f"{VLEN_TIMEOUT_S} s (a damaged variable-length string)", path=path) from None
    try:
        items = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise TopoError(f"HDF5 attribute {name!r} of {obj.name!r} cannot be read "
                        "(a damaged variable-length string)", path=path)
    if len(items) > MAX_ATTR_STRINGS:
        raise TopoError(f"refused: HDF5 attribute {name!r} holds {len(items):,} strings", path=path)
    return items


def string_attr(obj: Any, name: str, path: Path, *, required: bool = True) -> list[str] | None:
    """A string (or list of strings) attribute, or None when it is absent.

    The attribute's HDF5 type is checked before it is read. Fixed-length strings are read
    here. Variable-length strings (what h5py writes for Python ``str``: tf.keras's
    ``model_config``, Keras 3's legacy ``layer_names``) live in the file's global heap,
    and libhdf5 can crash or loop forever inside the library reading a damaged one, so
    they are read in a child process with a time and memory limit. Other
    variable-length types are never read.

    Parameters
    ----------
    obj : h5py.Group or h5py.Dataset
        What holds the attribute.
    name : str
        The attribute's name.
    path : Path
        The file (for messages).
    required : bool
        When False, an attribute of another type is treated as absent instead of
        refused (for attributes that are only informative).

    Returns
    -------
    list of str or None

    Raises
    ------
    TopoError
        When the attribute exists but is not fixed-length strings (and ``required``).

    Examples
    --------
    Keras 2 writes ``layer_names`` as fixed-length byte strings:

    >>> import pathlib, tempfile
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.h5"
    >>> with h5py.File(path, "w") as f:
    ...     f.attrs["layer_names"] = np.array([b"dense", b"dense_1"])
    ...     f.attrs["epochs"] = 3
    >>> with h5py.File(path, "r") as f:
    ...     print(string_attr(f, "layer_names", path), string_attr(f, "missing", path))
    ...     print(string_attr(f, "epochs", path, required=False))
    ['dense', 'dense_1'] None
    None
    >>> with h5py.File(path, "r") as f:
    ...     string_attr(f, "epochs", path)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../model.h5: HDF5 attribute 'epochs' of '/' is not a string or a list of strings
    >>> temporary.cleanup()
    """
    h5py = h5py_module(path)
    try:
        if name not in obj.attrs:
            return None
        attr = h5py.h5a.open(obj.id, name.encode())
        type_class = attr.get_type().get_class()
        shape = attr.shape
    except Exception as exc:
        raise TopoError(f"HDF5 attribute {name!r} cannot be read ({type(exc).__name__})", path=path) from None
    if shape is None or shape == (0,):
        return []  # an empty list (Keras writes a layer without variables this way)
    try:
        variable = type_class == h5py.h5t.STRING and attr.get_type().is_variable_str()
    except Exception:
        variable = True
    if type_class == h5py.h5t.STRING and variable and len(shape) <= 1:
        if not required:
            try:
                return _variable_strings(obj, name, path)
            except TopoError:
                return None
        return _variable_strings(obj, name, path)
    if type_class != h5py.h5t.STRING or variable or len(shape) > 1:
        if not required:
            return None
        kind = "a variable-length string (not read: it can hang libhdf5)" if variable and type_class == h5py.h5t.STRING \
            else "not a string or a list of strings"
        raise TopoError(f"HDF5 attribute {name!r} of {obj.name!r} is {kind}", path=path)
    if shape and shape[0] > MAX_ATTR_STRINGS:
        raise TopoError(f"refused: HDF5 attribute {name!r} holds {shape[0]:,} strings", path=path)
    value = obj.attrs[name]
    out = []
    for item in np.atleast_1d(value).tolist():
        out.append(item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item))
    return out


def file_budget(path: Path, file_size: int) -> Any:
    """The running total of one file's declared bytes (HDF5 data may be compressed).

    Parameters
    ----------
    path : Path
        The file (for messages).
    file_size : int
        Its size on disk.

    Returns
    -------
    topo.formats._policy.FileBudget
        Compressed: the declared total may be up to ``TOPO_MAX_EXPANSION`` times the file.

    Examples
    --------
    >>> budget = file_budget("model.h5", 1000)
    >>> budget.take(8000, "dataset 'dense/kernel'")
    >>> budget.total, budget.compressed
    (8000, True)
    """
    from topo.formats._policy import FileBudget

    return FileBudget(path, available=int(file_size), compressed=True)


def read_dataset(dataset: Any, path: Path, what: str, budget: Any = None) -> np.ndarray:
    """A numeric dataset as a numpy array, after checking where its bytes come from.

    Parameters
    ----------
    dataset : h5py.Dataset
        The dataset (found through :func:`member`).
    path : Path
        The file (for messages).
    what : str
        Its name for messages.
    budget : topo.formats._policy.FileBudget, optional
        The running total for the file (:func:`file_budget`).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    TopoError
        Non-numeric data; external storage; a virtual dataset; a declared size that
        the storage the file allocated for it cannot hold (never-written datasets,
        implausible compression ratios).

    Examples
    --------
    A dataset declared but never written costs nothing in the file, yet reading it
    would allocate its whole shape: it is refused.

    >>> import pathlib, tempfile
    >>> import h5py
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.h5"
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("kernel", data=np.array([[1.0, 0.0], [0.0, 2.0]]))
    ...     _ = f.create_dataset("empty", shape=(1000, 1000), dtype="f4")
    >>> with h5py.File(path, "r") as f:
    ...     read_dataset(f["kernel"], path, "'kernel'").tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    >>> with h5py.File(path, "r") as f:
    ...     read_dataset(f["empty"], path, "'empty'")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../model.h5: refused: dataset 'empty' declares 4,000,000 bytes but was never written (the file stores none of it)
    >>> temporary.cleanup()
    """
    if dataset.dtype.kind not in "biuf":
        raise TopoError(f"dataset {what} has non-numeric dtype {dataset.dtype}", path=path)
    if getattr(dataset, "is_virtual", False):
        raise TopoError(f"refused: dataset {what} is a virtual dataset (a view of other files)", path=path)
    if dataset.external:
        files = ", ".join(repr(str(entry[0])) for entry in dataset.external[:3])
        raise TopoError(f"refused: dataset {what} keeps its data in external files ({files})", path=path)
    shape = dataset.shape
    if shape is None:
        raise TopoError(f"dataset {what} has no shape (a null dataspace)", path=path)
    nbytes = int(np.prod(shape, dtype=np.float64)) * dataset.dtype.itemsize
    stored = int(dataset.id.get_storage_size())
    filtered = dataset.chunks is not None and bool(dataset.id.get_create_plist().get_nfilters())
    if nbytes and stored == 0 and dataset.id.get_create_plist().get_layout() != h5py_module(path).h5d.COMPACT:
        raise TopoError(
            f"refused: dataset {what} declares {nbytes:,} bytes but was never written (the file stores none of it)",
            path=path,
        )
    # Uncompressed data must be in the file; compressed data may expand only so far.
    check_declared_size(nbytes, path=path, what=f"dataset {what}", available=stored, compressed=filtered)
    if budget is not None:
        budget.take(nbytes, f"dataset {what}")
    return np.asarray(dataset[()])

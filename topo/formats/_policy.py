"""The size and path policy that every reader obeys.

A checkpoint from a stranger is untrusted input. Two rules keep reading it harmless:

**Paths.** A file that a reader opens on its own (a shard named by an index, a
``model.safetensors`` inside a model folder, a run's checkpoint, a SET folder's
``weight_lK.npz``, an archive member) must resolve inside the folder the user gave;
a symbolic link that leads elsewhere is refused with a reason
(:func:`confine`). The path the user names is taken as given. One layout is known
and allowed: a Hugging Face cache snapshot
(``models--ORG--NAME/snapshots/REV/x -> ../../blobs/HASH``) stays inside its
``models--ORG--NAME`` folder. ``TOPO_FOLLOW_LINKS=1`` lifts the rule.
Archive member names must be plain relative names (:func:`check_member_name`).

**Budgets.** Sizes are checked as the file declares them, before anything is
allocated: one array (``TOPO_MAX_TENSOR_BYTES``), all arrays of one file together
(``TOPO_MAX_FILE_BYTES``; compressed data also at most ``TOPO_MAX_EXPANSION`` times
the archive), the number of arrays and of layers in one file
(``TOPO_MAX_ARRAYS``, ``TOPO_MAX_LAYERS``), the neurons on either side of a layer
(``TOPO_MAX_NEURONS``) and the cells of any layer that is held densely
(``TOPO_MAX_DENSE_CELLS``). :func:`limits` reads these environment variables each
time it is called, so a user can raise a limit for one command. A
:class:`FileBudget` accumulates one file's declared bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from topo.errors import TopoError

__all__ = [
    "Limits",
    "limits",
    "FileBudget",
    "check_declared_size",
    "check_layer_shape",
    "check_layer_count",
    "check_dense_cells",
    "check_array_count",
    "confine",
    "check_member_name",
    "follow_links",
    "MAX_HEADER_BYTES",
    "EXPANSION_FLOOR_BYTES",
]

#: The safetensors library's own limit on a file's JSON header (not configurable).
MAX_HEADER_BYTES = 100_000_000
#: Compressed data may expand beyond ``max_expansion`` times its archive up to this size,
#: so that small, very compressible files still load.
EXPANSION_FLOOR_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Limits:
    """The budget readers check declared sizes against (see the module docstring).

    Every field has an environment variable ``TOPO_MAX_<FIELD>`` (upper case),
    e.g. ``TOPO_MAX_NEURONS=50000000``; :func:`limits` reads them.

    Examples
    --------
    >>> defaults = Limits()
    >>> defaults.neurons, defaults.layers, defaults.tensor_bytes == 4 * 1024**3
    (10000000, 10000, True)
    >>> small = Limits(neurons=100)
    >>> check_layer_shape(50, 80, path="model.pt", what="layer 'fc1'", current=small)
    >>> check_layer_shape(50, 800, path="model.pt", what="layer 'fc2'", current=small)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.pt: refused: layer 'fc2' declares 50 x 800 neurons, more than the limit of 100 neurons per side (raise TOPO_MAX_NEURONS to allow it)
    """

    #: Bytes of one array as declared (4 GiB).
    tensor_bytes: int = 4 * 1024**3
    #: Bytes of all arrays of one file (or one model folder) together (64 GiB).
    file_bytes: int = 64 * 1024**3
    #: Largest ratio of declared (uncompressed) bytes to the compressed file's size.
    expansion: int = 50
    #: Arrays (tensors, members, datasets, initializers) in one file.
    arrays: int = 100_000
    #: Layers (2-D and convolution weights) in one network (raise it for the largest
    #: mixture-of-experts models).
    layers: int = 10_000
    #: Neurons on either side (in or out) of one layer.
    neurons: int = 10_000_000
    #: Cells (out x in) of one layer held as a dense array (2**31: a 2 GiB boolean mask).
    dense_cells: int = 2**31


_ENV = {name: f"TOPO_MAX_{name.upper()}" for name in Limits.__dataclass_fields__}


def limits() -> Limits:
    """The current limits: the defaults of :class:`Limits`, overridden by ``TOPO_MAX_*``.

    Returns
    -------
    Limits

    Raises
    ------
    TopoError
        If such an environment variable is set but is not a positive integer.

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop("TOPO_MAX_LAYERS", None)
    >>> limits().layers
    10000
    >>> os.environ["TOPO_MAX_LAYERS"] = "20_000"
    >>> limits().layers
    20000
    >>> os.environ["TOPO_MAX_LAYERS"] = "many"
    >>> limits()
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: environment variable TOPO_MAX_LAYERS='many' is not an integer
    >>> del os.environ["TOPO_MAX_LAYERS"]
    >>> if saved is not None:
    ...     os.environ["TOPO_MAX_LAYERS"] = saved
    """
    environ = os.environ
    raws = tuple(environ.get(variable) for variable in _ENV.values())
    if raws == _LAST_LIMITS[0]:
        return _LAST_LIMITS[1]
    values: dict[str, int] = {}
    for (name, variable), raw in zip(_ENV.items(), raws):
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise TopoError(f"environment variable {variable}={raw!r} is not an integer") from None
        if value <= 0:
            raise TopoError(f"environment variable {variable}={raw!r} must be positive")
        values[name] = value
    current = Limits(**values)
    _LAST_LIMITS[:] = [raws, current]
    return current


_LAST_LIMITS: list = [None, None]  # the environment values last read and their Limits


def _refused(what: str, amount: str, limit: str, variable: str) -> str:
    return f"refused: {what} {amount}, more than the limit of {limit} (raise {variable} to allow it)"


# -- sizes ----------------------------------------------------------------------------
def check_declared_size(
    nbytes: int,
    *,
    path: Path | str,
    what: str,
    available: int | None = None,
    compressed: bool = False,
    limit: int | None = None,
    current: Limits | None = None,
) -> None:
    """Refuse one array whose declared size is implausible, before allocating it.

    Parameters
    ----------
    nbytes : int
        The size the file declares for the array, in bytes.
    path : path-like
        The file (for the message).
    what : str
        What the array is (for the message), e.g. ``"member 'w.npy'"``.
    available : int, optional
        Bytes the file really has for it. Uncompressed data may not exceed this;
        compressed data may not exceed ``expansion`` times this once it is larger
        than :data:`EXPANSION_FLOOR_BYTES`.
    compressed : bool
        Whether ``available`` is a compressed size.
    limit : int, optional
        Absolute limit; ``limits().tensor_bytes`` by default.
    current : Limits, optional
        The limits to apply (read once by a caller that checks many arrays).

    Raises
    ------
    TopoError
        If the declared size is negative or over a limit.

    Examples
    --------
    >>> check_declared_size(400, path="w.npz", what="member 'w.npy'", available=1000)
    >>> check_declared_size(4000, path="w.npz", what="member 'w.npy'", available=1000)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: w.npz: member 'w.npy' declares 4,000 bytes but the file holds only 1,000 (truncated or corrupt)

    A compressed member may expand (here 50 times 2 MB is allowed), but not without bound:

    >>> check_declared_size(10**8, path="w.npz", what="member 'w.npy'", available=2 * 10**6, compressed=True)
    >>> check_declared_size(10**9, path="w.npz", what="member 'w.npy'", available=2 * 10**6, compressed=True)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: w.npz: refused: member 'w.npy' would expand to 1,000,000,000 bytes from 2,000,000 (a decompression bomb?), more than the limit of 50x (raise TOPO_MAX_EXPANSION to allow it)
    """
    current = limits() if current is None else current
    limit = current.tensor_bytes if limit is None else int(limit)
    nbytes = int(nbytes)
    if nbytes < 0:
        raise TopoError(f"{what} declares a negative size", path=path)
    if nbytes > limit:
        raise TopoError(
            _refused(what, f"declares {nbytes:,} bytes", f"{limit:,} bytes", _ENV["tensor_bytes"]), path=path
        )
    if available is None:
        return
    if not compressed and nbytes > available:
        raise TopoError(
            f"{what} declares {nbytes:,} bytes but the file holds only {available:,} (truncated or corrupt)",
            path=path,
        )
    if compressed and nbytes > max(current.expansion * available, EXPANSION_FLOOR_BYTES):
        raise TopoError(
            _refused(
                what,
                f"would expand to {nbytes:,} bytes from {available:,} (a decompression bomb?)",
                f"{current.expansion}x",
                _ENV["expansion"],
            ),
            path=path,
        )


class FileBudget:
    """The declared bytes of one file (or model folder), added up before allocation.

    Parameters
    ----------
    path : path-like
        The file (for messages).
    available : int, optional
        The file's size on disk. With ``compressed=True`` the declared total may be
        at most ``expansion`` times this (above :data:`EXPANSION_FLOOR_BYTES`).
    compressed : bool
        Whether the arrays are stored compressed.

    Examples
    --------
    >>> budget = FileBudget("model.npz", available=1000, compressed=True)
    >>> budget.take(4000, "member 'w.npy'")
    >>> budget.total
    4000
    """

    def __init__(self, path: Path | str, *, available: int | None = None, compressed: bool = False) -> None:
        self.path = path
        self.available = available
        self.compressed = compressed
        self.limits = limits()
        self.total = 0
        self.count = 0

    def take(self, nbytes: int, what: str) -> None:
        """Add one array's declared size; refuse it, or the file, when over budget.

        Raises
        ------
        TopoError
            The array alone is over ``tensor_bytes``; the file's total is over
            ``file_bytes`` or over ``expansion`` times a compressed file; or the file
            has more than ``arrays`` arrays.
        """
        check_declared_size(nbytes, path=self.path, what=what, current=self.limits)
        self.total += int(nbytes)
        self.count += 1
        check_array_count(self.count, path=self.path, current=self.limits)
        if self.total > self.limits.file_bytes:
            raise TopoError(
                _refused(
                    "the arrays of this file",
                    f"declare {self.total:,} bytes in all",
                    f"{self.limits.file_bytes:,} bytes",
                    _ENV["file_bytes"],
                ),
                path=self.path,
            )
        if self.available is None:
            return
        if not self.compressed and self.total > self.available:
            raise TopoError(
                f"the arrays declare {self.total:,} bytes but the file holds only {self.available:,} "
                "(truncated or corrupt)",
                path=self.path,
            )
        if self.compressed and self.total > max(self.limits.expansion * self.available, EXPANSION_FLOOR_BYTES):
            raise TopoError(
                _refused(
                    f"the arrays of this {self.available:,}-byte archive",
                    f"would expand to {self.total:,} bytes in all (a decompression bomb?)",
                    f"{self.limits.expansion}x",
                    _ENV["expansion"],
                ),
                path=self.path,
            )


def check_array_count(count: int, *, path: Path | str, current: Limits | None = None) -> None:
    """Refuse a file that holds more than ``limits().arrays`` arrays.

    Parameters
    ----------
    count : int
        The number of arrays the file declares.
    path : path-like
        The file (for the message).
    current : Limits, optional
        The limits to apply; :func:`limits` by default.

    Raises
    ------
    TopoError
        If ``count`` is over the limit.

    Examples
    --------
    >>> check_array_count(3, path="model.onnx", current=Limits(arrays=3))
    >>> check_array_count(4, path="model.onnx", current=Limits(arrays=3))
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.onnx: refused: this file holds 4 arrays, more than the limit of 3 arrays (raise TOPO_MAX_ARRAYS to allow it)
    """
    cap = (limits() if current is None else current).arrays
    if count > cap:
        raise TopoError(
            _refused("this file", f"holds {count:,} arrays", f"{cap:,} arrays", _ENV["arrays"]), path=path
        )


def check_layer_count(count: int, *, path: Path | str, current: Limits | None = None) -> None:
    """Refuse a network of more than ``limits().layers`` layers.

    Parameters
    ----------
    count : int
        The number of layers (2-D and convolution weights) the file declares.
    path : path-like
        The file (for the message).
    current : Limits, optional
        The limits to apply; :func:`limits` by default.

    Raises
    ------
    TopoError
        If ``count`` is over the limit.

    Examples
    --------
    >>> check_layer_count(12, path="model.safetensors")
    >>> check_layer_count(12, path="model.safetensors", current=Limits(layers=10))
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.safetensors: refused: this network has 12 layers, more than the limit of 10 layers (raise TOPO_MAX_LAYERS to allow it)
    """
    cap = (limits() if current is None else current).layers
    if count > cap:
        raise TopoError(
            _refused("this network", f"has {count:,} layers", f"{cap:,} layers", _ENV["layers"]), path=path
        )


def check_layer_shape(
    n_out: int, n_in: int, *, path: Path | str, what: str, dense: bool = True, current: Limits | None = None
) -> None:
    """Refuse a layer whose declared shape is over budget, before it is built.

    Parameters
    ----------
    n_out, n_in : int
        The layer's outputs and inputs as declared.
    path : path-like
        The file (for the message).
    what : str
        The layer or array (for the message).
    dense : bool
        Whether the layer will be held as a dense ``n_out x n_in`` array (then
        ``dense_cells`` applies too); sparse layers are limited by ``neurons`` only.
    current : Limits, optional
        The limits to apply (read once by a caller that checks many layers).

    Raises
    ------
    TopoError
        If either side has more than ``neurons`` neurons, or a dense layer more than
        ``dense_cells`` cells.

    Examples
    --------
    A 100,000 x 100,000 layer is allowed as a sparse layer, not as a dense array:

    >>> check_layer_shape(100_000, 100_000, path="big.safetensors", what="layer 'fc1'", dense=False)
    >>> check_layer_shape(100_000, 100_000, path="big.safetensors", what="layer 'fc1'")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: big.safetensors: refused: layer 'fc1' would be a dense 100,000 x 100,000 array, more than the limit of 2,147,483,648 cells (raise TOPO_MAX_DENSE_CELLS to allow it)
    """
    current = limits() if current is None else current
    n_out, n_in = int(n_out), int(n_in)
    if n_out < 0 or n_in < 0:
        raise TopoError(f"{what} declares a negative dimension", path=path)
    widest = max(n_out, n_in)
    if widest > current.neurons:
        raise TopoError(
            _refused(what, f"declares {n_out:,} x {n_in:,} neurons", f"{current.neurons:,} neurons per side",
                     _ENV["neurons"]),
            path=path,
        )
    if dense and n_out * n_in > current.dense_cells:
        raise TopoError(
            _refused(what, f"would be a dense {n_out:,} x {n_in:,} array", f"{current.dense_cells:,} cells",
                     _ENV["dense_cells"]),
            path=path,
        )


def check_dense_cells(cells: int, *, path: Path | str, what: str) -> None:
    """Refuse a dense array of more than ``limits().dense_cells`` cells before it is allocated.

    Parameters
    ----------
    cells : int
        The cells the dense array would have.
    path : path-like
        The file (for the message).
    what : str
        The array (for the message).

    Raises
    ------
    TopoError
        If ``cells`` is over ``limits().dense_cells``.

    Examples
    --------
    >>> check_dense_cells(2**20, path="model.h5", what="dataset 'dense/kernel'")
    >>> check_dense_cells(2**32, path="model.h5", what="dataset 'dense/kernel'")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.h5: refused: dataset 'dense/kernel' would be a dense array of 4,294,967,296 cells, more than the limit of 2,147,483,648 cells (raise TOPO_MAX_DENSE_CELLS to allow it)
    """
    cap = limits().dense_cells
    if int(cells) > cap:
        raise TopoError(
            _refused(what, f"would be a dense array of {int(cells):,} cells", f"{cap:,} cells",
                     _ENV["dense_cells"]),
            path=path,
        )


# -- paths ----------------------------------------------------------------------------
def follow_links() -> bool:
    """Whether ``TOPO_FOLLOW_LINKS`` lifts the path rule (``1``, ``true``, ``yes``).

    Returns
    -------
    bool

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop("TOPO_FOLLOW_LINKS", None)
    >>> follow_links()
    False
    >>> os.environ["TOPO_FOLLOW_LINKS"] = "Yes"
    >>> follow_links()
    True
    >>> del os.environ["TOPO_FOLLOW_LINKS"]
    >>> if saved is not None:
    ...     os.environ["TOPO_FOLLOW_LINKS"] = saved
    """
    return os.environ.get("TOPO_FOLLOW_LINKS", "").strip().lower() in ("1", "true", "yes", "on")


def _allowed_root(folder: Path) -> Path:
    """``folder`` (resolved), or the ``models--*`` repository folder of a Hugging Face
    cache snapshot, whose files are links into the repository's ``blobs/``."""
    parts = folder.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith(("models--", "datasets--")):
        return folder.parent.parent
    return folder


def confine(member: Path | str, folder: Path | str, *, what: str = "file") -> Path:
    """``member`` resolved, provided it stays inside ``folder``.

    Parameters
    ----------
    member : path-like
        A file or folder that a reader is about to open on its own (not the path
        the user named).
    folder : path-like
        The folder the user gave (or that holds the file the user gave).
    what : str
        What the member is (for the message), e.g. ``"shard"``.

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    TopoError
        Naming ``member``, when it (or a link on its way) leads outside ``folder``,
        unless ``TOPO_FOLLOW_LINKS`` is set.

    Examples
    --------
    A shard inside the model folder is fine; a link to a file elsewhere is refused.

    >>> import os, pathlib, tempfile
    >>> saved = os.environ.pop("TOPO_FOLLOW_LINKS", None)
    >>> temporary = tempfile.TemporaryDirectory()
    >>> root = pathlib.Path(temporary.name).resolve()
    >>> (root / "model").mkdir()
    >>> _ = (root / "model" / "shard-1.safetensors").write_bytes(bytes(8))
    >>> _ = (root / "secret.txt").write_text("not a shard")
    >>> (root / "model" / "shard-2.safetensors").symlink_to(root / "secret.txt")
    >>> confine(root / "model" / "shard-1.safetensors", root / "model", what="shard").name
    'shard-1.safetensors'
    >>> confine(root / "model" / "shard-2.safetensors", root / "model", what="shard")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../shard-2.safetensors: refused: shard is a link to .../secret.txt, outside the folder .../model (set TOPO_FOLLOW_LINKS=1 to allow)
    >>> temporary.cleanup()
    >>> if saved is not None:
    ...     os.environ["TOPO_FOLLOW_LINKS"] = saved
    """
    member = Path(member)
    try:
        real = member.resolve()
        root = _allowed_root(Path(folder).resolve())
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise TopoError(f"{what} cannot be resolved ({exc.__class__.__name__}: link loop?)", path=member) from None
    if follow_links() or real == root or root in real.parents:
        return real
    raise TopoError(
        f"refused: {what} is a link to {real}, outside the folder {Path(folder)} (set TOPO_FOLLOW_LINKS=1 to allow)",
        path=member,
    )


def check_member_name(name: str, *, path: Path | str, what: str = "member") -> None:
    """Refuse an archive member name that is absolute or climbs out (``..``).

    Parameters
    ----------
    name : str
        The member's name as the archive stores it (``/`` or backslash separated).
    path : path-like
        The archive (for the message).
    what : str
        What the member is (for the message).

    Raises
    ------
    TopoError
        If the name is absolute, has a drive letter, or has a ``..`` part.

    Examples
    --------
    >>> check_member_name("model.weights.h5", path="model.keras")
    >>> check_member_name("../../etc/passwd", path="model.keras")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: model.keras: refused: member '../../etc/passwd' names a path outside the archive
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
        raise TopoError(f"refused: {what} {name!r} names a path outside the archive", path=path)

"""NumPy files: ``.npz`` archives, ``.npy`` arrays, scipy sparse ``.npz``, and SET folders.

- A plain ``.npz`` (``np.savez``): every 2-D array a layer, 1-D arrays biases.
  ``np.load`` keeps the archive's member order, which is the order the arrays were
  passed to ``np.savez``, so that order is used (option ``order="natural"`` sorts
  names naturally instead). Names decide the layout where they can (a ``kernel``
  is ``[in, out]``, a ``weight`` ``[out, in]``, whatever the shape); other arrays are
  taken as ``[out, in]``; when they only chain as ``[in, out]`` they are read that way,
  and when the shapes cannot tell either, a warning says so (option
  ``layout="out_in" | "in_out"`` fixes it).
- A scipy sparse matrix saved with ``scipy.sparse.save_npz`` (members ``data``,
  ``indices``, ``indptr``, ``format``, ``shape``, or ``row`` / ``col`` for COO): one layer.
- A ``.npy`` file: one array, one layer.
- The per-layer folders of the SET / NNSTD studies (Mocanu et al. 2018; Liu et al.
  2020): ``weight_l0.npz``, ``weight_l1.npz``, ... each a scipy sparse matrix of shape
  ``(n_in + 1, n_out)`` whose last row is the bias. Layer ``k`` is ``rows[:-1].T``
  (``[out, in]``) with that bias. A single ``weight_lK.npz`` file is read the same way.
  A run folder whose ``epoch_*`` subfolders are such folders reads as its last epoch;
  :func:`list_epochs` lists them in order.

Every member's declared size is checked before it is read: the uncompressed size in
the zip directory (refused above 4 GiB, or above 50 times the archive once over
64 MiB) and the shape in the ``.npy`` header against the bytes really stored. Arrays
are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import ast
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from topo.errors import TopoError
from topo.formats import _assemble, _policy
from topo.formats._assemble import (
    Tensor,
    build_topology,
    check_declared_size,
    pair_masks,
    read_head,
    reading,
)
from topo.topology import Topology
from topo.values import natural_key

__all__ = ["EXTENSIONS", "sniff", "read", "list_epochs", "is_set_folder", "is_set_run"]

EXTENSIONS = (".npz", ".npy")

_NPY_MAGIC = b"\x93NUMPY"
_SET_FILE_RE = re.compile(r"^weight_l(\d+)\.npz$")
_EPOCH_RE = re.compile(r"^epoch_(\d+)$")
_SPARSE_KEYS_COMPRESSED = {"data", "indices", "indptr", "format", "shape"}
_SPARSE_KEYS_COO = {"data", "row", "col", "format", "shape"}


# -- SET folders ----------------------------------------------------------------------
def _set_files(folder: Path) -> list[Path]:
    """``weight_l0.npz``, ``weight_l1.npz``, ... of a SET epoch folder, by layer index."""
    found = []
    try:
        for child in folder.iterdir():
            match = _SET_FILE_RE.match(child.name)
            if match and child.is_file():
                found.append((int(match.group(1)), child))
    except OSError:
        return []
    found.sort()
    return [p for _, p in found]


def _confined_set_files(folder: Path, root: Path) -> list[Path]:
    """:func:`_set_files`, each refused when it links out of ``root`` (the folder the user gave)."""
    files = _set_files(folder)
    for file in files:
        _policy.confine(file, root, what="SET weight file")
    return files


def is_set_folder(path: Path) -> bool:
    """A folder holding ``weight_l0.npz`` (a SET / NNSTD epoch folder).

    Parameters
    ----------
    path : path-like
        Any path.

    Returns
    -------
    bool

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import scipy.sparse as sp
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name) / "epoch_010"
    >>> folder.mkdir()
    >>> is_set_folder(folder)
    False
    >>> sp.save_npz(folder / "weight_l0.npz", sp.random(5, 3, density=0.5, format="csr", random_state=0))
    >>> is_set_folder(folder), is_set_run(folder.parent)
    (True, True)
    >>> temporary.cleanup()
    """
    path = Path(path)
    return path.is_dir() and (path / "weight_l0.npz").is_file()


def _epoch_folders(path: Path) -> list[Path]:
    found = []
    try:
        for child in Path(path).iterdir():
            match = _EPOCH_RE.match(child.name)
            if match and is_set_folder(child):
                found.append((int(match.group(1)), child))
    except OSError:
        return []
    found.sort()
    return [p for _, p in found]


def is_set_run(path: Path) -> bool:
    """A folder of ``epoch_*`` SET folders (one SET run).

    Parameters
    ----------
    path : path-like
        Any path.

    Returns
    -------
    bool
        True when at least one ``epoch_N`` subfolder is a SET folder (see :func:`is_set_folder`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import scipy.sparse as sp
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name)
    >>> is_set_run(run)
    False
    >>> (run / "epoch_000").mkdir()
    >>> sp.save_npz(run / "epoch_000" / "weight_l0.npz", sp.eye(4, 3, format="csr"))
    >>> is_set_run(run), is_set_run(run / "epoch_000")
    (True, False)
    >>> temporary.cleanup()
    """
    path = Path(path)
    return path.is_dir() and bool(_epoch_folders(path))


def list_epochs(path: str | Path) -> list[Path]:
    """The epoch folders of a SET run folder, in epoch order.

    Parameters
    ----------
    path : path-like
        A SET run folder (with ``epoch_000``, ``epoch_010``, ... subfolders), or one
        epoch folder (then the list holds just it).

    Returns
    -------
    list of Path
        Ordered by the epoch number in the folder name (``epoch_100`` after ``epoch_050``).

    Raises
    ------
    TopoError
        If the path is neither.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import scipy.sparse as sp
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name)
    >>> for epoch in (0, 50, 100):
    ...     (run / f"epoch_{epoch:03d}").mkdir()
    ...     sp.save_npz(run / f"epoch_{epoch:03d}" / "weight_l0.npz", sp.eye(4, 3, format="csr"))
    >>> [folder.name for folder in list_epochs(run)]
    ['epoch_000', 'epoch_050', 'epoch_100']
    >>> list_epochs(run / "epoch_050") == [run / "epoch_050"]
    True
    >>> temporary.cleanup()
    """
    path = Path(path)
    if is_set_folder(path):
        return [path]
    epochs = _epoch_folders(path)
    if not epochs:
        raise TopoError("not a SET run folder (no epoch_* folders with weight_l0.npz)", path=path)
    return epochs


# -- sniff ----------------------------------------------------------------------------
def _is_npz(path: Path) -> bool:
    head = read_head(path, 4)
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:
        return False
    return all(n.endswith(".npy") for n in names)


def sniff(path: Path) -> bool:
    """A ``.npy`` file, a zip of ``.npy`` members, a SET epoch folder or a SET run folder.

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the content (the ``.npy`` magic, a zip of ``.npy`` members), not
        the suffix; never raises.

    Examples
    --------
    >>> import pathlib, tempfile, zipfile
    >>> import numpy as np
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> np.save(folder / "fc1.npy", np.eye(3))
    >>> np.savez(folder / "weights.data", fc1=np.eye(3))
    >>> with zipfile.ZipFile(folder / "notes.npz", "w") as archive:
    ...     archive.writestr("readme.txt", "not arrays")
    >>> sniff(folder / "fc1.npy"), sniff(folder / "weights.data.npz"), sniff(folder / "notes.npz")
    (True, True, False)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if path.is_dir():
            return is_set_folder(path) or is_set_run(path)
        if not path.is_file():
            return False
        if read_head(path, 6) == _NPY_MAGIC:
            return True
        return _is_npz(path)
    except Exception:
        return False


# -- guarded array reading ------------------------------------------------------------
def _npy_header(handle: Any, what: str, path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Shape, dtype, Fortran order and header length of a ``.npy`` stream (reads the header only)."""
    prefix = handle.read(10)
    if len(prefix) < 10 or prefix[:6] != _NPY_MAGIC:
        raise TopoError(f"{what} is not a .npy array (bad magic)", path=path)
    major = prefix[6]
    if major == 1:
        length = int.from_bytes(prefix[8:10], "little")
        start = 10
    elif major in (2, 3):
        length = int.from_bytes(prefix[8:10] + handle.read(2), "little")
        start = 12
    else:
        raise TopoError(f"{what} has unsupported .npy version {major}", path=path)
    if length > 1024 * 1024:
        raise TopoError(f"{what} has an implausible .npy header length {length}", path=path)
    raw = handle.read(length)
    if len(raw) < length:
        raise TopoError(f"{what} is truncated (in its .npy header)", path=path)
    try:
        header = ast.literal_eval(raw.decode("latin1" if major < 3 else "utf8"))
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        dtype = np.dtype(np.lib.format.descr_to_dtype(descr))
        shape = tuple(int(s) for s in shape)
    except Exception as exc:
        raise TopoError(f"{what} has a malformed .npy header ({_assemble.one_line(exc)})", path=path) from None
    if any(s < 0 for s in shape):
        raise TopoError(f"{what} declares a negative dimension", path=path)
    if dtype.hasobject:
        raise TopoError(f"{what} holds Python objects (needs pickle); refused", path=path)
    return shape, dtype, bool(fortran), start + length


def _checked_npz(path: Path) -> tuple[list[str], dict[str, tuple[tuple[int, ...], np.dtype]]]:
    """Member names (archive order) and declared shapes of an .npz, all sizes checked."""
    archive_size = path.stat().st_size
    if archive_size == 0:
        raise TopoError("empty file, not an .npz archive", path=path)
    declared: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    names: list[str] = []
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        _policy.check_array_count(len(members), path=path)
        compressed = any(m.compress_type != zipfile.ZIP_STORED for m in members)
        # one budget for the whole archive: many small bombs add up
        budget = _policy.FileBudget(path, available=archive_size, compressed=compressed)
        for member in members:
            what = f"member {member.filename!r}"
            _policy.check_member_name(member.filename, path=path)
            if not member.filename.endswith(".npy"):
                raise TopoError(f"{what} is not a .npy array; not an .npz archive", path=path)
            check_declared_size(
                member.file_size, path=path, what=what, available=archive_size,
                compressed=member.compress_type != zipfile.ZIP_STORED,
            )
            if member.compress_type == zipfile.ZIP_STORED:
                check_declared_size(member.file_size, path=path, what=what, available=member.compress_size)
            budget.take(member.file_size, what)
            with archive.open(member) as handle:
                shape, dtype, _, header_len = _npy_header(handle, what, path)
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes != member.file_size - header_len:
                raise TopoError(
                    f"{what} declares {nbytes:,} bytes of data but holds {member.file_size - header_len:,} "
                    "(truncated or corrupt)",
                    path=path,
                )
            if len(shape) == 2:
                _policy.check_layer_shape(shape[0], shape[1], path=path, what=what)
            key = member.filename[:-4]
            declared[key] = (shape, dtype)
            names.append(key)
    return names, declared


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    names, _ = _checked_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in names}


def _load_npy(path: Path) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        raise TopoError("empty file, not a .npy array", path=path)
    with open(path, "rb") as handle:
        shape, dtype, _, header_len = _npy_header(handle, "the array", path)
    nbytes = math.prod(shape) * dtype.itemsize
    check_declared_size(nbytes, path=path, what="the array", available=size - header_len)
    if nbytes != size - header_len:
        raise TopoError(
            f"the array declares {nbytes:,} bytes of data but the file holds {size - header_len:,} (corrupt)",
            path=path,
        )
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _as_sparse(arrays: dict[str, np.ndarray], path: Path) -> sp.csr_matrix | None:
    """The scipy sparse matrix an ``save_npz`` archive holds, or None when it is not one."""
    keys = set(arrays)
    if not (keys >= _SPARSE_KEYS_COMPRESSED or keys >= _SPARSE_KEYS_COO):
        return None
    fmt_array = arrays["format"]
    fmt = fmt_array.item() if fmt_array.shape == () else None
    if isinstance(fmt, bytes):
        fmt = fmt.decode("ascii", "replace")
    shape_array = np.asarray(arrays["shape"])
    if shape_array.dtype.kind not in "iu" or shape_array.size != 2:
        raise TopoError(f"sparse matrix has shape {shape_array.tolist()!r}, expected two integers", path=path)
    shape = tuple(int(s) for s in shape_array.reshape(-1))
    if min(shape) < 0:
        raise TopoError(f"sparse matrix has shape {shape}, expected 2-D", path=path)
    # the declared shape decides what CSR conversion allocates (indptr of length rows + 1)
    _policy.check_layer_shape(shape[0], shape[1], path=path, what=f"sparse matrix of shape {shape}", dense=False)
    data = arrays["data"]
    if data.dtype.kind not in "biuf":
        raise TopoError(f"sparse matrix has non-numeric dtype {data.dtype}", path=path)
    try:
        if fmt in ("csr", "csc"):
            cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
            matrix = cls((data, arrays["indices"], arrays["indptr"]), shape=shape)
            matrix.check_format(full_check=True)  # indices in range, indptr monotone
            return matrix.tocsr()
        if fmt == "coo":
            row, col = np.asarray(arrays["row"]), np.asarray(arrays["col"])
            if row.size and (row.min() < 0 or row.max() >= shape[0] or col.min() < 0 or col.max() >= shape[1]):
                raise TopoError("sparse COO indices out of range", path=path)
            return sp.coo_matrix((data, (row, col)), shape=shape).tocsr()
    except TopoError:
        raise
    except Exception as exc:
        raise TopoError(f"inconsistent sparse matrix ({_assemble.one_line(exc)})", path=path) from None
    raise TopoError(f"sparse format {fmt!r} is not supported (csr, csc, coo are)", path=path)


def _set_layer(path: Path, index: int, weights: bool) -> Tensor:
    """Layer ``index`` of a SET folder: ``rows[:-1].T`` with the last row as bias."""
    with reading(path, "SET weight file"):
        matrix = _as_sparse(_load_npz(path), path)
        if matrix is None:
            raise TopoError("not a scipy sparse matrix (expected a SET weight_lK.npz)", path=path)
        if matrix.shape[0] < 2:
            raise TopoError(f"shape {matrix.shape} has no room for inputs and a bias row", path=path)
        bias = np.asarray(matrix[-1].toarray()).reshape(-1)
        body = matrix[:-1]
        return Tensor(
            key=f"weight_l{index}",
            name=f"l{index}",
            value=body,
            layout="in_out",
            bias=bias,
            source=f"{path.parent.name}/{path.name}",
            note="SET layout (n_in + 1, n_out): rows are inputs, last row the bias",
        )


def _read_set_folder(folder: Path, *, weights: bool, layers: str | None, root: Path | None = None) -> Topology:
    files = _confined_set_files(folder, folder if root is None else root)
    indices = [int(_SET_FILE_RE.match(p.name).group(1)) for p in files]  # type: ignore[union-attr]
    if indices != list(range(len(files))):
        raise TopoError(f"SET folder has layers {indices}; expected weight_l0 ... without gaps", path=folder)
    tensors = [_set_layer(p, i, weights) for i, p in enumerate(files)]
    info: dict[str, Any] = {"set_folder": str(folder)}
    match = _EPOCH_RE.match(folder.name)
    if match:
        info["epoch"] = int(match.group(1))
        info["run"] = {"name": folder.parent.name, "path": str(folder.parent)}
    return build_topology(tensors, path=folder, format="set-npz", layers=layers, weights=weights, info=info)


# -- read -----------------------------------------------------------------------------
def _chains(tensors: list[Tensor], layout: str) -> bool:
    mats = [t for t in tensors if np.ndim(t.value) == 2]
    dims = [(s[0], s[1]) if layout == "out_in" else (s[1], s[0]) for s in (np.shape(t.value) for t in mats)]
    return all(prev[0] == cur[1] for prev, cur in zip(dims, dims[1:]))


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    order: str = "archive",
    layout: str = "auto",
    **_: Any,
) -> Topology:
    """Read a NumPy file or a SET folder as a Topology.

    Parameters
    ----------
    path : Path
        ``.npz`` / ``.npy`` file, a SET epoch folder, or a SET run folder (its last epoch).
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.
    order : {"archive", "natural"}
        Plain ``.npz``: keep the archive's member order (``np.savez`` order) or
        sort names naturally.
    layout : {"auto", "out_in", "in_out"}
        Plain ``.npz`` / ``.npy`` / single sparse matrices: how 2-D arrays are laid
        out. ``"auto"`` takes ``[out, in]`` unless only ``[in, out]`` chains.

    Returns
    -------
    Topology
        ``info``: ``format`` (``"npz"``, ``"npy"``, ``"scipy-sparse"`` or ``"set-npz"``),
        ``path``, ``warnings``, ``skipped``; SET folders add ``epoch`` and ``run``.

    Raises
    ------
    TopoError
        Bad options, corrupt or truncated files, members that declare too much
        data, object or non-numeric arrays, no weights.

    Examples
    --------
    A plain archive: a ``kernel`` is ``[in, out]`` by its name, 1-D arrays are biases.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> kernel = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    >>> np.savez(folder / "mlp.npz", dense_kernel=kernel, dense_bias=np.zeros(2))
    >>> net = read(folder / "mlp.npz")
    >>> net.names, net["dense"].shape, net.nnz, net.info["format"]
    (['dense'], (2, 3), 3, 'npz')
    >>> net["dense"].fan_in.tolist(), net["dense"].bias.tolist()
    ([2, 1], [0.0, 0.0])

    A SET run folder: each ``weight_lK.npz`` is ``(n_in + 1, n_out)`` with the bias as its
    last row, and the run reads as its last epoch.

    >>> set_layer = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 0.5], [1.0, 1.0], [0.1, 0.2]]))
    >>> (folder / "run" / "epoch_005").mkdir(parents=True)
    >>> sp.save_npz(folder / "run" / "epoch_005" / "weight_l0.npz", set_layer)
    >>> net = read(folder / "run")
    >>> net.names, net.widths, net.epoch, net["l0"].bias.tolist()
    (['l0'], [3, 2], 5, [0.1, 0.2])
    >>> temporary.cleanup()
    """
    path = Path(path)
    if order not in ("archive", "natural"):
        raise TopoError(f"option order={order!r}: expected 'archive' or 'natural'")
    if layout not in ("auto", "out_in", "in_out"):
        raise TopoError(f"option layout={layout!r}: expected 'auto', 'out_in' or 'in_out'")
    if not path.exists():
        raise TopoError("no such file or folder", path=path)
    if path.is_dir():
        if is_set_folder(path):
            return _read_set_folder(path, weights=weights, layers=layers)
        epochs = list_epochs(path)
        _policy.confine(epochs[-1], path, what="epoch folder")
        topology = _read_set_folder(epochs[-1], weights=weights, layers=layers, root=path)
        return topology.with_info(path=str(path), epochs=[p.name for p in epochs])

    with reading(path, "NumPy file"):
        notes: list[str] = []
        if read_head(path, 6) == _NPY_MAGIC or (path.suffix.lower() == ".npy" and read_head(path, 4) != b"PK\x03\x04"):
            tensors = [Tensor(key=path.stem, value=_load_npy(path), source=path.name)]
            fmt = "npy"
        else:
            arrays = _load_npz(path)
            if not arrays:
                raise TopoError("empty .npz archive (no arrays)", path=path)
            sparse = _as_sparse(arrays, path)
            if sparse is not None:
                match = _SET_FILE_RE.match(path.name)
                if match and layout == "auto":
                    tensor = _set_layer(path, int(match.group(1)), weights)
                    return build_topology([tensor], path=path, format="set-npz", weights=weights, layers=layers)
                tensors = [Tensor(key=path.stem, value=sparse, source=path.name)]
                fmt = "scipy-sparse"
            else:
                tensors = [Tensor(key=k, value=v, source=f"{path.name}:{k}") for k, v in arrays.items()]
                fmt = "npz"
        for t in tensors:
            _assemble._numeric(t.value, t.key, path)
        tensors = pair_masks(tensors)[0]
        if order == "natural":
            tensors.sort(key=lambda t: natural_key(t.key))
        if layout == "auto":
            # Names decide first (a ``kernel`` is [in, out], a ``weight`` [out, in]); the
            # shapes decide only for arrays whose names say nothing.
            unknown = set(_assemble.apply_name_layouts(tensors))
            if unknown:
                chosen = "out_in"
                as_out_in, as_in_out = _chains(tensors, "out_in"), _chains(tensors, "in_out")
                if not as_out_in and as_in_out:
                    chosen = "in_out"
                    notes.append("arrays chain only as [in, out]; read them transposed (option layout= to override)")
                elif as_out_in == as_in_out and any(np.ndim(t.value) >= 2 for t in tensors if t.key in unknown):
                    notes.append(
                        "layout not known from the names or the shapes; arrays read as [out, in] "
                        "(option layout= to override)"
                    )
                for t in tensors:
                    if t.key in unknown:
                        t.layout = chosen
        else:
            for t in tensors:
                t.layout = layout
        return build_topology(
            tensors,
            path=path,
            format=fmt,
            layers=layers,
            weights=weights,
            warnings=notes,
            info={"order": "natural sort of names" if order == "natural" else "the archive's member order"},
            keep_order=order == "natural",  # asked for by the user
        )

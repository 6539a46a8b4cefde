"""Readers of the data files topo trains on: IDX (MNIST-like), CSV with a header, UCI covtype.data.

Each reader takes one file, gzip-compressed or not (decided by its magic bytes), and
returns numpy arrays; every problem is a :class:`~topo.errors.TopoError` naming the
file (not found, corrupt or truncated, a bad value and where it is).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "COVTYPE_FEATURES",
    "read_bytes",
    "read_idx",
    "read_idx_pair",
    "read_csv",
    "read_covtype",
    "read_covtype_data",
]

#: feature columns of covtype (the label follows them)
COVTYPE_FEATURES = 54
_DEFAULT_LABEL_COLUMNS = ("label", "target", "Cover_Type")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (decided by its magic bytes).

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    bytes

    Raises
    ------
    TopoError
        Naming the file, if it is missing or its gzip data is corrupt or truncated.

    Examples
    --------
    >>> import gzip, pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> _ = (folder / "plain.txt").write_bytes(b"1,2,3")
    >>> _ = (folder / "packed").write_bytes(gzip.compress(b"1,2,3"))  # no .gz suffix needed
    >>> read_bytes(folder / "plain.txt"), read_bytes(folder / "packed")
    (b'1,2,3', b'1,2,3')
    >>> _ = (folder / "cut.gz").write_bytes(gzip.compress(b"1,2,3" * 100)[:20])
    >>> read_bytes(folder / "cut.gz")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...cut.gz: corrupt or truncated gzip data (...)
    >>> import shutil; shutil.rmtree(folder)
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TopoError("no such file", path=path) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise TopoError(f"corrupt or truncated gzip data ({exc})", path=path) from None
    return raw


_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzip-compressed or not.

    The header is two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then
    one big-endian uint32 size per dimension; the data follow, big-endian, row-major.

    Parameters
    ----------
    path : path-like
        The file.
    ndim : int, optional
        The number of dimensions expected (3 for images, 1 for labels).

    Returns
    -------
    numpy.ndarray
        The array in native byte order, shaped as the header says.

    Raises
    ------
    TopoError
        Naming the file, when it is not IDX, is truncated, has trailing bytes, or has an
        unexpected number of dimensions.

    Examples
    --------
    Two 2x3 unsigned-byte images, written by hand:

    >>> import pathlib, struct, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 2, 3)
    >>> _ = (folder / "images-idx3-ubyte").write_bytes(header + bytes(range(12)))
    >>> images = read_idx(folder / "images-idx3-ubyte", ndim=3)
    >>> images.shape, images.dtype, images[1].tolist()
    ((2, 2, 3), dtype('uint8'), [[6, 7, 8], [9, 10, 11]])
    >>> _ = (folder / "cut-idx3-ubyte").write_bytes(header + bytes(range(10)))
    >>> read_idx(folder / "cut-idx3-ubyte")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...cut-idx3-ubyte: truncated IDX file: the header promises shape (2, 2, 3) (28 bytes), the data has 26 bytes
    >>> import shutil; shutil.rmtree(folder)
    """
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4:
        raise TopoError(f"truncated IDX file: {len(raw)} bytes, not even a header", path=path)
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise TopoError(f"not an IDX file (magic bytes {raw[:4].hex()})", path=path)
    dtype = _IDX_TYPES[raw[2]]
    dims_count = raw[3]
    if ndim is not None and dims_count != ndim:
        raise TopoError(f"expected {ndim}-dimensional IDX data, the header says {dims_count}", path=path)
    header = 4 + 4 * dims_count
    if len(raw) < header:
        raise TopoError(f"truncated IDX file: {len(raw)} bytes, the header alone needs {header}", path=path)
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=dims_count, offset=4))
    count = int(np.prod(shape, dtype=np.int64))
    needed = header + count * dtype.itemsize
    if len(raw) < needed:
        raise TopoError(
            f"truncated IDX file: the header promises shape {shape} ({needed:,} bytes), "
            f"the data has {len(raw):,} bytes",
            path=path,
        )
    if len(raw) > needed:
        raise TopoError(
            f"corrupt IDX file: {len(raw) - needed:,} bytes after the data of shape {shape}", path=path
        )
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header)
    return values.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx_pair(images_path: Path, labels_path: Path, *, transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (float32 ``[n, pixels]`` in ``[0, 1]``) and int64 labels of a pair of IDX files.

    ``transpose`` turns EMNIST's transposed images upright.

    Parameters
    ----------
    images_path, labels_path : pathlib.Path
        A 3-dimensional unsigned-byte IDX file and a 1-dimensional one.
    transpose : bool
        Transpose every image before flattening it.

    Returns
    -------
    (X, y) : tuple of numpy.ndarray
        ``X`` float32 ``[n, height * width]`` scaled by 1/255; ``y`` int64 ``[n]``, as stored.

    Raises
    ------
    TopoError
        As :func:`read_idx` does, and when the counts differ or the images are not bytes.

    Examples
    --------
    >>> import pathlib, struct, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> _ = (folder / "images").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 1, 2, 2) + bytes([0, 51, 102, 255]))
    >>> _ = (folder / "labels").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 1) + bytes([7]))
    >>> X, y = read_idx_pair(folder / "images", folder / "labels", transpose=False)
    >>> X.round(2).tolist(), y.tolist(), X.dtype
    ([[0.0, 0.2, 0.4, 1.0]], [7], dtype('float32'))
    >>> read_idx_pair(folder / "images", folder / "labels", transpose=True)[0].round(2).tolist()  # upright EMNIST
    [[0.0, 0.4, 0.2, 1.0]]
    >>> import shutil; shutil.rmtree(folder)
    """
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise TopoError(
            f"{images.shape[0]:,} images in {images_path} but {labels.shape[0]:,} labels", path=labels_path
        )
    if images.dtype != np.uint8:
        raise TopoError(f"expected unsigned-byte images, found {images.dtype}", path=images_path)
    if transpose:
        # EMNIST stores every image transposed (column-major); turn it upright
        images = images.transpose(0, 2, 1)
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= 255.0
    return X, labels.astype(np.int64)


def _parse_label_column(header: list[str], label_column: str | None, path: Path,
                        defaults: Sequence[str] = _DEFAULT_LABEL_COLUMNS) -> int:
    candidates = [label_column] if label_column else list(defaults)
    for candidate in candidates:
        if candidate in header:
            return header.index(candidate)
    # a case-insensitive match is still unambiguous enough to use
    lowered = [h.lower() for h in header]
    for candidate in candidates:
        if lowered.count(candidate.lower()) == 1:
            return lowered.index(candidate.lower())
    shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
    raise TopoError(
        f"no label column {' / '.join(candidates)} (columns: {shown}); name it with label_column",
        path=path,
    )


def read_csv(path: Path, label_column: str | None, *, drop: Sequence[str] = (),
              defaults: Sequence[str] = _DEFAULT_LABEL_COLUMNS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (float64), raw labels and feature names of a CSV file with a header row.

    Parameters
    ----------
    path : pathlib.Path
        The file (gzip-compressed or not).
    label_column : str, optional
        The label column; default the first of ``defaults`` the header has (exactly,
        else ignoring case).
    drop : sequence of str
        Columns that are neither features nor labels (ids); unnamed columns are
        dropped too.
    defaults : sequence of str
        Label columns to look for when ``label_column`` is None.

    Returns
    -------
    (features, labels, names)
        float64 ``[rows, features]``, the labels as stored (numbers or text), and the
        feature columns' names.

    Raises
    ------
    TopoError
        Naming the file: not UTF-8, empty, no label column, a row of another length,
        or a feature that is not a number (with its row and column).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> _ = (folder / "flowers.csv").write_text("id,petal,sepal,label\\n1,1.5,3.0,iris\\n2,0.5,2.5,rose\\n")
    >>> features, labels, names = read_csv(folder / "flowers.csv", None, drop=("id",))
    >>> features.tolist(), labels.tolist(), names
    ([[1.5, 3.0], [0.5, 2.5]], ['iris', 'rose'], ['petal', 'sepal'])
    >>> read_csv(folder / "flowers.csv", "species")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...flowers.csv: no label column species (columns: id, petal, sepal, label); name it with label_column
    >>> import shutil; shutil.rmtree(folder)
    """
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TopoError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", path=path) from None
    first_line, _, _ = text.partition("\n")
    if not first_line.strip():
        raise TopoError("empty CSV file (no header row)", path=path)
    header = [h.strip() for h in next(csv.reader([first_line]))]
    label_index = _parse_label_column(header, label_column, path, defaults)
    dropped = {i for i, h in enumerate(header) if h in ("", "Unnamed: 0") or h in drop}
    feature_index = [i for i in range(len(header)) if i != label_index and i not in dropped]
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, quotechar='"',
                           dtype=np.float64, ndmin=2)
        if table.shape[0] and table.shape[1] != len(header):
            raise ValueError(f"{table.shape[1]} columns but {len(header)} names in the header")
        labels = table[:, label_index]
        features = table[:, feature_index]
    except ValueError:
        # text labels (e.g. class names), or something malformed: read cell by cell to
        # keep text labels and to say exactly where a bad value is
        rows = [row for row in csv.reader(io.StringIO(text)) if row][1:]
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise TopoError(f"row {line} has {len(row)} fields, the header has {len(header)}", path=path) from None
        labels = np.array([row[label_index].strip() for row in rows])
        features = np.empty((len(rows), len(feature_index)), dtype=np.float64)
        for line, row in enumerate(rows, start=2):
            for k, i in enumerate(feature_index):
                try:
                    features[line - 2, k] = float(row[i])
                except ValueError:
                    raise TopoError(
                        f"row {line}, column {header[i]!r}: {row[i]!r} is not a number", path=path
                    ) from None
    if features.shape[0] == 0:
        raise TopoError("no data rows", path=path)
    return features, labels, [header[i] for i in feature_index]


def read_covtype_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``covtype.data(.gz)``: 54 integer features then the label, comma-separated, no header.

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    (features, labels)
        float64 ``[rows, 54]`` and int64 ``[rows]`` (the stored labels, 1-7).

    Raises
    ------
    TopoError
        Naming the file, if it is not 55 comma-separated integer columns.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> rows = [",".join(map(str, [2596 + i] + [0] * 53 + [i + 1])) for i in range(3)]
    >>> _ = (folder / "covtype.data").write_text("\\n".join(rows) + "\\n")
    >>> features, labels = read_covtype_data(folder / "covtype.data")
    >>> features.shape, features[:, 0].tolist(), labels.tolist()
    ((3, 54), [2596.0, 2597.0, 2598.0], [1, 2, 3])
    >>> import shutil; shutil.rmtree(folder)
    """
    text = read_bytes(path)
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise TopoError(f"not the UCI covtype.data format ({exc})", path=path) from None
    if table.shape[1] != COVTYPE_FEATURES + 1:
        raise TopoError(
            f"expected {COVTYPE_FEATURES + 1} columns (54 features, then the label), found {table.shape[1]}",
            path=path,
        )
    return table[:, :-1].astype(np.float64), table[:, -1]


def read_covtype(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of covtype, from ``covtype.data(.gz)`` or a CSV with a ``Cover_Type`` column.

    Parameters
    ----------
    path : pathlib.Path
        A ``.csv`` name (an ``Id`` column is dropped) or the UCI ``covtype.data`` format
        (:func:`read_covtype_data`).

    Returns
    -------
    (features, labels)
        float64 ``[rows, 54]`` and the stored labels.

    Raises
    ------
    TopoError
        Naming the file, if it does not have 54 feature columns or cannot be read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> header = ",".join(["Id"] + [f"f{i}" for i in range(54)] + ["Cover_Type"])
    >>> row = ",".join(["7"] + ["1"] * 54 + ["5"])
    >>> _ = (folder / "covtype-sample.csv").write_text(header + "\\n" + row + "\\n")
    >>> features, labels = read_covtype(folder / "covtype-sample.csv")
    >>> features.shape, labels.tolist()
    ((1, 54), [5.0])
    >>> import shutil; shutil.rmtree(folder)
    """
    if ".csv" in path.name.lower():
        features, labels, _ = read_csv(path, "Cover_Type", drop=("Id", "id", "ID"))
        if features.shape[1] != COVTYPE_FEATURES:
            raise TopoError(
                f"expected {COVTYPE_FEATURES} feature columns besides Cover_Type, found {features.shape[1]}",
                path=path,
            )
        return features, labels
    return read_covtype_data(path)

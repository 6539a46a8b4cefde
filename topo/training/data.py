"""Data sets for training, by name: read from local files, split with a seed, downloaded.

Names (:data:`DATASETS`):

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, no download); the default.
- ``mnist``, ``fashion-mnist``: the four IDX files (``train-images-idx3-ubyte.gz`` ...),
  gzip-compressed or not.
- ``emnist-<split>`` (``balanced``, ``byclass``, ``bymerge``, ``digits``, ``letters``,
  ``mnist``): EMNIST's IDX files (``emnist-balanced-train-images-idx3-ubyte.gz`` ...).
  EMNIST stores each image transposed; it is transposed back here.
- ``covtype``: UCI Forest Covertype, ``covtype.data(.gz)`` (54 integer features, then the
  label 1-7, no header) or a CSV with a header row and a ``Cover_Type`` column
  (e.g. ``covtype-sample-15k.csv``).
- a path to a ``.npz`` file with ``X_train, y_train, X_test, y_test`` (and optionally
  ``X_val, y_val``), or to a ``.csv`` file with a label column.

Files are looked for in a data folder: the ``data_dir`` argument, else the environment
variable ``TOPO_DATA_DIR``, else a per-user cache (``$XDG_CACHE_HOME/topo``, by default
``~/.cache/topo``); inside it in the subfolder named like the data set (``mnist/``,
``fashion-mnist/``, ``emnist/``, ``covtype/``) and then in the folder itself.

Every loader returns a :class:`Dataset`: ``X`` float32 ``[n, features]``, ``y`` int64
labels ``0..C-1`` (remapped from the stored labels through ``np.unique``), a seeded
stratified validation split taken from the training set, and a seeded stratified test
split where the data set has no fixed one. Images are scaled to ``[0, 1]`` and
flattened; tabular features are standardised with the mean and standard deviation of
the training part alone (after the validation split), so no statistic leaks from the
validation or test rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "DATASETS",
    "EMNIST_SPLITS",
    "DOWNLOADABLE",
    "Dataset",
    "load_dataset",
    "data_home",
    "search_folders",
    "locate",
    "dataset_status",
    "read_idx",
    "stratified_split",
]

ProgressCallback = Callable[[int, int], None]

EMNIST_SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")

#: Names :func:`load_dataset` accepts (besides paths to ``.npz`` / ``.csv`` files).
DATASETS = (
    "digits",
    "mnist",
    "fashion-mnist",
    *(f"emnist-{split}" for split in EMNIST_SPLITS),
    "covtype",
)

#: Names :func:`download` fetches.
DOWNLOADABLE = ("mnist", "fashion-mnist", "covtype")

#: Rows of the full UCI Covertype table; a downloaded ``covtype.data.gz`` is checked against it.
COVTYPE_FEATURES = 54

_MNIST_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

EMNIST_URL = "https://www.nist.gov/itl/products-and-services/emnist-dataset"
EMNIST_ZIP_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"

_ALIASES = {
    "fashion": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "covertype": "covtype",
    "forest-covertype": "covtype",
    "emnist": "emnist-balanced",
}

_COVTYPE_PATTERNS = ("covtype.data.gz", "covtype.data", "covtype.csv.gz", "covtype.csv", "covtype*.csv")
_DEFAULT_LABEL_COLUMNS = ("label", "target", "Cover_Type")


# -- the result ----------------------------------------------------------------------
@dataclass(eq=False)
class Dataset:
    """A data set split into training, validation and test parts.

    ``X_*`` are float32 ``[n, n_features]``; ``y_*`` int64 ``[n]`` with labels
    ``0..n_classes-1``. ``source`` says where the data was read from.
    """

    name: str
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    n_features: int
    n_classes: int
    source: str

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
            f"test={len(self.y_test)}, n_features={self.n_features}, n_classes={self.n_classes}, "
            f"source={self.source!r})"
        )


# -- where files are -----------------------------------------------------------------
def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir``, else ``$TOPO_DATA_DIR``, else the per-user cache.

    Parameters
    ----------
    data_dir : path-like, optional
        An explicit folder; wins over everything else.

    Returns
    -------
    Path
        ``data_dir``; or ``$TOPO_DATA_DIR``; or ``$XDG_CACHE_HOME/topo`` (``~/.cache/topo``
        where ``XDG_CACHE_HOME`` is unset). The folder need not exist.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("TOPO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    # the XDG specification says relative values are to be ignored
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "topo"


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise TopoError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or a path to a .npz or .csv file"
        )
    return key


def _subfolder(name: str) -> str:
    return "emnist" if name.startswith("emnist-") else name


def search_folders(name: str, *, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for a data set's files, in order.

    Parameters
    ----------
    name : str
        A data set name from :data:`DATASETS`.
    data_dir : path-like, optional
        The data folder (see :func:`data_home`).

    Returns
    -------
    list of Path
        ``HOME/<subfolder>`` (for EMNIST also ``HOME/emnist/gzip``, the folder its zip
        unpacks to), then ``HOME``.
    """
    name = _canonical(name)
    home = data_home(data_dir)
    sub = _subfolder(name)
    folders = [home / sub]
    if sub == "emnist":
        folders.append(home / "emnist" / "gzip")
    folders.append(home)
    return folders


def _expected_files(name: str) -> dict[str, tuple[str, ...]]:
    """Role -> file-name patterns, preferred first."""
    if name in ("mnist", "fashion-mnist") or name.startswith("emnist-"):
        prefix = f"{name}-" if name.startswith("emnist-") else ""
        roles = {}
        for role, stem in _MNIST_STEMS.items():
            if prefix:
                stem = stem.replace("t10k", "test")
            stem = prefix + stem
            # some mirrors write "train-images.idx3-ubyte"
            dotted = stem.replace("-idx", ".idx")
            roles[role] = (f"{stem}.gz", stem, f"{dotted}.gz", dotted)
        return roles
    if name == "covtype":
        return {"table": _COVTYPE_PATTERNS}
    raise TopoError(f"{name} is not read from files")  # pragma: no cover - digits only


def _display(patterns: tuple[str, ...]) -> str:
    if patterns == _COVTYPE_PATTERNS:
        return "covtype.data(.gz) or covtype*.csv (with a Cover_Type column)"
    first = patterns[0]
    if first.endswith(".gz") and len(patterns) > 1 and patterns[1] == first[:-3]:
        return f"{first[:-3]}(.gz)"
    return f"{first} (or {', '.join(patterns[1:])})" if len(patterns) > 1 else first


def _find(folders: Sequence[Path], patterns: Sequence[str]) -> Path | None:
    for folder in folders:
        if not folder.is_dir():
            continue
        for pattern in patterns:
            if any(ch in pattern for ch in "*?["):
                matches = sorted(p for p in folder.glob(pattern) if p.is_file())
                if matches:
                    return matches[0]
            elif (folder / pattern).is_file():
                return folder / pattern
    return None


def _missing_message(name: str, missing: Sequence[str], folders: Sequence[Path]) -> str:
    where = ", ".join(str(f) for f in folders)
    text = f"{name}: data files not found: {', '.join(missing)}; looked in {where}; "
    if name.startswith("emnist-"):
        return text + _emnist_instructions(name, folders[0], list_files=False)
    return (
        text
        + f"run `topo data download {name}` (or pass --data-dir / set TOPO_DATA_DIR to a folder that has them)"
    )


def _emnist_instructions(name: str, folder: Path, *, list_files: bool = True) -> str:
    split = name.split("-", 1)[1] if "-" in name else "<split>"
    files = "these files" if not list_files else ", ".join(
        f"emnist-{split}-{part}.gz"
        for part in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                     "test-images-idx3-ubyte", "test-labels-idx1-ubyte")
    )
    return (
        f"EMNIST is published as one zip file (gzip.zip, about 535 MB) at {EMNIST_URL} "
        f"({EMNIST_ZIP_URL}); download and unzip it yourself and place {files} in {folder}"
    )


def locate(name: str, *, data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """The local files of a data set.

    Parameters
    ----------
    name : str
        A data set name from :data:`DATASETS` other than ``digits``.
    data_dir : path-like, optional
        The data folder (see :func:`data_home`).

    Returns
    -------
    dict
        Role (``train_images``, ``train_labels``, ``test_images``, ``test_labels``; or
        ``table`` for covtype) -> path.

    Raises
    ------
    TopoError
        One message naming the files not found, the folders searched, and how to get them.
    """
    name = _canonical(name)
    if name == "digits":
        raise TopoError("digits is bundled with scikit-learn; it has no files to locate")
    folders = search_folders(name, data_dir=data_dir)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, patterns in _expected_files(name).items():
        path = _find(folders, patterns)
        if path is None:
            missing.append(_display(patterns))
        else:
            found[role] = path
    if missing:
        raise TopoError(_missing_message(name, missing, folders))
    return found


def dataset_status(name: str, *, data_dir: str | os.PathLike | None = None) -> dict:
    """Whether a data set is available locally, where, and how to get it.

    Parameters
    ----------
    name : str
        A data set name from :data:`DATASETS`.
    data_dir : path-like, optional
        The data folder (see :func:`data_home`).

    Returns
    -------
    dict
        ``name``, ``found`` (bool), ``where`` (the folder or file found, or None),
        ``files`` (list of paths found), ``get`` (``"bundled"``, ``"topo data download
        NAME"`` or ``"manual"``), ``missing`` (the error message where not found).
    """
    name = _canonical(name)
    if name == "digits":
        return {"name": name, "found": True, "where": "scikit-learn (bundled)", "files": [],
                "get": "bundled", "missing": None}
    get = f"topo data download {name}" if name in DOWNLOADABLE else "manual"
    try:
        files = locate(name, data_dir=data_dir)
    except TopoError as exc:
        return {"name": name, "found": False, "where": None, "files": [], "get": get, "missing": str(exc)}
    paths = list(files.values())
    where = paths[0] if len(paths) == 1 else paths[0].parent
    return {"name": name, "found": True, "where": str(where), "files": [str(p) for p in paths],
            "get": get, "missing": None}


# -- reading files -------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (decided by its magic bytes)."""
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


_IDX_TYPES = {
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
    """
    path = Path(path)
    raw = _read_bytes(path)
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


def _read_idx_pair(images_path: Path, labels_path: Path, *, transpose: bool) -> tuple[np.ndarray, np.ndarray]:
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


def _read_csv(path: Path, label_column: str | None, *, drop: Sequence[str] = (),
              defaults: Sequence[str] = _DEFAULT_LABEL_COLUMNS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (float64), raw labels and feature names of a CSV file with a header row."""
    try:
        text = _read_bytes(path).decode("utf-8-sig")
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


def _read_covtype_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``covtype.data(.gz)``: 54 integer features then the label, comma-separated, no header."""
    text = _read_bytes(path)
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


def _read_covtype(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if ".csv" in path.name.lower():
        features, labels, _ = _read_csv(path, "Cover_Type", drop=("Id", "id", "ID"))
        if features.shape[1] != COVTYPE_FEATURES:
            raise TopoError(
                f"expected {COVTYPE_FEATURES} feature columns besides Cover_Type, found {features.shape[1]}",
                path=path,
            )
        return features, labels
    return _read_covtype_data(path)


# -- splitting and scaling -----------------------------------------------------------
def stratified_split(labels: np.ndarray, fraction: float, *, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into two parts, keeping every class's share in both.

    Parameters
    ----------
    labels : array-like, 1-D
        Class labels (any values).
    fraction : float
        The share of rows that go to the second part, in ``[0, 1)``; rounded to a whole
        number of rows, and apportioned between classes by largest remainder.
    seed : int or sequence of int or numpy.random.Generator
        Which rows are drawn; the same seed gives the same split.

    Returns
    -------
    (keep, split) : tuple of numpy.ndarray
        Sorted int64 row indices of the first and the second part.

    Raises
    ------
    TopoError
        When ``fraction`` is outside ``[0, 1)``.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if not (0.0 <= fraction < 1.0):
        raise TopoError(f"a split fraction must be in [0, 1), got {fraction}")
    n_split = int(round(fraction * n))
    if n_split == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    quota = fraction * counts
    take = np.floor(quota).astype(np.int64)
    remainder = n_split - int(take.sum())
    if remainder > 0:
        # largest fractional parts first; ties broken by the seeded generator
        order = np.lexsort((rng.random(len(counts)), -(quota - take)))
        take[order[:remainder]] += 1
    by_class = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen = [
        rng.permutation(by_class[starts[c]:starts[c + 1]])[:k] for c, k in enumerate(take) if k > 0
    ]
    split = np.sort(np.concatenate(chosen)).astype(np.int64)
    keep_mask = np.ones(n, dtype=bool)
    keep_mask[split] = False
    return np.flatnonzero(keep_mask).astype(np.int64), split


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every column by the training rows' mean and standard deviation (0 -> 1)."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[~np.isfinite(std) | (std == 0)] = 1.0
    return [((part - mean) / std).astype(np.float32) for part in (train, *others)]


def _remap_labels(*parts: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Labels of all parts mapped together onto 0..C-1 (sorted order of the stored values)."""
    sizes = [len(p) for p in parts]
    classes, inverse = np.unique(np.concatenate([np.asarray(p) for p in parts]), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    out, start = [], 0
    for size in sizes:
        out.append(inverse[start:start + size])
        start += size
    return out, len(classes)


def _assemble(
    name: str,
    source: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    val_fraction: float,
    seed: int,
    standardise: bool,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> Dataset:
    if X_val is None:
        (y_train, y_test), n_classes = _remap_labels(y_train, y_test)
        keep, val = stratified_split(y_train, val_fraction, seed=[seed, 2])
        X_val, y_val = X_train[val], y_train[val]
        X_train, y_train = X_train[keep], y_train[keep]
    else:
        (y_train, y_val, y_test), n_classes = _remap_labels(y_train, y_val, y_test)
    if standardise:
        X_train, X_val, X_test = _standardise(X_train, X_val, X_test)
    parts = [np.ascontiguousarray(x, dtype=np.float32) for x in (X_train, X_val, X_test)]
    return Dataset(
        name=name,
        X_train=parts[0],
        y_train=np.ascontiguousarray(y_train, dtype=np.int64),
        X_val=parts[1],
        y_val=np.ascontiguousarray(y_val, dtype=np.int64),
        X_test=parts[2],
        y_test=np.ascontiguousarray(y_test, dtype=np.int64),
        n_features=int(parts[0].shape[1]),
        n_classes=int(n_classes),
        source=source,
    )


def _split_off_test(X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    if not (0.0 < test_fraction < 1.0):
        raise TopoError(f"test_fraction must be in (0, 1), got {test_fraction}")
    keep, test = stratified_split(y, test_fraction, seed=[seed, 1])
    return X[keep], y[keep], X[test], y[test]


# -- the loaders ---------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered.endswith((".npz", ".csv", ".csv.gz", ".data", ".data.gz"))
        or os.sep in name
        or (os.altsep is not None and os.altsep in name)
    )


def load_dataset(
    name: str = "digits",
    *,
    data_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    label_column: str | None = None,
    test_fraction: float = 0.2,
) -> Dataset:
    """Load a data set by name (or path), split and scaled for training.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`, or a path to a ``.npz`` file (``X_train, y_train,
        X_test, y_test``, optionally ``X_val, y_val``) or a ``.csv`` file with a header
        row and a label column.
    data_dir : path-like, optional
        The data folder (see :func:`data_home`).
    val_fraction : float
        Share of the training set held out for validation, stratified and seeded; 0
        gives empty validation arrays. Ignored for ``.npz`` files that carry their own.
    seed : int
        Seeds the validation split (and the test split where one is made).
    label_column : str, optional
        For ``.csv`` paths: the label column (default: ``label``, then ``target``, then
        ``Cover_Type``).
    test_fraction : float
        For data without a fixed test set (digits, covtype, ``.csv`` paths): the share
        held out for testing, stratified and seeded.

    Returns
    -------
    Dataset
        float32 features, int64 labels ``0..C-1``. Images (digits, MNIST-like) are
        scaled to ``[0, 1]`` and flattened; tabular data (covtype, ``.csv``) is
        standardised with the training part's statistics; ``.npz`` arrays are used as
        stored, except that uint8 arrays are scaled to ``[0, 1]``.

    Raises
    ------
    TopoError
        Unknown name, missing files (one message naming the files and the folders
        searched), corrupt or truncated files, bad fractions.
    """
    if not (0.0 <= val_fraction < 1.0):
        raise TopoError(f"val_fraction must be in [0, 1), got {val_fraction}")
    options = dict(val_fraction=val_fraction, seed=seed)
    text = str(name)
    if _looks_like_path(text) and text.strip().lower().replace("_", "-") not in DATASETS:
        return _load_path(Path(text).expanduser(), text, label_column=label_column,
                          test_fraction=test_fraction, **options)
    key = _canonical(text)
    if key == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        # pixel intensities are 0..16 in this data set
        X = (bunch.data / 16.0).astype(np.float32)
        X_train, y_train, X_test, y_test = _split_off_test(X, bunch.target, test_fraction, seed)
        return _assemble(key, "scikit-learn (sklearn.datasets.load_digits)", X_train, y_train, X_test, y_test,
                         standardise=False, **options)
    files = locate(key, data_dir=data_dir)
    if key == "covtype":
        X, y = _read_covtype(files["table"])
        X_train, y_train, X_test, y_test = _split_off_test(X, y, test_fraction, seed)
        return _assemble(key, str(files["table"]), X_train, y_train, X_test, y_test, standardise=True, **options)
    transpose = key.startswith("emnist-")
    X_train, y_train = _read_idx_pair(files["train_images"], files["train_labels"], transpose=transpose)
    X_test, y_test = _read_idx_pair(files["test_images"], files["test_labels"], transpose=transpose)
    if X_train.shape[1] != X_test.shape[1]:
        raise TopoError(
            f"training images have {X_train.shape[1]} pixels, test images {X_test.shape[1]}",
            path=files["test_images"],
        )
    return _assemble(key, str(files["train_images"].parent), X_train, y_train, X_test, y_test,
                     standardise=False, **options)


def _load_path(path: Path, name: str, *, label_column, test_fraction, val_fraction, seed) -> Dataset:
    if path.is_dir():
        raise TopoError(
            f"a folder, not a data file: to read a data set from it, name the data set "
            f"({', '.join(DATASETS)}) and pass this folder as the data folder (--data-dir)",
            path=path,
        )
    if not path.is_file():
        raise TopoError("no such data file", path=path)
    lowered = path.name.lower()
    options = dict(val_fraction=val_fraction, seed=seed)
    if lowered.endswith(".npz"):
        return _load_npz(path, name, **options)
    if lowered.startswith("covtype") and (lowered.endswith(".data") or lowered.endswith(".data.gz")):
        X, y = _read_covtype_data(path)
    elif ".csv" in lowered:
        X, y, _ = _read_csv(path, label_column)
    else:
        raise TopoError("unsupported data file: expected .npz, .csv or covtype.data(.gz)", path=path)
    X_train, y_train, X_test, y_test = _split_off_test(X, y, test_fraction, seed)
    return _assemble(name, str(path), X_train, y_train, X_test, y_test, standardise=True, **options)


def _load_npz(path: Path, name: str, *, val_fraction: float, seed: int) -> Dataset:
    import zipfile

    required = ("X_train", "y_train", "X_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in required if key not in archive.files]
            if missing:
                raise TopoError(
                    f"missing arrays {', '.join(missing)} (found: {', '.join(archive.files) or 'none'})", path=path
                )
            arrays = {key: archive[key] for key in (*required, "X_val", "y_val") if key in archive.files}
    except TopoError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise TopoError(f"cannot read .npz file ({exc})", path=path) from None

    def features(x: np.ndarray, key: str) -> np.ndarray:
        if x.ndim < 2:
            raise TopoError(f"{key} must have at least 2 dimensions (rows, features), has shape {x.shape}", path=path)
        flat = x.reshape(x.shape[0], -1)
        return flat.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else flat.astype(np.float32)

    has_val = "X_val" in arrays and "y_val" in arrays
    parts = ["train", "test"] + (["val"] if has_val else [])
    for part in parts:
        X, y = arrays[f"X_{part}"], arrays[f"y_{part}"]
        if y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise TopoError(f"X_{part} has {X.shape[0]} rows but y_{part} has shape {y.shape}", path=path)
    Xs = {part: features(arrays[f"X_{part}"], f"X_{part}") for part in parts}
    widths = {Xs[p].shape[1] for p in parts}
    if len(widths) != 1:
        raise TopoError(f"the parts have different numbers of features: {sorted(widths)}", path=path)
    return _assemble(
        name, str(path), Xs["train"], arrays["y_train"], Xs["test"], arrays["y_test"],
        val_fraction=val_fraction, seed=seed, standardise=False,
        X_val=Xs.get("val"), y_val=arrays.get("y_val") if has_val else None,
    )

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

The names and the folders searched are :mod:`topo.training.datasets`'s, the file
readers :mod:`topo.training.data_files`'s; this module turns what they read into a
:class:`Dataset`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from topo.errors import TopoError
from topo.training.data_files import read_covtype, read_covtype_data, read_csv, read_idx, read_idx_pair
from topo.training.datasets import (
    DATASETS,
    DOWNLOADABLE,
    EMNIST_SPLITS,
    canonical_name,
    data_home,
    dataset_status,
    locate,
    search_folders,
)

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


# -- the result ----------------------------------------------------------------------
@dataclass(eq=False)
class Dataset:
    """A data set split into training, validation and test parts.

    ``X_*`` are float32 ``[n, n_features]``; ``y_*`` int64 ``[n]`` with labels
    ``0..n_classes-1``. ``source`` says where the data was read from.

    Examples
    --------
    :func:`load_dataset` makes them; one can also be built from arrays in memory (and
    passed to :func:`topo.training.trainer.train` as its ``dataset``):

    >>> import numpy as np
    >>> X = np.eye(4, dtype=np.float32)
    >>> y = np.array([0, 1, 0, 1])
    >>> data = Dataset("toy", X, y, X[:2], y[:2], X[2:], y[2:], n_features=4, n_classes=2, source="memory")
    >>> data
    Dataset('toy', train=4, val=2, test=2, n_features=4, n_classes=2, source='memory')
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

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> keep, split = stratified_split(labels, 0.5, seed=0)
    >>> len(keep), len(split), np.bincount(labels[split]).tolist()  # half of each class
    (5, 5, [2, 3])
    >>> sorted(keep.tolist() + split.tolist()) == list(range(10))
    True
    >>> np.array_equal(split, stratified_split(labels, 0.5, seed=0)[1])  # the same seed, the same split
    True
    >>> stratified_split(labels, 0.0)[1]
    array([], dtype=int64)
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
        (y_train, y_val, y_test), n_classes = _remap_labels(y_train, cast(np.ndarray, y_val), y_test)
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

    Examples
    --------
    The bundled digits (no download):

    >>> data = load_dataset("digits", seed=0)
    >>> data
    Dataset('digits', train=1294, val=144, test=359, n_features=64, n_classes=10, source='scikit-learn (sklearn.datasets.load_digits)')
    >>> data.X_train.dtype, float(data.X_train.min()), float(data.X_train.max())
    (dtype('float32'), 0.0, 1.0)

    A ``.npz`` file of one's own (its labels are mapped onto ``0..C-1``):

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> rng = np.random.default_rng(0)
    >>> np.savez(folder / "toy.npz", X_train=rng.random((20, 3)), y_train=np.repeat([5, 7], 10),
    ...          X_test=rng.random((4, 3)), y_test=np.array([5, 7, 5, 7]))
    >>> data = load_dataset(str(folder / "toy.npz"), val_fraction=0.2)
    >>> len(data.y_train), len(data.y_val), data.n_classes, sorted(set(data.y_test.tolist()))
    (16, 4, 2, [0, 1])
    >>> import shutil; shutil.rmtree(folder)
    """
    if not (0.0 <= val_fraction < 1.0):
        raise TopoError(f"val_fraction must be in [0, 1), got {val_fraction}")
    options: dict[str, Any] = dict(val_fraction=val_fraction, seed=seed)
    text = str(name)
    if _looks_like_path(text) and text.strip().lower().replace("_", "-") not in DATASETS:
        return _load_path(Path(text).expanduser(), text, label_column=label_column,
                          test_fraction=test_fraction, **options)
    key = canonical_name(text)
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
        X, y = read_covtype(files["table"])
        X_train, y_train, X_test, y_test = _split_off_test(X, y, test_fraction, seed)
        return _assemble(key, str(files["table"]), X_train, y_train, X_test, y_test, standardise=True, **options)
    transpose = key.startswith("emnist-")
    X_train, y_train = read_idx_pair(files["train_images"], files["train_labels"], transpose=transpose)
    X_test, y_test = read_idx_pair(files["test_images"], files["test_labels"], transpose=transpose)
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
            f"({', '.join(DATASETS)}) and pass this folder as the data folder (data_dir)",
            path=path,
        )
    if not path.is_file():
        raise TopoError("no such data file", path=path)
    lowered = path.name.lower()
    options: dict[str, Any] = dict(val_fraction=val_fraction, seed=seed)
    if lowered.endswith(".npz"):
        return _load_npz(path, name, **options)
    if lowered.startswith("covtype") and (lowered.endswith(".data") or lowered.endswith(".data.gz")):
        X, y = read_covtype_data(path)
    elif ".csv" in lowered:
        X, y, _ = read_csv(path, label_column)
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

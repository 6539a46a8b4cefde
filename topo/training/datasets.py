"""The data sets topo knows by name, and where their files are looked for.

Names (:data:`DATASETS`) and their aliases; the data folder (:func:`data_home`: the
``data_dir`` argument, else ``$TOPO_DATA_DIR``, else the per-user cache); the folders a
data set's files are looked for in (:func:`search_folders`), the files it needs
(:func:`locate`), and whether it is there and how to get it (:func:`dataset_status`).
Reading the files is :mod:`topo.training.data_files`'s; splitting them into a
:class:`~topo.training.data.Dataset` is :mod:`topo.training.data`'s.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from topo.errors import TopoError

__all__ = [
    "DATASETS",
    "EMNIST_SPLITS",
    "DOWNLOADABLE",
    "EMNIST_URL",
    "EMNIST_ZIP_URL",
    "data_home",
    "canonical_name",
    "dataset_folder",
    "search_folders",
    "locate",
    "dataset_status",
    "emnist_instructions",
]

EMNIST_SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")

#: Names :func:`topo.training.data.load_dataset` accepts (besides paths to ``.npz`` / ``.csv`` files).
DATASETS = (
    "digits",
    "mnist",
    "fashion-mnist",
    *(f"emnist-{split}" for split in EMNIST_SPLITS),
    "covtype",
)

#: Names :func:`topo.training.download.download` fetches.
DOWNLOADABLE = ("mnist", "fashion-mnist", "covtype")

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

    Examples
    --------
    >>> import os
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> data_home("/srv/data")
    PosixPath('/srv/data')
    >>> with mock.patch.dict(os.environ, {"TOPO_DATA_DIR": "/mnt/sets"}):
    ...     data_home(), data_home("/srv/data")  # the argument wins
    (PosixPath('/mnt/sets'), PosixPath('/srv/data'))
    >>> with mock.patch.dict(os.environ, {"TOPO_DATA_DIR": "", "XDG_CACHE_HOME": "/var/cache"}):
    ...     data_home()
    PosixPath('/var/cache/topo')
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


def canonical_name(name: str) -> str:
    """The registered name of data set ``name`` (case, ``_`` and aliases resolved).

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        One of :data:`DATASETS`.

    Raises
    ------
    TopoError
        If no data set has that name.

    Examples
    --------
    >>> canonical_name("Fashion_MNIST"), canonical_name("fmnist"), canonical_name("emnist")
    ('fashion-mnist', 'fashion-mnist', 'emnist-balanced')
    >>> canonical_name("cifar10")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: unknown data set 'cifar10'; known: digits, ...
    """
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise TopoError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or a path to a .npz or .csv file"
        )
    return key


def dataset_folder(name: str) -> str:
    """The subfolder of the data folder that holds data set ``name``'s files.

    Parameters
    ----------
    name : str
        A name from :data:`DATASETS`.

    Returns
    -------
    str

    Examples
    --------
    >>> dataset_folder("fashion-mnist"), dataset_folder("emnist-letters")  # the EMNIST splits share one
    ('fashion-mnist', 'emnist')
    """
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

    Examples
    --------
    >>> [str(p) for p in search_folders("MNIST", data_dir="/srv/data")]
    ['/srv/data/mnist', '/srv/data']
    >>> [str(p) for p in search_folders("emnist-digits", data_dir="/srv/data")]
    ['/srv/data/emnist', '/srv/data/emnist/gzip', '/srv/data']
    """
    name = canonical_name(name)
    home = data_home(data_dir)
    sub = dataset_folder(name)
    folders = [home / sub]
    if sub == "emnist":
        folders.append(home / "emnist" / "gzip")
    folders.append(home)
    return folders


def _expected_files(name: str) -> dict[str, tuple[str, ...]]:
    """Role -> file-name patterns, preferred first."""
    if name in ("mnist", "fashion-mnist") or name.startswith("emnist-"):
        prefix = f"{name}-" if name.startswith("emnist-") else ""
        roles: dict[str, tuple[str, ...]] = {}
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
        return text + emnist_instructions(name, folders[0], list_files=False)
    return (
        text
        + f"run `topo data download {name}` (or point data_dir or TOPO_DATA_DIR at a folder that has them)"
    )


def emnist_instructions(name: str, folder: Path, *, list_files: bool = True) -> str:
    """How to get EMNIST (published only as one zip) and where to put its files.

    Parameters
    ----------
    name : str
        ``emnist-<split>``.
    folder : pathlib.Path
        Where the files go.
    list_files : bool
        Name the four files (else "these files").

    Returns
    -------
    str
        One sentence.

    Examples
    --------
    >>> from pathlib import Path
    >>> text = emnist_instructions("emnist-letters", Path("/srv/data/emnist"))
    >>> text.startswith("EMNIST is published as one zip file"), text.endswith("in /srv/data/emnist")
    (True, True)
    >>> "emnist-letters-test-labels-idx1-ubyte.gz" in text
    True
    """
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

    Examples
    --------
    >>> import pathlib, tempfile
    >>> home_tmp = tempfile.TemporaryDirectory()
    >>> home = pathlib.Path(home_tmp.name)
    >>> (home / "covtype").mkdir()
    >>> _ = (home / "covtype" / "covtype.data.gz").write_bytes(b"")
    >>> {role: path.relative_to(home).as_posix() for role, path in locate("covtype", data_dir=home).items()}
    {'table': 'covtype/covtype.data.gz'}
    >>> locate("mnist", data_dir=home)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: mnist: data files not found: train-images-idx3-ubyte(.gz), ...; run `topo data download mnist` ...
    >>> import shutil; shutil.rmtree(home)
    """
    name = canonical_name(name)
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

    Examples
    --------
    >>> import pathlib, tempfile
    >>> home_tmp = tempfile.TemporaryDirectory()
    >>> home = pathlib.Path(home_tmp.name)
    >>> dataset_status("digits")["get"]
    'bundled'
    >>> status = dataset_status("fashion-mnist", data_dir=home)
    >>> status["found"], status["get"], status["missing"].startswith("fashion-mnist: data files not found")
    (False, 'topo data download fashion-mnist', True)
    >>> _ = (home / "covtype.csv").write_text("Cover_Type\\n1\\n")
    >>> status = dataset_status("covtype", data_dir=home)
    >>> status["found"], status["where"] == str(home / "covtype.csv"), dataset_status("emnist-mnist", data_dir=home)["get"]
    (True, True, 'manual')
    >>> import shutil; shutil.rmtree(home)
    """
    name = canonical_name(name)
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

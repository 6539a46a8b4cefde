"""Fetching the official data files: checksums, resumed partial downloads, mirrors.

``download(name)`` puts a data set's files where :func:`topo.training.data.load_dataset`
looks for them. A partial download is kept as ``FILE.part`` and resumed with an HTTP
Range request; a file is accepted only when its checksum (or, for covtype, its content)
is right, and is renamed into place atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import zlib
from pathlib import Path
from typing import Callable, Mapping

from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.training.data_files import read_covtype_data
from topo.training.datasets import DOWNLOADABLE, canonical_name, data_home, dataset_folder, emnist_instructions

__all__ = ["download", "DOWNLOAD_FILES", "DOWNLOAD_URLS", "COVTYPE_ROWS"]

#: rows of the full UCI covtype.data, the content check of a downloaded file
COVTYPE_ROWS = 581_012

_DOWNLOAD_CHUNK = 1 << 16

#: Where each data set's files are fetched from, tried in order (each a folder URL).
DOWNLOAD_URLS: dict[str, tuple[str, ...]] = {
    # LeCun's page is the official home; torchvision's mirror serves the same files
    # (same checksums) and answers when the official site refuses.
    "mnist": ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "covtype": ("https://archive.ics.uci.edu/ml/machine-learning-databases/covtype/",),
}

#: File name -> (md5 of the file as shipped, md5 of its decompressed content); either
#: one matching accepts the file, so a mirror that recompressed the same data passes.
#: None means "not known": the file is then checked by its content (see ``covtype``).
DOWNLOAD_FILES: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "mnist": {
        # As-shipped .gz md5s: the values published with the official files (and used by
        # torchvision's MNIST). Decompressed md5s: the official values, as given in
        # ../shared/data/README.md. The .gz files in ../shared/data/mnist were recompressed
        # (different .gz md5s, identical content), which the second value accepts.
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        # .gz md5s: the Fashion-MNIST files as shipped (../shared/data/README.md); the
        # decompressed md5s were computed from those same files.
        "train-images-idx3-ubyte.gz": ("cf8536b0aa1a6ac5fa3f23001093305c", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte.gz": ("10bea18fdb374794d4bb42e356e600c9", "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte.gz": ("f78720b4224f21cce2f2ccf2d7a94c9a", "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte.gz": ("0d30e22e447f3c33dab9ed536400ac01", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    "covtype": {
        # No published checksum could be verified offline when this was written, so the
        # download is checked by content instead: 581,012 rows of 54 integer features
        # and a label in 1..7 (see _check_covtype_content).
        "covtype.data.gz": (None, None),
    },
}

# -- downloading ---------------------------------------------------------------------
class _TransferError(Exception):
    """A failed transfer from one URL (network trouble); another mirror may work."""


def _md5(path: Path, *, decompress: bool = False) -> str:
    digest = hashlib.md5()
    opener = gzip.open if decompress else open
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_covtype_content(path: Path) -> str | None:
    """None when ``path`` is the full UCI table, else what is wrong with it."""
    try:
        X, y = read_covtype_data(path)
    except TopoError as exc:
        return str(exc)
    if X.shape[0] != COVTYPE_ROWS:
        return f"{X.shape[0]:,} rows, expected {COVTYPE_ROWS:,}"
    if y.min() < 1 or y.max() > 7:
        return f"labels outside 1..7 ({y.min()}..{y.max()})"
    return None


def _verify(path: Path, expected: tuple[str | None, str | None], dataset: str) -> str | None:
    """None when the downloaded file is right, else what is wrong with it."""
    shipped, content = expected
    if shipped is None and content is None:
        if dataset == "covtype":
            return _check_covtype_content(path)
        return None
    actual = _md5(path)
    if shipped is not None and actual == shipped:
        return None
    if content is not None:
        try:
            if _md5(path, decompress=True) == content:
                return None
        except (EOFError, OSError, zlib.error):
            pass
    wanted = " or ".join(
        label for label in (shipped and f"md5 {shipped}", content and f"decompressed md5 {content}") if label
    )
    return f"checksum mismatch: md5 {actual}, expected {wanted}"


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    match = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value or "")
    if not match:
        return None
    return int(match.group(1)), None if match.group(3) == "*" else int(match.group(3))


def _fetch(url: str, part: Path, report: Callable[[int, int], None], timeout: float, *,
           allow_resume: bool = True) -> None:
    """Download ``url`` into ``part``, continuing a partial file with a Range request."""
    import urllib.error
    import urllib.request

    from topo._version import __version__

    offset = part.stat().st_size if (allow_resume and part.exists()) else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"topo/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # the partial file is as long as (or longer than) the file: start again
            return _fetch(url, part, report, timeout, allow_resume=False)
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _TransferError(str(reason)) from None
    with response:
        status = getattr(response, "status", None) or 200
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        content_range = _parse_content_range(response.headers.get("Content-Range"))
        if offset and status == 206 and content_range is not None and content_range[0] == offset:
            mode, done = "ab", offset
            total = content_range[1] if content_range[1] is not None else (offset + length if length else 0)
        else:
            # a 200 answer to a Range request is the whole file: restart the partial one
            mode, done, total = "wb", 0, (length or 0)
        try:
            with open(part, mode) as handle:
                report(done, total)
                while True:
                    chunk = response.read(_DOWNLOAD_CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
                    done += len(chunk)
                    report(done, max(total, done))
                handle.flush()
                os.fsync(handle.fileno())
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.filename is not None:
                raise  # a local problem (disk full, permissions), not the network's
            raise _TransferError(f"connection broken after {done:,} bytes ({exc})") from None
    if total and done != total:
        raise _TransferError(f"connection closed after {done:,} of {total:,} bytes")


def download(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: ProgressCallback | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a data set's official files into the data folder, verified.

    Each file is fetched into ``FILE.part`` (an interrupted download is resumed with an
    HTTP Range request; a server that answers with the whole file restarts it), checked
    against its md5 (or, for covtype, whose checksum is not published with it, by content:
    581,012 rows, 54 integer features, labels 1..7), and renamed into place atomically.
    Files already present and correct are kept.

    Parameters
    ----------
    name : str
        ``mnist``, ``fashion-mnist`` or ``covtype``. ``digits`` needs no download;
        EMNIST must be fetched by hand (the error says from where and to where).
    data_dir : path-like, optional
        The data folder (see :func:`data_home`); files go to its subfolder named like
        the data set.
    base_url : str, optional
        A folder URL to fetch the files from instead of the official location (a mirror,
        a test server). Else ``$TOPO_DATA_MIRROR`` if set: a root URL with one
        subfolder per data set (``$TOPO_DATA_MIRROR/mnist/...``).
    progress : callable, optional
        Called as ``progress(done_bytes, total_bytes)`` over all the files; the total
        grows as each file's size becomes known.
    checksums : mapping, optional
        File name -> md5 of the file as downloaded, replacing the built-in table for
        those files (for mirrors of other versions, and tests).
    timeout : float
        Seconds to wait for a server before giving up on it.

    Returns
    -------
    Path
        The folder holding the files (for ``digits``: scikit-learn's bundled data folder).

    Raises
    ------
    TopoError
        Unknown or manual-only data set, every URL failing (a partial file is kept for
        resuming), or a checksum mismatch (the download is deleted).

    Examples
    --------
    From a mirror in a local folder (``file://`` URLs work like ``http://`` ones), with
    the checksums of its stand-in files:

    >>> import gzip, hashlib, pathlib, tempfile
    >>> root_tmp = tempfile.TemporaryDirectory()
    >>> root = pathlib.Path(root_tmp.name)
    >>> (root / "mirror").mkdir()
    >>> checksums = {}
    >>> for name in DOWNLOAD_FILES["mnist"]:
    ...     payload = gzip.compress(name.encode())
    ...     _ = (root / "mirror" / name).write_bytes(payload)
    ...     checksums[name] = hashlib.md5(payload).hexdigest()
    >>> sizes = []
    >>> folder = download("mnist", data_dir=root / "data", base_url=(root / "mirror").as_uri(),
    ...                   checksums=checksums, progress=lambda done, total: sizes.append(total))
    >>> folder.relative_to(root).as_posix(), sorted(p.name for p in folder.iterdir())
    ('data/mnist', ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'])
    >>> sizes[-1] == sum(p.stat().st_size for p in folder.iterdir())
    True

    A file whose checksum is wrong is deleted, not kept:

    >>> (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    >>> download("mnist", data_dir=root / "data", base_url=(root / "mirror").as_uri(),
    ...          checksums=dict(checksums, **{"t10k-labels-idx1-ubyte.gz": "0" * 32}))
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...t10k-labels-idx1-ubyte.gz: checksum mismatch: md5 ..., expected md5 000...; the download from file://... was deleted
    >>> sorted(p.name for p in folder.iterdir())  # the three good files were kept, not fetched again
    ['t10k-images-idx3-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']
    >>> import shutil; shutil.rmtree(root)
    """
    key = canonical_name(name)
    if key == "digits":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "data"
    folder = data_home(data_dir) / dataset_folder(key)
    if key.startswith("emnist-"):
        raise TopoError(f"{key} cannot be downloaded by topo: " + emnist_instructions(key, folder))
    if key not in DOWNLOAD_FILES:
        raise TopoError(f"{key} has no download; downloadable: {', '.join(DOWNLOADABLE)}")  # pragma: no cover
    if base_url:
        bases = [base_url]
    elif os.environ.get("TOPO_DATA_MIRROR"):
        bases = [f"{os.environ['TOPO_DATA_MIRROR'].rstrip('/')}/{dataset_folder(key)}/"]
    else:
        bases = list(DOWNLOAD_URLS[key])
    bases = [b if b.endswith("/") else b + "/" for b in bases]
    checksums = dict(checksums or {})
    folder.mkdir(parents=True, exist_ok=True)
    finished_bytes = 0

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(finished_bytes + done, finished_bytes + total)

    for filename, table_value in DOWNLOAD_FILES[key].items():
        expected = (checksums[filename], None) if filename in checksums else table_value
        target = folder / filename
        if target.is_file() and _verify(target, expected, key) is None:
            finished_bytes += target.stat().st_size
            report(0, 0)
            continue
        part = folder / f"{filename}.part"
        failures = []
        for base in bases:
            url = base + filename
            try:
                _fetch(url, part, report, timeout)
                break
            except _TransferError as exc:
                failures.append(f"{url}: {exc}")
        else:
            kept = f"; the partial file {part} is kept and resumed next time" if part.exists() else ""
            raise TopoError(f"could not download {filename}: {'; '.join(failures)}{kept}")
        problem = _verify(part, expected, key)
        if problem is not None:
            part.unlink(missing_ok=True)
            raise TopoError(f"{problem}; the download from {url} was deleted", path=target)
        os.replace(part, target)
        finished_bytes += target.stat().st_size
    return folder

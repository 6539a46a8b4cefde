"""Audit many checkpoints at once: one row of connectivity figures per checkpoint.

:func:`find_checkpoints` walks files and folders and picks out everything that looks
like a checkpoint; :func:`audit_path` reads one (masks only) and measures it;
:func:`audit_paths` does that for many, in this process, in local processes or on a
Dask cluster (:func:`topo.parallel.map_jobs`). A checkpoint that cannot be read gets
a row with ``status="error"`` and the reason instead of stopping the audit.

What counts as one checkpoint
-----------------------------
- A file that a reader recognises (:func:`topo.formats.detect_format`).
- A file with a checkpoint-like suffix (:data:`CHECKPOINT_SUFFIXES`) that no reader
  recognises: it gets a row saying why it could not be read. Other unrecognised
  files are skipped silently.
- A folder that a reader recognises as one checkpoint (a Hugging Face model folder,
  a SET epoch folder); it is not descended into. A topo run folder is not one
  checkpoint: each checkpoint inside it is audited, in training order. Nor is a
  recognised folder that directly holds topo checkpoint files, or whose subfolders
  are themselves recognised (a reader may read a whole run as its last
  checkpoint): such a folder is walked, and each checkpoint in it audited.
- Files and folders whose names start with a dot are skipped (temporary files of
  interrupted atomic writes, caches).

Which layer's fan-in is fitted
------------------------------
``best_fit`` is the best of :func:`topo.analysis.fits.fit_fan_in` on the fan-in of
one layer: the layer with the most output neurons (the largest sample of fan-in
values) among those whose nonzero fan-in is not constant; ties go to the layer with
more connections, then the earlier one. Constant fan-in (a dense layer, a
fixed-fan-in sparse layer) has nothing to fit, so such a layer is used only when all
are constant, and ``best_fit`` is then ``"constant"``. One fit per checkpoint keeps
audits of hundreds of checkpoints fast; ``best_fit_layer`` names the layer used.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "AuditRow",
    "CHECKPOINT_SUFFIXES",
    "HUB_FRACTION",
    "audit_path",
    "audit_paths",
    "find_checkpoints",
]

#: Suffixes of files that are meant to be checkpoints: such a file gets a row even
#: when no reader recognises its content.
CHECKPOINT_SUFFIXES = (
    ".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".onnx", ".h5", ".hdf5", ".keras", ".npz", ".npy",
)

#: Share of each layer's output neurons, by fan-in, counted as hubs for ``hub_share``.
HUB_FRACTION = 0.1


@dataclass(frozen=True)
class AuditRow:
    """The connectivity figures of one checkpoint, or why it could not be read.

    Attributes
    ----------
    path : str
        The checkpoint file or folder.
    status : str
        ``"ok"``; ``"error"`` when it could not be read (see ``error``); ``"skipped"``
        when it was read but ``layers`` matched none of its layers.
    format : str or None
        The reader that read it, or recognised it before failing (a key of
        :data:`topo.formats.READERS`).
    epoch, step : int or None
        Where in training it was taken, when the file says.
    n_layers : int or None
        Number of layers audited.
    nnz, total : int or None
        Connections present, and possible (``out * in`` summed over layers).
    density : float or None
        ``nnz / total``.
    layer_density_mean, layer_density_max : float or None
        Mean and maximum of the per-layer densities.
    fan_in_cv_mean, fan_in_cv_max : float or None
        Mean and maximum of the per-layer fan-in coefficient of variation (layers
        without connections left out, as in :func:`topo.analysis.degree.degree_summary`).
    no_inputs, no_outputs : int or None
        Output neurons that receive nothing, and input neurons that feed nothing,
        summed over layers (as in :func:`~topo.analysis.degree.degree_summary`).
    best_fit : str or None
        Best-fitting fan-in distribution of ``best_fit_layer`` (see the module notes):
        a name from :func:`~topo.analysis.fits.fit_fan_in` (``"constant"`` when no layer's fan-in varies).
    best_fit_layer : str or None
        The layer whose fan-in was fitted.
    hub_share : float or None
        Share of all connections that go into hub neurons, the top
        :data:`HUB_FRACTION` of each layer's output neurons by fan-in, pooled over layers.
    warnings : tuple of str
        Warnings the reader attached (``topology.info["warnings"]``) and notes of the audit.
    error : str or None
        Why the checkpoint could not be read (one line).
    """

    path: str
    status: str
    format: str | None = None
    epoch: int | None = None
    step: int | None = None
    n_layers: int | None = None
    nnz: int | None = None
    total: int | None = None
    density: float | None = None
    layer_density_mean: float | None = None
    layer_density_max: float | None = None
    fan_in_cv_mean: float | None = None
    fan_in_cv_max: float | None = None
    no_inputs: int | None = None
    no_outputs: int | None = None
    best_fit: str | None = None
    best_fit_layer: str | None = None
    hub_share: float | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """Field -> value; ``warnings`` as a list."""
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out


# -- finding checkpoints ------------------------------------------------------------
def _sort_key(entry: Path) -> tuple:
    # a run's checkpoints in training order (end of epoch e after the steps inside e),
    # everything else by name
    from topo.checkpoint import parse_checkpoint_name

    parsed = parse_checkpoint_name(entry.name)
    if parsed is None:
        return (1, 0, 0, entry.name)
    epoch, step = parsed
    return (0, epoch, (1 << 62) if step is None else step, entry.name)


def _recognised_folder(folder: Path) -> bool:
    from topo.formats import detect_format

    try:
        return detect_format(folder) is not None
    except OSError:
        return False


def _is_unit_folder(folder: Path) -> bool:
    """A folder that a reader reads as one checkpoint.

    Not a topo run folder, not a folder that directly holds a topo checkpoint file
    (each of those is a whole network: the folder is a collection, e.g. a run's
    ``checkpoints/``), and not a folder whose own subfolders are recognised
    checkpoints (a reader may read a whole run, e.g. a SET network's epoch folders,
    as its last checkpoint; an audit wants each of them).
    """
    from topo.checkpoint import is_run_folder, is_topo_checkpoint

    if is_run_folder(folder) or not _recognised_folder(folder):
        return False
    try:
        children = [c for c in folder.iterdir() if not c.name.startswith(".")]
    except OSError:
        return True
    for child in children:
        if child.suffix == ".safetensors" and child.is_file() and is_topo_checkpoint(child):
            return False
    return not any(_recognised_folder(child) for child in children if child.is_dir())


def _wanted_file(path: Path) -> bool:
    from topo.formats import detect_format

    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    try:
        return detect_format(path) is not None
    except OSError:
        return False


def _walk(folder: Path, found: list[Path], seen: set[str]) -> None:
    try:
        real = os.path.realpath(folder)
    except OSError:
        real = str(folder)
    if real in seen:  # a symbolic link back up the tree
        return
    seen.add(real)
    try:
        entries = sorted(folder.iterdir(), key=_sort_key)
    except OSError:
        # an unreadable folder: audit_path says why in its row
        found.append(folder)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if _is_unit_folder(entry):
                found.append(entry)
            else:
                _walk(entry, found, seen)
        elif entry.is_file():
            if _wanted_file(entry):
                found.append(entry)
        elif entry.is_symlink() and entry.suffix.lower() in CHECKPOINT_SUFFIXES:
            found.append(entry)  # a broken link to a checkpoint: its row says so


def find_checkpoints(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every checkpoint under ``paths``, in order, without duplicates.

    Parameters
    ----------
    paths : iterable of path-like
        Files and folders. A file named here is always returned (if it is not a
        checkpoint its audit row says so). A folder that a reader recognises as one
        checkpoint is returned as it is; any other folder (a topo run folder
        included) is walked: see the module notes for what is picked up.

    Returns
    -------
    list of pathlib.Path
        Possibly empty when the folders hold no checkpoints.

    Raises
    ------
    TopoError
        If a path does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path) or not path.exists():
            raise TopoError("no such file or folder", path=path)
        if path.is_dir() and not _is_unit_folder(path):
            _walk(path, found, set())
        else:
            found.append(path)
    unique: list[Path] = []
    seen: set[str] = set()
    for path in found:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


# -- auditing one checkpoint ----------------------------------------------------------
def _message(exc: BaseException, path: Path) -> str:
    """One line: the error without a repeat of the row's own path."""
    text = str(exc).strip().splitlines()
    text = text[0] if text else type(exc).__name__
    prefix = f"{path}: "
    if isinstance(exc, TopoError) and exc.path == str(path) and text.startswith(prefix):
        text = text[len(prefix):]
    if not isinstance(exc, TopoError):
        text = f"{type(exc).__name__}: {text}"
    return text


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot even be opened, or None."""
    if not os.path.lexists(path):
        return "no such file or folder"
    if not path.exists():
        return "broken symbolic link"
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            return "cannot list folder (permission denied)"
        return None
    try:
        with open(path, "rb") as handle:
            first = handle.read(1)
    except OSError as exc:
        return f"cannot open ({exc.strerror or exc})"
    if not first:
        return "empty file (0 bytes)"
    return None


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _fit_layer(layers: Sequence[Any]) -> Any:
    """The layer whose fan-in is fitted: see the module notes."""
    best = None
    best_key = None
    for index, layer in enumerate(layers):
        positive = layer.fan_in[layer.fan_in > 0]  # fit_fan_in leaves zeros out
        varies = positive.size >= 2 and positive.min() != positive.max()
        key = (varies, layer.n_out, layer.nnz, -index)
        if best_key is None or key > best_key:
            best, best_key = layer, key
    return best


def _measure(topology: Any, path: Path, fmt: str | None, pattern: str | None) -> AuditRow:
    from topo.analysis.degree import layer_degree

    info = topology.info
    warnings = [str(w) for w in (info.get("warnings") or ())]
    common = dict(
        path=str(path),
        format=fmt or info.get("format"),
        epoch=None if info.get("epoch") is None else int(info["epoch"]),
        step=None if info.get("step") is None else int(info["step"]),
    )
    layers = list(topology)
    if pattern is not None:
        regex = re.compile(pattern)
        layers = [layer for layer in layers if regex.search(layer.name)]
        if not layers:
            return AuditRow(
                status="skipped", n_layers=0, warnings=tuple(warnings),
                error=f"no layer name matches {pattern!r}", **common,
            )
    degrees = [layer_degree(layer) for layer in layers]
    nnz = sum(d.nnz for d in degrees)
    total = sum(layer.size for layer in layers)
    densities = np.array([d.density for d in degrees], dtype=np.float64)
    cvs = np.array([d.fan_in_cv for d in degrees], dtype=np.float64)
    cvs = cvs[np.isfinite(cvs)]

    from topo.analysis.fits import fit_fan_in

    best_fit = best_fit_layer = None
    fit_layer = _fit_layer(layers)
    try:
        best_fit = str(fit_fan_in(fit_layer.fan_in).best)
        best_fit_layer = fit_layer.name
    except TopoError as exc:
        warnings.append(f"fan-in fit of {fit_layer.name!r} failed: {_message(exc, path)}")

    from topo.analysis.hubs import hub_indices

    into_hubs = 0
    for layer in layers:
        if layer.nnz:
            hubs = hub_indices(layer, fraction=HUB_FRACTION)
            into_hubs += int(layer.fan_in[np.asarray(hubs, dtype=np.int64)].sum())
    return AuditRow(
        status="ok",
        n_layers=len(layers),
        nnz=int(nnz),
        total=int(total),
        density=nnz / total if total else None,
        layer_density_mean=_finite_or_none(densities.mean()),
        layer_density_max=_finite_or_none(densities.max()),
        fan_in_cv_mean=float(cvs.mean()) if cvs.size else None,
        fan_in_cv_max=float(cvs.max()) if cvs.size else None,
        no_inputs=int(sum(d.no_inputs for d in degrees)),
        no_outputs=int(sum(d.no_outputs for d in degrees)),
        best_fit=best_fit,
        best_fit_layer=best_fit_layer,
        hub_share=into_hubs / nnz if nnz else None,
        warnings=tuple(warnings),
        **common,
    )


def audit_path(path: str | os.PathLike, *, layers: str | None = None) -> AuditRow:
    """Read one checkpoint (masks only) and measure it.

    Parameters
    ----------
    path : path-like
        A checkpoint file, or a folder that a reader reads as one checkpoint (a topo
        run folder gives its last checkpoint).
    layers : str, optional
        A regular expression; only layers whose names it matches (``re.search``)
        are audited.

    Returns
    -------
    AuditRow
        ``status="error"`` with the reason when the checkpoint cannot be read; this
        function does not raise for unreadable, corrupt or refused files.

    Raises
    ------
    TopoError
        If ``layers`` is not a valid regular expression.
    """
    from topo.formats import detect_format, load

    path = Path(path)
    if layers is not None:
        _compile(layers)
    reason = _unreadable(path)
    if reason is not None:
        return AuditRow(path=str(path), status="error", error=reason)
    fmt = None
    try:
        fmt = detect_format(path)
        topology = load(path, format=fmt, weights=False)
        return _measure(topology, path, fmt, layers)
    except Exception as exc:  # one bad file must not stop an audit of thousands
        return AuditRow(path=str(path), status="error", format=fmt, error=_message(exc, path))


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise TopoError(f"--layers: not a valid regular expression {pattern!r} ({exc})") from None


def audit_paths(
    paths: Iterable[str | os.PathLike],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    layers: str | None = None,
) -> list[AuditRow]:
    """Audit every checkpoint under ``paths``: one row each, in the order found.

    Parameters
    ----------
    paths : iterable of path-like
        Files and folders, walked by :func:`find_checkpoints`.
    workers : int
        Local processes to read with (1: this process).
    scheduler : str, optional
        Address of a running Dask distributed scheduler to read on instead
        (needs the ``dask`` extra).
    progress : callable, optional
        ``progress(done, total)`` after each checkpoint.
    layers : str, optional
        Regular expression selecting layers by name (see :func:`audit_path`).

    Returns
    -------
    list of AuditRow
        Empty when no checkpoint was found.

    Raises
    ------
    TopoError
        If a path does not exist, ``layers`` is not a valid regular expression, or
        the Dask scheduler cannot be reached.
    """
    if layers is not None:
        _compile(layers)
    found = find_checkpoints(paths)
    if not found:
        return []
    from topo.parallel import map_jobs

    job = functools.partial(audit_path, layers=layers)
    return map_jobs(job, [str(p) for p in found], workers=workers, scheduler=scheduler, progress=progress)

"""Audit many checkpoints at once: one row of connectivity figures per checkpoint.

:func:`survey` walks files and folders and decides, for everything it finds, whether
it is audited, skipped or refused; :func:`audit_path` reads one checkpoint (masks
only) and measures it; :func:`audit_paths` does that for everything found, in this
process, in local processes or on a Dask cluster (:func:`topo.parallel.map_jobs`).
Nothing found disappears: every row has a status, ``ok``, ``refused`` (with the
reason: unreadable, corrupt, unsafe, a link out of the folder) or ``skipped`` (with
the reason: not a checkpoint, hidden), and one bad file never stops the audit.

What counts as one checkpoint
-----------------------------
- A file named on the command line: always audited (if it is not a checkpoint, its
  row says so).
- Under a folder, a file that a reader recognises (:func:`topo.formats.detect_format`)
  or that has a checkpoint suffix (:data:`CHECKPOINT_SUFFIXES`): audited, so a
  corrupt checkpoint gets a ``refused`` row with the reader's reason. Any other file
  gets a ``skipped`` row: not a checkpoint.
- A model folder: a folder that a reader reads as one model (a Hugging Face folder
  with ``config.json``, an index JSON or ``model.safetensors``; a Keras or Orbax
  folder; a SET epoch folder). It is one row and is not descended into. Any other
  folder is walked, and every file in it audited on its own: a folder holding
  ``model_a.safetensors``, ``model_b.safetensors`` and ``other.pt`` gives three rows.
  A recognised folder that directly holds topo checkpoint files, or whose
  subfolders are themselves recognised (a reader may read a whole run as its last
  checkpoint), is walked too.
- A topo run folder: each checkpoint in it is a row, in training order; the run's
  bookkeeping (``run.json``, ``metrics.jsonl``, ``state/``, its lock file) is part of
  the run and not listed.
- Files and folders whose names start with a dot (temporary files of interrupted
  atomic writes, caches, ``.git``) get a ``skipped`` row and are not read.

Symbolic links
--------------
A link that resolves outside the folder named on the command line is refused (a row
saying where it leads) and not read, and so is a model folder holding such a link,
unless ``follow_symlinks=True`` (``--follow-symlinks``). Links inside the folder are
followed; a link back into a folder already searched is skipped; a broken link is
refused.

Sparsity patterns
-----------------
Each ``ok`` row carries, per layer, the pattern of its mask (dense, unstructured,
N:M such as 2:4, or block; see :mod:`topo.analysis.patterns`), whether a 2:4 kernel
could run it, and the sparsity the file requested where it records one
(``topology.info["requested_sparsity"]``) against the sparsity achieved.

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

import contextlib
import functools
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.values import finite_float

__all__ = [
    "AuditRow",
    "CHECKPOINT_SUFFIXES",
    "HUB_FRACTION",
    "Entry",
    "audit_entries",
    "audit_path",
    "audit_paths",
    "find_checkpoints",
    "survey",
]

#: Suffixes of files that are meant to be checkpoints: such a file gets a row even
#: when no reader recognises its content.
CHECKPOINT_SUFFIXES = (
    ".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".onnx", ".h5", ".hdf5", ".keras", ".npz", ".npy",
)

#: The readers' switch for following links out of a folder (see topo.formats._policy).
_FOLLOW_LINKS_VARIABLE = "TOPO_FOLLOW_LINKS"

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
        ``"ok"``; ``"refused"`` when it could not or must not be read (see ``error``);
        ``"skipped"`` when it is not a checkpoint, or was read but ``layers`` matched
        none of its layers (see ``error``).
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
    sparsity : float or None
        ``1 - density``: the sparsity achieved.
    requested_sparsity : float or None
        The sparsity the file asked for (``topology.info["requested_sparsity"]``, see
        :func:`topo.analysis.patterns.sparsity_report`), when it records one.
    pattern : str or None
        The layers' sparsity patterns in one phrase (``"2:4 x3, dense"``), see
        :func:`topo.analysis.patterns.pattern_summary`.
    layers_2_4 : int or None
        Layers that a 2:4 semi-structured kernel could run as they are.
    layers : tuple of dict
        Per audited layer: ``name``, ``n_out``, ``n_in``, ``nnz``, ``density``,
        ``sparsity``, ``requested_sparsity``, and the fields of
        :class:`topo.analysis.patterns.LayerPattern` (``pattern``,
        ``pattern_compliance``, ``n``, ``m``, ``block``, ``compliance_2_4``, ``runs_2_4``).
    warnings : tuple of str
        Warnings the reader attached (``topology.info["warnings"]``) and notes of the audit.
    error : str or None
        Why it was refused or skipped (one line).

    Examples
    --------
    >>> row = AuditRow(path="models/a.pt", status="refused", error="not a torch file")
    >>> row.ok, row.as_dict()["error"], row.as_dict()["warnings"]
    (False, 'not a torch file', [])
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
    sparsity: float | None = None
    requested_sparsity: float | None = None
    pattern: str | None = None
    layers_2_4: int | None = None
    layers: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """Field -> value; ``warnings`` as a list."""
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        out["layers"] = [dict(layer) for layer in self.layers]
        return out


# -- finding checkpoints ------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One thing found under an audited path, and what the audit does with it.

    Attributes
    ----------
    path : pathlib.Path
    action : str
        ``"audit"`` (read and measured: a row ``ok`` or ``refused``), ``"skip"`` (a
        row ``skipped`` with ``reason``) or ``"refuse"`` (a row ``refused`` with
        ``reason``, without reading it).
    reason : str or None

    Examples
    --------
    >>> entry = Entry(Path("models/.partial.pt"), "skip", "hidden file (name starts with a dot)")
    >>> entry.action, entry.reason
    ('skip', 'hidden file (name starts with a dot)')
    """

    path: Path
    action: str
    reason: str | None = None


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
    """A model folder: one that a reader reads as one checkpoint.

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


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def _escaping_link(folder: Path, root: str) -> Path | None:
    """A symbolic link directly inside a model folder that resolves outside ``root``, or None."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return None
    for child in sorted(children):
        if child.is_symlink() and not _inside(os.path.realpath(child), root):
            return child
    return None


#: What a topo run folder holds besides its checkpoints: part of the run, not listed
#: (the writer's lock file, see :mod:`topo.runlock`, too).
_RUN_BOOKKEEPING = {"run.json", "metrics.jsonl", "state", ".topo.lock"}


class _Walk:
    """Walks folders, deciding for every entry: audit, skip (why) or refuse (why)."""

    def __init__(self, follow_symlinks: bool) -> None:
        self.follow_symlinks = follow_symlinks
        self.found: list[Entry] = []
        self.seen: set[str] = set()

    def folder(self, folder: Path, root: str) -> None:
        from topo.checkpoint import is_run_folder

        real = os.path.realpath(folder)
        if real in self.seen:  # a symbolic link back into a folder already searched
            self.found.append(Entry(folder, "skip", "symbolic link to a folder already searched"))
            return
        self.seen.add(real)
        try:
            entries = sorted(folder.iterdir(), key=_sort_key)
        except OSError:
            # an unreadable folder: audit_path says why in its row
            self.found.append(Entry(folder, "audit"))
            return
        run = is_run_folder(folder)
        for entry in entries:
            if run and entry.name in _RUN_BOOKKEEPING:
                continue
            self.entry(entry, root)

    def entry(self, entry: Path, root: str) -> None:
        if entry.name.startswith("."):
            kind = "folder" if entry.is_dir() else "file"
            self.found.append(Entry(entry, "skip", f"hidden {kind} (name starts with a dot)"))
            return
        if entry.is_symlink():
            if not entry.exists():
                self.found.append(Entry(entry, "refuse", "broken symbolic link"))
                return
            target = os.path.realpath(entry)
            if not self.follow_symlinks and not _inside(target, root):
                self.found.append(Entry(
                    entry, "refuse",
                    f"symbolic link to {target}, outside the audited folder (follow_symlinks=True follows it)",
                ))
                return
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError:
            is_dir = is_file = False
        if is_dir:
            if _is_unit_folder(entry):
                escaping = None if self.follow_symlinks else _escaping_link(entry, root)
                if escaping is not None:
                    self.found.append(Entry(
                        entry, "refuse",
                        f"{escaping.name} is a symbolic link to {os.path.realpath(escaping)}, outside the "
                        "audited folder (follow_symlinks=True follows it)",
                    ))
                else:
                    self.found.append(Entry(entry, "audit"))
            else:
                self.folder(entry, root)
        elif is_file:
            if _wanted_file(entry):
                self.found.append(Entry(entry, "audit"))
            else:
                self.found.append(Entry(entry, "skip", "not a checkpoint: no reader recognises its content"))
        else:
            self.found.append(Entry(entry, "skip", "not a checkpoint: not a regular file"))


def survey(paths: Iterable[str | os.PathLike], *, follow_symlinks: bool = False) -> list[Entry]:
    """Everything under ``paths``, each with what the audit does with it, in order.

    Parameters
    ----------
    paths : iterable of path-like
        Files and folders. A file named here is always audited (if it is not a
        checkpoint, its row says so). A model folder (see the module notes) is
        audited as one checkpoint; any other folder is walked, and every entry in
        it is audited, skipped or refused.
    follow_symlinks : bool
        Follow symbolic links that lead out of the folder being walked; by default
        such a link is refused (a row saying where it leads), not read, unless the
        environment sets ``TOPO_FOLLOW_LINKS=1`` (the readers' own switch).

    Returns
    -------
    list of Entry
        No path twice.

    Raises
    ------
    TopoError
        If a path does not exist.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> mask = np.zeros((4, 6))
    >>> mask[0, :4] = mask[1:, 0] = 1
    >>> net = Topology.from_masks([mask, np.ones((2, 4))], names=["fc1", "out"])
    >>> _ = save_checkpoint(net, folder / "a.safetensors", epoch=3)
    >>> _ = (folder / "broken.pt").write_bytes(b"not a checkpoint")
    >>> _ = (folder / "notes.txt").write_text("hello")
    >>> _ = (folder / ".partial.safetensors").write_bytes(b"")
    >>> for entry in survey([folder]):
    ...     print(entry.path.name, entry.action, entry.reason)
    .partial.safetensors skip hidden file (name starts with a dot)
    a.safetensors audit None
    broken.pt audit None
    notes.txt skip not a checkpoint: no reader recognises its content
    >>> survey([folder / "missing.pt"])
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: .../missing.pt: no such file or folder
    >>> tmp.cleanup()
    """
    from topo.formats._policy import follow_links

    walk = _Walk(follow_symlinks or follow_links())
    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path) or not path.exists():
            raise TopoError("no such file or folder", path=path)
        if path.is_dir() and not _is_unit_folder(path):
            walk.folder(path, os.path.realpath(path))
        else:
            walk.found.append(Entry(path, "audit"))
    unique: list[Entry] = []
    seen: set[str] = set()
    for entry in walk.found:
        key = os.path.abspath(entry.path)
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def find_checkpoints(paths: Iterable[str | os.PathLike], *, follow_symlinks: bool = False) -> list[Path]:
    """The paths under ``paths`` that the audit reads (see :func:`survey`), in order.

    Files named in ``paths`` are always included; under folders, files that a reader
    recognises or that have a checkpoint suffix, and model folders.

    Parameters
    ----------
    paths : iterable of path-like
    follow_symlinks : bool
        See :func:`survey`.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    TopoError
        If a path does not exist.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> mask = np.zeros((4, 6))
    >>> mask[0, :4] = mask[1:, 0] = 1
    >>> net = Topology.from_masks([mask, np.ones((2, 4))], names=["fc1", "out"])
    >>> _ = save_checkpoint(net, folder / "a.safetensors", epoch=3)
    >>> _ = (folder / "broken.pt").write_bytes(b"not a checkpoint")
    >>> _ = (folder / "notes.txt").write_text("hello")
    >>> [path.name for path in find_checkpoints([folder])]
    ['a.safetensors', 'broken.pt']
    >>> tmp.cleanup()
    """
    return [entry.path for entry in survey(paths, follow_symlinks=follow_symlinks) if entry.action == "audit"]


# -- auditing one checkpoint ----------------------------------------------------------
def _message(exc: BaseException, path: Path) -> str:
    """One line: the error without a repeat of the row's own path."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
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


@dataclass(frozen=True)
class _LayerFacts:
    """What an audit keeps of one layer once it is measured: never its mask, so a large
    model is read one layer at a time (see :func:`topo.formats.scan`)."""

    name: str
    n_out: int
    size: int
    nnz: int
    degree: Any
    fan_in: np.ndarray
    into_hubs: int
    pattern: Any


def _layer_facts(layer: Any) -> _LayerFacts:
    from topo.analysis.degree import layer_degree
    from topo.analysis.hubs import hub_indices
    from topo.analysis.patterns import layer_pattern

    fan_in = layer.fan_in
    into_hubs = 0
    if layer.nnz:
        hubs = hub_indices(layer, fraction=HUB_FRACTION)
        into_hubs = int(fan_in[np.asarray(hubs, dtype=np.int64)].sum())
    return _LayerFacts(
        name=layer.name, n_out=layer.n_out, size=layer.size, nnz=layer.nnz, degree=layer_degree(layer),
        fan_in=fan_in, into_hubs=into_hubs, pattern=layer_pattern(layer),
    )


def _measure(topology: Any, facts: Mapping[str, _LayerFacts | None], path: Path, fmt: str | None,
             layer_regex: str | None, include_dense: bool = False) -> AuditRow:
    """The audit row of ``topology`` from its layers' facts (None for layers not selected)."""
    info = topology.info
    warnings = [str(w) for w in (info.get("warnings") or ())]
    common: dict[str, Any] = dict(
        path=str(path),
        format=fmt or info.get("format"),
        epoch=None if info.get("epoch") is None else int(info["epoch"]),
        step=None if info.get("step") is None else int(info["step"]),
    )
    found = [facts.get(name) for name in topology.names]
    layers = [layer for layer in found if layer is not None]
    if layer_regex is not None and not layers:
        return AuditRow(
            status="skipped", n_layers=0, warnings=tuple(warnings),
            error=f"no layer name matches {layer_regex!r}", **common,
        )
    degrees = [layer.degree for layer in layers]
    nnz = sum(d.nnz for d in degrees)
    total = sum(layer.size for layer in layers)
    densities = np.array([d.density for d in degrees], dtype=np.float64)
    from topo.analysis.degree import is_dense, summary_layers

    # over the sparse layers: a dense layer's fan-ins tie (CV 0) and would pull the mean down
    kept = summary_layers([is_dense(d) for d in degrees], include_dense=include_dense)
    cvs = np.array([degrees[i].fan_in_cv for i in kept], dtype=np.float64)
    cvs = cvs[np.isfinite(cvs)]

    from topo.analysis.fits import fit_fan_in

    best_fit = best_fit_layer = None
    fit_layer = _fit_layer(layers)
    try:
        best_fit = str(fit_fan_in(fit_layer.fan_in).best)
        best_fit_layer = fit_layer.name
    except TopoError as exc:
        warnings.append(f"fan-in fit of {fit_layer.name!r} failed: {_message(exc, path)}")

    into_hubs = sum(layer.into_hubs for layer in layers)
    from topo.analysis.patterns import pattern_summary, sparsity_report

    patterns = [layer.pattern for layer in layers]
    # requested sparsity depends on names and sizes only: the layers read as shapes will do
    report = sparsity_report(topology)
    requested = {entry.name: entry.requested for entry in report.layers}
    per_layer = []
    for layer, found in zip(layers, patterns):
        data = found.as_dict()
        data["sparsity"] = 1.0 - found.density
        data["requested_sparsity"] = requested.get(layer.name)
        per_layer.append(data)
    return AuditRow(
        status="ok",
        n_layers=len(layers),
        nnz=int(nnz),
        total=int(total),
        density=nnz / total if total else None,
        layer_density_mean=finite_float(densities.mean()),
        layer_density_max=finite_float(densities.max()),
        fan_in_cv_mean=float(cvs.mean()) if cvs.size else None,
        fan_in_cv_max=float(cvs.max()) if cvs.size else None,
        no_inputs=int(sum(d.no_inputs for d in degrees)),
        no_outputs=int(sum(d.no_outputs for d in degrees)),
        best_fit=best_fit,
        best_fit_layer=best_fit_layer,
        hub_share=into_hubs / nnz if nnz else None,
        sparsity=1.0 - nnz / total if total else None,
        requested_sparsity=report.requested,
        pattern=pattern_summary(patterns),
        layers_2_4=sum(p.runs_2_4 for p in patterns),
        layers=tuple(per_layer),
        warnings=tuple(warnings),
        **common,
    )


def audit_path(
    path: str | os.PathLike, *, layers: str | None = None, follow_symlinks: bool = False, include_dense: bool = False
) -> AuditRow:
    """Read one checkpoint (masks only, one layer at a time where the reader can) and measure it.

    Parameters
    ----------
    path : path-like
        A checkpoint file, or a folder that a reader reads as one checkpoint (a topo
        run folder gives its last checkpoint).
    layers : str, optional
        A regular expression; only layers whose names it matches (``re.search``)
        are audited.
    follow_symlinks : bool
        Let the reader follow links out of a model folder (as ``TOPO_FOLLOW_LINKS=1`` does).
    include_dense : bool
        Let the fan-in CV mean and maximum count dense layers (by default they are over
        the sparse layers; over all when every layer is dense).

    Returns
    -------
    AuditRow
        ``status="refused"`` with the reason when the checkpoint cannot be read; this
        function does not raise for unreadable, corrupt or refused files.

    Raises
    ------
    TopoError
        If ``layers`` is not a valid regular expression.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> mask = np.zeros((4, 6))
    >>> mask[0, :4] = mask[1:, 0] = 1
    >>> net = Topology.from_masks([mask, np.ones((2, 4))], names=["fc1", "out"])
    >>> _ = save_checkpoint(net, folder / "a.safetensors", epoch=3)
    >>> _ = (folder / "broken.pt").write_bytes(b"not a checkpoint")
    >>> _ = (folder / "notes.txt").write_text("hello")
    >>> row = audit_path(folder / "a.safetensors")
    >>> row.status, row.format, row.epoch, row.nnz, row.total, row.density
    ('ok', 'topo', 3, 15, 32, 0.46875)
    >>> row.best_fit_layer, round(row.fan_in_cv_mean, 3), row.no_outputs
    ('fc1', 0.742, 2)
    >>> audit_path(folder / "a.safetensors", layers="^fc").n_layers
    1
    >>> broken = audit_path(folder / "broken.pt")
    >>> broken.status, broken.error
    ('refused', 'not a torch file (neither a torch zip archive nor a legacy torch.save pickle)')
    >>> tmp.cleanup()
    """
    from topo.formats import detect_format, scan

    path = Path(path)
    selected = None if layers is None else _compile(layers)
    reason = _unreadable(path)
    if reason is not None:
        return AuditRow(path=str(path), status="refused", error=reason)
    fmt = None

    def measure(layer: Any) -> _LayerFacts | None:
        return _layer_facts(layer) if selected is None or selected.search(layer.name) else None

    try:
        with _links_followed(follow_symlinks):
            fmt = detect_format(path)
            # layer by layer: a large model's masks are measured one at a time, never all held
            topology, facts = scan(path, measure, format=fmt)
        return _measure(topology, facts, path, fmt, layers, include_dense)
    except Exception as exc:  # one bad file must not stop an audit of thousands
        return AuditRow(path=str(path), status="refused", format=fmt, error=_message(exc, path))


@contextlib.contextmanager
def _links_followed(follow: bool):
    """Let the readers' path rule (:func:`topo.formats._policy.confine`) follow links
    out of a model folder too, for one read, when the audit was asked to follow them."""
    if not follow:
        yield
        return
    previous = os.environ.get(_FOLLOW_LINKS_VARIABLE)
    os.environ[_FOLLOW_LINKS_VARIABLE] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_FOLLOW_LINKS_VARIABLE, None)
        else:
            os.environ[_FOLLOW_LINKS_VARIABLE] = previous


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise TopoError(f"layer name pattern {pattern!r} is not a valid regular expression ({exc})") from None


def audit_paths(
    paths: Iterable[str | os.PathLike],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    layers: str | None = None,
    follow_symlinks: bool = False,
    include_dense: bool = False,
) -> list[AuditRow]:
    """Audit everything under ``paths``: one row per entry of :func:`survey`, in its order.

    Parameters
    ----------
    paths : iterable of path-like
        Files and folders, walked by :func:`survey`.
    workers : int
        Local processes to read with (1: this process).
    scheduler : str, optional
        Address of a running Dask distributed scheduler to read on instead
        (needs the ``dask`` extra).
    progress : callable, optional
        ``progress(done, total)`` after each checkpoint read.
    layers : str, optional
        Regular expression selecting layers by name (see :func:`audit_path`).
    follow_symlinks : bool
        Follow symbolic links out of the audited folders (see :func:`survey`).
    include_dense : bool
        See :func:`audit_path`.

    Returns
    -------
    list of AuditRow
        ``ok`` and ``refused`` rows for what was read, ``skipped`` and ``refused``
        rows (with the reason) for what was not; empty when the paths hold nothing.

    Raises
    ------
    TopoError
        If a path does not exist, ``layers`` is not a valid regular expression, or
        the Dask scheduler cannot be reached.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> mask = np.zeros((4, 6))
    >>> mask[0, :4] = mask[1:, 0] = 1
    >>> net = Topology.from_masks([mask, np.ones((2, 4))], names=["fc1", "out"])
    >>> _ = save_checkpoint(net, folder / "a.safetensors", epoch=3)
    >>> _ = (folder / "broken.pt").write_bytes(b"not a checkpoint")
    >>> _ = (folder / "notes.txt").write_text("hello")
    >>> for row in audit_paths([folder]):
    ...     print(Path(row.path).name, row.status, row.density)
    a.safetensors ok 0.46875
    broken.pt refused None
    notes.txt skipped None
    >>> tmp.cleanup()
    """
    if layers is not None:
        _compile(layers)
    return audit_entries(
        survey(paths, follow_symlinks=follow_symlinks),
        workers=workers, scheduler=scheduler, progress=progress, layers=layers, follow_symlinks=follow_symlinks,
        include_dense=include_dense,
    )


def audit_entries(
    entries: Sequence[Entry],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    layers: str | None = None,
    follow_symlinks: bool = False,
    include_dense: bool = False,
) -> list[AuditRow]:
    """One row per entry of :func:`survey`: the ``audit`` entries read, the others as they were decided.

    Parameters
    ----------
    entries : sequence of Entry
        As :func:`survey` returns them.
    workers, scheduler, progress, layers, follow_symlinks, include_dense
        See :func:`audit_paths`.

    Returns
    -------
    list of AuditRow
        One per entry, in order.

    Raises
    ------
    TopoError
        If ``layers`` is not a valid regular expression, or the Dask scheduler cannot
        be reached.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> mask = np.zeros((4, 6))
    >>> mask[0, :4] = mask[1:, 0] = 1
    >>> net = Topology.from_masks([mask, np.ones((2, 4))], names=["fc1", "out"])
    >>> _ = save_checkpoint(net, folder / "a.safetensors", epoch=3)
    >>> _ = (folder / "broken.pt").write_bytes(b"not a checkpoint")
    >>> _ = (folder / "notes.txt").write_text("hello")
    >>> entries = survey([folder])
    >>> [(entry.path.name, entry.action) for entry in entries]
    [('a.safetensors', 'audit'), ('broken.pt', 'audit'), ('notes.txt', 'skip')]
    >>> [row.status for row in audit_entries(entries)]
    ['ok', 'refused', 'skipped']
    >>> tmp.cleanup()
    """
    if layers is not None:
        _compile(layers)
    to_read = [str(entry.path) for entry in entries if entry.action == "audit"]
    read: list[AuditRow] = []
    if to_read:
        from topo.parallel import map_jobs

        job = functools.partial(audit_path, layers=layers, follow_symlinks=follow_symlinks, include_dense=include_dense)
        read = map_jobs(job, to_read, workers=workers, scheduler=scheduler, progress=progress)
    rows = iter(read)
    status = {"skip": "skipped", "refuse": "refused"}
    return [
        next(rows) if entry.action == "audit" else AuditRow(
            path=str(entry.path), status=status[entry.action], error=entry.reason
        )
        for entry in entries
    ]

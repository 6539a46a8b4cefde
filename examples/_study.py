"""Helpers the study scripts in examples/ share: the command line, data folder, tables, CSV, run names, statistics.

Not a study itself. The scripts import it with the examples folder on ``sys.path``
(they are run as ``python examples/<study>.py`` and loaded by file in the tests).
Training a configuration into a run folder, reusing or resuming it, is
:func:`topo.training.trainer.train_or_resume`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "REPO",
    "RESULTS",
    "study_parser",
    "study_mode",
    "refuse_smoke_writes",
    "study_folders",
    "study_command",
    "progress_log",
    "output_folder",
    "smoke_refusal",
    "data_folder",
    "load_datasets",
    "markdown_table",
    "write_csv",
    "run_digest",
    "pct",
    "welch_p",
    "cohens_d",
]

REPO = Path(__file__).resolve().parents[1]
#: The committed results of the studies' full (or stated) runs; smoke runs never write here.
RESULTS = REPO / "examples" / "results"


# -- the command line ----------------------------------------------------------------------
def study_parser(
    doc: str,
    *,
    smoke: str,
    quick: str | None = None,
    data_dir: str | None = None,
    out: str,
    runs: str | None = None,
    runs_flag: str = "--runs",
    device: str | None = None,
    path_type: Callable[[str], Any] | None = Path,
    description: str = "line",
) -> argparse.ArgumentParser:
    """The options every study takes: ``--quick`` / ``--smoke``, ``--data-dir``, ``--out``, ``--runs``.

    Parameters
    ----------
    doc : str
        The study's docstring; its first line (``description="line"``) or first
        paragraph (``"paragraph"``) describes it in ``--help``.
    smoke, quick : str
        Help of ``--smoke`` and ``--quick`` (mutually exclusive); no ``--quick`` when None.
    data_dir, out, runs : str
        Help of ``--data-dir``, ``--out`` and ``--runs``; no such option when None.
    runs_flag : str
        The flag of ``--runs`` (``"--runs-dir"`` in the studies that named it so); its
        value is ``args.runs`` either way.
    device : str, optional
        Help of ``--device`` (``cpu``, ``cuda`` or ``auto``; default ``cpu``); no such
        option when None.
    path_type : callable or None
        What ``--out`` and ``--runs`` are parsed into (None: kept as text).

    Returns
    -------
    argparse.ArgumentParser
        To which a study adds its own options.
    """
    first = doc.split("\n\n")[0] if description == "paragraph" else doc.splitlines()[0]
    parser = argparse.ArgumentParser(description=first)
    modes = parser.add_mutually_exclusive_group()
    if quick is not None:
        modes.add_argument("--quick", action="store_true", help=quick)
    modes.add_argument("--smoke", action="store_true", help=smoke)
    if data_dir is not None:
        parser.add_argument("--data-dir", default=None, help=data_dir)
    parser.add_argument("--out", type=path_type, default=None, help=out)
    if runs is not None:
        parser.add_argument(runs_flag, dest="runs", type=path_type, default=None, help=runs,
                            metavar=runs_flag.lstrip("-").replace("-", "_").upper())
    if device is not None:
        parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help=device)
    return parser

#: seconds of one MNIST epoch of the 300-100 MLP on one thread, for the studies' cost notes: the median over
#: the static-profile study's full-mode runs on this machine (1.30 s MNIST, 1.29 s Fashion-MNIST)
MNIST_EPOCH_SECONDS = 1.3


def study_mode(args: argparse.Namespace) -> str:
    """``"smoke"``, ``"quick"`` or ``"full"``, as the options say."""
    return "smoke" if args.smoke else "quick" if getattr(args, "quick", False) else "full"


def refuse_smoke_writes(study: str, smoke: bool, folders: Sequence[str | Path | None]) -> bool:
    """Print :func:`smoke_refusal`'s reason on stderr and return True when there is one.

    A study's ``main`` then returns 2 (a usage error).
    """
    refusal = smoke_refusal(study, smoke, folders)
    if refusal:
        print(refusal, file=sys.stderr)
        return True
    return False


def study_folders(study: str, args: argparse.Namespace, mode: str, *,
                  runs_per_mode: bool = True) -> tuple[Path, Path] | None:
    """Where a study writes its results (``--out``) and trains (``--runs``).

    Parameters
    ----------
    study : str
    args : argparse.Namespace
        From :func:`study_parser` (``out``, ``runs``, ``smoke``).
    mode : str
    runs_per_mode : bool
        The default runs folder is ``OUT/runs/MODE``; False: ``OUT/runs`` (the studies
        whose finished runs already live there, which must keep being reused).

    Returns
    -------
    (Path, Path) or None
        The results folder (:func:`output_folder`) and the runs folder (``--runs``,
        else the default); None when a ``--smoke`` run was asked to write inside
        ``examples/results/`` (the reason printed; ``main`` then returns 2).
    """
    if refuse_smoke_writes(study, args.smoke, [args.out, args.runs]):
        return None
    out = output_folder(study, args.out, smoke=args.smoke)
    if args.runs:
        return out, Path(args.runs)
    return out, out / "runs" / mode if runs_per_mode else out / "runs"


def study_command(study: str, argv: Sequence[str]) -> str:
    """The command line that ran a study, as its README quotes it: ``python examples/STUDY.py ARGS``."""
    import shlex

    return shlex.join(["python", f"examples/{study}.py", *argv])


def progress_log(study: str | None = None, *, width: int = 6,
                 counts: dict[str, int] | None = None) -> Callable[[str], None]:
    """A ``log(message)`` that prints a study's progress, flushed at once.

    With ``study``, every line reads ``STUDY [  12.3s] message`` (seconds since this
    call, right-aligned in ``width``); without, the message alone. With ``counts``, a
    message that reports a run as ``: trained,`` / ``: reused,`` / ``: resumed,``
    counts it there.
    """
    import time

    started = time.perf_counter()

    def log(message: str) -> None:
        if counts is not None:
            for how in ("trained", "reused", "resumed"):
                if f": {how}," in message:
                    counts[how] = counts.get(how, 0) + 1
        if study is None:
            print(message, flush=True)
        else:
            print(f"{study} [{time.perf_counter() - started:{width}.1f}s] {message}", flush=True)

    return log


# -- output folders -----------------------------------------------------------------------
def output_folder(study: str, option: str | Path | None, *, smoke: bool) -> Path:
    """Where a study writes its README, CSVs and figures.

    Parameters
    ----------
    study : str
        The study's name (its script's stem).
    option : str, Path or None
        The script's ``--out``; used as given when set.
    smoke : bool
        True for ``--smoke``: without ``--out`` a fresh temporary folder, so a smoke
        run never overwrites the committed results in ``examples/results/<study>``.

    Returns
    -------
    Path
        ``--out``; else a new temporary folder (smoke); else ``examples/results/<study>``.
    """
    if option is not None:
        return Path(option)
    if smoke:
        return Path(tempfile.mkdtemp(prefix=f"topo-{study}-smoke-"))
    return RESULTS / study


def smoke_refusal(study: str, smoke: bool, folders: Sequence[str | Path | None]) -> str | None:
    """Why a run must not go ahead: a ``--smoke`` run asked to write inside ``examples/results/``.

    Parameters
    ----------
    study : str
        The study's name, to start the message with.
    smoke : bool
        Whether the run is a ``--smoke`` run (other modes may write anywhere).
    folders : sequence of str, Path or None
        The folders the run would write to (results, training runs); None entries are ignored.

    Returns
    -------
    str or None
        A one-line message naming the folder, or None when the run may go ahead.
    """
    if not smoke:
        return None
    results = RESULTS.resolve()
    for folder in folders:
        if folder is None:
            continue
        path = Path(folder).expanduser().resolve()
        if path == results or results in path.parents:
            return (f"{study}: --smoke never writes into {RESULTS.relative_to(REPO)}/ (asked for {folder}); "
                    "choose another --out, or leave it out for a temporary folder")
    return None


# -- data ---------------------------------------------------------------------------------
def data_folder(option: str | None, *, existing: bool = True) -> Path | None:
    """--data-dir, else $TOPO_DATA_DIR, else ../shared/data beside the repository.

    Parameters
    ----------
    option : str or None
        The script's ``--data-dir``.
    existing : bool
        True: the first of the three that is a folder, else None (the data sets'
        own default). False: the first that is given, whether it exists or not (a
        missing folder then makes the data sets fail to load, and be skipped).
    """
    for candidate in (option, os.environ.get("TOPO_DATA_DIR"), REPO.parent / "shared" / "data"):
        if not candidate:
            continue
        path = Path(candidate).expanduser()
        if not existing or path.is_dir():
            return path
    return None


def load_datasets(names: Sequence[str], data_dir: Path | None, study: str) -> tuple[dict, dict]:
    """Each data set once: ``({name: Dataset}, {name: why it was skipped})``; skips are printed."""
    from topo.errors import TopoError
    from topo.training.data import load_dataset

    loaded, skipped = {}, {}
    for name in dict.fromkeys(names):
        try:
            loaded[name] = load_dataset(name, data_dir=data_dir)
        except TopoError as error:
            skipped[name] = str(error).splitlines()[0]
            print(f"{study}: skipping {name}: {skipped[name]}", flush=True)
    return loaded, skipped


def run_digest(config, data) -> str:
    """8 hex digits of the configuration (less where/how it trains) and the data set's row counts."""
    from topo.training.config import config_identity

    key = config_identity(config)
    key["rows"] = [len(data.y_train), len(data.y_val), len(data.y_test)]
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


# -- tables -------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, cell: Callable[[Any], str] = _cell) -> str:
    """A markdown table; by default floats as 4 significant digits ("n/a" if not finite), ``|`` escaped.

    ``cell=str`` writes the cells as they are (for rows already formatted).
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str] | None = None, *,
              float_format: str | None = ".6g") -> None:
    """Write ``rows`` as CSV, atomically.

    Parameters
    ----------
    path : Path
    rows : sequence of dict
    columns : sequence of str, optional
        The columns, in order; keys of a row that are not among them are left out.
        Default: every key of every row, in order of first appearance.
    float_format : str or None
        Format of float cells; None writes them as Python does. None cells are empty.
    """
    from topo.checkpoint import atomic_write_text

    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]

    def value(v: Any) -> Any:
        return format(v, float_format) if float_format and isinstance(v, float) else v

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: value(v) for k, v in row.items() if k in writer.fieldnames})
    atomic_write_text(path, buffer.getvalue())


def pct(value: float) -> str:
    """A signed difference of fractions in percent: ``+1.23%`` ("n/a" if not finite)."""
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.2f}%"


# -- statistics ---------------------------------------------------------------------------
def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of Welch's t-test of a against b; NaN with fewer than 2 values on a side."""
    from scipy import stats

    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    with np.errstate(all="ignore"):
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of mean a - mean b from Welch's t-test (the test of
    :func:`welch_p`); NaNs with fewer than 2 values on a side.

    >>> [round(v, 3) for v in welch_interval([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])]
    [-1.267, 3.267]
    """
    from scipy import stats

    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return math.nan, math.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical values: scipy warns, the interval is still right
        low, high = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence_level=level)
    return float(low), float(high)


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a - mean b) / the pooled SD sqrt((var a + var b) / 2); NaN with fewer than 2 a side or no spread."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(y) < 2:
        return math.nan
    pooled = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2.0)
    return float(x.mean() - y.mean()) / pooled if pooled > 0 else math.nan

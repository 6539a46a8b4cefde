"""Figures of runs and checkpoints: compute the data with topo.analysis, draw with topo.plot.

:mod:`topo.plot` draws from plain data; the functions here are the thin glue that
turns a run folder or a few checkpoints into that data with the analysis functions
(:mod:`topo.analysis.drift`, :mod:`~topo.analysis.fits`, :mod:`~topo.analysis.hubs`,
:mod:`~topo.analysis.distance`, :mod:`~topo.analysis.gradients`) and hands it over.
``topo plot`` and :mod:`topo.report` both use them.

Functions that need a run's checkpoints accept either the run folder or the
checkpoints already loaded (a list of :class:`~topo.topology.Topology`, in training
order), so that the report loads each run once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from topo.errors import TopoError, shorten_list
from topo.runs import parse_epochs, run_checkpoints  # re-exported: figures read runs through topo.runs
from topo.topology import Topology

__all__ = [
    "FIGURE_NAMES",
    "default_figure_path",
    "parse_epochs",
    "select_evenly",
    "select_layers",
    "run_checkpoints",
    "checkpoint_label",
    "checkpoint_epochs",
    "fanin_figure",
    "drift_figure",
    "degree_figure",
    "distance_matrix",
    "distance_figure",
    "hubs_figure",
    "gradients_figure",
    "density_figure",
    "exploration_figure",
    "curves_figure",
]

#: The figures ``topo plot`` draws, by subcommand name.
FIGURE_NAMES = ("fanin", "drift", "degree", "distance", "hubs", "gradients", "density", "exploration", "curves")

Progress = Callable[[int, int], None]


# -- where and what ------------------------------------------------------------------------
def default_figure_path(source: str | os.PathLike | None, name: str) -> Path:
    """``RUN/figures/NAME.png`` when ``source`` is a run folder, else ``./NAME.png``."""
    from topo.checkpoint import is_run_folder

    if source is not None and is_run_folder(source):
        return Path(source) / "figures" / f"{name}.png"
    return Path(f"{name}.png")


def select_evenly(n: int, k: int | None) -> list[int]:
    """Up to ``k`` indices of ``range(n)`` spread evenly, first and last included."""
    if k is None or n <= k:
        return list(range(n))
    if k <= 1:
        return [n - 1]
    return sorted(set(int(round(v)) for v in np.linspace(0, n - 1, k)))


def select_layers(topology: Topology, layers: Sequence[str] | None) -> list[str]:
    """The layer names to draw: ``layers`` (checked against the topology) or all of them.

    Raises
    ------
    TopoError
        If a name is not a layer of ``topology``.
    """
    names = topology.names
    if not layers:
        return names
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise TopoError(f"no layer named {shorten_list(map(repr, unknown))}; layers are: {shorten_list(names)}")
    return [name for name in names if name in layers]


def checkpoint_label(topology: Topology, index: int | None = None) -> str:
    """A short label: the epoch (``"12"``; ``"12@4500"`` for a checkpoint inside an epoch),
    else the file name, else ``"#index"``."""
    epoch, step = topology.epoch, topology.step
    if epoch is not None:
        name = Path(str(topology.info.get("path", ""))).name
        inside = step is not None and "_step_" in name
        return f"{epoch}@{step}" if inside else str(epoch)
    if topology.info.get("path"):
        return Path(str(topology.info["path"])).stem
    return f"#{index}" if index is not None else "?"


def checkpoint_epochs(topologies: Sequence[Topology]) -> list[float]:
    """x positions of checkpoints: their epochs where every one has one, else their positions."""
    epochs = [t.epoch for t in topologies]
    if all(e is not None for e in epochs):
        return [float(e) for e in epochs]
    return [float(i) for i in range(len(topologies))]


def _topologies(source: Any, *, epochs=None, progress=None) -> list[Topology]:
    if isinstance(source, Topology):
        return [source]
    if isinstance(source, (str, os.PathLike)):
        return run_checkpoints(source, epochs=epochs, progress=progress)
    topologies = list(source)
    if not topologies:
        raise TopoError("no checkpoints to plot")
    return topologies


def _single(source: Any) -> Topology:
    if isinstance(source, Topology):
        return source
    from topo.runs import load_topology

    return load_topology(source)


# -- figures of one run -----------------------------------------------------------------
def fanin_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    epochs: Sequence[int] | None = None,
    max_rows: int | None = 12,
    log_x: bool = False,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: Progress | None = None,
):
    """Ridge plot of a run's fan-in histograms over epochs; see :func:`topo.plot.fanin_ridge`.

    Neurons a method removed (no input and no output: SRigL's ablation, chain removal)
    are left out of the histograms and their CVs; a layer that lost some is titled
    "<layer> (present neurons)".

    Parameters
    ----------
    source : run folder or sequence of Topology
    layers : sequence of str, optional
        Layers to draw (default all).
    epochs : sequence of int, optional
        Epochs to draw (default: up to ``max_rows`` spread evenly, first and last included).
    max_rows : int, optional
        The most rows when ``epochs`` is not given.
    log_x : bool
        Logarithmic fan-in axis.
    title, path, dpi
        See :func:`topo.plot.fanin_ridge`.
    progress : callable, optional
        Reports loading the checkpoints.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from topo.plot import fanin_ridge

    topologies = _topologies(source, epochs=epochs, progress=progress)
    if epochs is None:
        topologies = [topologies[i] for i in select_evenly(len(topologies), max_rows)]
    from topo.analysis.exploration import present_neurons

    names = select_layers(topologies[-1], layers)
    # neurons a method removed (no input, no output) are left out of the histograms
    present = [dict(zip(t.names, present_neurons(t))) for t in topologies]
    fan_ins = {}
    for name in names:
        rows = [t[name].fan_in[p[name]] for t, p in zip(topologies, present)]
        shrunk = any(int(p[name].sum()) < t[name].n_out for t, p in zip(topologies, present))
        fan_ins[f"{name} (present neurons)" if shrunk else name] = rows
    labels = [checkpoint_label(t, i) for i, t in enumerate(topologies)]
    labels = [int(v) if v.isdigit() else v for v in labels]
    return fanin_ridge(fan_ins, labels, log_x=log_x, title=title, path=path, dpi=dpi)


def drift_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    equilibrium: Any = None,
    last_k: int = 3,
    tolerance: float = 0.05,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: Progress | None = None,
):
    """Fan-in CV, W1 distance to the equilibrium and mask turnover over a run.

    Parameters
    ----------
    source : run folder, sequence of Topology, or a DriftResult
        A DriftResult (from :func:`topo.analysis.drift.drift`) is drawn as it is.
    layers : sequence of str, optional
    equilibrium, last_k, tolerance
        Passed to :func:`topo.analysis.drift.drift`; an equilibrium given as a path (a
        run folder or a profile file) is read with :func:`topo.runs.load_equilibrium`.
    title, path, dpi
        See :func:`topo.plot.drift_overview`.
    progress : callable, optional

    Returns
    -------
    matplotlib.figure.Figure
        Three axes: fan-in CV, drift, turnover.
    """
    from topo.analysis.drift import DriftResult, drift
    from topo.plot import drift_overview

    if isinstance(source, DriftResult):
        result = source
    else:
        from topo.runs import load_equilibrium

        topologies = _topologies(source, progress=progress)
        reference, described = load_equilibrium(equilibrium, last_k=last_k)
        result = drift(
            topologies, equilibrium=reference, equilibrium_source=described, last_k=last_k, tolerance=tolerance
        )
    if layers:
        unknown = [name for name in layers if name not in result.layers]
        if unknown:
            raise TopoError(f"no layer named {shorten_list(map(repr, unknown))}; layers are: {shorten_list(result.layers)}")
    names = [name for name in result.layers if not layers or name in layers]
    columns = [result.layers.index(name) for name in names]
    epochs = result.epochs
    x = [float(e) for e in epochs] if all(e is not None for e in epochs) else [float(i) for i in range(result.n_checkpoints)]
    converged = {}
    for name, column in zip(names, columns):
        at = result.convergence[column]
        converged[name] = None if at is None else x[at]
    return drift_overview(
        x,
        {name: result.cv[:, c] for name, c in zip(names, columns)},
        distances={name: result.wasserstein[:, c] for name, c in zip(names, columns)},
        turnover={name: result.turnover[:, c] for name, c in zip(names, columns)},
        turnover_epochs=x[1:],
        tolerance=result.tolerance,
        converged=converged,
        title=title,
        path=path,
        dpi=dpi,
    )


def hubs_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    fraction: float = 0.1,
    rule: str = "top",
    z: float = 2.0,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: Progress | None = None,
):
    """Overlap of every checkpoint's hubs with the final hubs; see
    :func:`topo.analysis.hubs.hub_persistence` and :func:`topo.plot.hub_persistence_curves`."""
    from topo.analysis.hubs import hub_persistence
    from topo.plot import hub_persistence_curves

    topologies = _topologies(source, progress=progress)
    names = select_layers(topologies[-1], layers)
    persistence = np.asarray(hub_persistence(topologies, fraction=fraction, rule=rule, z=z))
    columns = [topologies[-1].names.index(name) for name in names]
    return hub_persistence_curves(
        checkpoint_epochs(topologies), persistence[:, columns], names,
        fraction=fraction if rule == "top" else None, path=path, dpi=dpi,
    )


def density_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: Progress | None = None,
):
    """Layer densities over a run's checkpoints; see :func:`topo.plot.density_curves`."""
    from topo.plot import density_curves

    topologies = _topologies(source, progress=progress)
    names = select_layers(topologies[-1], layers)
    densities = {name: [t[name].density if name in t.names else np.nan for t in topologies] for name in names}
    overall = [t.density for t in topologies]
    return density_curves(checkpoint_epochs(topologies), densities, overall=overall, path=path, dpi=dpi)


def exploration_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: Progress | None = None,
):
    """Exploration rate and active width over a run; see :func:`topo.plot.exploration_curves`.

    Parameters
    ----------
    source : run folder, sequence of Topology, or an ExplorationResult
        An ExplorationResult (from :func:`topo.analysis.exploration.exploration`) is
        drawn as it is.
    layers : sequence of str, optional
    path, dpi, progress
        As for the other figures.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from topo.analysis.exploration import ExplorationResult, exploration
    from topo.plot import exploration_curves

    result = source if isinstance(source, ExplorationResult) else exploration(_topologies(source, progress=progress))
    if layers:
        unknown = [name for name in layers if name not in result.layers]
        if unknown:
            raise TopoError(f"no layer named {shorten_list(map(repr, unknown))}; layers are: {shorten_list(result.layers)}")
    names = [name for name in result.layers if not layers or name in layers]
    columns = [result.layers.index(name) for name in names]
    epochs = result.epochs
    x = [float(e) for e in epochs] if all(e is not None for e in epochs) else [float(i) for i in range(len(epochs))]
    return exploration_curves(
        x,
        {name: result.layer_rate[:, c] for name, c in zip(names, columns)},
        overall=result.rate,
        active_share={name: result.active_width[:, c] / max(result.width[c], 1) for name, c in zip(names, columns)},
        path=path,
        dpi=dpi,
    )


# -- figures of one checkpoint -----------------------------------------------------------
def degree_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    kind: str = "ccdf",
    fit: bool = True,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """A checkpoint's fan-in distributions on log-log axes with the fits of
    :func:`topo.analysis.fits.fit_fan_in`; see :func:`topo.plot.degree_distribution`.

    ``source`` is a Topology, a checkpoint file or a run folder (its last checkpoint).
    """
    from topo.analysis.fits import fit_fan_in
    from topo.plot import degree_distribution

    topology = _single(source)
    names = select_layers(topology, layers)
    fan_ins = {name: topology[name].fan_in for name in names}
    fits = {name: fit_fan_in(values) for name, values in fan_ins.items()} if fit else None
    where = f"epoch {topology.epoch}" if topology.epoch is not None else None
    return degree_distribution(fan_ins, fits, kind=kind, title=where and f"Fan-in distribution, {where}", path=path, dpi=dpi)


def gradients_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    fraction: float = 0.1,
    stat: str = "grad_mean",
    path: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Per-neuron gradient against fan-in, with the gradient concentration and the Spearman
    correlation (:mod:`topo.analysis.gradients`) on each panel.

    ``source`` is a Topology, a checkpoint file or a run folder (its last checkpoint).

    Raises
    ------
    TopoError
        If no chosen layer carries the gradient statistic.
    """
    from topo.analysis.gradients import gradient_concentration, hierarchy_strength
    from topo.plot import gradient_vs_fanin

    topology = _single(source)
    names = [name for name in select_layers(topology, layers) if stat in topology[name].stats]
    if not names:
        raise TopoError(
            f"no layer has the {stat!r} statistic: the checkpoint has no gradient statistics (topo train writes them)",
            path=topology.info.get("path"),
        )
    layers_ = [topology[name] for name in names]
    where = f"epoch {topology.epoch}" if topology.epoch is not None else None
    return gradient_vs_fanin(
        {layer.name: layer.fan_in for layer in layers_},
        {layer.name: np.asarray(layer.stats[stat], dtype=np.float64) for layer in layers_},
        concentration={layer.name: gradient_concentration(layer, fraction=fraction, stat=stat) for layer in layers_},
        spearman={layer.name: hierarchy_strength(layer, stat=stat) for layer in layers_},
        title=where and f"Gradient against fan-in, {where}",
        path=path,
        dpi=dpi,
    )


# -- distances between checkpoints --------------------------------------------------------
def distance_matrix(
    items: Sequence[Any],
    *,
    match_output: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[str]]:
    """NNSTD between every pair of ``items`` and a short label for each.

    Parameters
    ----------
    items : sequence of Topology or path
        Checkpoints (files, or run folders standing for their last checkpoint). A single
        run folder stands for all its epoch checkpoints.
    match_output, workers, scheduler, progress
        Passed to :func:`topo.analysis.distance.nnstd_matrix`.

    Returns
    -------
    (numpy.ndarray, list of str)

    Raises
    ------
    TopoError
        If fewer than two checkpoints are given.
    """
    from topo.analysis.distance import nnstd_matrix
    from topo.checkpoint import is_run_folder, list_checkpoints

    items = list(items)
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)) and is_run_folder(items[0]):
        run = Path(items[0])
        items = list_checkpoints(run, include_steps=False) or list_checkpoints(run)
        labels = [p.stem for p in items]
    else:
        labels = [_item_label(item, i) for i, item in enumerate(items)]
    if len(items) < 2:
        raise TopoError("a distance matrix needs at least two checkpoints")
    from topo.runs import load_masks

    matrix = nnstd_matrix(
        items, load=load_masks, match_output=match_output, workers=workers, scheduler=scheduler, progress=progress
    )
    return np.asarray(matrix, dtype=np.float64), _unique(labels)


def _item_label(item: Any, index: int) -> str:
    if isinstance(item, Topology):
        return checkpoint_label(item, index)
    path = Path(item)
    if path.is_dir():
        return path.name
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}/{path.stem}"
    return path.stem


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def distance_figure(
    items: Sequence[Any] | None = None,
    *,
    matrix: Any = None,
    labels: Sequence[str] | None = None,
    style: str = "heatmap",
    method: str = "average",
    match_output: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: Progress | None = None,
):
    """NNSTD between checkpoints as a heatmap or a clustermap.

    Parameters
    ----------
    items : sequence of Topology or path, optional
        The checkpoints; see :func:`distance_matrix`. Not needed when ``matrix`` is given.
    matrix, labels : optional
        An NNSTD matrix already computed, and its labels.
    style : {"heatmap", "clustermap"}
    method : str
        Linkage method of the clustermap.
    match_output, workers, scheduler, progress
        See :func:`distance_matrix`.
    path, dpi
        See :func:`topo.plot.nnstd_heatmap`.

    Raises
    ------
    TopoError
        If ``style`` is unknown or there are fewer than two checkpoints.
    """
    from topo.plot import nnstd_clustermap, nnstd_heatmap

    if style not in ("heatmap", "clustermap"):
        raise TopoError(f"unknown distance figure style {style!r}; use heatmap or clustermap")
    if matrix is None:
        if items is None:
            raise TopoError("give checkpoints or a distance matrix")
        matrix, labels = distance_matrix(
            items, match_output=match_output, workers=workers, scheduler=scheduler, progress=progress
        )
    if style == "clustermap":
        return nnstd_clustermap(matrix, labels, method=method, path=path, dpi=dpi)
    return nnstd_heatmap(matrix, labels, path=path, dpi=dpi)


# -- training curves ----------------------------------------------------------------------
def _run_name(run: str | os.PathLike) -> str:
    return Path(os.path.abspath(run)).name


def curves_figure(
    runs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Loss and accuracy from the runs' ``metrics.jsonl``; see :func:`topo.plot.training_curves`.

    Raises
    ------
    TopoError
        If a run is not a run folder or none has metrics.
    """
    from topo.checkpoint import is_run_folder, read_metrics
    from topo.plot import training_curves

    if isinstance(runs, (str, os.PathLike)):
        runs = [runs]
    runs = list(runs)
    records: dict[str, list[dict]] = {}
    for run in runs:
        if not Path(run).exists():
            raise TopoError("no such run folder", path=run)
        if not is_run_folder(run):
            raise TopoError("not a topo run folder (no run.json and no checkpoints/)", path=run)
        records[_unique(list(records) + [_run_name(run)])[-1]] = read_metrics(run)
    if not any(records.values()):
        raise TopoError("no metrics recorded (metrics.jsonl is missing or empty)", path=runs[0] if len(runs) == 1 else None)
    data = records if len(records) > 1 else next(iter(records.values()))
    return training_curves(data, title=title, path=path, dpi=dpi)

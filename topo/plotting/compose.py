"""Composing figures from runs and checkpoints: compute the data, hand it to a ``draw_*`` module.

The ``draw_*`` modules of :mod:`topo.plotting` draw from plain data and know nothing
of runs; the functions here are the glue that turns a run folder or a few checkpoints
into that data with the analysis functions (:mod:`topo.analysis.drift`,
:mod:`~topo.analysis.fits`, :mod:`~topo.analysis.hubs`, :mod:`~topo.analysis.distance`,
:mod:`~topo.analysis.gradients`) and names what is drawn (:mod:`topo.plotting.labels`).
``topo plot`` and :mod:`topo.report` both use them.

Functions that need a run's checkpoints accept either the run folder or the
checkpoints already loaded (a list of :class:`~topo.topology.Topology`, in training
order), so that the report loads each run once.

A dense layer (every possible connection present) has one fan-in value shared by all
its neurons: its histogram is a solid block, its fits mean nothing and it has no hubs.
The fan-in, degree, gradient and hub figures therefore draw it as a note
(``dense="note"``), leave it out (``"omit"``) or draw it anyway (``"draw"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from topo.analysis.degree import is_dense  # re-exported: one definition of a dense layer
from topo.errors import TopoError, shorten_list
from topo.plotting.labels import Labels, checkpoint_epochs, checkpoint_label, run_epoch_labels, shortest_run_names
from topo.progress import ProgressCallback
from topo.runs import parse_epochs, run_checkpoints  # re-exported: figures read runs through topo.runs
from topo.topology import Layer, Topology

__all__ = [
    "FIGURE_NAMES",
    "default_figure_path",
    "parse_epochs",
    "select_evenly",
    "select_layers",
    "run_checkpoints",
    "DENSE_CHOICES",
    "is_dense",
    "dense_note",
    "fanin_figure",
    "drift_figure",
    "degree_figure",
    "distance_labels",
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


#: What the fan-in, degree and gradient figures do with a dense layer.
DENSE_CHOICES = ("note", "omit", "draw")


def dense_note(layer: Layer) -> str:
    """The short note drawn for a dense layer instead of its histogram: ``"dense: all 10×100 connections"``.

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> dense_note(Layer.from_mask("out", np.ones((10, 100))))
    'dense: all 10×100 connections'
    """
    return f"dense: all {layer.n_out}×{layer.n_in} connections"


def _dense_layers(topologies: Sequence[Topology], names: Sequence[str], dense: str) -> dict[str, str]:
    """Layer name -> note, for the layers dense in every one of ``topologies`` (none for ``dense="draw"``)."""
    if dense not in DENSE_CHOICES:
        raise TopoError(f"unknown dense-layer handling {dense!r}; use {', '.join(DENSE_CHOICES)}")
    if dense == "draw":
        return {}
    return {
        name: dense_note(topologies[-1][name])
        for name in names
        if all(name in t.names and is_dense(t[name]) for t in topologies)
    }


# -- where and what ------------------------------------------------------------------------
def _kept(names: list[str], notes: dict[str, str], dense: str) -> list[str]:
    """The layers to draw: all of ``names``, less the dense ones when they are to be left out."""
    if dense != "omit":
        return names
    kept = [name for name in names if name not in notes]
    if not kept:
        raise TopoError(f"every layer drawn is dense ({', '.join(names)}): no fan-in distribution to show")
    return kept


def default_figure_path(source: str | os.PathLike | None, name: str) -> Path:
    """``RUN/figures/NAME.png`` when ``source`` is a run folder, else ``./NAME.png``.

    Parameters
    ----------
    source : path-like or None
        What the figure is drawn from (a run folder, a checkpoint, nothing).
    name : str
        The figure's name (one of :data:`FIGURE_NAMES`).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from topo.checkpoint import write_run_config
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_run_config(Path(tmp) / "run", {"method": "rigl"})
    ...     print(default_figure_path(Path(tmp) / "run", "fanin").relative_to(tmp))
    run/figures/fanin.png
    >>> default_figure_path(None, "distance")
    PosixPath('distance.png')
    """
    from topo.runs import is_run

    if source is not None and is_run(source):
        return Path(source) / "figures" / f"{name}.png"
    return Path(f"{name}.png")


def select_evenly(n: int, k: int | None) -> list[int]:
    """Up to ``k`` indices of ``range(n)`` spread evenly, first and last included.

    Parameters
    ----------
    n : int
        How many there are.
    k : int or None
        The most to keep (None: all; 1: the last only).

    Returns
    -------
    list of int
        Sorted, without repeats.

    Examples
    --------
    >>> select_evenly(10, 4), select_evenly(3, 5), select_evenly(10, 1)
    ([0, 3, 6, 9], [0, 1, 2], [9])
    """
    if k is None or n <= k:
        return list(range(n))
    if k <= 1:
        return [n - 1]
    return sorted(set(int(round(v)) for v in np.linspace(0, n - 1, k)))


def select_layers(topology: Topology, layers: Sequence[str] | None) -> list[str]:
    """The layer names to draw: ``layers`` (checked against the topology) or all of them.

    Parameters
    ----------
    topology : Topology
    layers : sequence of str or None

    Returns
    -------
    list of str
        In the topology's order.

    Raises
    ------
    TopoError
        If a name is not a layer of ``topology``.

    Examples
    --------
    >>> import numpy as np
    >>> net = Topology.from_masks([np.eye(3), np.ones((2, 3))], names=["fc1", "out"])
    >>> select_layers(net, None), select_layers(net, ["out"])
    (['fc1', 'out'], ['out'])
    >>> select_layers(net, ["fc9"])
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: no layer named 'fc9'; layers are: fc1, out
    """
    names = topology.names
    if not layers:
        return names
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise TopoError(f"no layer named {shorten_list(map(repr, unknown))}; layers are: {shorten_list(names)}")
    return [name for name in names if name in layers]


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
    dense: str = "note",
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: ProgressCallback | None = None,
):
    """Ridge plot of a run's fan-in histograms over epochs; see :func:`topo.plotting.fanin_ridge`.

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
    dense : {"note", "omit", "draw"}
        A layer dense at every checkpoint drawn is shown as a note
        (``"dense: all 10×100 connections"``), left out, or drawn like the others.
    title, path, dpi
        See :func:`topo.plotting.fanin_ridge`.
    progress : callable, optional
        Reports loading the checkpoints.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TopoError
        If a layer or epoch is not in the run, or ``dense="omit"`` leaves no layer.

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> [ax.get_title() for ax in fanin_figure(run).axes]
    ['fc1', 'out']
    >>> [ax.get_title() for ax in fanin_figure(run, dense="omit").axes]
    ['fc1']
    """
    from topo.plotting.draw_fanin import fanin_ridge

    topologies = _topologies(source, epochs=epochs, progress=progress)
    if epochs is None:
        topologies = [topologies[i] for i in select_evenly(len(topologies), max_rows)]
    from topo.analysis.exploration import present_neurons

    names = select_layers(topologies[-1], layers)
    notes = _dense_layers(topologies, names, dense)
    names = _kept(names, notes, dense)
    # neurons a method removed (no input, no output) are left out of the histograms
    present = [dict(zip(t.names, present_neurons(t))) for t in topologies]
    fan_ins = {}
    for name in names:
        rows = [t[name].fan_in[p[name]] for t, p in zip(topologies, present)]
        shrunk = any(int(p[name].sum()) < t[name].n_out for t, p in zip(topologies, present))
        fan_ins[f"{name} (present neurons)" if shrunk else name] = rows
    labels: list[Any] = [checkpoint_label(t, i) for i, t in enumerate(topologies)]
    labels = [int(v) if v.isdigit() else v for v in labels]
    return fanin_ridge(fan_ins, labels, log_x=log_x, notes=notes, title=title, path=path, dpi=dpi)


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
    progress: ProgressCallback | None = None,
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
        See :func:`topo.plotting.drift_overview`.
    progress : callable, optional

    Returns
    -------
    matplotlib.figure.Figure
        Three axes: fan-in CV, drift, turnover.

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> [ax.get_title() for ax in drift_figure(run).axes]
    ['Fan-in CV per layer', 'Drift toward equilibrium', 'Mask turnover between checkpoints']
    """
    from topo.analysis.drift import DriftResult, drift
    from topo.plotting.draw_drift import drift_overview

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
    x = [float(e) for e in epochs if e is not None] if all(e is not None for e in epochs) else [float(i) for i in range(result.n_checkpoints)]
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
    dense: str = "note",
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: ProgressCallback | None = None,
):
    """Overlap of every checkpoint's hubs with the final hubs; see
    :func:`topo.analysis.hubs.hub_persistence` and :func:`topo.plotting.hub_persistence_curves`.

    A layer dense at every checkpoint has no hubs (all fan-ins tie), so it gets no line:
    ``dense="note"`` says so on the figure, ``"omit"`` leaves it out silently and
    ``"draw"`` draws its line anyway.

    Parameters
    ----------
    source : run folder or sequence of Topology
    layers : sequence of str, optional
    fraction, rule, z
        Passed to :func:`topo.analysis.hubs.hub_persistence`.
    dense : {"note", "omit", "draw"}
    path, dpi, progress
        As for the other figures.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TopoError
        If a layer is not in the run, or every layer drawn is dense.

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> fig = hubs_figure(run)
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['fc1']
    """
    from topo.analysis.hubs import hub_persistence
    from topo.plotting.draw_hubs import hub_persistence_curves

    topologies = _topologies(source, progress=progress)
    names = select_layers(topologies[-1], layers)
    notes = _dense_layers(topologies, names, dense)
    names = [name for name in names if name not in notes]
    if not names:
        raise TopoError("every layer drawn is dense: no hubs to follow")
    persistence = np.asarray(hub_persistence(topologies, fraction=fraction, rule=rule, z=z))
    columns = [topologies[-1].names.index(name) for name in names]
    return hub_persistence_curves(
        checkpoint_epochs(topologies), persistence[:, columns], names,
        fraction=fraction if rule == "top" else None, notes=notes if dense == "note" else None, path=path, dpi=dpi,
    )


def density_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
    progress: ProgressCallback | None = None,
):
    """Layer densities over a run's checkpoints; see :func:`topo.plotting.density_curves`.

    Parameters
    ----------
    source : run folder or sequence of Topology
    layers : sequence of str, optional
    path, dpi, progress
        As for the other figures.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> fig = density_figure(run)
    >>> [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    ['fc1', 'out', 'network']
    """
    from topo.plotting.draw_connectivity import density_curves

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
    progress: ProgressCallback | None = None,
):
    """Exploration rate and active width over a run; see :func:`topo.plotting.exploration_curves`.

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

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> [ax.get_ylabel() for ax in exploration_figure(run).axes]
    ['exploration rate', 'active width / width']
    """
    from topo.analysis.exploration import ExplorationResult, exploration
    from topo.plotting.draw_connectivity import exploration_curves

    result = source if isinstance(source, ExplorationResult) else exploration(_topologies(source, progress=progress))
    if layers:
        unknown = [name for name in layers if name not in result.layers]
        if unknown:
            raise TopoError(f"no layer named {shorten_list(map(repr, unknown))}; layers are: {shorten_list(result.layers)}")
    names = [name for name in result.layers if not layers or name in layers]
    columns = [result.layers.index(name) for name in names]
    epochs = result.epochs
    x = [float(e) for e in epochs if e is not None] if all(e is not None for e in epochs) else [float(i) for i in range(len(epochs))]
    return exploration_curves(
        x,
        {name: result.layer_rate[:, c] for name, c in zip(names, columns)},
        overall=result.rate,
        overall_label="network" if len(result.counted) == len(result.layers) else "network (sparse layers)",
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
    dense: str = "note",
    path: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """A checkpoint's fan-in distributions on log-log axes with the fits of
    :func:`topo.analysis.fits.fit_fan_in`; see :func:`topo.plotting.degree_distribution`.

    ``source`` is a Topology, a checkpoint file or a run folder (its last checkpoint).
    A dense layer (one fan-in shared by all neurons, nothing to fit) follows ``dense``:
    ``"note"``, ``"omit"`` or ``"draw"``, as in :func:`fanin_figure`.

    Parameters
    ----------
    source : Topology or path
    layers : sequence of str, optional
    kind : {"ccdf", "pmf"}
    fit : bool
        Draw the fitted distributions.
    dense : {"note", "omit", "draw"}
    path, dpi
        As for the other figures.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> fig = degree_figure(run[-1])
    >>> [ax.get_title() for ax in fig.axes], fig.get_suptitle()
    (['fc1', 'out'], 'Fan-in distribution, epoch 10')
    """
    from topo.analysis.fits import fit_fan_in
    from topo.plotting.draw_degree import degree_distribution

    topology = _single(source)
    names = select_layers(topology, layers)
    notes = _dense_layers([topology], names, dense)
    names = _kept(names, notes, dense)
    fan_ins = {name: topology[name].fan_in for name in names}
    fits = {name: fit_fan_in(values) for name, values in fan_ins.items() if name not in notes} if fit else None
    where = f"epoch {topology.epoch}" if topology.epoch is not None else None
    return degree_distribution(fan_ins, fits, kind=kind, notes=notes, title=where and f"Fan-in distribution, {where}",
                               path=path, dpi=dpi)


def gradients_figure(
    source: Any,
    *,
    layers: Sequence[str] | None = None,
    fraction: float = 0.1,
    stat: str = "grad_mean",
    dense: str = "note",
    path: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Per-neuron gradient against fan-in, with the gradient concentration and the Spearman
    correlation (:mod:`topo.analysis.gradients`) on each panel.

    ``source`` is a Topology, a checkpoint file or a run folder (its last checkpoint).
    A dense layer (every neuron at the same fan-in, so no hubs and no correlation)
    follows ``dense``: ``"note"``, ``"omit"`` or ``"draw"``, as in :func:`fanin_figure`.

    Parameters
    ----------
    source : Topology or path
    layers : sequence of str, optional
    fraction : float
        Share of neurons counted as hubs for the gradient concentration.
    stat : str
        The per-neuron statistic drawn.
    dense : {"note", "omit", "draw"}
    path, dpi
        As for the other figures.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TopoError
        If no chosen layer carries the gradient statistic.

    Examples
    --------
    >>> import numpy as np
    >>> fc1 = Layer.from_mask("fc1", np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]]),
    ...                       stats={"grad_mean": np.array([0.3, 0.05, 0.1])})
    >>> fig = gradients_figure(Topology([fc1], info={"epoch": 4}))
    >>> fig.axes[0].get_xlabel(), fig.get_suptitle()
    ('fan-in', 'Gradient against fan-in, epoch 4')
    >>> gradients_figure(Topology.from_masks([np.eye(2)]))
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: no layer has the 'grad_mean' statistic: the checkpoint has no gradient statistics (topo train writes them)
    """
    from topo.analysis.gradients import gradient_concentration, hierarchy_strength
    from topo.plotting.draw_hubs import gradient_vs_fanin

    topology = _single(source)
    names = [name for name in select_layers(topology, layers) if stat in topology[name].stats]
    if not names:
        raise TopoError(
            f"no layer has the {stat!r} statistic: the checkpoint has no gradient statistics (topo train writes them)",
            path=topology.info.get("path"),
        )
    notes = _dense_layers([topology], names, dense)
    names = _kept(names, notes, dense)
    layers_ = [topology[name] for name in names]
    measured = [layer for layer in layers_ if layer.name not in notes]
    where = f"epoch {topology.epoch}" if topology.epoch is not None else None
    return gradient_vs_fanin(
        {layer.name: layer.fan_in for layer in layers_},
        {layer.name: np.asarray(layer.stats[stat], dtype=np.float64) for layer in layers_},
        concentration={layer.name: gradient_concentration(layer, fraction=fraction, stat=stat) for layer in measured},
        spearman={layer.name: hierarchy_strength(layer, stat=stat) for layer in measured},
        notes=notes,
        title=where and f"Gradient against fan-in, {where}",
        path=path,
        dpi=dpi,
    )


# -- distances between checkpoints --------------------------------------------------------
def distance_labels(items: Sequence[Any]) -> Labels:
    """Labels naming the run and epoch of each checkpoint, in the shortest unique form.

    See :func:`topo.plotting.labels.run_epoch_labels`: ``"a@190"`` for checkpoints of
    several runs at several epochs, ``"a"`` and ``"b"`` when all are at epoch 190 (which
    :attr:`~topo.plotting.labels.Labels.common` then says), ``"0"``, ``"10"`` for the
    checkpoints of one run.

    Parameters
    ----------
    items : sequence of Topology or path
        Checkpoints: Topologies (their ``info["path"]`` names the run), checkpoint files
        (a run's ``checkpoints/epoch_NNNN.*``, or any other file, named by its path), or
        run folders standing for their last checkpoint.

    Returns
    -------
    Labels

    Examples
    --------
    >>> import numpy as np
    >>> run = [Topology.from_masks([np.eye(2)], info={"epoch": epoch}) for epoch in (0, 5, 10)]
    >>> distance_labels(run)
    Labels(labels=['0', '5', '10'], common=None)
    >>> distance_labels(["sweep/rigl_a/checkpoints/epoch_0190.safetensors",
    ...                  "sweep/rigl_b/checkpoints/epoch_0190.safetensors"])
    Labels(labels=['a', 'b'], common='epoch 190')
    """
    from topo.runs import checkpoint_place

    located = [checkpoint_place(item) for item in items]
    return run_epoch_labels([run for run, _ in located], [point for _, point in located])


def _distance_items(items: Sequence[Any]) -> list[Any]:
    """The checkpoints to compare: a single run folder stands for all its epoch checkpoints."""
    from topo.runs import epoch_checkpoint_paths, is_run

    items = list(items)
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)) and is_run(items[0]):
        items = epoch_checkpoint_paths(items[0])
    if len(items) < 2:
        raise TopoError("a distance matrix needs at least two checkpoints")
    return items


def distance_matrix(
    items: Sequence[Any],
    *,
    match_output: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
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
        The matrix and the labels of :func:`distance_labels`.

    Raises
    ------
    TopoError
        If fewer than two checkpoints are given.

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> matrix, labels = distance_matrix(run)
    >>> matrix.shape, labels, bool(np.allclose(matrix, matrix.T)), matrix.diagonal().tolist()
    ((3, 3), ['0', '5', '10'], True, [0.0, 0.0, 0.0])
    """
    from topo.analysis.distance import nnstd_matrix
    from topo.runs import load_masks

    items = _distance_items(items)
    matrix = nnstd_matrix(
        items, load=load_masks, match_output=match_output, workers=workers, scheduler=scheduler, progress=progress
    )
    return np.asarray(matrix, dtype=np.float64), distance_labels(items).labels


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
    progress: ProgressCallback | None = None,
):
    """NNSTD between checkpoints as a heatmap or a clustermap.

    Parameters
    ----------
    items : sequence of Topology or path, optional
        The checkpoints; see :func:`distance_matrix`. Not needed when ``matrix`` is given.
    matrix : array-like, optional
        An NNSTD matrix already computed.
    labels : sequence of str or Labels, optional
        Its labels; a :class:`~topo.plotting.labels.Labels` (from :func:`distance_labels`)
        also puts what the checkpoints share into the title.
    style : {"heatmap", "clustermap"}
    method : str
        Linkage method of the clustermap.
    match_output, workers, scheduler, progress
        See :func:`distance_matrix`.
    path, dpi
        See :func:`topo.plotting.nnstd_heatmap`.

    Raises
    ------
    TopoError
        If ``style`` is unknown or there are fewer than two checkpoints.

    Examples
    --------
    >>> import numpy as np
    >>> def checkpoint(epoch):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.4).astype(int)
    ...     return Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"], info={"epoch": epoch})
    >>> run = [checkpoint(epoch) for epoch in (0, 5, 10)]
    >>> fig = distance_figure(run)
    >>> fig.axes[0].get_title(), fig.axes[1].get_ylabel()
    ('NNSTD between checkpoints', 'NNSTD')
    >>> matrix = np.array([[0.0, 0.3], [0.3, 0.0]])
    >>> fig = distance_figure(matrix=matrix, labels=Labels(["a", "b"], common="epoch 190"))
    >>> fig.axes[0].get_title()
    'NNSTD between checkpoints (epoch 190)'
    """
    from topo.analysis.distance import nnstd_matrix
    from topo.plotting.draw_distance import nnstd_clustermap, nnstd_heatmap
    from topo.runs import load_masks

    if style not in ("heatmap", "clustermap"):
        raise TopoError(f"unknown distance figure style {style!r}; use heatmap or clustermap")
    common = None
    if matrix is None:
        if items is None:
            raise TopoError("give checkpoints or a distance matrix")
        items = _distance_items(items)
        named = distance_labels(items)
        matrix = nnstd_matrix(
            items, load=load_masks, match_output=match_output, workers=workers, scheduler=scheduler, progress=progress
        )
        labels, common = named.labels, named.common
    if isinstance(labels, Labels):
        labels, common = labels.labels, labels.common
    heading = Labels([], common).title
    if style == "clustermap":
        return nnstd_clustermap(matrix, labels, method=method, title=heading("NNSTD, clustered"), path=path, dpi=dpi)
    return nnstd_heatmap(matrix, labels, title=heading("NNSTD between checkpoints"), path=path, dpi=dpi)


# -- training curves ----------------------------------------------------------------------
def curves_figure(
    runs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = 150,
):
    """Loss and accuracy from the runs' ``metrics.jsonl``; see :func:`topo.plotting.training_curves`.

    Parameters
    ----------
    runs : run folder or iterable of run folders
        Several runs are drawn together, named by the fewest trailing folders that
        tell them apart.
    title, path, dpi
        As for the other figures.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TopoError
        If a run is not a run folder or none has metrics.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from topo.checkpoint import append_metrics, write_run_config
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name, losses in (("rigl", [0.9, 0.5]), ("set", [1.0, 0.7])):
    ...         run = Path(tmp) / name
    ...         _ = write_run_config(run, {"method": name})
    ...         for epoch, loss in enumerate(losses, start=1):
    ...             append_metrics(run, {"epoch": epoch, "train_loss": loss})
    ...     fig = curves_figure([Path(tmp) / "rigl", Path(tmp) / "set"])
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['Loss', 'Accuracy']
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['rigl train_loss', 'set train_loss']
    """
    from topo.runs import run_metrics
    from topo.plotting.draw_training import training_curves

    if isinstance(runs, (str, os.PathLike)):
        runs = [runs]
    runs = list(runs)
    metrics = [run_metrics(run) for run in runs]
    # legends name runs by the fewest trailing folders that tell them apart
    names = shortest_run_names([os.path.abspath(run) for run in runs], strip_common=False)
    records: dict[str, list[dict]] = dict(zip(names, metrics))
    if not any(records.values()):
        raise TopoError("no metrics recorded (metrics.jsonl is missing or empty)", path=runs[0] if len(runs) == 1 else None)
    data = records if len(records) > 1 else next(iter(records.values()))
    return training_curves(data, title=title, path=path, dpi=dpi)

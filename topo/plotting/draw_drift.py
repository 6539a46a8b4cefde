"""Drawing a run's movement: fan-in CV, drift toward the equilibrium and mask turnover over epochs."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from topo.plotting._shared import float_array, line_figure, draw_layer_lines, panels, note, palette, themed, finish
from topo.plotting.output import DEFAULT_DPI

__all__ = ["fanin_cv_curves", "drift_curves", "turnover_curves", "drift_overview"]


def fanin_cv_curves(
    epochs: Sequence[Any],
    cv: Mapping[str, ArrayLike],
    *,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Fan-in coefficient of variation of every layer over training.

    Parameters
    ----------
    epochs : sequence of numbers
        x positions, one per checkpoint.
    cv : mapping of str to sequence of float
        Layer name -> CV at each checkpoint (NaN or None where undefined).
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x label ``"epoch"``, y label ``"fan-in CV"``, one line per layer.

    Examples
    --------
    >>> fig = fanin_cv_curves([0, 5, 10], {"fc1": [0.0, 0.4, 0.6], "fc2": [0.0, 0.3, None]})
    >>> ax, = fig.axes
    >>> ax.get_xlabel(), ax.get_ylabel(), len(ax.get_lines())
    ('epoch', 'fan-in CV', 2)
    """
    fig = line_figure(epochs, cv, ylabel="fan-in CV", title="Fan-in CV per layer")
    return finish(fig, path, dpi)


def _draw_drift(ax, epochs, distances, *, tolerance=None, converged=None, log_y=False):
    draw_layer_lines(ax, epochs, distances)
    colours = palette(len(distances))
    for colour, name in zip(colours, distances):
        epoch = (converged or {}).get(name)
        if epoch is not None:
            ax.axvline(float(epoch), color=colour, linestyle=":", linewidth=1.2)
    if tolerance is not None and np.isfinite(tolerance):
        ax.axhline(float(tolerance), color="0.35", linestyle="--", linewidth=1.0, label="tolerance")
        ax.legend(fontsize="small")
    if log_y:
        finite = np.concatenate([float_array(v) for v in distances.values()]) if distances else np.zeros(0)
        if finite.size and np.nanmin(finite) > 0:
            ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("W1 distance to equilibrium")
    ax.set_title("Drift toward equilibrium")


def drift_curves(
    epochs: Sequence[Any],
    distances: Mapping[str, ArrayLike],
    *,
    tolerance: float | None = None,
    converged: Mapping[str, Any] | None = None,
    log_y: bool = False,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Wasserstein-1 distance of each layer's fan-in distribution to its equilibrium.

    Parameters
    ----------
    epochs : sequence of numbers
        x positions, one per checkpoint.
    distances : mapping of str to sequence of float
        Layer name -> W1 distance at each checkpoint.
    tolerance : float, optional
        Drawn as a dashed horizontal line.
    converged : mapping of str to epoch or None, optional
        Where each layer reached its equilibrium; drawn as a dotted vertical line in
        the layer's colour.
    log_y : bool
        Logarithmic y axis (when every distance is positive).
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = drift_curves([0, 5, 10], {"fc1": [3.0, 1.0, 0.2]}, tolerance=0.5, converged={"fc1": 10})
    >>> ax, = fig.axes
    >>> ax.get_ylabel()
    'W1 distance to equilibrium'
    >>> [line.get_linestyle() for line in ax.get_lines()]  # the layer, where it converged, the tolerance
    ['-', ':', '--']
    >>> drift_curves([0, 5, 10], {"fc1": [3.0, 1.0, 0.2]}, log_y=True).axes[0].get_yscale()
    'log'
    """
    with themed():
        fig, (ax,) = panels(1, panel_size=(6.0, 3.8), max_columns=1)
        _draw_drift(ax, epochs, distances, tolerance=tolerance, converged=converged, log_y=log_y)
    return finish(fig, path, dpi)


def turnover_curves(
    epochs: Sequence[Any],
    turnover: Mapping[str, ArrayLike],
    *,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Mask turnover between consecutive checkpoints, per layer.

    Parameters
    ----------
    epochs : sequence of numbers
        The later epoch of each consecutive pair.
    turnover : mapping of str to sequence of float
        Layer name -> |A xor B| / (|A| + |B|) for each pair (0 identical, 1 disjoint).
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = turnover_curves([5, 10], {"fc1": [0.3, 0.1]})
    >>> ax, = fig.axes
    >>> ax.get_ylabel(), ax.get_lines()[0].get_ydata().tolist()
    ('mask turnover', [0.3, 0.1])
    """
    fig = line_figure(epochs, turnover, ylabel="mask turnover", title="Mask turnover between checkpoints")
    return finish(fig, path, dpi)


def drift_overview(
    epochs: Sequence[Any],
    cv: Mapping[str, ArrayLike],
    *,
    distances: Mapping[str, ArrayLike] | None = None,
    turnover: Mapping[str, ArrayLike] | None = None,
    turnover_epochs: Sequence[Any] | None = None,
    tolerance: float | None = None,
    converged: Mapping[str, Any] | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Fan-in CV, drift distance and mask turnover side by side.

    Parameters
    ----------
    epochs : sequence of numbers
        One per checkpoint.
    cv : mapping of str to sequence of float
        Layer name -> fan-in CV per checkpoint.
    distances : mapping, optional
        Layer name -> W1 distance to the equilibrium per checkpoint (panel left out
        when None).
    turnover : mapping, optional
        Layer name -> mask turnover per consecutive pair (panel left out when None).
    turnover_epochs : sequence, optional
        x positions of the turnover values; default ``epochs[1:]``.
    tolerance, converged
        See :func:`drift_curves`.
    title : str, optional
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One to three axes, titled ``"Fan-in CV per layer"``, ``"Drift toward
        equilibrium"`` and ``"Mask turnover between checkpoints"``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fig = drift_overview([0, 5, 10], {"fc1": [0.0, 0.4, 0.6]},
    ...                          turnover={"fc1": [0.3, 0.1]}, path=Path(tmp) / "drift.png")
    ...     print((Path(tmp) / "drift.png").exists())
    True
    >>> [ax.get_title() for ax in fig.axes]
    ['Fan-in CV per layer', 'Mask turnover between checkpoints']
    """
    n_panels = 1 + (distances is not None) + (turnover is not None)
    with themed():
        fig, axes = panels(n_panels, panel_size=(4.0, 3.4))
        ax = axes[0]
        draw_layer_lines(ax, epochs, cv)
        ax.set_xlabel("epoch")
        ax.set_ylabel("fan-in CV")
        ax.set_title("Fan-in CV per layer")
        index = 1
        if distances is not None:
            _draw_drift(axes[index], epochs, distances, tolerance=tolerance, converged=converged)
            index += 1
        if turnover is not None:
            ax = axes[index]
            x = list(turnover_epochs) if turnover_epochs is not None else list(epochs)[1:]
            if x:
                draw_layer_lines(ax, x, turnover)
            else:
                note(ax, "needs two checkpoints")
            ax.set_xlabel("epoch")
            ax.set_ylabel("mask turnover")
            ax.set_title("Mask turnover between checkpoints")
        if title:
            fig.suptitle(title)
    return finish(fig, path, dpi)

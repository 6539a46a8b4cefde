"""Drawing hub neurons: how long hubs persist, and per-neuron gradients against fan-in."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.plotting._shared import finish, line_figure, note, palette, panels, themed
from topo.plotting.output import DEFAULT_DPI

__all__ = ["hub_persistence_curves", "gradient_vs_fanin"]


def hub_persistence_curves(
    epochs: Sequence[Any],
    persistence: Any,
    layer_names: Sequence[str],
    *,
    fraction: float | None = None,
    notes: Mapping[str, str] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Overlap (Jaccard) of each checkpoint's hub neurons with the final checkpoint's.

    Parameters
    ----------
    epochs : sequence of numbers
        One per checkpoint.
    persistence : array-like, [n_checkpoints, n_layers]
        As :func:`topo.analysis.hubs.hub_persistence` returns it.
    layer_names : sequence of str
    fraction : float, optional
        The hub fraction used, written in the title.
    notes : mapping of str to str, optional
        Layers not drawn and why, written at the foot of the axes as
        ``"not drawn: out (dense: all 10×100 connections)"``: a dense layer has no
        hubs, every fan-in being the same.
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, y label ``"overlap with final hubs"``, y from 0 to 1 (with a 3 % margin).

    Examples
    --------
    >>> fig = hub_persistence_curves([0, 5, 10], [[0.2, 0.1], [0.6, 0.5], [1.0, 1.0]], ["fc1", "fc2"],
    ...                              fraction=0.1)
    >>> ax, = fig.axes
    >>> ax.get_ylabel(), [round(float(y), 2) for y in ax.get_ylim()]
    ('overlap with final hubs', [-0.03, 1.03])
    """
    persistence = np.asarray(persistence, dtype=np.float64)
    if persistence.ndim != 2 or persistence.shape != (len(epochs), len(layer_names)):
        raise TopoError(
            f"hub persistence has shape {persistence.shape}, expected ({len(epochs)}, {len(layer_names)})"
        )
    series = {name: persistence[:, k] for k, name in enumerate(layer_names)}
    title = "Hub persistence" + (f" (top {fraction:.0%} by fan-in)" if fraction else "")
    fig = line_figure(epochs, series, ylabel="overlap with final hubs", title=title, ylim=(-0.03, 1.03))
    if notes:
        text = "not drawn: " + "; ".join(f"{name} ({why})" for name, why in notes.items())
        fig.axes[0].text(0.99, 0.02, text, transform=fig.axes[0].transAxes, ha="right", va="bottom",
                         fontsize="small", color="0.35")
    return finish(fig, path, dpi)


def gradient_vs_fanin(
    fan_ins: Mapping[str, np.ndarray],
    gradients: Mapping[str, np.ndarray],
    *,
    concentration: Mapping[str, float] | None = None,
    spearman: Mapping[str, float] | None = None,
    notes: Mapping[str, str] | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Per-neuron gradient magnitude against fan-in, one panel per layer.

    Parameters
    ----------
    fan_ins : mapping of str to numpy.ndarray
        Layer name -> fan-in per output neuron.
    gradients : mapping of str to numpy.ndarray
        Layer name -> the neuron's gradient statistic (``stats["grad_mean"]``).
        Layers missing here are skipped.
    concentration : mapping of str to float, optional
        Gradient concentration ratio per layer, written on the panel.
    spearman : mapping of str to float, optional
        Spearman correlation of fan-in and gradient per layer, written on the panel.
    notes : mapping of str to str, optional
        Layer name -> a short text written in the layer's panel instead of its data,
        e.g. ``"dense: all 10×100 connections"`` for a dense layer.
    title : str, optional
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per layer with gradients, x label ``"fan-in"``, y label
        ``"mean |gradient|"``; the y axis is logarithmic when the positive gradients
        span more than two decades.

    Raises
    ------
    TopoError
        If no layer has gradients, or a layer's arrays differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> fig = gradient_vs_fanin({"fc1": np.array([1, 2, 3, 4])},
    ...                         {"fc1": np.array([0.01, 0.02, 0.05, 0.04])}, spearman={"fc1": 0.8})
    >>> ax, = fig.axes
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('fan-in', 'mean |gradient|')
    """
    names = [name for name in fan_ins if name in gradients]
    if not names:
        raise TopoError("no layer has a gradient statistic to plot")
    concentration = concentration or {}
    spearman = spearman or {}
    notes = notes or {}
    with themed():
        fig, axes = panels(len(names), panel_size=(4.0, 3.4))
        colours = palette(len(names))
        for ax, colour, name in zip(axes, colours, names):
            if name in notes:
                note(ax, notes[name])
                ax.set_title(str(name))
                ax.set_axis_off()
                continue
            x = np.asarray(fan_ins[name], dtype=np.float64).reshape(-1)
            y = np.asarray(gradients[name], dtype=np.float64).reshape(-1)
            if x.size != y.size:
                raise TopoError(f"layer {name!r}: {x.size} fan-in values but {y.size} gradients")
            ax.scatter(x, y, s=9, alpha=0.55, color=colour, edgecolor="none")
            positive = y[np.isfinite(y) & (y > 0)]
            if positive.size and positive.max() / positive.min() > 100:
                ax.set_yscale("log")
            lines = []
            if name in concentration and concentration[name] is not None:
                lines.append(f"concentration {float(concentration[name]):.2f}")
            if name in spearman and spearman[name] is not None:
                lines.append(f"Spearman ρ {float(spearman[name]):.2f}")
            if lines:
                ax.text(0.03, 0.97, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=8,
                        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
            ax.set_title(str(name))
            ax.set_xlabel("fan-in")
            ax.set_ylabel("mean |gradient|")
        if title:
            fig.suptitle(title)
    return finish(fig, path, dpi)

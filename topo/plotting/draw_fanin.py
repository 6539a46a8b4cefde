"""Drawing fan-in histograms over checkpoints: the ridge plot."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.plotting._shared import MAX_COLUMNS, all_integers, panels, label_text, note, plain_log_labels, sequential_palette, themed, finish
from topo.plotting.output import DEFAULT_DPI

__all__ = ["fanin_ridge"]


# -- fan-in ridge plot ---------------------------------------------------------------
def _integer_edges(lo: int, hi: int, *, log_x: bool, max_bins: int) -> np.ndarray:
    """Bin edges at half-integers, so that every bin holds whole fan-in values."""
    if log_x:
        lo = max(int(lo), 1)
        hi = max(int(hi), lo)
        raw = np.geomspace(lo, hi + 1, max_bins + 1)
        edges = np.unique(np.round(raw)) - 0.5
        if edges.size < 2:
            edges = np.array([lo - 0.5, lo + 0.5])
        return edges
    lo, hi = int(lo), int(hi)
    span = hi - lo + 1
    width = max(1, int(math.ceil(span / max_bins)))
    return lo - 0.5 + width * np.arange(int(math.ceil(span / width)) + 1)


def fanin_ridge(
    fan_ins: Mapping[str, Sequence[np.ndarray]],
    labels: Sequence[Any],
    *,
    log_x: bool = False,
    max_bins: int = 60,
    overlap: float = 1.6,
    annotate_cv: bool = True,
    notes: Mapping[str, str] | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Ridge plot of fan-in histograms over checkpoints, one panel per layer.

    Each panel stacks one histogram per checkpoint, the first at the top, so that the
    eye follows the distribution as it moves over training. Bins hold whole fan-in
    values (half-integer edges, widened evenly when a layer spans more than
    ``max_bins`` values). Heights are fractions of the layer's neurons per unit of the
    x axis, scaled by one factor per panel so that rows stay comparable.

    Parameters
    ----------
    fan_ins : mapping of str to sequence of numpy.ndarray
        Layer name -> the fan-in of every output neuron at each checkpoint, in the
        order of ``labels``.
    labels : sequence
        One row label per checkpoint, e.g. the epochs.
    log_x : bool
        Logarithmic fan-in axis with logarithmic, integer-aligned bins. Neurons with
        fan-in 0 cannot be shown on it and are left out.
    max_bins : int
        The most bins per panel.
    overlap : float
        Height of the tallest histogram in a panel, in row spacings.
    annotate_cv : bool
        Write each row's coefficient of variation at its right end.
    notes : mapping of str to str, optional
        Layer name -> a short text written in the layer's panel instead of its
        histograms, e.g. ``"dense: all 10×100 connections"`` for a dense layer, whose
        single shared fan-in would otherwise fill the panel as a solid block.
    title : str, optional
        Figure title.
    path : path-like, optional
        Also write the figure here (``.png``, ``.svg`` or ``.pdf``).
    dpi : int
        Resolution when writing a raster file.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per layer, titled by the layer's name; the x label is ``"fan-in"``.

    Raises
    ------
    TopoError
        If there are no layers, or a layer's number of histograms differs from the
        number of labels.

    Examples
    --------
    >>> import numpy as np
    >>> fans = {"fc1": [np.array([2, 2, 2, 2]), np.array([1, 2, 3, 2])],
    ...         "fc2": [np.array([3, 3, 3]), np.array([1, 3, 5])]}
    >>> fig = fanin_ridge(fans, labels=[0, 10])
    >>> [ax.get_title() for ax in fig.axes], fig.axes[0].get_xlabel()
    (['fc1', 'fc2'], 'fan-in')
    >>> fanin_ridge(fans, labels=[0])
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: layer 'fc1': 2 histograms for 1 checkpoints
    """
    from topo.analysis.degree import coefficient_of_variation

    labels = list(labels)
    if not fan_ins:
        raise TopoError("no layers to plot")
    if not labels:
        raise TopoError("no checkpoints to plot")
    n_rows = len(labels)
    notes = notes or {}
    with themed("white") as sns:
        fig, axes = panels(len(fan_ins), panel_size=(3.6, max(2.6, 0.42 * n_rows + 1.4)))
        colours = sequential_palette(n_rows)
        integer_labels = all_integers(labels)
        for col, (ax, (name, series)) in enumerate(zip(axes, fan_ins.items())):
            if name in notes:
                note(ax, notes[name])
                ax.set_title(str(name))
                ax.set_axis_off()
                continue
            series = [np.asarray(v).reshape(-1) for v in series]
            if len(series) != n_rows:
                raise TopoError(f"layer {name!r}: {len(series)} histograms for {n_rows} checkpoints")
            values_all = np.concatenate(series) if series else np.zeros(0)
            if log_x:
                values_all = values_all[values_all >= 1]
            if values_all.size == 0:
                note(ax, "no fan-in to show")
                ax.set_title(str(name))
                continue
            edges = _integer_edges(values_all.min(), values_all.max(), log_x=log_x, max_bins=max_bins)
            widths = np.diff(np.log10(edges)) if log_x else np.diff(edges)
            heights = []
            for values in series:
                shown = values[values >= 1] if log_x else values
                counts, _ = np.histogram(shown, bins=edges)
                heights.append(counts / max(values.size, 1) / widths)
            peak = max((h.max() for h in heights if h.size), default=0.0) or 1.0
            for row, (values, height) in enumerate(zip(series, heights)):
                base = n_rows - 1 - row
                top = base + overlap * height / peak
                ax.stairs(top, edges, baseline=base, fill=True, color=colours[row], alpha=0.92, zorder=2 * row + 1)
                ax.stairs(top, edges, baseline=base, color="white", linewidth=0.9, zorder=2 * row + 2)
                ax.plot([edges[0], edges[-1]], [base, base], color=colours[row], linewidth=0.8, zorder=2 * row + 2)
                if annotate_cv:
                    cv = coefficient_of_variation(values)
                    ax.text(
                        1.01, base, "" if not np.isfinite(cv) else f"CV {cv:.2f}",
                        transform=ax.get_yaxis_transform(), ha="left", va="center", clip_on=False,
                        fontsize=8, color="0.25", zorder=2 * n_rows + 5,
                    )
            ax.set_xlim(edges[0], edges[-1])
            if log_x:
                ax.set_xscale("log")
                plain_log_labels(ax.xaxis)
            ax.set_ylim(-0.15, n_rows - 1 + overlap + 0.15)
            ax.set_yticks(range(n_rows))
            ax.set_yticklabels([label_text(labels[n_rows - 1 - i]) for i in range(n_rows)])
            ax.set_title(str(name))
            ax.set_xlabel("fan-in")
            if col % MAX_COLUMNS == 0:
                ax.set_ylabel("epoch" if integer_labels else "checkpoint")
            sns.despine(ax=ax, left=True)
            ax.tick_params(axis="y", length=0)
        if title:
            fig.suptitle(title)
    return finish(fig, path, dpi)

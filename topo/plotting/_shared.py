"""What every drawing module shares: matplotlib's Agg backend, seaborn's theme applied
for one figure at a time, constrained-layout panel grids, palettes and small helpers.

No pyplot state leaks: figures are built with :class:`matplotlib.figure.Figure`
directly and styles are applied through context managers, never globally.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.plotting.output import DEFAULT_DPI, save_figure

__all__: list[str] = []  # private helpers of topo.plotting

# three panels across (12 inches) still read at the width the HTML report shows them
MAX_COLUMNS = 3


def finish(fig, path, dpi):
    """Write ``fig`` to ``path`` when one is given; return ``fig``."""
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


# -- matplotlib set-up -----------------------------------------------------------------
def agg_matplotlib():
    import sys

    import matplotlib

    # figures are only ever written to files: never open a window. Where pyplot is
    # already in use (a notebook, an interactive session) its backend is the user's
    # choice, and switching it would close the user's figures, so leave it alone.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return matplotlib


@contextlib.contextmanager
def themed(style: str = "whitegrid") -> Iterator[Any]:
    """seaborn's theme for the duration of one figure, restored afterwards."""
    matplotlib = agg_matplotlib()
    import seaborn as sns

    rc = dict(sns.axes_style(style))
    rc.update(sns.plotting_context("notebook", font_scale=0.85))
    rc.update({"axes.titleweight": "bold", "figure.dpi": DEFAULT_DPI})
    with matplotlib.rc_context(rc):
        yield sns


def panels(n_panels: int, *, panel_size=(4.0, 3.2), max_columns: int = MAX_COLUMNS, sharex=False, sharey=False):
    """A constrained-layout Figure with ``n_panels`` axes in rows of at most ``max_columns``."""
    from matplotlib.figure import Figure

    n_panels = max(1, n_panels)
    ncols = min(n_panels, max_columns)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    axes = list(grid.ravel())
    for ax in axes[n_panels:]:
        fig.delaxes(ax)
    return fig, axes[:n_panels]


def palette(n: int, name: str = "colorblind") -> list:
    import seaborn as sns

    if n <= 10:
        return list(sns.color_palette(name, max(n, 1)))
    return list(sns.color_palette("husl", n))


def sequential_palette(n: int, name: str = "mako") -> list:
    import seaborn as sns

    # skip the palest end so that every row stays visible on white
    colours = sns.color_palette(name, n + 2)
    return list(colours[1:-1]) if n > 0 else []


def label_text(label: Any) -> str:
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)


def all_integers(labels: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels)


def float_array(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def draw_layer_lines(ax, x: Any, series: Mapping[str, Any], *, marker: str = "o") -> None:
    x = float_array(x)
    colours = palette(len(series))
    for colour, (name, values) in zip(colours, series.items()):
        y = float_array(values)
        if y.size != x.size:
            raise TopoError(f"series {name!r} has {y.size} values for {x.size} epochs")
        ax.plot(x, y, marker=marker if x.size <= 40 else None, markersize=3.5, linewidth=1.6, color=colour, label=str(name))
    integer_ticks(ax, x)
    if series:
        ax.legend(fontsize="small", frameon=True)


def integer_ticks(ax, x: Any) -> None:
    """Whole-number ticks on the x axis when every x is a whole number (epochs: no "0.2")."""
    from matplotlib.ticker import MaxNLocator

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size and np.all(x == np.round(x)):
        if np.unique(x).size == 1:
            ax.set_xticks([float(x[0])])  # one epoch: one tick, not a fractional scale around it
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plain_log_labels(axis) -> None:
    """Label a log axis with plain numbers (2, 30, 0.1), minor ticks too when the range is narrow."""
    from matplotlib.ticker import LogFormatter

    class _Plain(LogFormatter):
        # LogFormatter decides which ticks get a label; write those as plain numbers
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    axis.set_major_formatter(_Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    axis.set_minor_formatter(_Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")



def line_figure(x, series, *, ylabel, title, xlabel="epoch", ylim=None, log_y=False):
    with themed():
        fig, (ax,) = panels(1, panel_size=(6.0, 3.8), max_columns=1)
        if series:
            draw_layer_lines(ax, x, series)
        else:
            note(ax, "nothing to plot")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if ylim is not None:
            ax.set_ylim(*ylim)
        if log_y:
            ax.set_yscale("log")
    return fig

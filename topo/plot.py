"""Figures: plain data in, a matplotlib Figure (and optionally a file) out.

Every function here takes arrays, lists, mappings or small result objects that the
analysis functions return, draws one figure with seaborn's styling on matplotlib's
Agg backend, and returns the :class:`matplotlib.figure.Figure`. When ``path`` is
given the figure is also written there, atomically, as PNG, SVG or PDF according to
the file's extension.

No pyplot state leaks: figures are built with :class:`matplotlib.figure.Figure`
directly (seaborn's clustermap, which insists on pyplot, is closed right after it is
drawn), and styles are applied through context managers, never globally.

Computing the data from checkpoints and run folders is the job of
:mod:`topo.figures`; this module knows nothing about files other than the one it writes.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "FIGURE_FORMATS",
    "figure_format",
    "figure_bytes",
    "save_figure",
    "fanin_ridge",
    "fanin_cv_curves",
    "drift_curves",
    "turnover_curves",
    "drift_overview",
    "degree_distribution",
    "nnstd_heatmap",
    "nnstd_clustermap",
    "hub_persistence_curves",
    "gradient_vs_fanin",
    "density_curves",
    "exploration_curves",
    "training_curves",
]

#: File extension -> matplotlib output format.
FIGURE_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

DEFAULT_DPI = 150
_MAX_COLUMNS = 4


# -- files ---------------------------------------------------------------------------
def figure_format(path: str | os.PathLike) -> str:
    """The output format for ``path``, from its extension.

    Raises
    ------
    TopoError
        If the extension is not ``.png``, ``.svg`` or ``.pdf``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        shown = suffix or "(none)"
        raise TopoError(
            f"unsupported figure file extension {shown}; use .png, .svg or .pdf", path=path
        )
    return FIGURE_FORMATS[suffix]


def figure_bytes(fig, fmt: str = "png", *, dpi: int = DEFAULT_DPI) -> bytes:
    """Render ``fig`` to bytes in ``fmt`` (``"png"``, ``"svg"`` or ``"pdf"``)."""
    buffer = io.BytesIO()
    # a fixed date keeps SVG/PDF output reproducible
    metadata = {"Date": None} if fmt in ("svg", "pdf") else None
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def save_figure(fig, path: str | os.PathLike, *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` to ``path`` atomically; the format follows the extension.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path-like
        Ends in ``.png``, ``.svg`` or ``.pdf``; its folder is created.
    dpi : int
        Resolution of raster output.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TopoError
        If the extension is not supported.
    """
    from topo.checkpoint import atomic_write_bytes

    fmt = figure_format(path)
    return atomic_write_bytes(path, figure_bytes(fig, fmt, dpi=dpi))


def _finish(fig, path, dpi):
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


# -- matplotlib set-up -----------------------------------------------------------------
def _matplotlib():
    import sys

    import matplotlib

    # figures are only ever written to files: never open a window. Where pyplot is
    # already in use (a notebook, an interactive session) its backend is the user's
    # choice, and switching it would close the user's figures, so leave it alone.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return matplotlib


@contextlib.contextmanager
def _style(style: str = "whitegrid") -> Iterator[Any]:
    """seaborn's theme for the duration of one figure, restored afterwards."""
    matplotlib = _matplotlib()
    import seaborn as sns

    rc = dict(sns.axes_style(style))
    rc.update(sns.plotting_context("notebook", font_scale=0.85))
    rc.update({"axes.titleweight": "bold", "figure.dpi": DEFAULT_DPI})
    with matplotlib.rc_context(rc):
        yield sns


def _figure(n_panels: int, *, panel_size=(4.0, 3.2), max_columns: int = _MAX_COLUMNS, sharex=False, sharey=False):
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


def _palette(n: int, name: str = "colorblind") -> list:
    import seaborn as sns

    if n <= 10:
        return list(sns.color_palette(name, max(n, 1)))
    return list(sns.color_palette("husl", n))


def _sequential(n: int, name: str = "mako") -> list:
    import seaborn as sns

    # skip the palest end so that every row stays visible on white
    colours = sns.color_palette(name, n + 2)
    return list(colours[1:-1]) if n > 0 else []


def _label_text(label: Any) -> str:
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)


def _all_integers(labels: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels)


def _as_float_array(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _draw_layer_lines(ax, x: Sequence[Any], series: Mapping[str, Sequence[Any]], *, marker: str = "o") -> None:
    x = _as_float_array(x)
    colours = _palette(len(series))
    for colour, (name, values) in zip(colours, series.items()):
        y = _as_float_array(values)
        if y.size != x.size:
            raise TopoError(f"series {name!r} has {y.size} values for {x.size} epochs")
        ax.plot(x, y, marker=marker if x.size <= 40 else None, markersize=3.5, linewidth=1.6, color=colour, label=str(name))
    if series:
        ax.legend(fontsize="small", frameon=True)


def _plain_log_labels(axis) -> None:
    """Label a log axis with plain numbers (2, 30, 0.1), minor ticks too when the range is narrow."""
    from matplotlib.ticker import LogFormatter

    class _Plain(LogFormatter):
        # LogFormatter decides which ticks get a label; write those as plain numbers
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    axis.set_major_formatter(_Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    axis.set_minor_formatter(_Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


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
    """
    from topo.analysis.degree import coefficient_of_variation

    labels = list(labels)
    if not fan_ins:
        raise TopoError("no layers to plot")
    if not labels:
        raise TopoError("no checkpoints to plot")
    n_rows = len(labels)
    with _style("white") as sns:
        fig, axes = _figure(len(fan_ins), panel_size=(3.6, max(2.6, 0.42 * n_rows + 1.4)))
        colours = _sequential(n_rows)
        integer_labels = _all_integers(labels)
        for col, (ax, (name, series)) in enumerate(zip(axes, fan_ins.items())):
            series = [np.asarray(v).reshape(-1) for v in series]
            if len(series) != n_rows:
                raise TopoError(f"layer {name!r}: {len(series)} histograms for {n_rows} checkpoints")
            values_all = np.concatenate(series) if series else np.zeros(0)
            if log_x:
                values_all = values_all[values_all >= 1]
            if values_all.size == 0:
                _note(ax, "no fan-in to show")
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
                        fontsize=6.5, color="0.25", zorder=2 * n_rows + 5,
                    )
            ax.set_xlim(edges[0], edges[-1])
            if log_x:
                ax.set_xscale("log")
                _plain_log_labels(ax.xaxis)
            ax.set_ylim(-0.15, n_rows - 1 + overlap + 0.15)
            ax.set_yticks(range(n_rows))
            ax.set_yticklabels([_label_text(labels[n_rows - 1 - i]) for i in range(n_rows)])
            ax.set_title(str(name))
            ax.set_xlabel("fan-in")
            if col % _MAX_COLUMNS == 0:
                ax.set_ylabel("epoch" if integer_labels else "checkpoint")
            sns.despine(ax=ax, left=True)
            ax.tick_params(axis="y", length=0)
        if title:
            fig.suptitle(title)
    return _finish(fig, path, dpi)


# -- curves over epochs ----------------------------------------------------------------
def _curves_figure(x, series, *, ylabel, title, xlabel="epoch", ylim=None, log_y=False):
    with _style():
        fig, (ax,) = _figure(1, panel_size=(6.0, 3.8), max_columns=1)
        if series:
            _draw_layer_lines(ax, x, series)
        else:
            _note(ax, "nothing to plot")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if ylim is not None:
            ax.set_ylim(*ylim)
        if log_y:
            ax.set_yscale("log")
    return fig


def fanin_cv_curves(
    epochs: Sequence[Any],
    cv: Mapping[str, Sequence[float]],
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
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x label ``"epoch"``, y label ``"fan-in CV"``, one line per layer.
    """
    fig = _curves_figure(epochs, cv, ylabel="fan-in CV", title="Fan-in CV per layer")
    return _finish(fig, path, dpi)


def _draw_drift(ax, epochs, distances, *, tolerance=None, converged=None, log_y=False):
    _draw_layer_lines(ax, epochs, distances)
    colours = _palette(len(distances))
    for colour, name in zip(colours, distances):
        epoch = (converged or {}).get(name)
        if epoch is not None:
            ax.axvline(float(epoch), color=colour, linestyle=":", linewidth=1.2)
    if tolerance is not None and np.isfinite(tolerance):
        ax.axhline(float(tolerance), color="0.35", linestyle="--", linewidth=1.0, label="tolerance")
        ax.legend(fontsize="small")
    if log_y:
        finite = np.concatenate([_as_float_array(v) for v in distances.values()]) if distances else np.zeros(0)
        if finite.size and np.nanmin(finite) > 0:
            ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("W1 distance to equilibrium")
    ax.set_title("Drift toward equilibrium")


def drift_curves(
    epochs: Sequence[Any],
    distances: Mapping[str, Sequence[float]],
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
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with _style():
        fig, (ax,) = _figure(1, panel_size=(6.0, 3.8), max_columns=1)
        _draw_drift(ax, epochs, distances, tolerance=tolerance, converged=converged, log_y=log_y)
    return _finish(fig, path, dpi)


def turnover_curves(
    epochs: Sequence[Any],
    turnover: Mapping[str, Sequence[float]],
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
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _curves_figure(epochs, turnover, ylabel="mask turnover", title="Mask turnover between checkpoints")
    return _finish(fig, path, dpi)


def drift_overview(
    epochs: Sequence[Any],
    cv: Mapping[str, Sequence[float]],
    *,
    distances: Mapping[str, Sequence[float]] | None = None,
    turnover: Mapping[str, Sequence[float]] | None = None,
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
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One to three axes, titled ``"Fan-in CV per layer"``, ``"Drift toward
        equilibrium"`` and ``"Mask turnover between checkpoints"``.
    """
    panels = 1 + (distances is not None) + (turnover is not None)
    with _style():
        fig, axes = _figure(panels, panel_size=(4.6, 3.6))
        ax = axes[0]
        _draw_layer_lines(ax, epochs, cv)
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
                _draw_layer_lines(ax, x, turnover)
            else:
                _note(ax, "needs two checkpoints")
            ax.set_xlabel("epoch")
            ax.set_ylabel("mask turnover")
            ax.set_title("Mask turnover between checkpoints")
        if title:
            fig.suptitle(title)
    return _finish(fig, path, dpi)


# -- degree distribution with fits -------------------------------------------------------
def _fit_parts(fit: Any) -> tuple[str, dict[str, float], float | None]:
    if isinstance(fit, Mapping):
        return str(fit.get("name", "")), dict(fit.get("params", {})), fit.get("ks")
    return str(getattr(fit, "name", "")), dict(getattr(fit, "params", {}) or {}), getattr(fit, "ks", None)


def _param(params: Mapping[str, float], *names: str) -> float | None:
    for name in names:
        if name in params and params[name] is not None:
            return float(params[name])
    return None


def _conditioned(model: Any, x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """P(X >= x) of a continuous model discretised to whole fan-ins, conditioned on the
    observed range (as :mod:`topo.analysis.fits` scores it) and scaled to the share of
    neurons with positive fan-in."""
    positive = values[values >= 1]
    low = float(positive.min())
    denominator = model.sf(low - 0.5)
    if not denominator > 0:
        return np.full(x.shape, np.nan)
    return positive.size / values.size * model.sf(x - 0.5) / denominator


def _fit_ccdf(name: str, params: Mapping[str, float], x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """P(X >= x) under a fitted distribution, or None when its parameters are not understood."""
    from scipy import special, stats

    name = name.lower()
    if name == "lognormal":
        mu, sigma = _param(params, "mu"), _param(params, "sigma")
        if mu is None or sigma is None or sigma <= 0:
            return None
        return x, _conditioned(stats.lognorm(s=sigma, scale=math.exp(mu)), x, values)
    if name == "normal":
        mu, sigma = _param(params, "mu", "mean", "loc"), _param(params, "sigma", "std", "scale")
        if mu is None or sigma is None or sigma <= 0:
            return None
        return x, _conditioned(stats.norm(loc=mu, scale=sigma), x, values)
    if name == "exponential":
        rate = _param(params, "lambda", "lam", "rate")
        if rate is None:
            scale = _param(params, "scale", "mean")
            rate = None if not scale else 1.0 / scale
        if rate is None or rate <= 0:
            return None
        return x, _conditioned(stats.expon(scale=1.0 / rate), x, values)
    if name.startswith("powerlaw"):
        alpha = _param(params, "alpha")
        x_min = _param(params, "x_min", "xmin")
        if alpha is None or x_min is None or alpha <= 1 or x_min <= 0:
            return None
        tail = x[x >= x_min]
        if tail.size == 0:
            return None
        share = float(np.mean(values >= x_min))
        # discrete power law: P(X >= x | X >= x_min) = zeta(alpha, x) / zeta(alpha, x_min)
        return tail, share * special.zeta(alpha, tail) / special.zeta(alpha, x_min)
    return None


def degree_distribution(
    fan_ins: Mapping[str, np.ndarray],
    fits: Mapping[str, Any] | None = None,
    *,
    kind: str = "ccdf",
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """The fan-in distribution of each layer on log-log axes, with fitted curves.

    Parameters
    ----------
    fan_ins : mapping of str to numpy.ndarray
        Layer name -> integer fan-in of every output neuron.
    fits : mapping of str to FanInFits-like, optional
        Layer name -> an object with ``fits`` (name -> Fit with ``name``, ``params``
        and ``ks``) and ``best``, as :func:`topo.analysis.fits.fit_fan_in` returns
        (plain dicts of the same shape work too). Distributions understood:
        ``lognormal`` (mu, sigma), ``normal`` (mean, std), ``exponential`` (rate),
        ``powerlaw`` (alpha, x_min; the discrete tail, drawn from x_min on). Continuous
        models are drawn discretised and conditioned on the observed range, as the
        fits score them; ``powerlaw_full`` (the comparison's helper) is not drawn.
    kind : {"ccdf", "pmf"}
        ``ccdf``: the share of neurons with fan-in at least x, the usual view for
        heavy tails; ``pmf``: the share with fan-in exactly x (fits are drawn as
        CCDFs only).
    title : str, optional
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One log-log axes per layer, titled by the layer's name, x label ``"fan-in"``.

    Raises
    ------
    TopoError
        If ``kind`` is unknown or there are no layers.
    """
    if kind not in ("ccdf", "pmf"):
        raise TopoError(f"unknown distribution view {kind!r}; use 'ccdf' or 'pmf'")
    if not fan_ins:
        raise TopoError("no layers to plot")
    fits = fits or {}
    with _style():
        fig, axes = _figure(len(fan_ins), panel_size=(4.0, 3.4))
        for ax, (name, values) in zip(axes, fan_ins.items()):
            values = np.asarray(values).reshape(-1)
            ax.set_title(str(name))
            ax.set_xlabel("fan-in")
            ax.set_ylabel("P(fan-in ≥ x)" if kind == "ccdf" else "share of neurons")
            positive = values[values >= 1]
            if positive.size == 0:
                _note(ax, "no connections")
                continue
            xs, counts = np.unique(positive, return_counts=True)
            if kind == "ccdf":
                # share of all neurons with fan-in >= x
                ys = (positive.size - np.concatenate([[0], np.cumsum(counts)[:-1]])) / values.size
            else:
                ys = counts / values.size
            ax.plot(xs, ys, "o", markersize=3.5, color="0.2", alpha=0.75, label="data", zorder=3)
            layer_fits = fits.get(name)
            if layer_fits is not None and kind == "ccdf":
                entries = layer_fits.get("fits", {}) if isinstance(layer_fits, Mapping) else getattr(layer_fits, "fits", {})
                best = layer_fits.get("best") if isinstance(layer_fits, Mapping) else getattr(layer_fits, "best", None)
                grid = np.unique(np.round(np.geomspace(xs.min(), xs.max(), 200)))
                colours = _palette(len(entries))
                for colour, (fit_name, fit) in zip(colours, entries.items()):
                    if fit_name == "powerlaw_full":
                        continue  # the comparison's helper fit; the tail fit is the one to see
                    dist, params, ks = _fit_parts(fit)
                    curve = _fit_ccdf(dist or fit_name, params, grid, values)
                    if curve is None:
                        continue
                    cx, cy = curve
                    keep = np.isfinite(cy) & (cy > 0)
                    label = f"{fit_name}" + (f" (KS {ks:.3f})" if ks is not None and np.isfinite(ks) else "")
                    if fit_name == best:
                        label += " best"
                    ax.plot(cx[keep], cy[keep], color=colour, linewidth=2.2 if fit_name == best else 1.3,
                            linestyle="-" if fit_name == best else "--", label=label, zorder=2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            _plain_log_labels(ax.xaxis)
            _plain_log_labels(ax.yaxis)
            # a fitted tail that plunges must not squash the data into the top of the panel
            ax.set_ylim(ys.min() * 0.3, 1.6 * ys.max())
            ax.legend(fontsize="x-small")
        if title:
            fig.suptitle(title)
    return _finish(fig, path, dpi)


# -- topology distances ----------------------------------------------------------------
def _square(matrix: Any, labels: Sequence[Any] | None) -> tuple[np.ndarray, list[str]]:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise TopoError(f"a distance matrix must be square, got shape {matrix.shape}")
    labels = [str(v) for v in labels] if labels is not None else [str(i) for i in range(matrix.shape[0])]
    if len(labels) != matrix.shape[0]:
        raise TopoError(f"{len(labels)} labels for a {matrix.shape[0]}x{matrix.shape[0]} matrix")
    return matrix, labels


def nnstd_heatmap(
    matrix: Any,
    labels: Sequence[Any] | None = None,
    *,
    annotate: bool | None = None,
    cmap: str = "rocket_r",
    title: str = "NNSTD between checkpoints",
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """The NNSTD distance matrix as a heatmap with a sequential colour map.

    Parameters
    ----------
    matrix : array-like, N x N
        Distances (0 on the diagonal).
    labels : sequence, optional
        One per row and column.
    annotate : bool, optional
        Write the values in the cells; default when N <= 12.
    cmap : str
        A sequential colour map (pale = near, dark = far).
    title : str
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the heatmap and its colour bar (labelled ``"NNSTD"``).
    """
    matrix, labels = _square(matrix, labels)
    n = matrix.shape[0]
    annotate = n <= 12 if annotate is None else annotate
    side = min(14.0, max(3.6, 0.45 * n + 2.5))
    with _style("white") as sns:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(side + 1.0, side), layout="constrained")
        ax = fig.add_subplot()
        sns.heatmap(
            matrix, ax=ax, cmap=cmap, square=True, annot=annotate, fmt=".2f",
            annot_kws={"fontsize": 7}, xticklabels=labels, yticklabels=labels,
            vmin=0.0, cbar_kws={"label": "NNSTD"}, linewidths=0.4 if n <= 30 else 0,
        )
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=90)
        ax.tick_params(axis="y", rotation=0)
    return _finish(fig, path, dpi)


def nnstd_clustermap(
    matrix: Any,
    labels: Sequence[Any] | None = None,
    *,
    method: str = "average",
    cmap: str = "rocket_r",
    annotate: bool | None = None,
    title: str = "NNSTD, clustered",
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """The NNSTD matrix reordered by hierarchical clustering of the distances themselves.

    The linkage is computed from the symmetrised matrix ``(D + D.T) / 2`` (zero
    diagonal) in condensed form with :func:`scipy.cluster.hierarchy.linkage`, and
    handed to seaborn's clustermap for both rows and columns, so that the dendrogram
    reflects the topology distances rather than a Euclidean distance between rows.

    Parameters
    ----------
    matrix : array-like, N x N, N >= 2
    labels : sequence, optional
    method : str
        Linkage method: ``average`` (default), ``single``, ``complete`` or
        ``weighted`` (methods that need Euclidean input are refused).
    cmap, annotate, title
        See :func:`nnstd_heatmap`.
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        The clustermap's figure: heatmap, two dendrograms and a colour bar.

    Raises
    ------
    TopoError
        If the matrix has fewer than two rows, or the method is not allowed.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    matrix, labels = _square(matrix, labels)
    n = matrix.shape[0]
    if n < 2:
        raise TopoError("clustering needs at least two checkpoints")
    if method not in ("average", "single", "complete", "weighted"):
        raise TopoError(f"linkage method {method!r} is not for arbitrary distances; use average, single, complete or weighted")
    symmetric = (matrix + matrix.T) / 2.0
    np.fill_diagonal(symmetric, 0.0)
    if not np.all(np.isfinite(symmetric)):
        raise TopoError("the distance matrix has missing or infinite values")
    row_linkage = linkage(squareform(symmetric, checks=False), method=method)
    annotate = n <= 12 if annotate is None else annotate
    side = min(14.0, max(5.5, 0.45 * n + 3.5))
    with _style("white") as sns:
        import matplotlib.pyplot as plt

        grid = sns.clustermap(
            symmetric, row_linkage=row_linkage, col_linkage=row_linkage, cmap=cmap,
            xticklabels=labels, yticklabels=labels, figsize=(side, side), vmin=0.0,
            annot=annotate, fmt=".2f", annot_kws={"fontsize": 7},
            cbar_kws={"label": "NNSTD"}, dendrogram_ratio=0.15,
        )
        fig = grid.figure
        # clustermap draws through pyplot; take the figure out of pyplot's registry
        plt.close(fig)
        grid.ax_heatmap.tick_params(axis="y", rotation=0)
        grid.ax_col_dendrogram.set_title(title)
    return _finish(fig, path, dpi)


# -- hubs, gradients, densities ----------------------------------------------------------------
def hub_persistence_curves(
    epochs: Sequence[Any],
    persistence: Any,
    layer_names: Sequence[str],
    *,
    fraction: float | None = None,
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
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, y label ``"overlap with final hubs"``, y from 0 to 1.
    """
    persistence = np.asarray(persistence, dtype=np.float64)
    if persistence.ndim != 2 or persistence.shape != (len(epochs), len(layer_names)):
        raise TopoError(
            f"hub persistence has shape {persistence.shape}, expected ({len(epochs)}, {len(layer_names)})"
        )
    series = {name: persistence[:, k] for k, name in enumerate(layer_names)}
    title = "Hub persistence" + (f" (top {fraction:.0%} by fan-in)" if fraction else "")
    fig = _curves_figure(epochs, series, ylabel="overlap with final hubs", title=title, ylim=(-0.03, 1.03))
    return _finish(fig, path, dpi)


def gradient_vs_fanin(
    fan_ins: Mapping[str, np.ndarray],
    gradients: Mapping[str, np.ndarray],
    *,
    concentration: Mapping[str, float] | None = None,
    spearman: Mapping[str, float] | None = None,
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
    title : str, optional
    path, dpi
        See :func:`fanin_ridge`.

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
    """
    names = [name for name in fan_ins if name in gradients]
    if not names:
        raise TopoError("no layer has a gradient statistic to plot")
    concentration = concentration or {}
    spearman = spearman or {}
    with _style():
        fig, axes = _figure(len(names), panel_size=(4.0, 3.4))
        colours = _palette(len(names))
        for ax, colour, name in zip(axes, colours, names):
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
    return _finish(fig, path, dpi)


def density_curves(
    epochs: Sequence[Any],
    densities: Mapping[str, Sequence[float]],
    *,
    overall: Sequence[float] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Density of each layer (and of the whole network) over training.

    Parameters
    ----------
    epochs : sequence of numbers
    densities : mapping of str to sequence of float
        Layer name -> share of possible connections present, per checkpoint.
    overall : sequence of float, optional
        The whole network's density per checkpoint, drawn as a dashed black line.
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, y label ``"density"``.
    """
    with _style():
        fig, (ax,) = _figure(1, panel_size=(6.0, 3.8), max_columns=1)
        _draw_layer_lines(ax, epochs, densities)
        if overall is not None:
            ax.plot(_as_float_array(epochs), _as_float_array(overall), color="black", linestyle="--", linewidth=1.6, label="network")
            ax.legend(fontsize="small")
        ax.set_xlabel("epoch")
        ax.set_ylabel("density")
        ax.set_title("Layer density over training")
        ax.set_ylim(bottom=0)
    return _finish(fig, path, dpi)


def exploration_curves(
    epochs: Sequence[Any],
    rates: Mapping[str, Sequence[float]],
    *,
    overall: Sequence[float] | None = None,
    active_share: Mapping[str, Sequence[float]] | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Exploration rate (connections ever active) and active width over training.

    Parameters
    ----------
    epochs : sequence of numbers
    rates : mapping of str to sequence of float
        Layer name -> share of its possible connections active at least once so far.
    overall : sequence of float, optional
        The whole network's exploration rate, drawn as a dashed black line.
    active_share : mapping of str to sequence of float, optional
        Layer name -> share of its neurons still present (an input or an output); drawn
        in a second panel when given.
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes (y label ``"exploration rate"``), two with ``active_share`` (the second
        with y label ``"active width / width"``).
    """
    with _style():
        panels = 2 if active_share is not None else 1
        fig, axes = _figure(panels, panel_size=(5.0, 3.6), max_columns=2)
        ax = axes[0]
        _draw_layer_lines(ax, epochs, rates)
        if overall is not None:
            ax.plot(_as_float_array(epochs), _as_float_array(overall), color="black", linestyle="--", linewidth=1.6, label="network")
            ax.legend(fontsize="small")
        ax.set_xlabel("epoch")
        ax.set_ylabel("exploration rate")
        ax.set_title("Connections ever active")
        ax.set_ylim(bottom=0)
        if active_share is not None:
            ax = axes[1]
            _draw_layer_lines(ax, epochs, active_share)
            ax.set_xlabel("epoch")
            ax.set_ylabel("active width / width")
            ax.set_title("Neurons present")
            ax.set_ylim(0, 1.05)
    return _finish(fig, path, dpi)


# -- loss and accuracy ---------------------------------------------------------------
_ACCURACY_SUFFIXES = ("_acc", "_accuracy")


def _metric_keys(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in keys and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.append(key)
    losses = [k for k in keys if k == "loss" or k.endswith("_loss")]
    accuracies = [k for k in keys if k in ("acc", "accuracy") or k.endswith(_ACCURACY_SUFFIXES)]
    return losses, accuracies


def _metric_series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for index, record in enumerate(records):
        value = record.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        epoch = record.get("epoch")
        xs.append(float(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else float(index + 1))
        ys.append(float(value))
    return np.array(xs), np.array(ys)


def training_curves(
    records: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Loss and accuracy over epochs from ``metrics.jsonl`` records.

    Every numeric field named ``loss`` or ``*_loss`` goes to the loss panel, every
    ``acc``, ``accuracy``, ``*_acc`` or ``*_accuracy`` to the accuracy panel; records
    that lack a field are skipped for that field only, and an empty panel says so.
    The x position is the record's ``epoch``, or its position when it has none.

    Parameters
    ----------
    records : sequence of mapping, or mapping of run name to sequence of mapping
        One run's records, or several runs' (one colour per run, one line style
        per field).
    title : str, optional
    path, dpi
        See :func:`fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes titled ``"Loss"`` and ``"Accuracy"``, x label ``"epoch"``.
    """
    runs: Mapping[str, Sequence[Mapping[str, Any]]]
    runs = records if isinstance(records, Mapping) else {"": records}
    styles = ["-", "--", ":", "-."]
    with _style():
        fig, (ax_loss, ax_acc) = _figure(2, panel_size=(5.0, 3.6))
        run_colours = _palette(len(runs))
        for ax, pick, empty in ((ax_loss, 0, "no loss recorded"), (ax_acc, 1, "no accuracy recorded")):
            drawn = 0
            for run_index, (run_name, run_records) in enumerate(runs.items()):
                keys = _metric_keys(run_records)[pick]
                field_colours = _palette(len(keys))
                for key_index, key in enumerate(keys):
                    x, y = _metric_series(run_records, key)
                    if x.size == 0:
                        continue
                    if len(runs) > 1:
                        colour, style = run_colours[run_index], styles[key_index % len(styles)]
                        label = f"{run_name} {key}"
                    else:
                        colour, style, label = field_colours[key_index], "-", key
                    ax.plot(x, y, linestyle=style, color=colour, marker="o" if x.size <= 40 else None,
                            markersize=3, linewidth=1.5, label=label)
                    drawn += 1
            if drawn:
                ax.legend(fontsize="small")
            else:
                _note(ax, empty)
            ax.set_xlabel("epoch")
        ax_loss.set_ylabel("loss")
        ax_loss.set_title("Loss")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_title("Accuracy")
        if title:
            fig.suptitle(title)
    return _finish(fig, path, dpi)

"""Drawing one checkpoint's fan-in distribution on log-log axes with fitted curves."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np

from topo.errors import TopoError
from topo.plotting._shared import panels, note, palette, plain_log_labels, themed, finish
from topo.plotting.output import DEFAULT_DPI

__all__ = ["degree_distribution"]


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
    notes: Mapping[str, str] | None = None,
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
    notes : mapping of str to str, optional
        Layer name -> a short text written in the layer's panel instead of its data,
        e.g. ``"dense: all 10×100 connections"`` for a dense layer.
    title : str, optional
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One log-log axes per layer, titled by the layer's name, x label ``"fan-in"``.

    Raises
    ------
    TopoError
        If ``kind`` is unknown or there are no layers.

    Examples
    --------
    >>> import numpy as np
    >>> fans = {"fc1": np.array([1, 2, 2, 3, 5, 8]), "out": np.full(4, 6)}
    >>> fits = {"fc1": {"best": "lognormal",
    ...                 "fits": {"lognormal": {"params": {"mu": 1.0, "sigma": 0.6}, "ks": 0.1}}}}
    >>> fig = degree_distribution(fans, fits, notes={"out": "dense: all 4×6 connections"})
    >>> [ax.get_title() for ax in fig.axes], fig.axes[0].get_xscale()
    (['fc1', 'out'], 'log')
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['data', 'lognormal (KS 0.100) best']
    """
    if kind not in ("ccdf", "pmf"):
        raise TopoError(f"unknown distribution view {kind!r}; use 'ccdf' or 'pmf'")
    if not fan_ins:
        raise TopoError("no layers to plot")
    fits = fits or {}
    notes = notes or {}
    with themed():
        fig, axes = panels(len(fan_ins), panel_size=(4.0, 3.4))
        for ax, (name, values) in zip(axes, fan_ins.items()):
            ax.set_title(str(name))
            if name in notes:
                note(ax, notes[name])
                ax.set_axis_off()
                continue
            values = np.asarray(values).reshape(-1)
            ax.set_xlabel("fan-in")
            ax.set_ylabel("P(fan-in ≥ x)" if kind == "ccdf" else "share of neurons")
            positive = values[values >= 1]
            if positive.size == 0:
                note(ax, "no connections")
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
                colours = palette(len(entries))
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
            plain_log_labels(ax.xaxis)
            plain_log_labels(ax.yaxis)
            # a fitted tail that plunges must not squash the data into the top of the panel
            ax.set_ylim(ys.min() * 0.3, 1.6 * ys.max())
            ax.legend(fontsize="small")
        if title:
            fig.suptitle(title)
    return finish(fig, path, dpi)

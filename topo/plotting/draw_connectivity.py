"""Drawing how much of the network is connected over training: densities, exploration, active width."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from numpy.typing import ArrayLike

from topo.plotting._shared import float_array, draw_layer_lines, panels, themed, finish
from topo.plotting.output import DEFAULT_DPI

__all__ = ["density_curves", "exploration_curves"]


def density_curves(
    epochs: Sequence[Any],
    densities: Mapping[str, ArrayLike],
    *,
    overall: ArrayLike | None = None,
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
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, y label ``"density"``.

    Examples
    --------
    >>> fig = density_curves([0, 1, 2], {"fc1": [0.1, 0.1, 0.1], "fc2": [0.2, 0.18, 0.2]},
    ...                      overall=[0.15, 0.14, 0.15])
    >>> [ax.get_ylabel() for ax in fig.axes], fig.axes[0].get_title()
    (['density'], 'Layer density over training')
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['fc1', 'fc2', 'network']
    """
    with themed():
        fig, (ax,) = panels(1, panel_size=(6.0, 3.8), max_columns=1)
        draw_layer_lines(ax, epochs, densities)
        if overall is not None:
            ax.plot(float_array(epochs), float_array(overall), color="black", linestyle="--", linewidth=1.6, label="network")
            ax.legend(fontsize="small")
        ax.set_xlabel("epoch")
        ax.set_ylabel("density")
        ax.set_title("Layer density over training")
        ax.set_ylim(bottom=0)
    return finish(fig, path, dpi)


def exploration_curves(
    epochs: Sequence[Any],
    rates: Mapping[str, ArrayLike],
    *,
    overall: ArrayLike | None = None,
    overall_label: str = "network",
    active_share: Mapping[str, ArrayLike] | None = None,
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
    overall_label : str
        Its legend entry (say which layers it sums over when not all).
    active_share : mapping of str to sequence of float, optional
        Layer name -> share of its neurons still present (an input or an output); drawn
        in a second panel when given.
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes (y label ``"exploration rate"``), two with ``active_share`` (the second
        with y label ``"active width / width"``).

    Examples
    --------
    >>> fig = exploration_curves([0, 1, 2], {"fc1": [0.1, 0.15, 0.18]},
    ...                          active_share={"fc1": [1.0, 0.95, 0.9]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['exploration rate', 'active width / width']
    """
    with themed():
        n_panels = 2 if active_share is not None else 1
        fig, axes = panels(n_panels, panel_size=(5.0, 3.6), max_columns=2)
        ax = axes[0]
        draw_layer_lines(ax, epochs, rates)
        if overall is not None:
            ax.plot(float_array(epochs), float_array(overall), color="black", linestyle="--", linewidth=1.6,
                    label=overall_label)
            ax.legend(fontsize="small")
        ax.set_xlabel("epoch")
        ax.set_ylabel("exploration rate")
        ax.set_title("Connections ever active")
        ax.set_ylim(bottom=0)
        if active_share is not None:
            ax = axes[1]
            draw_layer_lines(ax, epochs, active_share)
            ax.set_xlabel("epoch")
            ax.set_ylabel("active width / width")
            ax.set_title("Neurons present")
            ax.set_ylim(0, 1.05)
    return finish(fig, path, dpi)

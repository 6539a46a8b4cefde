"""Drawing topology distances between checkpoints: the NNSTD heatmap and clustermap."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from topo.errors import TopoError
from topo.plotting._shared import themed, finish
from topo.plotting.output import DEFAULT_DPI

__all__ = ["nnstd_heatmap", "nnstd_clustermap"]


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
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the heatmap and its colour bar (labelled ``"NNSTD"``).

    Examples
    --------
    >>> import numpy as np
    >>> distances = np.array([[0.0, 0.2, 0.5], [0.2, 0.0, 0.4], [0.5, 0.4, 0.0]])
    >>> fig = nnstd_heatmap(distances, labels=["epoch 0", "epoch 5", "epoch 10"])
    >>> len(fig.axes), fig.axes[1].get_ylabel()
    (2, 'NNSTD')
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['epoch 0', 'epoch 5', 'epoch 10']
    """
    matrix, labels = _square(matrix, labels)
    n = matrix.shape[0]
    annotate = n <= 12 if annotate is None else annotate
    side = min(14.0, max(3.6, 0.45 * n + 2.5))
    with themed("white") as sns:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(side + 1.0, side), layout="constrained")
        ax = fig.add_subplot()
        sns.heatmap(
            matrix, ax=ax, cmap=cmap, square=True, annot=annotate, fmt=".2f",
            annot_kws={"fontsize": 7}, xticklabels=labels, yticklabels=labels,
            vmin=0.0, cbar_kws={"label": "NNSTD"}, linewidths=0.4 if n <= 30 else 0,
        )
        ax.set_title(title)
        # short labels read level; longer ones turn so that they do not overlap
        ax.tick_params(axis="x", rotation=0 if max(map(len, labels)) * n <= 6 * side else 90)
        ax.tick_params(axis="y", rotation=0)
    return finish(fig, path, dpi)


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
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        The clustermap's figure: heatmap, two dendrograms and a colour bar.

    Raises
    ------
    TopoError
        If the matrix has fewer than two rows, or the method is not allowed.

    Examples
    --------
    ``a`` and ``c`` are near each other and far from ``b``, so the clustering puts them
    side by side:

    >>> import numpy as np
    >>> distances = np.array([[0.0, 0.9, 0.1], [0.9, 0.0, 0.8], [0.1, 0.8, 0.0]])
    >>> fig = nnstd_clustermap(distances, labels=["a", "b", "c"])
    >>> heatmap = fig.axes[2]
    >>> [label.get_text() for label in heatmap.get_xticklabels()]
    ['b', 'a', 'c']
    >>> nnstd_clustermap(distances, method="ward")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: linkage method 'ward' is not for arbitrary distances; use average, single, complete or weighted
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
    with themed("white") as sns:
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
        # horizontal row labels are wider than the vertical ones seaborn laid out for:
        # lay out again, the colour bar kept out of it and put back, as seaborn does
        grid.ax_cbar.set_axis_off()
        fig.tight_layout(h_pad=0.02, w_pad=0.02)
        grid.ax_cbar.set_axis_on()
        grid.ax_cbar.set_position(grid.cbar_pos)
        if title:
            _title_band(fig, title, centre=grid.ax_heatmap)
    return finish(fig, path, dpi)


def _title_band(fig, title: str, *, centre, height: float = 0.5) -> None:
    """Add a band of ``height`` inches above everything and write ``title`` in it.

    seaborn lays out a clustermap to the figure's top edge, so a title on the top axes
    is clipped; making the figure taller and moving every axes down by the same inches
    keeps the layout as drawn and gives the title room of its own.
    """
    width, old = fig.get_size_inches()
    new = old + height
    for ax in fig.axes:
        box = ax.get_position()
        ax.set_position([box.x0, box.y0 * old / new, box.width, box.height * old / new])
    fig.set_size_inches(width, new)
    box = centre.get_position()
    fig.text(box.x0 + box.width / 2, 1 - 0.12 * height / new, title, ha="center", va="top",
             fontweight="bold", fontsize="large")

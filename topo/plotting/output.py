"""Writing figures: the output format from a file's extension, bytes, atomic files."""

from __future__ import annotations

import io
import os
from pathlib import Path

from topo.errors import TopoError

__all__ = ["FIGURE_FORMATS", "DEFAULT_DPI", "figure_format", "figure_bytes", "save_figure"]

#: File extension -> matplotlib output format.
FIGURE_FORMATS: dict[str, str] = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

DEFAULT_DPI = 150


# -- files ---------------------------------------------------------------------------
def figure_format(path: str | os.PathLike) -> str:
    """The output format for ``path``, from its extension.

    Parameters
    ----------
    path : path-like
        The figure file to write; the extension is read case-insensitively.

    Returns
    -------
    str
        ``"png"``, ``"svg"`` or ``"pdf"``.

    Raises
    ------
    TopoError
        If the extension is not ``.png``, ``.svg`` or ``.pdf``.

    Examples
    --------
    >>> figure_format("figures/fanin.PNG"), figure_format("drift.svg")
    ('png', 'svg')
    >>> figure_format("fanin.gif")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: fanin.gif: unsupported figure file extension .gif; use .png, .svg or .pdf
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        shown = suffix or "(none)"
        raise TopoError(
            f"unsupported figure file extension {shown}; use .png, .svg or .pdf", path=path
        )
    return FIGURE_FORMATS[suffix]


def figure_bytes(fig, fmt: str = "png", *, dpi: int = DEFAULT_DPI) -> bytes:
    """Render ``fig`` to bytes in ``fmt`` (``"png"``, ``"svg"`` or ``"pdf"``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    fmt : {"png", "svg", "pdf"}
    dpi : int
        Resolution of raster output.

    Returns
    -------
    bytes

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 2))
    >>> _ = fig.add_subplot().plot([0, 1], [1, 0])
    >>> figure_bytes(fig)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    >>> figure_bytes(fig, "pdf")[:5]
    b'%PDF-'
    """
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

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 2))
    >>> _ = fig.add_subplot().plot([0, 1], [1, 0])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     written = save_figure(fig, Path(tmp) / "plots" / "line.svg")
    ...     print(written.name, written.read_text()[:5])
    line.svg <?xml
    """
    from topo.atomic import atomic_write_bytes

    fmt = figure_format(path)
    return atomic_write_bytes(path, figure_bytes(fig, fmt, dpi=dpi))

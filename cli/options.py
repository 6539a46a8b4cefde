"""Options that several commands share, declared once."""

from __future__ import annotations

from typing import Any, Callable

import click

__all__ = ["DATA_DIR_ENVVAR", "data_dir_option"]

#: the environment variable that names the data folder (read by topo.training.data too)
DATA_DIR_ENVVAR = "TOPO_DATA_DIR"


def data_dir_option(help: str = "Data folder (default: ~/.cache/topo).", **kwargs: Any) -> Callable:
    """``--data-dir DIR``, also taken from ``$TOPO_DATA_DIR`` (shown in ``--help``)."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=str), default=None,
        envvar=DATA_DIR_ENVVAR, show_envvar=True, help=help, **kwargs,
    )

"""Plain values made uniform: numbers that may not be finite, names that hold numbers.

Every module that reads numbers from files (metrics, summaries, checkpoint dicts) or
orders names (layers, weight groups, shards) uses these, so that "missing" and
"``layers.2`` before ``layers.10``" mean the same thing everywhere.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

__all__ = ["finite_float", "natural_key", "natural_sorted"]


def finite_float(value: Any, default: Any = None) -> Any:
    """``float(value)`` when that is a finite number, else ``default``.

    Parameters
    ----------
    value : object
        A number, a numpy or torch scalar, numeric text, None, ...
    default : object
        What stands for "no finite number" (None, or ``math.nan`` for tables).

    Returns
    -------
    float or ``default``
        ``default`` for None, NaN, infinities and whatever ``float()`` refuses.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> finite_float("0.25"), finite_float(np.float32(2.0)), finite_float(None)
    (0.25, 2.0, None)
    >>> finite_float(float("inf")), finite_float("n/a", default=-1.0)
    (None, -1.0)
    >>> math.isnan(finite_float(float("nan"), default=math.nan))
    True
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``layers.2`` before ``layers.10``.

    Parameters
    ----------
    name : str
        Any text (other values are turned into text); letters compare case-insensitively.

    Returns
    -------
    tuple
        Text parts as ``(1, lowercase text)``, digit runs as ``(0, int)``.

    Examples
    --------
    >>> natural_key("layers.10.weight")
    ((1, 'layers.'), (0, 10), (1, '.weight'))
    >>> natural_key("fc2") < natural_key("fc10")
    True
    >>> max(["Block9", "block10"], key=natural_key)
    'block10'
    """
    parts = re.split(r"(\d+)", str(name))
    return tuple((0, int(p)) if i % 2 else (1, p.lower()) for i, p in enumerate(parts))


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` in natural order (see :func:`natural_key`).

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    list of str

    Examples
    --------
    >>> natural_sorted(["layers.10", "layers.2", "layers.1"])
    ['layers.1', 'layers.2', 'layers.10']
    >>> sorted(["fc10", "fc9"]), natural_sorted(["fc10", "fc9"])
    (['fc10', 'fc9'], ['fc9', 'fc10'])
    """
    return sorted(names, key=natural_key)

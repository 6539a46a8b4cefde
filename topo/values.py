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
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``layers.2`` before ``layers.10``."""
    parts = re.split(r"(\d+)", str(name))
    return tuple((0, int(p)) if i % 2 else (1, p.lower()) for i, p in enumerate(parts))


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` in natural order (see :func:`natural_key`)."""
    return sorted(names, key=natural_key)

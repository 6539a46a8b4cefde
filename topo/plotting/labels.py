"""Labels a reader can use: which run and which epoch a checkpoint is, in the fewest characters.

A figure that compares checkpoints of several runs must say which network is which.
Labels here name the run and the epoch (``"a@190"``), leave out what every checkpoint
shares (that goes once into the title: ``"epoch 190"``), shorten run names to what tells
them apart (``"sweep/rigl_s0_mnist"`` and ``"sweep/rigl_s1_mnist"`` become ``"s0"`` and
``"s1"``), and never fall back on positions like ``"epoch_190 (2)"``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Sequence

from topo.topology import Topology

__all__ = [
    "Labels",
    "shortest_run_names",
    "run_epoch_labels",
    "checkpoint_point",
    "checkpoint_label",
    "checkpoint_epochs",
]

# where a run name is cut into words: _ - / and spaces, and dots that do not sit before a
# digit (so "sp0.9" stays one word, "model.pt" is two)
_SEPARATOR = re.compile(r"([_\-/ ]+|\.(?!\d))")


@dataclass(frozen=True)
class Labels:
    """Labels for a sequence of checkpoints and what they all share.

    Attributes
    ----------
    labels : list of str
        One per checkpoint, unique unless the same checkpoint was given twice.
    common : str or None
        What every checkpoint shares and the labels therefore leave out, e.g.
        ``"run rigl_a"`` or ``"epoch 190"``; None when nothing is shared.

    Examples
    --------
    >>> labels = Labels(["a", "b"], common="epoch 190")
    >>> labels.title("NNSTD")
    'NNSTD (epoch 190)'
    >>> Labels(["a@10", "b@20"]).title("NNSTD")
    'NNSTD'
    """

    labels: list[str]
    common: str | None = None

    def title(self, text: str) -> str:
        """``text`` followed by what the labels leave out, e.g. ``"NNSTD (epoch 190)"``."""
        return f"{text} ({self.common})" if self.common else text


def _tails(paths: Sequence[str]) -> list[str]:
    """The fewest trailing path components that tell the (distinct) paths apart."""
    parts = [PurePath(p).parts or (p,) for p in paths]
    longest = max(len(p) for p in parts)
    for k in range(1, longest + 1):
        tails = ["/".join(p[-k:]) for p in parts]
        if len(set(tails)) == len(tails):
            return tails
    return ["/".join(p) for p in parts]


Words = list[tuple[str, str]]


def _words(name: str) -> Words:
    """A name as ``(separator before, word)`` pairs, the first with no separator."""
    words: Words = []
    separator = ""
    for index, piece in enumerate(_SEPARATOR.split(name)):
        if index % 2:
            separator += piece
        elif piece:
            words.append((separator if words else "", piece))
            separator = ""
    return words


def _join(words: Words) -> str:
    return "".join((separator if index else "") + word for index, (separator, word) in enumerate(words))


def _apart(names: list[Words]) -> bool:
    """Whether every name has a word and no two have the same words."""
    return all(names) and len({tuple(word for _, word in name) for name in names}) == len(names)


def _without(name: Words, word: str) -> Words:
    index = next(i for i, (_, w) in enumerate(name) if w == word)
    return name[:index] + name[index + 1:]


def _shorten(names: list[str]) -> list[str]:
    """Drop the words every name has, then trailing words, while the names stay apart."""
    words = [_words(name) for name in names]
    if not _apart(words):
        return names
    for word in dict.fromkeys(w for _, w in words[0]):
        if all(any(w == word for _, w in name) for name in words):
            trial = [_without(name, word) for name in words]
            if _apart(trial):
                words = trial
    # sweeps end names with seeds and ids: drop last words together while they are not needed
    while _apart(trial := [name[:-1] for name in words]):
        words = trial
    return [_join(name) for name in words]


def shortest_run_names(runs: Sequence[str | os.PathLike], *, strip_common: bool = True) -> list[str]:
    """Short names that tell runs apart, one per entry of ``runs`` (repeats get the same name).

    A run is named by the fewest trailing components of its path that are unique among
    the runs given. Then, for labels, the names are cut into words at separators
    (``_ - / .`` and spaces; a dot before a digit is not one, so ``sp0.9`` is a word)
    and shortened while they still tell the runs apart: a word every name has is
    dropped, then the last words of all names together (the seeds and ids a sweep
    appends), never a name to nothing. A single run keeps its folder name.

    Parameters
    ----------
    runs : sequence of str or path-like
        Run folders (or checkpoint paths, or plain names).
    strip_common : bool
        Shorten the names to the words that tell the runs apart (for axis labels);
        False keeps whole folder names (for headings and legends).

    Returns
    -------
    list of str

    Examples
    --------
    >>> shortest_run_names(["sweep/rigl_s0_mnist", "sweep/rigl_s1_mnist"])
    ['s0', 's1']
    >>> shortest_run_names(["mnist-rigl-sp0.9-s0-1f3a", "mnist-set-sp0.9-s0-9c2e", "mnist-set-sp0.8-s0-77d0"])
    ['rigl-sp0.9', 'set-sp0.9', 'set-sp0.8']
    >>> shortest_run_names(["a/seed0", "b/seed0", "a/seed0"])
    ['a', 'b', 'a']
    >>> shortest_run_names(["x/rigl_a", "y/rigl_a"], strip_common=False)
    ['x/rigl_a', 'y/rigl_a']
    >>> shortest_run_names(["runs/rigl_a"])
    ['rigl_a']
    """
    keys = [os.fspath(r) for r in runs]
    distinct = list(dict.fromkeys(keys))
    if not distinct:
        return []
    if len(distinct) == 1:
        name = PurePath(distinct[0]).name or distinct[0]
        return [name] * len(keys)
    names = _tails(distinct)
    if not strip_common:
        return [dict(zip(distinct, names))[k] for k in keys]
    names = _shorten(names)
    shortened = dict(zip(distinct, names))
    return [shortened[k] for k in keys]


def run_epoch_labels(runs: Sequence[str | os.PathLike | None], points: Sequence[Any]) -> Labels:
    """Labels naming each checkpoint's run and epoch in the shortest form that tells them apart.

    The run is written only when the checkpoints come from more than one run, the epoch
    only when they are not all at the same epoch; what is left out is returned in
    :attr:`Labels.common`. Run names are shortened by :func:`shortest_run_names`. A
    checkpoint with neither a run nor an epoch is named by its position (``"#3"``).
    Where the same run and epoch appear more than once (the same checkpoint given
    twice), the repeats are counted: ``"a@5 (2)"``.

    Parameters
    ----------
    runs : sequence of str, path-like or None
        The run each checkpoint belongs to (its folder), None where unknown.
    points : sequence
        Where in the run each checkpoint was taken: the epoch (``190``), an epoch and a
        step (``"190@4500"``), or None where unknown.

    Returns
    -------
    Labels

    Examples
    --------
    >>> run_epoch_labels(["r/rigl_a", "r/rigl_b"], [190, 190])
    Labels(labels=['a', 'b'], common='epoch 190')
    >>> run_epoch_labels(["r/rigl_a", "r/rigl_a", "r/rigl_b"], [10, 20, 20]).labels
    ['a@10', 'a@20', 'b@20']
    >>> run_epoch_labels(["r/rigl_a"] * 2, [0, 5])
    Labels(labels=['0', '5'], common='run rigl_a')
    """
    runs = list(runs)
    points = [None if p is None else str(p) for p in points]
    if len(runs) != len(points):
        raise ValueError(f"{len(runs)} runs for {len(points)} checkpoints")
    known = [r for r in runs if r is not None]
    names = iter(shortest_run_names(known))
    run_names = [None if r is None else next(names) for r in runs]
    distinct_runs = set(os.fspath(r) for r in known)
    distinct_points = set(points)
    show_run = len(distinct_runs) > 1 or (distinct_runs and None in runs)
    show_point = len(distinct_points) > 1
    common = []
    if len(distinct_runs) == 1 and None not in runs:
        common.append(f"run {run_names[0]}")
    if len(distinct_points) == 1 and points and points[0] is not None:
        common.append(f"epoch {points[0]}")
    labels = []
    for index, (run, point) in enumerate(zip(run_names, points)):
        parts = [run if show_run and run is not None else None, point if show_point and point is not None else None]
        if parts[0] is not None and parts[1] is not None:
            labels.append(f"{parts[0]}@{parts[1]}")
        elif parts[0] is not None:
            labels.append(parts[0])
        elif parts[1] is not None:
            labels.append(parts[1])
        else:
            labels.append(f"#{index}")
    return Labels(_count_repeats(labels), ", ".join(common) or None)


def _count_repeats(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def checkpoint_point(topology: Topology) -> str | None:
    """Where in its run a checkpoint was taken (see :func:`topo.runs.checkpoint_place`).

    Parameters
    ----------
    topology : Topology
        A checkpoint, with ``epoch`` (and ``step``, ``path``) in its ``info``.

    Returns
    -------
    str or None
        ``"12"``, ``"12@4500"`` for one taken inside an epoch, None when it records no
        epoch.

    Examples
    --------
    >>> import numpy as np
    >>> masks = [np.eye(2)]
    >>> checkpoint_point(Topology.from_masks(masks, info={"epoch": 12}))
    '12'
    >>> checkpoint_point(Topology.from_masks(masks, info={"epoch": 12, "step": 4500,
    ...                                                   "path": "run/checkpoints/epoch_12_step_4500.npz"}))
    '12@4500'
    >>> checkpoint_point(Topology.from_masks(masks)) is None
    True
    """
    from topo.runs import checkpoint_place

    return checkpoint_place(topology)[1]


def checkpoint_label(topology: Topology, index: int | None = None) -> str:
    """A short label for one checkpoint of a run.

    Parameters
    ----------
    topology : Topology
    index : int, optional
        The checkpoint's position, for the last resort.

    Returns
    -------
    str
        The epoch (``"12"``; ``"12@4500"`` for a checkpoint inside an epoch), else the
        file name without its extension, else ``"#index"`` (``"?"`` without an index).

    Examples
    --------
    >>> import numpy as np
    >>> masks = [np.eye(2)]
    >>> checkpoint_label(Topology.from_masks(masks, info={"epoch": 12}))
    '12'
    >>> checkpoint_label(Topology.from_masks(masks, info={"path": "models/pruned.pt"}))
    'pruned'
    >>> checkpoint_label(Topology.from_masks(masks), index=3)
    '#3'
    """
    point = checkpoint_point(topology)
    if point is not None:
        return point
    if topology.info.get("path"):
        return Path(str(topology.info["path"])).stem
    return f"#{index}" if index is not None else "?"


def checkpoint_epochs(topologies: Sequence[Topology]) -> list[float]:
    """x positions of checkpoints: their epochs where every one has one, else their positions.

    Parameters
    ----------
    topologies : sequence of Topology

    Returns
    -------
    list of float

    Examples
    --------
    >>> import numpy as np
    >>> nets = [Topology.from_masks([np.eye(2)], info={"epoch": e}) for e in (0, 5, 10)]
    >>> checkpoint_epochs(nets)
    [0.0, 5.0, 10.0]
    >>> checkpoint_epochs(nets[:2] + [Topology.from_masks([np.eye(2)])])
    [0.0, 1.0, 2.0]
    """
    epochs = [t.epoch for t in topologies]
    if all(e is not None for e in epochs):
        return [float(e) for e in epochs if e is not None]
    return [float(i) for i in range(len(topologies))]

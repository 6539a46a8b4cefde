"""The base class of sparse-training algorithms and the registry keyed by CLI name.

An algorithm decides the connectivity; the trainer does the optimisation. Its hooks:

- :meth:`Algorithm.initial_masks`: the masks training starts from;
- :meth:`Algorithm.setup`: told the schedule (steps per epoch, total steps) once;
- :meth:`Algorithm.is_update_step` / :meth:`Algorithm.update`: on a training step, may
  return new masks computed from the weights and the dense gradient of the current
  batch; the trainer then skips that step's optimiser step (RigL's rule);
- :meth:`Algorithm.after_epoch`: at the end of an epoch, may return new masks.

Masks returned by a hook replace the model's: the trainer zeroes the weights switched
off, grown weights start at zero (masked weights are always exactly zero), and the
optimiser's state (momentum, Adam moments) is reset to zero wherever a weight was
switched off or grown. Hooks get CPU tensors and must not modify them in place.

The registry follows jaxpruner's layout (``algorithms/`` plus an ``api``-like lookup):
``@register("name")`` on a subclass, :func:`get_algorithm` to build one by name.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "Algorithm",
    "register",
    "get_algorithm",
    "get_algorithm_class",
    "available_algorithms",
    "select_positions",
    "cosine_drop_fraction",
]

_REGISTRY: dict[str, type["Algorithm"]] = {}


def register(name: str) -> Callable[[type["Algorithm"]], type["Algorithm"]]:
    """Class decorator: make an :class:`Algorithm` subclass available under ``name``.

    Registration sets the class's ``name`` and adds the options it declares in
    ``declared_options`` to its ``option_names``.

    Parameters
    ----------
    name : str
        The method's name in ``topo train --method``, sweep files and run.json.

    Returns
    -------
    callable
        The decorator; it returns the class it registers.

    Raises
    ------
    ValueError
        If another class is already registered as ``name``.

    Examples
    --------
    >>> from topo.training.algorithms import SET, Static
    >>> Static.name, SET.name
    ('static', 'set')
    >>> SET.option_names  # its constructor option plus the option SET declares
    ('drop_fraction', 'set_regrow_init')
    >>> register("set")(Static)
    Traceback (most recent call last):
        ...
    ValueError: algorithm name 'set' registered twice
    """

    def decorate(cls: type["Algorithm"]) -> type["Algorithm"]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"algorithm name {name!r} registered twice")
        cls.name = name
        # options the class declares itself are constructor options too
        missing = tuple(k for k in cls.declared_options if k not in cls.option_names)
        cls.option_names = tuple(cls.option_names) + missing
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_algorithms() -> tuple[str, ...]:
    """Registered algorithm names, in registration order.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> available_algorithms()[:8]  # the built-in methods come first
    ('static', 'rigl', 'set', 'ggr', 'prune', 'srigl', 'granet', 'chts')
    """
    return tuple(_REGISTRY)


def get_algorithm_class(name: str) -> type["Algorithm"]:
    """The class registered as ``name``.

    Parameters
    ----------
    name : str
        A registered name (see :func:`available_algorithms`).

    Returns
    -------
    type
        The :class:`Algorithm` subclass.

    Raises
    ------
    TopoError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_algorithm_class("rigl").__name__
    'RigL'
    >>> get_algorithm_class("sgd")
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: unknown training method 'sgd'; known: static, rigl, set, ...
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TopoError(f"unknown training method {name!r}; known: {', '.join(_REGISTRY)}") from None


def get_algorithm(name: str, **options: Any) -> "Algorithm":
    """Build the algorithm registered as ``name`` with its options.

    Options the algorithm does not take are ignored, so a caller can pass the whole
    set of algorithm options of the command line.

    Parameters
    ----------
    name : str
        A registered name (see :func:`available_algorithms`).
    **options
        Algorithm options, named as the :class:`~topo.training.config.TrainConfig` fields.

    Returns
    -------
    Algorithm

    Raises
    ------
    TopoError
        For an unknown name (listing the known ones) or an option out of range.

    Examples
    --------
    >>> algo = get_algorithm("rigl", update_every=50, drop_fraction=0.2, hidden=(64,))
    >>> algo.describe()  # ``hidden`` is not a RigL option, so it is left out
    {'name': 'rigl', 'update_every': 50, 'drop_fraction': 0.2, 'end_fraction': 0.75}
    >>> get_algorithm("set", drop_fraction=1.5)
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: drop_fraction must be in [0, 1], got 1.5
    """
    cls = get_algorithm_class(name)
    wanted = {k: v for k, v in options.items() if k in cls.option_names}
    return cls(**wanted)


def cosine_drop_fraction(step: int, alpha: float, end_step: int) -> float:
    """RigL's drop fraction at ``step``: ``alpha * (1 + cos(pi * step / end_step)) / 2``.

    Parameters
    ----------
    step : int
        The training step; steps past ``end_step`` count as ``end_step``.
    alpha : float
        The drop fraction at step 0.
    end_step : int
        The step at which the fraction reaches 0 (0 or less: always 0).

    Returns
    -------
    float

    Examples
    --------
    >>> cosine_drop_fraction(0, 0.3, 100)
    0.3
    >>> round(cosine_drop_fraction(50, 0.3, 100), 6)  # half-way: half of alpha
    0.15
    >>> cosine_drop_fraction(200, 0.3, 100)
    0.0
    """
    if end_step <= 0:
        return 0.0
    return float(alpha) * (1.0 + float(np.cos(np.pi * min(step, end_step) / end_step))) / 2.0


def select_positions(scores, candidates, n: int, generator, *, largest: bool):
    """Flat indices of the ``n`` candidates with the smallest (or largest) scores.

    Ties are broken at random by ``generator``: the candidates are put in a random
    order first and then sorted stably, which is the same as adding infinitesimal
    noise to the scores (and, unlike real noise, never reorders distinct values).

    Parameters
    ----------
    scores : torch.Tensor
        Flat (1-D) scores.
    candidates : torch.Tensor
        Flat bool tensor: which positions may be picked.
    n : int
        How many to pick; at most the number of candidates.
    generator : torch.Generator
        Breaks ties.
    largest : bool
        Pick the largest scores (True) or the smallest (False).

    Returns
    -------
    torch.Tensor of int64
        The picked positions (as a set: their order carries no meaning).

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7])
    >>> candidates = torch.tensor([True, True, False, True, True])
    >>> g = torch.Generator().manual_seed(0)
    >>> sorted(select_positions(scores, candidates, 2, g, largest=True).tolist())  # 0.9 is not a candidate
    [0, 4]
    >>> sorted(select_positions(scores, candidates, 2, g, largest=False).tolist())
    [1, 3]
    """
    import torch

    index = torch.nonzero(candidates, as_tuple=False).reshape(-1)
    count = index.numel()
    n = int(min(max(int(n), 0), count))
    if n == 0:
        return index[:0]
    # the random order of the candidates: drawn even when it decides nothing, so that
    # the generator advances alike whatever the scores are
    order = torch.randperm(count, generator=generator)
    if n == count:
        return index
    values = scores[index]
    if values.is_floating_point() and bool(torch.isnan(values).any()):
        picked = torch.sort(values[order], stable=True, descending=largest).indices[:n]
        return index[order[picked]]
    # The same set as a stable sort's first n of the candidates in random order, with
    # no sort and no gather in that order: every value strictly beyond the n-th best,
    # then the ties at it, the first ones in the random order where not all are needed.
    threshold = _kth_smallest(values, count - n + 1 if largest else n)
    chosen = values > threshold if largest else values < threshold
    ties = values == threshold
    need = n - int(torch.count_nonzero(chosen))
    if need < int(torch.count_nonzero(ties)):
        first = torch.nonzero(ties[order], as_tuple=False).reshape(-1)[:need]
        ties = torch.zeros_like(ties)
        ties[order[first]] = True
    chosen |= ties
    return index[chosen]


def _kth_smallest(values, k: int):
    """The ``k``-th smallest (1-based) of a flat tensor without NaN, as a 0-d tensor of its dtype.

    numpy's introselect on CPU float tensors (several times faster there than
    ``torch.kthvalue``), ``torch.kthvalue`` elsewhere; both give the exact value.
    """
    import torch

    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        array = values.detach().numpy()
        return torch.as_tensor(np.partition(array, k - 1)[k - 1])
    return torch.kthvalue(values, k).values


def random_positions(candidates, n: int, generator):
    """Flat indices of ``n`` candidates drawn uniformly without replacement."""
    import torch

    index = torch.nonzero(candidates, as_tuple=False).reshape(-1)
    n = int(min(max(int(n), 0), index.numel()))
    return index[torch.randperm(index.numel(), generator=generator)[:n]]


class Algorithm:
    """A sparse-training algorithm: how the masks start and how they change.

    Subclasses set ``option_names`` (the constructor's keyword options, named as the
    :class:`~topo.training.config.TrainConfig` fields they come from) and override the
    hooks they need. The base class keeps the masks fixed (that is ``static``).

    A method with options no other method has declares them in ``declared_options``:
    ``{"name": topo.training.schema.option(default, type=..., help=..., ...)}``. They
    become :class:`~topo.training.config.TrainConfig` fields, ``topo train`` flags and
    sweep keys, and are added to ``option_names`` on registration. Checks between
    options go in :meth:`check_config`.

    Examples
    --------
    The base class is the ``static`` rule: masks never change.

    >>> import torch
    >>> algo = get_algorithm("static")
    >>> masks = [torch.tensor([[True, False], [False, True]]), torch.ones(1, 2, dtype=torch.bool)]
    >>> algo.setup(masks=masks, steps_per_epoch=10, epochs=3, total_steps=30)
    >>> algo.frozen  # layers that start fully dense are left alone
    {1}
    >>> algo.is_update_step(10), algo.after_epoch(1, None, masks, None)
    (False, None)
    >>> algo.state_dict()
    {'name': 'static', 'total_steps': 30, 'steps_per_epoch': 10, 'epochs': 3, 'frozen': [1]}
    """

    name: ClassVar[str] = ""
    option_names: ClassVar[tuple[str, ...]] = ()
    declared_options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Check a whole :class:`~topo.training.config.TrainConfig` for this method.

        Called by ``TrainConfig.validate`` after every option passed its own range
        check; the base class accepts everything.

        Raises
        ------
        TopoError
            Naming the option (as its configuration field, ``name``) that does not suit
            this method; :class:`~topo.training.schema.OptionError` where one option is at fault.
        """

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.option_names)
        if unknown:
            raise TopoError(f"{self.name}: unknown options {', '.join(sorted(unknown))}")
        self.options = dict(options)
        self.total_steps = 0
        self.steps_per_epoch = 0
        self.epochs = 0
        #: indices of layers the algorithm leaves alone (those that start fully dense)
        self.frozen: set[int] = set()

    # -- hooks ----------------------------------------------------------------------
    def grown_values(self, count: int, generator):
        """Start values of ``count`` weights one layer grew at the end of an epoch, in
        row-major order of their positions, as a float tensor; None (the default) keeps
        them at 0. Drawn from ``generator`` (the epoch's), so a resumed run draws the same."""
        return None

    def initial_masks(self, shapes: Sequence[tuple[int, int]], **mask_options: Any):
        """The masks training starts from: :func:`topo.training.masks.initial_masks`.

        Returns
        -------
        InitialMasks
        """
        from topo.training.masks import initial_masks

        return initial_masks(shapes, **mask_options)

    def setup(self, *, masks: Sequence[Any], steps_per_epoch: int, epochs: int, total_steps: int) -> None:
        """Called once before training (not again on resume: state comes from :meth:`load_state_dict`).

        ``epochs`` is the number of training epochs before any retraining phase and
        ``total_steps`` the number of optimiser steps of the whole run.
        """
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.total_steps = int(total_steps)
        self.frozen = {k for k, m in enumerate(masks) if _is_full(m)}

    def is_update_step(self, step: int) -> bool:
        """Whether :meth:`update` wants to run at global step ``step`` (1-based)."""
        return False

    def update(self, step: int, weights, grads, masks, generator) -> list | None:
        """New masks at an update step, or None. ``grads`` are dense gradients of the batch."""
        return None

    def after_epoch(self, epoch: int, weights, masks, generator) -> list | None:
        """New masks at the end of epoch ``epoch`` (1-based), or None."""
        return None

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain values needed to resume (saved with torch.save, read with weights_only=True)."""
        return {
            "name": self.name,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "frozen": sorted(self.frozen),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total_steps = int(state["total_steps"])
        self.steps_per_epoch = int(state["steps_per_epoch"])
        self.epochs = int(state["epochs"])
        self.frozen = {int(k) for k in state.get("frozen", [])}

    def describe(self) -> dict[str, Any]:
        """Name and options, for run.json."""
        return {"name": self.name, **self.options}


def _is_full(mask) -> bool:
    """Whether a mask (numpy, torch or scipy sparse) has every position active."""
    import scipy.sparse as sp

    if sp.issparse(mask):
        return int(mask.nnz) == int(mask.shape[0]) * int(mask.shape[1])
    return bool(np.asarray(_to_numpy(mask)).all())


def _to_numpy(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)

"""What a training run starts from: device, determinism, data and initial masks.

Everything here is decided once, before the first step of :func:`topo.training.trainer.train`
(and again, except the masks, when :func:`topo.training.trainer.resume` continues a run):
which device trains, how torch is made deterministic, which data set is loaded, and which
masks the network starts with (an algorithm's own, a fan-in profile read from another
run's equilibrium, a random-graph prior, or a saved network's masks).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from topo.errors import TopoError
from topo.training.config import TrainConfig
from topo.training.priors import is_prior_spec

__all__ = [
    "StartingMasks",
    "starting_masks",
    "equilibrium_profile_per_layer",
    "checkpoint_initial_masks",
    "resolve_device",
    "set_determinism",
    "library_versions",
    "load_training_data",
]


def resolve_device(name: str) -> str:
    """The torch device of ``--device``: ``auto`` is ``cuda`` when available, else ``cpu``.

    Parameters
    ----------
    name : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    TopoError
        If ``cuda`` is asked for and none is available.

    Examples
    --------
    >>> import torch
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    True
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TopoError("device 'cuda': no CUDA device is available (use 'cpu' or 'auto')")
    return name


def set_determinism(config: TrainConfig, device: str) -> int:
    """Fix torch's thread count (and on CUDA its algorithms); returns the thread count.

    Parameters
    ----------
    config : TrainConfig
        Its ``threads`` (default ``min(cores, 8)``).
    device : str
        The resolved device (:func:`resolve_device`).

    Returns
    -------
    int
        The number of torch CPU threads now set.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> set_determinism(TrainConfig(threads=1), "cpu"), torch.get_num_threads()
    (1, 1)
    >>> torch.set_num_threads(before)  # this process's setting, as it was
    """
    import torch

    threads = int(config.threads) if config.threads else min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    if device == "cuda":
        # cuBLAS is deterministic only with a fixed workspace. On the CPU every op the
        # trainer uses is deterministic already, and the switch costs seconds of imports.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return threads


def library_versions() -> dict[str, str]:
    """The versions of topo, torch and numpy, as a run records them.

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> import numpy as np
    >>> versions = library_versions()
    >>> sorted(versions), versions["numpy"] == np.__version__
    (['numpy', 'topo', 'torch'], True)
    """
    import torch

    from topo._version import __version__

    return {"topo": __version__, "torch": torch.__version__, "numpy": np.__version__}


def load_training_data(config: TrainConfig, data_dir=None):
    """The data set ``config`` names, split as its seed and validation fraction say.

    Parameters
    ----------
    config : TrainConfig
    data_dir : path-like, optional
        Where to read it from (default ``config.data_dir``).

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = load_training_data(TrainConfig(dataset="digits", val_fraction=0.25, seed=1))
    >>> data.name, len(data.y_val), len(data.y_train) + len(data.y_val) + len(data.y_test)
    ('digits', 360, 1797)
    """
    from topo.training.data import load_dataset

    return load_dataset(
        config.dataset,
        data_dir=data_dir if data_dir is not None else config.data_dir,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )


def equilibrium_profile_per_layer(init: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """``profile_per_layer`` for ``--init equilibrium:RUN_OR_FILE``: lognormal, the profile's CVs.

    Parameters
    ----------
    init : str
        ``"equilibrium:"`` and a profile file or run folder (:func:`topo.runs.read_profile`).
    names : list of str
        The network's layer names; layers the profile lacks (or has no CV for) are left
        to the configuration's own profile.

    Returns
    -------
    dict
        ``{layer: {"profile": "lognormal", "cv": cv}}``.

    Raises
    ------
    TopoError
        If the profile cannot be read or names none of the network's layers.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo.runs import save_profile
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> path = save_profile({"fc1": {"mu": 2.0, "sigma": 0.5}}, folder / "profile.json")
    >>> per_layer = equilibrium_profile_per_layer(f"equilibrium:{path}", ["fc1", "fc2"])
    >>> per_layer["fc1"]["profile"], round(per_layer["fc1"]["cv"], 4), "fc2" in per_layer
    ('lognormal', 0.5329, False)
    >>> import shutil; shutil.rmtree(folder)
    """
    spec = str(init)
    if not spec.startswith("equilibrium:") or not spec[len("equilibrium:"):]:
        raise TopoError(f"init: expected equilibrium:RUN_OR_FILE, got {spec!r}")
    from topo.runs import read_profile

    profile = read_profile(spec[len("equilibrium:"):])
    per_layer = {}
    for name in names:
        entry = profile.get(name)
        if entry is None:
            continue
        cv = float(entry["cv"])
        if not math.isfinite(cv):
            continue
        per_layer[name] = {"profile": "lognormal", "cv": cv}
    if not per_layer:
        raise TopoError(
            f"init: the profile names none of this network's layers ({', '.join(names)}); it has {', '.join(profile) or 'none'}"
        )
    return per_layer


def checkpoint_initial_masks(init: str, shapes: Sequence[tuple[int, int]], names: Sequence[str]):
    """Initial masks for ``--init masks:CHECKPOINT``: the masks of a saved network.

    The checkpoint is read with :func:`topo.formats.load` (masks only), so it may be a
    topo checkpoint, a run folder (its last checkpoint) or a foreign checkpoint topo
    reads. Its layers are taken in order and must have the network's shapes.

    Parameters
    ----------
    init : str
        ``"masks:PATH"``.
    shapes : sequence of (int, int)
        ``(out, in)`` of the network's layers.
    names : sequence of str
        The network's layer names (for messages).

    Returns
    -------
    InitialMasks
        The checkpoint's masks (bool ``[out, in]``), their fan-in CVs and sizes.

    Raises
    ------
    TopoError
        If ``init`` names no path, the checkpoint cannot be read, or its layer count
        or a layer's shape differs from the network's.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from topo import Topology
    >>> from topo.checkpoint import save_checkpoint
    >>> folder_tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(folder_tmp.name)
    >>> saved = Topology.from_masks([np.array([[1, 1, 0], [0, 1, 0]]), np.array([[1, 0], [1, 1]])], names=["a", "b"])
    >>> path = save_checkpoint(saved, folder / "net.safetensors")
    >>> init = checkpoint_initial_masks(f"masks:{path}", [(2, 3), (2, 2)], ["fc1", "fc2"])
    >>> init.masks[0].astype(int).tolist(), init.budgets, [round(cv, 3) for cv in init.achieved_cv]
    ([[1, 1, 0], [0, 1, 0]], [3, 3], [0.333, 0.333])
    >>> checkpoint_initial_masks(f"masks:{path}", [(2, 3), (4, 2)], ["fc1", "fc2"])
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: ...net.safetensors: ...layer b is 2x2 ([out, in]), the network's fc2 is 4x2
    >>> import shutil; shutil.rmtree(folder)
    """
    from topo.analysis.degree import coefficient_of_variation
    from topo.formats import load
    from topo.training.masks import InitialMasks

    spec = str(init)
    path = spec[len("masks:"):]
    if not spec.startswith("masks:") or not path:
        raise TopoError(f"init: expected masks:CHECKPOINT, got {spec!r}")
    topology = load(path, weights=False)
    if len(topology) != len(shapes):
        raise TopoError(
            f"init masks: the checkpoint has {len(topology)} layers, the network {len(shapes)}", path=path
        )
    masks: list[np.ndarray] = []
    for layer, shape, name in zip(topology, shapes, names):
        if tuple(layer.shape) != tuple(shape):
            raise TopoError(
                f"init masks: layer {layer.name} is {layer.shape[0]}x{layer.shape[1]} ([out, in]), "
                f"the network's {name} is {shape[0]}x{shape[1]}",
                path=path,
            )
        masks.append(layer.mask.toarray().astype(bool))
    achieved = [coefficient_of_variation(m.sum(axis=1)) if m.any() else float("nan") for m in masks]
    return InitialMasks(masks=masks, achieved_cv=achieved, budgets=[int(m.sum()) for m in masks])


@dataclass(frozen=True)
class StartingMasks:
    """The masks a run starts with and where they came from (recorded in ``run.json``).

    Attributes
    ----------
    initial : InitialMasks
        The masks, their achieved fan-in CVs and budgets.
    profile_per_layer : dict or None
        The per-layer fan-in profiles of ``--init equilibrium:...``.
    prior : str or None
        The random-graph prior of ``--init ws:...`` / ``ba:...``.

    Examples
    --------
    >>> start = starting_masks(TrainConfig(method="static", sparsity=0.5, init="ws:k=4,p=0.1"), [(8, 64), (10, 8)], ["fc1", "fc2"])
    >>> start.prior, start.profile_per_layer, start.initial.budgets
    ('ws:k=4,p=0.1', None, [237, 59])
    """

    initial: Any
    profile_per_layer: dict[str, dict[str, Any]] | None
    prior: str | None


def starting_masks(config: TrainConfig, shapes: Sequence[tuple[int, int]], names: Sequence[str]) -> StartingMasks:
    """The initial masks of a new run of ``config`` with layers ``shapes`` named ``names``.

    The method's algorithm draws them (from the sparsity, layer densities and fan-in
    profile of ``config``); ``--init equilibrium:...`` gives it per-layer profiles,
    ``--init ws:...`` / ``ba:...`` a random-graph prior, and ``--init masks:...``
    replaces them with a saved network's masks.

    Raises
    ------
    TopoError
        As the algorithm, :func:`equilibrium_profile_per_layer` and
        :func:`checkpoint_initial_masks` raise.

    Examples
    --------
    A 64-8-10 network at half its weights, the budget split by ERK:

    >>> config = TrainConfig(method="static", sparsity=0.5, hidden=(8,), seed=0)
    >>> start = starting_masks(config, [(8, 64), (10, 8)], ["fc1", "fc2"])
    >>> [mask.shape for mask in start.initial.masks], start.initial.budgets, sum(start.initial.budgets)
    ([(8, 64), (10, 8)], [237, 59], 296)
    >>> start.profile_per_layer is None and start.prior is None
    True
    >>> again = starting_masks(config, [(8, 64), (10, 8)], ["fc1", "fc2"])  # the same seed, the same masks
    >>> all((a == b).all() for a, b in zip(start.initial.masks, again.initial.masks))
    True
    """
    from topo.training.algorithms import get_algorithm
    from topo.training.backends import DENSE_LIMIT

    algorithm = get_algorithm(config.method, **config.algorithm_options())
    masks_init = str(config.init or "").startswith("masks:")
    # --init ws:... / ba:...: a random-graph prior draws the masks (topo.training.priors)
    prior = str(config.init) if config.init and is_prior_spec(str(config.init)) else None
    profile_per_layer = (
        equilibrium_profile_per_layer(config.init, list(names))
        if config.init and not masks_init and prior is None
        else None
    )
    init = algorithm.initial_masks(
        shapes,
        sparsity=config.sparsity,
        density=config.density,
        profile=config.profile,
        cv=config.cv,
        hub_placement=config.hub_placement,
        dense_output=config.dense_output,
        density_map=config.density_map,
        seed=config.seed,
        names=names,
        profile_per_layer=profile_per_layer,
        **({"prior": prior} if prior is not None else {}),
        # the sparse backends never form layers above DENSE_LIMIT densely, not even their masks
        **({"sparse_above": DENSE_LIMIT} if config.backend != "masked" else {}),
    )
    if masks_init:
        # start from a saved network's masks (e.g. a perturbed copy of another run's)
        init = checkpoint_initial_masks(str(config.init), shapes, names)
    return StartingMasks(init, profile_per_layer, prior)

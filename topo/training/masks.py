"""Initial sparse masks of a network: layer budgets, then a fan-in profile per layer.

:func:`initial_masks` splits the network's weight budget over its layers
(:func:`topo.training.densities.layer_budgets`), gives each layer's neurons fan-ins
from a profile (:func:`topo.training.profiles.fan_in_profile`) and draws every
neuron's inputs uniformly without replacement
(:func:`topo.training.profiles.sample_mask`).  All randomness comes from one
``numpy.random.default_rng(seed)``, used layer by layer in order (fan-ins, then the
mask; a dense layer draws nothing), so the same arguments and seed give the same
masks bit for bit.  With ``prior`` (``"ws:..."`` / ``"ba:..."``), a random-graph
model (:mod:`topo.training.priors`) draws each layer's mask instead of a profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from topo.errors import TopoError
from topo.training.densities import check_shapes, layer_budgets, resolve_layer
from topo.training.profiles import HUB_PLACEMENTS, PROFILES, fan_in_profile, sample_mask

__all__ = ["InitialMasks", "initial_masks"]


@dataclass(frozen=True)
class InitialMasks:
    """Initial masks of a network and what they came to.

    Attributes
    ----------
    masks : list of numpy.ndarray of bool
        One ``[out, in]`` mask per layer (scipy CSR for a layer drawn sparse, see
        ``sparse_above``).
    achieved_cv : list of float
        Fan-in CV (population std over mean) of each mask; 0 for a dense layer, NaN
        for a layer without weights.
    budgets : list of int
        Number of weights of each mask.

    Examples
    --------
    >>> import numpy as np
    >>> result = InitialMasks(masks=[np.eye(2, dtype=bool)], achieved_cv=[0.0], budgets=[2])
    >>> result.budgets, int(result.masks[0].sum())
    ([2], 2)
    """

    masks: list[np.ndarray]
    achieved_cv: list[float]
    budgets: list[int]


def _layer_profiles(profile, cv, hub_placement, profile_per_layer, n_layers, names):
    """Profile, cv and placement of each layer, with the per-layer overrides applied."""
    settings = [{"profile": profile, "cv": cv, "hub_placement": hub_placement} for _ in range(n_layers)]
    if profile_per_layer is None:
        return settings
    if isinstance(profile_per_layer, Mapping):
        items = [
            (resolve_layer(key, n_layers, names, "profile_per_layer"), value)
            for key, value in profile_per_layer.items()
        ]
    else:
        entries = list(profile_per_layer)
        if len(entries) != n_layers:
            raise TopoError(f"profile_per_layer has {len(entries)} entries for {n_layers} layers")
        items = list(enumerate(entries))
    for index, entry in items:
        if entry is None:
            continue
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"profile", "cv", "hub_placement"}
            if unknown:
                raise TopoError(f"profile_per_layer: unknown keys {sorted(unknown)} for layer {index}")
            override = dict(entry)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            override = {"profile": entry[0], "cv": entry[1]}
        else:
            raise TopoError(
                f"profile_per_layer: entry for layer {index} must be (profile, cv), a dict or None, got {entry!r}"
            )
        settings[index].update(override)
    return settings


def initial_masks(
    shapes: Sequence[tuple[int, int]],
    sparsity: float,
    *,
    density: str = "erk",
    profile: str = "random",
    cv: float | None = None,
    hub_placement: str = "index",
    dense_output: bool = False,
    density_map: Mapping[int | str, float] | None = None,
    seed: int = 0,
    names: Sequence[str] | None = None,
    profile_per_layer=None,
    prior=None,
    kernel_sizes=None,
    sparse_above: int | None = None,
) -> InitialMasks:
    """Sparse initial masks for layers of the given shapes.

    Parameters
    ----------
    shapes : sequence of (int, int)
        ``(out, in)`` of each layer.
    sparsity : float
        Fraction of all weights that are zero, in ``[0, 1)``.
    density : {"erk", "uniform"}
        How the budget is split over layers (see :func:`layer_budgets`).
    profile : str
        Fan-in profile within each layer, one of
        :data:`topo.training.profiles.PROFILES`; ``"random"`` is uniform placement.
    cv : float, optional
        Target fan-in CV for a parametric profile.
    hub_placement : {"index", "shuffled"}
        Where the largest fan-ins sit (see :func:`fan_in_profile`).
    dense_output : bool
        Keep the last layer dense.
    density_map : mapping of int or str to float, optional
        Explicit densities of some layers, by index or name.
    seed : int
        Seed of the one generator all draws come from.
    names : sequence of str, optional
        Layer names (for ``density_map`` / ``profile_per_layer`` keys and messages).
    profile_per_layer : sequence or mapping, optional
        Per-layer overrides of ``profile`` / ``cv`` / ``hub_placement``: either a
        sequence with one entry per layer, or a mapping from layer index or name to an
        entry; an entry is ``None`` (no override), a ``(profile, cv)`` pair, or a dict
        with some of the keys ``"profile"``, ``"cv"``, ``"hub_placement"``.  For
        example ``[("lognormal", 1.2), ("lognormal", 0.8), None]``.
    kernel_sizes : sequence of sequences of int, optional
        Kernel dimensions of convolutions given as ``[out, in_channels * prod(kernel)]``
        (empty for dense layers), for the kernel-aware ERK (see :func:`layer_budgets`).
    sparse_above : int, optional
        Layers with more weights than this are drawn row by row without forming the
        dense matrix (:func:`topo.training.sparse_layers.sample_mask_csr`, other random
        numbers than the dense draw) and returned as scipy CSR; the sparse training
        backend uses it for layers too large to hold densely. Other layers are drawn
        as without it.

    Returns
    -------
    InitialMasks
        ``masks`` (bool ``[out, in]``), ``achieved_cv`` and ``budgets`` per layer; a
        layer whose budget is its whole size is all True whatever its profile.

    Raises
    ------
    TopoError
        For bad shapes, sparsity, rule, profile, placement, cv or prior, or a layer
        whose budget the profile cannot meet (message names the layer).

    Examples
    --------
    A 20-8-4 network at 75% sparsity, fan-ins decreasing exponentially at a CV near 0.5:

    >>> result = initial_masks([(8, 20), (4, 8)], 0.75, profile="exponential", cv=0.5, seed=0)
    >>> result.budgets, sum(result.budgets)  # ERK's split of round(0.25 * 192)
    ([34, 14], 48)
    >>> [mask.sum(axis=1).tolist() for mask in result.masks]
    [[8, 7, 5, 4, 3, 3, 2, 2], [6, 4, 2, 2]]
    >>> [round(cv, 3) for cv in result.achieved_cv]
    [0.496, 0.474]
    >>> initial_masks([(8, 20), (4, 8)], 0.75, dense_output=True).budgets  # the output layer is full
    [16, 32]
    >>> type(initial_masks([(8, 20), (4, 8)], 0.75, sparse_above=100).masks[0]).__name__
    'csr_matrix'
    """
    layers = check_shapes(shapes)
    n_layers = len(layers)
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != n_layers:
            raise TopoError(f"{len(names)} layer names given for {n_layers} layers")
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise TopoError(f"seed must be an integer, got {seed!r}") from None
    if seed < 0:
        raise TopoError(f"seed must be >= 0, got {seed}")
    budgets = layer_budgets(
        layers, sparsity, rule=density, density_map=density_map, dense_output=dense_output, names=names,
        kernel_sizes=kernel_sizes,
    )
    if prior is not None:
        from topo.training.priors import parse_prior

        prior = parse_prior(prior)
        if profile != "random" or cv is not None or profile_per_layer is not None:
            raise TopoError(
                f"the prior {prior.spec!r} replaces the fan-in profile; leave profile at 'random', cv and profile_per_layer unset"
            )
    settings = _layer_profiles(profile, cv, hub_placement, profile_per_layer, n_layers, names)
    for index, setting in enumerate(settings):
        label = names[index] if names is not None else f"layer {index}"
        if setting["profile"] not in PROFILES:
            raise TopoError(
                f"{label}: unknown fan-in profile {setting['profile']!r} (choose from {', '.join(PROFILES)})"
            )
        if setting["hub_placement"] not in HUB_PLACEMENTS:
            raise TopoError(f"{label}: unknown hub placement {setting['hub_placement']!r}")

    rng = np.random.default_rng(seed)
    masks: list = []
    achieved: list[float] = []
    for index, ((n_out, n_in), budget, setting) in enumerate(zip(layers, budgets, settings)):
        label = names[index] if names is not None else f"layer {index}"
        large = sparse_above is not None and n_out * n_in > int(sparse_above)
        if budget == n_out * n_in:
            masks.append(_full_csr(n_out, n_in) if large else np.ones((n_out, n_in), dtype=bool))
            achieved.append(0.0)
            continue
        if prior is not None and large:
            raise TopoError(f"{label}: a random-graph prior draws dense masks; this layer is too large for one")
        if prior is not None:
            from topo.training.priors import prior_mask

            try:
                mask = prior_mask(prior, n_out, n_in, budget, rng)
            except TopoError as error:
                raise TopoError(f"{label}: {error}") from None
            masks.append(mask)
            row_counts = mask.sum(axis=1)
            mean = row_counts.mean()
            achieved.append(float(row_counts.std() / mean) if mean > 0 else float("nan"))
            continue
        try:
            fan_in = fan_in_profile(
                setting["profile"],
                n_out,
                n_in,
                budget,
                cv=setting["cv"],
                hub_placement=setting["hub_placement"],
                rng=rng,
            )
        except TopoError as error:
            raise TopoError(f"{label}: {error}") from None
        if large:
            from topo.training.sparse_layers import sample_mask_csr

            masks.append(sample_mask_csr(fan_in, n_in, rng))
        else:
            masks.append(sample_mask(fan_in, n_in, rng))
        mean = fan_in.mean()
        achieved.append(float(fan_in.std() / mean) if mean > 0 else float("nan"))
    return InitialMasks(masks=masks, achieved_cv=achieved, budgets=[int(b) for b in budgets])


def _full_csr(n_out: int, n_in: int):
    """An all-True ``[n_out, n_in]`` mask as scipy CSR."""
    import scipy.sparse as sp

    indptr = np.arange(n_out + 1, dtype=np.int64) * n_in
    indices = np.tile(np.arange(n_in, dtype=np.int64), n_out)
    return sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, indptr), shape=(n_out, n_in))

"""``chts``: Cannistraci-Hebb training, soft rule (Zhang et al., ICLR 2024; arXiv 2501.19107).

CHTs regrows connections without gradients, by *link prediction* on each layer's
bipartite graph (outputs and inputs are the two sides; an edge is an active weight).

CH2-L3n score (the node-based Cannistraci-Hebb rule on paths of length 3). For a missing
link between output ``u`` and input ``v``, the paths of length 3 are ``u - z1 - z2 - v``
with ``z1`` an input of ``u`` and ``z2`` an output fed by ``v``. Every intermediate node
``z`` that is a neighbour of one seed and shares neighbours with the other contributes::

    CH2-L3n(u, v) = sum over such z of (1 + di_z) / (1 + de_z)

where ``di_z`` (internal links) is the number of ``z``'s links into the other seed's
neighbourhood (the number of length-3 paths through ``z``) and ``de_z`` (external links)
the number of its links that leave the local community, not counting the link to its
own seed: ``de_z = max(deg(z) - di_z - 1, 0)``. With ``A`` the 0/1 mask ``[out, in]``,
``C = A Aᵀ`` (outputs' common inputs), ``D = Aᵀ A`` (inputs' common outputs), ``r`` the
fan-ins (row sums of ``A``) and ``c`` the fan-outs (column sums)::

    F[u, z] = (1 + C[u, z]) / max(r[z] - C[u, z], 1)   where C[u, z] > 0, else 0
    G[v, z] = (1 + D[v, z]) / max(c[z] - D[v, z], 1)   where D[v, z] > 0, else 0
    S = F A + A Gᵀ

four sparse products (scipy.sparse), never a dense ``n × n`` loop. ``S[u, v]`` is read
only where ``A[u, v] = 0``.

Update (every ``update_every`` steps ΔT while ``step <= end_fraction · total_steps``,
T_end), in each layer that does not start dense, from the input side:

1. *soft removal*: with ``n = floor(α_t · nnz)`` (``α_t = α (1 + cos(π t / T_end)) / 2``,
   ``α = drop_fraction``, as RigL), keep ``nnz - n`` active weights drawn without
   replacement with probability proportional to ``|w|^β_t`` and remove the other ``n``
   (a weighted draw by exponential keys: the largest ``β log|w| + Gumbel`` are kept);
2. *chain removal* (``chain_removal``, on by default): a hidden neuron left with no
   inputs or no outputs is removed, all its links go (its row in its layer, its column
   in the next one), repeated until no such neuron is left; network inputs and outputs
   are never removed. A removed neuron has no inputs and no outputs, and never returns
   (regrowth only joins present neurons), so the active width shrinks while it trains;
3. *soft regrowth*: each layer grows back to its budget ``K`` (its number of weights at
   the start): ``K - nnz`` missing positions between present neurons, drawn without
   replacement with probability proportional to ``CH2-L3n^β_t`` among those of positive
   score; if fewer have a positive score, the rest are drawn uniformly among the other
   missing positions between present neurons.

``β_t = 1 / T_t`` is an inverse temperature: it goes from ``chts_beta_start`` to
``chts_beta_end`` over ``[0, T_end]`` on ``chts_beta_schedule`` (``linear``: ``β0 + (β1 -
β0) t / T_end``; ``cosine``: ``β1 + (β0 - β1) (1 + cos(π t / T_end)) / 2``; ``constant``:
``β0``). Defaults 1 to 9 linearly, the papers' setting: sampling starts proportional to
the score and grows close to picking the top scores as the temperature anneals.

So after every update each sparse layer has exactly ``K`` active weights (fewer only
when fewer positions between present neurons exist). Grown weights start at 0 with
zeroed optimiser state and the trainer skips the optimiser step of an update step, as
for RigL. Dense (frozen) layers are not updated, except that chain removal switches off
a removed neuron's links there too. Initial masks: the density rule's, or a prior such as
``--init brf:r=R`` (:mod:`topo.training.priors`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.training.algorithms.base import register
from topo.training.algorithms.rigl import RigL
from topo.training.schema import OptionError, option

__all__ = ["CHTs", "ch2_l3n_scores", "inverse_temperature", "chain_removal", "soft_removal", "regrow"]

BETA_SCHEDULES = ("linear", "cosine", "constant")


def ch2_l3n_scores(mask):
    """CH2-L3n scores of every position of one layer (see the module docstring).

    Parameters
    ----------
    mask : numpy.ndarray or scipy.sparse matrix, bool, shape ``[out, in]``
        The layer's active weights.

    Returns
    -------
    scipy.sparse.csr_matrix of float64, shape ``[out, in]``
        ``S``; only its entries at missing links (``mask == 0``) are link scores.

    Examples
    --------
    Output 2 and input 0 are joined by two paths of length 3 (through input 1 and
    outputs 0 or 1); output 3 and input 3 form a component of their own, so no
    missing link to them has a path of length 3 and all score 0:

    >>> import numpy as np
    >>> mask = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    >>> scores = ch2_l3n_scores(mask).toarray()
    >>> np.where(mask, -1, scores)  # -1 marks the active links
    array([[-1., -1.,  3.,  0.],
           [-1., -1.,  3.,  0.],
           [ 7., -1., -1.,  0.],
           [ 0.,  0.,  0., -1.]])
    """
    import scipy.sparse as sp

    a = sp.csr_matrix(mask, dtype=np.float64)
    a.eliminate_zeros()
    a.data[:] = 1.0
    fan_in = np.asarray(a.sum(axis=1)).ravel()
    fan_out = np.asarray(a.sum(axis=0)).ravel()
    at = a.T.tocsr()

    def community(common, degree):
        common = common.tocoo()
        values = (1.0 + common.data) / np.maximum(degree[common.col] - common.data, 1.0)
        return sp.csr_matrix((values, (common.row, common.col)), shape=common.shape)

    f = community(a @ at, fan_in)  # [out, out]
    g = community(at @ a, fan_out)  # [in, in]
    return (f @ a + a @ g.T).tocsr()


def inverse_temperature(step: int, end_step: int, start: float, end: float, schedule: str) -> float:
    """``β_t`` at ``step`` (see the module docstring); ``end`` from ``end_step`` on.

    Parameters
    ----------
    step : int
        The training step.
    end_step : int
        T_end, the step at which ``β`` reaches ``end``.
    start, end : float
        ``β`` at step 0 and at ``end_step``.
    schedule : {"linear", "cosine", "constant"}
        The path between them (``constant`` stays at ``start``).

    Returns
    -------
    float

    Raises
    ------
    TopoError
        For an unknown schedule.

    Examples
    --------
    >>> [inverse_temperature(step, 100, 1.0, 9.0, "linear") for step in (0, 25, 100, 150)]
    [1.0, 3.0, 9.0, 9.0]
    >>> round(inverse_temperature(25, 100, 1.0, 9.0, "cosine"), 4)  # slower at first
    2.1716
    >>> inverse_temperature(50, 100, 1.0, 9.0, "constant")
    1.0
    """
    if schedule == "constant":
        return float(start)
    if end_step <= 0:
        return float(end)
    progress = min(max(step, 0), end_step) / end_step
    if schedule == "linear":
        return float(start) + (float(end) - float(start)) * progress
    if schedule == "cosine":
        return float(end) + (float(start) - float(end)) * (1.0 + math.cos(math.pi * progress)) / 2.0
    raise TopoError(f"chts_beta_schedule: expected one of {', '.join(BETA_SCHEDULES)}, got {schedule!r}")


def _soft_keys(log_weights: np.ndarray, beta: float, generator) -> np.ndarray:
    """``β · log w + Gumbel``: the largest keys are a draw without replacement with probability ∝ ``w^β``.

    The uniforms come from the torch ``generator``, so the same seed gives the same draw.
    """
    import torch

    u = torch.rand(log_weights.shape, generator=generator, dtype=torch.float64).numpy()
    gumbel = -np.log(-np.log(np.clip(u, 1e-300, 1.0 - 1e-16)))
    if float(beta) == 0.0:
        return gumbel  # uniform, also over zero weights (0 · log 0 would be undefined)
    with np.errstate(divide="ignore"):
        return float(beta) * log_weights + gumbel


def _largest(keys: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest keys (as a set)."""
    if n >= keys.size:
        return np.arange(keys.size)
    return np.argpartition(-keys, n - 1)[:n] if n > 0 else np.zeros(0, dtype=np.int64)


def chain_removal(masks):
    """Remove hidden neurons left without inputs or outputs, until none is left.

    Parameters
    ----------
    masks : list of array-like of bool
        ``[out, in]`` per layer, layer ``k``'s outputs feeding layer ``k + 1``; not modified.

    Returns
    -------
    list of numpy.ndarray of bool
        New masks in which every hidden neuron has inputs and outputs, or neither.

    Examples
    --------
    Hidden neuron 1 has no inputs, so its output (layer 1's column 1) goes too:

    >>> import numpy as np
    >>> first = np.array([[1, 1], [0, 0], [1, 0]], dtype=bool)
    >>> second = np.array([[1, 1, 0], [0, 1, 1]], dtype=bool)
    >>> [m.astype(int).tolist() for m in chain_removal([first, second])]
    [[[1, 1], [0, 0], [1, 0]], [[1, 0, 0], [0, 0, 1]]]
    """
    new = [np.asarray(m, dtype=bool).copy() for m in masks]
    changed = True
    while changed:
        changed = False
        for k in range(len(new) - 1):
            # hidden neurons between layer k (their inputs) and layer k + 1 (their outputs)
            dead = new[k].any(axis=1) ^ new[k + 1].any(axis=0)
            if dead.any():
                new[k][dead, :] = False
                new[k + 1][:, dead] = False
                changed = True
    return new


def soft_removal(weight, mask, n_remove: int, beta: float, generator) -> np.ndarray:
    """Step 1 of one layer: the mask after soft removal of ``n_remove`` active weights.

    Parameters
    ----------
    weight, mask : array-like (numpy or torch)
        ``[out, in]``; not modified.
    n_remove : int
        Active weights to remove (clipped to their number).
    beta : float
        Inverse temperature: the kept weights are drawn with probability ∝ ``|w|^β``.
    generator : torch.Generator
        Draws the kept weights.

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    At a high β the smallest weights are almost surely the ones removed:

    >>> import numpy as np, torch
    >>> weight = np.array([[0.9, -0.1, 0.5], [0.01, 0.8, -0.3]])
    >>> soft_removal(weight, weight != 0, 2, 9.0, torch.Generator().manual_seed(0)).astype(int)
    array([[1, 0, 1],
           [0, 1, 1]])
    >>> int(soft_removal(weight, weight != 0, 2, 0.0, torch.Generator()).sum())  # β = 0: uniform, same count
    4
    """
    mask = np.asarray(mask, dtype=bool)
    weight = np.asarray(weight)
    active = np.flatnonzero(mask)
    n_keep = active.size - int(min(max(int(n_remove), 0), active.size))
    new = np.zeros(mask.size, dtype=bool)
    if n_keep > 0:
        with np.errstate(divide="ignore"):
            log_w = np.log(np.abs(weight.reshape(-1)[active]).astype(np.float64))
        new[active[_largest(_soft_keys(log_w, beta, generator), n_keep)]] = True
    return new.reshape(mask.shape)


def regrow(mask, budget: int, beta: float, generator, *, present_rows=None, present_cols=None) -> np.ndarray:
    """Step 3 of one layer: grow ``budget - nnz`` links by CH2-L3n soft sampling (see the module notes).

    Parameters
    ----------
    mask : array-like of bool, ``[out, in]``
        The layer after removal.
    budget : int
        The number of active weights to grow back to.
    beta : float
        Inverse temperature: new links are drawn with probability ∝ ``CH2-L3n^β``.
    generator : torch.Generator
        Draws the new links.
    present_rows, present_cols : array-like of bool, optional
        Outputs and inputs that may take new links (neurons not removed); default all.

    Returns
    -------
    numpy.ndarray of bool
        At most ``budget`` active positions (fewer only where no more are free).

    Examples
    --------
    With the scores of :func:`ch2_l3n_scores`'s example, one new link at a high β
    is the best-scored one, (2, 0):

    >>> import numpy as np, torch
    >>> mask = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    >>> grown = regrow(mask, 8, 50.0, torch.Generator().manual_seed(0))
    >>> np.argwhere(grown & ~mask).tolist()
    [[2, 0]]
    >>> rows = np.array([True, True, True, False])  # output 3 was removed
    >>> grown = regrow(mask, 16, 1.0, torch.Generator(), present_rows=rows)
    >>> int(grown.sum()), bool(grown[3, :3].any())  # every free position of rows 0-2, none of row 3
    (13, False)
    """
    mask = np.asarray(mask, dtype=bool)
    n_out, n_in = mask.shape
    rows_ok = np.ones(n_out, bool) if present_rows is None else np.asarray(present_rows, dtype=bool)
    cols_ok = np.ones(n_in, bool) if present_cols is None else np.asarray(present_cols, dtype=bool)
    nnz = int(np.count_nonzero(mask))
    free = int(rows_ok.sum()) * int(cols_ok.sum()) - int(np.count_nonzero(mask[rows_ok][:, cols_ok]))
    n = int(min(max(int(budget) - nnz, 0), free))
    new = mask.copy().reshape(-1)
    if n == 0:
        return new.reshape(mask.shape)
    scores = ch2_l3n_scores(mask).tocoo()
    keep = (scores.data > 0) & rows_ok[scores.row] & cols_ok[scores.col] & ~mask[scores.row, scores.col]
    flat = scores.row[keep].astype(np.int64) * n_in + scores.col[keep]
    if flat.size >= n:
        new[flat[_largest(_soft_keys(np.log(scores.data[keep]), beta, generator), n)]] = True
    else:
        import torch

        new[flat] = True
        rest = (~mask & rows_ok[:, None] & cols_ok[None, :]).reshape(-1)
        rest[flat] = False
        index = np.flatnonzero(rest)
        order = torch.randperm(index.size, generator=generator).numpy()
        new[index[order[: n - flat.size]]] = True
    return new.reshape(mask.shape)


@register("chts")
class CHTs(RigL):
    """CHTs: see the module docstring for the exact rule.

    Parameters
    ----------
    update_every, drop_fraction, end_fraction
        As for :class:`~topo.training.algorithms.rigl.RigL`.
    chts_beta_start, chts_beta_end : float
        β at the first update and at T_end (non-negative).
    chts_beta_schedule : {"linear", "cosine", "constant"}
        The path of β between them.
    chain_removal : bool
        Remove hidden neurons left without inputs or outputs.

    Raises
    ------
    TopoError
        For an option out of range.

    Examples
    --------
    >>> import torch
    >>> algo = CHTs(update_every=10, drop_fraction=0.5, end_fraction=1.0)
    >>> start = algo.initial_masks([(6, 5), (3, 6)], sparsity=0.5, seed=0)
    >>> masks = [torch.from_numpy(m) for m in start.masks]
    >>> algo.setup(masks=masks, steps_per_epoch=10, epochs=2, total_steps=20)
    >>> algo.beta(10)  # half-way from 1 to 9
    5.0
    >>> _ = torch.manual_seed(0)
    >>> weights = [torch.randn(6, 5) * masks[0], torch.randn(3, 6) * masks[1]]
    >>> new = algo.update(10, weights, [None, None], masks, torch.Generator().manual_seed(0))
    >>> algo.budgets, [int(m.sum()) for m in new]  # each layer grows back to its budget
    ([13, 11], [13, 11])
    """

    option_names = ("update_every", "drop_fraction", "end_fraction")
    declared_options = {
        "chts_beta_start": option(
            1.0, type=float, low=0.0, group="Method options",
            help="chts: inverse temperature β of the soft sampling at the start (p ∝ score^β; 0 is uniform).",
        ),
        "chts_beta_end": option(
            9.0, type=float, low=0.0, group="Method options",
            help="chts: β at the end of the mask updates (larger: closer to taking the top scores).",
        ),
        "chts_beta_schedule": option(
            "linear", type=str, choices=BETA_SCHEDULES, group="Method options",
            help="chts: how β goes from --chts-beta-start to --chts-beta-end over the updates.",
        ),
        "chain_removal": option(
            True, type=bool, group="Method options",
            help="chts: remove hidden neurons left without inputs or outputs (the active width shrinks).",
        ),
    }

    def __init__(self, *, update_every: int = 100, drop_fraction: float = 0.3, end_fraction: float = 0.75,
                 chts_beta_start: float = 1.0, chts_beta_end: float = 9.0, chts_beta_schedule: str = "linear",
                 chain_removal: bool = True) -> None:
        if chts_beta_schedule not in BETA_SCHEDULES:
            raise TopoError(f"chts_beta_schedule: expected one of {', '.join(BETA_SCHEDULES)}, got {chts_beta_schedule!r}")
        for name, value in (("chts_beta_start", chts_beta_start), ("chts_beta_end", chts_beta_end)):
            if not float(value) >= 0.0:
                raise OptionError(name, f"must be >= 0, got {value!r}")
        super().__init__(update_every=update_every, drop_fraction=drop_fraction, end_fraction=end_fraction)
        self.options.update(chts_beta_start=float(chts_beta_start), chts_beta_end=float(chts_beta_end),
                            chts_beta_schedule=str(chts_beta_schedule), chain_removal=bool(chain_removal))
        self.beta_start = float(chts_beta_start)
        self.beta_end = float(chts_beta_end)
        self.beta_schedule = str(chts_beta_schedule)
        self.chain_removal = bool(chain_removal)
        #: per layer: the number of active weights it keeps (its budget K)
        self.budgets: list[int] = []

    def beta(self, step: int) -> float:
        """β_t, the inverse temperature at ``step``."""
        return inverse_temperature(step, self.end_step, self.beta_start, self.beta_end, self.beta_schedule)

    def setup(self, *, masks, steps_per_epoch, epochs, total_steps):
        super().setup(masks=masks, steps_per_epoch=steps_per_epoch, epochs=epochs, total_steps=total_steps)
        self.budgets = [int(np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m).sum()) for m in masks]

    def update(self, step, weights, grads, masks, generator):
        import torch

        alpha = self.fraction(step)
        beta = self.beta(step)
        old = [np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m, dtype=bool) for m in masks]
        new = []
        for k, (w, m) in enumerate(zip(weights, old)):
            if k in self.frozen:
                new.append(m.copy())
                continue
            n = int(math.floor(alpha * int(np.count_nonzero(m))))
            w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
            new.append(soft_removal(w, m, n, beta, generator))
        if self.chain_removal:
            new = chain_removal(new)
        last = len(new) - 1
        for k in range(len(new)):
            if k in self.frozen:
                continue
            rows = cols = None
            if self.chain_removal:
                # present: not removed; network inputs (k == 0) and outputs (k == last) always are
                rows = None if k == last else new[k].any(axis=1) | new[k + 1].any(axis=0)
                cols = None if k == 0 else new[k - 1].any(axis=1) | new[k].any(axis=0)
            new[k] = regrow(new[k], self.budgets[k], beta, generator, present_rows=rows, present_cols=cols)
        if all(np.array_equal(a, b) for a, b in zip(new, old)):
            return None
        return [torch.from_numpy(m) for m in new]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["budgets"] = list(self.budgets)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.budgets = [int(v) for v in state.get("budgets", [])]

"""How a run's fan-in distribution drifts toward an equilibrium.

Dynamic sparse training (RigL, SET) moves connections between neurons, and the fan-in
distribution of each layer drifts from its initial shape toward a stationary one.
:func:`drift` measures that drift over a run's checkpoints, per layer:

- the distance of each checkpoint's *normalised* fan-in (fan-in / mean fan-in, so
  that layers and densities compare) to the equilibrium's: Wasserstein-1
  (:func:`scipy.stats.wasserstein_distance`) and the two-sample KS statistic
  (:func:`scipy.stats.ks_2samp`);
- the fan-in coefficient of variation of each checkpoint;
- where the layer converges: the first checkpoint after which the Wasserstein
  distance stays within ``tolerance``;
- mask turnover between consecutive checkpoints
  (:func:`topo.analysis.distance.mask_turnover`);
- a lognormal fit of the equilibrium (``mu``, ``sigma`` of ln fan-in,
  ``cv = sqrt(exp(sigma**2) - 1)``), which :func:`topo.runs.save_profile` writes as a
  *profile file* that training can start from.

The equilibrium is by default the pooled normalised fan-ins of the run's last
``last_k`` checkpoints. It can instead be another run (its topologies, whose last
``last_k`` are pooled the same way) or a profile mapping; a profile stands for the lognormal it describes, represented by ``n``
deterministic samples: the fan-in quantiles ``exp(mu + sigma * Phi^-1(u_i))`` at
``u_i = (i + 0.5) / n``, rounded to whole fan-ins of at least 1 (fan-in is discrete,
so the data it is compared with is too) and normalised by their mean. ``n`` is the
layer's number of neurons, at least 1000.

Reading runs and profile files is :mod:`topo.runs`'s (``load_run``, ``read_profile``,
``save_profile``, ``load_equilibrium``); this module only computes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special, stats

from topo.analysis.degree import coefficient_of_variation
from topo.analysis.fits import lognormal_params
from topo.errors import TopoError, shorten_list
from topo.progress import ProgressCallback
from topo.topology import Topology
from topo.values import finite_float

__all__ = [
    "DriftResult",
    "checkpoint_labels",
    "drift",
    "equilibrium_profile",
    "normalised_fan_in",
    "profile_samples",
    "validate_profile",
]

_MIN_PROFILE_SAMPLES = 1000
_NAN = float("nan")



# -- results -------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftResult:
    """Drift of a run's fan-in distributions toward their equilibrium.

    Attributes
    ----------
    layers : list of str
        Layer names, in order.
    labels : list of str
        One label per checkpoint: its epoch where known (``"3"``; ``"3@450"`` when
        several checkpoints share epoch 3 and the step tells them apart), else
        ``"#i"`` with ``i`` its position.
    epochs, steps : list of int or None
        Each checkpoint's epoch and global step, where known.
    wasserstein, ks, cv : numpy.ndarray, shape ``[n_checkpoints, n_layers]``
        Wasserstein-1 and KS distance of the normalised fan-in to the equilibrium,
        and the fan-in coefficient of variation; NaN for a layer without connections.
    turnover : numpy.ndarray, shape ``[n_checkpoints - 1, n_layers]``
        Mask turnover from checkpoint ``i`` to ``i + 1``; NaN where shapes differ.
    convergence : list of int or None
        Per layer, the first checkpoint index from which every later Wasserstein
        distance is ``<= tolerance``; None if the last one is not.
    equilibrium_fit : dict of str to dict
        Per layer, the lognormal fit of the equilibrium fan-in: ``mu``, ``sigma``,
        ``cv``, ``mean_fan_in``.
    tolerance : float
    last_k : int
        Checkpoints pooled for the equilibrium (when it came from a run).
    equilibrium_source : str
        What the equilibrium was: ``"last 3 checkpoints"``, a path, ``"profile"``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> run = [Topology.from_masks([m], names=["fc1"], info={"epoch": e}) for e, m in enumerate(masks + masks[1:])]
    >>> result = drift(run, last_k=2)
    >>> result.layers, result.labels, result.equilibrium_source
    (['fc1'], ['0', '1', '2'], 'last 2 checkpoints')
    >>> result.wasserstein.round(3).tolist(), result.convergence
    ([[0.333], [0.0], [0.0]], [1])
    """

    layers: list[str]
    labels: list[str]
    epochs: list[int | None]
    steps: list[int | None]
    wasserstein: np.ndarray
    ks: np.ndarray
    cv: np.ndarray
    turnover: np.ndarray
    convergence: list[int | None]
    equilibrium_fit: dict[str, dict[str, float]]
    tolerance: float = 0.05
    last_k: int = 3
    equilibrium_source: str = ""

    @property
    def n_checkpoints(self) -> int:
        return len(self.labels)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per (checkpoint, layer): ``checkpoint`` (index), ``label``,
        ``epoch``, ``step``, ``layer``, ``cv``, ``wasserstein``, ``ks``, ``turnover``
        (from the previous checkpoint; NaN for the first)."""
        rows = []
        for i, label in enumerate(self.labels):
            for j, name in enumerate(self.layers):
                rows.append(
                    {
                        "checkpoint": i,
                        "label": label,
                        "epoch": self.epochs[i],
                        "step": self.steps[i],
                        "layer": name,
                        "cv": float(self.cv[i, j]),
                        "wasserstein": float(self.wasserstein[i, j]),
                        "ks": float(self.ks[i, j]),
                        "turnover": float(self.turnover[i - 1, j]) if i > 0 else _NAN,
                    }
                )
        return rows

    def layer_rows(self) -> list[dict[str, Any]]:
        """One dict per layer: where it converged and the equilibrium's lognormal fit."""
        rows = []
        for j, name in enumerate(self.layers):
            at = self.convergence[j]
            fit = self.equilibrium_fit.get(name, {})
            rows.append(
                {
                    "layer": name,
                    "converged_at": at,
                    "converged_label": None if at is None else self.labels[at],
                    "final_wasserstein": float(self.wasserstein[-1, j]),
                    "mu": fit.get("mu", _NAN),
                    "sigma": fit.get("sigma", _NAN),
                    "cv": fit.get("cv", _NAN),
                    "mean_fan_in": fit.get("mean_fan_in", _NAN),
                }
            )
        return rows

    def profile(self) -> dict[str, dict[str, float]]:
        """The equilibrium fit as a profile mapping, ready for :func:`topo.runs.save_profile`."""
        return {name: dict(self.equilibrium_fit[name]) for name in self.layers}


# -- helpers -------------------------------------------------------------------------
def normalised_fan_in(fan_in: np.ndarray) -> np.ndarray | None:
    """Fan-in divided by its mean (zeros kept); None when the mean is 0 or there are no values.

    Examples
    --------
    >>> import numpy as np
    >>> normalised_fan_in(np.array([1, 2, 3])).tolist()
    [0.5, 1.0, 1.5]
    >>> normalised_fan_in(np.array([0, 0])) is None
    True
    """
    values = np.asarray(fan_in, dtype=np.float64).ravel()
    if values.size == 0:
        return None
    mean = values.mean()
    if not mean > 0:
        return None
    return values / mean


def profile_samples(mu: float, sigma: float, n: int) -> np.ndarray:
    """Deterministic fan-in samples of a lognormal profile, normalised by their mean.

    The quantiles ``exp(mu + sigma * Phi^-1((i + 0.5) / n))`` for ``i < n``, rounded to
    whole numbers of at least 1, divided by their mean.

    Parameters
    ----------
    mu, sigma : float
        Mean and standard deviation of ln fan-in.
    n : int
        Number of samples (at least 1).

    Returns
    -------
    numpy.ndarray of float64, shape ``(n,)``

    Examples
    --------
    >>> profile_samples(1.0, 0.5, 4).round(3).tolist()
    [0.667, 0.667, 1.0, 1.667]
    """
    n = max(int(n), 1)
    u = (np.arange(n) + 0.5) / n
    fan_in = np.maximum(np.rint(np.exp(mu + sigma * special.ndtri(u))), 1.0)
    return fan_in / fan_in.mean()


def checkpoint_labels(topologies: Sequence[Topology]) -> tuple[list[str], list[int | None], list[int | None]]:
    """Short labels for checkpoints of one run (``"5"``, ``"5@120"`` where an epoch has several,
    ``"#3"`` without an epoch), with their epochs and steps.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> run = [Topology.from_masks([np.eye(2)], info={"epoch": 5, "step": s}) for s in (100, 120)]
    >>> checkpoint_labels(run + [Topology.from_masks([np.eye(2)])])
    (['5@100', '5@120', '#2'], [5, 5, None], [100, 120, None])
    """
    epochs = [t.epoch for t in topologies]
    steps = [t.step for t in topologies]
    labels = []
    for i, (epoch, step) in enumerate(zip(epochs, steps)):
        if epoch is None:
            labels.append(f"#{i}")
        elif epochs.count(epoch) > 1 and step is not None:
            labels.append(f"{epoch}@{step}")
        else:
            labels.append(str(epoch))
    return labels, epochs, steps


def _where(topology: Topology, index: int) -> str:
    path = topology.info.get("path")
    return str(path) if path else f"checkpoint {index}"


def _check_layers(topologies: Sequence[Topology], names: list[str], what: str) -> None:
    for i, topology in enumerate(topologies):
        if topology.names != names:
            raise TopoError(
                f"{what} {_where(topology, i)} has layers {shorten_list(topology.names)}, "
                f"expected {shorten_list(names)} "
                "(all checkpoints of a run must have the same layers)"
            )


def _pooled(topologies: Sequence[Topology], names: list[str], last_k: int, what: str):
    """Pooled normalised fan-ins and raw-fan-in lognormal fits of the last K checkpoints."""
    tail = list(topologies)[-last_k:]
    for i, topology in enumerate(tail):
        missing = [name for name in names if name not in topology.names]
        if missing:
            raise TopoError(f"{what} {_where(topology, i)} has no layer {missing[0]!r}")
    samples: dict[str, np.ndarray | None] = {}
    fits: dict[str, dict[str, float]] = {}
    for name in names:
        parts = [p for p in (normalised_fan_in(t[name].fan_in) for t in tail) if p is not None]
        samples[name] = np.concatenate(parts) if parts else None
        fits[name] = lognormal_params(np.concatenate([t[name].fan_in for t in tail]))
    return samples, fits


def _resolve_equilibrium(
    equilibrium: Any,
    topologies: Sequence[Topology],
    names: list[str],
    last_k: int,
    n_samples: Mapping[str, int],
    source: str | None,
):
    """Equilibrium samples per layer, its fit per layer, and a description."""
    if equilibrium is None:
        samples, fits = _pooled(topologies, names, last_k, "checkpoint")
        return samples, fits, source or f"last {min(last_k, len(topologies))} checkpoints"
    if isinstance(equilibrium, Topology):
        equilibrium = [equilibrium]
    if isinstance(equilibrium, Mapping):
        profile = validate_profile(equilibrium)
        where = source
    elif (
        isinstance(equilibrium, Sequence)
        and not isinstance(equilibrium, (str, bytes))
        and equilibrium
        and all(isinstance(t, Topology) for t in equilibrium)
    ):
        samples, fits = _pooled(equilibrium, names, last_k, "equilibrium checkpoint")
        return samples, fits, source or "given topologies"
    else:
        raise TopoError(
            "equilibrium must be None, topologies or a profile mapping "
            f"(topo.runs.load_equilibrium reads run folders and profile files); got {type(equilibrium).__name__}"
        )
    samples = {}
    fits = {}
    for name in names:
        if name not in profile:
            raise TopoError(f"profile has no layer {name!r} (it has {shorten_list(profile)})", path=where)
        entry = profile[name]
        samples[name] = profile_samples(entry["mu"], entry["sigma"], max(n_samples[name], _MIN_PROFILE_SAMPLES))
        fits[name] = dict(entry)
    return samples, fits, source or "profile"


def _convergence(distances: np.ndarray, tolerance: float) -> int | None:
    within = distances <= tolerance  # NaN counts as outside
    if within.size == 0 or not within[-1]:
        return None
    outside = np.flatnonzero(~within)
    return int(outside[-1] + 1) if outside.size else 0


def _turnover(a: Topology, b: Topology) -> list[float]:
    from topo.analysis.distance import mask_turnover

    if all(la.shape == lb.shape for la, lb in zip(a, b)):
        return [float(v) for v in mask_turnover(a, b)]
    values = []
    for la, lb in zip(a, b):
        if la.shape != lb.shape:
            values.append(_NAN)
        else:
            values.append(float(mask_turnover(Topology([la]), Topology([lb]))[0]))
    return values


# -- the analysis ----------------------------------------------------------------------
def drift(
    topologies: Sequence[Topology],
    *,
    equilibrium: Any = None,
    last_k: int = 3,
    tolerance: float = 0.05,
    equilibrium_source: str | None = None,
    progress: ProgressCallback | None = None,
) -> DriftResult:
    """Distance of every checkpoint's fan-in distribution to the equilibrium, per layer.

    Parameters
    ----------
    topologies : sequence of Topology
        A run's checkpoints in training order (see :func:`topo.runs.load_run`), all with
        the same layer names.
    equilibrium : optional
        None (default): the pooled normalised fan-ins of the last ``last_k`` checkpoints
        of ``topologies``. Otherwise another run (a sequence of Topology; its last
        ``last_k`` checkpoints are pooled), or a lognormal profile (a mapping
        ``{layer: {"mu", "sigma", ...}}``). :func:`topo.runs.load_equilibrium` reads
        either from a run folder or a profile file.
    last_k : int
        Checkpoints pooled for a run's equilibrium (at least 1; all when fewer).
    tolerance : float
        Wasserstein-1 distance (on normalised fan-in) within which a layer counts as
        converged.
    equilibrium_source : str, optional
        What the equilibrium is, for ``DriftResult.equilibrium_source`` (e.g. the path
        it was read from); by default a description of its kind.
    progress : callable, optional
        ``progress(done, total)`` after each checkpoint.

    Returns
    -------
    DriftResult

    Raises
    ------
    TopoError
        If there are no checkpoints, their layers differ, ``last_k`` or ``tolerance``
        is out of range, or the equilibrium lacks a layer or cannot be read.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> masks = [np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]]), np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])]
    >>> run = [Topology.from_masks([m], names=["fc1"], info={"epoch": e}) for e, m in enumerate(masks + masks[1:])]
    >>> result = drift(run, last_k=2)
    >>> result.cv.round(3).tolist(), result.turnover.round(3).tolist()
    ([[0.707], [0.408], [0.408]], [[0.5], [0.0]])
    """
    topologies = list(topologies)
    if not topologies:
        raise TopoError("drift needs at least one checkpoint")
    if int(last_k) < 1:
        raise TopoError(f"last_k must be at least 1, got {last_k}")
    last_k = int(last_k)
    tolerance = float(tolerance)
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise TopoError(f"tolerance must be a non-negative number, got {tolerance}")
    names = topologies[0].names
    _check_layers(topologies, names, "checkpoint")
    n_samples = {name: topologies[-1][name].n_out for name in names}
    eq_samples, eq_fits, source = _resolve_equilibrium(
        equilibrium, topologies, names, last_k, n_samples, equilibrium_source
    )

    n_ckpt, n_layers = len(topologies), len(names)
    wasserstein = np.full((n_ckpt, n_layers), np.nan)
    ks = np.full((n_ckpt, n_layers), np.nan)
    cv = np.full((n_ckpt, n_layers), np.nan)
    turnover = np.full((max(n_ckpt - 1, 0), n_layers), np.nan)
    for i, topology in enumerate(topologies):
        for j, name in enumerate(names):
            fan_in = topology[name].fan_in
            cv[i, j] = coefficient_of_variation(fan_in)
            values = normalised_fan_in(fan_in)
            reference = eq_samples[name]
            if values is None or reference is None:
                continue
            wasserstein[i, j] = stats.wasserstein_distance(values, reference)
            # the statistic alone is needed; "asymp" skips the slow exact p-value
            ks[i, j] = stats.ks_2samp(values, reference, method="asymp").statistic
        if i > 0:
            turnover[i - 1] = _turnover(topologies[i - 1], topology)
        if progress is not None:
            progress(i + 1, n_ckpt)
    labels, epochs, steps = checkpoint_labels(topologies)
    return DriftResult(
        layers=list(names),
        labels=labels,
        epochs=epochs,
        steps=steps,
        wasserstein=wasserstein,
        ks=ks,
        cv=cv,
        turnover=turnover,
        convergence=[_convergence(wasserstein[:, j], tolerance) for j in range(n_layers)],
        equilibrium_fit={name: dict(eq_fits[name]) for name in names},
        tolerance=tolerance,
        last_k=last_k,
        equilibrium_source=source,
    )


def equilibrium_profile(topologies: Sequence[Topology], *, last_k: int = 3) -> dict[str, dict[str, float]]:
    """The lognormal profile of a run's equilibrium: the raw fan-ins of its last ``last_k``
    checkpoints pooled per layer (zeros excluded), ``mu``/``sigma`` of their logarithm,
    ``cv`` and ``mean_fan_in``.

    Raises
    ------
    TopoError
        If there are no checkpoints or their layers differ.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> run = [Topology.from_masks([np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]])], names=["fc1"])] * 2
    >>> {name: round(value, 3) for name, value in equilibrium_profile(run)["fc1"].items()}
    {'mu': 0.597, 'sigma': 0.454, 'cv': 0.478, 'mean_fan_in': 2.0}
    """
    topologies = list(topologies)
    if not topologies:
        raise TopoError("an equilibrium needs at least one checkpoint")
    names = topologies[0].names
    _check_layers(topologies, names, "checkpoint")
    _, fits = _pooled(topologies, names, max(int(last_k), 1), "checkpoint")
    return fits


# -- profile files -------------------------------------------------------------------
def _number(value: Any) -> float | None:
    # a profile's numbers are JSON numbers: text and booleans are refused, not parsed
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return finite_float(value)


def validate_profile(layers: Any, *, path: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """Check a profile mapping ``{layer: {"mu", "sigma", "cv"?, "mean_fan_in"?}}``; any other value is refused.

    ``mu`` (finite) and ``sigma`` (finite, >= 0) are required; ``cv`` defaults to
    ``sqrt(exp(sigma**2) - 1)`` and ``mean_fan_in`` to the lognormal mean
    ``exp(mu + sigma**2 / 2)``; where given they must be finite (``cv >= 0``,
    ``mean_fan_in > 0``).

    Returns
    -------
    dict
        A clean copy with plain floats.

    Raises
    ------
    TopoError
        On anything malformed, naming ``path`` when given.

    Examples
    --------
    >>> validate_profile({"fc1": {"mu": 0.0, "sigma": 0.0}})
    {'fc1': {'mu': 0.0, 'sigma': 0.0, 'cv': 0.0, 'mean_fan_in': 1.0}}
    >>> validate_profile({"fc1": {"mu": 1.0}})
    Traceback (most recent call last):
        ...
    topo.errors.TopoError: profile layer 'fc1': sigma must be a finite number >= 0, got None
    """
    if not isinstance(layers, Mapping) or not layers:
        raise TopoError("profile must map at least one layer name to its parameters", path=path)
    clean: dict[str, dict[str, float]] = {}
    for name, entry in layers.items():
        if not isinstance(entry, Mapping):
            raise TopoError(f"profile layer {name!r} must be an object with mu and sigma", path=path)
        mu, sigma = _number(entry.get("mu")), _number(entry.get("sigma"))
        if mu is None:
            raise TopoError(f"profile layer {name!r}: mu must be a finite number, got {entry.get('mu')!r}", path=path)
        if sigma is None or sigma < 0:
            raise TopoError(
                f"profile layer {name!r}: sigma must be a finite number >= 0, got {entry.get('sigma')!r}", path=path
            )
        values = {"mu": mu, "sigma": sigma}
        for key, default, ok in (
            ("cv", math.sqrt(math.expm1(sigma**2)), lambda v: v >= 0),
            ("mean_fan_in", math.exp(mu + sigma**2 / 2), lambda v: v > 0),
        ):
            if entry.get(key) is None:
                values[key] = default
                continue
            number = _number(entry[key])
            if number is None or not ok(number):
                raise TopoError(f"profile layer {name!r}: {key} is invalid ({entry[key]!r})", path=path)
            values[key] = number
        clean[str(name)] = values
    return clean

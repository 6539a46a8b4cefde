"""The whole configuration of a training run: one dataclass, JSON round-trip.

``TrainConfig`` holds every option ``topo train`` accepts. It is written into the
run's ``run.json`` (under ``"config"``) and read back by ``topo train --resume``, so a
resumed run continues with exactly the options it started with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from topo.errors import TopoError

__all__ = [
    "TrainConfig",
    "METHODS",
    "OPTIMIZERS",
    "SCHEDULES",
    "DENSITY_RULES",
    "PRUNE_CLASSES",
    "parse_hidden",
    "IDENTITY_EXCLUDED",
    "config_identity",
]

METHODS = ("static", "rigl", "set", "ggr", "prune")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "constant")
DENSITY_RULES = ("erk", "uniform")
PRUNE_CLASSES = ("class-blinded", "class-uniform", "class-distribution")
DEVICES = ("auto", "cpu", "cuda")
HUB_PLACEMENTS = ("index", "shuffled")
#: fields that say where or how a run trains, not what it trains; two configurations
#: that differ only in these are the same run (sweep ids, reusing a run folder)
IDENTITY_EXCLUDED = ("out", "data_dir", "threads", "device")


def parse_hidden(text: str | int | tuple | list) -> tuple[int, ...]:
    """Hidden widths from ``"300,100"`` (or a sequence of ints); ``""`` means no hidden layer.

    Raises
    ------
    TopoError
        If a width is not a positive integer.
    """
    if isinstance(text, int):
        values = [text]
    elif isinstance(text, (tuple, list)):
        values = list(text)
    else:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        values = []
        for part in parts:
            try:
                values.append(int(part))
            except ValueError:
                raise TopoError(f"--hidden: {part!r} is not an integer width (expected e.g. 300,100)") from None
    for value in values:
        if int(value) != value or int(value) < 1:
            raise TopoError(f"--hidden: widths must be positive integers, got {value!r}")
    return tuple(int(v) for v in values)


@dataclass
class TrainConfig:
    """Every option of a training run.

    Data and network: ``dataset``, ``data_dir``, ``val_fraction``, ``hidden`` (widths of
    the hidden layers; the MLP is ``n_features - hidden... - n_classes``).
    Initial masks (see :func:`topo.training.masks.initial_masks`): ``sparsity`` (0 is the
    dense baseline), ``density`` (``"erk"`` or ``"uniform"``), ``density_map`` (layer
    name or index -> density, overriding the rule), ``dense_output``, ``profile`` and
    ``cv`` (fan-in profile), ``hub_placement``, ``init`` (``"equilibrium:RUN_OR_FILE"``:
    lognormal fan-in per layer with the CVs of a saved profile; ``"masks:CHECKPOINT"``:
    the masks of a saved network, read with :func:`topo.formats.load`; ``"ws:k=K,p=P"`` /
    ``"ba:m=M"``: masks from a Watts-Strogatz / Barabási-Albert random-graph prior, see
    :mod:`topo.training.priors`).
    Algorithm: ``method`` and its options ``update_every``, ``drop_fraction``,
    ``end_fraction``, ``explore_fraction``, ``ggr_normalise``, ``prune_class``,
    ``prune_steps``, ``retrain_epochs``.
    Optimisation: ``epochs``, ``batch_size``, ``lr``, ``optimizer``, ``momentum``,
    ``weight_decay``, ``schedule``.
    Run: ``seed``, ``device``, ``threads`` (torch CPU threads; None picks
    ``min(cpu count, 8)``), ``out``, ``checkpoint_every`` (steps; adds checkpoints
    inside epochs), ``grad_batches`` (batches used for the gradient statistic of the
    initial checkpoint).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.1
    hidden: tuple[int, ...] = (256, 256)
    sparsity: float = 0.9
    density: str = "erk"
    density_map: dict[str, float] | None = None
    dense_output: bool = False
    profile: str = "random"
    cv: float | None = None
    hub_placement: str = "index"
    init: str | None = None
    method: str = "rigl"
    update_every: int = 100
    drop_fraction: float = 0.3
    end_fraction: float = 0.75
    explore_fraction: float = 0.1
    ggr_normalise: bool = False
    prune_class: str = "class-blinded"
    prune_steps: int = 1
    retrain_epochs: int = 5
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    out: str | None = None
    checkpoint_every: int | None = None
    grad_batches: int = 4

    def __post_init__(self) -> None:
        self.hidden = parse_hidden(self.hidden)
        if self.density_map is not None:
            self.density_map = {str(k): float(v) for k, v in dict(self.density_map).items()}

    # -- checks -------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Check every option; returns self.

        Raises
        ------
        TopoError
            Naming the first option that is out of range.
        """

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise TopoError(f"--{name.replace('_', '-')}: {value!r} is not one of {', '.join(allowed)}")

        def in_range(name: str, low: float, high: float, *, low_open=False, high_open=False) -> None:
            value = getattr(self, name)
            bad = (
                value is None
                or not math.isfinite(float(value))
                or (value <= low if low_open else value < low)
                or (value >= high if high_open else value > high)
            )
            if bad:
                lo = "(" if low_open else "["
                hi = ")" if high_open else "]"
                raise TopoError(f"--{name.replace('_', '-')}: {value!r} is outside {lo}{low}, {high}{hi}")

        from topo.training.algorithms import available_algorithms

        if self.method not in available_algorithms():
            raise TopoError(f"--method: unknown method {self.method!r}; known: {', '.join(available_algorithms())}")
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        choice("density", DENSITY_RULES)
        choice("prune_class", PRUNE_CLASSES)
        choice("device", DEVICES)
        choice("hub_placement", HUB_PLACEMENTS)
        in_range("sparsity", 0.0, 1.0, high_open=True)
        in_range("val_fraction", 0.0, 1.0, high_open=True)
        in_range("drop_fraction", 0.0, 1.0)
        in_range("end_fraction", 0.0, 1.0)
        in_range("explore_fraction", 0.0, 1.0)
        in_range("lr", 0.0, math.inf, low_open=True, high_open=True)
        in_range("momentum", 0.0, 1.0, high_open=True)
        in_range("weight_decay", 0.0, math.inf, high_open=True)
        for name in ("epochs", "retrain_epochs", "seed", "grad_batches"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise TopoError(f"--{name.replace('_', '-')}: must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("batch_size", "update_every", "prune_steps"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise TopoError(f"--{name.replace('_', '-')}: must be a positive integer, got {getattr(self, name)!r}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise TopoError(f"--checkpoint-every: must be a positive number of steps, got {self.checkpoint_every!r}")
        if self.threads is not None and self.threads < 1:
            raise TopoError(f"--threads: must be positive, got {self.threads!r}")
        if self.cv is not None and (not math.isfinite(self.cv) or self.cv < 0):
            raise TopoError(f"--cv: must be a non-negative number, got {self.cv!r}")
        if self.init is not None:
            from topo.training.priors import is_prior_spec, parse_prior

            if is_prior_spec(str(self.init)):
                parse_prior(str(self.init))  # a bad prior fails here, before any training
                if self.profile != "random" or self.cv is not None:
                    raise TopoError(f"--init {self.init}: a prior replaces the fan-in profile; drop --profile/--cv")
            elif not str(self.init).startswith(("equilibrium:", "masks:")):
                raise TopoError(
                    f"--init: expected equilibrium:RUN_OR_FILE, masks:CHECKPOINT, ws:k=K,p=P or ba:m=M, got {self.init!r}"
                )
        if self.density_map:
            for key, value in self.density_map.items():
                if not (0.0 < value <= 1.0):
                    raise TopoError(f"--density-map: density of {key!r} must be in (0, 1], got {value!r}")
        return self

    # -- derived ------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        """Epochs the run trains in all: ``epochs``, plus ``retrain_epochs`` for pruning."""
        return int(self.epochs) + (int(self.retrain_epochs) if self.method == "prune" and self.epochs > 0 else 0)

    def algorithm_options(self) -> dict[str, Any]:
        """The options the chosen algorithm's constructor takes."""
        from topo.training.algorithms import get_algorithm_class

        wanted = get_algorithm_class(self.method).option_names
        return {name: getattr(self, name) for name in wanted}

    # -- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise.

        Raises
        ------
        TopoError
            If ``data`` has keys that are not options.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TopoError(f"unknown training options in configuration: {', '.join(unknown)}")
        values = dict(data)
        if "hidden" in values:
            values["hidden"] = parse_hidden(values["hidden"])
        return cls(**values)

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TopoError(f"training configuration is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise TopoError("training configuration must be a JSON object")
        return cls.from_dict(data)


def config_identity(config: TrainConfig) -> dict[str, Any]:
    """What a configuration trains: :meth:`TrainConfig.to_dict` less :data:`IDENTITY_EXCLUDED`.

    Parameters
    ----------
    config : TrainConfig

    Returns
    -------
    dict
        JSON-ready values; equal for two configurations that train the same run.
    """
    data = config.to_dict()
    for key in IDENTITY_EXCLUDED:
        data.pop(key, None)
    return data

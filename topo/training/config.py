"""The whole configuration of a training run: one schema, written once.

:class:`TrainConfig` holds every option ``topo train`` accepts. Each option is a
dataclass field made with :func:`topo.training.schema.option`, which carries its type,
default, range, choices, help and ``--help`` group; from that one declaration come

- the ``topo train`` command-line options (``cli/train.py`` generates them),
- the sweep spec's TOML validation (:func:`coerce_option`, used by :mod:`topo.sweep`),
- :meth:`TrainConfig.validate` and the ``run.json`` round-trip
  (:meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`; a resumed run continues
  with exactly the options it started with).

The choices of ``method``, ``profile``, ``density``, ``hub_placement`` and
``prune_class`` are read from their registries. An algorithm may declare options of its
own in its class (``Algorithm.declared_options``, a dict of :func:`option` fields);
:class:`TrainConfig` picks them up as fields after the core ones, so adding a method is
one new module plus its registration in :mod:`topo.training.algorithms`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from topo.errors import TopoError
from topo.training.backends import BACKENDS
from topo.training.schema import OptionError, OptionField, check_value, coerce_value, option, option_fields

__all__ = [
    "TrainConfig",
    "OPTIMIZERS",
    "SCHEDULES",
    "DEVICES",
    "CHECKPOINT_CONTENTS",
    "OPTION_GROUPS",
    "parse_hidden",
    "parse_density_map",
    "training_options",
    "training_option",
    "coerce_option",
    "methods_taking",
    "IDENTITY_EXCLUDED",
    "config_identity",
    "options_not_taken",
]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda")
#: What a checkpoint other than the final epoch's holds (``--intermediate-checkpoints``).
CHECKPOINT_CONTENTS = ("full", "masks")

#: ``--help`` sections, in the order they are listed
DATA, MASKS, METHOD, METHOD_OWN, OPTIMISATION, RUN = (
    "Data and network", "Initial masks", "Method", "Method options", "Optimisation", "Run",
)
OPTION_GROUPS = (DATA, MASKS, METHOD, METHOD_OWN, OPTIMISATION, RUN)


def parse_hidden(text: str | int | tuple | list) -> tuple[int, ...]:
    """Hidden widths from ``"300,100"`` (or a sequence of ints); ``""`` means no hidden layer.

    Parameters
    ----------
    text : str, int, tuple or list
        Comma-separated widths, one width, or a sequence of widths.

    Returns
    -------
    tuple of int

    Raises
    ------
    OptionError
        If a width is not a positive integer.

    Examples
    --------
    >>> parse_hidden("300, 100"), parse_hidden([256, 256]), parse_hidden(64), parse_hidden("")
    ((300, 100), (256, 256), (64,), ())
    >>> parse_hidden("300,0")
    Traceback (most recent call last):
    ...
    topo.training.schema.OptionError: hidden widths must be positive integers, got 0
    """
    if isinstance(text, bool) or not isinstance(text, (int, str, tuple, list)):
        raise OptionError("hidden", f"must be widths such as [256, 256] or \"256,256\", got {text!r}")
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
                raise OptionError("hidden", f"{part!r} is not an integer width (expected e.g. 300,100)") from None
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or int(value) < 1:
            raise OptionError("hidden", f"widths must be positive integers, got {value!r}")
    return tuple(int(v) for v in values)


def parse_density_map(value: str | Mapping[str, Any]) -> dict[str, float]:
    """Layer name or index -> density, from a mapping or its JSON text.

    Parameters
    ----------
    value : str or mapping
        ``{"fc1": 0.2, "fc3": 1}`` or its JSON text; keys are layer names or indices.

    Returns
    -------
    dict of str to float

    Raises
    ------
    OptionError
        If the text is not JSON or the value not a mapping of numbers.

    Examples
    --------
    >>> parse_density_map('{"fc1": 0.2, "fc3": 1}')
    {'fc1': 0.2, 'fc3': 1.0}
    >>> parse_density_map({2: 0.5})
    {'2': 0.5}
    >>> parse_density_map({"fc1": "dense"})
    Traceback (most recent call last):
    ...
    topo.training.schema.OptionError: density_map must be a table of layer = density, got {'fc1': 'dense'}
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise OptionError(
                "density_map", f"is not valid JSON ({exc.msg}); expected e.g. '{{\"fc1\": 0.2, \"fc3\": 1.0}}'"
            ) from None
    if not isinstance(value, Mapping) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
    ):
        raise OptionError("density_map", f"must be a table of layer = density, got {value!r}")
    return {str(k): float(v) for k, v in value.items()}


def _methods() -> tuple[str, ...]:
    from topo.training.algorithms import available_algorithms

    return available_algorithms()


def _profiles() -> tuple[str, ...]:
    from topo.training.profiles import PROFILES

    return PROFILES


def _hub_placements() -> tuple[str, ...]:
    from topo.training.profiles import HUB_PLACEMENTS

    return HUB_PLACEMENTS


def _density_rules() -> tuple[str, ...]:
    from topo.training.densities import DENSITY_RULES

    return DENSITY_RULES


def _prune_classes() -> tuple[str, ...]:
    from topo.training.algorithms.prune import PRUNE_CLASSES

    return PRUNE_CLASSES


_INIT_METAVAR = "equilibrium:RUN_OR_FILE|masks:CHECKPOINT|ws:k=K,p=P|ba:m=M|brf:r=R"


@dataclass
class _CoreConfig:
    """The options every run has; :class:`TrainConfig` adds the algorithms' own."""

    # -- data and network ------------------------------------------------------------
    dataset: str = option("digits", group=DATA, help="Data set name (digits, mnist, fashion-mnist, covtype, ...) or a .npz/.csv path.")
    data_dir: str | None = option(None, group=DATA, metavar="DIR", describes_where=True, with_resume=True,
                                  help="Folder with the data files (default $TOPO_DATA_DIR).")
    val_fraction: float = option(0.1, group=DATA, low=0.0, high=1.0, high_open=True,
                                 help="Share of the training set held out for validation.")
    hidden: tuple[int, ...] = option((256, 256), group=DATA, parse=parse_hidden, metavar="WIDTHS",
                                     help="Hidden layer widths, comma-separated ('' for none).")
    # -- initial masks ---------------------------------------------------------------
    sparsity: float = option(0.9, group=MASKS, low=0.0, high=1.0, high_open=True,
                             help="Share of zero weights; 0 trains the dense baseline.")
    density: str = option("erk", group=MASKS, choices=_density_rules, help="How the weight budget is split over layers.")
    density_map: dict[str, float] | None = option(None, group=MASKS, parse=parse_density_map, metavar="JSON",
                                                  help='Layer -> density overriding the rule, e.g. \'{"fc3": 1.0}\'.')
    dense_output: bool = option(False, group=MASKS, help="Keep the output layer dense.")
    profile: str = option("random", group=MASKS, choices=_profiles, choice_noun="fan-in profile",
                          help="Fan-in profile of the initial masks (topo.training.profiles).")
    cv: float | None = option(None, group=MASKS, low=0.0, help="Target fan-in CV of a parametric --profile.")
    hub_placement: str = option("index", group=MASKS, choices=_hub_placements, help="Where the largest fan-ins sit.")
    init: str | None = option(
        None, group=MASKS, metavar=_INIT_METAVAR,
        help="equilibrium:RUN_OR_FILE: lognormal fan-in per layer with the CVs of a saved equilibrium profile "
             "(topo drift); masks:CHECKPOINT: start from a saved network's masks; ws:k=K,p=P / ba:m=M / brf:r=R: masks "
             "from a Watts-Strogatz small-world / Barabasi-Albert preferential-attachment / bipartite receptive-field "
             "graph per layer, each meeting the layer's budget exactly (k, m default to the budget's mean degree; p to "
             "0.1; r, the receptive field's randomness in [0, 1], to 0.3; see topo.training.priors).",
    )
    # -- method ----------------------------------------------------------------------
    method: str = option("rigl", group=METHOD, choices=_methods, choice_noun="method", help="Sparse-training algorithm.")
    update_every: int = option(100, group=METHOD, low=1, metavar="STEPS", help="Steps between mask updates (ΔT).")
    drop_fraction: float = option(0.3, group=METHOD, low=0.0, high=1.0,
                                  help="Share of active weights moved per update: α of rigl, ggr and srigl, the regeneration rate of granet, ζ of set.")
    end_fraction: float = option(0.75, group=METHOD, low=0.0, high=1.0,
                                 help="Share of the steps after which the masks stay fixed.")
    explore_fraction: float = option(0.1, group=METHOD, low=0.0, high=1.0, help="Share of regrowth placed at random (β).")
    ggr_normalise: bool = option(False, group=METHOD,
                                 help="Normalise |gradient| per layer by its mean over inactive positions.")
    prune_class: str = option("class-blinded", group=METHOD, choices=_prune_classes, help="Which weights magnitude pruning compares.")
    prune_steps: int = option(1, group=METHOD, low=1, help="Reach the sparsity in this many equal pruning steps.")
    retrain_epochs: int = option(5, group=METHOD, low=0, help="Epochs of training after pruning, mask fixed.")
    # -- optimisation ----------------------------------------------------------------
    epochs: int = option(30, group=OPTIMISATION, low=0,
                         help="Training epochs (prune: before pruning); 0 writes the initial checkpoint only.")
    batch_size: int = option(64, group=OPTIMISATION, low=1, help="Examples per step.")
    lr: float = option(0.05, group=OPTIMISATION, low=0.0, low_open=True, help="Learning rate.")
    optimizer: str = option("sgd", group=OPTIMISATION, choices=OPTIMIZERS, help="Optimiser.")
    momentum: float = option(0.9, group=OPTIMISATION, low=0.0, high=1.0, high_open=True, help="SGD momentum.")
    weight_decay: float = option(1e-4, group=OPTIMISATION, low=0.0, help="L2 weight decay.")
    schedule: str = option("cosine", group=OPTIMISATION, choices=SCHEDULES, help="Learning-rate schedule over all steps.")
    # -- run -------------------------------------------------------------------------
    seed: int = option(0, group=RUN, low=0, help="Seed of the masks, the initial weights and the batch order.")
    device: str = option("auto", group=RUN, choices=DEVICES, describes_where=True, with_resume=True, help="Where to train.")
    threads: int | None = option(None, group=RUN, low=1, describes_where=True,
                                 help="torch CPU threads (default min(cores, 8)).")
    out: str | None = option(None, group=RUN, metavar="DIR", describes_where=True,
                             help="Run folder (default runs/<dataset>-<method>-<timestamp>).")
    checkpoint_every: int | None = option(None, group=RUN, low=1, metavar="STEPS",
                                          help="Also checkpoint every STEPS steps inside epochs.")
    intermediate_checkpoints: str = option(
        "full", group=RUN, choices=CHECKPOINT_CONTENTS, describes_where=True,
        help="What every checkpoint but the final epoch's holds: full (weights, biases, masks) "
             "or masks (masks and statistics only, a fraction of the size).")
    state_every: int = option(
        1, group=RUN, low=1, metavar="EPOCHS", describes_where=True,
        help="Write the resume state (model, optimiser, algorithm) every EPOCHS epochs and after the "
             "last; an interrupted run resumes after the last epoch it was written for.")
    grad_batches: int = option(4, group=RUN, low=0,
                               help="Batches used for the gradient statistic of the initial checkpoint.")
    backend: str = option(
        # how a run trains, like --device: the same results within float tolerance, so not its identity
        "masked", group=RUN, choices=BACKENDS, choice_noun="backend", describes_where=True,
        help="Where weights live: masked = dense matrices times 0/1 masks; sparse = only the active weights "
             "(CSR, sparse kernels; much faster below ~10% density on large layers); auto = sparse per layer "
             "where it is large and sparse enough (topo.training.backends).",
    )

    def __post_init__(self) -> None:
        self.hidden = parse_hidden(self.hidden)
        if self.density_map is not None:
            self.density_map = {str(k): float(v) for k, v in dict(self.density_map).items()}

    # -- checks -------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Check every option against its schema, then the rules between options; returns self.

        Raises
        ------
        TopoError
            Naming the first option that is out of range as its field (an
            :class:`~topo.training.schema.OptionError` where one option is at fault).
        """
        for item in training_options():
            check_value(item.name, item.type, item.spec, getattr(self, item.name))
        if self.init is not None:
            from topo.training.priors import is_prior_spec, parse_prior

            if is_prior_spec(str(self.init)):
                parse_prior(str(self.init))  # a bad prior fails here, before any training
                if self.profile != "random" or self.cv is not None:
                    raise OptionError("init", f"{self.init!r} is a prior, which replaces the fan-in profile; drop profile/cv")
            elif not str(self.init).startswith(("equilibrium:", "masks:")):
                raise OptionError(
                    "init",
                    f"must be equilibrium:RUN_OR_FILE, masks:CHECKPOINT, ws:k=K,p=P, ba:m=M or brf:r=R, got {self.init!r}",
                )
        if self.density_map:
            for key, value in self.density_map.items():
                if not (0.0 < value <= 1.0):
                    raise OptionError("density_map", f"density of {key!r} must be in (0, 1], got {value!r}")
        from topo.training.algorithms import get_algorithm_class

        get_algorithm_class(self.method).check_config(self)
        return self  # type: ignore[return-value]

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
        """Inverse of :meth:`to_dict`; each value is checked against its option's type.

        Options missing from ``data`` take their defaults (a run written before an
        option existed reads back as it trained).

        Raises
        ------
        TopoError
            If ``data`` has keys that are not options, or a value of the wrong type.
        """
        known = {item.name: item for item in training_options()}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise TopoError(f"unknown training options in configuration: {', '.join(unknown)}")
        values = {k: coerce_value(k, known[k].type, known[k].spec, v, "configuration") for k, v in data.items()}
        for name, before in _VALUE_BEFORE_OPTION.items():
            if name not in values and name in known:
                values[name] = before  # the behaviour such a run trained with
        return TrainConfig(**values)

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        """Inverse of :meth:`to_json`.

        Raises
        ------
        TopoError
            If the text is not a JSON object of training options.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TopoError(f"training configuration is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise TopoError("training configuration must be a JSON object")
        return cls.from_dict(data)


def _declared_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    """The options the registered algorithms declare in their classes, each once."""
    from topo.training.algorithms import available_algorithms, get_algorithm_class

    core = {f.name for f in dataclasses.fields(_CoreConfig)}
    seen: dict[str, tuple[str, Any, dataclasses.Field]] = {}
    for method in available_algorithms():
        for name, declared in get_algorithm_class(method).declared_options.items():
            if name in core:
                raise TypeError(f"algorithm {method!r} declares option {name!r}, which is a core TrainConfig option")
            kind = declared.metadata.get("topo.type")
            if kind is None:
                raise TypeError(f"algorithm {method!r}: option {name!r} needs option(..., type=...)")
            if name not in seen:
                seen[name] = (name, kind, declared)
    return list(seen.values())


if typing.TYPE_CHECKING:

    class TrainConfig(_CoreConfig):
        """Every option of a training run (see the module notes)."""

else:
    TrainConfig = dataclasses.make_dataclass(
        "TrainConfig",
        _declared_fields(),
        bases=(_CoreConfig,),
        namespace={
            "__doc__": (
                "Every option of a training run: the core options, then those the registered "
                "algorithms declare.\n\nEach field is a :func:`topo.training.schema.option`; "
                "``topo train --help`` lists them by group with their ranges and defaults.\n\n"
                "Examples\n"
                "--------\n"
                ">>> config = TrainConfig(hidden=\"32,16\", method=\"set\", sparsity=0.8)\n"
                ">>> config.hidden, config.validate() is config, config.total_epochs\n"
                "((32, 16), True, 30)\n"
                ">>> TrainConfig(method=\"prune\", epochs=10, retrain_epochs=5).total_epochs  # training, then retraining\n"
                "15\n"
                ">>> TrainConfig(method=\"rigl\", update_every=50).algorithm_options()  # what RigL is built with\n"
                "{'update_every': 50, 'drop_fraction': 0.3, 'end_fraction': 0.75}\n"
                ">>> TrainConfig.from_json(config.to_json()) == config  # the run.json round-trip\n"
                "True\n"
                ">>> TrainConfig(lr=0.0).validate()\n"
                "Traceback (most recent call last):\n"
                "...\n"
                "topo.training.schema.OptionError: lr must be in (0, inf), got 0.0\n"
            ),
            "__module__": __name__,
        },
    )


def training_options() -> list[OptionField]:
    """Every training option (name, type, default, :class:`~topo.training.schema.Option`), in order.

    Returns
    -------
    list of OptionField
        The core options in declaration order, then those the algorithms declare.

    Examples
    --------
    >>> [item.name for item in training_options()][:4]
    ['dataset', 'data_dir', 'val_fraction', 'hidden']
    >>> {item.spec.group for item in training_options()} <= set(OPTION_GROUPS)
    True
    """
    return _OPTIONS


def training_option(name: str) -> OptionField:
    """One training option by name.

    Parameters
    ----------
    name : str
        The field's name, e.g. ``"drop_fraction"``.

    Returns
    -------
    OptionField

    Raises
    ------
    TopoError
        If there is no such option.

    Examples
    --------
    >>> item = training_option("lr")
    >>> item.flag, item.default, item.spec.group, item.spec.low_open
    ('--lr', 0.05, 'Optimisation', True)
    >>> training_option("learning_rate")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: learning_rate: not a training option
    """
    for item in _OPTIONS:
        if item.name == name:
            return item
    raise TopoError(f"{name}: not a training option")


def coerce_option(name: str, value: Any, where: str) -> Any:
    """A TOML/JSON value as option ``name`` wants it; errors read ``"<where> <name>: ..."``.

    Parameters
    ----------
    name : str
        The option.
    value : object
        As TOML or JSON gave it.
    where : str
        Prefix of error messages (a sweep spec's section, ``"configuration"``, ...).

    Returns
    -------
    object
        The value, of the option's type (ranges are checked by :meth:`TrainConfig.validate`).

    Raises
    ------
    TopoError
        For an unknown option or a value of the wrong type.

    Examples
    --------
    >>> coerce_option("hidden", [256, 256], "[base]"), coerce_option("cv", "none", "[grid]")
    ((256, 256), None)
    >>> coerce_option("dense_output", "yes", "[base]")
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: [base] dense_output: expected true or false, got "yes"
    """
    item = training_option(name)
    return coerce_value(name, item.type, item.spec, value, where)


def methods_taking(name: str) -> tuple[str, ...]:
    """The registered methods whose constructor takes option ``name``.

    Parameters
    ----------
    name : str
        A training option.

    Returns
    -------
    tuple of str
        In registration order; empty for an option no method takes.

    Examples
    --------
    >>> methods_taking("prune_steps"), methods_taking("ggr_normalise")
    (('prune',), ('ggr',))
    >>> "rigl" in methods_taking("drop_fraction"), methods_taking("seed")
    (True, ())
    """
    from topo.training.algorithms import available_algorithms, get_algorithm_class

    return tuple(m for m in available_algorithms() if name in get_algorithm_class(m).option_names)


_OPTIONS: list[OptionField] = option_fields(TrainConfig)

#: fields that say where or how a run trains, not what it trains; two configurations
#: that differ only in these are the same run (sweep ids, reusing a run folder)
IDENTITY_EXCLUDED = tuple(item.name for item in _OPTIONS if item.spec.describes_where)
_DECLARED = frozenset(name for name, _, _ in _declared_fields())


#: options whose default differs from what runs written before the option existed did
#: (SET grew weights at 0 before ``--set-regrow-init``; its default is now the reference's normal)
_VALUE_BEFORE_OPTION: dict[str, Any] = {"set_regrow_init": "zero"}


def config_identity(config: TrainConfig) -> dict[str, Any]:
    """What a configuration trains: :meth:`TrainConfig.to_dict` less :data:`IDENTITY_EXCLUDED`.

    An algorithm's own declared options count only for the method that takes them, so
    adding a method with options of its own leaves every other run's identity as it was.

    Parameters
    ----------
    config : TrainConfig

    Returns
    -------
    dict
        JSON-ready values; equal for two configurations that train the same run.

    Examples
    --------
    >>> here = config_identity(TrainConfig(method="static", out="runs/a", threads=1))
    >>> here == config_identity(TrainConfig(method="static", out="runs/b", device="cpu"))
    True
    >>> "out" in here, "seed" in here, here == config_identity(TrainConfig(method="static", seed=1))
    (False, True, False)
    """
    data = config.to_dict()
    for key in IDENTITY_EXCLUDED:
        data.pop(key, None)
    for key in options_not_taken(config):
        data.pop(key, None)
    return data


def options_not_taken(config: TrainConfig) -> frozenset[str]:
    """The options other methods declare for themselves, which this configuration's method ignores.

    Parameters
    ----------
    config : TrainConfig

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> "set_regrow_init" in options_not_taken(TrainConfig(method="rigl"))  # SET's own option
    True
    >>> "set_regrow_init" in options_not_taken(TrainConfig(method="set"))
    False
    >>> options_not_taken(TrainConfig()).isdisjoint(item.name for item in training_options()[:10])  # core options
    True
    """
    taken = set(config.algorithm_options()) if config.method in _methods() else set()
    return frozenset(_DECLARED - taken)


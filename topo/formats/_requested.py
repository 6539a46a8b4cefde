"""Target sparsities that foreign files record, as ``topology.info["requested_sparsity"]``.

The convention (see :mod:`topo.analysis.patterns`): a dict layer name -> target, with
``"*"`` for the whole network. The sources read here:

- TensorFlow Model Optimization pruning wrappers (``PruneLowMagnitude``) in a Keras
  model config: the wrapper's ``pruning_schedule`` (``ConstantSparsity.target_sparsity``,
  ``PolynomialDecay.final_sparsity``) is the wrapped layer's target;
- NNI config lists (``[{"sparse_ratio": 0.8, "op_types": ["Linear"]}, ...]``): each
  entry's ``sparse_ratio`` (NNI 3) or ``sparsity`` / ``sparsity_per_layer`` (NNI 2) for
  the layers it selects, ``total_sparsity`` for the network; excluded layers get 0;
- SparseML recipes (YAML): ``GMPruningModifier`` / ``MagnitudePruningModifier`` /
  ``ConstantPruningModifier`` ... with ``final_sparsity`` and ``params`` (names, or
  ``re:`` regular expressions, or ``__ALL__``) matched against the layers' parameter names.

Layer names are matched to the topology's: the name itself, a layer under it
(``name/...``), or a layer that ends with it (``outer/name``); for torch parameter names,
``fc1.weight`` names the layer ``fc1``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = ["tfmot_targets", "with_tfmot_targets", "nni_targets", "sparseml_targets", "parse_recipe", "yaml_available", "match_layers"]

_MAX_DEPTH = 64


def _fraction(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0.0 <= number <= 1.0 else None


# -- tfmot --------------------------------------------------------------------------------
def _schedule_target(schedule: Any) -> float | None:
    """``{"class_name": "PolynomialDecay", "config": {"final_sparsity": 0.8, ...}}`` -> 0.8."""
    if not isinstance(schedule, Mapping):
        return None
    config = schedule.get("config")
    if not isinstance(config, Mapping):
        config = schedule
    for field in ("final_sparsity", "target_sparsity"):
        if field in config:
            return _fraction(config[field])
    return None


def tfmot_targets(config: Any) -> dict[str, float]:
    """Wrapper name -> target sparsity of every ``PruneLowMagnitude`` wrapper in a Keras config.

    Parameters
    ----------
    config : object
        A Keras model config (``config.json``, or tf.keras's ``model_config``), walked
        to a bounded depth.

    Returns
    -------
    dict of str to float
        The wrapper's name -> its pruning schedule's final target sparsity.

    Examples
    --------
    >>> tfmot_targets({"class_name": "Sequential", "config": {"layers": [
    ...     {"class_name": "PruneLowMagnitude", "config": {"name": "prune_low_magnitude_fc",
    ...      "pruning_schedule": {"class_name": "ConstantSparsity", "config": {"target_sparsity": 0.75}}}}]}})
    {'prune_low_magnitude_fc': 0.75}
    """
    found: dict[str, float] = {}

    def walk(value: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(value, Mapping):
            cfg = value.get("config")
            if "PruneLowMagnitude" in str(value.get("class_name", "")) and isinstance(cfg, Mapping):
                target = _schedule_target(cfg.get("pruning_schedule"))
                if target is not None and cfg.get("name"):
                    found[str(cfg["name"])] = target
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    walk(config, 0)
    return found


# -- matching names -------------------------------------------------------------------------
def _layer_of_param(name: str) -> str:
    for suffix in (".weight", ".kernel", ".weight_orig"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _matches(layer: str, wanted: str) -> bool:
    return layer == wanted or layer.startswith(wanted + "/") or layer.endswith("/" + wanted) or (
        layer.endswith("/" + wanted.replace(".", "/"))
    ) or layer == wanted.replace(".", "/")


def match_layers(targets: Mapping[str, float], names: Iterable[str]) -> dict[str, float]:
    """Targets keyed by the file's names -> targets keyed by the topology's layer names.

    ``"*"`` passes through. Names that match no layer are dropped.

    Parameters
    ----------
    targets : mapping of str to float
        Target sparsity by the name the file uses (a parameter such as ``fc1.weight``,
        a module or a wrapper name), and ``"*"`` for the whole network.
    names : iterable of str
        The topology's layer names.

    Returns
    -------
    dict of str to float
        ``"*"`` first where given, then the layers each name matches (without a
        ``.weight``/``.kernel`` suffix): the name itself, a layer below it
        (``block`` -> ``block/a``), or a layer path ending in it, dots read as ``/``.

    Examples
    --------
    >>> match_layers({"*": 0.5, "fc1.weight": 0.8, "block": 0.6}, ["fc1", "block/a", "head"])
    {'*': 0.5, 'fc1': 0.8, 'block/a': 0.6}
    """
    names = list(names)
    out: dict[str, float] = {}
    if "*" in targets:
        out["*"] = targets["*"]
    for wanted, target in targets.items():
        if wanted == "*":
            continue
        key = _layer_of_param(wanted)
        for layer in names:
            if _matches(layer, key):
                out[layer] = target
    return out


# -- NNI ------------------------------------------------------------------------------------
def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if isinstance(v, str)]
    return []


def nni_targets(config_list: Any, names: list[str], kinds: Mapping[str, str] | None = None) -> dict[str, float]:
    """Targets from an NNI config list, keyed by the topology's layer names.

    Parameters
    ----------
    config_list : list of dict
        NNI's pruner config list: ``sparse_ratio`` (NNI 3) or ``sparsity`` /
        ``sparsity_per_layer`` (NNI 2) per layer, ``total_sparsity`` for the layers an
        entry selects together; ``op_names`` / ``op_names_re`` / ``op_types`` select,
        ``exclude_op_names`` and ``exclude: True`` entries leave layers out (target 0).
    names : list of str
        The topology's layer names (``fc1``, ``features/0``).
    kinds : dict, optional
        Layer name -> topo's layer kind (``linear``, ``conv``, ``embedding``): an entry's
        ``op_types`` (``Linear``, ``Conv2d``) then select by kind; a layer of unknown kind
        is selected by any ``op_types``.

    Returns
    -------
    dict of str to float
        Layer name -> target sparsity, for the layers some entry selects.

    Examples
    --------
    >>> nni_targets([{"sparsity_per_layer": 0.8, "op_types": ["Linear"]},
    ...              {"exclude": True, "op_names": ["fc3"]}], ["fc1", "fc2", "fc3"])
    {'fc1': 0.8, 'fc2': 0.8, 'fc3': 0.0}
    """
    out: dict[str, float] = {}
    if not isinstance(config_list, (list, tuple)):
        return out
    kinds = kinds or {}

    def of_types(name: str, op_types: set[str]) -> bool:
        kind = kinds.get(name)
        if kind is None or "default" in op_types:
            return True
        return any(op.lower().startswith(kind) or (kind == "conv" and op.lower().startswith("conv")) for op in op_types)

    for entry in config_list:
        if not isinstance(entry, Mapping):
            continue
        op_names = _strings(entry.get("op_names"))
        patterns = _strings(entry.get("op_names_re"))
        op_types = set(_strings(entry.get("op_types")))
        if op_names or patterns:
            chosen = [n for n in names if any(_matches(n, w.replace(".", "/")) or _matches(n, w) for w in op_names)]
            for pattern in patterns:
                try:
                    chosen += [n for n in names if n not in chosen and re.fullmatch(pattern, n.replace("/", "."))]
                except re.error:
                    continue
        else:
            chosen = list(names)
        if op_types:
            chosen = [n for n in chosen if of_types(n, op_types)]
        excluded = _strings(entry.get("exclude_op_names"))
        chosen = [n for n in chosen if not any(_matches(n, w.replace(".", "/")) or _matches(n, w) for w in excluded)]
        if entry.get("exclude") is True:
            for name in chosen:
                out[name] = 0.0
            continue
        per_layer = None
        for field in ("sparse_ratio", "sparsity_per_layer", "sparsity"):
            if field in entry:
                per_layer = _fraction(entry[field])
                break
        if per_layer is not None:
            for name in chosen:
                out[name] = per_layer
        total = _fraction(entry.get("total_sparsity"))
        if total is not None and chosen and len(chosen) == len(names):
            out["*"] = total
    return out


# -- SparseML ---------------------------------------------------------------------------------
_PRUNING_MODIFIER = re.compile(r"Pruning(Modifier)?$")


def _modifiers(recipe: Any, depth: int = 0, seen: set[int] | None = None) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(class name, arguments) of every ``!XModifier`` in a parsed recipe (any stage nesting).

    Each object is visited once: YAML aliases share objects, and a recipe built of
    aliases of aliases would otherwise take exponential time to walk.
    """
    seen = set() if seen is None else seen
    if depth > _MAX_DEPTH or id(recipe) in seen:
        return
    if isinstance(recipe, Mapping):
        seen.add(id(recipe))
        for key, value in recipe.items():
            if isinstance(key, str) and "Modifier" in key and isinstance(value, Mapping):
                yield key.lstrip("!"), value
            else:
                yield from _modifiers(value, depth + 1, seen)
    elif isinstance(recipe, list):
        seen.add(id(recipe))
        for item in recipe:
            yield from _modifiers(item, depth + 1, seen)


def yaml_available() -> bool:
    """Whether PyYAML can be imported (SparseML recipes are read only then).

    Returns
    -------
    bool

    Examples
    --------
    >>> import importlib.util
    >>> yaml_available() == (importlib.util.find_spec("yaml") is not None)
    True
    """
    try:
        import yaml  # noqa: F401
    except ImportError:
        return False
    return True


def parse_recipe(text: str) -> Any:
    """A SparseML recipe's YAML (``!GMPruningModifier`` tags read as keys); None without PyYAML
    or when the text is not YAML.

    Parameters
    ----------
    text : str
        The recipe: plain YAML, or front matter between ``---`` lines.

    Returns
    -------
    object
        The parsed YAML (a ``!Tag`` mapping becomes ``{"Tag": mapping}``), or None.
        It is loaded with a safe loader: tags build nothing but dicts.

    Examples
    --------
    >>> lines = ["modifiers:", "  - !GMPruningModifier", "    params: [fc1.weight]", "    final_sparsity: 0.9"]
    >>> parse_recipe(chr(10).join(lines))  # needs PyYAML (installed with topo's dev extras)
    {'modifiers': [{'GMPruningModifier': {'params': ['fc1.weight'], 'final_sparsity': 0.9}}]}
    >>> parse_recipe("modifiers: [unclosed") is None
    True
    """
    try:
        import yaml
    except ImportError:
        return None

    class _Loader(yaml.SafeLoader):
        pass

    def tagged(loader: Any, suffix: str, node: Any) -> Any:
        value = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else None
        return {suffix: value if value is not None else {}}

    _Loader.add_multi_constructor("!", tagged)
    body = text.split("---")
    # A recipe file may hold front matter (variables) and a markdown body after a second ``---``.
    candidates = [text] + ([body[1]] if len(body) >= 3 else [])
    for candidate in candidates:
        try:
            return yaml.load(candidate, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError:
            continue
    return None


def sparseml_targets(recipe: Any, params: list[str], names: list[str]) -> dict[str, float]:
    """Targets from a parsed SparseML recipe, keyed by the topology's layer names.

    Parameters
    ----------
    recipe : object
        :func:`parse_recipe`'s result (or a recipe's YAML text).
    params : list of str
        Parameter names of the weights (``fc1.weight``), one per layer of ``names``.
    names : list of str
        The topology's layer names, in the same order as ``params``.

    Returns
    -------
    dict of str to float
        Layer name -> the final sparsity of the pruning modifier that selects it.

    Examples
    --------
    >>> recipe = {"modifiers": [{"GMPruningModifier": {"final_sparsity": 0.9,
    ...     "params": ["re:.*fc[12].weight"]}}]}
    >>> sparseml_targets(recipe, ["fc1.weight", "fc2.weight", "fc3.weight"], ["fc1", "fc2", "fc3"])
    {'fc1': 0.9, 'fc2': 0.9}
    """
    if isinstance(recipe, str):
        recipe = parse_recipe(recipe)
    variables = recipe if isinstance(recipe, Mapping) else {}
    out: dict[str, float] = {}
    for cls, args in _modifiers(recipe):
        if not _PRUNING_MODIFIER.search(cls) or cls.startswith("Quantization"):
            continue
        raw = args.get("final_sparsity", args.get("sparsity"))
        if isinstance(raw, str) and raw in variables:
            raw = variables[raw]  # recipe variables: final_sparsity: eval(var) or a bare name
        if isinstance(raw, str):
            match = re.fullmatch(r"\s*eval\((\w+)\)\s*", raw)
            raw = variables.get(match.group(1)) if match else raw
        target = _fraction(raw)
        if cls.startswith("ConstantPruning"):
            target = None  # keeps the sparsity that the weights have: no number asked for
        wanted = _strings(args.get("params"))
        if target is None or not wanted:
            continue
        for param, name in zip(params, names):
            for pattern in wanted:
                if pattern in ("__ALL__", "__ALL_PRUNABLE__"):
                    hit = True
                elif pattern.startswith("re:"):
                    try:
                        hit = re.fullmatch(pattern[3:], param) is not None or re.fullmatch(pattern[3:], name) is not None
                    except re.error:
                        hit = False
                else:
                    hit = pattern in (param, name)
                if hit:
                    out[name] = target
                    break
    return out


def with_tfmot_targets(topology: Any, config: Any) -> Any:
    """The topology with ``info["requested_sparsity"]`` from the config's tfmot pruning wrappers.

    Both Keras readers (``.keras`` archives and Keras 2 HDF5 files) call it with the
    model config they read.

    Parameters
    ----------
    topology : Topology
    config : dict or None
        The Keras model config; None leaves the topology as it is.

    Returns
    -------
    Topology
        ``topology`` itself where no layer asks for a sparsity, else a copy whose
        ``info["requested_sparsity"]`` maps layer name -> target sparsity.

    Examples
    --------
    >>> import numpy as np
    >>> from topo import Topology
    >>> net = Topology.from_masks([np.eye(2)], names=["dense"])
    >>> with_tfmot_targets(net, None) is net
    True
    """
    if config is None:
        return topology
    requested = match_layers(tfmot_targets(config), topology.names)
    return topology.with_info(requested_sparsity=requested) if requested else topology

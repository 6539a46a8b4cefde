"""PyTorch checkpoints: ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` (zip-based and legacy pickle).

Files are read without torch and without running anything: the pickle inside is
executed by topo's inert unpickler (:mod:`topo.formats._unpickle`), which imports
no module the file names and calls none of its functions; tensors are rebuilt from
the archive's raw storages with numpy (memory-mapped). Whole pickled modules
(``torch.save(model)``) and checkpoints holding arbitrary objects are read through
the records the unpickler makes of them. TorchScript archives (which carry code)
are refused.

What is understood:

- whole pickled modules: their parameters and buffers, keyed as ``state_dict()``
  keys them;
- the state dict, found at the top level or under ``state_dict`` (Lightning),
  ``model_state_dict``, ``model``, ``net``, ...; ``module.`` (DataParallel) and
  ``_orig_mod.`` (``torch.compile``) prefixes are removed;
- ``torch.nn.utils.prune`` re-parametrisation: ``X.weight_orig`` and
  ``X.weight_mask`` give the mask ``weight_mask`` and the weight ``orig * mask``;
- ``torch.nn.utils.parametrize`` / ``torch.ao.pruning`` parametrisations:
  ``X.parametrizations.weight.original`` with a ``X.parametrizations.weight.0.mask``
  buffer (``FakeSparsity``); squashed weights are plain weights with zeros;
- mask dictionaries saved beside the weights: ``{"masks": {name: tensor}}`` or
  ``{"mask": {"masks": {...}}}``;
- sparse COO / CSR / CSC / BSR tensors;
- otherwise the mask is the weight's nonzero pattern;
- target sparsities (``info["requested_sparsity"]``, see :mod:`topo.formats._requested`):
  an NNI ``config_list`` kept in the checkpoint dict, a SparseML recipe kept under
  ``recipe`` or saved as ``recipe.yaml`` beside the file (read when PyYAML is installed).

Layers come in the state dict's insertion order, which is the order in which the
modules were registered: the format's own order.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._assemble import (
    Tensor,
    build_topology,
    layer_name_from_key,
    one_line,
    pair_masks,
    read_head,
    reading,
)
from topo.formats._unpickle import MAX_ENTRIES, StoredTensor
from topo.topology import Topology
from topo.values import finite_float

__all__ = ["EXTENSIONS", "LEGACY_MAGIC", "sniff", "read", "load_checkpoint", "load_state_dict", "state_dict_tensors"]

EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt")

#: ``torch.save``'s legacy (non-zip) files start with a pickled magic number (here at protocol 2).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_MAGIC_OPCODES = LEGACY_MAGIC[2:]  # LONG1 of the magic number, after the protocol (and a frame)


def _is_legacy(head: bytes) -> bool:
    """A pickle (protocol 2 to 5) whose first value is torch's magic number."""
    return len(head) > 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and _MAGIC_OPCODES in head[2:13 + len(_MAGIC_OPCODES)]

# Where trainers put the model's state dict inside a checkpoint dictionary.
_STATE_KEYS = (
    "state_dict", "model_state_dict", "model", "net", "network", "module",
    "model_state", "weights", "params", "state_dict_ema",
)
# Checkpoint entries that hold tensors but not the model's weights.
_NOT_WEIGHTS_RE = re.compile(r"^(optimizer|optim|scheduler|lr_scheduler|scaler|amp|ema|optimizer_states|"
                             r"lr_schedulers|loops|callbacks|hyper_parameters|rng|mask|masks|sparsifier)", re.I)
_PREFIXES = ("module.", "_orig_mod.")
#: The entry under which a pickled module's convolution groups are kept (see :mod:`topo.formats._unpickle`).
GROUPS_KEY = "__groups__"


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except Exception:
        return None


def _is_torch_zip(names: list[str]) -> bool:
    return any(n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1) for n in names)


def _is_torchscript(names: list[str]) -> bool:
    return any(n.endswith("constants.pkl") for n in names) or any("/code/" in n or n.startswith("code/") for n in names)


def sniff(path: Path) -> bool:
    """A zip archive with a top-level ``data.pkl`` or a legacy ``torch.save`` pickle.

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the content, not the suffix; never raises, never unpickles.

    Examples
    --------
    >>> import pathlib, pickle, tempfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(temporary.name)
    >>> torch.save({"fc.weight": torch.eye(2)}, folder / "model.pt")
    >>> torch.save({"fc.weight": torch.eye(2)}, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    >>> _ = (folder / "plain.pkl").write_bytes(pickle.dumps({"fc.weight": [[1.0]]}))
    >>> sniff(folder / "model.pt"), sniff(folder / "legacy.pt"), sniff(folder / "plain.pkl")
    (True, True, False)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if not path.is_file():
            return False
        head = read_head(path, 32)
        if _is_legacy(head):
            return True
        if head[:4] == b"PK\x03\x04":
            names = _zip_names(path)
            return names is not None and bool(names) and _is_torch_zip(names)
    except Exception:
        return False
    return False


def load_state_dict(path: Path) -> Any:
    """The file's contents as plain dicts, lists and stored tensors (see :func:`load_checkpoint`).

    Parameters
    ----------
    path : path-like
        A ``torch.save`` file.

    Returns
    -------
    object
        The first item of :func:`load_checkpoint`'s result.

    Raises
    ------
    TopoError
        As :func:`load_checkpoint`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.pt"
    >>> torch.save({"epoch": 3, "state_dict": {"fc.weight": torch.tensor([[0.0, 1.5]])}}, path)
    >>> state = load_state_dict(path)
    >>> state["epoch"], state["state_dict"]["fc.weight"].array().tolist()
    (3, [[0.0, 1.5]])
    >>> temporary.cleanup()
    """
    return load_checkpoint(path)[0]


def load_checkpoint(path: Path) -> tuple[Any, list[str]]:
    """Unpickle a ``torch.save`` file inertly with numpy: nothing imported, nothing run.

    Tensors come back as :class:`~topo.formats._unpickle.StoredTensor`; every other
    object the pickle names is an inert record, and pickled modules become their
    state dicts (see :func:`topo.formats._unpickle.plain`). torch is never imported.

    Returns
    -------
    obj : object
        Plain dicts, lists, numbers and stored tensors.
    notes : list of str
        What was found that a user should know (a whole pickled module).

    Parameters
    ----------
    path : path-like
        A ``torch.save`` file (zip-based or legacy).

    Raises
    ------
    TopoError
        The file is empty, truncated, corrupt, a TorchScript archive (it carries
        code), or declares sizes over the limits.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.pt"
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> torch.save(torch.nn.Linear(3, 2), path)  # a whole module, not only its state dict
    >>> obj, notes = load_checkpoint(path)
    >>> sorted(obj), obj["weight"].shape, obj["weight"].dtype_name
    (['bias', 'weight'], (2, 3), 'float32')
    >>> notes
    ['a whole pickled module (torch.nn.modules.linear.Linear) read inertly: its parameters and buffers']
    >>> temporary.cleanup()
    """
    from topo.formats import _unpickle

    path = Path(path)
    if not path.is_file():
        raise TopoError("no such file", path=path)
    if path.stat().st_size == 0:
        raise TopoError("empty file, not a torch checkpoint", path=path)
    head = read_head(path, 32)
    with reading(path, "torch file"):
        if head[:4] == b"PK\x03\x04":
            try:
                archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise TopoError(f"not a readable torch file: truncated or corrupt zip ({one_line(exc)})") from None
            with archive:
                names = archive.namelist()
                if _is_torchscript(names):
                    raise TopoError(
                        "refused: a TorchScript archive (it carries code); save the model's state_dict() instead"
                    )
                pickles = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
                if not pickles:
                    raise TopoError("a zip archive without data.pkl, not a torch checkpoint")
                obj = _unpickle.load_zip(path, archive, pickles[0])
        elif _is_legacy(head):
            obj = _unpickle.load_legacy(path)
        elif head[:1] == b"\x80":
            raise TopoError("refused: a plain pickle, not a torch.save file (topo unpickles nothing else)")
        else:
            raise TopoError("not a torch file (neither a torch zip archive nor a legacy torch.save pickle)")
        notes = []
        if _unpickle.is_module_record(obj):
            notes.append(f"a whole pickled module ({obj.type_name}) read inertly: its parameters and buffers")
        return _unpickle.plain(obj), notes


def _is_tensor(value: Any) -> bool:
    return isinstance(value, StoredTensor)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Tensors of nested dicts / lists, keyed by dotted paths, in insertion order.

    Raises
    ------
    TopoError
        More than :data:`~topo.formats._unpickle.MAX_ENTRIES` entries visited (a pickle's
        shared references can make a small file an exponentially large tree).
    """
    out: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [(prefix, obj)]
    visits = 0
    while stack:
        path, value = stack.pop()
        visits += 1
        if visits > MAX_ENTRIES:
            raise TopoError(f"refused: the checkpoint unfolds into more than {MAX_ENTRIES:,} entries")
        if isinstance(value, StoredTensor):
            out[path or "tensor"] = value
            continue
        if isinstance(value, (dict, Mapping)):
            children = [(f"{path}.{key}" if path else str(key), child) for key, child in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(f"{path}.{i}" if path else str(i), child) for i, child in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))  # popped in insertion order
    return out


def _has_tensors(obj: Any) -> bool:
    return isinstance(obj, Mapping) and any(_is_tensor(v) for v in obj.values())


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
    return key.replace("._orig_mod.", ".")


def _find_parts(obj: Any) -> tuple[dict[str, Any], dict[str, Any], list[Any], dict[str, Any], list[str]]:
    """The state dict's tensors, explicit masks (by name, and rigl-torch's list in weight
    order), checkpoint facts and notes of a loaded object."""
    notes: list[str] = []
    facts: dict[str, Any] = {}
    masks: dict[str, Any] = {}
    listed: list[Any] = []
    if _is_tensor(obj):
        return {"tensor": obj}, masks, listed, facts, notes
    if not isinstance(obj, Mapping):
        if isinstance(obj, (list, tuple)):
            return _flatten(obj), masks, listed, facts, ["a list of tensors, not a state dict"]
        if obj is None:
            raise TopoError("holds no tensors (only objects topo does not read)")
        raise TopoError(f"holds a {type(obj).__name__}, not a state dict of tensors")
    # rigl-torch's RigLScheduler.state_dict(): "backward_masks", one per Linear/Conv2d weight.
    for key, holder in obj.items():
        if isinstance(holder, Mapping) and isinstance(holder.get("backward_masks"), list):
            listed = list(holder["backward_masks"])
            notes.append(f"masks from rigl-torch's backward_masks in {key!r}")
            break
    for key in ("epoch", "global_step", "step"):
        number = finite_float(obj.get(key)) if not isinstance(obj.get(key), bool) else None
        value = None if number is None else int(number)
        if value is not None:
            facts["step" if key == "global_step" else key] = value
    # Masks saved beside the weights: {"masks": {...}} or {"mask": {"masks": {...}}} or {"mask": {...}}.
    for key in ("masks", "mask"):
        holder = obj.get(key)
        if isinstance(holder, Mapping):
            inner = holder.get("masks") if isinstance(holder.get("masks"), Mapping) else holder
            found = {str(k): v for k, v in _flatten(inner).items() if _is_tensor(v)}
            if found:
                masks.update(found)
                notes.append(f"masks from the checkpoint's {key!r} entry")
    # torch.ao.pruning sparsifier state saved beside the model: {"state": {fqn: {"mask": tensor}}}.
    for key, holder in obj.items():
        state = holder.get("state") if isinstance(holder, Mapping) else None
        if isinstance(state, Mapping):
            found = {
                str(fqn): entry["mask"]
                for fqn, entry in state.items()
                if isinstance(entry, Mapping) and _is_tensor(entry.get("mask"))
            }
            if found:
                masks.update(found)
                notes.append(f"masks from the sparsifier state in {key!r}")
    for key in _STATE_KEYS:
        candidate = obj.get(key)
        if isinstance(candidate, Mapping) and _flatten(candidate):
            if key != "state_dict":
                notes.append(f"state dict found under {key!r}")
            return _flatten(candidate), masks, listed, facts, notes
    if _has_tensors(obj):
        state = {k: v for k, v in obj.items() if not (isinstance(k, str) and _NOT_WEIGHTS_RE.match(k) and not _is_tensor(v))}
        return _flatten(state), masks, listed, facts, notes
    nested = {k: v for k, v in obj.items() if not (isinstance(k, str) and _NOT_WEIGHTS_RE.match(k))}
    flat = _flatten(nested)
    if flat:
        notes.append("no state dict entry; tensors gathered from nested dictionaries")
    return flat, masks, listed, facts, notes


def _to_numpy(value: Any, key: str) -> Any:
    """A stored tensor as a numpy array (dense) or a scipy CSR matrix (sparse)."""
    if value.dtype_name.startswith("complex"):
        raise TopoError(f"{key!r} has non-numeric dtype {value.dtype_name}; topo reads real-valued weights only")
    if value.layout != "strided" and value.ndim != 2:
        raise TopoError(f"{key!r} is a {value.ndim}-D sparse tensor; topo reads 2-D sparse weights only")
    return value.array()


def _unwrap_nni(state: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """NNI 3 wrappers: ``X._nni_wrapper.weight`` and its ``weight_mask`` become ``X.weight`` and
    ``X.weight_mask`` (the module's own ``X.weight`` is the same parameter); bias masks go."""
    if not any("_nni_wrapper." in key for key in state):
        return state
    out: dict[str, Any] = {}
    wrapped: list[str] = []
    for key, value in state.items():
        head, sep, tail = key.rpartition("_nni_wrapper.")
        if not sep:
            out[key] = value
            continue
        target = head + tail
        if tail.endswith("_mask"):
            if not tail.startswith("bias"):
                out[target] = value
                wrapped.append(head.rstrip(".") or tail)
        elif target not in state:
            out[target] = value
    if wrapped:
        notes.append(f"NNI wrapper masks (_nni_wrapper.*_mask) for {len(wrapped)} layers")
    return out


def _recorded_groups(obj: Any) -> dict[str, int]:
    """Convolution groups that pickled modules record: module path -> groups (paths from any root)."""
    found: dict[str, int] = {}
    stack: list[tuple[str, Any]] = [("", obj)]
    seen: set[int] = set()
    while stack:
        prefix, value = stack.pop()
        if not isinstance(value, Mapping) or id(value) in seen:
            continue
        seen.add(id(value))
        groups = value.get(GROUPS_KEY)
        if isinstance(groups, int) and not isinstance(groups, bool) and groups > 1:
            path = _strip_prefix(prefix)
            # Every suffix of the path, so that a state dict found under "model" still matches.
            parts = path.split(".")
            for i in range(len(parts)):
                found.setdefault(".".join(parts[i:]), groups)
        for key, child in value.items():
            if isinstance(child, Mapping):
                stack.append((f"{prefix}.{key}" if prefix else str(key), child))
    return found


def _attach_listed_masks(tensors: list[Tensor], listed: list[Any], notes: list[str]) -> None:
    """rigl-torch's masks, one per Linear / Conv2d weight in module order (None: kept dense)."""
    weights = [t for t in tensors if t.key.endswith("weight") and len(np.shape(t.value)) in (2, 4)]
    if len(weights) != len(listed):
        notes.append(f"rigl-torch backward_masks hold {len(listed)} masks for {len(weights)} weights; not used")
        return
    pairs = [(t, m) for t, m in zip(weights, listed) if m is not None]
    if not all(_is_tensor(m) and tuple(m.shape) == tuple(np.shape(t.value)) for t, m in pairs):
        notes.append("rigl-torch backward_masks do not match the weights' shapes in order; not used")
        return
    for t, mask in pairs:
        t.mask = _to_numpy(mask, t.key)
        t.note = "mask from rigl-torch's backward_masks"


_GPT2_SIGNATURE_RE = re.compile(r"(^|\.)attn\.c_attn\.weight$")
_GPT2_CONV1D_RE = re.compile(r"(^|\.)(attn\.c_attn|attn\.q_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")


def _gpt2_conv1d(tensors: list[Tensor], notes: list[str]) -> None:
    """GPT-2's ``Conv1D`` stores its weight ``[in, out]``: mark it so where the keys are GPT-2's."""
    if not any(_GPT2_SIGNATURE_RE.search(t.key) for t in tensors):
        return
    flipped = 0
    for t in tensors:
        if _GPT2_CONV1D_RE.search(t.key) and np.ndim(t.value) == 2:
            t.layout = "in_out"
            flipped += 1
    notes.append(f"GPT-2 Conv1D layout [in, out] assumed from the key names for {flipped} weights")


def state_dict_tensors(obj: Any, *, source: str) -> tuple[list[Tensor], dict[str, Any], list[str]]:
    """Turn a loaded torch object into the assembler's tensors, in state-dict order.

    Parameters
    ----------
    obj : object
        What ``torch.load(..., weights_only=True)`` returned.
    source : str
        Prefix of every tensor's ``source`` (usually the file name).

    Returns
    -------
    tensors : list of Tensor
    facts : dict
        ``epoch`` / ``step`` where the checkpoint records them.
    notes : list of str
        How the weights and masks were found (for ``info["warnings"]``).

    Raises
    ------
    TopoError
        If the object holds no tensors, or a tensor is complex or a sparse tensor of
        more than two dimensions.

    Examples
    --------
    A ``torch.nn.utils.prune`` checkpoint under Lightning's ``state_dict`` key:
    ``weight_orig`` and ``weight_mask`` become one weight with its mask.

    >>> import pathlib, tempfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "pruned.ckpt"
    >>> state = {
    ...     "fc.weight_orig": torch.tensor([[0.5, 0.2], [0.1, 0.4]]),
    ...     "fc.weight_mask": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
    ...     "fc.bias": torch.zeros(2),
    ... }
    >>> torch.save({"global_step": 120, "state_dict": state}, path)
    >>> tensors, facts, notes = state_dict_tensors(load_state_dict(path), source=path.name)
    >>> [(t.key, t.note) for t in tensors]
    [('fc.weight', "torch.nn.utils.prune mask 'fc.weight_mask'"), ('fc.bias', '')]
    >>> tensors[0].mask.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    >>> facts
    {'step': 120}
    >>> temporary.cleanup()
    """
    flat, masks, listed, facts, notes = _find_parts(obj)
    state: dict[str, Any] = {}
    for key, value in flat.items():
        state[_strip_prefix(key)] = value
    masks = {_strip_prefix(k): v for k, v in masks.items()}
    state = _unwrap_nni(state, notes)
    groups = _recorded_groups(obj)

    consumed: set[str] = set()
    unmasked: list[str] = []  # parametrized weights whose mask was not saved with them
    renamed: dict[str, tuple[str, Any, Any, str]] = {}  # original key -> (new key, value, mask, note)

    for key, value in state.items():
        # torch.nn.utils.prune: X.weight_orig + X.weight_mask.
        if key.endswith("_orig") and f"{key[:-5]}_mask" in state:
            mask_key = f"{key[:-5]}_mask"
            renamed[key] = (key[:-5], value, state[mask_key], f"torch.nn.utils.prune mask {mask_key!r}")
            consumed.add(mask_key)
            continue
        # torch.nn.utils.parametrize (torch.ao.pruning FakeSparsity keeps its mask as a buffer).
        match = re.match(r"^(?P<head>.*)\.parametrizations\.(?P<param>[^.]+)\.original(?P<n>\d*)$", key)
        if match:
            head, param, n = match.group("head"), match.group("param"), match.group("n")
            new_key = f"{head}.{param}" if head else param
            prefix = f"{head}.parametrizations.{param}."
            mask_keys = [k for k in state if k.startswith(prefix) and re.match(r"^\d+\.mask$", k[len(prefix):])]
            if n not in ("", "1"):  # weight_norm's original0 is the per-row magnitude g
                consumed.add(key)
                continue
            mask = state[mask_keys[0]] if mask_keys else None
            consumed.update(mask_keys)
            note = f"parametrization mask {mask_keys[0]!r}" if mask_keys else f"parametrized weight {key!r}"
            if not mask_keys:
                unmasked.append(new_key)
            renamed[key] = (new_key, value, mask, note)
            continue

    tensors: list[Tensor] = []
    for key, value in state.items():
        if key in consumed:
            continue
        new_key, mask, note = key, None, ""
        if key in renamed:
            new_key, value, mask, note = renamed[key]
        array = _to_numpy(value, key)
        mask_array = None
        if mask is not None:
            mask_array = _to_numpy(mask, key)
        tensor = Tensor(key=new_key, value=array, mask=mask_array, source=f"{source}:{key}", note=note)
        recorded = groups.get(layer_name_from_key(new_key)) if np.ndim(array) > 2 else None
        if recorded:
            tensor.groups = recorded
        tensors.append(tensor)

    # Explicit mask dictionaries: keys name the weight or its module.
    if masks:
        by_key = {t.key: t for t in tensors}
        matched = 0
        for mask_key, mask in masks.items():
            for cand in (mask_key, f"{mask_key}.weight", re.sub(r"[._]mask$", "", mask_key),
                         re.sub(r"[._]mask$", "", mask_key) + ".weight"):
                target = by_key.get(cand)
                if target is not None and target.mask is None and np.shape(target.value) == tuple(mask.shape):
                    target.mask = _to_numpy(mask, mask_key)
                    target.note = f"mask from the checkpoint's mask entry {mask_key!r}"
                    matched += 1
                    break
        if matched < len(masks):
            notes.append(f"{len(masks) - matched} of {len(masks)} saved masks match no weight; ignored")

    if listed:
        _attach_listed_masks(tensors, listed, notes)

    still = [k for k in unmasked if any(t.key == k and t.mask is None for t in tensors)]
    if still:
        notes.append(
            "parametrized weights without a saved mask (torch.ao.pruning keeps masks in the sparsifier, "
            "not the state dict; save sparsifier.state_dict() beside it or squash_mask() first); "
            "their masks are the original weights' nonzero pattern: " + ", ".join(still[:5])
            + (f", ... ({len(still)} in all)" if len(still) > 5 else "")
        )
    tensors, _ = pair_masks(tensors)
    return tensors, facts, notes


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    **_: Any,
) -> Topology:
    """Read a PyTorch checkpoint as a Topology.

    Parameters
    ----------
    path : Path
        A ``torch.save`` file (zip-based or legacy).
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.

    Returns
    -------
    Topology
        ``info``: ``format`` ``"pytorch"``, ``path``, ``warnings``, ``skipped``, and
        ``epoch`` / ``step`` where the checkpoint records them.

    Raises
    ------
    TopoError
        Refused (unsafe pickle, TorchScript), truncated, corrupt, or no weights.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "mlp.pt"
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> with torch.no_grad():
    ...     model[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 1.0, 0], [0, 0, 0, 1.0]]))
    ...     model[2].weight.fill_(0.5)  # doctest: +ELLIPSIS
    Parameter...
    >>> torch.save({"epoch": 7, "model_state_dict": model.state_dict()}, path)
    >>> net = read(path)
    >>> net.names, net.widths, net.nnz, net.epoch
    (['0', '2'], [4, 3, 2], 10, 7)
    >>> net["0"].fan_in.tolist()
    [1, 2, 1]
    >>> temporary.cleanup()
    """
    path = Path(path)
    obj, found = load_checkpoint(path)
    with reading(path, "torch checkpoint"):
        tensors, facts, notes = state_dict_tensors(obj, source=path.name)
        if found:
            notes = found + [n for n in notes if not n.startswith("no state dict entry")]
        _gpt2_conv1d(tensors, notes)
        topology = build_topology(
            tensors,
            path=path,
            format="pytorch",
            layers=layers,
            weights=weights,
            info=facts,
            warnings=notes,
        )
        warnings: list[str] = []
        requested = _requested_targets(obj, path, topology, warnings)
        if warnings:
            topology = topology.with_info(warnings=list(topology.info.get("warnings", [])) + warnings)
        return topology.with_info(requested_sparsity=requested) if requested else topology


#: A SparseML recipe beside a checkpoint; larger files are not recipes.
_RECIPE_NAMES = ("recipe.yaml", "recipe.yml")
_MAX_RECIPE_BYTES = 1024**2


def _requested_targets(obj: Any, path: Path, topology: Topology, warnings: list[str]) -> dict[str, float]:
    """Target sparsities the checkpoint records: an NNI ``config_list`` in the checkpoint
    dict, a SparseML recipe (the dict's ``recipe`` string, or ``recipe.yaml`` beside the
    file). Keyed by layer name (see :mod:`topo.formats._requested`)."""
    from topo.formats import _requested

    names = topology.names
    out: dict[str, float] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("config_list"), (list, tuple)):
        kinds = {layer.name: str(layer.info.get("kind", "")) for layer in topology if layer.info.get("kind")}
        out.update(_requested.nni_targets(obj["config_list"], names, kinds))
    recipe = obj.get("recipe") if isinstance(obj, Mapping) else None
    if not isinstance(recipe, str):
        recipe = None
        for name in _RECIPE_NAMES:
            candidate = path.parent / name
            if candidate.is_file() and candidate.stat().st_size <= _MAX_RECIPE_BYTES:
                try:
                    recipe = _policy.confine(candidate, path.parent, what=name).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError, TopoError):
                    recipe = None
                break
    if recipe is not None and not _requested.yaml_available():
        warnings.append("a SparseML recipe was found, but PyYAML is not installed: its targets are not read")
    elif recipe is not None:
        params = [str(layer.info.get("key", layer.name)) for layer in topology]
        out.update(_requested.sparseml_targets(recipe, params, names))
    return out

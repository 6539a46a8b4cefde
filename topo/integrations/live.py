"""Live models, state dicts and file objects as Topologies: the same rules as files.

A live ``torch.nn.Module`` is read through the assembler every foreign-format reader
uses (:func:`topo.formats._assemble.build_topology`), after the PyTorch reader's
state-dict rules (:func:`topo.formats.pytorch.state_dict_tensors`: masks of
``torch.nn.utils.prune``, ``torch.ao.pruning`` parametrizations, mask entries beside
the weights). So a pruned model read live and the same model saved and read from the
file give the same Topology.

What :func:`from_module` reads, module by module:

- ``Linear`` (and subclasses), Hugging Face ``Conv1D`` (stored ``[in, out]``);
- ``Conv1d`` / ``Conv2d`` / ``Conv3d``: channel-level layers (output channel ``i`` has
  input channel ``j`` when any kernel weight between them survives), the kernel-level
  density kept in the layer's ``info``; groups expand to the block-diagonal channel
  matrix;
- ``Embedding`` (standalone: token ``j`` feeds feature ``i``), ``LSTM`` / ``GRU`` /
  ``RNN`` (each ``weight_ih_l*`` / ``weight_hh_l*`` a standalone recurrent layer) and
  ``MultiheadAttention``'s input projections (standalone attention layers);
- masks: topo's own (the masks of :class:`topo.training.model.MaskedMLP`, and the
  ``topo_weight_mask`` buffer that :func:`topo.integrations.sparsify` registers), the
  masks of ``torch.nn.utils.prune`` and ``torch.ao.pruning``, else the nonzero pattern.

Layer order is the order of the first calls in a forward pass when ``example_input`` is
given (forward pre-hooks record it), else the order in which modules were registered,
read as a file's declared order is (where it does not chain and the shapes imply an
order that does, that one, with a warning); either way the assembler's chain checks
apply (a layer whose inputs do not match the previous layer's outputs stands alone,
with a warning). A parameter shared by several
modules (tied embeddings) is read once, at its first module.

No gradient is tracked and no weight is copied on the way: tensors are read with
``.detach()`` and ``.numpy()`` (views); only the Topology keeps its own snapshot of the
values (``weights=False`` keeps masks only and copies no weight at all). Tensors on an
accelerator are copied to the CPU, which cannot be avoided.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from topo.errors import TopoError
from topo.formats.memory import from_file_object, from_state_dict, state_records, tensor_values
from topo.topology import Topology
from topo.training.masking import MASK_BUFFER  # re-exported: the name users met here first

# from_state_dict and from_file_object are read by topo.formats.memory; re-exported here,
# where users met them first
__all__ = ["from_module", "from_state_dict", "from_file_object", "load", "load_object", "MASK_BUFFER"]

_RECURRENT_RE = re.compile(r"^weight_(ih|hh|hr)_l\d+(_reverse)?$")


def _is_hf_conv1d(module) -> bool:
    # transformers' GPT-2 style Conv1D: a Linear stored [in, out]; recognised without importing transformers
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers") and hasattr(module, "nf")


def _layer_spec(module) -> dict[str, Any] | None:
    """How to read ``module``'s own weights, or None when it is not a layer topo reads."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return {"kind": None, "layout": "out_in"}
    if _is_hf_conv1d(module):
        return {"kind": None, "layout": "in_out"}
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return {"kind": None, "layout": "out_in", "groups": int(module.groups)}
    if isinstance(module, nn.Embedding):
        return {"kind": "embedding", "layout": "in_out"}
    if isinstance(module, nn.RNNBase):
        return {"kind": "recurrent", "layout": "out_in"}
    if isinstance(module, nn.MultiheadAttention):
        return {"kind": "attention", "layout": "out_in", "own_only": True}
    return None


def _masked_mlp_masks(root) -> dict[int, Any]:
    """``id(Linear) -> mask`` for every topo MaskedMLP inside ``root``."""
    from topo.training import model as topo_model

    masked_mlp = topo_model.MaskedMLP
    found: dict[int, Any] = {}
    for sub in root.modules():
        if isinstance(sub, masked_mlp):
            for layer, mask in zip(sub.layers, sub.masks):
                found[id(layer)] = mask
    return found


def _local_state(name: str, sub, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The module's own tensors (not those of child layers), keyed ``m.<key>``."""
    children = {child for child, _ in sub.named_children() if child != "parametrizations"}
    state = sub.state_dict(keep_vars=True)
    local = {}
    for key, value in state.items():
        head = key.split(".", 1)[0]
        if head in children:
            continue
        if spec.get("own_only") and "." in key:
            continue
        local[f"m.{key}"] = value
    # torch.ao.pruning keeps a parametrization's mask in a non-persistent buffer, absent from
    # state_dict(); a live module still has it, so hand it over under the name a file would use
    parametrizations = getattr(sub, "parametrizations", None)
    if parametrizations is not None:
        for param, chain in parametrizations.items():
            for index, parametrization in enumerate(chain):
                mask = getattr(parametrization, "mask", None)
                key = f"m.parametrizations.{param}.{index}.mask"
                if mask is not None and hasattr(mask, "dim") and key not in local:
                    local[key] = mask
    return local


def _forward_order(module, candidates: list[tuple[str, Any]], example_input) -> list[str]:
    """Names of ``candidates`` in the order of their first call in one forward pass."""
    import torch

    order: list[str] = []
    seen: set[str] = set()
    handles = []

    def recorder(layer_name: str):
        def hook(_module, _args):
            if layer_name not in seen:
                seen.add(layer_name)
                order.append(layer_name)

        return hook

    training = {sub: sub.training for sub in module.modules()}
    for name, sub in candidates:
        handles.append(sub.register_forward_pre_hook(recorder(name)))
    try:
        module.eval()  # no batch-norm statistics or dropout change because topo looked
        with torch.no_grad():
            if isinstance(example_input, Mapping):
                module(**example_input)
            elif isinstance(example_input, (tuple, list)):
                module(*example_input)
            else:
                module(example_input)
    except Exception as exc:
        from topo.formats._assemble import one_line

        raise TopoError(f"the forward pass with example_input failed ({type(exc).__name__}: {one_line(exc)})") from None
    finally:
        for handle in handles:
            handle.remove()
        for sub, mode in training.items():
            sub.train(mode)
    return order


def from_module(
    module,
    example_input: Any = None,
    *,
    weights: bool = True,
    layers: str | None = None,
) -> Topology:
    """Read a live ``torch.nn.Module`` as a Topology.

    Parameters
    ----------
    module : torch.nn.Module
        Any model; its ``Linear``, ``Conv1d/2d/3d``, ``Embedding``, ``LSTM``/``GRU``/
        ``RNN``, ``MultiheadAttention`` and Hugging Face ``Conv1D`` modules become layers.
    example_input : tensor, tuple or dict, optional
        An input for one forward pass (a tensor, positional arguments, or keyword
        arguments); layers are then ordered by their first call. Run in eval mode
        without gradients; the modules' training flags are restored afterwards.
        Without it, layers follow the order in which modules were registered.
    weights : bool
        Keep weight values (a snapshot, one copy); False keeps masks and biases only.
    layers : str, optional
        Regular expression; keep only layers whose name matches (``re.search``).

    Returns
    -------
    Topology
        ``info``: ``format`` ``"torch-module"``, ``order``, ``warnings`` (layers kept
        standalone, tied weights, layers the forward pass never called, how masks
        were found), ``skipped``.

    Raises
    ------
    TopoError
        If ``module`` is not a torch module, holds no layer topo reads, the forward
        pass fails, or no layer name matches ``layers``.

    Examples
    --------
    >>> import torch, topo
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> topo.from_module(net).names
    ['0', '2']
    """
    import torch

    from topo.formats._assemble import build_topology
    from topo.formats.pytorch import state_dict_tensors

    if not isinstance(module, torch.nn.Module):
        raise TopoError(f"from_module expects a torch.nn.Module, got {type(module).__name__}")
    label = f"<{type(module).__name__}>"
    root_name = type(module).__name__.lower()
    candidates: list[tuple[str, Any]] = []
    specs: dict[str, dict[str, Any]] = {}
    for name, sub in module.named_modules():
        spec = _layer_spec(sub)
        if spec is None:
            continue
        name = name or root_name
        candidates.append((name, sub))
        specs[name] = spec
    if not candidates:
        raise TopoError(f"{label}: no layer topo reads (Linear, Conv, Embedding, LSTM/GRU, Conv1D)")
    if layers is not None:
        # read only what the filter can keep (modules holding several layers are decided later)
        try:
            pattern = re.compile(layers)
        except re.error as exc:
            raise TopoError(f"option layers={layers!r} is not a valid regular expression ({exc})") from None
        candidates = [
            (name, sub) for name, sub in candidates
            if pattern.search(name) or specs[name]["kind"] in ("recurrent", "attention")
        ]
        if not candidates:
            raise TopoError(f"{label}: no layer name matches layers={layers!r}")

    warnings: list[str] = []
    order_note = "registration order of the modules"
    if example_input is not None:
        called = _forward_order(module, candidates, example_input)
        by_name = dict(candidates)
        uncalled = [name for name, _ in candidates if name not in set(called)]
        candidates = [(name, by_name[name]) for name in called] + [(name, by_name[name]) for name in uncalled]
        order_note = "first calls in a forward pass"
        if uncalled:
            shown = ", ".join(uncalled[:5]) + (f", ... ({len(uncalled)} in all)" if len(uncalled) > 5 else "")
            warnings.append(f"layers the forward pass did not call, placed last: {shown}")

    explicit = _masked_mlp_masks(module)
    tensors = []
    first_owner: dict[int, str] = {}
    tied: list[str] = []
    with torch.no_grad():
        for name, sub in candidates:
            spec = specs[name]
            local = _local_state(name, sub, spec)
            # tied weights: a parameter already read under another module is read once
            for key, value in list(local.items()):
                if getattr(value, "dim", lambda: 0)() < 2:
                    continue
                owner = first_owner.setdefault(id(value), f"{name}.{key[2:]}")
                if owner != f"{name}.{key[2:]}":
                    tied.append(f"{name}.{key[2:]} (= {owner})")
                    del local[key]
            if not any(value.dim() >= 2 for value in local.values()):
                continue
            found, _facts, notes = state_dict_tensors(state_records(local), source=label)
            warnings.extend(f"{name}: {note}" for note in notes)
            mask = getattr(sub, MASK_BUFFER, None)
            if mask is None:
                mask = explicit.get(id(sub))
            for t in found:
                rest = t.key[2:] if t.key.startswith("m.") else t.key
                ndim = len(t.value.shape)
                t.key = f"{name}.{rest}"
                t.source = f"{label}:{name}.{rest}"
                t.info = {"module": type(sub).__name__}
                t.note = t.note.replace("'m.", f"'{name}.")
                if ndim < 2:
                    continue
                t.layout = spec["layout"]
                if spec.get("groups"):
                    t.groups = spec["groups"]
                if spec["kind"] is not None:
                    t.kind = spec["kind"]
                if spec["kind"] == "recurrent" and not _RECURRENT_RE.match(rest):
                    t.kind = None
                if rest in ("weight", "weight_orig") or _RECURRENT_RE.match(rest) or spec["kind"] == "attention":
                    t.name = name if rest == "weight" else f"{name}.{rest.removesuffix('_weight')}"
                if mask is not None and rest == "weight":
                    t.mask = tensor_values(mask)
                    t.note = "topo mask"
            tensors.extend(found)
    if tied:
        shown = ", ".join(tied[:5]) + (f", ... ({len(tied)} in all)" if len(tied) > 5 else "")
        warnings.append(f"tied weights read once: {shown}")
    return build_topology(
        tensors,
        path=Path(label),
        format="torch-module",
        layers=layers,
        weights=weights,
        info={"order": order_note, "module": type(module).__name__},
        warnings=warnings,
        # a forward pass is the model's real order; registration order is only declared,
        # like a state dict's, and gets the file readers' rules (reordered where shapes say so)
        keep_order=example_input is not None,
    )


def _is_module(obj: Any) -> bool:
    # torch is loaded by whoever made a module, so a module is recognised without importing it
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def load_object(obj: Any, *, format: str | None = None, **options: Any) -> Topology:
    """:func:`topo.load` for what is not a path: a module, a state dict, a file object.

    Parameters
    ----------
    obj : torch.nn.Module, mapping or binary file object
        Read by :func:`from_module`, :func:`from_state_dict` or :func:`from_file_object`.
    format : str, optional
        For a file object: skip detection.
    **options
        Passed to the function that reads ``obj``.

    Returns
    -------
    Topology

    Raises
    ------
    TopoError
        For any other type, naming it.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> load_object(model).names, load_object(model.state_dict()).nnz
    (['0', '2'], 18)
    >>> load_object(42)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: topo.load: cannot read a int; give a path, a binary file object, a state dict or a torch.nn.Module
    """
    if _is_module(obj):
        return from_module(obj, **options)
    from topo.formats.memory import load_object as load_in_memory

    if hasattr(obj, "read") or isinstance(obj, Mapping):
        return load_in_memory(obj, format=format, **options)
    raise TopoError(
        f"topo.load: cannot read a {type(obj).__name__}; give a path, a binary file object, "
        "a state dict or a torch.nn.Module"
    )


def load(source: Any, *, format: str | None = None, **options: Any) -> Topology:
    """Read a checkpoint file or folder, a binary file object, a state dict or a live module.

    This is ``topo.load``: a path goes to :func:`topo.formats.load` (every file format
    topo reads), anything else to :func:`load_object`.

    Parameters
    ----------
    source : path-like, binary file object, mapping or torch.nn.Module
        What to read.
    format : str, optional
        For a path or a file object: skip detection (a key of :data:`topo.formats.READERS`).
    **options
        Passed to the reader: ``weights=False`` keeps masks only, ``layers=REGEX``
        keeps the layers whose name matches.

    Returns
    -------
    Topology

    Raises
    ------
    TopoError
        If the source cannot be read, saying what and where.

    Examples
    --------
    >>> import numpy as np, topo
    >>> topo.load({"fc1.weight": np.eye(3), "fc2.weight": np.ones((2, 3))}).widths
    [3, 3, 2]
    """
    if isinstance(source, (str, os.PathLike)):
        from topo.formats import load as load_path

        return load_path(source, format=format, **options)
    return load_object(source, format=format, **options)

"""Sparse training in any PyTorch training loop: ``sparsify(model, optimizer, ...)``.

One implementation, two front doors: the controller drives the same algorithm classes
as ``topo train`` (:mod:`topo.training.algorithms`, taken from the registry by name) and
the same step (:mod:`topo.training.masking`), hooked onto the user's optimiser:

- a step *pre*-hook reads the dense gradient (per-neuron ``grad_mean`` statistics and
  what the algorithm needs), runs the algorithm's update on its schedule and, when the
  masks changed, hides every gradient from the optimiser so that this step moves no
  weight (RigL's rule, as in ``topo train``); otherwise it zeroes the gradient at
  masked positions;
- a step *post*-hook puts the gradients back and sets the masked weights to exactly
  zero, and at the end of every epoch runs the algorithm's end-of-epoch hook (SET,
  pruning).

So every layer's number of active weights is exact after every ``optimizer.step()``, and
a loop that trains topo's own MLP with the same seed, data order and learning rates
as ``topo train`` ends with the same weights and masks, bit for bit.

Masks live on the layers as non-persistent buffers named
:data:`topo.integrations.live.MASK_BUFFER` (so they follow ``model.to(device)`` and do
not change the model's ``state_dict()``); :meth:`SparseController.state_dict` holds
them for the user's own checkpoints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = ["sparsify", "SparseController", "STATE_FORMAT"]

STATE_FORMAT = "topo-sparsify-state"
_STATE_VERSION = 1


def _candidate_layers(model) -> list[tuple[str, Any]]:
    """``(name, module)`` of every Linear and Conv1d/2d/3d, in registration order."""
    import torch.nn as nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [(name, sub) for name, sub in model.named_modules() if isinstance(sub, kinds)]


def _select_layers(candidates, layers) -> list[tuple[str, Any]]:
    """The layers the controller masks; see :func:`sparsify`'s ``layers``."""
    if layers is None:
        chosen = candidates[1:-1]
        if not chosen:
            raise TopoError(
                f"the model has {len(candidates)} Linear/Conv layers; by default the first and the last "
                "stay dense, which leaves none to sparsify: pass layers='all' or a name pattern"
            )
        return chosen
    if isinstance(layers, str):
        if layers == "all":
            return list(candidates)
        try:
            pattern = re.compile(layers)
        except re.error as exc:
            raise TopoError(f"layers={layers!r} is not a valid regular expression ({exc})") from None
        chosen = [(n, m) for n, m in candidates if pattern.search(n)]
    elif callable(layers):
        chosen = [(n, m) for n, m in candidates if layers(n, m)]
    else:
        wanted = [str(n) for n in layers]
        names = {n for n, _ in candidates}
        missing = [n for n in wanted if n not in names]
        if missing:
            raise TopoError(
                f"layers: no Linear/Conv layer named {', '.join(missing)} (the model has {', '.join(sorted(names))})"
            )
        chosen = [(n, m) for n, m in candidates if n in set(wanted)]
    if not chosen:
        raise TopoError(f"layers={layers!r} selects none of the model's layers ({', '.join(n for n, _ in candidates)})")
    return chosen


class SparseController:
    """Keeps a model's chosen layers sparse while a user's loop trains it.

    Build it with :func:`sparsify`. It hooks the optimiser's ``step``; the user's loop
    does not change. Call :meth:`remove` to unhook it.

    Attributes
    ----------
    names : list of str
        The masked layers (module names), in order.
    algorithm : topo.training.algorithms.Algorithm
        The algorithm instance (registry class of ``method``).
    step : int
        Optimiser steps taken since the start (global, 1-based after the first).
    mask_updates : int
        Steps on which the algorithm changed the masks.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
    ...                             torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> controller = sparsify(model, optimizer, method="static", density=0.25)
    >>> controller.names, controller.nnz(), controller.densities()
    (['2'], [16], [0.25])
    >>> model(torch.randn(5, 4)).pow(2).mean().backward()
    >>> optimizer.step()
    >>> controller.step, int((model[2].weight != 0).sum())
    (1, 16)
    >>> controller.remove()
    """

    def __init__(
        self,
        model,
        optimizer,
        *,
        method: str,
        density: float,
        distribution: str,
        layers,
        epochs: int | None,
        steps_per_epoch: int | None,
        profile: str,
        cv: float | None,
        hub_placement: str,
        density_map: Mapping[str, float] | None,
        seed: int,
        method_options: Mapping[str, Any],
        backend: str = "masked",
    ) -> None:
        import torch

        from topo.integrations.live import MASK_BUFFER
        from topo.training.algorithms import get_algorithm_class
        from topo.training.masking import total_epochs

        if not isinstance(model, torch.nn.Module):
            raise TopoError(f"sparsify expects a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TopoError(f"sparsify expects a torch.optim.Optimizer, got {type(optimizer).__name__}")
        try:
            density = float(density)
        except (TypeError, ValueError):
            raise TopoError(f"density must be a number in (0, 1], got {density!r}") from None
        if not 0.0 < density <= 1.0:
            raise TopoError(f"density must be in (0, 1], got {density!r}")
        cls = get_algorithm_class(method)
        unknown = sorted(set(method_options) - set(cls.option_names))
        if unknown:
            known = ", ".join(cls.option_names) or "none"
            raise TopoError(f"method {method!r} takes no option {', '.join(unknown)} (its options: {known})")
        options = dict(method_options)
        if "sparsity" in cls.option_names and "sparsity" not in options:
            options["sparsity"] = 1.0 - density  # pruning: density is the target it prunes to
        self.algorithm = cls(**options)
        self.method = method
        self.seed = int(seed)
        self.density = density
        self.distribution = distribution
        if epochs is not None and (int(epochs) != epochs or epochs < 0):
            raise TopoError(f"epochs must be a non-negative integer, got {epochs!r}")
        if steps_per_epoch is not None and (int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1):
            raise TopoError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
        if method != "static" and (epochs is None or steps_per_epoch is None):
            raise TopoError(
                f"method {method!r} changes masks on a schedule: give epochs= and steps_per_epoch= "
                "(e.g. steps_per_epoch=len(train_loader))"
            )
        self.epochs = int(epochs or 0)
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else None
        self.total_epochs = total_epochs(self.algorithm, self.epochs)
        self.total_steps = self.total_epochs * (self.steps_per_epoch or 0)

        self.model = model
        self.optimizer = optimizer
        candidates = _candidate_layers(model)
        if not candidates:
            raise TopoError("the model has no Linear or Conv layer to sparsify")
        chosen = _select_layers(candidates, layers)
        self.names = [name for name, _ in chosen]
        self._modules = [module for _, module in chosen]
        self._all_names = [name for name, _ in candidates]
        self._all_modules = [module for _, module in candidates]
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for name, module in chosen:
            if id(module.weight) not in in_optimizer:
                raise TopoError(f"the optimizer does not update {name}.weight; build it over model.parameters()")
            if hasattr(module, "weight_orig") or hasattr(module, "parametrizations"):
                raise TopoError(f"{name} is already pruned or parametrized; remove that before sparsify()")

        shapes = [(int(m.weight.shape[0]), int(m.weight.numel() // m.weight.shape[0])) for m in self._modules]
        kernels = [tuple(int(k) for k in m.weight.shape[2:]) for m in self._modules]
        # convolutions: RigL's Erdős–Rényi-kernel counts the kernel's dimensions too
        kernel_option = {"kernel_sizes": kernels} if any(kernels) else {}
        from topo.training import backends
        from topo.training.algorithms.base import Algorithm

        # layers above DENSE_LIMIT weights are drawn row by row, never as a dense [out, in]
        # draw (where the method draws with the shared rule, which can)
        by_rows = type(self.algorithm).initial_masks is Algorithm.initial_masks
        init = self.algorithm.initial_masks(
            shapes,
            sparsity=1.0 - density,
            density=distribution,
            profile=profile,
            cv=cv,
            hub_placement=hub_placement,
            dense_output=False,
            density_map=dict(density_map) if density_map else None,
            seed=self.seed,
            names=self.names,
            **kernel_option,
            **({"sparse_above": backends.DENSE_LIMIT} if by_rows else {}),
        )
        self.initial_cv = [float(c) for c in init.achieved_cv]
        self.budgets = [int(b) for b in init.budgets]
        self._mask_buffer = MASK_BUFFER
        #: per masked layer, "sparse" (replaced by a SparseLinear) or "masked"
        self.kinds = _layer_kinds(backend, shapes, init.masks, self._modules)
        for module, mask, kind in zip(self._modules, init.masks, self.kinds):
            if kind == "sparse":
                continue  # built from its mask below, without a dense copy of it
            if hasattr(module, MASK_BUFFER):
                delattr(module, MASK_BUFFER)
            module.register_buffer(MASK_BUFFER, _mask_tensor(mask, module.weight), persistent=False)
        self.algorithm.setup(
            masks=init.masks,
            steps_per_epoch=self.steps_per_epoch or 0,
            epochs=self.epochs,
            total_steps=self.total_steps,
        )
        from topo.training.masking import FloatMaskCache, apply_masks

        self._float_masks = FloatMaskCache()
        self.step = 0
        self.mask_updates = 0
        self.masks_changed_after_epoch = 0
        self._generator: Any = None  # a torch.Generator once the algorithm needs one
        self._generator_epoch: int | None = None
        self._grad_sums: list[Any] | None = None
        self._grad_steps = 0
        self._grad_epoch: int | None = None
        self._grad_scratch: dict = {}
        self._hidden: list[tuple[Any, Any]] = []
        self._changed = False
        self.backend = backend
        self._steps: Any = None  # SparseSteps where some layers are sparse
        self._make_sparse(init.masks)
        masked = [k for k, kind in enumerate(self.kinds) if kind == "masked"]
        weights, masks = self.weights, self.masks
        apply_masks([weights[k] for k in masked],
                    self._float_masks.get([weights[k] for k in masked], [masks[k] for k in masked]))
        self._handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]

    def _make_sparse(self, masks) -> None:
        """Replace the layers :attr:`kinds` makes sparse by SparseLinear ones, built from
        their initial ``masks`` (dense or CSR; a CSR one is never formed densely).

        Each keeps its active weights (its ``values`` Parameter takes the weight's place in the
        optimiser, with fresh state) and its bias Parameter; convolutions stay masked.
        """
        import torch

        from topo.training.backends import SparseSteps
        from topo.training.sparse_layers import sparse_linear

        if "sparse" not in self.kinds:
            return
        for k, (name, module) in enumerate(zip(self.names, list(self._modules))):
            if self.kinds[k] != "sparse":
                continue
            weight = module.weight.detach()
            layer = sparse_linear(tuple(weight.shape), masks[k], bias=module.bias)
            with torch.no_grad():
                # the active weights, row-major (as weight[mask] gives them)
                rows, cols = layer.row_indices().to(weight.device), layer.col_indices.to(weight.device)
                layer.values.data = weight[rows, cols].to(torch.float32)
            layer.crow_indices = layer.crow_indices.to(weight.device)
            layer.col_indices = layer.col_indices.to(weight.device)
            parent_name, _, child = name.rpartition(".")
            setattr(self.model.get_submodule(parent_name) if parent_name else self.model, child, layer)
            for group in self.optimizer.param_groups:
                group["params"] = [layer.values if p is module.weight else p for p in group["params"]]
            self.optimizer.state.pop(module.weight, None)
            self._modules[k] = layer
            self._all_modules[self._all_names.index(name)] = layer
        from types import SimpleNamespace

        self._steps = SparseSteps(SimpleNamespace(layers=self._modules, names=self.names, kinds=self.kinds))
        self._steps.before_backward(self.algorithm, 1)

    # -- what it controls --------------------------------------------------------------
    @property
    def weights(self) -> list[Any]:
        """The masked layers' weight parameters (a sparse layer's ``values``)."""
        return [module.values if hasattr(module, "values") else module.weight for module in self._modules]

    @property
    def masks(self) -> list[Any]:
        """The masks (bool tensors of the weights' shapes), read from the layers' buffers; a
        sparse layer's is formed from its CSR structure."""
        return [
            module.dense_mask() if hasattr(module, "col_indices") else getattr(module, self._mask_buffer)
            for module in self._modules
        ]

    @property
    def epoch(self) -> int:
        """Complete epochs so far (0 without ``steps_per_epoch``)."""
        return self.step // self.steps_per_epoch if self.steps_per_epoch else 0

    def _counts(self) -> tuple[list[int], list[int], list[np.ndarray]]:
        """``(nnz, sizes, fan-ins)`` per masked layer, without forming sparse layers' masks."""
        if self._steps is not None:
            return self._steps.counts()
        masks = self.masks
        return (
            [int(m.sum()) for m in masks],
            [int(m.numel()) for m in masks],
            [m.reshape(m.shape[0], -1).sum(dim=1).cpu().numpy() for m in masks],
        )

    def nnz(self) -> list[int]:
        """Active weights per masked layer."""
        return self._counts()[0]

    def densities(self) -> list[float]:
        """Share of active weights per masked layer."""
        nnz, sizes, _ = self._counts()
        return [n / size for n, size in zip(nnz, sizes)]

    # -- the hooks -----------------------------------------------------------------------
    def _epoch_of(self, step: int) -> int:
        return (step - 1) // self.steps_per_epoch + 1 if self.steps_per_epoch else 1

    def _before_step(self, optimizer, args, kwargs) -> None:
        import torch

        from topo.training.masking import algorithm_generator, algorithm_update, grad_abs_mean, mask_gradients

        step = self.step + 1
        epoch = self._epoch_of(step)
        if self._generator_epoch != epoch:
            self._generator = algorithm_generator(self.seed, epoch)
            self._generator_epoch = epoch
        if self._grad_epoch != epoch or self._grad_sums is None:
            self._grad_sums = [torch.zeros(_n_out(m), device=_device(m)) for m in self._all_modules]
            self._grad_steps = 0
            self._grad_epoch = epoch
        if self._steps is None:
            means = grad_abs_mean([module.weight for module in self._all_modules], self._grad_scratch)
        else:
            from topo.training.backends import module_grad_abs_mean

            means = [module_grad_abs_mean(m, self._grad_scratch.setdefault(k, {}))
                     for k, m in enumerate(self._all_modules)]
        for total, mean in zip(self._grad_sums or [], means):
            total += mean
        self._grad_steps += 1
        if self._steps is not None:
            self._changed = self._steps.update(self.algorithm, step, optimizer, self._generator)
        else:
            weights, masks = self.weights, self.masks
            self._changed = algorithm_update(self.algorithm, step, weights, masks, optimizer, self._generator)
        if self._changed:
            # the step that changes the masks does not also move the weights: the optimiser
            # skips parameters without a gradient, so hide them all for this one step
            self._hidden = [(p, p.grad) for group in optimizer.param_groups for p in group["params"]]
            for p, _ in self._hidden:
                p.grad = None
        elif self._steps is not None:
            self._steps.mask_gradients()
        else:
            mask_gradients(weights, self._float_masks.get(weights, masks))

    def _after_step(self, optimizer, args, kwargs) -> None:
        from topo.training.masking import algorithm_after_epoch, apply_masks

        step = self.step + 1
        if self._changed:
            for p, grad in self._hidden:
                p.grad = grad
            self._hidden = []
            self._changed = False
            self.mask_updates += 1
        elif self._steps is not None:
            self._steps.apply_masks()
        else:
            weights = self.weights
            apply_masks(weights, self._float_masks.get(weights, self.masks))
        self.step = step
        if self.steps_per_epoch and step % self.steps_per_epoch == 0:
            epoch = step // self.steps_per_epoch
            if self._steps is not None:
                changed = self._steps.after_epoch(self.algorithm, epoch, optimizer, self._generator)
            else:
                changed = algorithm_after_epoch(self.algorithm, epoch, self.weights, self.masks, optimizer,
                                                self._generator)
            if changed:
                self.masks_changed_after_epoch += 1
        if self._steps is not None:
            # a step on which the algorithm reads the dense gradient keeps its batch in backward
            self._steps.before_backward(self.algorithm, step + 1)

    def remove(self) -> None:
        """Unhook the controller from the optimiser (masks stay on the layers)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # -- checkpoints the user's loop keeps -----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: masks, step, algorithm state, generator, statistics.

        Plain values and CPU tensors only, so ``torch.save`` of it loads with
        ``weights_only=True``. The model's and optimiser's own state dicts are the user's;
        a sparse layer's connections are in the model's (its CSR index buffers), so its
        entry in ``masks`` is None.
        """
        return {
            "format": STATE_FORMAT,
            "version": _STATE_VERSION,
            "method": self.method,
            "names": list(self.names),
            "kinds": list(self.kinds),
            "masks": [
                None if kind == "sparse" else getattr(module, self._mask_buffer).detach().cpu().clone()
                for kind, module in zip(self.kinds, self._modules)
            ],
            "step": int(self.step),
            "mask_updates": int(self.mask_updates),
            "masks_changed_after_epoch": int(self.masks_changed_after_epoch),
            "algorithm": self.algorithm.state_dict(),
            "generator": None if self._generator is None else self._generator.get_state(),
            "generator_epoch": self._generator_epoch,
            "grad_sums": None if self._grad_sums is None else [s.detach().cpu().clone() for s in self._grad_sums],
            "grad_steps": int(self._grad_steps),
            "grad_epoch": self._grad_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (after loading the model's and optimiser's).

        Raises
        ------
        TopoError
            If the state is not a sparsify state, is of another method, or names other
            layers or shapes.
        """
        import torch

        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise TopoError("not a sparsify() state (expected what SparseController.state_dict() returned)")
        if state.get("method") != self.method:
            raise TopoError(f"the state is of method {state.get('method')!r}, this controller runs {self.method!r}")
        if list(state.get("names", [])) != self.names:
            raise TopoError(f"the state masks layers {state.get('names')}, this controller {self.names}")
        if list(state.get("kinds", ["masked"] * len(self.names))) != self.kinds:
            raise TopoError(f"the state's layers are {state.get('kinds')}, this controller's {self.kinds}")
        for name, kind, module, saved in zip(self.names, self.kinds, self._modules, state["masks"]):
            if kind == "sparse":
                continue  # its connections came with the model's state dict
            current = getattr(module, self._mask_buffer)
            if tuple(saved.shape) != tuple(current.shape):
                raise TopoError(f"{name}: saved mask of shape {tuple(saved.shape)}, the weight is {tuple(current.shape)}")
            current.copy_(saved.to(device=current.device, dtype=torch.bool))
        self.step = int(state["step"])
        self.mask_updates = int(state.get("mask_updates", 0))
        self.masks_changed_after_epoch = int(state.get("masks_changed_after_epoch", 0))
        self.algorithm.load_state_dict(state["algorithm"])
        self._generator_epoch = state.get("generator_epoch")
        if state.get("generator") is not None:
            self._generator = torch.Generator()
            self._generator.set_state(state["generator"])
        else:
            self._generator = None
        sums = state.get("grad_sums")
        self._grad_sums = None
        if sums is not None:
            devices = [_device(module) for module in self._all_modules]
            self._grad_sums = [s.to(d) for s, d in zip(sums, devices)]
        self._grad_steps = int(state.get("grad_steps", 0))
        self._grad_epoch = state.get("grad_epoch")
        if self._steps is not None:
            self._steps.apply_masks()
            self._steps.before_backward(self.algorithm, self.step + 1)
            return
        from topo.training.masking import apply_masks

        apply_masks(self.weights, self._float_masks.get(self.weights, self.masks))

    # -- topo's own checkpoints ----------------------------------------------------------
    def grad_mean(self) -> dict[str, np.ndarray]:
        """Per layer (every Linear/Conv of the model), the mean over the current epoch's
        steps of each output neuron's mean ``|dL/dW|``; zeros before the first step."""
        out = {}
        for k, (name, module) in enumerate(zip(self._all_names, self._all_modules)):
            if self._grad_sums is None or self._grad_steps == 0:
                out[name] = np.zeros(_n_out(module), dtype=np.float32)
            else:
                out[name] = (self._grad_sums[k] / self._grad_steps).cpu().numpy().astype(np.float32)
        return out

    def topology(self, *, info: Mapping[str, Any] | None = None):
        """The model now, as a Topology: every layer, the controller's masks, ``grad_mean`` statistics."""
        from topo.integrations.live import from_module
        from topo.topology import Topology

        sparse = {name: module for name, module, kind in zip(self.names, self._modules, self.kinds) if kind == "sparse"}
        try:
            topology = from_module(self.model)
            read, meta = list(topology), dict(topology.info)
        except TopoError:
            if not sparse:
                raise
            read, meta = [], {"format": "torch-module"}  # every layer it reads is sparse
        if sparse:
            # from_module does not read SparseLinear modules: put them where they are registered
            order = {name: k for k, name in enumerate(self._all_names)}
            read += [_sparse_layer(name, module) for name, module in sparse.items()]
            read.sort(key=lambda layer: order.get(layer.name, -1))
        grad_mean = self.grad_mean()
        layers = [
            layer.with_(stats={**dict(layer.stats), "grad_mean": grad_mean[layer.name]}) if layer.name in grad_mean else layer
            for layer in read
        ]
        meta.update({"method": self.method, "seed": self.seed, "step": self.step, "epoch": self.epoch})
        meta.update(info or {})
        return Topology(layers, info=meta)

    def _run_config(self) -> dict[str, Any]:
        from topo._version import __version__

        return {
            "kind": "topo-sparsify-run",
            "method": self.method,
            "sparsity": 1.0 - self.density,
            "density_rule": self.distribution,
            "algorithm": self.algorithm.describe(),
            "seed": self.seed,
            "epochs": self.epochs,
            "total_epochs": self.total_epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "sparse_layers": list(self.names),
            "backend": self.backend,
            "backends": list(self.kinds),
            "network": {"layers": list(self._all_names)},
            "initial": {"achieved_cv": self.initial_cv, "budgets": self.budgets},
            "model": type(self.model).__name__,
            "optimizer": type(self.optimizer).__name__,
            "versions": {"topo": __version__},
        }

    def save_checkpoint(
        self,
        path,
        *,
        epoch: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        run_info: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write topo's own checkpoint of the model now, with per-neuron gradient means.

        Parameters
        ----------
        path : path-like
            A ``.safetensors`` file, or a run folder: then ``run.json`` is written on the
            first call and the checkpoint goes to ``checkpoints/epoch_E.safetensors`` (at
            the end of an epoch) or ``epoch_E_step_S`` (inside epoch E), so that
            ``topo compare``, ``distance``, ``drift``, ``hubs``, ``plot`` and ``report``
            read the run like one of ``topo train``'s. Call it once before training for
            ``epoch_0000``.
        epoch : int, optional
            The epoch to file it under (default: from the step count; required after the
            first step when the controller has no ``steps_per_epoch``).
        metrics : mapping, optional
            The loop's figures for this epoch (``train_loss``, ``val_acc``, ...); in a
            run folder they are appended to ``metrics.jsonl`` with the masks' densities
            and fan-in CVs.
        run_info : mapping, optional
            Facts about the run for ``run.json`` (e.g. ``{"dataset": "mnist"}``), written
            with the first checkpoint of a run folder.

        Returns
        -------
        Path
            The checkpoint written.
        """
        from topo.analysis.degree import coefficient_of_variation
        from topo.checkpoint import (
            CHECKPOINT_DIR,
            RUN_CONFIG,
            append_metrics,
            checkpoint_name,
            save_checkpoint,
            write_run_config,
        )

        path = Path(path)
        inside = self.steps_per_epoch is not None and self.step % self.steps_per_epoch != 0
        if epoch is None:
            if not self.steps_per_epoch and self.step > 0:
                raise TopoError("save_checkpoint: give epoch= (the controller was built without steps_per_epoch)")
            epoch = self.epoch + (1 if inside else 0)
        record: dict[str, Any] = {"epoch": int(epoch), "step": int(self.step)}
        record.update(dict(metrics or {}))
        nnz, sizes, fan_ins = self._counts()
        record.update(
            {
                "nnz": int(sum(nnz)),
                "density": sum(nnz) / max(sum(sizes), 1),
                "densities": [n / size for n, size in zip(nnz, sizes)],
                "fan_in_cv": [coefficient_of_variation(f) for f in fan_ins],
                "mask_updates": int(self.mask_updates),
            }
        )
        info = {"metrics": {k: v for k, v in record.items() if k not in ("densities", "fan_in_cv")}}
        topology = self.topology(info=info)
        config = {**self._run_config(), **dict(run_info or {})}
        if path.suffix == ".safetensors":
            return save_checkpoint(topology, path, epoch=int(epoch), step=self.step, run_info=config)
        if not (path / RUN_CONFIG).is_file():
            write_run_config(path, config)
        name = checkpoint_name(int(epoch), self.step) if inside else checkpoint_name(int(epoch))
        written = save_checkpoint(topology, path / CHECKPOINT_DIR / name, epoch=int(epoch), step=self.step,
                                  run_info=config)
        append_metrics(path, record)
        return written


def _layer_kinds(backend: str, shapes, masks, modules) -> list[str]:
    """Per masked layer, ``"sparse"`` or ``"masked"`` under ``backend`` (convolutions stay masked).

    Raises
    ------
    TopoError
        For an unknown backend.
    """
    import torch

    from topo.training.backends import BACKENDS, _mask_nnz, layer_backends

    if backend not in BACKENDS:
        raise TopoError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "masked":
        return ["masked"] * len(modules)
    kinds = layer_backends(backend, shapes, [_mask_nnz(m) for m in masks])
    return [kind if isinstance(module, torch.nn.Linear) else "masked" for kind, module in zip(kinds, modules)]


def _mask_tensor(mask, weight):
    """A layer's mask as a bool tensor of its weight's shape and device.

    A CSR mask (a layer drawn row by row) is scattered into the tensor straight from its
    indices, without a dense intermediate of another type.
    """
    import scipy.sparse as sp
    import torch

    if not sp.issparse(mask):
        return torch.as_tensor(np.asarray(mask), dtype=torch.bool).reshape(weight.shape).to(weight.device)
    csr = sp.csr_matrix(mask)
    n_out, n_in = csr.shape
    rows = np.repeat(np.arange(n_out, dtype=np.int64), np.diff(csr.indptr))
    flat = torch.zeros(n_out * n_in, dtype=torch.bool, device=weight.device)
    flat[torch.from_numpy(rows * n_in + csr.indices.astype(np.int64)).to(weight.device)] = True
    return flat.reshape(weight.shape)


def _sparse_layer(name: str, module):
    """A SparseLinear module as a Layer: CSR mask, bias, and its weights where the layer is
    small enough to hold densely (:data:`topo.training.backends.DENSE_LIMIT`)."""
    from topo.topology import Layer
    from topo.training import backends

    mask = module.mask_csr()
    weight = None
    if module.shape[0] * module.shape[1] <= backends.DENSE_LIMIT:
        weight = module.dense_weight().to("cpu").float().numpy()
    bias = module.bias.detach().to("cpu").float().numpy().copy()
    return Layer(name=name, mask=mask, weight=weight, bias=bias, source="<sparsify>",
                 info={"module": "SparseLinear"})


def _n_out(module) -> int:
    return int(module.shape[0]) if hasattr(module, "col_indices") else int(module.weight.shape[0])


def _device(module):
    return module.values.device if hasattr(module, "col_indices") else module.weight.device


def sparsify(
    model,
    optimizer,
    method: str = "rigl",
    density: float = 0.1,
    distribution: str = "erk",
    *,
    layers: str | Sequence[str] | Callable[[str, Any], bool] | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    profile: str = "random",
    cv: float | None = None,
    hub_placement: str = "index",
    density_map: Mapping[str, float] | None = None,
    seed: int = 0,
    backend: str = "masked",
    **method_options: Any,
) -> SparseController:
    """Train ``model`` sparse in the user's own loop: masks, drop and grow, exact counts.

    Masks are drawn at once with topo's layer densities and fan-in profiles
    (:func:`topo.training.masks.initial_masks`), the masked weights are zeroed, and from
    then on every ``optimizer.step()`` keeps them zero and runs ``method`` on its
    schedule. Convolution kernels are masked weight by weight; for fan-in profiles and
    the algorithms a kernel ``[out, in, *k]`` is the matrix ``[out, in * prod(k)]``, and
    ERK is RigL's Erdős–Rényi-kernel (density proportional to
    ``(in + out + sum(k)) / (in * out * prod(k))``).

    Parameters
    ----------
    model : torch.nn.Module
        Any model whose layers to sparsify are ``Linear`` or ``Conv1d/2d/3d``.
    optimizer : torch.optim.Optimizer
        Built over the model's parameters; any optimiser (SGD, Adam, ...).
    method : str
        A registered algorithm (:func:`topo.training.algorithms.available_algorithms`):
        ``static``, ``rigl``, ``set``, ``ggr``, ``prune``, and any added later.
    density : float
        Share of the masked layers' weights that are active, in ``(0, 1]``; for
        ``prune``, the density it prunes to (training starts dense).
    distribution : {"erk", "uniform"}
        How that budget is shared among layers (RigL's Erdős–Rényi-kernel, or uniform).
    layers : None, "all", regex, list of names or callable
        Which layers are masked. Default: every Linear/Conv layer but the first and the
        last (kept dense, as RigL does). A regular expression is matched against module
        names (``re.search``); a callable gets ``(name, module)``.
    epochs, steps_per_epoch : int
        The schedule (required by every method but ``static``): RigL's and GGR's updates
        stop at ``end_fraction`` of ``epochs * steps_per_epoch`` steps; SET and pruning
        act at the end of epochs. For ``prune``, ``epochs`` is the dense phase and
        ``retrain_epochs`` follow it.
    profile, cv, hub_placement, density_map
        Fan-in profile of the initial masks, as ``topo train --profile/--cv/...``.
    seed : int
        Seeds the masks and the algorithm's random choices (per epoch).
    backend : {"masked", "sparse", "auto"}
        ``masked`` keeps the layers and multiplies by the masks. ``sparse`` replaces every
        masked ``Linear`` that is not fully dense by a
        :class:`~topo.training.sparse_layers.SparseLinear` in the model (same place, same
        bias Parameter; its active weights become a ``values`` Parameter that takes the
        weight's place in the optimiser), which stores and computes only the active
        weights (:mod:`topo.training.backends`); ``auto`` does so for large, sparse enough
        layers only. Convolutions stay masked. The training is the same within float
        tolerance.
    **method_options
        The method's own options (``update_every``, ``drop_fraction``,
        ``end_fraction``, ``explore_fraction``, ``prune_class``, ...); an option the
        method does not take is an error.

    Returns
    -------
    SparseController
        With ``state_dict()`` / ``load_state_dict()`` for the user's checkpoints and
        ``save_checkpoint(path)`` for topo's own.

    Raises
    ------
    TopoError
        For an unknown method or option, a density out of range, no layer selected, a
        layer the optimiser does not update, or a missing schedule.

    Examples
    --------
    >>> sparse = topo.sparsify(model, optimizer, method="rigl", density=0.1,  # doctest: +SKIP
    ...                        epochs=10, steps_per_epoch=len(loader), update_every=100)
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     for x, y in loader:
    ...         optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
    ...     sparse.save_checkpoint("runs/mine", metrics={"epoch_loss": ...})
    """
    return SparseController(
        model,
        optimizer,
        method=method,
        density=density,
        distribution=distribution,
        layers=layers,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        profile=profile,
        cv=cv,
        hub_placement=hub_placement,
        density_map=density_map,
        seed=seed,
        method_options=method_options,
        backend=backend,
    )

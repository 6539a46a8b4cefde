"""The masked backend's step: the same bits as masking the gradient, stepping and masking the weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo.training.algorithms import get_algorithm  # noqa: E402
from topo.training.backends import MaskedSteps  # noqa: E402
from topo.training.masking import algorithm_update, apply_masks, mask_gradients  # noqa: E402
from topo.training.masks import initial_masks  # noqa: E402
from topo.training.model import build_model  # noqa: E402

SHAPES = [(40, 30), (20, 40), (5, 20)]


def _run(optimizer_name: str, reference: bool):
    masks = initial_masks(SHAPES, 0.8, density="erk", seed=0).masks
    model = build_model(SHAPES, masks, seed=0)
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    steps = MaskedSteps(model)
    algorithm = get_algorithm("rigl", update_every=7, drop_fraction=0.3, end_fraction=0.9)
    algorithm.setup(masks=masks, steps_per_epoch=40, epochs=1, total_steps=40)
    data = torch.Generator().manual_seed(1)
    sums = [torch.zeros(o) for o, _ in SHAPES]
    for step in range(1, 41):
        x, y = torch.randn(16, 30, generator=data), torch.randint(0, 5, (16,), generator=data)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        generator = torch.Generator().manual_seed(step)
        weights = [layer.weight for layer in model.layers]
        if reference:
            for total, mean in zip(sums, steps.grad_abs_mean()):
                total += mean
            if algorithm_update(algorithm, step, weights, model.masks, optimizer, generator):
                continue
            float_masks = [m.to(torch.float32) for m in model.masks]
            mask_gradients(weights, float_masks)
            optimizer.step()
            apply_masks(weights, float_masks)
        else:
            steps.add_grad_abs_mean(sums)
            if steps.update(algorithm, step, optimizer, generator):
                continue
            steps.optimizer_step(optimizer)
    return model, sums


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_masked_step_is_the_reference_step_bit_for_bit(optimizer_name):
    mine, my_sums = _run(optimizer_name, reference=False)
    theirs, their_sums = _run(optimizer_name, reference=True)
    for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()):
        # bytes, so that even the sign of a zero must agree
        assert a.numpy().tobytes() == b.numpy().tobytes()
    for a, b in zip(my_sums, their_sums):
        assert a.numpy().tobytes() == b.numpy().tobytes()
    for layer, mask in zip(mine.layers, mine.masks):
        assert np.all(layer.weight.detach().numpy()[~mask.numpy()] == 0.0)

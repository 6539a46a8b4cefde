"""One mask update of SRigL, GraNet and CHTs against one RigL update, in the same run.

Network 784-1000-1000-10 (the layer set of issue 15's CHTs figure), ERK masks at 10% and
1% density, random weights and gradients (the update's cost does not depend on their
values). Per method: the median wall time of one update over a few repeats, and its
ratio to RigL's median measured in the same process.

- RigL: drop floor(α nnz) by magnitude and grow as many by |gradient|, per layer.
- SRigL: the same with constant fan-in per neuron and neuron ablation (γ_sal 0.3).
- GraNet: a pruning step of the cubic schedule (global magnitude) plus regeneration.
- CHTs: soft removal, chain removal and CH2-L3n soft regrowth (no gradient); and, on
  its own, CHTs' scoring + regrowth of every layer after a removal of α nnz (issue 15's
  figure: under 1 s at 1% density).

Usage: python benchmarks/bench_mask_updates.py [--repeats N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_time, verdict  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from topo.training.algorithms import get_algorithm
    from topo.training.masks import initial_masks
    from topo.training.model import layer_shapes

    torch.set_num_threads(1)
    shapes = layer_shapes(784, (1000, 1000), 10)
    print(f"784-1000-1000-10, one torch thread, median of {args.repeats} updates")
    for density in (0.1, 0.01):
        base = [torch.from_numpy(m) for m in initial_masks(shapes, 1 - density, density="erk", seed=0).masks]
        gen = torch.Generator().manual_seed(0)
        weights = [torch.randn(s, generator=gen) for s in shapes]
        grads = [torch.randn(s, generator=gen) for s in shapes]
        timings = {}
        for method, options in (
            ("rigl", {}),
            ("srigl", {"ablation_threshold": 0.3}),
            ("granet", {"sparsity": 1 - density, "initial_sparsity": max(0.0, 1 - 2 * density)}),
            ("chts", {}),
        ):
            algo = get_algorithm(method, update_every=100, drop_fraction=0.3, end_fraction=0.75, **options)
            masks = base
            if method not in ("rigl", "chts"):
                masks = [torch.from_numpy(m) for m in algo.initial_masks(
                    shapes, sparsity=1 - density, density="erk", seed=0).masks]
            algo.setup(masks=masks, steps_per_epoch=1000, epochs=10, total_steps=10_000)
            step = 100  # an update step of every method's schedule
            assert algo.is_update_step(step), method
            masked = [w * m for w, m in zip(weights, masks)]

            def one(algo=algo, masked=masked, masks=masks):
                algo.update(step, masked, grads, masks, torch.Generator().manual_seed(1))

            timings[method] = median_time(one, repeats=args.repeats, warmup=1)
        # CHTs' scoring + regrowth alone, on the masks after its soft removal
        from topo.training.algorithms.chts import regrow, soft_removal

        chts = get_algorithm("chts", update_every=100, drop_fraction=0.3, end_fraction=0.75)
        chts.setup(masks=base, steps_per_epoch=1000, epochs=10, total_steps=10_000)
        n_moved = [int(0.3 * int(m.sum())) for m in base]
        removed = [soft_removal(w * m, m, n, 1.0, torch.Generator().manual_seed(2))
                   for w, m, n in zip(weights, base, n_moved)]

        def scoring_and_regrowth():
            for mask, budget in zip(removed, chts.budgets):
                regrow(mask, budget, 5.0, torch.Generator().manual_seed(3))

        timings["chts score+regrow"] = median_time(scoring_and_regrowth, repeats=args.repeats, warmup=1)
        rigl = timings["rigl"]
        for method, seconds in timings.items():
            print(f"  density {density:>4g}: {method:17s} {1000 * seconds:8.1f} ms  ratio to RigL {seconds / rigl:5.2f}")
        if density == 0.01:
            seconds = timings["chts score+regrow"]
            print(f"  CHTs scoring + regrowth per update at 1%: {seconds:.3f} s, goal < 1 s: {verdict(seconds, 1.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

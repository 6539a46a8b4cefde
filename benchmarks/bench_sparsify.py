"""Cost of sparsify() + TopologyMonitor per training step against a plain masked loop.

Baseline: a plain PyTorch loop that applies the same masks by hand (gradient times
mask before ``optimizer.step()``, weight times mask after). topo: the same loop with
``topo.sparsify(..., method="rigl", update_every=100)`` hooked into the optimiser (mask
upkeep, per-neuron gradient statistics, a RigL drop/grow every 100 steps) and a
``TopologyMonitor.update`` every 100 steps (fan-in CV, turnover, NNSTD to the start, hub
overlap). Both train copies of one model on the same batches; blocks of 100 steps
alternate between the two so that load on the machine hits both alike.

Networks: MNIST 784-300-100-10 (every layer masked) and a small CNN (conv 1-16-32-32,
fc 128, 10; inner layers masked, as RigL does), at 90% and 99% sparsity, batch 128, one
CPU thread. MNIST is read from $TOPO_DATA_DIR when it is there, else random images of
the same shape (speed does not depend on the pixels).

Prints the median time per step of each loop and the ratio topo / baseline (goal <= 1.10).

Usage: python benchmarks/bench_sparsify.py [--blocks 7] [--block-steps 100]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import verdict  # noqa: E402

import topo  # noqa: E402

GOAL = 1.10


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def mnist(n: int):
    """(images [n, 784] in [0, 1], labels) from $TOPO_DATA_DIR, or random ones; and where from."""
    try:
        from topo.training.data import load_dataset

        data = load_dataset("mnist", val_fraction=0.0)
        X = torch.as_tensor(data.X_train[:n], dtype=torch.float32)
        return X, torch.as_tensor(data.y_train[:n]), "MNIST"
    except Exception:
        generator = torch.Generator().manual_seed(0)
        return torch.rand(n, 784, generator=generator), torch.randint(0, 10, (n,), generator=generator), "random"


class Baseline:
    """The plain loop with the masks applied by hand."""

    def __init__(self, model, masks_by_name):
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        modules = dict(model.named_modules())
        self.pairs = [(modules[name].weight, mask.to(modules[name].weight.dtype)) for name, mask in masks_by_name.items()]
        with torch.no_grad():
            for weight, mask in self.pairs:
                weight.mul_(mask)

    def step(self, x, y) -> None:
        self.optimizer.zero_grad()
        F.cross_entropy(self.model(x), y).backward()
        with torch.no_grad():
            for weight, mask in self.pairs:
                weight.grad.mul_(mask)
        self.optimizer.step()
        with torch.no_grad():
            for weight, mask in self.pairs:
                weight.mul_(mask)


class WithTopo:
    """The same loop, with sparsify() on the optimiser and a monitor every ``every`` steps."""

    def __init__(self, model, density, layers, total_steps, every):
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.sparse = topo.sparsify(model, self.optimizer, method="rigl", density=density, layers=layers,
                                    epochs=1, steps_per_epoch=total_steps, update_every=every, end_fraction=1.0)
        self.monitor = topo.TopologyMonitor(layers="^(" + "|".join(self.sparse.names) + ")$")
        self.monitor.update(model, step=0)
        self.every = every

    def step(self, x, y) -> None:
        self.optimizer.zero_grad()
        F.cross_entropy(self.model(x), y).backward()
        self.optimizer.step()
        if self.sparse.step % self.every == 0:
            self.monitor.update(self.model, step=self.sparse.step)


def run_case(label, make_model, X, y, sparsity, layers, *, blocks, block_steps, batch) -> float:
    torch.manual_seed(0)
    model = make_model()
    total = (blocks + 1) * block_steps
    with_topo = WithTopo(copy.deepcopy(model), 1.0 - sparsity, layers, total, block_steps)
    masks = {name: mask.clone() for name, mask in zip(with_topo.sparse.names, with_topo.sparse.masks)}
    baseline = Baseline(copy.deepcopy(model), masks)
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, len(y), (batch,), generator=generator) for _ in range(block_steps)]

    def block(loop) -> float:
        start = time.perf_counter()
        for index in batches:
            loop.step(X[index], y[index])
        return (time.perf_counter() - start) / block_steps

    block(baseline), block(with_topo)  # warm-up (and the first RigL update and monitor update)
    base_times, topo_times = [], []
    for _ in range(blocks):
        base_times.append(block(baseline))
        topo_times.append(block(with_topo))
    base, mine = statistics.median(base_times), statistics.median(topo_times)
    ratio = mine / base
    nnz_exact = with_topo.sparse.nnz() == with_topo.sparse.budgets
    print(f"{label:<28} sparsity {sparsity:.2f}: plain masked loop {base * 1e3:7.3f} ms/step, "
          f"sparsify + monitor {mine * 1e3:7.3f} ms/step, ratio {ratio:.3f} ({verdict(ratio, GOAL)} <= {GOAL}); "
          f"mask updates {with_topo.sparse.mask_updates}, nnz exact: {nnz_exact}")
    return ratio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per loop (median over them)")
    parser.add_argument("--block-steps", type=int, default=100, help="steps per block = RigL/monitor period")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, y, source = mnist(4096)
    print(f"bench_sparsify: {source} batches of {args.batch}, {args.blocks} blocks of {args.block_steps} steps "
          f"per loop, RigL and the monitor every {args.block_steps} steps, 1 thread")
    ratios = []
    for sparsity in (0.9, 0.99):
        ratios.append(run_case("MLP 784-300-100-10", mlp, X, y, sparsity, "all",
                               blocks=args.blocks, block_steps=args.block_steps, batch=args.batch))
        ratios.append(run_case("CNN 16-32-32-128-10", SmallCNN, X.reshape(-1, 1, 28, 28), y, sparsity, None,
                               blocks=args.blocks, block_steps=args.block_steps, batch=args.batch))
    print(f"worst ratio {max(ratios):.3f}: {verdict(max(ratios), GOAL)} (goal <= {GOAL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

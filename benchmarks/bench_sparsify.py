"""Cost of sparsify() + TopologyMonitor per training step against a plain masked loop.

Baseline: a plain PyTorch loop that applies the same masks by hand (gradient times
mask before ``optimizer.step()``, weight times mask after). topo: the same loop with
``topo.sparsify(..., method="rigl", update_every=100)`` hooked into the optimiser (mask
upkeep, per-neuron gradient statistics, a RigL drop/grow every 100 steps) and a
``TopologyMonitor.update`` every 100 steps (fan-in CV, turnover, NNSTD to the start, hub
overlap). Both train copies of one model on the same batches, stepped alternately one
step at a time so that load on the machine hits both alike; topo's update steps are
timed apart and their extra cost spread over the 100 steps they serve.

Networks: MNIST 784-300-100-10 (every layer masked) and a small CNN (conv 1-16-32-32,
fc 128, 10; inner layers masked, as RigL does), at 90% and 99% sparsity, batch 128, one
CPU thread. MNIST is read from $TOPO_DATA_DIR when it is there, else random images of
the same shape (speed does not depend on the pixels).

Prints the median time per step of each loop and the ratio topo / baseline (goal <= 1.10).

Usage: python benchmarks/bench_sparsify.py [--steps 600] [--every 100]
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


def run_case(label, make_model, X, y, sparsity, layers, *, steps, every, batch) -> float:
    """Median ms per step of both loops, stepped alternately one step at a time; returns the ratio.

    topo's cost per step is amortised over the schedule: the median of its ordinary steps
    plus, once every ``every`` steps, the median extra of its update steps (a RigL drop/grow
    and a monitor update), so that load on a shared machine, which varies over seconds,
    hits both loops alike.
    """
    torch.manual_seed(0)
    model = make_model()
    with_topo = WithTopo(copy.deepcopy(model), 1.0 - sparsity, layers, steps + every, every)
    masks = {name: mask.clone() for name, mask in zip(with_topo.sparse.names, with_topo.sparse.masks)}
    baseline = Baseline(copy.deepcopy(model), masks)
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, len(y), (batch,), generator=generator) for _ in range(every)]
    for index in batches[:5]:  # warm-up
        baseline.step(X[index], y[index])
        with_topo.step(X[index], y[index])
    base_times, plain_times, update_times = [], [], []
    for i in range(steps):
        index = batches[i % every]
        x, t = X[index], y[index]
        updating = (with_topo.sparse.step + 1) % every == 0
        # which loop goes first alternates, so that neither always finds the caches warm
        first, second = (baseline, with_topo) if i % 2 == 0 else (with_topo, baseline)
        start = time.perf_counter()
        first.step(x, t)
        middle = time.perf_counter()
        second.step(x, t)
        end = time.perf_counter()
        base_time, topo_time = (middle - start, end - middle) if i % 2 == 0 else (end - middle, middle - start)
        base_times.append(base_time)
        (update_times if updating else plain_times).append(topo_time)
    base = statistics.median(base_times)
    plain = statistics.median(plain_times)
    extra = max(statistics.median(update_times) - plain, 0.0) if update_times else 0.0
    mine = plain + extra / every
    ratio = mine / base
    nnz_exact = with_topo.sparse.nnz() == with_topo.sparse.budgets
    print(f"{label:<22} sparsity {sparsity:.2f}: plain masked loop {base * 1e3:6.2f} ms/step; sparsify + monitor "
          f"{mine * 1e3:6.2f} ms/step ({plain * 1e3:.2f} per ordinary step, +{extra * 1e3:.1f} ms every {every} "
          f"steps for RigL and the monitor, {len(update_times)} such steps); ratio {ratio:.3f} "
          f"({verdict(ratio, GOAL)} <= {GOAL}); nnz exact: {nnz_exact}")
    return ratio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="timed steps per loop and case")
    parser.add_argument("--every", type=int, default=100, help="steps between RigL updates and monitor updates")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, y, source = mnist(4096)
    print(f"bench_sparsify: {source} batches of {args.batch}, {args.steps} steps per loop, the two loops stepped "
          f"alternately, RigL and the monitor every {args.every} steps, 1 thread")
    ratios = []
    for sparsity in (0.9, 0.99):
        ratios.append(run_case("MLP 784-300-100-10", mlp, X, y, sparsity, "all",
                               steps=args.steps, every=args.every, batch=args.batch))
        ratios.append(run_case("CNN 16-32-32-128-10", SmallCNN, X.reshape(-1, 1, 28, 28), y, sparsity, None,
                               steps=args.steps, every=args.every, batch=args.batch))
    print(f"worst ratio {max(ratios):.3f}: {verdict(max(ratios), GOAL)} (goal <= {GOAL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

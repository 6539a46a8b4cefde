"""Training benchmark on MNIST, 784-300-100-10.

1. Speed: epoch time of RigL at 90% sparsity against dense training of the same network
   in the same process (median over a few epochs each; goal: ratio <= 1.25), and one
   RigL mask update as a share of an epoch.
   The floor: ``topo train``'s epoch (RigL 90%, and dense) against a plain PyTorch loop
   over the same data with the same optimiser, schedule and masks (gradient times mask
   before the step, weight times mask after), which also evaluates the validation and
   test splits once an epoch as topo does; CPU time of this process per epoch, torch
   one thread, the four loops advancing one epoch in turn (goal: both ratios <= 1.10).
   Checkpointing (the epoch's checkpoint and training state) as a share of topo's epoch
   (goal < 5%).
2. Quality: RigL with ERK at 90% sparsity, 20 epochs, test accuracy (goal >= 97.5% and
   within 0.6 points of the dense network trained the same way).

Usage: python benchmarks/bench_training.py [--quick] [--epochs N] [--batch-size B]
(--quick: 3 epochs of quality training). Skips with a printed reason when MNIST is not
in $TOPO_DATA_DIR or ../shared/data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    for candidate in (os.environ.get("TOPO_DATA_DIR"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


class PlainLoop:
    """A plain PyTorch training loop of the MLP with fixed masks: the floor topo train is measured against."""

    def __init__(self, dataset, shapes, masks, config, seed: int) -> None:
        import torch

        from topo.training.trainer import learning_rate

        torch.manual_seed(seed)
        layers = []
        for out_features, in_features in shapes:
            layers += [torch.nn.Linear(in_features, out_features), torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*layers[:-1])
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.masks = None if masks is None else [m.to(torch.float32) for m in masks]
        if self.masks is not None:
            with torch.no_grad():
                for layer, mask in zip(self.linears, self.masks):
                    layer.weight.mul_(mask)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.X = torch.as_tensor(dataset.X_train, dtype=torch.float32)
        self.y = torch.as_tensor(dataset.y_train, dtype=torch.int64)
        self.X_val = torch.as_tensor(dataset.X_val, dtype=torch.float32)
        self.y_val = torch.as_tensor(dataset.y_val, dtype=torch.int64)
        self.X_test = torch.as_tensor(dataset.X_test, dtype=torch.float32)
        self.y_test = torch.as_tensor(dataset.y_test, dtype=torch.int64)
        self.config = config
        self.batch = int(config.batch_size)
        self.steps_per_epoch = -(-len(self.y) // self.batch)
        self.total = self.steps_per_epoch * int(config.epochs)
        self.step = 0
        self.epoch = 0
        self.learning_rate = learning_rate

    def run_epoch(self) -> float:
        """One epoch and an evaluation of both held-out splits; the test accuracy."""
        import torch
        import torch.nn.functional as F

        self.epoch += 1
        order = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(self.epoch))
        for start in range(0, len(self.y), self.batch):
            index = order[start:start + self.batch]
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.config, self.step, self.total)
            self.optimizer.zero_grad()
            F.cross_entropy(self.model(self.X[index]), self.y[index]).backward()
            if self.masks is not None:
                with torch.no_grad():
                    for layer, mask in zip(self.linears, self.masks):
                        layer.weight.grad.mul_(mask)
            self.optimizer.step()
            if self.masks is not None:
                with torch.no_grad():
                    for layer, mask in zip(self.linears, self.masks):
                        layer.weight.mul_(mask)
            self.step += 1
        accuracy = 0.0
        with torch.no_grad():
            for X, y in ((self.X_val, self.y_val), (self.X_test, self.y_test)):
                if len(y):
                    accuracy = float((self.model(X).argmax(dim=1) == y).float().mean())
        return accuracy


def floor(args, dataset, tmp: Path, config) -> None:
    """topo train's epoch against the plain loops (CPU time, one thread, interleaved epochs)."""
    import torch

    from topo.training.masks import initial_masks
    from topo.training.model import layer_shapes
    from topo.training.trainer import iter_train

    torch.set_num_threads(1)
    epochs = max(args.timing_epochs, 1)
    shapes = layer_shapes(784, (300, 100), 10)
    topo_rigl = config("rigl", 0.9, epochs)
    topo_rigl.threads = 1
    topo_dense = config("static", 0.0, epochs)
    topo_dense.threads = 1
    masks = [torch.from_numpy(m) for m in initial_masks(shapes, 0.9, density="erk", seed=0).masks]
    runs = {
        "topo rigl-90": iter_train(topo_rigl, run_dir=tmp / "floor-rigl", dataset=dataset),
        "plain masked-90": PlainLoop(dataset, shapes, masks, topo_rigl, seed=0),
        "topo dense": iter_train(topo_dense, run_dir=tmp / "floor-dense", dataset=dataset),
        "plain dense": PlainLoop(dataset, shapes, None, topo_dense, seed=0),
    }
    cpu = {label: [] for label in runs}
    saving = []
    for label, run in runs.items():
        if not isinstance(run, PlainLoop):
            next(run)  # epoch 0: the untrained network and its checkpoint
    for _ in range(epochs):
        for label, run in runs.items():
            torch.set_num_threads(1)
            start = time.process_time()
            if isinstance(run, PlainLoop):
                run.run_epoch()
            else:
                record = next(run)
                if "checkpoint_time" in record:
                    saving.append(record["checkpoint_time"] / record["epoch_time"])
            cpu[label].append(time.process_time() - start)
    for label, run in runs.items():
        if not isinstance(run, PlainLoop):
            run.close()
        print(f"  {label:16s} epoch CPU times: " + ", ".join(f"{t:.2f}s" for t in cpu[label]))
    median = {label: statistics.median(times) for label, times in cpu.items()}
    for mine, base in (("topo rigl-90", "plain masked-90"), ("topo dense", "plain dense")):
        ratio = median[mine] / median[base]
        print(f"floor: {mine} {median[mine]:.2f}s / {base} {median[base]:.2f}s per epoch (CPU, median of {epochs}) "
              f"= {ratio:.3f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    if saving:
        share = statistics.median(saving)
        print(f"checkpointing (epoch checkpoint + training state, wall time the loop waits): {100 * share:.2f}% "
              f"of an epoch (median; goal < 5%: {'met' if share < 0.05 else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs of quality training instead of 20")
    parser.add_argument("--epochs", type=int, default=None, help="quality epochs (default 20, 3 with --quick)")
    parser.add_argument("--timing-epochs", type=int, default=5, help="epochs timed per variant (interleaved)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (momentum 0.9, cosine), both networks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--floor-only", action="store_true",
                        help="measure only topo against the plain loops (no quality training)")
    args = parser.parse_args()
    quality_epochs = args.epochs if args.epochs is not None else (3 if args.quick else 20)
    if args.floor_only:
        quality_epochs = max(args.timing_epochs, 1)

    folder = data_dir()
    if folder is None:
        print("SKIP bench_training: no data folder (set TOPO_DATA_DIR or place it at ../shared/data)")
        return 0
    from topo.errors import TopoError
    from topo.training.data import load_dataset

    try:
        dataset = load_dataset("mnist", data_dir=folder, seed=0)
    except TopoError as exc:
        print(f"SKIP bench_training: MNIST not available ({exc})")
        return 0

    import torch

    from topo.training.algorithms import get_algorithm
    from topo.training.config import TrainConfig
    from topo.training.model import layer_shapes
    from topo.training.trainer import iter_train, train

    print(f"MNIST: {len(dataset.y_train)} train / {len(dataset.y_val)} val / {len(dataset.y_test)} test; "
          f"784-300-100-10, batch {args.batch_size}, device {args.device}, torch threads {torch.get_num_threads()}")

    def config(method: str, sparsity: float, epochs: int) -> TrainConfig:
        return TrainConfig(dataset="mnist", hidden=(300, 100), sparsity=sparsity, density="erk", method=method,
                           epochs=epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=0)

    with tempfile.TemporaryDirectory(prefix="topo-bench-") as tmp:
        floor(args, dataset, Path(tmp), config)
        if args.floor_only:
            return 0
        # -- 1. speed ----------------------------------------------------------------
        # the two runs advance one epoch in turn, so that a change in the machine's load
        # hits both alike; both are set up for the full quality schedule, so RigL's
        # mask updates fall in the timed epochs as they would in a real run
        runs = {
            "dense": iter_train(config("static", 0.0, quality_epochs), run_dir=Path(tmp) / "time-dense", dataset=dataset),
            "rigl-90": iter_train(config("rigl", 0.9, quality_epochs), run_dir=Path(tmp) / "time-rigl", dataset=dataset),
        }
        # wall time, and this process's CPU time, which other jobs on a shared machine
        # disturb much less
        times = {label: [] for label in runs}
        cpu = {label: [] for label in runs}
        updates = 0
        for label, run in runs.items():
            next(run)  # epoch 0: the untrained network
        for _ in range(min(args.timing_epochs, quality_epochs)):
            for label, run in runs.items():
                start_cpu = time.process_time()
                record = next(run)
                cpu[label].append(time.process_time() - start_cpu)
                times[label].append(record["epoch_time"])
                if label == "rigl-90":
                    updates += record["mask_updates"]
        for label in runs:
            runs[label].close()
            print(f"  {label:8s} epoch wall times: " + ", ".join(f"{t:.2f}s" for t in times[label])
                  + "; CPU times: " + ", ".join(f"{t:.2f}s" for t in cpu[label]))
        print(f"  ({updates} RigL mask updates in the timed epochs)")
        cpu_ratio = statistics.median(cpu["rigl-90"]) / statistics.median(cpu["dense"])
        print(f"epoch CPU time (median of {len(cpu['dense'])}): dense {statistics.median(cpu['dense']):.2f}s, "
              f"RigL 90% {statistics.median(cpu['rigl-90']):.2f}s, ratio {cpu_ratio:.3f} "
              f"(goal <= 1.25: {'met' if cpu_ratio <= 1.25 else 'NOT met'})")
        dense_t = statistics.median(times["dense"])
        rigl_t = statistics.median(times["rigl-90"])
        ratio = rigl_t / dense_t
        print(f"epoch wall time (median of {len(times['dense'])}): dense {dense_t:.2f}s, RigL 90% {rigl_t:.2f}s, "
              f"ratio {ratio:.3f} (goal <= 1.25: {'met' if ratio <= 1.25 else 'NOT met'})")

        shapes = layer_shapes(784, (300, 100), 10)
        from topo.training.masks import initial_masks

        masks = [torch.from_numpy(m) for m in initial_masks(shapes, 0.9, density="erk", seed=0).masks]
        weights = [torch.randn(s) * m for s, m in zip(shapes, masks)]
        grads = [torch.randn(s) for s in shapes]
        algo = get_algorithm("rigl", update_every=100, drop_fraction=0.3, end_fraction=0.75)
        algo.setup(masks=masks, steps_per_epoch=1000, epochs=10, total_steps=10_000)
        update_times = []
        for repeat in range(5):
            gen = torch.Generator().manual_seed(repeat)
            start = time.perf_counter()
            algo.update(100, weights, grads, masks, gen)
            update_times.append(time.perf_counter() - start)
        update_t = statistics.median(update_times)
        print(f"one RigL mask update (all layers, alpha=0.3): {1000 * update_t:.1f} ms, "
              f"{100 * update_t / rigl_t:.2f}% of a RigL epoch")

        # -- 2. quality --------------------------------------------------------------
        accuracy = {}
        for label, method, sparsity in (("dense", "static", 0.0), ("rigl-90", "rigl", 0.9)):
            start = time.perf_counter()
            result = train(config(method, sparsity, quality_epochs), run_dir=Path(tmp) / f"quality-{label}", dataset=dataset)
            accuracy[label] = result.metrics[-1]["test_acc"]
            print(f"  {label:8s} {quality_epochs} epochs: test accuracy {100 * accuracy[label]:.2f}% "
                  f"({time.perf_counter() - start:.0f}s)")
        gap = 100 * (accuracy["dense"] - accuracy["rigl-90"])
        ok = accuracy["rigl-90"] >= 0.975 and gap <= 0.6
        print(f"quality: RigL 90% ERK {100 * accuracy['rigl-90']:.2f}%, dense {100 * accuracy['dense']:.2f}%, "
              f"gap {gap:.2f} points (goal >= 97.5% and gap <= 0.6: {'met' if ok else 'NOT met'}"
              f"{'; quick run, not the 20-epoch goal' if quality_epochs < 20 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

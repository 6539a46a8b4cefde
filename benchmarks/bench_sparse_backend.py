"""The sparse training backend against the masked one, on MNIST.

0. The kernels of one 16,384 x 16,384 layer at 99% sparsity, batch 64: the forward
   product (dense, CSR ``torch.sparse.mm``, an ``index_add`` gather) and the weight
   gradient (dense ``g^T x``, ``torch.sparse.sampled_addmm`` on the mask, a chunked
   gather), each against the dense one: the choice in
   :mod:`topo.training.sparse_layers`.
1. 784-16384-16384-10 at 99% sparsity (ERK), batch 64, SGD: the epoch time of
   ``topo train --backend masked`` and ``--backend sparse`` in the same process. A
   masked epoch of this network takes most of an hour here, so each backend trains two
   short epochs of a fixed number of steps (the first warms up), through the real
   training loop (``topo.training.trainer.iter_train``: step, record, checkpoint), and
   the second epoch's time per step is extrapolated to a whole MNIST epoch
   (54,000 examples, 844 steps); the printout says so. Static masks give the step's
   cost; a RigL run with one mask update inside the timed epoch gives the extra cost
   of one update, which is added for the updates of a default RigL epoch (every 100
   steps). Goal: the sparse epoch at least 3x faster.
   ``--mode epoch`` times real whole MNIST epochs instead (every one of the 54,000
   training examples, 844 steps, and the epoch's evaluation of 256 validation and 256
   test examples): each backend trains two epochs of the real loop and the first is
   timed (CPU time of the process, which other jobs on a shared machine disturb much
   less than wall time, and wall time), its checkpoint written masks-only and no
   resume state after it; the epoch-0 checkpoint and state before it are not timed.
   ``--threads`` sets torch's threads (default 1), ``--method`` static or RigL (its
   default schedule: an update every 100 steps), ``--backends`` which to run. A masked
   epoch of this network takes most of an hour on one thread here.
2. ``--large``: 784-50000-50000-10 with every hidden neuron at fan-in 20 (100,000
   hidden neurons), RigL, ``--backend sparse``: one whole MNIST epoch in a child
   process, its wall time and peak resident memory (VmHWM). Goal: under 15 minutes
   and 4 GB. The masked backend cannot allocate it; the arithmetic is printed.

Usage: python benchmarks/bench_sparse_backend.py [--steps-masked N] [--steps-sparse N] [--large]
       python benchmarks/bench_sparse_backend.py --mode epoch [--threads T] [--method static|rigl]
                                                 [--backends masked,sparse]
Skips with a printed reason when MNIST is not in $TOPO_DATA_DIR or ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDE = (16384, 16384)
LARGE = (50000, 50000)
BATCH = 64


def data_dir() -> Path | None:
    for candidate in (os.environ.get("TOPO_DATA_DIR"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    return None


def subset(dataset, n_train: int, n_held: int = 256):
    """The first ``n_train`` training examples and ``n_held`` of each held-out split."""
    return replace(
        dataset,
        X_train=dataset.X_train[:n_train], y_train=dataset.y_train[:n_train],
        X_val=dataset.X_val[:n_held], y_val=dataset.y_val[:n_held],
        X_test=dataset.X_test[:n_held], y_test=dataset.y_test[:n_held],
    )


def kernels() -> None:
    """One 16,384 x 16,384 layer at 99% sparsity, batch 64: each kernel against the dense one."""
    import torch

    from topo.training.sparse_layers import _quiet_csr

    sys.path.insert(0, str(REPO / "benchmarks"))
    from _common import median_time

    torch.set_num_threads(1)
    n, batch, density = WIDE[0], BATCH, 0.01
    generator = torch.Generator().manual_seed(0)
    nnz = int(n * n * density)
    flat = torch.sort(torch.randperm(n * n, generator=generator)[:nnz]).values
    rows, cols = flat // n, flat % n
    values = torch.randn(nnz, generator=generator)
    crow = torch.zeros(n + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    weight = _quiet_csr(crow, cols, values, (n, n))
    x, g = torch.randn(batch, n, generator=generator), torch.randn(batch, n, generator=generator)
    dense = torch.zeros(n, n)
    dense.view(-1)[flat] = values

    def gather_forward():
        out = torch.zeros(n, batch)
        out.index_add_(0, rows, x.t()[cols] * values[:, None])
        return out

    def gather_gradient():
        return torch.cat([(g[:, rows[s:s + 65536]] * x[:, cols[s:s + 65536]]).sum(0) for s in range(0, nnz, 65536)])

    pattern = _quiet_csr(crow, cols, torch.zeros(nnz), (n, n))
    times = {
        "forward: dense x W^T": median_time(lambda: x @ dense.t(), repeats=3),
        "forward: CSR sparse.mm": median_time(lambda: torch.sparse.mm(weight, x.t()), repeats=3),
        "forward: index_add gather": median_time(gather_forward, repeats=1),
        "weight gradient: dense g^T x": median_time(lambda: g.t() @ x, repeats=3),
        "weight gradient: sampled_addmm on the mask": median_time(
            lambda: torch.sparse.sampled_addmm(pattern, g.t(), x, beta=0.0), repeats=3),
        "weight gradient: chunked gather": median_time(gather_gradient, repeats=1),
    }
    print(f"0. kernels of one {n} x {n} layer at 99% sparsity, batch {batch}, one thread (medians):")
    for name, seconds in times.items():
        base = times["forward: dense x W^T"] if name.startswith("forward") else times["weight gradient: dense g^T x"]
        print(f"   {name:45s} {seconds * 1e3:9.1f} ms  ({base / seconds:6.1f}x the dense one's speed)")


def second_epoch_time(config, dataset, folder: Path) -> float:
    """Seconds of the second epoch of a two-epoch run (its record's ``epoch_time``)."""
    from topo.training.trainer import iter_train

    records = list(iter_train(config, run_dir=folder, dataset=dataset))
    return float(records[2]["epoch_time"])


def wide_network(mnist, steps: dict[str, int]) -> None:
    from topo.training.config import TrainConfig

    full_steps = math.ceil(len(mnist.y_train) / BATCH)
    updates_per_epoch = full_steps // 100
    base = TrainConfig(dataset="mnist", hidden=WIDE, sparsity=0.99, density="erk", epochs=2, batch_size=BATCH,
                       threads=1, device="cpu", schedule="constant", grad_batches=1)
    print(f"1. 784-{WIDE[0]}-{WIDE[1]}-10 at 99% sparsity (ERK), batch {BATCH}, one torch thread: "
          f"two epochs of a fixed number of steps per backend, the second timed and extrapolated to a whole "
          f"MNIST epoch ({len(mnist.y_train)} examples, {full_steps} steps; a masked epoch is too long to run whole)")
    estimates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("masked", "sparse"):
            n = steps[backend]
            data = subset(mnist, n * BATCH)
            static = second_epoch_time(replace(base, method="static", backend=backend), data, Path(tmp) / f"{backend}-s")
            # one RigL update in the timed epoch: at step 1.5 n, the last step updates may happen (end 0.75)
            rigl = second_epoch_time(
                replace(base, method="rigl", backend=backend, update_every=n + n // 2, end_fraction=0.75),
                data, Path(tmp) / f"{backend}-r",
            )
            per_step = static / n
            update = max(rigl - static, 0.0)
            epoch = per_step * full_steps
            estimates[backend] = (epoch, epoch + updates_per_epoch * update)
            print(f"   {backend:6s}: {per_step * 1e3:8.1f} ms a step (median of the epoch's {n} steps), "
                  f"one RigL update {update:6.2f} s; epoch: static {epoch / 60:6.1f} min, "
                  f"RigL (update every 100) {estimates[backend][1] / 60:6.1f} min")
    static_ratio = estimates["masked"][0] / estimates["sparse"][0]
    rigl_ratio = estimates["masked"][1] / estimates["sparse"][1]
    verdict = "meets" if min(static_ratio, rigl_ratio) >= 3.0 else "MISSES"
    print(f"   sparse is {static_ratio:.1f}x faster than masked (static), {rigl_ratio:.1f}x (RigL); "
          f"goal >= 3x: {verdict} the goal")


def whole_epoch(mnist, *, threads: int, method: str, backends: list[str]) -> None:
    """One real MNIST epoch of 784-16384-16384-10 at 99% per backend, timed whole."""
    from topo.training.config import TrainConfig
    from topo.training.trainer import iter_train

    data = subset(mnist, len(mnist.y_train))
    steps = math.ceil(len(data.y_train) / BATCH)
    print(f"1. 784-{WIDE[0]}-{WIDE[1]}-10 at 99% sparsity (ERK), {method}, batch {BATCH}, {threads} torch "
          f"thread(s): one whole MNIST epoch per backend ({len(data.y_train)} training examples, {steps} steps, "
          f"then 256 validation and 256 test examples evaluated), through the real training loop", flush=True)
    base = TrainConfig(dataset="mnist", hidden=WIDE, sparsity=0.99, density="erk", epochs=2, batch_size=BATCH,
                       threads=threads, device="cpu", schedule="constant", grad_batches=1, method=method,
                       intermediate_checkpoints="masks", state_every=2)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            load_before = os.getloadavg()[0]
            run = iter_train(replace(base, backend=backend), run_dir=Path(tmp) / backend, dataset=data)
            next(run)  # epoch 0: the untrained network, its checkpoint and state (not timed)
            cpu, wall = time.process_time(), time.perf_counter()
            record = next(run)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            run.close()
            measured[backend] = cpu
            print(f"   {backend:6s}: epoch CPU time {cpu:8.1f} s ({cpu / 60:.1f} min), wall {wall:8.1f} s "
                  f"(the loop's epoch_time {record['epoch_time']:.1f} s, checkpoint wait "
                  f"{record['checkpoint_time']:.1f} s), {record['mask_updates']} mask updates, test accuracy "
                  f"{record['test_acc']:.3f}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
                  flush=True)
    if "masked" in measured and "sparse" in measured:
        ratio = measured["masked"] / measured["sparse"]
        print(f"   whole epoch, CPU time: sparse is {ratio:.1f}x faster than masked; goal >= 3x: "
              f"{'meets' if ratio >= 3.0 else 'MISSES'} the goal")


def large_network_child(data_path: str, out: str) -> None:
    """Train one MNIST epoch of 784-50000-50000-10 at fan-in 20 (run in a child process)."""
    from topo.training.config import TrainConfig
    from topo.training.trainer import train

    shapes = [(LARGE[0], 784), (LARGE[1], LARGE[0]), (10, LARGE[1])]
    kept = 20 * (LARGE[0] + LARGE[1]) + 10 * LARGE[1]  # fan-in 20 per hidden neuron, the output layer dense
    total = sum(o * i for o, i in shapes)
    config = TrainConfig(
        dataset="mnist", data_dir=data_path, hidden=LARGE, epochs=1, batch_size=BATCH, threads=1, device="cpu",
        method="rigl", backend="sparse", sparsity=1.0 - kept / total,
        density_map={"fc1": 20 / 784, "fc2": 20 / LARGE[0]}, dense_output=True, grad_batches=1,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, run_dir=Path(tmp) / "run")
        record = result.metrics[-1]
    wall = time.perf_counter() - started
    peak_kb = int([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
    Path(out).write_text(json.dumps({
        "wall": wall, "epoch_time": record["epoch_time"], "peak_gb": peak_kb / 1024**2,
        "nnz": record["nnz"], "test_acc": record["test_acc"], "mask_updates": record["mask_updates"],
    }))


def large_network(root: Path) -> None:
    out_features, hidden = LARGE[1], LARGE[0]
    dense_gb = out_features * hidden * 4 / 1e9
    print(f"2. 784-{LARGE[0]}-{LARGE[1]}-10, every hidden neuron at fan-in 20, RigL, --backend sparse, one MNIST "
          f"epoch in a child process. Masked backend: fc2 alone is {hidden} x {out_features} float32 = "
          f"{dense_gb:.0f} GB for the weight, as much again for its gradient and for SGD's momentum "
          f"({3 * dense_gb:.0f} GB, plus a {hidden * out_features / 1e9:.1f} GB bool mask): it cannot be allocated "
          f"here")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        code = (f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import bench_sparse_backend as b; "
                f"b.large_network_child({str(root)!r}, {str(out)!r})")
        subprocess.run([sys.executable, "-c", code], check=True)
        result = json.loads(out.read_text())
    verdict = "meets" if result["wall"] < 900 and result["peak_gb"] < 4 else "MISSES"
    print(f"   whole process {result['wall'] / 60:.1f} min (the epoch {result['epoch_time'] / 60:.1f} min), "
          f"peak {result['peak_gb']:.2f} GB, {result['nnz']} weights, {result['mask_updates']} RigL updates, "
          f"test accuracy {result['test_acc']:.3f}; goal < 15 min and < 4 GB: {verdict} the goal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-masked", type=int, default=6)
    parser.add_argument("--steps-sparse", type=int, default=60)
    parser.add_argument("--large", action="store_true", help="also the 100,000-neuron network (minutes)")
    parser.add_argument("--mode", choices=("steps", "epoch"), default="steps",
                        help="steps: short epochs extrapolated to a whole one (default, minutes); epoch: one whole "
                             "MNIST epoch per backend, timed (a masked epoch takes most of an hour on one thread)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in --mode epoch (default 1)")
    parser.add_argument("--method", choices=("static", "rigl"), default="static", help="the method in --mode epoch")
    parser.add_argument("--backends", default="masked,sparse",
                        help="comma-separated backends to time in --mode epoch, in that order (default masked,sparse)")
    args = parser.parse_args()
    root = data_dir()
    if root is None:
        print("skipped: MNIST not found in $TOPO_DATA_DIR or ../shared/data")
        return
    from topo.training.data import load_dataset

    mnist = load_dataset("mnist", data_dir=root, val_fraction=0.1, seed=0)
    if args.mode == "epoch":
        whole_epoch(mnist, threads=args.threads, method=args.method,
                    backends=[b.strip() for b in args.backends.split(",") if b.strip()])
    else:
        kernels()
        wide_network(mnist, {"masked": args.steps_masked, "sparse": args.steps_sparse})
    if args.large:
        large_network(root)


if __name__ == "__main__":
    main()

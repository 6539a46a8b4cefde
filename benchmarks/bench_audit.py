"""How fast `topo audit` reads checkpoints: topo's own format and torch .pt files.

Writes 200 checkpoints of a 784-1000-1000-10 network at 90% sparsity (weights
included, as training saves them) into a temporary folder, then audits the folder
with 1 and 2 local worker processes. Prints checkpoints per second (median of a few
repeats; files are in the page cache after the first) and the 2-worker / 1-worker
ratio. Goal: at least 20 checkpoints per second in one process for topo's format.

Usage: python benchmarks/bench_audit.py [N_CHECKPOINTS] [REPEATS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = [(1000, 784), (1000, 1000), (10, 1000)]  # [out, in]
NAMES = ["fc1", "fc2", "fc3"]
SPARSITY = 0.9
GOAL = 20.0


def make_weights(rng: np.random.Generator) -> list[np.ndarray]:
    weights = []
    for out, inp in SHAPES:
        values = rng.standard_normal((out, inp), dtype=np.float32)
        values[rng.random((out, inp), dtype=np.float32) < SPARSITY] = 0.0
        weights.append(values)
    return weights


def write_topo(folder: Path, n: int) -> None:
    from topo import Layer, Topology
    from topo.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    for i in range(n):
        layers = [
            Layer.from_mask(name, w != 0, weight=w, bias=np.zeros(w.shape[0], np.float32))
            for name, w in zip(NAMES, make_weights(rng))
        ]
        save_checkpoint(Topology(layers), folder / f"net_{i:04d}.safetensors", epoch=i)


def write_torch(folder: Path, n: int) -> None:
    import torch

    rng = np.random.default_rng(1)
    for i in range(n):
        state = {}
        for name, w in zip(NAMES, make_weights(rng)):
            state[f"{name}.weight"] = torch.from_numpy(w)
            state[f"{name}.bias"] = torch.zeros(w.shape[0])
        torch.save(state, folder / f"net_{i:04d}.pt")


def _start_worker(with_torch: bool) -> bool:
    """A job that only imports what an audit job imports: the cost of starting a worker."""
    import topo.analysis.fits  # noqa: F401
    import topo.analysis.hubs  # noqa: F401
    import topo.audit  # noqa: F401
    import topo.formats.native  # noqa: F401

    if with_torch:
        import torch  # noqa: F401
    return with_torch


def startup(workers: int, repeats: int, with_torch: bool) -> float:
    """Median seconds for a pool of ``workers`` processes to start and run trivial jobs."""
    from topo.parallel import map_jobs

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        map_jobs(_start_worker, [with_torch] * (2 * workers), workers=workers)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rate(folder: Path, n: int, workers: int, repeats: int) -> tuple[float, list]:
    from topo.audit import audit_paths

    rates = []
    rows = []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = audit_paths([folder], workers=workers)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), rows


def bench(label: str, folder: Path, n: int, repeats: int, with_torch: bool = False) -> float:
    rate(folder, n, 1, 1)  # warm up: imports, page cache
    one, rows = rate(folder, n, 1, repeats)
    bad = [row for row in rows if row.status != "ok"]
    if len(rows) != n or bad:
        print(f"{label}: expected {n} ok rows, got {len(rows)} ({len(bad)} not ok: {bad[:1]})")
        return float("nan")
    two, _ = rate(folder, n, 2, repeats)
    print(f"{label}: 1 worker {one:7.1f} checkpoints/s | 2 workers {two:7.1f} checkpoints/s "
          f"| 2-worker/1-worker {two / one:.2f}x  (median of {repeats})")
    start = startup(2, repeats, with_torch)
    busy = n / two - start
    if busy > 0:
        steady = n / busy
        print(f"{'':{len(label)}}  starting 2 workers costs {start:.2f} s; without it 2 workers read "
              f"{steady:7.1f} checkpoints/s ({steady / one:.2f}x one worker)")
    else:
        print(f"{'':{len(label)}}  starting 2 workers costs {start:.2f} s, about all of the 2-worker time")
    return one


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    from topo.formats import detect_format

    print(f"audit of {n} checkpoints, 784-1000-1000-10 at {SPARSITY:.0%} sparsity, weights saved "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start)")
    with tempfile.TemporaryDirectory(prefix="bench_audit_") as tmp:
        native = Path(tmp) / "topo"
        native.mkdir()
        start = time.perf_counter()
        write_topo(native, n)
        print(f"(wrote topo checkpoints in {time.perf_counter() - start:.1f} s)")
        one = bench("topo .safetensors", native, n, repeats)
        verdict = "met" if one >= GOAL else "MISSED"
        print(f"goal {GOAL:.0f} checkpoints/s in one process for topo's format: {verdict} ({one:.1f})")

        torch_dir = Path(tmp) / "torch"
        torch_dir.mkdir()
        write_torch(torch_dir, 1)
        if detect_format(torch_dir / "net_0000.pt") is None:
            print("torch .pt: skipped, no reader recognises torch state_dict files yet")
        else:
            write_torch(torch_dir, n)
            ratio_base = bench("torch .pt        ", torch_dir, n, repeats, with_torch=True)
            if one == one and ratio_base == ratio_base:
                print(f"torch .pt / topo format, 1 worker: {ratio_base / one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

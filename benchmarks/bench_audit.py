"""How fast `topo audit` reads checkpoints: topo's own format and torch .pt files.

Writes 200 checkpoints of a 784-1000-1000-10 network at 90% sparsity (weights
included, as training saves them) into a temporary folder, then

- audits 50 of them with the ``topo`` command as a whole process, start-up
  included (what a user waits for), and, as the baseline in the same run, the same
  command in a process that also imports scipy.stats and scipy.optimize, which the
  audit imported before it stopped needing them; prints checkpoints per second,
  wall-clock and per CPU second of the process (median of a few repeats), and the
  ratios. Goal: at least 30 checkpoints per second;
- audits all 200 in this process with 1 and 2 local worker processes and prints
  checkpoints per second and the 2-worker / 1-worker ratio (goal: at least 20 per
  second in one process).

Files are in the page cache after the first pass. Foreign ``.pt`` files have their own
benchmark (``bench_audit_foreign.py``); a torch ``.pt`` pass runs here too when torch
is installed.

Usage: python benchmarks/bench_audit.py [N_CHECKPOINTS] [REPEATS]
"""

from __future__ import annotations

import csv
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = [(1000, 784), (1000, 1000), (10, 1000)]  # [out, in]
NAMES = ["fc1", "fc2", "fc3"]
SPARSITY = 0.9
GOAL = 20.0
PROCESS_FILES = 50
PROCESS_GOAL = 30.0
#: what the audit imported before it stopped needing it: the baseline of the whole-process figure
OLD_IMPORTS = "import scipy.stats, scipy.optimize"


def make_weights(rng: np.random.Generator) -> list[np.ndarray]:
    weights = []
    for out, inp in SHAPES:
        values = rng.standard_normal((out, inp), dtype=np.float32)
        values[rng.random((out, inp), dtype=np.float32) < SPARSITY] = 0.0
        weights.append(values)
    return weights


def write_topo(folder: Path, n: int, start: int = 0) -> None:
    from topo import Layer, Topology
    from topo.checkpoint import save_checkpoint

    rng = np.random.default_rng(start)
    for i in range(start, start + n):
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


# -- the whole process --------------------------------------------------------------
def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _audit_process(paths: list[Path], preload: str = "") -> tuple[float, float, list[dict]]:
    """Wall and CPU seconds of one ``topo audit PATHS --format csv`` process, and its rows."""
    code = f"{preload}\nfrom topo_cli.main import main\nmain()"
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, "audit", *map(str, paths), "--format", "csv"],
        capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"topo audit failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, cpu, list(csv.DictReader(io.StringIO(done.stdout)))


def whole_process(folder: Path, n: int, repeats: int) -> float:
    """Checkpoints per second of ``topo audit FOLDER`` as a process; prints the figures.

    Wall-clock rates depend on what else the machine runs; the rates per CPU second
    (user + system time of the process) are what one idle core would give.
    """
    one_file = sorted(folder.iterdir())[0]
    _audit_process([folder])  # warm up: page cache, bytecode
    walls, cpus, old_walls, old_cpus, startups = [], [], [], [], []
    for _ in range(repeats):
        # alternate, so that a change in the machine's load hits both alike
        wall, cpu, rows = _audit_process([folder])
        bad = [row for row in rows if row["status"] != "ok"]
        if len(rows) != n or bad:
            print(f"whole process: expected {n} ok rows, got {len(rows)} ({len(bad)} not ok)")
            return float("nan")
        walls.append(n / wall)
        cpus.append(n / cpu)
        wall, cpu, _ = _audit_process([folder], OLD_IMPORTS)
        old_walls.append(n / wall)
        old_cpus.append(n / cpu)
        startups.append(_audit_process([one_file])[1])
    rate, cpu_rate = statistics.median(walls), statistics.median(cpus)
    old, old_cpu = statistics.median(old_walls), statistics.median(old_cpus)
    print(f"topo audit, whole process, {n} checkpoints: {rate:6.1f} checkpoints/s wall-clock, "
          f"{cpu_rate:6.1f} per CPU second (median of {repeats}; one checkpoint alone takes "
          f"{statistics.median(startups):.2f} CPU s, start-up included)")
    print(f"  baseline, the same process importing {OLD_IMPORTS!r} as before: {old:6.1f} wall-clock, "
          f"{old_cpu:6.1f} per CPU second | new/baseline {rate / old:.2f}x wall-clock, {cpu_rate / old_cpu:.2f}x CPU")
    verdict = "met" if rate >= PROCESS_GOAL else "MISSED"
    print(f"goal {PROCESS_GOAL:.0f} checkpoints/s for the whole process: {verdict} wall-clock ({rate:.1f}), "
          f"{'met' if cpu_rate >= PROCESS_GOAL else 'MISSED'} per CPU second ({cpu_rate:.1f}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return rate


# -- in this process ------------------------------------------------------------------
def _start_worker(with_torch: bool) -> bool:
    """A job that only imports what an audit job imports: the cost of starting a worker."""
    import topo.analysis.fits  # noqa: F401
    import topo.analysis.hubs  # noqa: F401
    import topo.analysis.patterns  # noqa: F401
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
        first = native / "first"  # the whole-process figure audits this part alone
        first.mkdir(parents=True)
        start = time.perf_counter()
        in_first = min(PROCESS_FILES, n)
        write_topo(first, in_first)
        if n > in_first:
            (native / "rest").mkdir()
            write_topo(native / "rest", n - in_first, start=in_first)
        print(f"(wrote topo checkpoints in {time.perf_counter() - start:.1f} s)")
        whole_process(first, in_first, repeats)
        one = bench("topo .safetensors", native, n, repeats)
        verdict = "met" if one >= GOAL else "MISSED"
        print(f"goal {GOAL:.0f} checkpoints/s in one process for topo's format: {verdict} ({one:.1f})")

        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch .pt: skipped, torch is not installed")
            return 0
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

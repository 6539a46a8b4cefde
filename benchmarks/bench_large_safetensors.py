"""`topo inspect` and `topo audit` of a large float16 safetensors model against streaming it with safe_open.

    .venv/bin/python benchmarks/bench_large_safetensors.py               # about 0.7 GB
    .venv/bin/python benchmarks/bench_large_safetensors.py --size-gb 1.6 # the issue's figure
    TOPO_BENCH_LARGE_GB=1.6 make bench                                    # the same, opt-in

The default size is smaller than the issue's 1.6 GB so that ``make bench`` stays quick
and light on a shared machine; ``--size-gb`` or the ``TOPO_BENCH_LARGE_GB`` variable
asks for the full size (the largest tensor, and so the memory goal, is the same).

A transformer-like stack of MLP blocks is written in a temporary folder with the
safetensors library, in float16: ``up_proj`` weights pruned 2:4 (two of every four
inputs kept), ``down_proj`` weights 50% unstructured. Then, in the same run, each as
a fresh process after the file is in the page cache, interleaved run by run:

- ``topo inspect MODEL --format json`` (reads the masks one tensor at a time, from a
  memory map, a block of rows at a time; measures degrees and sparsity patterns);
- ``topo audit MODEL --format json`` (the same reading; degrees, fits, hubs, patterns);
- ``topo.formats.scan`` with ``layer_degree`` alone: the reading that inspect does;
- the baseline: ``safe_open`` over every tensor, one at a time, counting its nonzeros
  with ``numpy.count_nonzero`` (the least any reader of the whole file must do);
- a stricter baseline: the same, counting the nonzeros on the stored bits
  (``count_nonzero(bits & 0x7FFF)``: the sign bit masked, so -0.0 is no connection),
  which numpy does about 7x faster than on float16 values.

Every one is a whole process, started fresh (interpreter, imports, reading, output),
measured from outside. It prints the median wall time and CPU time (user + system)
of each over the runs and their ratios to both baselines, each one's peak resident
memory (the child's ``ru_maxrss``) against the goal of at most twice the largest
tensor plus 300 MB, and the load average before and after. On a machine shared
with other work the CPU time is the steadier figure; wall time counts waiting for a
core as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import verdict  # noqa: E402

HIDDEN, INTERMEDIATE = 4096, 11008

BASELINE = """
import sys
import numpy as np
from safetensors import safe_open
nnz = 0
with safe_open(sys.argv[1], framework="np") as handle:
    for key in handle.keys():
        nnz += int(np.count_nonzero(handle.get_tensor(key)))
print(nnz)
"""

# The same, counting on the stored bits: float16 zeros are the bit patterns 0x0000 and 0x8000.
BASELINE_BITS = """
import sys
import numpy as np
from safetensors import safe_open
nnz = 0
with safe_open(sys.argv[1], framework="np") as handle:
    for key in handle.keys():
        nnz += int(np.count_nonzero(handle.get_tensor(key).view(np.uint16) & np.uint16(0x7FFF)))
print(nnz)
"""

# Reading alone: the masks, one tensor at a time, measured by degree (what inspect reads).
SCAN = """
import sys
from topo.analysis.degree import layer_degree
from topo.formats import scan
_, measured = scan(sys.argv[1], layer_degree)
print(sum(d.nnz for d in measured.values()))
"""

# Runs a command as its only child and reports the child's peak resident memory (KiB).
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(f"{done.returncode} {elapsed} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}\\n")
sys.stdout.flush()
sys.stderr.buffer.write(done.stdout)
"""


def _two_four(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    values = rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
    groups = values.reshape(shape[0], shape[1] // 4, 4)
    # keep the two largest magnitudes of every four inputs
    order = np.argsort(np.abs(groups), axis=2)
    np.put_along_axis(groups, order[:, :, :2], 0, axis=2)
    return values


def _unstructured(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    values = rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
    values[rng.random(shape, dtype=np.float32) < 0.5] = 0
    return values


def write_model(path: Path, size_gb: float, seed: int = 0) -> tuple[int, int]:
    """Write the model; return (bytes of the file's tensors, bytes of the largest tensor)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    per_block = 2 * HIDDEN * INTERMEDIATE * 2
    n_blocks = max(1, round(size_gb * 1e9 / per_block))
    tensors: dict[str, np.ndarray] = {}
    for block in range(n_blocks):
        tensors[f"model.layers.{block}.mlp.up_proj.weight"] = _two_four(rng, (INTERMEDIATE, HIDDEN))
        tensors[f"model.layers.{block}.mlp.down_proj.weight"] = _unstructured(rng, (HIDDEN, INTERMEDIATE))
    save_file(tensors, str(path))
    sizes = [t.nbytes for t in tensors.values()]
    return sum(sizes), max(sizes)


def measure(command: list[str]) -> tuple[float, int, float, str]:
    """Wall time (s), peak RSS (bytes), CPU time (s) and the tail of stdout of ``command``
    in a fresh process."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    code, elapsed, peak_kib, cpu = done.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"{command[:3]} failed: {done.stderr[-2000:]}")
    return float(elapsed), int(peak_kib) * 1024, float(cpu), done.stderr


def _load(averages: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.1f}" for value in averages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_gb = float(os.environ.get("TOPO_BENCH_LARGE_GB", "0.7"))
    parser.add_argument("--size-gb", type=float, default=default_gb,
                        help="model size in GB (default: $TOPO_BENCH_LARGE_GB or 0.7; the issue's figure: 1.6)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    topo_bin = str(Path(sys.executable).with_name("topo"))
    with tempfile.TemporaryDirectory(prefix="topo-large-") as folder:
        model = Path(folder) / "model.safetensors"
        started = time.perf_counter()
        total, largest = write_model(model, args.size_gb)
        print(f"model: {model.stat().st_size / 1e9:.2f} GB float16, {total // largest} tensors, largest "
              f"{largest / 1e6:.0f} MB (written in {time.perf_counter() - started:.0f} s)")
        with open(model, "rb") as handle:  # the page cache holds the file for both
            while handle.read(64 * 1024**2):
                pass

        commands = {
            "topo inspect": [topo_bin, "inspect", str(model), "--format", "json"],
            "topo audit": [topo_bin, "audit", str(model), "--format", "json"],
            "topo scan": [sys.executable, "-c", SCAN, str(model)],
            "safe_open stream": [sys.executable, "-c", BASELINE, str(model)],
            "safe_open bits": [sys.executable, "-c", BASELINE_BITS, str(model)],
        }
        load_before = os.getloadavg()
        runs: dict[str, list[tuple[float, int, float]]] = {name: [] for name in commands}
        outputs = {}
        for _ in range(args.repeats):
            for name, command in commands.items():
                elapsed, peak, cpu, out = measure(command)
                runs[name].append((elapsed, peak, cpu))
                outputs[name] = out

        report = json.loads(outputs["topo inspect"])
        baseline_nnz = int(outputs["safe_open stream"].split()[-1])
        assert report["summary"]["nnz"] == baseline_nnz, (report["summary"]["nnz"], baseline_nnz)
        (audited,) = json.loads(outputs["topo audit"])
        assert audited["status"] == "ok" and audited["nnz"] == baseline_nnz, audited
        print(f"patterns found: {report['summary']['pattern']} (audit: {audited['pattern']})")

        goal_peak = 2 * largest + 300 * 1024**2
        # wall time and CPU time (user + system): on a shared machine the CPU time is the steadier figure
        print(f"{'':18} {'median s':>9} {'CPU s':>9} {'peak MB':>9}")
        medians, cpus = {}, {}
        for name, values in runs.items():
            medians[name] = statistics.median(t for t, _, _ in values)
            cpus[name] = statistics.median(c for _, _, c in values)
            peak = max(p for _, p, _ in values)
            print(f"{name:18} {medians[name]:9.2f} {cpus[name]:9.2f} {peak / 1e6:9.0f}")
        assert int(outputs["topo scan"].split()[-1]) == baseline_nnz
        assert int(outputs["safe_open bits"].split()[-1]) == baseline_nnz
        print(f"connections counted by all: {baseline_nnz:,}; {args.repeats} runs of each, interleaved; "
              f"load average (1, 5, 15 min) before {_load(load_before)}, after {_load(os.getloadavg())}")
        for name in ("topo inspect", "topo audit", "topo scan"):
            peak = max(p for _, p, _ in runs[name])
            ratios = []
            for base in ("safe_open stream", "safe_open bits"):
                ratio = medians[name] / medians[base]
                cpu_ratio = cpus[name] / cpus[base]
                ratios.append(f"/ {base}: time {ratio:.2f}, CPU time {cpu_ratio:.2f} ({verdict(cpu_ratio, 1.0)})")
            print(f"{name}: " + "; ".join(ratios))
            print(f"{'':{len(name) + 2}}peak {peak / 1e6:.0f} MB vs 2 x largest + 300 MB = {goal_peak / 1e6:.0f} MB "
                  f"({verdict(peak, goal_peak)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

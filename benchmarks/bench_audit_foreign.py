"""How fast `topo audit DIR` reads a folder of other libraries' PyTorch files, start-up included.

Writes 50 ``.pt`` / ``.pth`` / ``.ckpt`` files with torch: state dicts (zip and legacy),
Lightning-style checkpoints, ``torch.nn.utils.prune`` state dicts and whole pickled
modules, of a 784-300-100-10 network at 90% sparsity. Then runs the whole audit as a
user would, one fresh process per run:

- after: topo's reader (the inert unpickler and numpy; torch is never imported);
- before: the same audit with the reader swapped for the earlier one in this process,
  ``torch.load(weights_only=True, mmap=True)`` (which imports torch, and refuses the
  whole pickled modules).

Prints files per second of wall time and of CPU time (user + system: on a shared
machine, wall time includes waiting for a core), medians of REPEATS runs, the ratio
after / before, whether torch was imported, and the goal: at least 50 files per
second with no torch import.

Usage: python benchmarks/bench_audit_foreign.py [N_FILES] [REPEATS]
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

SHAPES = [(300, 784), (100, 300), (10, 100)]  # [out, in]
SPARSITY = 0.9
GOAL = 50.0

# Run in the audit's process: the audit, then whether torch was imported.
AUDIT = """
import sys
from topo_cli.main import main
sys.argv = ["topo", "audit", {folder!r}, "--format", "json"]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("TORCH_IMPORTED", "torch" in sys.modules, file=sys.stderr)
"""

# Run in a fresh process: read every file (no measures), after a first file read to warm up.
READ_ONLY = """
import sys, time
from pathlib import Path
from topo.errors import TopoError
from topo.formats import load
files = sorted(Path({folder!r}).iterdir())
def read_all():
    for path in files:
        try:
            load(path, weights=False)
        except TopoError:
            pass
read_all()
start = time.process_time()
read_all()
print("READ_CPU", time.process_time() - start)
"""

# The earlier reader: torch.load with weights_only=True, its tensors handed to the same assembler.
BEFORE = """
import zipfile
from pathlib import Path
import topo.formats.pytorch as pytorch
from topo.errors import TopoError
from topo.formats._unpickle import StoredTensor

def _wrap(obj):
    import torch
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.layout != torch.strided:
            return obj  # not used by this benchmark's files
        array = (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()
        return StoredTensor(tuple(t.shape), str(t.dtype).removeprefix("torch."), "strided", lambda: array)
    if isinstance(obj, dict):
        return {k: _wrap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_wrap(v) for v in obj]
    return obj

def torch_load_checkpoint(path):
    import torch
    path = Path(path)
    zipped = zipfile.is_zipfile(path)
    try:
        obj = torch.load(str(path), weights_only=True, map_location="cpu", mmap=zipped)
    except Exception:
        raise TopoError("refused: the file needs arbitrary Python objects to load (unsafe pickle)", path=path)
    return _wrap(obj), []

pytorch.load_checkpoint = torch_load_checkpoint
"""


def make_weights(rng: np.random.Generator) -> list[np.ndarray]:
    weights = []
    for out, inp in SHAPES:
        values = rng.standard_normal((out, inp), dtype=np.float32)
        values[rng.random((out, inp), dtype=np.float32) < SPARSITY] = 0.0
        weights.append(values)
    return weights


def write_files(folder: Path, n: int) -> dict[str, int]:
    """``n`` foreign torch files of five kinds; returns how many of each."""
    import torch
    import torch.nn as nn
    import torch.nn.utils.prune as prune

    rng = np.random.default_rng(0)
    kinds = ["state_zip", "state_legacy", "lightning", "pruned", "whole_module"]
    counts = dict.fromkeys(kinds, 0)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        counts[kind] += 1
        weights = make_weights(rng)
        model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
        with torch.no_grad():
            for layer, w in zip(model[::2], weights):
                layer.weight.copy_(torch.from_numpy(w))
        if kind == "state_zip":
            torch.save(model.state_dict(), folder / f"{i:03d}_state.pt")
        elif kind == "state_legacy":
            torch.save(model.state_dict(), folder / f"{i:03d}_legacy.pth", _use_new_zipfile_serialization=False)
        elif kind == "lightning":
            ckpt = {"epoch": i, "global_step": 100 * i, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
            torch.save(ckpt, folder / f"{i:03d}_lightning.ckpt")
        elif kind == "pruned":
            prune.l1_unstructured(model[0], "weight", amount=0.5)
            torch.save(model.state_dict(), folder / f"{i:03d}_pruned.pt")
        else:
            torch.save(model, folder / f"{i:03d}_whole.pt")
    return counts


def run_audit(folder: Path, before: bool) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and output of one audit process."""
    code = (textwrap.dedent(BEFORE) if before else "") + AUDIT.format(folder=str(folder))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return elapsed, cpu, result.stdout + result.stderr


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        counts = write_files(folder, n)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"{n} files ({', '.join(f'{v} {k}' for k, v in counts.items())}), {size:.1f} MB in all")
        results = {}
        for label, before in (("before (torch.load)", True), ("after (inert unpickler)", False)):
            times, cpus, output = [], [], ""
            for _ in range(repeats):
                elapsed, cpu, output = run_audit(folder, before)
                times.append(elapsed)
                cpus.append(cpu)
            median = statistics.median(times)
            cpu = statistics.median(cpus)
            ok = output.count('"status": "ok"')
            imported = "TORCH_IMPORTED True" in output
            results[label] = n / median
            print(f"{label:24s} wall {median:6.2f} s  {n / median:6.1f} files/s | CPU {cpu:6.2f} s  "
                  f"{n / cpu:6.1f} files/CPU-s | rows ok {ok}/{n} | torch imported: {imported}")
        print("reading alone (topo.formats.load of every file in one warm process, CPU time):")
        reads = {}
        for label, before in (("before (torch.load)", True), ("after (inert unpickler)", False)):
            code = (textwrap.dedent(BEFORE) if before else "") + READ_ONLY.format(folder=str(folder))
            cpus = []
            for _ in range(repeats):
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
                cpus.append(float(out.split("READ_CPU")[1].split()[0]))
            reads[label] = n / statistics.median(cpus)
            print(f"  {label:24s} {statistics.median(cpus) * 1000:7.1f} ms CPU   {reads[label]:7.1f} files/CPU-s")
        print(f"  ratio after / before: {reads['after (inert unpickler)'] / reads['before (torch.load)']:.2f}x")
        ratio = results["after (inert unpickler)"] / results["before (torch.load)"]
        after = results["after (inert unpickler)"]
        print(f"ratio after / before: {ratio:.2f}x")
        print(f"goal >= {GOAL:.0f} files/s without importing torch: "
              f"{'meets the goal' if after >= GOAL else 'MISSES the goal'} ({after:.1f} files/s)")


if __name__ == "__main__":
    main()

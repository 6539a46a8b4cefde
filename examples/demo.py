"""The `make demo` job: train the default sparse network on digits, compare its first
and last checkpoints, and write the HTML report (figures of the fan-in drift and more).

Usage: python examples/demo.py [RUN_DIR]     (default runs/demo)

It runs the real command line (``python -m topo_cli.main``) so that what you see is
what ``topo train`` and ``topo compare`` print. RUN_DIR is made fresh each time: a
previous demo run there (a topo run folder) is removed first; any other existing,
non-empty folder is left alone and the demo stops.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

def topo(*args: str) -> None:
    command = [sys.executable, "-m", "topo_cli.main", *args]
    print(f"\n$ topo {shlex.join(args)}", flush=True)
    completed = subprocess.run(command)
    if completed.returncode != 0:
        print(f"demo: `topo {args[0]}` failed with exit code {completed.returncode}", file=sys.stderr)
        sys.exit(completed.returncode)


def main(argv: list[str]) -> int:
    run = Path(argv[1] if len(argv) > 1 else "runs/demo")
    if run.exists():
        is_run = (run / "run.json").is_file() or (run / "checkpoints").is_dir()
        if run.is_dir() and (is_run or not any(run.iterdir())):
            shutil.rmtree(run)
            print(f"demo: removed the previous run in {run}")
        else:
            print(f"demo: {run} exists and is not a topo run; choose another folder", file=sys.stderr)
            return 1
    print("demo: training the default sparse MLP on digits (64-256-256-10, 90% sparse, ERK, RigL, 30 epochs)")
    topo("train", "--out", str(run))
    first = run / "checkpoints" / "epoch_0000.safetensors"
    last = sorted((run / "checkpoints").glob("epoch_[0-9][0-9][0-9][0-9].safetensors"))[-1]
    print("\ndemo: how far the topology moved from the initial masks to the trained network")
    topo("compare", str(first), str(last))
    report = run / "report.html"
    print("\ndemo: one HTML report with the figures")
    topo("report", str(run), "-o", str(report))
    print(f"\ndemo: done. The run is in {run}; open {report.resolve()} in a browser.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

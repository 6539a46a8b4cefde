"""Start-up cost of the command line: `topo --help` and `topo inspect` as whole processes.

Goals: `topo --help` under 0.5 s, `topo inspect` of a 784-1000-1000-10 checkpoint at 90%
sparsity under 1 s. The baseline, measured in the same run, is a bare `python -c pass`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, sparse_mlp, verdict  # noqa: E402

from topo import save_checkpoint  # noqa: E402


def main() -> None:
    python = sys.executable
    topo_cmd = [python, "-m", "topo_cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(sparse_mlp([784, 1000, 1000, 10], 0.1), Path(tmp) / "net.safetensors")

        def run(args):
            return lambda: subprocess.run(args, check=True, capture_output=True)

        bare = median_time(run([python, "-c", "pass"]), repeats=7)
        help_time = median_time(run(topo_cmd + ["--help"]), repeats=7)
        inspect_time = median_time(run(topo_cmd + ["inspect", str(ckpt)]), repeats=7)
    print(f"python -c pass (baseline)     median {bare * 1000:7.1f} ms")
    print(f"topo --help                   median {help_time * 1000:7.1f} ms  "
          f"({help_time / bare:.1f}x baseline; goal < 500 ms: {verdict(help_time, 0.5)})")
    print(f"topo inspect 784-1000-1000-10 median {inspect_time * 1000:7.1f} ms  "
          f"({inspect_time / bare:.1f}x baseline; goal < 1000 ms: {verdict(inspect_time, 1.0)})")


if __name__ == "__main__":
    main()

"""topo.analysis computes and never reads: no import of the reading layers, no file I/O.

Both checks read the source with :mod:`ast`, so imports inside functions count too.
Each check is first shown to catch a made-up offender, so that it cannot pass vacuously.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import topo.analysis

ANALYSIS = Path(topo.analysis.__file__).parent
MODULES = sorted(ANALYSIS.rglob("*.py"))
#: the modules that read files, run folders and profiles; analysis takes what they read
READERS = ("topo.formats", "topo.checkpoint", "topo.runs")
#: the reading calls of the standard library, numpy, json, pickle and torch
LOADERS = {"load", "loads_file", "loadtxt", "genfromtxt", "fromfile", "memmap", "save", "savez", "savez_compressed", "savetxt"}
LOADER_OWNERS = {"np", "numpy", "json", "pickle", "torch", "io", "os", "shutil", "h5py", "safetensors"}
PATH_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "unlink", "mkdir", "touch", "iterdir", "glob", "rglob"}
OS_CALLS = {"open", "fdopen", "listdir", "scandir", "remove", "rename", "replace", "makedirs", "walk"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ANALYSIS.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve_relative(module: str, level: int, current: str, is_package: bool) -> str:
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def imported_readers(source: str, current: str = "topo.analysis.example", is_package: bool = False) -> list[str]:
    """The reading modules ``source`` imports, anywhere in it (``from topo import runs`` too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(base, node.level, current, is_package)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            if any(name == reader or name.startswith(reader + ".") for reader in READERS):
                found.append(name)
    return found


def file_io_calls(source: str) -> list[str]:
    """The calls in ``source`` that open, read or write files, as ``line: call``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            found.append(f"{node.lineno}: open()")
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner in LOADER_OWNERS and func.attr in LOADERS:
                found.append(f"{node.lineno}: {owner}.{func.attr}()")
            elif owner == "os" and func.attr in OS_CALLS:
                found.append(f"{node.lineno}: os.{func.attr}()")
            elif func.attr in PATH_METHODS and owner not in {"np", "numpy"}:
                found.append(f"{node.lineno}: .{func.attr}()")
    return found


def test_the_checks_catch_offenders():
    offender = (
        "import topo.formats\n"
        "from topo.checkpoint import list_checkpoints\n"
        "def f(path):\n"
        "    from topo import runs\n"
        "    from .. import formats\n"
        "    import importlib\n"
        "    importlib.import_module('topo.runs')\n"
        "    with open(path) as handle:\n"
        "        handle.read()\n"
        "    np.load(path)\n"
        "    json.load(path)\n"
        "    return Path(path).read_text() + path.read_bytes()\n"
    )
    assert sorted(imported_readers(offender)) == sorted([
        "topo.formats", "topo.checkpoint", "topo.checkpoint.list_checkpoints", "topo.runs",
        "topo.formats", "topo.runs",
    ])
    assert sorted(call.split(": ")[1] for call in file_io_calls(offender)) == sorted([
        "open()", "np.load()", "json.load()", ".read_text()", ".read_bytes()",
    ])
    clean = "import numpy as np\nfrom topo.topology import Topology\ndef f(t):\n    return np.asarray(t)\n"
    assert imported_readers(clean) == [] and file_io_calls(clean) == []


def test_there_are_analysis_modules_to_check():
    names = {path.stem for path in MODULES}
    assert {"degree", "distance", "drift", "gradients", "structure", "hubs"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_analysis_imports_no_reader(path):
    source = path.read_text(encoding="utf-8")
    found = imported_readers(source, _module_name(path), path.name == "__init__.py")
    assert not found, f"{path.name} imports {found}: analysis takes Topologies; topo.runs reads them"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_analysis_does_no_file_io(path):
    found = file_io_calls(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name} does file I/O: {found}"

"""Load a study script from examples/ as a module, for the tests of its --smoke mode."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(stem: str) -> ModuleType:
    """Import ``examples/<stem>.py`` (registered in sys.modules: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(stem, EXAMPLES / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

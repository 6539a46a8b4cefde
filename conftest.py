"""Run the Examples in topo's docstrings as doctests, beside the tests in ``tests/``.

Only the package's own modules are collected this way (``pytest`` with ``testpaths``
naming ``topo``); ``topo/__main__.py`` is left out because importing it runs the CLI.
"""

from __future__ import annotations

from pathlib import Path

from _pytest.doctest import DoctestModule

PACKAGE = Path(__file__).resolve().parent / "topo"


def pytest_collect_file(file_path: Path, parent):
    """Collect every ``topo/**.py`` module (but ``__main__``) as a doctest module."""
    if file_path.suffix != ".py" or file_path.name == "__main__.py":
        return None
    if PACKAGE not in file_path.resolve().parents:
        return None
    return DoctestModule.from_parent(parent, path=file_path)

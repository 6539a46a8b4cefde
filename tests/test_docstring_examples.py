"""Every public function and class in topo documents itself with a runnable Examples section.

The Examples themselves run as doctests (``conftest.py`` at the repository root collects
``topo/``); this test keeps the rule true: a public name without an ``Examples``
section fails, unless its module is still on the to-do list below, which only shrinks.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import topo

#: modules whose public functions and classes do not all have Examples yet; remove a
#: module once it is done (the last test fails while a finished module stays listed)
TODO_MODULES = frozenset(
    {
    }
)

_EXAMPLES_HEADING = re.compile(r"^\s*Examples\s*\n\s*-{8,}\s*$", re.MULTILINE)


def _module_names() -> list[str]:
    names = ["topo"]
    for info in pkgutil.walk_packages(topo.__path__, prefix="topo."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # importing it runs the CLI
        names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def _public_callables(module_name: str) -> list[tuple[str, object]]:
    """The functions and classes a module lists in ``__all__`` and defines itself."""
    module = importlib.import_module(module_name)
    found = []
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module_name:
            continue  # a re-export: checked where it is defined
        found.append((name, obj))
    return found


def _missing_examples(module_name: str) -> list[str]:
    return [
        name
        for name, obj in _public_callables(module_name)
        if not _EXAMPLES_HEADING.search(inspect.getdoc(obj) or "")
    ]


@pytest.mark.parametrize("module_name", [m for m in MODULES if m not in TODO_MODULES])
def test_every_public_function_and_class_has_examples(module_name):
    assert _missing_examples(module_name) == [], f"{module_name}: public names without an Examples section"


def test_the_heading_check_tells_documented_from_undocumented():
    def documented():
        """Do a thing.

        Examples
        --------
        >>> 1 + 1
        2
        """

    def undocumented():
        """Do a thing; see the Examples of another function."""

    assert _EXAMPLES_HEADING.search(inspect.getdoc(documented))
    assert not _EXAMPLES_HEADING.search(inspect.getdoc(undocumented))


def test_todo_list_only_names_existing_unfinished_modules():
    unknown = sorted(TODO_MODULES - set(MODULES))
    assert unknown == [], "to-do modules that do not exist (drop them)"
    finished = sorted(m for m in TODO_MODULES if not _missing_examples(m))
    assert finished == [], "to-do modules now fully documented (drop them from TODO_MODULES)"


def test_dir_topo_lists_the_lazily_imported_names():
    listed = dir(topo)
    assert listed == sorted(listed)
    for name in topo.__all__:
        assert name in listed
    for lazy in ("nnstd", "hub_overlap", "fit_fan_in", "sparsify", "TopologyMonitor"):
        assert lazy in listed
        assert lazy in topo.__all__
    assert "Topology" in listed and "__version__" in listed


def test_lazy_names_stay_functions_after_their_module_is_imported():
    # collecting the doctests imports topo.integrations.sparsify, which rebinds the
    # package attribute of that name to the module; topo.sparsify is still the function
    importlib.import_module("topo.integrations.sparsify")
    importlib.import_module("topo.analysis.distance")
    assert inspect.isfunction(topo.sparsify)
    assert inspect.isfunction(topo.nnstd)

"""The documentation site: a guide page for every command, the API of every public module.

The site itself is built by ``make docs`` (MkDocs, the ``[docs]`` extra), which runs each
page's examples; these tests check what it is built from, without MkDocs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest

from topo_cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXAMPLE = re.compile(r"^<!-- example(?: exit=\d+)?: (.+?) -->$", re.M)
API = re.compile(r"^<!-- api: (.+?) -->$", re.M)


def guide(name: str) -> str:
    return (DOCS / "guide" / f"{name}.md").read_text()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_a_guide_page(name):
    page = DOCS / "guide" / f"{name}.md"
    assert page.is_file(), f"no guide page for topo {name}"
    text = page.read_text()
    assert text.startswith(f"# topo {name}\n")
    assert f"guide/{name}.md" in (REPO / "mkdocs.yml").read_text()
    # an example that runs the command, whose output the build puts in the page
    assert any(command.split()[:2] == ["topo", name] for command in EXAMPLE.findall(text)), name
    # and its options, generated from the command itself
    module, attribute = COMMANDS[name].split(":")
    assert re.search(rf"::: mkdocs-click\n\s+:module: {re.escape(module)}\n\s+:command: {attribute}\n", text)


@pytest.mark.parametrize("name", [n for n in COMMANDS if isinstance(main.get_command(click.Context(main), n), click.Group)])
def test_group_pages_name_every_subcommand(name):
    group = main.get_command(click.Context(main), name)
    text = guide(name)
    for sub in group.list_commands(click.Context(group)):
        assert f"`{sub}`" in text or f"topo {name} {sub}" in text, (name, sub)


def test_every_public_module_is_in_the_api_reference():
    packages = {m for page in (DOCS / "api").glob("*.md") for m in API.findall(page.read_text())}
    for init in (REPO / "topo").rglob("__init__.py"):
        package = ".".join(init.parent.relative_to(REPO).parts)
        public = [p for p in init.parent.glob("*.py") if not p.stem.startswith("_")]
        if public:
            assert package in packages, f"{package}: no page in docs/api has <!-- api: {package} -->"


def test_api_pages_are_in_the_navigation():
    nav = (REPO / "mkdocs.yml").read_text()
    for page in (DOCS / "api").glob("*.md"):
        assert f"api/{page.name}" in nav, page.name


def test_docs_extra_is_separate_from_dev():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = [re.split(r"[<>=\[ ]", requirement)[0] for requirement in extras["docs"]]
    assert {"mkdocs", "mkdocstrings", "mkdocs-click"} <= set(names)
    assert not set(names) & {re.split(r"[<>=\[ ]", r)[0] for r in extras["dev"]}
    assert "site/" in (REPO / ".gitignore").read_text().split()
    assert re.search(r"^docs: .*\n\t.*mkdocs build --strict", (REPO / "Makefile").read_text(), re.M)


def test_examples_name_real_commands_and_options():
    """Every example parses as a topo command line (the build then runs it)."""
    for page in sorted((DOCS / "guide").glob("*.md")):
        for command in EXAMPLE.findall(page.read_text()):
            words = command.split()
            assert words[0] == "topo", command
            if words[1:] == ["--help"]:
                continue
            group: click.Command = main
            args = words[1:]
            while isinstance(group, click.Group):
                sub = group.get_command(click.Context(group), args[0])
                if sub is None and getattr(group, "default_command", None):
                    sub = group.get_command(click.Context(group), group.default_command)
                else:
                    args = args[1:]
                assert sub is not None, command
                group = sub
            flags = {opt for param in group.params for opt in (*param.opts, *param.secondary_opts)}
            for word in args:
                if word.startswith("-"):
                    assert word in flags, f"{page.name}: {command}: no option {word}"

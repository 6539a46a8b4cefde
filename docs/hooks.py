"""MkDocs hook: the guide's examples are run when the site is built, and show their real output.

A guide page names an example in an HTML comment on a line of its own::

    <!-- example: topo inspect runs/example -->
    <!-- example exit=2: topo train --sparsity 1.5 -->

When the site is built, this hook trains a small seeded run (``runs/example``: digits,
a 64-32-32-10 MLP, RigL, 6 epochs) in a temporary folder, runs every example's ``topo``
command there in-process, in the order of the navigation, and puts the command and what
it printed in place of the comment. An example that exits with another code than the one
it names (0 by default) fails the build, so the guide cannot drift from the commands.
Figures the examples write (``.png``) are published beside the page that wrote them, so
``![...](fanin.png)`` shows them.

``<!-- file: examples/sweeps/tiny.toml -->`` shows a file of the repository, and
``<!-- api: topo.analysis -->`` becomes a mkdocstrings entry (``::: topo.analysis.degree``)
for every public module of that package, found in its folder, so a module added or
renamed is documented without editing the pages.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[1]
#: what every example can use: a trained run, and the repository's example sweep specs
SETUP = [
    "topo train --hidden 32,32 --epochs 6 --update-every 10 --seed 0 --out runs/example --quiet",
]
_MARKER = re.compile(r"^<!-- (example(?: exit=(\d+))?|file|api): (.+?) -->$", re.M)
#: terminal width of the examples' tables
_COLUMNS = "100"

_outputs: dict[tuple[str, str], str] = {}
_workdir: Path | None = None


def _run(command: str, expected_exit: int = 0) -> str:
    """Run ``topo ...`` in the example folder; its output (stdout and stderr) as shown."""
    from click.testing import CliRunner

    from topo_cli.main import main

    words = shlex.split(command)
    if not words or words[0] != "topo":
        raise PluginError(f"an example must start with 'topo': {command}")
    result = CliRunner().invoke(main, words[1:], prog_name="topo", env={"COLUMNS": _COLUMNS})
    if result.exit_code != expected_exit:
        raise PluginError(f"example `{command}` exited {result.exit_code}, not {expected_exit}:\n{result.output}")
    assert _workdir is not None
    text = result.output.replace(f"{_workdir}{os.sep}", "")
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())  # tables pad their lines


def public_modules(package: str) -> list[str]:
    """The public modules directly in ``package`` (no leading underscore), by file name."""
    folder = REPO.joinpath(*package.split("."))
    if not (folder / "__init__.py").is_file():
        raise PluginError(f"no package {package} in {REPO}")
    return [f"{package}.{path.stem}" for path in sorted(folder.glob("*.py")) if not path.stem.startswith("_")]


def _pages_in_nav_order(config: Any, files: Files) -> list[File]:
    order: list[str] = []

    def walk(items: Any) -> None:
        for item in items or []:
            if isinstance(item, str):
                order.append(item)
            elif isinstance(item, dict):
                for value in item.values():
                    walk([value] if isinstance(value, str) else value)

    walk(config["nav"])
    pages = [f for f in files.documentation_pages()]
    rank = {path: i for i, path in enumerate(order)}
    return sorted(pages, key=lambda f: rank.get(f.src_uri, len(rank)))


def on_files(files: Files, config: Any) -> Files:
    """Make the example run, run every page's examples, and publish the figures they wrote."""
    global _workdir
    _workdir = Path(tempfile.mkdtemp(prefix="topo-docs-"))
    shutil.copytree(REPO / "examples" / "sweeps", _workdir / "examples" / "sweeps")
    previous = Path.cwd()
    os.chdir(_workdir)
    try:
        for command in SETUP:
            _run(command)
        for page in _pages_in_nav_order(config, files):
            for match in _MARKER.finditer(page.content_string):
                kind, exit_code, text = match.groups()
                if kind in ("file", "api"):
                    continue
                before = set(_workdir.rglob("*.png"))
                _outputs[(page.src_uri, text)] = _run(text, int(exit_code or 0))
                page_folder = Path(page.src_uri).parent
                for figure in sorted(set(_workdir.rglob("*.png")) - before):
                    uri = (page_folder / figure.name).as_posix()
                    files.append(File.generated(config, uri, abs_src_path=str(figure)))
    finally:
        os.chdir(previous)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Put each example's command and output (and each named file) in place of its comment."""

    def replace(match: re.Match) -> str:
        kind, _, text = match.groups()
        if kind == "api":
            return "\n\n".join(f"::: {module}" for module in public_modules(text))
        if kind == "file":
            path = REPO / text
            if not path.is_file():
                raise PluginError(f"{page.file.src_uri}: no file {text}")
            language = {".toml": "toml", ".py": "python"}.get(path.suffix, "text")
            return f"```{language}\n# {text}\n{path.read_text().rstrip()}\n```"
        return f"```text\n$ {text}\n{_outputs[(page.file.src_uri, text)]}\n```"

    return _MARKER.sub(replace, markdown)


def on_post_build(config: Any) -> None:
    """Remove the example folder."""
    if _workdir is not None:
        shutil.rmtree(_workdir, ignore_errors=True)

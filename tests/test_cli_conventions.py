"""What every ``topo`` command shares: whole summaries, option sections, -q/-v, one-line
usage errors (exit 2), environment variables in --help, ``python -m topo``, completion."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from topo import save_checkpoint
from topo.errors import shorten_list
from topo_cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def leaf_commands() -> dict[str, click.Command]:
    """Every runnable command, by its path under ``topo`` ("plot fanin")."""
    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str, ctx: click.Context) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            path = f"{prefix}{name}"
            if isinstance(command, click.Group):
                walk(command, path + " ", click.Context(command, parent=ctx, info_name=name))
            else:
                found[path] = command

    walk(main, "", click.Context(main, info_name="topo"))
    return found


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, prog_name="topo")


@pytest.fixture
def ckpt(tmp_path, small_topology):
    return save_checkpoint(small_topology, tmp_path / "net.safetensors", epoch=1)


# -- --help ---------------------------------------------------------------------------
def first_sentence(command: click.Command) -> str:
    words = (command.help or "").partition("\n\n")[0].split()
    text = " ".join(words)
    end = re.search(r"\.(\s+[^a-z]|$)", text)
    return text[: end.start() + 1] if end else text


def test_top_level_help_shows_whole_summaries():
    result = invoke("--help")
    assert result.exit_code == 0
    listing = " ".join(result.output.partition("Commands:")[2].split())
    ctx = click.Context(main, info_name="topo")
    for name in COMMANDS:
        summary = first_sentence(main.get_command(ctx, name))
        assert f"{name} {summary}" in listing, name
    assert "..." not in listing.partition("Shell completion")[0].replace("CKPT...", "")


@pytest.mark.parametrize("group", ["plot", "data", "predict"])
def test_group_help_shows_whole_summaries(group):
    result = invoke(group, "--help")
    assert result.exit_code == 0
    listing = " ".join(result.output.partition("Commands:")[2].split())
    for path, command in leaf_commands().items():
        if path.startswith(group + " "):
            assert f"{path.split()[1]} {first_sentence(command)}" in listing, path


def test_help_epilog_documents_completion():
    out = invoke("--help").output
    for shell in ("bash", "zsh", "fish"):
        assert f"_TOPO_COMPLETE={shell}_source topo" in out
    readme = (REPO / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_TOPO_COMPLETE={shell}_source topo" in readme


def test_completion_script_is_what_the_help_says():
    exe = shutil.which("topo") or str(Path(sys.executable).with_name("topo"))
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        env = {**os.environ, "_TOPO_COMPLETE": f"{shell}_source"}
        out = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and marker in out.stdout, (shell, out.stderr)


def option_sections(help_text: str) -> list[str]:
    return [line[:-1] for line in help_text.splitlines() if line and not line[0].isspace() and line.endswith(":")
            and not line.startswith("Usage")]


@pytest.mark.parametrize("path", sorted(leaf_commands()))
def test_every_command_has_quiet_verbose_and_sections(path):
    command = leaf_commands()[path]
    result = invoke(*path.split(), "--help")
    assert result.exit_code == 0, result.output
    sections = option_sections(result.output)
    assert sections[-1] == "General options"
    general = result.output.partition("General options:")[2]
    assert "-q, --quiet" in general and "-v, --verbose" in general and "--help" in general
    own = [p for p in command.params if isinstance(p, click.Option) and p.name not in ("quiet", "verbose")]
    if len(own) > 5:  # more than a handful: grouped under headings
        assert [s for s in sections if s not in ("Options", "General options")], sections


# -- usage errors ---------------------------------------------------------------------
#: command -> arguments with one representative usage error (a value out of range, a bad
#: choice, a missing argument, a path that must exist)
USAGE_ERRORS = {
    "train": ["--sparsity", "1.5"],
    "sweep": [],
    "data list": ["--format", "yaml"],
    "data download": [],
    "inspect": ["{ckpt}", "--format", "yaml"],
    "compare": ["{ckpt}", "{ckpt}", "--fraction", "0"],
    "distance": ["{ckpt}", "{ckpt}", "--workers", "0"],
    "hubs": ["{ckpt}", "--fraction", "2"],
    "drift": ["{ckpt}", "--last-k", "0"],
    "features": ["{ckpt}", "--samples", "many"],
    "predict fit": ["results.csv", "-o", "m.skops", "--folds", "1"],
    "predict run": ["model.skops"],
    "audit": ["{ckpt}", "--workers", "0"],
    "plot fanin": ["{dir}", "--max-rows", "0"],
    "plot drift": ["{dir}", "--tolerance", "-1"],
    "plot distance": ["{ckpt}", "--style", "bars"],
    "plot degree": ["{ckpt}", "--kind", "cdf"],
    "plot hubs": ["{dir}", "--rule", "median"],
    "plot gradients": ["{dir}", "--fraction", "0"],
    "plot density": ["{dir}", "--dpi", "5"],
    "plot exploration": [],
    "plot curves": ["{dir}/no-such-run"],
    "report": ["{dir}", "--dpi", "1000"],
    "export": ["{ckpt}", "--to", "pdf", "-o", "g.pdf"],
}


def test_usage_error_table_covers_every_command():
    assert set(USAGE_ERRORS) == set(leaf_commands())


@pytest.mark.parametrize("path", sorted(USAGE_ERRORS))
def test_usage_errors_exit_2_with_one_line(path, ckpt, tmp_path):
    args = [a.format(ckpt=ckpt, dir=tmp_path) for a in USAGE_ERRORS[path]]
    result = invoke(*path.split(), *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert f"(see 'topo {path} --help')" in result.stderr
    assert list(tmp_path.iterdir()) == [ckpt]  # refused before any work


def test_unknown_data_set_is_a_usage_error(tmp_path):
    result = invoke("data", "download", "nosuch", "--data-dir", tmp_path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "unknown data set 'nosuch'; known: digits, mnist" in result.stderr
    assert list(tmp_path.iterdir()) == []
    # a known name that topo cannot download is not a usage error: it says where to get it
    assert invoke("data", "download", "emnist-balanced", "--data-dir", tmp_path).exit_code == 1


def test_unknown_option_and_command_are_one_line():
    for args in (["--bogus"], ["nosuch"], ["inspect", "x", "--bogus"]):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output


def test_quiet_and_verbose_together_is_a_usage_error(ckpt):
    result = invoke("inspect", ckpt, "-q", "-v")
    assert result.exit_code == 2 and "not both" in result.stderr and result.stdout == ""


# -- quiet and verbose ----------------------------------------------------------------
def test_quiet_drops_notes_verbose_adds_timing(ckpt, tmp_path):
    out = tmp_path / "g.csv"
    normal = invoke("export", ckpt, "--to", "edgelist", "-o", out)
    assert normal.exit_code == 0 and normal.stderr.startswith(f"wrote {out}")
    out.unlink()
    quiet = invoke("export", ckpt, "--to", "edgelist", "-o", out, "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "" and out.stat().st_size > 0
    verbose = invoke("export", ckpt, "--to", "edgelist", "-o", out, "-v")
    assert verbose.exit_code == 0
    lines = verbose.stderr.splitlines()
    assert lines[0].startswith(f"wrote {out}")
    assert re.fullmatch(r"topo export: \d+\.\d\d s", lines[-1]), lines


def test_quiet_keeps_results_on_stdout(ckpt):
    normal = invoke("inspect", ckpt, "--format", "json")
    quiet = invoke("inspect", ckpt, "--format", "json", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == normal.stdout and quiet.stdout


def test_python_warnings_one_line_or_in_full(ckpt, tmp_path, monkeypatch):
    import topo.graph

    real = topo.graph.export_graph

    def warning_export(*args, **kwargs):
        warnings.warn("a dependency\nchanged its mind", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(topo.graph, "export_graph", warning_export)
    out = tmp_path / "g.csv"
    normal = invoke("export", ckpt, "--to", "edgelist", "-o", out)
    assert normal.exit_code == 0
    assert "warning: a dependency changed its mind\n" in normal.stderr
    quiet = invoke("export", ckpt, "--to", "edgelist", "-o", out, "-q")
    assert quiet.stderr == "warning: a dependency changed its mind\n"  # warnings are not noise
    verbose = invoke("export", ckpt, "--to", "edgelist", "-o", out, "-v")
    assert re.search(r"warning: a dependency changed its mind \(UserWarning, .*test_cli_conventions\.py:\d+\)",
                     verbose.stderr), verbose.stderr
    assert warnings.showwarning.__module__ == "warnings"  # put back after the command


def test_quiet_turns_progress_bars_off(monkeypatch):
    import rich.progress

    from topo_cli import messages
    from topo_cli.progress import progress_bar

    drawn = []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(rich.progress.Progress, "__enter__", lambda self: drawn.append(self) or self)
    monkeypatch.setattr(rich.progress.Progress, "__exit__", lambda self, *exc: None)
    for level, expected in ((messages.QUIET, 0), (messages.NORMAL, 1)):
        with click.Context(main) as ctx:
            messages.set_level(ctx, level)
            with progress_bar("x") as update:
                update(1, 2)
        assert len(drawn) == expected


def test_train_quiet_prints_no_epoch_lines(tmp_path):
    args = ["train", "--epochs", "1", "--hidden", "8", "--out", tmp_path / "run", "--seed", "0"]
    loud = invoke(*args[:-4], "--out", tmp_path / "a", "--seed", "0")
    assert loud.exit_code == 0, loud.output
    assert "epoch 1/1" in loud.stderr
    quiet = invoke(*args, "--quiet")
    assert quiet.exit_code == 0, quiet.output
    assert "epoch 1/1" not in quiet.stderr and "Run:" in quiet.stdout


# -- environment variables ------------------------------------------------------------
def test_data_dir_comes_from_the_environment(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    result = invoke("data", "list", "--format", "json", env={"TOPO_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    import json

    assert json.loads(result.stdout)["data_dir"] == str(tmp_path)
    other = tmp_path / "other"
    result = invoke("data", "list", "--format", "json", "--data-dir", other, env={"TOPO_DATA_DIR": str(tmp_path)})
    assert json.loads(result.stdout)["data_dir"] == str(other)  # the flag wins


@pytest.mark.parametrize("path,variable", [
    ("train", "TOPO_DATA_DIR"), ("sweep", "TOPO_DATA_DIR"), ("data list", "TOPO_DATA_DIR"),
    ("data download", "TOPO_DATA_DIR"), ("audit", "TOPO_FOLLOW_LINKS"),
])
def test_help_shows_the_environment_variable(path, variable):
    text = " ".join(invoke(*path.split(), "--help").output.split())
    assert f"[env var: {variable}]" in text


# -- python -m topo, import cost ------------------------------------------------------
def test_python_dash_m_topo(ckpt):
    result = subprocess.run([sys.executable, "-m", "topo", "inspect", str(ckpt), "--format", "json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"epoch": 1' in result.stdout
    usage = subprocess.run([sys.executable, "-m", "topo", "inspect"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and usage.stderr.startswith("Error: Missing argument")
    assert "Usage: topo " in subprocess.run([sys.executable, "-m", "topo", "--help"], capture_output=True,
                                            text=True, timeout=120).stdout


def test_import_topo_does_not_import_click():
    code = "import sys, topo; print('click' in sys.modules, 'topo_cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "False"]


# -- long lists -----------------------------------------------------------------------
def test_long_flag_lists_in_errors_are_shortened(tmp_path):
    flags = ["--epochs", "2", "--lr", "0.5", "--seed", "3", "--hidden", "8", "--sparsity", "0.5",
             "--method", "set", "--batch-size", "16"]
    result = invoke("train", "--resume", tmp_path / "run", *flags)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"drop {shorten_list(flags[::2])}" in result.stderr
    assert "(7 in all)" in result.stderr and "--sparsity" not in result.stderr


# -- Makefile -------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("with_shared", [True, False])
def test_makefile_exports_data_dir_only_where_shared_data_exists(tmp_path, with_shared):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "Makefile", repo / "Makefile")
    if with_shared:
        (tmp_path / "shared" / "data").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("TOPO_DATA_DIR", "MAKEFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "-s", "--eval", 'show-data-dir: ; @echo "[$$TOPO_DATA_DIR]"', "show-data-dir"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    expected = f"[{tmp_path / 'shared' / 'data'}]" if with_shared else "[]"
    assert out.stdout.strip() == expected

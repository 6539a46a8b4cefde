"""The ``topo`` entry point: a click group whose subcommands load on first use.

Subcommands are imported only when they run (or when ``--help`` lists them), so
``topo --help`` starts without numpy, scipy or torch.
"""

from __future__ import annotations

import importlib
import sys

import click

from topo_cli.command import SummaryListing, usage_errors_in_one_line

#: command name -> "module:attribute" of its click command, in the order --help lists them
COMMANDS: dict[str, str] = {
    # produce networks
    "train": "topo_cli.train:train_command",
    "sweep": "topo_cli.sweep:sweep_command",
    "data": "topo_cli.data:data_group",
    # measure them
    "inspect": "topo_cli.inspect:inspect_command",
    "compare": "topo_cli.compare:compare_command",
    "distance": "topo_cli.distance:distance_command",
    "hubs": "topo_cli.hubs:hubs_command",
    "drift": "topo_cli.drift:drift_command",
    "features": "topo_cli.features:features_command",
    "predict": "topo_cli.predict:predict_group",
    "audit": "topo_cli.audit:audit_command",
    # show and share them
    "plot": "topo_cli.plot:plot_group",
    "report": "topo_cli.report:report_command",
    "export": "topo_cli.export:export_command",
}


class TopoGroup(SummaryListing):
    """A group that imports subcommands lazily and turns library and usage errors into one line."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy_commands) + sorted(set(super().list_commands(ctx)) - set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str):
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def make_context(self, info_name, args, parent=None, **extra):
        with usage_errors_in_one_line():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context):
        from topo_cli.errors import user_errors_as_click

        with usage_errors_in_one_line(), user_errors_as_click():
            return super().invoke(ctx)


#: the --help epilog: how to turn on shell completion (click's own, through _TOPO_COMPLETE)
COMPLETION_HELP = """\b
Shell completion, one line in the shell's startup file:
  bash  eval "$(_TOPO_COMPLETE=bash_source topo)"            in ~/.bashrc
  zsh   eval "$(_TOPO_COMPLETE=zsh_source topo)"             in ~/.zshrc
  fish  _TOPO_COMPLETE=fish_source topo | source             in ~/.config/fish/config.fish
"""


@click.group(
    cls=TopoGroup, lazy_commands=COMMANDS, epilog=COMPLETION_HELP,
    # help wider than click's 80 columns where the terminal allows, so summaries fit on one line
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(package_name="topo-toolkit", prog_name="topo")
def main() -> None:
    """topo: measure the connectivity of sparse neural networks.

    Reads checkpoints (topo's own, and other libraries' where supported), views every
    weight mask as a layer of a layered directed graph, and measures it: fan-in and
    its coefficient of variation, hubs, topology distances, drift.

    Run `topo COMMAND --help` for a command's options.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``topo train``: train a sparse MLP and write a run folder of checkpoints."""

from __future__ import annotations

import sys

import click

from topo.errors import TopoError, shorten_list
from topo.training.config import OPTION_GROUPS, TrainConfig, methods_taking, training_options
from topo.training.schema import OptionError, OptionField, check_value, describe_range, flag_name, value_type
from topo_cli import messages
from topo_cli.command import GroupedOption, TopoCommand
from topo_cli.options import DATA_DIR_ENVVAR

_METHOD_GROUPS = ("Method", "Method options")


class _OptionType(click.ParamType):
    """A training option's value from the command line, checked by the option's schema.

    A bad value is a usage error (exit 2) naming the flag and what is wrong.
    """

    def __init__(self, item: OptionField) -> None:
        self.item = item
        self.inner, _ = value_type(item.type)
        self.name = getattr(self.inner, "__name__", "value")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        allowed = self.item.spec.allowed()
        if allowed is not None:
            return "[" + "|".join(allowed) + "]"
        if self.item.spec.metavar:
            return self.item.spec.metavar
        return {int: "INTEGER", float: "FLOAT"}.get(self.inner, "TEXT")

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        allowed = self.item.spec.allowed() or ()
        return [CompletionItem(c) for c in allowed if c.startswith(incomplete)]

    def convert(self, value, param, ctx):
        spec = self.item.spec
        if isinstance(value, str) and spec.parse is None and self.inner in (int, float):
            try:
                value = self.inner(value)
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.inner is int else 'a number'}", param, ctx)
        try:
            if isinstance(value, str) and spec.parse is not None:
                value = spec.parse(value)
            check_value(self.item.name, self.item.type, spec, value)
        except OptionError as exc:
            # the library names the configuration field; click names the flag before this
            self.fail(exc.problem, param, ctx)
        return value


def _help(item: OptionField) -> str:
    text = item.spec.help
    where = describe_range(item.spec)
    if where and value_type(item.type)[0] is float:
        text += f" Range {where}."
    if item.spec.group in _METHOD_GROUPS and item.name != "method":
        takers = methods_taking(item.name)
        if takers:
            text += f" Used by: {', '.join(takers)}."
    return text


#: training options that an environment variable also sets (the library reads it too)
_ENVVARS = {"data_dir": DATA_DIR_ENVVAR}


def _click_option(item: OptionField) -> click.Option:
    """The click option of one training option, generated from its schema."""
    if value_type(item.type)[0] is bool:
        flags = [item.flag] if not item.default else [f"{item.flag}/--no-{item.flag[2:]}"]
        return GroupedOption([*flags, item.name], is_flag=True, default=bool(item.default), help=_help(item),
                             help_group=item.spec.group)
    # a tuple default (widths) is given as the text a user would type, so --help shows it so
    default = ",".join(str(v) for v in item.default) if isinstance(item.default, tuple) else item.default
    envvar = _ENVVARS.get(item.name)
    return GroupedOption(
        [item.flag, item.name], type=_OptionType(item), default=default, show_default=default is not None,
        help=_help(item), help_group=item.spec.group, envvar=envvar, show_envvar=envvar is not None,
    )


_CLI_OPTIONS = [item for item in training_options() if item.spec.cli]
_CLI_NAMES = {item.name for item in _CLI_OPTIONS}
#: options that --resume accepts besides itself (the rest come from the run's run.json)
_RESUME_OPTIONS = {"resume"} | {item.name for item in _CLI_OPTIONS if item.spec.with_resume}


def _summary_line(record: dict, total_epochs: int) -> str:
    def pct(value):
        return "-" if value is None else f"{100 * value:.2f}%"

    loss = record.get("train_loss")
    parts = [
        f"epoch {record['epoch']:>{len(str(total_epochs))}}/{total_epochs}",
        f"loss {loss:.4f}" if loss is not None else "loss -",
        f"val {pct(record.get('val_acc'))}",
        f"test {pct(record.get('test_acc'))}",
        f"density {record.get('density', float('nan')):.4f}",
    ]
    if record.get("mask_updates"):
        count = record["mask_updates"]
        parts.append(f"{count} mask update{'' if count == 1 else 's'}")
    if record.get("masks_changed_after_epoch"):
        parts.append("masks changed")
    parts.append(f"{record.get('epoch_time', 0.0):.2f}s")
    return "  ".join(parts)


@click.command("train", cls=TopoCommand, group_order=OPTION_GROUPS,
               params=[_click_option(item) for item in _CLI_OPTIONS])
@click.option("--resume", type=click.Path(file_okay=False, path_type=str), default=None, metavar="RUN",
              cls=GroupedOption, help_group="Run", help="Continue RUN from its last complete epoch.")
@click.pass_context
def train_command(ctx: click.Context, **options) -> None:
    """Train a sparse MLP and write a run folder of checkpoints.

    With no options: digits, MLP 64-256-256-10, 90% sparsity, ERK layer densities,
    RigL, 30 epochs. Every epoch appends to RUN/metrics.jsonl and writes
    RUN/checkpoints/epoch_NNNN.safetensors; epoch_0000 holds the initial masks.
    Progress and one line per epoch go to stderr.
    """
    from topo.training.run_folder import RunFolderTaken
    from topo.training.trainer import resume, train

    quiet = messages.level() < messages.NORMAL  # --quiet: no progress bar and no per-epoch lines
    resume_run = options.pop("resume")
    if resume_run is not None:
        given = [
            name for name in ctx.params
            if name not in _RESUME_OPTIONS
            and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            flags = shorten_list(flag_name(name) for name in given)
            raise click.UsageError(f"--resume continues with the run's own options; drop {flags}")
        total = None
    else:
        try:
            config = TrainConfig(**{item.name: options[item.name] for item in _CLI_OPTIONS}).validate()
        except OptionError as exc:
            if exc.option in _CLI_NAMES:
                raise click.BadParameter(exc.problem, param_hint=f"'{flag_name(exc.option)}'") from None
            raise click.UsageError(str(exc)) from None
        except TopoError as exc:
            raise click.UsageError(str(exc)) from None
        if config.out is None:
            from topo.training.trainer import default_run_dir

            config.out = str(default_run_dir(config))
        total = config.total_epochs

    from topo_cli.progress import progress_bar

    state = {"total": total}

    def on_epoch(record: dict) -> None:
        if not quiet:
            # sys.stderr, not click.echo: while the bar is live, rich swaps sys.stderr for a
            # proxy that prints above the bar, and click.echo would bypass it
            sys.stderr.write(_summary_line(record, state["total"] or record["epoch"]) + "\n")
            sys.stderr.flush()

    try:
        with progress_bar("training", enabled=not quiet) as progress:
            if resume_run is not None:
                from topo.checkpoint import read_run_config

                meta = read_run_config(resume_run)
                state["total"] = meta.get("total_epochs")
                result = resume(
                    resume_run, progress=progress, on_epoch=on_epoch,
                    device=options["device"] if ctx.get_parameter_source("device") == click.core.ParameterSource.COMMANDLINE else None,
                    data_dir=options["data_dir"],
                )
            else:
                result = train(config, progress=progress, on_epoch=on_epoch)
    except RunFolderTaken as exc:
        raise TopoError(f"{exc}: topo train --resume {exc.path}, or another --out") from None
    except KeyboardInterrupt:
        where = resume_run or (config.out if resume_run is None else None)
        hint = f"; continue with: topo train --resume {where}" if where else ""
        click.echo(f"Interrupted{hint}", err=True)
        sys.exit(130)

    run = result.run_dir
    last = result.metrics[-1] if result.metrics else {}
    if resume_run is not None and result.resumed_from is None:
        click.echo(f"Restarted {run} from the beginning (no epoch had completed); it now ends at epoch {result.epochs_done}.")
    elif resume_run is not None:
        click.echo(f"Resumed {run} from epoch {result.resumed_from}; it now ends at epoch {result.epochs_done}.")
    click.echo(f"Run: {run}")
    if last.get("test_acc") is not None:
        click.echo(f"Epoch {last.get('epoch')}: test accuracy {100 * last['test_acc']:.2f}%, density {last.get('density', float('nan')):.4f}")
    first = f"{run}/checkpoints/epoch_0000.safetensors"
    final = f"{run}/checkpoints/epoch_{result.epochs_done:04d}.safetensors"
    click.echo("Look at it with:")
    click.echo(f"  topo inspect {run}")
    click.echo(f"  topo compare {first} {final}")
    click.echo(f"  topo drift {run}")

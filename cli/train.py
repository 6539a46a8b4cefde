"""``topo train``: train a sparse MLP and write a run folder of checkpoints."""

from __future__ import annotations

import json
import sys

import click

#: options that --resume accepts besides itself (the rest come from the run's run.json)
_RESUME_OPTIONS = {"resume", "device", "data_dir", "quiet"}


def _density_map(text: str | None):
    if text is None:
        return None
    from topo.errors import TopoError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopoError(f"--density-map: not valid JSON ({exc.msg}); expected e.g. '{{\"fc1\": 0.2, \"fc3\": 1.0}}'") from None
    if not isinstance(value, dict):
        raise TopoError("--density-map: expected a JSON object mapping layer names or indices to densities")
    return value


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


@click.command("train")
@click.option("--dataset", default="digits", show_default=True, help="Data set name (digits, mnist, fashion-mnist, covtype, ...) or a .npz/.csv path.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=str), default=None, help="Folder with the data files (default $TOPO_DATA_DIR).")
@click.option("--hidden", default="256,256", show_default=True, help="Hidden layer widths, comma-separated.")
@click.option("--sparsity", type=float, default=0.9, show_default=True, help="Share of zero weights; 0 trains the dense baseline.")
@click.option("--density", "density_rule", type=click.Choice(["erk", "uniform"]), default="erk", show_default=True, help="How the weight budget is split over layers.")
@click.option("--density-map", default=None, help='JSON layer -> density overriding the rule, e.g. \'{"fc3": 1.0}\'.')
@click.option("--dense-output", is_flag=True, help="Keep the output layer dense.")
@click.option("--profile", default="random", show_default=True, help="Fan-in profile of the initial masks (see topo.training.profiles.PROFILES).")
@click.option("--cv", type=float, default=None, help="Target fan-in CV of a parametric --profile.")
@click.option("--hub-placement", type=click.Choice(["index", "shuffled"]), default="index", show_default=True, help="Where the largest fan-ins sit.")
@click.option("--init", "init_spec", default=None, metavar="equilibrium:RUN_OR_FILE|masks:CHECKPOINT|ws:k=K,p=P|ba:m=M", help="equilibrium:RUN_OR_FILE: lognormal fan-in per layer with the CVs of a saved equilibrium profile (topo drift); masks:CHECKPOINT: start from a saved network's masks; ws:k=K,p=P / ba:m=M: masks from a Watts-Strogatz small-world / Barabasi-Albert preferential-attachment graph per layer, each meeting the layer's budget exactly (k, m default to the budget's mean degree; p to 0.1; see topo.training.priors).")
@click.option("--method", type=click.Choice(["static", "rigl", "set", "ggr", "prune"]), default="rigl", show_default=True, help="Sparse-training algorithm.")
@click.option("--epochs", type=click.IntRange(min=0), default=30, show_default=True, help="Training epochs (prune: before pruning); 0 writes the initial checkpoint only.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True, help="Learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True, help="SGD momentum.")
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default="cosine", show_default=True, help="Learning-rate schedule over all steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=str), default=None, help="Run folder (default runs/<dataset>-<method>-<timestamp>).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default min(cores, 8)).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="STEPS", help="Also checkpoint every STEPS steps inside epochs.")
@click.option("--resume", type=click.Path(file_okay=False, path_type=str), default=None, metavar="RUN", help="Continue RUN from its last complete epoch.")
@click.option("--update-every", type=click.IntRange(min=1), default=100, show_default=True, help="rigl/ggr: steps between mask updates (ΔT).")
@click.option("--drop-fraction", type=float, default=0.3, show_default=True, help="rigl/ggr: α; set: ζ.")
@click.option("--end-fraction", type=float, default=0.75, show_default=True, help="rigl/ggr: share of steps after which masks stay fixed.")
@click.option("--explore-fraction", type=float, default=0.1, show_default=True, help="ggr: share of regrowth placed at random (β).")
@click.option("--ggr-normalise", is_flag=True, help="ggr: normalise |gradient| per layer by its mean over inactive positions.")
@click.option("--prune-class", type=click.Choice(["class-blinded", "class-uniform", "class-distribution"]), default="class-blinded", show_default=True)
@click.option("--prune-steps", type=click.IntRange(min=1), default=1, show_default=True, help="prune: reach the sparsity in this many equal steps.")
@click.option("--retrain-epochs", type=click.IntRange(min=0), default=5, show_default=True, help="prune: epochs of training after pruning, mask fixed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-epoch lines.")
@click.pass_context
def train_command(ctx: click.Context, **options) -> None:
    """Train a sparse MLP and write a run folder of checkpoints.

    With no options: digits, MLP 64-256-256-10, 90% sparsity, ERK layer densities,
    RigL, 30 epochs. Every epoch appends to RUN/metrics.jsonl and writes
    RUN/checkpoints/epoch_NNNN.safetensors; epoch_0000 holds the initial masks.
    Progress and one line per epoch go to stderr.
    """
    from topo.training.config import TrainConfig
    from topo.training.trainer import resume, train

    quiet = options.pop("quiet")
    resume_run = options.pop("resume")
    if resume_run is not None:
        given = [
            name for name in ctx.params
            if name not in _RESUME_OPTIONS
            and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise click.UsageError(f"--resume continues with the run's own options; drop {flags}")
        total = None
    else:
        config = TrainConfig(
            dataset=options["dataset"],
            data_dir=options["data_dir"],
            hidden=options["hidden"],
            sparsity=options["sparsity"],
            density=options["density_rule"],
            density_map=_density_map(options["density_map"]),
            dense_output=options["dense_output"],
            profile=options["profile"],
            cv=options["cv"],
            hub_placement=options["hub_placement"],
            init=options["init_spec"],
            method=options["method"],
            update_every=options["update_every"],
            drop_fraction=options["drop_fraction"],
            end_fraction=options["end_fraction"],
            explore_fraction=options["explore_fraction"],
            ggr_normalise=options["ggr_normalise"],
            prune_class=options["prune_class"],
            prune_steps=options["prune_steps"],
            retrain_epochs=options["retrain_epochs"],
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            lr=options["lr"],
            optimizer=options["optimizer"],
            momentum=options["momentum"],
            weight_decay=options["weight_decay"],
            schedule=options["schedule"],
            seed=options["seed"],
            device=options["device"],
            threads=options["threads"],
            out=options["out"],
            checkpoint_every=options["checkpoint_every"],
        ).validate()
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
    except KeyboardInterrupt:
        where = resume_run or (config.out if resume_run is None else None)
        hint = f"; continue with: topo train --resume {where}" if where else ""
        click.echo(f"Interrupted{hint}", err=True)
        sys.exit(130)

    run = result.run_dir
    last = result.metrics[-1] if result.metrics else {}
    if resume_run is not None:
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

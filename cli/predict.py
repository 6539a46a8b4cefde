"""``topo predict``: fit a structure-to-performance model on a sweep, and predict with it."""

from __future__ import annotations

import click

from topo_cli.command import TopoSubgroup
from topo_cli.render import emit, format_option

SECURITY_NOTE = (
    "Model files hold no pickle: they are skops files, loaded only through an allow-list of "
    "scikit-learn and numpy types, so a forged model file cannot run code. Files written by "
    "older topo versions (pickles) are refused: re-run topo predict fit."
)


class DefaultCommandGroup(TopoSubgroup):
    """A group that runs ``run`` when the first argument names no subcommand.

    ``topo predict MODEL CKPT...`` is ``topo predict run MODEL CKPT...``; a model file
    literally named ``fit`` or ``run`` needs the explicit form (``topo predict run fit ...``).
    """

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@click.group("predict", cls=DefaultCommandGroup, invoke_without_command=False)
def predict_group() -> None:
    """Predict performance from structure: `topo predict fit` a model, then `topo predict MODEL CKPT...`.

    \b
      topo predict fit runs/sweeps/s/results.csv --target test_acc -o model.skops
      topo predict model.skops runs/new-run
    \b
    `topo predict MODEL CKPT...` is short for `topo predict run MODEL CKPT...`.

    Model files hold no pickle: they are skops files, loaded only through an allow-list
    of scikit-learn and numpy types, so a forged model file cannot run code. Files
    written by older topo versions (pickles) are refused: re-run `topo predict fit`.
    """


MODEL_LABELS = {"boosting": "gradient boosting", "linear": "ridge (standardised)"}


def _r2_rows(predictor) -> list[dict]:
    chosen = MODEL_LABELS[predictor.chosen]
    labels = {
        name: label + (" (chosen)" if name == predictor.chosen else "") for name, label in MODEL_LABELS.items()
    }
    labels["density"] = "baseline: layer densities only"
    labels["shuffled"] = f"baseline: {chosen}, labels shuffled"
    order = ["boosting", "linear", "density", "shuffled"]
    return [
        {
            "model": labels.get(name, name),
            "r2": score.r2,
            "fold_mean": score.fold_mean,
            "fold_std": score.fold_std,
        }
        for name, score in sorted(predictor.cv.items(), key=lambda item: order.index(item[0]) if item[0] in order else 9)
    ]


def _warn(predictor) -> None:
    for warning in predictor.warnings:
        click.echo(f"warning: {warning}", err=True)


@predict_group.command("fit", sections={
    "Model": ["target", "folds", "seed", "trees"],
    "Features": ["checkpoint", "no_cache", "workers"],
    "Output": ["output", "fmt", "top"],
})
@click.argument("results", type=click.Path(path_type=str))
@click.option("--target", default="test_acc", show_default=True,
              help="What to predict: a results column; NAME maps to final_NAME where that column exists (test_acc -> final_test_acc).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="Model file to write (e.g. model.skops).")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="k of the k-fold cross-validation.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds the folds, the model and the shuffled control.")
@click.option("--checkpoint", type=click.Choice(["last", "first"]), default="last", show_default=True,
              help="Features of each run's final checkpoint, or of its initial masks.")
@click.option("--no-cache", is_flag=True, help="Recompute the features (default: read/update RESULTS.features.csv beside RESULTS).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Local processes for the features.")
@click.option("--trees", type=click.IntRange(min=1), default=300, show_default=True,
              help="Trees of the gradient-boosting model (learning rate 15/trees).")
@click.option("--top", type=click.IntRange(min=0), default=15, show_default=True, help="Feature importances to list.")
@format_option(("table", "json"))
def fit_command(results: str, target: str, output: str, folds: int, seed: int, checkpoint: str,
                no_cache: bool, workers: int, trees: int, top: int, fmt: str) -> None:
    """Fit a model from the structure features of a sweep's runs to TARGET.

    RESULTS is a `topo sweep` results.csv. Finished runs with a finite target are used;
    the features of each run folder's final checkpoint (see `topo features`) are cached
    in RESULTS.features.csv beside it. Prints the k-fold cross-validated R² of gradient
    boosting and of ridge regression on standardised features, and chooses the one that
    cross-validates better (never a worse one). Beside them, always, two baselines: the
    better model on the layer densities alone, and the chosen model fitted to targets
    shuffled (seeded) against the features. "structure adds" is the chosen model's R²
    minus the density-only baseline's. A best R² below 0 (worse than predicting the
    mean) is warned about on stderr. Then the boosting model's feature importances;
    writes both fitted models, the choice, the feature names and the topo version to
    OUTPUT.
    """
    from topo.predict import fit_predictor, save_predictor, sweep_training_data
    from topo_cli.progress import progress_bar

    with progress_bar("features") as progress:
        data = sweep_training_data(
            results, target=target, checkpoint=checkpoint, cache=not no_cache, workers=workers, progress=progress
        )
    predictor = fit_predictor(data.rows, data.y, target=data.target_column, folds=folds, seed=seed,
                              checkpoint=checkpoint, n_estimators=trees)
    save_predictor(predictor, output)
    scores = _r2_rows(predictor)
    importances = [{"feature": k, "importance": v} for k, v in list(predictor.importances.items())[:top]]
    if fmt == "json":
        emit([], [], fmt, json_payload={
            "model": output,
            "target": data.target_column,
            "n_runs": predictor.n_samples,
            "n_features": len(predictor.feature_names),
            "folds": predictor.folds,
            "skipped": data.skipped,
            "features_cache": None if data.cache_path is None else str(data.cache_path),
            "chosen": predictor.chosen,
            "best_r2": predictor.best_r2,
            "structure_gain": predictor.structure_gain,
            "warnings": predictor.warnings,
            "cv": {name: {"r2": s.r2, "fold_r2": s.fold_r2} for name, s in predictor.cv.items()},
            "importances": predictor.importances,
        })
        _warn(predictor)
        return
    caption = (
        f"{predictor.n_samples} runs, {len(predictor.feature_names)} features, {predictor.folds}-fold CV; "
        f"{len(data.skipped)} row(s) skipped; features {data.computed} computed"
        + (f", cache {data.cache_path}" if data.cache_path else "")
        + f"\nchosen: {MODEL_LABELS[predictor.chosen]} (R² {predictor.best_r2:.3f}); "
        + f"structure adds {predictor.structure_gain:+.3f} R² over the density-only baseline"
        + f"\nmodel written to {output}"
    )
    emit(scores, ["model", "r2", "fold_mean", "fold_std"], fmt,
         title=f"cross-validated R² for {data.target_column}",
         headers={"r2": "R² (pooled)", "fold_mean": "R² fold mean", "fold_std": "fold std"}, caption=caption)
    if importances:
        emit(importances, ["feature", "importance"], fmt, title="feature importances",
             caption="gradient boosting, impurity-based")
    _warn(predictor)


@predict_group.command("run")
@click.argument("model", type=click.Path(path_type=str))
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--baseline", is_flag=True, help="Predict with the ridge model instead of the model chosen by cross-validation.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Local processes for the features.")
@format_option()
def run_command(model: str, checkpoints: tuple[str, ...], baseline: bool, workers: int, fmt: str) -> None:
    """Predict MODEL's target for each of CHECKPOINTS (checkpoint files or run folders).

    Uses the model that cross-validated better when it was fitted (see `topo predict
    fit`); warns on stderr where that model's cross-validated R² was below 0. Model files
    hold no pickle and are loaded through an allow-list of types.
    """
    from topo.predict import load_predictor, predict

    predictor = load_predictor(model)
    values = predict(predictor, list(checkpoints), baseline=baseline, workers=workers)
    column = f"predicted_{predictor.target}"
    rows = [{"checkpoint": c, column: float(v)} for c, v in zip(checkpoints, values)]
    used = "linear" if baseline else predictor.chosen
    score = predictor.cv.get(used)
    caption = f"model {model}: {MODEL_LABELS[used]}" + (
        f", cross-validated R² {score.r2:.3f} on {predictor.n_samples} runs" if score else ""
    )
    emit(rows, ["checkpoint", column], fmt, title=f"predicted {predictor.target}", caption=caption)
    _warn(predictor)

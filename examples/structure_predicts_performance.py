"""Does a sparse network's structure predict its accuracy?  (Stier, Darji and Granitzer 2021)

Stier et al. build sparse networks from random graphs (priors from network theory)
and predict their accuracy from structural properties alone, with R² up to 0.81 for
recurrent networks learning the Reber grammar. topo trains feed-forward networks, so
this study repeats the idea in its feed-forward form:

1. a ``topo sweep`` of small sparse MLPs (digits by default, ``--dataset`` for MNIST,
   Fashion-MNIST or the covtype sample): initial structure from random-graph
   priors (Watts-Strogatz lattice and fully rewired, Barabási-Albert), uniform random
   masks and lognormal fan-in profiles, at several sparsities, trained statically
   and with RigL, over seeds;
2. the structure features of every network (``topo features``), from its final
   checkpoint and from its initial masks;
3. the k-fold cross-validated R² of gradient boosting from features to test accuracy,
   against a ridge baseline, a features-shuffled control and a model that sees the
   network's density alone (sparsity is the obvious driver; what does structure add?).

Writes README.md, a figure of predicted against measured accuracy, study.json and
the sweep's results.csv to the results folder.

    python examples/structure_predicts_performance.py --quick --workers 2   # ~100+ networks, minutes
    python examples/structure_predicts_performance.py --smoke               # 8 networks, seconds
    python examples/structure_predicts_performance.py --workers 2           # 300 larger networks
    python examples/structure_predicts_performance.py --dataset mnist       # the same on MNIST
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from _study import data_folder, output_folder, refuse_smoke_writes, study_mode, study_parser  # noqa: E402

STUDY = "structure_predicts_performance"
RESULTS = REPO / "examples" / "results" / STUDY

PRIORS = ["none", "ws:p=0", "ws:p=1", "ba"]
LOGNORMAL_CVS = [0.5, 1.5]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95]
METHODS = ["static", "rigl"]

MODES = {
    "smoke": {
        "base": {"hidden": [8], "epochs": 1},
        "priors": ["none", "ws:p=0", "ws:p=1", "ba"],
        "sparsities": [0.6, 0.9],
        "methods": ["static"],
        "seeds": [0],
        "cvs": [],
        "folds": 4,
        "trees": 30,
    },
    "quick": {
        "base": {"hidden": [16], "epochs": 4},
        "priors": PRIORS,
        "sparsities": SPARSITIES,
        "methods": METHODS,
        "seeds": [0, 1],
        "cvs": LOGNORMAL_CVS,
        "folds": 5,
        "trees": 300,
    },
    "full": {
        "base": {"hidden": [32, 32], "epochs": 10},
        "priors": PRIORS,
        "sparsities": SPARSITIES,
        "methods": METHODS,
        "seeds": [0, 1, 2, 3, 4],
        "cvs": LOGNORMAL_CVS,
        "folds": 5,
        "trees": 300,
    },
}

PAPER_R2 = 0.81


#: what Stier et al.'s R² was measured on, and what differs here
PAPER_SETTING = "recurrent networks learning the Reber grammar"
DATASETS = ("digits", "mnist", "fashion-mnist", "covtype")


def sweep_spec(mode: str, dataset: str = "digits") -> dict:
    """The sweep's tables: a grid over priors, plus lognormal-profile runs as includes."""
    settings = MODES[mode]
    base = {
        "dataset": dataset,
        "lr": 0.1,
        "batch_size": 64,
        "update_every": 5,
        "threads": 1,
        "device": "cpu",
        **settings["base"],
    }
    grid = {
        "init": settings["priors"],
        "sparsity": settings["sparsities"],
        "method": settings["methods"],
        "seed": settings["seeds"],
    }
    include = [
        {"profile": "lognormal", "cv": cv, "sparsity": s, "method": m, "seed": seed}
        for cv in settings["cvs"]
        for s in settings["sparsities"]
        for m in settings["methods"]
        for seed in settings["seeds"]
    ]
    name = f"structure_{mode}" if dataset == "digits" else f"structure_{mode}_{dataset}"
    return {"sweep": {"name": name}, "base": base, "grid": grid, "include": include}


def structure_label(row: dict) -> str:
    init = row.get("init")
    if init not in (None, "", "none"):
        return str(init)
    if row.get("profile") == "lognormal":
        return f"lognormal cv={float(row['cv']):g}"
    return "random"


def scores_table(scores: dict) -> list[dict]:
    return [
        {"model": name, "r2": s.r2, "fold_mean": s.fold_mean, "fold_std": s.fold_std}
        for name, s in scores.items()
    ]


def figure(path: Path, y: np.ndarray, predicted: dict[str, np.ndarray], labels: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
    kinds = sorted(set(labels))
    colours = plt.get_cmap("tab10")
    low = min(float(y.min()), *(float(v.min()) for v in predicted.values()))
    high = max(float(y.max()), *(float(v.max()) for v in predicted.values()))
    for axis, (name, values) in zip(axes, predicted.items()):
        for k, kind in enumerate(kinds):
            chosen = np.array([label == kind for label in labels])
            axis.scatter(y[chosen], values[chosen], s=16, alpha=0.75, color=colours(k), label=kind)
        axis.plot([low, high], [low, high], color="0.4", lw=1, ls="--")
        axis.set_title(name)
        axis.set_xlabel("measured test accuracy")
    axes[0].set_ylabel("predicted (out-of-fold)")
    axes[0].legend(fontsize=7, loc="upper left", title="initial structure", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def fold_interval(score) -> tuple[float, float]:
    """The 95% t interval of the mean fold R² (NaNs with fewer than 2 finite folds)."""
    from scipy import stats

    values = np.asarray(score.fold_r2, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return float(values.mean()) - half, float(values.mean()) + half


def headline_lines(mode: str, settings: dict, report: dict, dataset: str = "digits") -> list[str]:
    """The README's opening: mode, seeds, data, epochs; the verdict on R² with its 95% interval over folds."""
    _, final, final_density, _ = report["last"]
    name, best = max(((k, v) for k, v in final.cv.items() if k != "shuffled"), key=lambda kv: kv[1].r2)
    low, high = fold_interval(best)
    density = max(final_density["boosting"].r2, final_density["linear"].r2)
    word = ("reaches the paper's level" if low >= PAPER_R2 else
            "is not decided against the paper's level by these folds" if low <= PAPER_R2 <= high
            else "falls short of the paper's level")
    return [
        f"mode: {mode}, seeds: {len(settings['seeds'])}, data: {dataset}, epochs: {settings['base']['epochs']}",
        "",
        f"Verdict on \"structure predicts accuracy (R² up to {PAPER_R2})\": not testable here as published (the "
        f"paper's R² is for {PAPER_SETTING}; topo trains feed-forward networks). The feed-forward analogue on "
        f"{dataset} {word} (final checkpoint, {name}: pooled "
        f"R² {best.r2:.2f}, mean fold R² {best.fold_mean:.2f} with 95% interval {low:.2f} to {high:.2f} over "
        f"{len(best.fold_r2)} folds; density alone {density:.2f}, so structure adds {best.r2 - density:+.2f}).",
        "",
        f"What differs from the paper: Stier et al. predict the accuracy of {PAPER_SETTING}, built from "
        "random-graph priors; here the networks are sparse feed-forward MLPs "
        f"(hidden {settings['base']['hidden']}) on {dataset}, trained by {' and '.join(settings['methods'])} for "
        f"{settings['base']['epochs']} epochs from random-graph priors, uniform random masks and lognormal fan-in "
        "profiles over several sparsities, so the network's density varies too (the density-only baseline "
        "measures how much of the R² that alone explains).",
        "",
    ]


def other_datasets(results_dir: Path, dataset: str) -> list[str]:
    """Lines that point the digits README at the same study on the other data sets, where run."""
    lines = []
    for other in DATASETS:
        summary = results_dir / other / "study.json"
        if other == dataset or not summary.is_file():
            continue
        try:
            payload = json.loads(summary.read_text())
            cv = payload["last"]["cv"]
            best = max((name for name in cv if name != "shuffled"), key=lambda name: cv[name]["r2"])
            density = max(payload["last"]["density_only"][name]["r2"] for name in ("boosting", "linear"))
        except (OSError, ValueError, KeyError):
            continue
        lines.append(f"The same study on {other}: [{other}/README.md]({other}/README.md) (mode {payload.get('mode')}, "
                     f"{payload.get('networks')} networks; final checkpoint, {best}: R² {cv[best]['r2']:.2f}, "
                     f"density alone {density:.2f}).")
    return lines + [""] if lines else []


def verdict(report: dict) -> str:
    _, final, final_density, final_within = report["last"]
    _, initial, initial_density, initial_within = report["first"]
    final_scores = final.cv
    boosting = final_scores["boosting"].r2
    shuffled = final_scores["shuffled"].r2
    density = max(final_density["boosting"].r2, final_density["linear"].r2)
    lines = []
    if boosting >= 0.7:
        lines.append(
            f"**Agrees in kind** with Stier et al.: structure alone predicts accuracy well "
            f"(cross-validated R² {boosting:.2f}; their best, {PAPER_R2}, is for {PAPER_SETTING})."
        )
    elif boosting >= 0.4:
        lines.append(
            f"**Partly agrees**: structure predicts accuracy (R² {boosting:.2f}), but below the paper's {PAPER_R2} "
            f"(for {PAPER_SETTING})."
        )
    else:
        lines.append(f"**Disagrees**: structure predicts accuracy poorly here (R² {boosting:.2f} against the paper's {PAPER_R2}).")
    if shuffled < boosting - 0.2:
        lines.append(
            f"The shuffled control scores {shuffled:.2f}, so the signal is real, not an artefact of the model's capacity."
        )
    else:
        lines.append(f"The shuffled control scores {shuffled:.2f}, not clearly below the real model: the signal is weak.")
    if density >= boosting - 0.05:
        lines.append(
            f"But the network's density alone reaches R² {density:.2f}: in this design most of what the features know is "
            "the sparsity level, which sets accuracy far more than how the connections are arranged. "
            "This is the caveat to the paper's claim: a high R² over networks of different sparsity mostly measures "
            "that sparser networks do worse."
        )
    else:
        lines.append(
            f"Density alone reaches R² {density:.2f}, so the arrangement of the connections adds "
            f"{boosting - density:.2f} of explained variance beyond the sparsity level."
        )
    if final_scores["linear"].r2 >= boosting - 0.02:
        lines.append(
            f"The ridge baseline does as well (R² {final_scores['linear'].r2:.2f}): the relation is close to linear "
            "in a few features, boosting finds nothing a linear model misses."
        )
    lines.append(
        f"Within a sparsity level (accuracy minus its sparsity's mean), the final-checkpoint features explain "
        f"R² {final_within['boosting'].r2:.2f} (boosting) / {final_within['linear'].r2:.2f} (ridge) of what is left."
    )
    init_best = max(initial.cv["boosting"].r2, initial.cv["linear"].r2)
    init_density = max(initial_density["boosting"].r2, initial_density["linear"].r2)
    if init_best <= init_density + 0.02:
        lines.append(
            f"From the initial masks alone, closer to the paper's setting (structure fixed before training), the "
            f"features reach R² {init_best:.2f} against {init_density:.2f} for density alone, and "
            f"{max(initial_within['boosting'].r2, initial_within['linear'].r2):.2f} within a sparsity level: the way "
            "a prior arranges a fixed number of connections predicts little here. Static runs end with their "
            "initial masks, so the final checkpoint's extra signal comes from the RigL runs, whose final masks "
            "training has rewired: partly a trace of the outcome rather than a prior that predicts it."
        )
    else:
        lines.append(
            f"From the initial masks alone (structure fixed before training, the paper's setting) the features "
            f"reach R² {init_best:.2f} against {init_density:.2f} for density alone, and "
            f"{max(initial_within['boosting'].r2, initial_within['linear'].r2):.2f} within a sparsity level."
        )
    return " ".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(
        __doc__,
        description="paragraph",
        quick="120 networks of 16 hidden neurons x 4 epochs (minutes on 2 cores)",
        smoke="8 tiny networks x 1 epoch (seconds; a test)",
        out="sweep folder (default runs/structure_<mode>, runs/structure_<mode>_<dataset> beside digits; "
            "--smoke: a new temporary folder)",
        data_dir="folder of MNIST, Fashion-MNIST and the covtype sample (default $TOPO_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument("--workers", type=int, default=2, help="local training processes (default 2)")
    parser.add_argument("--dataset", default="digits", choices=DATASETS,
                        help="what the networks learn (default digits; the others are read from --data-dir, "
                             "and their results go to a folder of their own under the results folder)")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"where README.md and the figure go (default {RESULTS.relative_to(REPO)}; smoke: OUT/report, never examples/results/)")
    args = parser.parse_args(argv)
    mode = study_mode(args)
    settings = MODES[mode]
    if refuse_smoke_writes(STUDY, args.smoke, [args.out, args.results]):
        return 2
    # smoke: the sweep in a new temporary folder, its report inside it
    dataset = args.dataset
    spec_table = sweep_spec(mode, dataset)
    out = args.out or (output_folder(STUDY, None, smoke=True) if args.smoke
                       else Path("runs") / spec_table["sweep"]["name"])
    results_dir = args.results or (
        out / "report" if mode == "smoke" else RESULTS if dataset == "digits" else RESULTS / dataset)
    results_dir.mkdir(parents=True, exist_ok=True)
    command = "python examples/structure_predicts_performance.py" + (
        " --smoke" if args.smoke else " --quick" if args.quick else ""
    ) + ("" if dataset == "digits" else f" --dataset {dataset}") + f" --workers {args.workers}" + (
        f" --out {args.out}" if args.out else "") + (
        f" --results {args.results}" if args.results else ""
    )

    from topo.predict import cross_validate, feature_matrix, fit_predictor, sweep_training_data
    from topo.sweep import parse_sweep_spec, run_sweep

    started = time.perf_counter()
    spec = parse_sweep_spec(spec_table)
    # a --data-dir given is used as given (a wrong one is an error, not a fallback)
    data_dir = None if dataset == "digits" else data_folder(args.data_dir, existing=args.data_dir is None)
    if dataset != "digits" and (data_dir is None or not data_dir.is_dir()):
        where = "" if data_dir is None else f" {data_dir} is not a folder;"
        print(f"{STUDY}: no data folder for {dataset}:{where} give --data-dir or set $TOPO_DATA_DIR", file=sys.stderr)
        return 2
    sweep = run_sweep(spec, out=out, workers=args.workers if mode != "smoke" else 1, data_dir=data_dir,
                      progress=lambda done, total: print(f"\rtrained {done}/{total}", end="", file=sys.stderr))
    print(file=sys.stderr)
    trained = time.perf_counter() - started
    finished = sum(sweep.count(s) for s in ("done", "resumed", "skipped"))

    by_id = {row["run_id"]: row for row in sweep.rows}
    report = {}
    for checkpoint in ("last", "first"):
        data = sweep_training_data(sweep.results_csv, target="test_acc", checkpoint=checkpoint, cache=checkpoint == "last")
        predictor = fit_predictor(data.rows, data.y, target=data.target_column, folds=settings["folds"],
                                  seed=0, n_estimators=settings["trees"], checkpoint=checkpoint)
        X_density, _ = feature_matrix(data.rows, ["density"])
        density = cross_validate(X_density, data.y, folds=settings["folds"], seed=0, n_estimators=settings["trees"])
        # what structure adds beyond sparsity: accuracy minus the mean accuracy of its sparsity level
        level = np.array([float(by_id[run_id]["sparsity"]) for run_id in data.run_ids])
        residual = data.y - np.array([data.y[level == value].mean() for value in level])
        X_all, _ = feature_matrix(data.rows, predictor.feature_names)
        within = cross_validate(X_all, residual, folds=settings["folds"], seed=0, n_estimators=settings["trees"])
        report[checkpoint] = (data, predictor, density, within)
    elapsed = time.perf_counter() - started

    data, predictor, density, within = report["last"]
    labels = [structure_label(by_id[run_id]) for run_id in data.run_ids]
    figure_path = results_dir / "predicted_vs_measured.png"
    figure(
        figure_path,
        data.y,
        {
            f"gradient boosting (R² {predictor.cv['boosting'].r2:.2f})": predictor.cv["boosting"].predictions,
            f"ridge baseline (R² {predictor.cv['linear'].r2:.2f})": predictor.cv["linear"].predictions,
        },
        labels,
        f"{len(data.y)} sparse MLPs on {dataset}: {settings['folds']}-fold out-of-fold predictions from final-checkpoint structure",
    )

    accuracies = data.y
    payload = {
        "command": command,
        "mode": mode,
        "dataset": dataset,
        "networks": len(sweep.rows),
        "finished": finished,
        "used": int(len(data.y)),
        "skipped": data.skipped,
        "train_seconds": round(trained, 1),
        "total_seconds": round(elapsed, 1),
        "accuracy": {"min": float(accuracies.min()), "max": float(accuracies.max()), "mean": float(accuracies.mean())},
        "paper_r2": PAPER_R2,
    }
    for checkpoint, (d, p, dens, wit) in report.items():
        payload[checkpoint] = {
            "within_sparsity": {name: {"r2": s.r2, "fold_r2": s.fold_r2} for name, s in wit.items()},
            "cv": {name: {"r2": s.r2, "fold_r2": s.fold_r2} for name, s in p.cv.items()},
            "density_only": {name: {"r2": s.r2, "fold_r2": s.fold_r2} for name, s in dens.items() if name != "shuffled"},
            "n_features": len(p.feature_names),
            "importances": dict(list(p.importances.items())[:15]),
        }
    (results_dir / "study.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    shutil.copyfile(sweep.results_csv, results_dir / "results.csv")

    lines = [
        "# Structure predicts performance (Stier et al. 2021), repeated with topo",
        "",
        *headline_lines(mode, settings, report, dataset),
        *other_datasets(results_dir, dataset),
        "```",
        command,
        "```",
        "",
        f"{len(sweep.rows)} sparse MLPs ({dataset}, hidden {settings['base']['hidden']}, {settings['base']['epochs']} epochs; "
        f"initial structure {', '.join(settings['priors'])}"
        + (f", lognormal fan-in cv {', '.join(f'{c:g}' for c in settings['cvs'])}" if settings["cvs"] else "")
        + f"; sparsity {', '.join(f'{s:g}' for s in settings['sparsities'])}; {', '.join(settings['methods'])}; "
        f"seeds {', '.join(map(str, settings['seeds']))}), {finished} finished, {len(data.y)} used. "
        f"Test accuracy {accuracies.min():.3f} to {accuracies.max():.3f} (mean {accuracies.mean():.3f}). "
        f"This invocation trained {sweep.count('done') + sweep.count('resumed')} of them and reused "
        f"{sweep.count('skipped')} finished earlier; its training took {trained:.0f} s, everything {elapsed:.0f} s "
        f"({args.workers if mode != 'smoke' else 1} worker(s), 1 torch thread each).",
        "",
        f"Cross-validated R² ({settings['folds']}-fold; pooled out-of-fold predictions, and the mean ± std over folds) "
        "of predicting final test accuracy from the structure features:",
        "",
        "\"Within sparsity\" predicts accuracy minus the mean accuracy of the run's sparsity level, "
        "so it measures what the structure tells beyond how sparse the network is.",
        "",
        "| features from | model | R² | R² per fold |",
        "|:---|:---|---:|---:|",
    ]
    names = {"boosting": "gradient boosting", "linear": "ridge, standardised", "shuffled": "chosen model, labels shuffled (control)",
             "density": "layer densities only, better model (baseline)"}
    for checkpoint, (d, p, dens, wit) in report.items():
        where = "final checkpoint" if checkpoint == "last" else "initial masks"
        for name, s in p.cv.items():
            lines.append(f"| {where} | {names[name]} | {fmt(s.r2)} | {fmt(s.fold_mean)} ± {fmt(s.fold_std)} |")
        for name in ("boosting", "linear"):
            s = dens[name]
            lines.append(f"| {where} | density alone, {names[name].split(',')[0]} | {fmt(s.r2)} | {fmt(s.fold_mean)} ± {fmt(s.fold_std)} |")
        for name in ("boosting", "linear", "shuffled"):
            s = wit[name]
            lines.append(f"| {where} | within sparsity: {names[name]} | {fmt(s.r2)} | {fmt(s.fold_mean)} ± {fmt(s.fold_std)} |")
    lines += [
        "",
        "![predicted against measured accuracy](predicted_vs_measured.png)",
        "",
        "Most important features (gradient boosting, final checkpoint, impurity-based): "
        + ", ".join(f"`{k}` {v:.2f}" for k, v in list(predictor.importances.items())[:8])
        + ".",
        "",
        "## Verdict",
        "",
        verdict(report),
        "",
        f"Stier et al. report R² up to {PAPER_R2} for structure-to-accuracy prediction of {PAPER_SETTING}. "
        "Features are those of `topo features` (degree moments and CVs, dead neurons, input-output path counts, "
        "reachability, spectral radii, bipartite clustering, betweenness); the models and the control are those of "
        "`topo predict fit`. study.json holds every figure; results.csv is the sweep's table.",
        "",
    ]
    (results_dir / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"\nwrote {results_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Study: RigL drifts to a characteristic fan-in distribution; start there instead of ERK.

Two parts (issue 7, study 3):

1. **Drift.** RigL (Evci et al., 2020) is trained from several initial masks at the
   same sparsity: ``random`` (uniform layer densities, uniform placement),
   ``erk`` (ERK densities, uniform placement) and ERK densities with structured fan-in
   profiles (``constant``, ``lognormal`` at CV 0.5 and 2.0, ``step``). For every run
   :func:`topo.analysis.drift.drift` measures how each layer's normalised fan-in
   distribution moves toward the run's own equilibrium (its last checkpoints) and,
   with ``equilibrium=<the erk run>``, toward one common equilibrium. The claim is
   that all starts end at a similar distribution: the final fan-in CVs of the starts
   agree per layer, and the Wasserstein-1 distance (on fan-in / mean fan-in) between
   the starts' final distributions is much smaller than between their initial ones.
2. **Equilibrium initialisation.** The lognormal fit of the erk run's equilibrium is
   written as a profile file (:func:`topo.runs.save_profile`) and RigL is
   started from it (``TrainConfig(init="equilibrium:<file>")``: ERK densities,
   lognormal fan-in with the equilibrium's CV per layer) against RigL from plain ERK,
   both on the same seeds (same data order), compared by a paired t-test
   (:func:`scipy.stats.ttest_rel`), Welch's t-test (:func:`scipy.stats.ttest_ind`)
   and Cohen's d. Reported: +0.16% on Fashion-MNIST (p = 0.036, d = 1.07), +0.43% on
   EMNIST, +0.49% on Forest Cover.

Modes: full (default; Fashion-MNIST, EMNIST where present, covtype, digits; 10 seeds;
about an hour on one core), ``--quick`` (about 3 minutes: digits and the covtype
sample, 5 seeds) and ``--smoke`` (seconds, for the test suite). RigL updates
its masks every ``update_every`` steps (default 100); the small data sets have only
tens of steps per epoch, so this study uses a smaller interval there (see the table
of settings in the README it writes, or ``--update-every``).

Usage::

    python examples/rigl_equilibrium.py --quick [--data-dir DIR] [--out DIR]

Results go to ``examples/results/rigl_equilibrium/`` (README.md, results.csv,
pairwise_w1.csv, *.png); the training runs go to ``<out>/runs/`` (git-ignored) and are
reused when the script runs again.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from _study import (cohens_d, data_folder, load_datasets, markdown_table, pct,  # noqa: E402
                    progress_log, study_folders, study_mode, study_parser, welch_p, write_csv)  # noqa: E402

STUDY = "rigl_equilibrium"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "results" / STUDY
DPI = 100
TOLERANCE = 0.05  # W1 on normalised fan-in within which a layer counts as converged
LAST_K = 3  # checkpoints pooled for a run's equilibrium

#: initial masks RigL starts from: density rule, fan-in profile, CV
STARTS: dict[str, dict[str, Any]] = {
    "random": {"density": "uniform", "profile": "random", "cv": None},
    "erk": {"density": "erk", "profile": "random", "cv": None},
    "constant": {"density": "erk", "profile": "constant", "cv": None},
    "lognormal-0.5": {"density": "erk", "profile": "lognormal", "cv": 0.5},
    "lognormal-2.0": {"density": "erk", "profile": "lognormal", "cv": 2.0},
    "step-1.5": {"density": "erk", "profile": "step", "cv": 1.5},
}

#: what the paper reports for the equilibrium initialisation against ERK
PAPER = {
    "fashion-mnist": "+0.16% (p = 0.036, d = 1.07)",
    "emnist-balanced": "+0.43%",
    "covtype": "+0.49% (Forest Cover)",
}


@dataclass
class Mode:
    name: str
    drift_datasets: tuple[str, ...]
    compare_datasets: tuple[str, ...]
    hidden: tuple[int, ...]
    sparsity: float
    epochs: dict[str, int]
    update_every: dict[str, int]
    seeds: tuple[int, ...]
    starts: tuple[str, ...] = tuple(STARTS)
    drift_seed: int = 0
    per_run_drift_figures: int = 1  # data sets (first ones) that get one drift figure per run
    drift_figure_starts: tuple[str, ...] | None = None  # the starts that get one (default all)
    batch_size: int = 64
    notes: list[str] = field(default_factory=list)


def make_mode(name: str) -> Mode:
    if name == "smoke":
        return Mode(
            name="smoke", drift_datasets=("digits",), compare_datasets=("digits",), hidden=(16, 16),
            sparsity=0.9, epochs={"digits": 1}, update_every={"digits": 2}, seeds=(1,),
            starts=("random", "erk", "lognormal-2.0"), drift_figure_starts=("erk",),
        )
    if name == "quick":
        return Mode(
            name="quick", drift_datasets=("digits", "covtype"), compare_datasets=("digits", "covtype"),
            hidden=(256, 256), sparsity=0.9, epochs={"digits": 40, "covtype": 15},
            update_every={"digits": 5, "covtype": 20}, seeds=(1, 2, 3, 4, 5),
        )
    return Mode(
        name="full",
        drift_datasets=("fashion-mnist", "emnist-balanced", "covtype", "digits"),
        compare_datasets=("fashion-mnist", "emnist-balanced", "covtype", "digits"),
        hidden=(256, 256), sparsity=0.9,
        epochs={"fashion-mnist": 30, "emnist-balanced": 30, "covtype": 40, "digits": 60},
        update_every={"fashion-mnist": 100, "emnist-balanced": 100, "covtype": 40, "digits": 5},
        seeds=tuple(range(1, 11)),
    )


# -- small helpers -------------------------------------------------------------------
def paired_stats(treated: list[float], control: list[float]) -> dict[str, float]:
    """Mean difference, paired and Welch t-tests (two-sided) and Cohen's d (pooled SD)."""
    from scipy import stats

    a, b = np.asarray(treated, float), np.asarray(control, float)
    out = {"n": len(a), "mean_treated": float(a.mean()), "mean_control": float(b.mean()),
           "diff": float(a.mean() - b.mean()), "p_paired": math.nan, "p_welch": welch_p(a, b),
           "d": cohens_d(a, b), "d_z": math.nan}
    if len(a) >= 2:
        with np.errstate(all="ignore"):
            out["p_paired"] = float(stats.ttest_rel(a, b).pvalue)
            sd_diff = float(np.std(a - b, ddof=1))
            out["d_z"] = out["diff"] / sd_diff if sd_diff > 0 else math.nan
    return out


# -- the study ------------------------------------------------------------------------
def rigl_config(mode: Mode, dataset: str, seed: int, **masks) -> "Any":
    from topo.training.config import TrainConfig

    return TrainConfig(
        dataset=dataset, hidden=mode.hidden, sparsity=mode.sparsity, method="rigl",
        update_every=mode.update_every[dataset], epochs=mode.epochs[dataset], batch_size=mode.batch_size,
        seed=seed, threads=1, **masks,
    )


def drift_part(mode, name, dataset, runs, out, log):
    """Train RigL from every start; drift per run and toward the erk run's equilibrium."""
    from topo.analysis.drift import drift
    from topo.plotting import drift_figure, fanin_figure
    from topo.plotting import drift_overview, fanin_ridge, save_figure
    from topo.runs import load_run
    from topo.training.trainer import train_or_resume

    run_dirs, results, to_common, tops = {}, {}, {}, {}
    rows = []
    for start in mode.starts:
        config = rigl_config(mode, name, mode.drift_seed, **STARTS[start])
        run_dir = runs / name / f"drift-{start}-s{mode.drift_seed}"
        result, how = train_or_resume(config, run_dir, dataset=dataset, replace_other=True)
        records = result.metrics
        log(f"{name} drift {start}: {how}, test acc {records[-1]['test_acc']:.4f}")
        run_dirs[start] = run_dir
        tops[start] = load_run(run_dir)
        results[start] = drift(tops[start], last_k=LAST_K, tolerance=TOLERANCE)
        rows.append({"part": "drift", "dataset": name, "arm": start, "seed": mode.drift_seed,
                     "test_acc": records[-1]["test_acc"], "records": records})
    reference = run_dirs["erk"]
    for start in mode.starts:
        # the erk run's last LAST_K checkpoints are the common equilibrium
        to_common[start] = drift(tops[start], equilibrium=tops["erk"], equilibrium_source=str(reference),
                                 last_k=LAST_K, tolerance=TOLERANCE)
    layers = results["erk"].layers
    epochs = [float(e) for e in results["erk"].epochs]

    # figures: the erk run's ridge plot, one drift figure per run, one overview per layer
    files = []
    hidden = layers[:-1] or layers  # the output layer is nearly dense under ERK: tables only
    path = out / f"fanin_ridge_{name}_erk.png"
    fanin_figure(run_dirs["erk"], layers=hidden, max_rows=9, path=path, dpi=DPI,
                 title=f"{name}: fan-in over RigL training from ERK")
    files.append(path)
    if name in mode.drift_datasets[: mode.per_run_drift_figures]:
        for start in mode.drift_figure_starts or mode.starts:
            path = out / f"drift_{name}_{start}.png"
            drift_figure(results[start], path=path, dpi=DPI, title=f"{name}: RigL from {start}")
            files.append(path)
    for j, layer in enumerate(layers):
        if layer not in hidden:
            continue
        fig = drift_overview(
            epochs,
            {s: results[s].cv[:, j] for s in mode.starts},
            distances={s: to_common[s].wasserstein[:, j] for s in mode.starts},
            turnover={s: results[s].turnover[:, j] for s in mode.starts},
            tolerance=TOLERANCE,
            title=f"{name}, layer {layer}: RigL from each start (W1 to the erk run's equilibrium)",
        )
        fig.axes[0].set_title("Fan-in CV")
        fig.axes[1].set_title("W1 to the erk run's equilibrium")
        path = out / f"starts_{name}_{layer}.png"
        save_figure(fig, path, dpi=DPI)
        files.append(path)
    for when, index in (("initial", 0), ("final", -1)):
        fan_ins = {layer: [tops[s][index][layer].fan_in for s in mode.starts] for layer in hidden}
        path = out / f"fanin_by_start_{name}_{when}.png"
        fanin_ridge(fan_ins, list(mode.starts), path=path, dpi=DPI,
                    title=f"{name}: {when} fan-in of each start (epoch {tops['erk'][index].epoch})")
        files.append(path)

    # W1 between the starts' initial and final distributions (normalised fan-in)
    pairwise = []
    for a in mode.starts:
        for b in mode.starts:
            if a >= b:
                continue
            initial = drift([tops[a][0]], equilibrium=[tops[b][0]], last_k=1)
            final = drift([tops[a][-1]], equilibrium=[tops[b][-1]], last_k=1)
            for j, layer in enumerate(layers):
                pairwise.append({"dataset": name, "layer": layer, "start_a": a, "start_b": b,
                                 "w1_initial": float(initial.wasserstein[0, j]),
                                 "w1_final": float(final.wasserstein[0, j])})
    for row in rows:
        start = row["arm"]
        res = results[start]
        for j, layer in enumerate(layers):
            row[f"initial_cv_{layer}"] = float(res.cv[0, j])
            row[f"final_cv_{layer}"] = float(res.cv[-1, j])
            row[f"lognormal_cv_{layer}"] = float(res.equilibrium_fit[layer]["cv"])
            at = res.convergence[j]
            row[f"converged_epoch_{layer}"] = "" if at is None else res.epochs[at]
            row[f"w1_to_erk_eq_{layer}"] = float(to_common[start].wasserstein[-1, j])
            for at in _milestones(res.epochs):
                row[f"cv_{layer}_epoch{res.epochs[at]}"] = float(res.cv[at, j])
    return {"rows": rows, "pairwise": pairwise, "files": files, "layers": layers,
            "reference": reference, "erk_result": results["erk"], "results": results}


def _milestones(epochs) -> list[int]:
    """Checkpoint indices of epochs 0, 1, a quarter, half and all of training."""
    last = len(epochs) - 1
    wanted = sorted({0, min(1, last), last // 4, last // 2, last})
    return wanted


def compare_part(mode, name, dataset, runs, out, reference_result, reference_dir, log):
    """RigL from the erk run's equilibrium profile against RigL from ERK, paired by seed."""
    from topo.runs import read_profile, save_profile
    from topo.training.trainer import train_or_resume

    profile_path = runs / name / "equilibrium_profile.json"
    save_profile(reference_result, profile_path)
    profile = read_profile(profile_path)
    arms = {"erk": {"density": "erk", "profile": "random"},
            "equilibrium": {"density": "erk", "init": f"equilibrium:{profile_path.resolve()}"}}
    rows, acc = [], {arm: [] for arm in arms}
    for seed in mode.seeds:
        for arm, options in arms.items():
            config = rigl_config(mode, name, seed, **options)
            result, how = train_or_resume(config, runs / name / f"compare-{arm}-s{seed}", dataset=dataset, replace_other=True)
            records = result.metrics
            log(f"{name} compare {arm} seed {seed}: {how}, test acc {records[-1]['test_acc']:.4f}")
            acc[arm].append(float(records[-1]["test_acc"]))
            rows.append({"part": "compare", "dataset": name, "arm": arm, "seed": seed,
                         "test_acc": records[-1]["test_acc"],
                         "best_val_acc": max(r["val_acc"] for r in records if r.get("val_acc") is not None),
                         **{f"initial_cv_{l}": c for l, c in zip(profile, records[0]["fan_in_cv"])},
                         **{f"final_cv_{l}": c for l, c in zip(profile, records[-1]["fan_in_cv"])}})
    # seed-to-seed spread: W1 of each ERK-arm run's final fan-in to the reference run's equilibrium
    from topo.analysis.drift import drift
    from topo.runs import load_run

    reference = load_run(reference_dir, last_k=LAST_K)
    spread = np.array([drift(load_run(runs / name / f"compare-erk-s{seed}", last_k=1), equilibrium=reference,
                             last_k=LAST_K).wasserstein[-1] for seed in mode.seeds])
    return {"rows": rows, "stats": paired_stats(acc["equilibrium"], acc["erk"]), "profile": profile,
            "accuracies": acc, "seed_spread": spread}


# -- the report -------------------------------------------------------------------------
def drift_verdict(pairs: list[dict], rows: list[dict], layers: list[str], spread) -> tuple[str, str, list[str]]:
    """Agreement rule, on the hidden layers.

    A start *reaches* the common equilibrium when its final W1 distance to the erk run's
    equilibrium is within the seed-to-seed spread (the largest such distance of the
    comparison's ERK runs, other seeds of the same start) in every hidden layer; without
    a spread, within the convergence tolerance. *yes*: every start reaches it; *partly*:
    the starts' mean pairwise W1 shrinks over training but some do not reach it; *no*:
    it does not shrink.
    """
    hidden = layers[:-1] or layers
    initial = float(np.mean([p["w1_initial"] for p in pairs if p["layer"] in hidden])) if pairs else math.nan
    final = float(np.mean([p["w1_final"] for p in pairs if p["layer"] in hidden])) if pairs else math.nan
    bounds = {l: (float(np.max(spread[:, j])) if spread is not None else TOLERANCE) for j, l in enumerate(layers)}
    reached = [r["arm"] for r in rows if all(r[f"w1_to_erk_eq_{l}"] <= bounds[l] for l in hidden)]
    near = [r["arm"] for r in rows if r["arm"] not in reached
            and all(r[f"w1_to_erk_eq_{l}"] <= 2 * bounds[l] for l in hidden)]
    missed = [r["arm"] for r in rows if r["arm"] not in reached]
    beyond = [a for a in missed if a not in near]
    shrink = final / initial if initial > 0 else math.nan
    if not math.isfinite(shrink):
        verdict = "n/a"
    elif not missed:
        verdict = "yes"
    elif shrink < 1.0:
        verdict = "partly"
    else:
        verdict = "no"
    cvs = {l: [r[f"final_cv_{l}"] for r in rows] for l in hidden}
    text = "; ".join(f"{l} final CV {min(v):.2f}-{max(v):.2f}" for l, v in cvs.items())
    text += f"; mean pairwise W1 {initial:.2f} -> {final:.2f}"
    what = "seed-to-seed spread" if spread is not None else f"tolerance {TOLERANCE}"
    text += f"; W1 to the erk run's equilibrium within the {what}: {', '.join(reached) or 'none'}"
    if near:
        text += f"; within twice it: {', '.join(near)}"
    if beyond:
        text += f"; beyond: {', '.join(beyond)}"
    return verdict, text, missed


def compare_verdict(s: dict) -> str:
    if s["n"] < 2 or not math.isfinite(s["p_paired"]):
        return "n/a (fewer than 2 seeds)"
    if s["diff"] > 0 and s["p_paired"] < 0.05:
        return "yes"
    if s["diff"] > 0:
        return "direction only (not significant)"
    return "no"


def write_report(mode, argv, out, drift_out, compare_out, skipped, elapsed, counts):
    from topo.checkpoint import atomic_write_text

    command = shlex.join(["python", "examples/rigl_equilibrium.py", *argv])
    lines = ["# rigl_equilibrium: RigL fan-in equilibrium and equilibrium-matched initialisation", "",
             f"Command: `{command}`", ""]
    settings = [[n, mode.epochs[n], mode.update_every[n]] for n in dict.fromkeys(mode.drift_datasets + mode.compare_datasets) if n in mode.epochs]
    lines += [
        f"Mode **{mode.name}**: MLP hidden {'-'.join(map(str, mode.hidden))}, sparsity {mode.sparsity:.0%}, RigL "
        f"(drop fraction 0.3, cosine decay, end at 75% of training), SGD momentum 0.9, cosine LR 0.05, batch {mode.batch_size}, "
        f"threads=1. Drift runs: seed {mode.drift_seed}, starts {', '.join(mode.starts)} (one seed per start: "
        "whether a start reached the equilibrium is judged against the seed-to-seed spread of the comparison's "
        "ERK runs, below). "
        f"Comparison: seeds {', '.join(map(str, mode.seeds))} ({len(mode.seeds)} per arm, paired by seed). "
        f"Wall time of this invocation: {elapsed / 60:.1f} min ({counts.get('trained', 0)} runs trained, "
        f"{counts.get('reused', 0)} reused, {counts.get('resumed', 0)} resumed).",
        "",
        markdown_table(["data set", "epochs", "RigL update every (steps)"], settings),
        "",
        "RigL's default update interval is 100 steps; digits (21 steps per epoch) and the covtype sample "
        "(169 steps per epoch) would get only a handful of mask updates with it, so the small data sets use the "
        "shorter intervals above.",
        "",
    ]
    if skipped:
        lines += ["Skipped data sets: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + ".", ""]
    if any(n.startswith("emnist") for n in skipped) or "emnist-balanced" not in mode.compare_datasets:
        lines += ["EMNIST is not available offline here (see ../shared/data/README.md), so the paper's EMNIST "
                  "figure is not checked" + (" in this mode." if mode.name != "full" else "."), ""]

    claim_rows = []
    for name, d in drift_out.items():
        spread = compare_out[name]["seed_spread"] if name in compare_out and len(mode.seeds) > 1 else None
        verdict, text, _ = drift_verdict(d["pairwise"], d["rows"], d["layers"], spread)
        claim_rows.append([f"RigL from different starts converges to a characteristic fan-in distribution ({name})",
                           "all starts drift to one distribution", f"{text} ({mode.name}, 1 seed, {mode.epochs[name]} epoch{'s' if mode.epochs[name] != 1 else ''})",
                           verdict])
    for name, c in compare_out.items():
        s = c["stats"]
        source = "" if name != "covtype" else f" [{Path(c.get('source', '')).name}]"
        claim_rows.append([
            f"Lognormal init matched to the equilibrium beats ERK ({name}{source})",
            PAPER.get(name, "not in the paper"),
            f"{pct(s['diff'])} ({100 * s['mean_treated']:.2f}% vs {100 * s['mean_control']:.2f}%), paired p = {s['p_paired']:.3g}, "
            f"Welch p = {s['p_welch']:.3g}, d = {s['d']:.2f} ({mode.name}, {s['n']} seeds, {mode.epochs[name]} epoch{'s' if mode.epochs[name] != 1 else ''})",
            compare_verdict(s),
        ])
    if "emnist-balanced" not in compare_out:
        claim_rows.append(["Lognormal init matched to the equilibrium beats ERK (EMNIST)", PAPER["emnist-balanced"],
                           "not run: EMNIST is not available offline", "n/a"])
    lines += ["## Claims", "", markdown_table(["claim", "paper", "topo (setting)", "agrees?"], claim_rows), ""]
    lines += [
        "Rules for the *agrees?* column. Drift (hidden layers, W1 on fan-in / mean fan-in): a start reaches the "
        "common equilibrium when its final distribution is as close to the erk run's equilibrium as other seeds of "
        "the erk start are (the largest W1 of the comparison's ERK runs, table below); *yes* when every start "
        "reaches it, *partly* when the starts' mean pairwise W1 shrinks over training but some do not, *no* "
        "otherwise. Every run reaches its *own* equilibrium by construction (RigL stops changing masks after 75% "
        "of training, and the equilibrium is the last checkpoints), so the convergence epochs below only say when "
        "each layer stopped moving. The random start has uniform layer densities, so its mean fan-in per layer "
        "differs from the ERK starts' and its CV is expected to differ even at an equilibrium (fewer inputs per "
        "neuron give a larger relative spread). How to read the CV table below: a start whose CV stays put after "
        "the first epoch while a large share of its mask keeps moving has reached a stationary distribution of its "
        "own rather than drifting slowly toward the common one. Initialisation: *yes* when the mean gain is positive with paired p < 0.05 (two-sided); "
        "*direction only* when positive but not significant. d is Cohen's d with the pooled SD of the two arms; "
        "d_z (in the table below) is the paired effect size.",
        "",
    ]

    for name, d in drift_out.items():
        layers = d["layers"]
        lines += [f"## Drift on {name}", ""]
        header = ["start"] + [f"{l} CV initial -> final" for l in layers] + [f"{l} converged (epoch)" for l in layers] \
            + [f"{l} W1 to erk eq." for l in layers] + ["test acc"]
        rows = []
        for r in d["rows"]:
            rows.append([r["arm"]] + [f"{r[f'initial_cv_{l}']:.2f} -> {r[f'final_cv_{l}']:.2f}" for l in layers]
                        + [r[f"converged_epoch_{l}"] if r[f"converged_epoch_{l}"] != "" else "no" for l in layers]
                        + [f"{r[f'w1_to_erk_eq_{l}']:.3f}" for l in layers] + [f"{r['test_acc']:.4f}"])
        lines += [markdown_table(header, rows), ""]
        if name in compare_out and len(mode.seeds) > 1:
            spread = compare_out[name]["seed_spread"]
            lines += ["Seed-to-seed spread (final W1 of the comparison's ERK runs, seeds "
                      f"{', '.join(map(str, mode.seeds))}, to the erk run's equilibrium): "
                      + ", ".join(f"{l} mean {np.mean(spread[:, j]):.3f}, max {np.max(spread[:, j]):.3f}"
                                  for j, l in enumerate(layers)) + ".", ""]
        milestones = [k for k in d["rows"][0] if k.startswith(f"cv_{layers[0]}_epoch")]
        epochs_shown = [k.split("_epoch")[1] for k in milestones]
        hidden = layers[:-1] or layers
        header = ["start"] + [f"{l} CV at epochs {', '.join(epochs_shown)}" for l in hidden] \
            + [f"{l} mean turnover per epoch, epochs 2-{epochs_shown[-2]}" for l in hidden]
        rows = []
        for r in d["rows"]:
            turnover = d["results"][r["arm"]].turnover
            half = max(int(epochs_shown[-2]), 2)
            rows.append([r["arm"]] + [" / ".join(f"{r[f'cv_{l}_epoch{e}']:.2f}" for e in epochs_shown) for l in hidden]
                        + [f"{np.nanmean(turnover[1:half, layers.index(l)]):.3f}" if turnover.shape[0] > 1 else "n/a"
                           for l in hidden])
        lines += ["Fan-in CV over training (hidden layers), and how much of each mask RigL moved per epoch meanwhile "
                  "(mask turnover between consecutive epochs, :func:`topo.analysis.distance.mask_turnover`):", "",
                  markdown_table(header, rows), ""]
        fit = d["erk_result"].equilibrium_fit
        lines += ["Equilibrium of the erk run (lognormal fit of the last "
                  f"{LAST_K} checkpoints; the profile the comparison starts from): "
                  + ", ".join(f"{l}: mu {fit[l]['mu']:.2f}, sigma {fit[l]['sigma']:.2f}, CV {fit[l]['cv']:.2f}" for l in layers)
                  + ". The fitted lognormal CV is not the empirical CV of the final fan-ins (above); the "
                  "initialisation uses the fitted one.", ""]
        pair_rows = []
        for l in layers:
            ps = [p for p in d["pairwise"] if p["layer"] == l]
            if ps:
                pair_rows.append([l, np.mean([p["w1_initial"] for p in ps]), max(p["w1_initial"] for p in ps),
                                  np.mean([p["w1_final"] for p in ps]), max(p["w1_final"] for p in ps)])
        lines += ["W1 distance between the starts' fan-in distributions (fan-in / mean fan-in; all pairs, see pairwise_w1.csv):", "",
                  markdown_table(["layer", "initial mean", "initial max", "final mean", "final max"], pair_rows), ""]
        lines += ["Figures: " + ", ".join(f"[{p.name}]({p.name})" for p in d["files"]), ""]
        lines += [f"![{d['files'][0].name}]({d['files'][0].name})", ""]

    for name, c in compare_out.items():
        s = c["stats"]
        lines += [f"## Equilibrium initialisation against ERK on {name}", ""]
        lines += ["Profile CVs: " + ", ".join(f"{l} {v['cv']:.2f}" for l, v in c["profile"].items()), ""]
        rows = [[seed, f"{e:.4f}", f"{q:.4f}", pct(q - e)] for seed, e, q in
                zip(mode.seeds, c["accuracies"]["erk"], c["accuracies"]["equilibrium"])]
        rows.append(["mean", f"{s['mean_control']:.4f}", f"{s['mean_treated']:.4f}", pct(s["diff"])])
        lines += [markdown_table(["seed", "ERK test acc", "equilibrium test acc", "difference"], rows), ""]
        lines += [f"Paired t-test p = {s['p_paired']:.3g}, Welch t-test p = {s['p_welch']:.3g} (both two-sided), "
                  f"Cohen's d = {s['d']:.2f}, paired d_z = {s['d_z']:.2f}.", ""]
    lines += ["Files: results.csv (one row per run), pairwise_w1.csv (W1 between every pair of starts, per layer). "
              "Run folders are in runs/ (not committed).", ""]
    atomic_write_text(out / "README.md", "\n".join(lines))


def parse_args(argv):
    parser = study_parser(
        __doc__,
        quick="a few minutes: digits and covtype, 5 seeds",
        smoke="seconds: tiny network, 1 epoch, 1 seed, digits",
        data_dir="folder of the data sets (default $TOPO_DATA_DIR, else ../shared/data)",
        out=f"results folder (default {DEFAULT_OUT.relative_to(REPO)}; --smoke: a new temporary folder, never examples/results/)",
        runs="scratch folder of the training runs (default OUT/runs)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm of the comparison")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every data set")
    parser.add_argument("--update-every", type=int, default=None, help="RigL update interval for every data set")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    mode = make_mode(study_mode(args))
    if args.seeds is not None:
        mode.seeds = tuple(range(1, args.seeds + 1))
    for option, target in ((args.epochs, mode.epochs), (args.update_every, mode.update_every)):
        if option is not None:
            for key in target:
                target[key] = int(option)
    folders = study_folders(STUDY, args, mode.name)
    if folders is None:
        return 2
    out, runs = folders
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    log = progress_log(STUDY, counts=counts)

    data, skipped = load_datasets(mode.drift_datasets + mode.compare_datasets, data_folder(args.data_dir), STUDY)
    drift_out, compare_out = {}, {}
    for name in mode.drift_datasets:
        if name in data:
            drift_out[name] = drift_part(mode, name, data[name], runs, out, log)
    for name in mode.compare_datasets:
        if name in data and name in drift_out:
            compare_out[name] = compare_part(mode, name, data[name], runs, out, drift_out[name]["erk_result"],
                                             drift_out[name]["reference"], log)
            compare_out[name]["source"] = data[name].source
    rows = [{k: v for k, v in r.items() if k != "records"} for d in drift_out.values() for r in d["rows"]]
    rows += [r for c in compare_out.values() for r in c["rows"]]
    write_csv(out / "results.csv", rows)
    write_csv(out / "pairwise_w1.csv", [p for d in drift_out.values() for p in d["pairwise"]])
    write_report(mode, argv, out, drift_out, compare_out, skipped, time.perf_counter() - started, counts)
    log(f"done: {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Study: global gradient-based redistribution (GGR) against fixed layer densities.

Parger et al. (2022, "Gradient-based Weight Density Balancing for Robust Dynamic Sparse
Training") let dynamic sparse training move weights *between* layers: at each RigL
update the dropped weights of all layers are pooled and regrown where the gradient is
largest, network-wide (topo's ``method="ggr"``). They report that GGR

1. finds better performing sparse subnetworks at very high sparsity (90% and more)
   than fixed per-layer densities, and
2. is less prone to an unbalanced weight distribution at initialisation (it starts
   from ERK or uniform densities and rebalances them).

This study trains, at 95%, 98% and 99% sparsity:

- ``static-erk``: fixed ERK masks;
- ``rigl-erk``, ``rigl-uniform``: RigL, layer densities fixed at ERK / uniform;
- ``ggr-erk``, ``ggr-uniform``: GGR started from ERK / uniform densities;

and reports the final test accuracy (mean over seeds, Welch's t-test of GGR against
RigL with the same initial densities) and the layer densities over training (from
each run's ``metrics.jsonl``; :func:`topo.plotting.density_curves`).

Modes: full (default; MNIST, Fashion-MNIST, covtype and digits, 5 seeds; about 3-4 hours
on one core), ``--quick`` (digits, 3 seeds, and covtype, 2 seeds, few epochs: about 2-4
minutes) and
``--smoke`` (seconds, for the test suite). RigL/GGR update every ``update_every``
steps (default 100); the small data sets use a shorter interval (see the README this
writes, or ``--update-every``).

Usage::

    python examples/ggr_density.py --quick [--data-dir DIR] [--out DIR]

Results go to ``examples/results/ggr_density/`` (README.md, results.csv, *.png); the
training runs to ``<out>/runs/`` (git-ignored), reused when the script runs again.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from _study import (cohens_d, data_folder, load_datasets, markdown_table, pct,  # noqa: E402
                    progress_log, study_folders, study_mode, study_parser, welch_p, write_csv)  # noqa: E402

STUDY = "ggr_density"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "results" / STUDY
DPI = 100

#: the compared configurations: training method and initial density rule
ARMS: dict[str, dict[str, str]] = {
    "static-erk": {"method": "static", "density": "erk"},
    "rigl-erk": {"method": "rigl", "density": "erk"},
    "ggr-erk": {"method": "ggr", "density": "erk"},
    "rigl-uniform": {"method": "rigl", "density": "uniform"},
    "ggr-uniform": {"method": "ggr", "density": "uniform"},
}


@dataclass
class Mode:
    name: str
    datasets: tuple[str, ...]
    hidden: tuple[int, ...]
    sparsities: tuple[float, ...]
    epochs: dict[str, int]
    update_every: dict[str, int]
    seeds: dict[str, tuple[int, ...]]
    arms: tuple[str, ...] = tuple(ARMS)
    batch_size: int = 64
    notes: list[str] = field(default_factory=list)


def make_mode(name: str) -> Mode:
    if name == "smoke":
        return Mode(name="smoke", datasets=("digits",), hidden=(16, 16), sparsities=(0.95,),
                    epochs={"digits": 1}, update_every={"digits": 2}, seeds={"digits": (0,)},
                    arms=("rigl-erk", "ggr-erk", "ggr-uniform"))
    if name == "quick":
        return Mode(name="quick", datasets=("digits", "covtype"), hidden=(256, 256), sparsities=(0.95, 0.98, 0.99),
                    epochs={"digits": 25, "covtype": 6}, update_every={"digits": 5, "covtype": 20},
                    seeds={"digits": (0, 1, 2), "covtype": (0, 1)})
    return Mode(name="full", datasets=("mnist", "fashion-mnist", "covtype", "digits"), hidden=(256, 256),
                sparsities=(0.95, 0.98, 0.99),
                epochs={"mnist": 30, "fashion-mnist": 30, "covtype": 30, "digits": 60},
                update_every={"mnist": 100, "fashion-mnist": 100, "covtype": 40, "digits": 5},
                seeds={n: tuple(range(5)) for n in ("mnist", "fashion-mnist", "covtype", "digits")})


# -- small helpers (as in the other studies) -----------------------------------------
def welch(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean difference a - b, Welch's t-test (two-sided) and Cohen's d (pooled SD)."""
    diff = float(np.mean(a) - np.mean(b)) if len(a) and len(b) else math.nan
    return {"diff": diff, "p": welch_p(a, b), "d": cohens_d(a, b)}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- the study ------------------------------------------------------------------------
def train_dataset(mode: Mode, name: str, dataset, runs: Path, log) -> list[dict]:
    from topo.checkpoint import read_run_config
    from topo.training.config import TrainConfig
    from topo.training.trainer import train_or_resume

    rows = []
    for sparsity in mode.sparsities:
        for seed in mode.seeds[name]:
            for arm in mode.arms:
                config = TrainConfig(
                    dataset=name, hidden=mode.hidden, sparsity=sparsity, profile="random",
                    update_every=mode.update_every[name], epochs=mode.epochs[name], batch_size=mode.batch_size,
                    seed=seed, threads=1, **ARMS[arm],
                )
                run_dir = runs / name / f"{arm}-sp{sparsity:g}-s{seed}"
                result, how = train_or_resume(config, run_dir, dataset=dataset, replace_other=True)
                records = result.metrics
                log(f"{name} {arm} sparsity {sparsity:g} seed {seed}: {how}, test acc {records[-1]['test_acc']:.4f}")
                layers = read_run_config(run_dir)["network"]["layers"]
                row = {"dataset": name, "arm": arm, "method": ARMS[arm]["method"], "density": ARMS[arm]["density"],
                       "sparsity": sparsity, "seed": seed, "epochs": mode.epochs[name],
                       "test_acc": float(records[-1]["test_acc"]),
                       "best_val_acc": max(r["val_acc"] for r in records if r.get("val_acc") is not None),
                       "network_density": float(records[-1]["density"])}
                for l, d in zip(layers, records[0]["densities"]):
                    row[f"initial_density_{l}"] = float(d)
                for l, d in zip(layers, records[-1]["densities"]):
                    row[f"final_density_{l}"] = float(d)
                row["run"] = run_dir
                row["layers"] = layers
                row["records"] = records
                rows.append(row)
    return rows


def mean_acc(rows, name, arm, sparsity) -> list[float]:
    return [r["test_acc"] for r in rows if r["dataset"] == name and r["arm"] == arm and r["sparsity"] == sparsity]


def _run_row(rows, name, arm, sparsity, seed) -> dict:
    return next(r for r in rows if r["dataset"] == name and r["arm"] == arm and r["sparsity"] == sparsity
                and r["seed"] == seed)


def figures(mode: Mode, name: str, rows: list[dict], out: Path) -> list[Path]:
    """Accuracy against sparsity, and layer densities over training of GGR from ERK and from uniform."""
    from matplotlib.figure import Figure

    from topo.plotting import density_figure
    from topo.plotting import save_figure

    files = []

    fig = Figure(figsize=(5.6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(mode.sparsities))
    for arm in mode.arms:
        values = [mean_acc(rows, name, arm, s) for s in mode.sparsities]
        means = [100 * np.mean(v) if v else np.nan for v in values]
        sds = [100 * np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(x, means, yerr=sds, marker="o", capsize=3, label=arm,
                    linestyle="--" if arm.endswith("uniform") else "-")
    ax.set_xticks(x, [f"{s:.0%}" for s in mode.sparsities])
    ax.set_xlabel("sparsity")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{name}: final test accuracy (mean ± SD over seeds)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    path = out / f"accuracy_{name}.png"
    save_figure(fig, path, dpi=DPI)
    files.append(path)

    # layer densities over training: every sparsity in one figure (colour = layer, style = arm)
    seed = mode.seeds[name][0]
    shown = [a for a in ("ggr-erk", "ggr-uniform", "rigl-erk", "rigl-uniform") if a in mode.arms]
    styles = {"ggr-erk": "-", "ggr-uniform": "--", "rigl-erk": ":", "rigl-uniform": "-."}
    fig = Figure(figsize=(4.2 * len(mode.sparsities), 3.8), layout="constrained")
    axes = fig.subplots(1, len(mode.sparsities), squeeze=False)[0]
    colours = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"]
    for ax, sparsity in zip(axes, mode.sparsities):
        for arm in shown:
            run = _run_row(rows, name, arm, sparsity, seed)
            epochs = [r["epoch"] for r in run["records"]]
            for j, layer in enumerate(run["layers"]):
                ax.plot(epochs, [r["densities"][j] for r in run["records"]], linestyle=styles[arm],
                        color=colours[j % len(colours)], label=f"{arm} {layer}")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{sparsity:.0%} sparse")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("layer density")
    axes[-1].legend(fontsize="x-small", ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{name}: layer densities over training (seed {seed}; RigL keeps its initial densities)")
    path = out / f"densities_{name}.png"
    save_figure(fig, path, dpi=DPI)
    files.append(path)
    # the library's density figure of GGR from each initial rule at the highest sparsity
    top = max(mode.sparsities)
    for arm in ("ggr-uniform", "ggr-erk"):
        if arm in mode.arms:
            fig = density_figure(_run_row(rows, name, arm, top, seed)["run"])
            fig.axes[0].set_title(f"{name}: {arm}, {top:.0%} sparse, seed {seed}")
            path = out / f"density_{name}_{arm}_sp{round(100 * top)}.png"
            save_figure(fig, path, dpi=DPI)
            files.append(path)
    return files


# -- the report -------------------------------------------------------------------------
def density_gap(rows, name, sparsity) -> tuple[float, float] | None:
    """Largest relative gap between the layer densities of GGR from ERK and from uniform
    (means over seeds), at the start and at the end of training: ``|a - b| / max(a, b)``."""
    sel = {arm: [r for r in rows if r["dataset"] == name and r["arm"] == arm and r["sparsity"] == sparsity]
           for arm in ("ggr-erk", "ggr-uniform")}
    if not all(sel.values()):
        return None
    layers = sel["ggr-erk"][0]["layers"]
    gaps = []
    for when in ("initial", "final"):
        worst = 0.0
        for l in layers:
            a, b = (float(np.mean([r[f"{when}_density_{l}"] for r in sel[arm]])) for arm in ("ggr-erk", "ggr-uniform"))
            worst = max(worst, abs(a - b) / max(a, b))
        gaps.append(worst)
    return gaps[0], gaps[1]


def verdict(diff: float, p: float, n: int) -> str:
    if n < 2 or not math.isfinite(p):
        return "n/a (fewer than 2 seeds)"
    if diff > 0 and p < 0.05:
        return "yes"
    if diff > 0:
        return "direction only (not significant)"
    return "no"


#: what this study does not share with the paper (said in every README)
DIFFERS_FROM_PAPER = (
    "What differs from the paper: only its abstract could be consulted here, so its networks, data sets, "
    "schedules and numbers are not known; its two claims are qualitative, so the table sets topo's measured "
    "differences beside the claim, not beside a number. This study trains 256-256 MLPs (not the paper's "
    "networks) on MNIST, Fashion-MNIST, a 15,000-row sample of covtype's 581,012 rows, and digits; GGR's "
    "regrowth ranks raw |gradient| across layers with 10% random exploration, as topo's `method=\"ggr\"` does.")

#: CPU-hours of full mode (75 runs per data set: 30 MNIST/Fashion-MNIST epochs at about 2.5 s, 30 covtype
#: epochs at about 0.4 s, 60 digits epochs at about 0.1 s, one thread on this machine)
FULL_MODE_CPU_HOURS = 3.5


def headline(mode, rows) -> str:
    """The README's first line after the title: mode, seeds, data, epochs."""
    names = [n for n in mode.datasets if any(r["dataset"] == n for r in rows)]
    seeds = "/".join(sorted({str(len(mode.seeds[n])) for n in names})) or "0"
    return (f"mode: {mode.name}, seeds: {seeds}, data: {', '.join(names) or 'none'}, epochs: "
            + ", ".join(f"{n} {mode.epochs[n]}" for n in names))


def interval_verdicts(mode, rows) -> str:
    """GGR-ERK minus RigL-ERK at the highest sparsity, paired by seed, with its 95% t interval, per data set."""
    from scipy import stats

    top = max(mode.sparsities)
    parts = []
    for name in [n for n in mode.datasets if any(r["dataset"] == n for r in rows)]:
        diffs = []
        for seed in mode.seeds[name]:
            try:
                g, r = (_run_row(rows, name, arm, top, seed)["test_acc"] for arm in ("ggr-erk", "rigl-erk"))
            except StopIteration:
                continue
            diffs.append(100.0 * (float(g) - float(r)))
        if len(diffs) < 2:
            parts.append(f"{name}: not testable here (fewer than 2 seeds)")
            continue
        d = np.asarray(diffs)
        half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
        low, high = d.mean() - half, d.mean() + half
        word = "reproduced" if low > 0 else "not reproduced" if high < 0 else "not decided by these seeds"
        parts.append(f"{name}: {word} (GGR-ERK - RigL-ERK at {top:.0%}: {d.mean():+.2f} pp, 95% interval "
                     f"{low:+.2f} to {high:+.2f}, {d.size} seeds)")
    return "Verdict on \"GGR finds better subnetworks than fixed ERK densities at very high sparsity\": " + "; ".join(parts) + "."


def write_report(mode, argv, out, rows, files, skipped, elapsed, counts) -> None:
    from topo.checkpoint import atomic_write_text

    command = shlex.join(["python", "examples/ggr_density.py", *argv])
    names = [n for n in mode.datasets if any(r["dataset"] == n for r in rows)]
    settings = [[n, mode.epochs[n], mode.update_every[n], len(mode.seeds[n]), ", ".join(map(str, mode.seeds[n]))] for n in names]
    lines = ["# ggr_density: GGR against fixed ERK layer densities at very high sparsity", "",
             headline(mode, rows), "", interval_verdicts(mode, rows), "",
             f"Command: `{command}`", ""]
    if mode.name != "full":
        lines += [f"Full mode (MNIST, Fashion-MNIST, covtype and digits, 5 seeds, 30-60 epochs) not run: needs about "
                  f"{FULL_MODE_CPU_HOURS:g} CPU-hours on this machine, more than its shared CPU could give it.", ""]
    lines += [
             f"Mode **{mode.name}**: MLP hidden {'-'.join(map(str, mode.hidden))}, sparsities "
             f"{', '.join(f'{s:.0%}' for s in mode.sparsities)}, arms {', '.join(mode.arms)}; RigL and GGR drop 30% "
             "(cosine decay, updates end at 75% of training), GGR explores 10% of the regrowth at random and "
             "ranks raw |gradient| globally (ggr_normalise off); SGD momentum 0.9, cosine LR 0.05, batch "
             f"{mode.batch_size}, threads=1. Wall time of this invocation: {elapsed / 60:.1f} min "
             f"({counts.get('trained', 0)} runs trained, {counts.get('reused', 0)} reused, {counts.get('resumed', 0)} resumed).",
             "",
             markdown_table(["data set", "epochs", "update every (steps)", "seeds", "seed values"], settings), "",
             "The default update interval of 100 steps would give the small data sets (digits: 21 steps per epoch; "
             "covtype sample: 169) only a few updates, so they use the shorter intervals above.", ""]
    if skipped:
        lines += ["Skipped data sets: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + ".", ""]
    lines += [DIFFERS_FROM_PAPER, ""]

    claim_rows = []
    top = [s for s in mode.sparsities if s >= 0.98] or [max(mode.sparsities)]
    for name in names:
        n_seeds = len(mode.seeds[name])
        setting = f"{mode.name}, {plural(n_seeds, 'seed')}, {plural(mode.epochs[name], 'epoch')}"
        vs_rigl, vs_static, verdicts = [], [], []
        for s in mode.sparsities:
            g, r, st = (mean_acc(rows, name, a, s) for a in ("ggr-erk", "rigl-erk", "static-erk"))
            if not g or not r:
                continue
            test = welch(g, r)
            vs_rigl.append(f"{s:.0%} {pct(test['diff'])} (p = {test['p']:.2g})")
            if st:
                vs_static.append(f"{s:.0%} {pct(welch(g, st)['diff'])}")
            if s in top:
                verdicts.append(verdict(test["diff"], test["p"], n_seeds))
        text = "GGR-ERK vs RigL-ERK: " + ", ".join(vs_rigl)
        if vs_static:
            text += "; vs static ERK: " + ", ".join(vs_static)
        claim_rows.append([f"GGR finds better subnetworks than fixed ERK densities at very high sparsity ({name})",
                           "better at very high sparsity (>= 90%)", f"{text} ({setting})", _combine(verdicts)])
        vs_uniform, penalties, verdicts = [], [], []
        for s in mode.sparsities:
            gu, ru, ge, re_ = (mean_acc(rows, name, a, s) for a in ("ggr-uniform", "rigl-uniform", "ggr-erk", "rigl-erk"))
            if not gu or not ru:
                continue
            test = welch(gu, ru)
            vs_uniform.append(f"{s:.0%} {pct(test['diff'])} (p = {test['p']:.2g})")
            if ge and re_:
                penalties.append(f"{s:.0%} {pct(np.mean(ge) - np.mean(gu))} / {pct(np.mean(re_) - np.mean(ru))}")
            if s in top:
                verdicts.append(verdict(test["diff"], test["p"], n_seeds))
        if vs_uniform:
            text = "GGR-uniform vs RigL-uniform: " + ", ".join(vs_uniform)
            if penalties:
                text += "; uniform-init penalty GGR / RigL: " + ", ".join(penalties)
            gap = density_gap(rows, name, max(mode.sparsities))
            if gap is not None:
                text += (f"; at {max(mode.sparsities):.0%} GGR's layer densities from ERK and from uniform differ by "
                         f"{gap[0]:.0%} at the start, {gap[1]:.0%} at the end (largest relative gap)")
            claim_rows.append([f"GGR is less prone to an unbalanced (uniform) density at initialisation ({name})",
                               "less prone to unbalanced weight distribution at initialisation",
                               f"{text} ({setting})", _combine(verdicts)])
    lines += ["## Claims", "", markdown_table(["claim", "paper", "topo (setting)", "agrees?"], claim_rows), "",
              "Rules for *agrees?*: judged at the sparsities of 98% and above; *yes* when GGR's mean final test "
              "accuracy is higher with Welch p < 0.05 (two-sided) at each of them, *direction only* when higher but "
              "not significant, *no* when lower, *mixed* when the sparsities disagree. Differences are in "
              "percentage points of test accuracy. The uniform-init penalty is mean accuracy from ERK minus mean "
              "accuracy from uniform densities, for the same method.", ""]

    for name in names:
        lines += [f"## {name}", ""]
        header = ["sparsity"] + list(mode.arms)
        table = []
        for s in mode.sparsities:
            row = [f"{s:.0%}"]
            for arm in mode.arms:
                v = mean_acc(rows, name, arm, s)
                row.append(f"{100 * np.mean(v):.2f} ± {100 * np.std(v, ddof=1):.2f}" if len(v) > 1
                           else (f"{100 * v[0]:.2f}" if v else "n/a"))
            table.append(row)
        lines += ["Final test accuracy (%), mean ± SD over seeds:", "", markdown_table(header, table), ""]
        layers = next(r["layers"] for r in rows if r["dataset"] == name)
        header = ["sparsity", "arm"] + [f"{l} initial -> final" for l in layers]
        table = []
        for s in mode.sparsities:
            for arm in mode.arms:
                sel = [r for r in rows if r["dataset"] == name and r["arm"] == arm and r["sparsity"] == s]
                if not sel:
                    continue
                table.append([f"{s:.0%}", arm] + [
                    f"{np.mean([r[f'initial_density_{l}'] for r in sel]):.4f} -> {np.mean([r[f'final_density_{l}'] for r in sel]):.4f}"
                    for l in layers])
        lines += ["Layer densities (mean over seeds), initial -> final:", "", markdown_table(header, table), ""]
        mine = [p for p in files if f"_{name}" in p.name]
        lines += ["Figures: " + ", ".join(f"[{p.name}]({p.name})" for p in mine), ""]
        lines += [f"![{p.name}]({p.name})" for p in mine[:2]] + [""]
    lines += ["Files: results.csv (one row per run: accuracies, initial and final layer densities). "
              "Run folders are in runs/ (not committed).", ""]
    atomic_write_text(out / "README.md", "\n".join(lines))


def _combine(verdicts: list[str]) -> str:
    if not verdicts:
        return "n/a"
    if len(set(verdicts)) == 1:
        return verdicts[0]
    return "mixed (" + ", ".join(verdicts) + ")"


def parse_args(argv):
    parser = study_parser(
        __doc__,
        quick="minutes: digits (3 seeds) and covtype (2 seeds)",
        smoke="seconds: tiny network, 1 epoch, 1 seed, digits",
        data_dir="folder of the data sets (default $TOPO_DATA_DIR, else ../shared/data)",
        out=f"results folder (default {DEFAULT_OUT.relative_to(REPO)}; --smoke: a new temporary folder, never examples/results/)",
        runs="scratch folder of the training runs (default OUT/runs)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per configuration, for every data set")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every data set")
    parser.add_argument("--update-every", type=int, default=None, help="update interval for every data set")
    parser.add_argument("--datasets", default=None, metavar="NAME,...",
                        help="train only these of the mode's data sets (default all); the README names those left out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    mode = make_mode(study_mode(args))
    left_out: list[str] = []
    if args.datasets is not None:
        wanted = [n.strip() for n in args.datasets.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in mode.datasets]
        if unknown or not wanted:
            print(f"ggr_density: --datasets {args.datasets}: {mode.name} mode has {', '.join(mode.datasets)}",
                  file=sys.stderr)
            return 2
        left_out = [n for n in mode.datasets if n not in wanted]
        mode.datasets = tuple(n for n in mode.datasets if n in wanted)
    if args.seeds is not None:
        mode.seeds = {n: tuple(range(args.seeds)) for n in mode.datasets}
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

    data, skipped = load_datasets(mode.datasets, data_folder(args.data_dir), STUDY)
    skipped.update({name: "not asked for: --datasets" for name in left_out})
    rows, files = [], []
    for name in mode.datasets:
        if name in data:
            mine = train_dataset(mode, name, data[name], runs, log)
            rows += mine
            files += figures(mode, name, mine, out)
    write_csv(out / "results.csv", [{k: v for k, v in r.items() if k not in ("records", "layers", "run")} for r in rows])
    write_report(mode, argv, out, rows, files, skipped, time.perf_counter() - started, counts)
    log(f"done: {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gradient hierarchy: do the hubs of a profiled sparse MLP receive larger gradients?

The Profiled Sparse Networks study reports that high-fan-in neurons (hubs) of
structured fan-in profiles receive 2-5x the mean gradient of their layer, random masks
about 1x, and that the fan-in CV and the strength of this hierarchy correlate with
r = 0.93. This study trains static sparse MLPs (90% sparsity, ERK layer densities)
with every profile of :data:`topo.training.profiles.PROFILES` at several CVs, and
measures on the per-neuron ``grad_mean`` statistic the trainer stores in every
checkpoint (mean |dL/dW| over a neuron's incoming weights, dense gradient):

- :func:`topo.analysis.gradients.gradient_concentration` under both of its definitions:
  the mean gradient of the top 10% neurons by fan-in (the hubs) over the mean of the
  other 90% (**hubs against the rest**) and over the mean of the whole layer, hubs
  included (**hubs against all**); the paper's abstract does not say which it used,
- :func:`topo.analysis.gradients.hierarchy_strength` (Spearman rho of fan-in and gradient),
- :func:`topo.analysis.gradients.cv_concentration_correlation` (Pearson r, over all
  layers of all networks, of fan-in CV and concentration), under each definition,

each at the final checkpoint and averaged over the trained epochs (1..E).

Usage::

    python examples/gradient_hierarchy.py            # full mode: MNIST, 5 seeds (hours)
    python examples/gradient_hierarchy.py --jobs 2   # the same, two runs at a time
    python examples/gradient_hierarchy.py --quick    # digits, 5 seeds, a few minutes
    python examples/gradient_hierarchy.py --smoke    # seconds (tests)

Writes ``README.md``, ``results.csv`` and PNG figures into
``examples/results/gradient_hierarchy/`` (or ``--out``); training runs go to
``<out>/runs`` (git-ignored) and finished runs are reused when the script runs again.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from _study import (MNIST_EPOCH_SECONDS, REPO, RESULTS, data_folder, markdown_table, run_digest,  # noqa: E402
                    study_command, study_folders, study_mode, study_parser, write_csv)  # noqa: E402

STUDY = "gradient_hierarchy"
DEFAULT_OUT = RESULTS / STUDY

SPARSITY = 0.9
HUB_FRACTION = 0.1
#: the published figures
CLAIM_CONCENTRATION = (2.0, 5.0)
CLAIM_R = 0.93
#: "about 1x" for random masks; an r within R_TOLERANCE of the published one agrees, one above WEAK_R partly
RANDOM_BAND = (0.8, 1.25)
R_TOLERANCE = 0.1
WEAK_R = 0.5
#: the two definitions of concentration: hubs' mean gradient over the rest's, or over all neurons'
DEFINITIONS = {"rest": "hubs against the rest", "all": "hubs against all"}
SEEDS = (0, 1, 2, 3, 4)


@dataclass
class Mode:
    name: str
    dataset: str
    hidden: tuple[int, ...]
    epochs: int
    seeds: tuple[int, ...]
    cvs: tuple[float, ...]
    families: tuple[str, ...]
    train_rows: int | None = None
    val_rows: int | None = None


def _modes() -> dict[str, Mode]:
    from topo.training.profiles import PARAMETRIC_PROFILES

    return {
        "smoke": Mode("smoke", "digits", (64, 32), 1, (0,), (0.5, 2.0), ("lognormal", "exponential")),
        "quick": Mode("quick", "digits", (300, 100), 20, SEEDS, (0.5, 1.0, 2.0), tuple(PARAMETRIC_PROFILES)),
        "full": Mode("full", "mnist", (300, 100), 20, SEEDS, (0.5, 1.0, 1.5, 2.0, 2.5), tuple(PARAMETRIC_PROFILES)),
    }


# -- data and runs --------------------------------------------------------------------------
def load_data(mode: Mode, data_dir: Path):
    """The mode's data set (training/validation rows cut as the mode says); None if absent."""
    from topo.errors import TopoError
    from topo.training.data import load_dataset, stratified_split

    try:
        data = load_dataset(mode.dataset, data_dir=data_dir)
    except TopoError as error:
        print(f"[{STUDY}] skipping {mode.dataset}: {error}", flush=True)
        return None
    changes = {}
    for part, rows in (("train", mode.train_rows), ("val", mode.val_rows)):
        labels = getattr(data, f"y_{part}")
        if rows is not None and rows < len(labels):
            _, keep = stratified_split(labels, rows / len(labels), seed=0)
            changes[f"X_{part}"] = getattr(data, f"X_{part}")[keep]
            changes[f"y_{part}"] = labels[keep]
    return replace(data, **changes) if changes else data


def configurations(mode: Mode) -> list[tuple[str, float | None]]:
    """(profile, cv) pairs: random, constant, then every family at every CV."""
    return [("random", None), ("constant", None)] + [(f, cv) for f in mode.families for cv in mode.cvs]


def make_config(mode: Mode, profile: str, cv: float | None, seed: int, device: str):
    from topo.training.config import TrainConfig

    # the output layer stays dense (as in psn_static_profiles): a profile on its 10 neurons would starve
    # some classes of inputs, and under ERK at 90% it is 63-100% dense anyway
    return TrainConfig(dataset=mode.dataset, hidden=mode.hidden, sparsity=SPARSITY, density="erk", profile=profile,
                       cv=cv, dense_output=True, method="static", epochs=mode.epochs, seed=seed, threads=1, device=device)


def run_name(config, data) -> str:
    """Readable and unique: the settings, plus a hash of the whole configuration and data size."""
    digest = run_digest(config, data)
    cv = "" if config.cv is None else f"-cv{config.cv:g}"
    return f"{data.name}-{config.profile}{cv}-sp{config.sparsity:g}-seed{config.seed}-{digest}"


def train_or_reuse(config, data, runs_dir: Path, counts: dict) -> Path:
    """The run folder of ``config``: reused when finished, resumed when interrupted, else trained."""
    from topo.training.trainer import train_or_resume

    run_dir = runs_dir / run_name(config, data)
    _, how = train_or_resume(config, run_dir, dataset=data, replace_other=True)
    counts["reused" if how == "reused" else "trained"] += 1
    return run_dir


#: the data set a worker process loaded once (``--jobs``)
_WORKER_DATA: dict = {}


def _load_worker_data(mode_name: str, data_dir: Path) -> None:
    _WORKER_DATA["data"] = load_data(_modes()[mode_name], data_dir)


def _train_in_worker(config, runs_dir: Path) -> str:
    counts = {"trained": 0, "reused": 0}
    train_or_reuse(config, _WORKER_DATA["data"], runs_dir, counts)
    return "reused" if counts["reused"] else "trained"


def train_in_parallel(mode: Mode, configs: list, data_dir: Path, runs_dir: Path, jobs: int) -> int:
    """Train (or resume) the runs of ``configs`` not yet finished, ``jobs`` at a time, each in a
    process of its own that loads the data once; returns how many were trained.

    The study then reads every run as a finished one, in its usual order.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    trained = 0
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_load_worker_data,
                             initargs=(mode.name, data_dir)) as pool:
        futures = {pool.submit(_train_in_worker, config, runs_dir): config for config in configs}
        for done, future in enumerate(as_completed(futures), 1):
            config = futures[future]
            how = future.result()
            trained += how == "trained"
            if how == "trained":
                print(f"[{STUDY}] {done}/{len(configs)} {config.profile} cv {config.cv} seed {config.seed}: "
                      f"trained ({jobs} at a time)", flush=True)
    return trained


# -- measures -------------------------------------------------------------------------------
def measure_run(run_dir: Path) -> list[dict]:
    """Per layer: fan-in CV, concentration (both definitions) and hierarchy at the final checkpoint and
    averaged over epochs 1..E."""
    from topo.analysis.gradients import gradient_rows
    from topo.runs import run_checkpoints

    topologies = run_checkpoints(run_dir)
    trained = [t for t in topologies if (t.epoch or 0) >= 1]
    rows = gradient_rows(trained, fraction=HUB_FRACTION)
    by_layer: dict[str, list[dict]] = {}
    for row in rows:
        by_layer.setdefault(row["layer"], []).append(row)
    last = len(trained) - 1
    out = []
    for layer, items in by_layer.items():
        final = next(r for r in items if r["network"] == last)
        hier = np.array([r["hierarchy"] for r in items], dtype=np.float64)  # NaN for a dense layer
        row = {"layer": layer, "fan_in_cv": final["fan_in_cv"]}
        for definition in DEFINITIONS:
            conc = np.array([r[f"concentration_{definition}"] for r in items], dtype=np.float64)
            row[f"concentration_{definition}_final"] = final[f"concentration_{definition}"]
            row[f"concentration_{definition}_mean"] = _nanmean(conc)
        row.update(hierarchy_final=final["hierarchy"], hierarchy_mean=_nanmean(hier), epochs=len(items))
        out.append(row)
    return out


def pearson_interval(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of a Pearson r over ``n`` points (Fisher z); NaNs when n < 4."""
    from scipy import stats

    if not math.isfinite(r) or n < 4:
        return math.nan, math.nan
    z, half = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), stats.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def pearson(x, y) -> float:
    """Pearson r over the finite pairs (NaN with fewer than 3 or a constant side)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.pearsonr(x, y).statistic)


# -- figures --------------------------------------------------------------------------------
def scatter_figure(rows: list[dict], correlations: dict, path: Path, setting: str) -> None:
    """Concentration against fan-in CV: one row of panels per definition (hubs against the rest,
    hubs against all), final checkpoint and epoch-averaged side by side, r on each panel."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from topo.plotting import save_figure

    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    colours = dict(zip(profiles, sns.color_palette("husl" if len(profiles) > 10 else "colorblind", len(profiles))))
    markers = dict(zip(layers, "osD^v<>"))
    fig = Figure(figsize=(11.0, 8.6), layout="constrained")
    grid = fig.subplots(len(DEFINITIONS), 2, sharex=True)
    for axes, (definition, name) in zip(grid, DEFINITIONS.items()):
        for ax, key, title in ((axes[0], "final", "final checkpoint"), (axes[1], "mean", "mean over epochs")):
            column = f"concentration_{definition}_{key}"
            for profile in profiles:
                for layer in layers:
                    pts = [r for r in rows if r["profile"] == profile and r["layer"] == layer]
                    if not pts:
                        continue
                    ax.scatter([p["fan_in_cv"] for p in pts], [p[column] for p in pts], s=22,
                               color=colours[profile], marker=markers[layer], alpha=0.75, edgecolor="none",
                               label=profile if layer == layers[0] else None)
            ax.axhspan(*CLAIM_CONCENTRATION, color="0.9", zorder=0)
            ax.axhline(1.0, color="0.4", lw=0.8)
            c = correlations[definition][key]
            ax.text(0.03, 0.97, f"hidden layers: r (CV, concentration) = {c['r_hidden']:.2f}  [paper {CLAIM_R}]\n"
                    f"with the dense output layer: r = {c['r_all']:.2f}",
                    transform=ax.transAxes, ha="left", va="top", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
            ax.set_title(f"{name}, {title} ({setting})", fontsize=10)
            ax.grid(alpha=0.4)
        axes[0].set_ylabel(f"{name}\n(top {HUB_FRACTION:.0%} by fan-in)")
    for ax in grid[-1]:
        ax.set_xlabel("fan-in CV of the layer")
    handles = [Line2D([], [], color="0.3", marker=markers[layer], linestyle="none", label=layer) for layer in layers]
    first = grid[0][1].legend(handles=handles, title="layer", fontsize=7, loc="lower right")
    grid[0][1].add_artist(first)
    fig.legend(*grid[0][0].get_legend_handles_labels(), loc="outside right center", fontsize=7, title="profile")
    save_figure(fig, path, dpi=100)


# -- report ---------------------------------------------------------------------------------
def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else math.nan


def _f(value: float, digits: int = 2) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


COLUMNS = ["profile", "cv", "seed", "layer", "fan_in_cv",
           "concentration_rest_final", "concentration_rest_mean", "concentration_all_final", "concentration_all_mean",
           "hierarchy_final", "hierarchy_mean", "epochs", "test_acc", "run"]


def correlations_of(rows: list[dict], final_topologies: list, hidden: set[str]) -> dict:
    """``{definition: {"final"|"mean": {r_all, r_hidden, n_all, n_hidden, r_hier_all, r_hier_hidden}}}``."""
    from topo.analysis.gradients import cv_concentration_correlation
    from topo.topology import Topology

    hidden_topologies = [Topology([layer for layer in t if layer.name in hidden], info=t.info) for t in final_topologies]
    hidden_rows = [r for r in rows if r["layer"] in hidden]

    def finite_pairs(items, column):
        return sum(math.isfinite(r["fan_in_cv"]) and math.isfinite(r[column]) for r in items)

    out: dict = {}
    for definition in DEFINITIONS:
        out[definition] = {}
        for key in ("final", "mean"):
            column = f"concentration_{definition}_{key}"
            out[definition][key] = {
                # the library's measure where it applies directly (the final checkpoints); the epoch
                # averages are not one checkpoint, so their r is the same Pearson r over the rows
                "r_all": (cv_concentration_correlation(final_topologies, fraction=HUB_FRACTION, against=definition)
                          if key == "final" else pearson([r["fan_in_cv"] for r in rows], [r[column] for r in rows])),
                "r_hidden": (cv_concentration_correlation(hidden_topologies, fraction=HUB_FRACTION, against=definition)
                             if key == "final" else pearson([r["fan_in_cv"] for r in hidden_rows],
                                                            [r[column] for r in hidden_rows])),
                "n_all": finite_pairs(rows, column),
                "n_hidden": finite_pairs(hidden_rows, column),
                "r_hier_all": pearson([r["fan_in_cv"] for r in rows], [r[f"hierarchy_{key}"] for r in rows]),
                "r_hier_hidden": pearson([r["fan_in_cv"] for r in hidden_rows],
                                         [r[f"hierarchy_{key}"] for r in hidden_rows]),
            }
    return out


def _range_verdict(values: list[float], low: float, high: float) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "n/a"
    inside = sum(low <= v <= high for v in values)
    if inside == len(values):
        return "yes"
    if inside == 0:
        return "no"
    return f"partly ({inside}/{len(values)})"


def r_verdict(r: float, n: int) -> str:
    """Reproduced when the 95% interval of r includes the published 0.93, else not (with the interval)."""
    low, high = pearson_interval(r, n)
    if not math.isfinite(low):
        return "not testable here (too few points)"
    interval = f"r = {r:.2f}, 95% interval {low:.2f} to {high:.2f}, {n} layers"
    if low <= CLAIM_R <= high:
        return f"reproduced ({interval})"
    side = "below" if high < CLAIM_R else "above"
    return f"not reproduced ({interval}, {side} {CLAIM_R})"


def report(rows: list[dict], mode: Mode, out: Path, command: str, elapsed: float, counts: dict,
           final_topologies: list, data) -> dict:
    from topo.checkpoint import atomic_write_text

    layers = list(dict.fromkeys(r["layer"] for r in rows))
    hidden = set(layers[:-1])
    correlations = correlations_of(rows, final_topologies, hidden)
    scatter_figure(rows, correlations, out / "concentration_vs_cv.png", mode.name)

    def values(selector, key, only_hidden=True):
        return [r[key] for r in rows if selector(r) and (r["layer"] in hidden or not only_hidden)]

    structured = lambda r: r["profile"] not in ("random", "constant")  # noqa: E731
    random_ = lambda r: r["profile"] == "random"  # noqa: E731
    seeds = f"{len(mode.seeds)} seed{'s' if len(mode.seeds) > 1 else ''}"
    claims = []
    for definition, name in DEFINITIONS.items():
        for key, label in (("mean", "mean over epochs 1..E"), ("final", "final checkpoint")):
            column = f"concentration_{definition}_{key}"
            s = values(structured, column)
            rnd = values(random_, column)
            by_cv = ", ".join(
                f"CV {cv:g}: {np.nanmedian(values(lambda r, cv=cv: structured(r) and r['cv'] == cv, column)):.2f}x"
                for cv in mode.cvs)
            claims.append([
                f"hub gradient concentration 2-5x for structured profiles ({name}, {label})",
                "2-5x",
                f"hidden layers of the {len(mode.families)} families: median {np.nanmedian(s):.2f}x, "
                f"range {np.nanmin(s):.2f}-{np.nanmax(s):.2f}x; median by target {by_cv} "
                f"({mode.name}, {mode.dataset}, {seeds}, {mode.epochs} epochs)",
                _range_verdict(s, *CLAIM_CONCENTRATION),
            ])
            rnd_cv = values(random_, "fan_in_cv")
            claims.append([
                f"about 1x for random masks ({name}, {label})",
                "about 1x",
                f"hidden layers ({len(rnd)}): median {np.nanmedian(rnd):.2f}x, range {np.nanmin(rnd):.2f}-"
                f"{np.nanmax(rnd):.2f}x (fan-in CV {np.nanmin(rnd_cv):.2f}-{np.nanmax(rnd_cv):.2f})",
                _range_verdict(rnd, *RANDOM_BAND),
            ])
            c = correlations[definition][key]
            r = c["r_hidden"]
            verdict = "n/a" if not math.isfinite(r) else ("yes" if r >= CLAIM_R - R_TOLERANCE else
                                                           "partly" if r >= WEAK_R else "no")
            low, high = pearson_interval(r, c["n_hidden"])
            claims.append([
                f"correlation of fan-in CV with hierarchy strength ({name}, {label})",
                f"r = {CLAIM_R}",
                f"Pearson r(CV, concentration) = {_f(r)} (95% interval {_f(low)} to {_f(high)}) over hidden layers "
                f"({c['n_hidden']} points; {_f(c['r_all'])} with the dense output layer, inflated by its cluster at "
                f"CV 0); r(CV, Spearman rho) = {_f(c['r_hier_hidden'])} (hidden layers)",
                verdict,
            ])

    # per-configuration table (mean over seeds)
    body = []
    for profile, cv in configurations(mode):
        mine = [r for r in rows if r["profile"] == profile and r["cv"] == cv]
        if not mine:
            continue
        cells = [profile, "-" if cv is None else f"{cv:g}"]
        for layer in layers:
            lr = [r for r in mine if r["layer"] == layer]
            cells.append(f"{_f(np.mean([r['fan_in_cv'] for r in lr]))} / "
                         f"{_f(_nanmean([r['concentration_rest_final'] for r in lr]))}, "
                         f"{_f(_nanmean([r['concentration_rest_mean'] for r in lr]))} / "
                         f"{_f(_nanmean([r['concentration_all_final'] for r in lr]))}, "
                         f"{_f(_nanmean([r['concentration_all_mean'] for r in lr]))} / "
                         f"{_f(_nanmean([r['hierarchy_mean'] for r in lr]))}")
        cells.append(f"{100 * np.mean([r['test_acc'] for r in mine if r['layer'] == layers[0]]):.2f}")
        body.append(cells)

    # the r = 0.93 claim under each definition, over hidden layers, averaged over epochs
    verdicts = {d: r_verdict(correlations[d]["mean"]["r_hidden"], correlations[d]["mean"]["n_hidden"])
                for d in DEFINITIONS}
    headline = (f"mode: {mode.name}, seeds: {len(mode.seeds)}, data: {mode.dataset} ({len(data.y_train)} training "
                f"rows), epochs: {mode.epochs}")
    verdict_line = ("Verdict on r = 0.93 (fan-in CV against concentration, hidden layers, mean over epochs): "
                    + "; ".join(f"{DEFINITIONS[d]}: {v}" for d, v in verdicts.items()) + ".")
    setting = (f"Mode **{mode.name}**: {mode.dataset} ({len(data.y_train)} training rows), MLP "
               f"{data.n_features}-{'-'.join(map(str, mode.hidden))}-{data.n_classes}, method static, "
               f"{SPARSITY:.0%} sparsity with ERK layer densities and a dense output layer (the profiles shape the hidden layers), hub placement by index, {mode.epochs} epochs, "
               f"seeds {', '.join(map(str, mode.seeds))}, SGD (lr 0.05, momentum 0.9, cosine, batch 64), torch threads 1. "
               f"Profiles: random, constant, and {len(mode.families)} families at target CV "
               f"{', '.join(f'{c:g}' for c in mode.cvs)}. Hubs: the top {HUB_FRACTION:.0%} of a layer's neurons by "
               f"fan-in. Gradient statistic: the checkpoints' per-neuron grad_mean (mean |dL/dW| over the neuron's "
               f"incoming positions, dense gradient, averaged over an epoch's steps).")
    differs = ("What differs from the paper: its networks, epochs and data sizes are not known here beyond the abstract "
               "(four data sets, 2-3 hidden layers); " + ("this mode uses digits (8x8 images), not MNIST; "
                                                          if mode.dataset == "digits" else "")
               + (f"this mode trains on {mode.dataset} alone: the same grid on Fashion-MNIST would take about "
                  f"{len(configurations(mode)) * len(mode.seeds) * mode.epochs * MNIST_EPOCH_SECONDS / 3600:.1f} "
                  "CPU-hours more, and EMNIST is not available here; "
                  if mode.name == "full" else "")
               + "only the abstract could be consulted, which does not define the concentration, so both "
               "definitions are reported.")
    parts = [
        f"# {STUDY}: gradient concentration at hubs against fan-in CV", "",
        headline, "",
        verdict_line, "",
        "```", command, "```", "",
        setting, "",
        differs, "",
        f"Wall time of this invocation: {elapsed:.0f} s ({counts['trained']} runs trained, {counts['reused']} reused); "
        f"the runs' own training time (sum of their epoch times, whenever they were trained): "
        f"{counts.get('train_seconds', 0.0):.0f} s.",
        "",
        "## Two definitions of gradient concentration", "",
        f"- **hubs against the rest**: the hubs' mean gradient over the mean of the other "
        f"{1 - HUB_FRACTION:.0%} of the layer (`gradient_concentration(layer, against=\"rest\")`);",
        "- **hubs against all**: the hubs' mean gradient over the mean of the whole layer, hubs included "
        "(`gradient_concentration(layer, against=\"all\")`, the library's default). It cannot exceed "
        f"{1 / HUB_FRACTION:.0f}x, and with the top {HUB_FRACTION:.0%} as hubs rest = 0.9 all / (1 - 0.1 all): "
        "2.07 against all is 2.35 against the rest.",
        "",
        "The paper reports \"a 2-5x gradient concentration at hub neurons compared to the ~1x uniform "
        "distribution in random baselines\"; only its abstract could be consulted here and it gives no formula, "
        "so which definition it used is not established. Both are reported below.", "",
        "Reported: both the concentration at the **final checkpoint** and its **mean over the trained epochs "
        "1..E** (each epoch's grad_mean is itself an average over that epoch's steps); the claim rows give both. "
        "The 2-5x and about-1x rows count hidden layers only (the output layer is dense: fan-in CV 0, and its "
        f"'hub' is one of {data.n_classes} neurons picked by index); the correlations are given over all layers "
        "(the library's cv_concentration_correlation on the final checkpoints; the output layer adds one point "
        "at CV 0 per network) and over the hidden layers alone, with a 95% interval (Fisher z).", "",
        "## Claims", "",
        markdown_table(["claim", "paper", "topo (setting)", "agrees?"], claims, cell=str), "",
        f"Criteria: a concentration agrees when it lies in 2-5x (structured) or {RANDOM_BAND[0]}-{RANDOM_BAND[1]}x "
        f"(random); a correlation (hidden layers) agrees when r >= {CLAIM_R - R_TOLERANCE:.2f} (within {R_TOLERANCE} of "
        f"the published {CLAIM_R}), partly when {WEAK_R} <= r < {CLAIM_R - R_TOLERANCE:.2f}; the verdict at the top asks "
        f"whether the 95% interval of r includes {CLAIM_R}.", "",
        "![concentration vs CV](concentration_vs_cv.png)", "",
        "## Per configuration (mean over seeds)", "",
        "Each layer cell: achieved fan-in CV / hubs against the rest (final checkpoint, mean over epochs) / hubs "
        "against all (final checkpoint, mean over epochs) / Spearman rho (fan-in, gradient) averaged over epochs.", "",
        markdown_table(["profile", "CV", *layers, "test acc (%)"], body, cell=str), "",
        "Gradient against fan-in per neuron at the final checkpoint (topo.figures.gradients_figure; its panels "
        "give hubs against all):", "",
        "![gradients, structured](gradients_structured.png) ![gradients, random](gradients_random.png)", "",
    ]
    if mode.name != "smoke":
        parts += ["## Reading", ""] + [f"- {line}" for line in reading(rows, mode, correlations, hidden)] + [""]
    if mode.name != "full":
        full = _modes()["full"]
        epochs = len(configurations(full)) * len(full.seeds) * full.epochs
        parts += [f"Full mode (MNIST, {len(full.seeds)} seeds, CVs 0.5-2.5: {len(configurations(full))} configurations "
                  f"x {len(full.seeds)} seeds x {full.epochs} epochs) was not run: it needs about "
                  f"{epochs * MNIST_EPOCH_SECONDS / 3600:.1f} CPU-hours ({epochs} MNIST epochs at the "
                  f"{MNIST_EPOCH_SECONDS:g} s per epoch this 300-100 MLP took on one thread here), more than this "
                  "machine's shared CPU could give it.", ""]
    atomic_write_text(out / "README.md", "\n".join(parts) + "\n")
    return {"claims": claims, "correlations": correlations, "verdicts": verdicts}


def reading(rows: list[dict], mode: Mode, correlations: dict, hidden: set[str]) -> list[str]:
    """The findings in words, every number computed from ``rows``."""
    structured = [r for r in rows if r["layer"] in hidden and r["profile"] not in ("random", "constant")]
    lines = []
    for definition, name in DEFINITIONS.items():
        column = f"concentration_{definition}_mean"
        by_cv = {cv: float(np.nanmedian([r[column] for r in structured if r["cv"] == cv])) for cv in mode.cvs}
        share = np.mean([CLAIM_CONCENTRATION[0] <= r[column] <= CLAIM_CONCENTRATION[1] for r in structured])
        c = correlations[definition]["mean"]
        medians = list(by_cv.values())
        trend = "grows with" if all(b > a for a, b in zip(medians, medians[1:])) else "does not grow steadily with"
        lines.append(
            f"{name}: the median over structured hidden layers {trend} the target CV ("
            + ", ".join(f"CV {cv:g}: {v:.2f}x" for cv, v in by_cv.items())
            + f"); {share:.0%} of them lie in the 2-5x band. r(CV, concentration) over hidden layers = "
            f"{c['r_hidden']:.2f}, {c['r_all']:.2f} with the dense output layer.")
    r_rest, r_all = (correlations[d]["mean"]["r_hidden"] for d in ("rest", "all"))
    lines.append(f"The definition changes the size of the effect more than its correlation with CV: r is {r_rest:.2f} "
                 f"against the rest and {r_all:.2f} against all (hidden layers, mean over epochs). Counting the dense "
                 "output layer raises r because its points cluster at CV 0 with a low concentration (its 'hub' is one "
                 "output neuron chosen by index); a published r near 0.93 may include such layers.")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = study_parser(
        __doc__,
        description="paragraph",
        quick="digits, 5 seeds, a few minutes on two cores",
        smoke="seconds: tiny widths, 1 epoch",
        data_dir="data folder (default $TOPO_DATA_DIR, else ../shared/data)",
        out=f"results folder (default {DEFAULT_OUT.relative_to(REPO)}; --smoke: a new temporary folder, never examples/results/)",
        runs="scratch folder for the training runs (default OUT/runs)",
        runs_flag="--runs-dir",
        device="where to train (default cpu)",
        path_type=None,
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="train N runs at once, each in its own process with one thread (default 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    from topo.checkpoint import read_metrics
    from topo.plotting import gradients_figure
    from topo.formats import load

    mode = _modes()[study_mode(args)]
    folders = study_folders(STUDY, args, mode.name, runs_per_mode=False)  # finished runs live in OUT/runs
    if folders is None:
        return 2
    out, runs_dir = folders
    out.mkdir(parents=True, exist_ok=True)
    command = study_command(STUDY, argv)
    started = time.perf_counter()
    data = load_data(mode, data_folder(args.data_dir, existing=False))
    if data is None:
        print(f"[{STUDY}] no data; nothing written")
        return 0
    counts = {"trained": 0, "reused": 0}
    rows: list[dict] = []
    finals = []
    examples: dict[str, Path] = {}
    jobs = [(p, cv, s) for p, cv in configurations(mode) for s in mode.seeds]
    if args.jobs > 1:
        configs = [make_config(mode, profile, cv, seed, args.device) for profile, cv, seed in jobs]
        counts["trained"] = train_in_parallel(mode, configs, data_folder(args.data_dir, existing=False), runs_dir,
                                              args.jobs)
        counts["reused"] = len(jobs) - counts["trained"]
    # after a parallel phase every run below is found finished; it was counted there already
    tally = {"trained": 0, "reused": 0} if args.jobs > 1 else counts
    for index, (profile, cv, seed) in enumerate(jobs, 1):
        config = make_config(mode, profile, cv, seed, args.device)
        tick = time.perf_counter()
        run_dir = train_or_reuse(config, data, runs_dir, tally)
        records = read_metrics(run_dir)
        test_acc = records[-1]["test_acc"]
        counts["train_seconds"] = counts.get("train_seconds", 0.0) + sum(float(r.get("epoch_time") or 0) for r in records)
        for layer_row in measure_run(run_dir):
            rows.append({"profile": profile, "cv": cv, "seed": seed, "test_acc": test_acc, "run": run_dir.name,
                         **layer_row})
        finals.append(load(run_dir, weights=False))
        if seed == mode.seeds[0]:
            if profile == "random":
                examples["random"] = run_dir
            elif cv == max(mode.cvs) and (profile == "lognormal" or "structured" not in examples):
                examples["structured"] = run_dir
        print(f"[{STUDY}] {index}/{len(jobs)} {profile} cv {cv} seed {seed}: test acc {test_acc:.4f} "
              f"({time.perf_counter() - tick:.1f} s)", flush=True)
    for name, run_dir in examples.items():
        gradients_figure(run_dir, fraction=HUB_FRACTION, path=out / f"gradients_{name}.png", dpi=80)
    write_csv(out / "results.csv", rows, COLUMNS, float_format=None)
    result = report(rows, mode, out, command, time.perf_counter() - started, counts, finals, data)
    for claim in result["claims"]:
        print(f"[{STUDY}] {claim[0]}: {claim[2]} -> {claim[3]}")
    for definition, verdict in result["verdicts"].items():
        print(f"[{STUDY}] r = {CLAIM_R} with {DEFINITIONS[definition]}: {verdict}")
    print(f"[{STUDY}] wrote {out / 'README.md'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

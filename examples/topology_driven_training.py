"""Study: what topology-driven sparse training (CHTs, SRigL, GraNet) does to accuracy and to the graph.

Issue 15, part 4. MNIST and Fashion-MNIST, MLPs at 10% and 1% of the connections (ERK
layer densities), five seeds per cell, eight arms: the dense MLP, static ERK masks, SET,
RigL, GGR, SRigL, GraNet and CHTs (CH2-L3n soft regrowth, BRF initialisation, chain
removal). Per cell: test accuracy with a 95% t-interval over the seeds, the final fan-in
CV per layer (present neurons), the exploration rate (ITOP: the share of the sparse
layers' possible connections ever active), the hidden neurons removed, the mean NNSTD
between the seeds' final networks, and training time per epoch. Figures: accuracy against
density, fan-in CV over epochs per method, exploration rate against accuracy.

Published claims checked (the README says where each held here and where not):

- CHTs (Zhang et al., ICLR 2024; arXiv 2501.19107): at 1% of the connections it beats
  the fully connected MLP on image tasks;
- RigL (Evci et al., 2020) beats SET and static sparse training at equal density;
- SRigL (Lasby et al., ICLR 2024) matches RigL with every neuron's fan-in equal (CV 0);
- GraNet (Liu et al., NeurIPS 2021) at least matches RigL;
- ITOP (Liu et al., ICML 2021): higher exploration rate goes with higher accuracy.

Modes: full (default; 150 runs at the papers' width, 1000 neurons per hidden layer, 20
epochs: hours on a CPU, minutes with ``--jobs`` on a GPU), ``--quick`` (784-100-100-10 for 3
epochs, about half an hour on 2 cores), ``--smoke`` (seconds: digits, a tiny network, 2 seeds, for the tests;
it writes only to ``--out``, never into ``examples/results/``). Runs are resumable:
finished runs in ``<out>/runs/`` are reused, an interrupted one resumes.

Usage::

    python examples/topology_driven_training.py [--data-dir DIR] [--out DIR] [--seeds N]
    python examples/topology_driven_training.py --jobs 12 --device cuda --compact-runs
    python examples/topology_driven_training.py --smoke --out /tmp/tdt
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from _study import (data_folder, load_datasets, markdown_table, progress_log, refuse_smoke_writes,  # noqa: E402
                    study_mode, study_parser, welch_interval, welch_p, write_csv)  # noqa: E402

STUDY = "topology_driven_training"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "results" / STUDY
DPI = 100

#: the sparse arms, in table order, and the options each adds to the common configuration
METHODS: dict[str, dict[str, Any]] = {
    "static": {"method": "static"},
    "set": {"method": "set"},
    "rigl": {"method": "rigl"},
    "ggr": {"method": "ggr"},
    "srigl": {"method": "srigl"},
    "granet": {"method": "granet"},
    "chts": {"method": "chts", "init": "brf:r=0.3"},
}
ARMS = ("dense",) + tuple(METHODS)


@dataclass
class Mode:
    name: str
    datasets: tuple[str, ...]
    hidden: tuple[int, ...]
    densities: tuple[float, ...]
    epochs: int
    batch_size: int
    update_every: int
    seeds: tuple[int, ...]
    notes: list[str] = field(default_factory=list)
    #: the torch device the runs trained on (``--device``), named in the README
    device: str = "cpu"


def make_mode(name: str) -> Mode:
    """smoke (tests), quick (the small budget of a 2-core machine) or full (the papers' width)."""
    if name == "smoke":
        return Mode(name="smoke", datasets=("digits",), hidden=(16, 16), densities=(0.1,), epochs=2,
                    batch_size=64, update_every=4, seeds=(1, 2))
    if name == "quick":
        return Mode(name="quick", datasets=("mnist", "fashion-mnist"), hidden=(100, 100), densities=(0.1, 0.01),
                    epochs=3, batch_size=256, update_every=30, seeds=(1, 2, 3, 4, 5))
    return Mode(name="full", datasets=("mnist", "fashion-mnist"), hidden=(1000, 1000), densities=(0.1, 0.01),
                epochs=20, batch_size=256, update_every=50, seeds=(1, 2, 3, 4, 5))


def arm_config(mode: Mode, dataset: str, arm: str, density: float, seed: int, device: str = "cpu"):
    """The TrainConfig of one run: the dense MLP (``density`` 1) or a sparse method."""
    from topo.training.config import TrainConfig

    # the study reads masks from the epochs before the last (exploration, CV curves), never their weights
    common = dict(dataset=dataset, hidden=mode.hidden, epochs=mode.epochs, batch_size=mode.batch_size,
                  update_every=mode.update_every, seed=seed, threads=1, device=device,
                  intermediate_checkpoints="masks")
    if arm == "dense":
        return TrainConfig(sparsity=0.0, method="static", **common)
    return TrainConfig(sparsity=round(1.0 - density, 6), density="erk", **METHODS[arm], **common)


def run_plan(mode: Mode) -> list[tuple[str, str, float, int]]:
    """(dataset, arm, density, seed) of every run; seeds outermost so that a partial study fills every cell."""
    plan = []
    for seed in mode.seeds:
        for dataset in mode.datasets:
            plan.append((dataset, "dense", 1.0, seed))
            for density in mode.densities:
                plan += [(dataset, arm, density, seed) for arm in METHODS]
    return plan


def run_dir_of(runs: Path, dataset: str, arm: str, density: float, seed: int) -> Path:
    return runs / dataset / (f"{arm}-s{seed}" if arm == "dense" else f"{arm}-d{density:g}-s{seed}")


# -- measuring one run -------------------------------------------------------------------
def measure_run(run_dir: Path, records: list[dict]) -> dict[str, Any]:
    """Accuracy, per-epoch fan-in CV (present neurons), exploration, removed neurons, time per epoch."""
    from topo.analysis.degree import fan_in_cv
    from topo.runs import load_run
    from topo.analysis.exploration import active_widths, exploration

    topologies = load_run(run_dir)
    explored = exploration(topologies)
    final = topologies[-1]
    widths = [layer.mask.shape[0] for layer in final]
    present = active_widths(final)
    hidden = range(len(widths) - 1)
    return {
        "test_acc": float(records[-1]["test_acc"]),
        "cv_curve": np.array([fan_in_cv(t, present_only=True) for t in topologies], dtype=float),
        "epochs": [int(r["epoch"]) for r in records],
        "final_cv": [float(c) for c in fan_in_cv(final, present_only=True)],
        "exploration": float(explored.rate[-1]),
        "exploration_layers": list(explored.counted),  # the layers it sums over (sparse at the start)
        "removed": int(sum(widths[k] - present[k] for k in hidden)),
        "epoch_time": float(np.mean([r["epoch_time"] for r in records if r["epoch"] >= 1] or [math.nan])),
        "final": final,
    }


#: what a measured run keeps beside its metrics, so that the study can be summarised from
#: folders whose checkpoints were removed (``--compact-runs``)
MEASURES = "measures.json"
FINAL_MASKS = "final_masks.npz"


def save_measures(run_dir: Path, measured: dict[str, Any]) -> None:
    """Write ``measured`` (less its final Topology) and the final masks (CSR parts) into ``run_dir``."""
    from topo.atomic import atomic_output, atomic_write_text

    final = measured["final"]
    parts: dict[str, np.ndarray] = {}
    for k, layer in enumerate(final):
        mask = layer.mask.tocsr()
        parts[f"{k}_shape"] = np.asarray(mask.shape, dtype=np.int64)
        if mask.nnz == mask.shape[0] * mask.shape[1]:
            continue  # a dense layer: its shape says it all
        parts[f"{k}_indptr"] = mask.indptr.astype(np.int64)
        # the smallest type that holds a column index: a 1000-wide layer's masks in half the bytes
        parts[f"{k}_indices"] = mask.indices.astype(np.uint16 if mask.shape[1] <= 1 << 16 else np.int64)
    parts["names"] = np.asarray([layer.name for layer in final])
    with atomic_output(run_dir / FINAL_MASKS) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **parts)
    plain = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in measured.items() if k != "final"}
    atomic_write_text(run_dir / MEASURES, json.dumps(plain))


def load_measures(run_dir: Path) -> dict[str, Any] | None:
    """What :func:`save_measures` wrote, with the final Topology rebuilt; None if absent or torn."""
    import scipy.sparse as sp

    from topo.topology import Layer, Topology

    try:
        plain = json.loads((run_dir / MEASURES).read_text())
        with np.load(run_dir / FINAL_MASKS) as parts:
            names = [str(n) for n in parts["names"]]
            layers = []
            for k, name in enumerate(names):
                shape = tuple(int(v) for v in parts[f"{k}_shape"])
                if f"{k}_indices" in parts:
                    indices = parts[f"{k}_indices"].astype(np.int64)
                    mask = sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, parts[f"{k}_indptr"]),
                                         shape=shape)
                else:
                    mask = sp.csr_matrix(np.ones(shape, dtype=bool))
                layers.append(Layer(name=name, mask=mask))
    except (OSError, ValueError, KeyError):
        return None
    plain["cv_curve"] = np.asarray(plain["cv_curve"], dtype=float)
    plain["final"] = Topology(layers)
    return plain


def compact_run(run_dir: Path) -> None:
    """Remove a measured run's checkpoints and resume state (the measures and final masks stay)."""
    import shutil

    for name in ("checkpoints", "state"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN half-width with fewer than 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def seed_nnstd(finals) -> float:
    """Mean NNSTD over all pairs of the seeds' final networks (NaN with fewer than 2)."""
    from topo.analysis.distance import nnstd

    pairs = list(itertools.combinations(finals, 2))
    if not pairs:
        return math.nan
    return float(np.mean([nnstd(a, b).distance for a, b in pairs]))


# -- figures ------------------------------------------------------------------------------
def figures(mode: Mode, cells: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topo.plotting import save_figure

    files = []
    colours = dict(zip(ARMS, plt.get_cmap("tab10").colors))
    # accuracy against density
    fig, axes = plt.subplots(1, len(mode.datasets), figsize=(5.0 * len(mode.datasets), 3.8), squeeze=False,
                             layout="constrained")
    for ax, dataset in zip(axes[0], mode.datasets):
        dense = cells.get((dataset, "dense", 1.0))
        for arm in METHODS:
            pts = [(d, cells[(dataset, arm, d)]) for d in mode.densities if (dataset, arm, d) in cells]
            if not pts:
                continue
            x = [d for d, _ in pts]
            y = [c["acc"] for _, c in pts]
            err = [0.0 if not math.isfinite(c["ci"]) else c["ci"] for _, c in pts]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=arm, color=colours[arm])
        if dense is not None:
            ax.axhline(dense["acc"], color=colours["dense"], linestyle="--", label="dense")
        ax.set_xscale("log")
        ax.set_xlabel("density (share of connections)")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Test accuracy against density (mean, 95% interval over seeds)")
    path = out / "accuracy_vs_density.png"
    save_figure(fig, path, dpi=DPI)
    files.append(path)
    # fan-in CV trajectories over epochs, per method, one panel per data set x density x hidden layer
    panels = [(d, rho, k) for d in mode.datasets for rho in mode.densities for k in range(len(mode.hidden))]
    fig, axes = plt.subplots(len(mode.datasets) * len(mode.densities), len(mode.hidden),
                             figsize=(4.5 * len(mode.hidden), 3.0 * len(mode.datasets) * len(mode.densities)),
                             squeeze=False, layout="constrained")
    for ax, (dataset, rho, k) in zip(axes.ravel(), panels):
        for arm in METHODS:
            cell = cells.get((dataset, arm, rho))
            if cell is None:
                continue
            curve = np.nanmean(np.stack(cell["cv_curves"]), axis=0)[:, k]
            ax.plot(cell["epochs"], curve, marker="o", label=arm, color=colours[arm])
        ax.set_title(f"{dataset}, {rho:.0%}, layer {k + 1}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("fan-in CV (present neurons)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Fan-in CV over training, per method (mean over seeds)")
    path = out / "fanin_cv_trajectories.png"
    save_figure(fig, path, dpi=DPI)
    files.append(path)
    files.append(exploration_figure(mode, cells, out))
    plt.close("all")
    return files


def exploration_figure(mode: Mode, cells: dict, out: Path) -> Path:
    """Exploration rate against test accuracy, one point per sparse run (cells need only
    ``explorations`` and ``accs``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topo.plotting import save_figure

    colours = dict(zip(ARMS, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, len(mode.datasets), figsize=(5.0 * len(mode.datasets), 3.8), squeeze=False,
                             layout="constrained")
    markers = dict(zip(mode.densities, "os^D"))
    for ax, dataset in zip(axes[0], mode.datasets):
        for arm in METHODS:
            for rho in mode.densities:
                cell = cells.get((dataset, arm, rho))
                if cell is None:
                    continue
                ax.scatter(cell["explorations"], cell["accs"], color=colours[arm], marker=markers[rho], s=18,
                           label=f"{arm} {rho:.0%}")
        ax.set_xscale("log")
        ax.set_xlabel("exploration rate (sparse layers, log scale)")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle("Exploration rate against test accuracy (one point per run)")
    path = out / "exploration_vs_accuracy.png"
    save_figure(fig, path, dpi=DPI)
    plt.close(fig)
    return path


# -- claims ---------------------------------------------------------------------------------
def _fmt(acc: float, ci: float) -> str:
    return f"{100 * acc:.2f}%" + ("" if not math.isfinite(ci) else f" ± {100 * ci:.2f}")


def compare(cells, a_key, b_key) -> tuple[float, float, tuple[float, float]] | None:
    """(mean a - mean b, Welch p, its 95% interval) or None where a cell is missing."""
    if a_key not in cells or b_key not in cells:
        return None
    a, b = cells[a_key]["accs"], cells[b_key]["accs"]
    return float(np.mean(a) - np.mean(b)), welch_p(a, b), welch_interval(a, b)


def verdict(diff: float, p: float, *, want: str) -> str:
    """``want`` "above": a > b; "match": no significant difference (or a above)."""
    sig = math.isfinite(p) and p < 0.05
    if want == "above":
        return "held" if diff > 0 and sig else ("direction only (not significant)" if diff > 0 else "did not hold")
    return "held" if (not sig or diff > 0) else "did not hold"


def claims(mode: Mode, cells: dict) -> list[str]:
    lines = []
    for dataset in mode.datasets:
        for rho in mode.densities:
            items = [
                ("CHTs beats the dense MLP", ("chts", rho), ("dense", 1.0), "above"),
                ("RigL beats SET", ("rigl", rho), ("set", rho), "above"),
                ("RigL beats static sparse training", ("rigl", rho), ("static", rho), "above"),
                ("SRigL matches RigL", ("srigl", rho), ("rigl", rho), "match"),
                ("GraNet at least matches RigL", ("granet", rho), ("rigl", rho), "match"),
                ("CHTs beats RigL", ("chts", rho), ("rigl", rho), "above"),
            ]
            for text, (a, ra), (b, rb), want in items:
                res = compare(cells, (dataset, a, ra), (dataset, b, rb))
                if res is None:
                    continue
                diff, p, (low, high) = res
                interval = "" if not math.isfinite(low) else f" (95% interval {100 * low:+.2f} to {100 * high:+.2f})"
                lines.append(f"| {dataset} | {rho:.0%} | {text} | {100 * diff:+.2f} points{interval} | "
                             f"{'n/a' if not math.isfinite(p) else f'{p:.3g}'} | {verdict(diff, p, want=want)} |")
            # SRigL's constant fan-in
            cell = cells.get((dataset, "srigl", rho))
            if cell is not None:
                worst = max(max(cv[:-1] or cv) for cv in cell["final_cvs"])
                lines.append(f"| {dataset} | {rho:.0%} | SRigL keeps fan-in CV 0 (hidden layers) | largest final CV "
                             f"{worst:.3g} | - | {'held' if worst < 1e-9 else 'did not hold'} |")
            lines += itop_claim(dataset, rho, cells)
    return lines


#: the claims table's row label of the ITOP claim
ITOP_CLAIM = "ITOP: exploration rate tracks accuracy (dynamic runs)"


def itop_claim(dataset: str, rho: float, cells: dict) -> list[str]:
    """The ITOP row of one cell: Spearman's rank correlation of exploration rate and accuracy
    over the dynamic methods' runs (none with fewer than 3 runs)."""
    from scipy import stats

    xs, ys = [], []
    for arm in ("set", "rigl", "ggr", "srigl", "granet", "chts"):
        cell = cells.get((dataset, arm, rho))
        if cell is not None:
            xs += cell["explorations"]
            ys += cell["accs"]
    if len(xs) < 3:
        return []
    rs = stats.spearmanr(xs, ys)
    rho_s, p = float(rs.statistic), float(rs.pvalue)
    ok = "held" if rho_s > 0 and p < 0.05 else ("direction only" if rho_s > 0 else "did not hold")
    return [f"| {dataset} | {rho:.0%} | {ITOP_CLAIM} | Spearman {rho_s:+.2f} over {len(xs)} runs | {p:.3g} | {ok} |"]


def plain_summary(mode: Mode, cells: dict) -> list[str]:
    """Bullets in plain words: CHTs against the dense MLP, the best method per cell, width, CV, ITOP."""
    lines = []
    for dataset in mode.datasets:
        dense = cells.get((dataset, "dense", 1.0))
        for rho in sorted(mode.densities):
            chts = cells.get((dataset, "chts", rho))
            if dense is None or chts is None:
                continue
            diff, p, _ = compare(cells, (dataset, "chts", rho), (dataset, "dense", 1.0))
            if diff > 0 and math.isfinite(p) and p < 0.05:
                word = "beats"
            elif diff > 0:
                word = "is above, but not significantly,"
            else:
                word = "does not beat"
            lines.append(f"- {dataset}, {rho:.0%} of the connections: CHTs {word} the dense MLP here "
                         f"({_fmt(chts['acc'], chts['ci'])} against {_fmt(dense['acc'], dense['ci'])}, "
                         f"{100 * diff:+.2f} points, Welch p {p:.3g}); it removed "
                         f"{np.mean(chts['removed']):.1f} of {sum(mode.hidden)} hidden neurons on average.")
        for rho in mode.densities:
            ranked = sorted(((cells[(dataset, a, rho)]["acc"], a) for a in METHODS if (dataset, a, rho) in cells),
                            reverse=True)
            if ranked:
                lines.append(f"- {dataset}, {rho:.0%}: methods by mean test accuracy: "
                             + ", ".join(f"{a} {100 * acc:.2f}%" for acc, a in ranked) + ".")
            rigl, srigl = cells.get((dataset, "rigl", rho)), cells.get((dataset, "srigl", rho))
            if rigl is not None and srigl is not None:
                cv_r = np.mean(np.array(rigl["final_cvs"]), axis=0)
                cv_s = max(max(cv[:-1] or cv) for cv in srigl["final_cvs"])
                lines.append(f"- {dataset}, {rho:.0%}: RigL's final fan-in CV per layer "
                             + ", ".join(f"{c:.2f}" for c in cv_r)
                             + f"; SRigL's largest final CV in a hidden layer is {cv_s:.3g}, and it ends "
                             f"{100 * (srigl['acc'] - rigl['acc']):+.2f} points from RigL.")
    lines += training_curve_summary(mode, cells)
    return lines


def training_curve_summary(mode: Mode, cells: dict) -> list[str]:
    """How far from converged each arm ended, and which arms ended below their best epoch."""
    lines = []
    tail = max(1, mode.epochs // 4)
    for dataset in mode.datasets:
        for rho, arm in [(1.0, "dense")] + [(d, a) for d in mode.densities for a in METHODS]:
            cell = cells.get((dataset, arm, rho))
            if cell is None or not cell.get("acc_curves"):
                continue
            curves = np.array([c for c in cell["acc_curves"] if len(c) > tail])
            if curves.size == 0:
                continue
            change = 100 * float(np.mean(curves[:, -1] - curves[:, -1 - tail]))
            best = np.argmax(curves.mean(axis=0))
            drop = 100 * float(curves.mean(axis=0)[best] - curves.mean(axis=0)[-1])
            if arm == "dense" or drop > 0.5:
                line = (f"- {dataset}, {arm}" + ("" if arm == "dense" else f" at {rho:.0%}")
                        + f": test accuracy changed {change:+.2f} points over the last {tail} epochs")
                if drop > 0.5:
                    line += (f", and ends {drop:.2f} points below its best epoch ({int(best)}; mean over seeds)"
                             + ("; a likely cause, not tested here: SET keeps regrowing 30% of its connections "
                                "after every epoch while the cosine schedule takes the learning rate to 0, so "
                                "the connections grown late barely train" if arm == "set" else ""))
                lines.append(line + ".")
    return lines


# -- report ---------------------------------------------------------------------------------
def write_report(mode, argv, out, cells, done, planned, skipped, elapsed, files, counts=None, trained=None):
    from topo.checkpoint import atomic_write_text

    complete = done == planned
    lines = [f"# Topology-driven sparse training ({mode.name} mode)", ""]
    if not complete:
        lines += [f"**Incomplete: {done} of {planned} runs.** Cells below hold the seeds that finished "
                  "(column n); the claims are read from those.", ""]
    lines += [
        "Generated by `python examples/topology_driven_training.py" + ("" if not argv else " " + " ".join(argv))
        + f"` in {elapsed / 60:.1f} minutes"
        + ("" if not counts else " (" + ", ".join(f"{n} runs {how}" for how, n in sorted(counts.items())) + ")")
        + f"; the runs' training epochs took {sum(sum(c['epoch_times']) * (mode.epochs) for c in cells.values()) / 60:.1f} "
        "minutes of wall clock in all.", "",
        "## Setup", "",
        f"- Data: {', '.join(mode.datasets)} (10% of the training set held out for validation); "
        f"MLP {' - '.join(['in'] + [str(h) for h in mode.hidden] + ['classes'])}, ReLU; SGD with momentum 0.9, "
        f"lr 0.05 on a cosine schedule, batch {mode.batch_size}, {mode.epochs} epochs, weight decay 1e-4.",
        f"- Densities {', '.join(f'{d:.0%}' for d in mode.densities)} of the connections, split over layers by ERK; "
        f"mask updates every {mode.update_every} steps for RigL, GGR, SRigL, GraNet and CHTs (until 75% of "
        "training, drop fraction 0.3 on RigL's cosine decay); SET after every epoch but the last; GraNet prunes "
        "from 50% density on the cubic schedule; CHTs starts from BRF masks (`--init brf:r=0.3`), CH2-L3n soft "
        "regrowth with β from 1 to 9, chain removal on.",
        f"- Seeds: {', '.join(map(str, mode.seeds))} per cell.",
    ]
    lines += [f"- Trained by: {trained_by_text(trained)}"]
    if mode.name == "full":
        steps = mode.epochs * math.ceil(54000 / mode.batch_size)
        lines += [
            "- **Differs from the papers**: CHTs (Zhang et al.) trains 784-1000-1000-1000-10 MLPs for 100 epochs, "
            "SET and RigL similar widths for hundreds of epochs. Here the network has their width, 1000 neurons "
            f"per hidden layer, but two hidden layers like topo's other studies, and trains for {mode.epochs} "
            f"epochs ({steps:,} steps; about {int(0.75 * steps) // mode.update_every} mask updates for the "
            "step-based methods), so that the 150 runs fit in one sitting on the machine named above; how far "
            "from converged each arm ended is in the plain words below, and the claims are what holds at this "
            "budget.",
        ]
    elif mode.name == "quick":
        lines += [
            "- **Differs from the papers**: they train MLPs of 1000+ neurons per hidden layer for 100+ epochs. "
            "This quick mode trains a 784-100-100-10 MLP for 3 epochs (211 steps each, 15 mask updates for the "
            "step-based methods, 2 for SET), so that the 150 runs finish in about half an hour on 2 CPU cores; "
            "read its claims as what holds at this small budget, not as a replication.",
        ]
    if skipped:
        lines += [f"- Skipped data sets: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())]
    lines += ["", "## Results", ""]
    header = ["data set", "density", "method", "n", "test accuracy (95% CI)"]
    header += [f"final fan-in CV L{k + 1}" for k in range(len(mode.hidden) + 1)]
    header += ["exploration rate", "hidden neurons removed", "NNSTD between seeds", "s / epoch"]
    rows = []
    for dataset in mode.datasets:
        for rho, arm in [(1.0, "dense")] + [(d, a) for d in mode.densities for a in METHODS]:
            cell = cells.get((dataset, arm, rho))
            if cell is None:
                rows.append([dataset, f"{rho:.0%}", arm, 0] + ["n/a"] * (len(header) - 4))
                continue
            cvs = np.mean(np.array(cell["final_cvs"]), axis=0)
            rows.append([dataset, f"{rho:.0%}", arm, len(cell["accs"]), _fmt(cell["acc"], cell["ci"])]
                        + [f"{c:.3f}" for c in cvs]
                        + [f"{np.mean(cell['explorations']):.4f}", f"{np.mean(cell['removed']):.1f}",
                           "n/a" if not math.isfinite(cell["nnstd"]) else f"{cell['nnstd']:.3f}",
                           f"{np.mean(cell['epoch_times']):.2f}"])
    lines += [markdown_table(header, rows, cell=str), ""]
    older = sum(cell.get("explorations_all_layers", 0) for cell in cells.values())
    lines += ["Fan-in CV is over present neurons (those a method removed are left out); " + EXPLORATION_RULE
              + (f"; {older} of the {sum(len(c['accs']) for c in cells.values())} runs were measured before that "
                 "rule, and their rates count every layer" if older else "")
              + "; GraNet's counts its start at 50% "
              "density, so it is large by construction); hidden neurons removed counts neurons left without inputs "
              "and outputs (by chain removal for CHTs, ablation for SRigL, or by chance at 1% for the others); NNSTD is the mean over pairs of "
              "seeds of the final networks' distance (Liu et al. 2020); time per epoch is wall clock while several "
              "runs shared the machine (see Trained by), so only its ratios within one study mean anything.", ""]
    lines += ["## In plain words", ""] + plain_summary(mode, cells) + [""]
    lines += ["## Published claims, here", "", *CLAIMS_HEAD]
    lines += claims(mode, cells)
    lines += ["", "\"held\" needs p < 0.05 in the claimed direction (for \"matches\": no significant deficit); "
              "\"direction only\" is the claimed direction without significance.", ""]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in files]
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")


#: how the results table's exploration rate is defined (the old rule said "all possible connections")
EXPLORATION_RULE = ("the exploration rate is the share of the sparse layers' possible connections active in any "
                    "epoch's checkpoint (layers dense at the start are left out")
OLD_EXPLORATION_RULE = "the exploration rate is the share of all possible connections active in any epoch's checkpoint ("


# -- restating rates measured over every layer ---------------------------------------------
def sparse_layer_rate(rate_all_layers: float, sizes: list[int], dense_at_start: list[bool]) -> float:
    """The exploration rate over the sparse layers, from the rate over every layer.

    A layer dense at the first checkpoint has all its connections active from the start, so
    it adds its whole size ``D`` to both the union ``U`` and the possible connections ``P``:
    ``R_all = (U + D) / (P + D)``, hence ``R = U / P = (R_all (P + D) - D) / P`` exactly. A
    network dense everywhere keeps its rate (1).

    >>> round(sparse_layer_rate(0.55, [90, 10], [False, True]), 6)  # U = 45 of P = 90
    0.5
    """
    total = sum(sizes)
    dense = sum(size for size, full in zip(sizes, dense_at_start) if full)
    if dense == total:
        return rate_all_layers
    return (rate_all_layers * total - dense) / (total - dense)


def start_layers(mode: Mode, dataset: str, arm: str, density: float, n_features: int,
                 n_classes: int) -> tuple[list[int], list[bool]]:
    """Each layer's size and whether it is dense at the start of a run of this cell.

    The masks come from the trainer's own initialisation of the cell's configuration (no
    training); which layers are dense depends on the budget split, not on the seed.
    """
    from scipy import sparse

    from topo.training.init import starting_masks

    widths = [n_features, *mode.hidden, n_classes]
    shapes = [(widths[k + 1], widths[k]) for k in range(len(widths) - 1)]
    config = arm_config(mode, dataset, arm, density, mode.seeds[0])
    masks = starting_masks(config, shapes, [f"layer{k + 1}" for k in range(len(shapes))]).initial.masks
    sizes = [rows * cols for rows, cols in shapes]
    active = [int(m.nnz) if sparse.issparse(m) else int(np.count_nonzero(m)) for m in masks]
    return sizes, [a == size for a, size in zip(active, sizes)]


def restate_exploration(mode: Mode, out: Path, data: dict, command: str) -> int:
    """Rebuild what ``out``'s runs.csv determines, restating older all-layer exploration rates.

    Rates an older version measured over every layer are restated over the sparse layers
    (runs.csv keeps them as ``exploration_rate_all_layers``); then the README's exploration
    column, its footnote and the claims table, and the exploration figure, are rebuilt from
    runs.csv alone. Returns the number of runs whose rate was restated (0 where runs.csv
    already holds sparse-layer rates).
    """
    import csv

    from topo.atomic import atomic_write_text
    from topo.errors import TopoError

    path = out / "runs.csv"
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise TopoError(f"{path}: cannot read the study's runs ({error.strerror or error})") from None
    if not rows or "exploration_rate" not in rows[0]:
        raise TopoError(f"{path}: no exploration_rate column to restate")
    restate = "exploration_rate_all_layers" not in rows[0]
    cv_columns = sorted((c for c in rows[0] if c.startswith("final_cv_L")), key=lambda c: int(c[len("final_cv_L"):]))
    layers: dict[tuple, tuple] = {}
    cells: dict[tuple, dict] = {}
    for row in rows:
        dataset, arm, density = row["dataset"], row["method"], float(row["density"])
        key = (dataset, arm, density)
        if restate:
            if dataset not in data:
                raise TopoError(f"{path}: data set {dataset!r} is not loaded, so its layers' sizes are unknown")
            if key not in layers:
                layers[key] = start_layers(mode, dataset, arm, density, data[dataset].n_features,
                                           data[dataset].n_classes)
            row["exploration_rate_all_layers"] = row["exploration_rate"]
            row["exploration_rate"] = f"{sparse_layer_rate(float(row['exploration_rate']), *layers[key]):.6g}"
        cell = cells.setdefault(key, {"explorations": [], "accs": [], "final_cvs": []})
        cell["explorations"].append(float(row["exploration_rate"]))
        cell["accs"].append(float(row["test_acc"]))
        cell["final_cvs"].append([float(row[c]) for c in cv_columns])
    if restate:
        write_csv(path, rows)
    exploration_figure(mode, cells, out)
    readme = out / "README.md"
    if readme.is_file():
        text = restated_readme(readme.read_text(), mode, cells, command, len(rows) if restate else 0)
        atomic_write_text(readme, text)
    return len(rows) if restate else 0


#: the header of the README's claims table, and the table's first two lines
CLAIMS_HEADER = "| data set | density | claim | measured | Welch p | verdict |"
CLAIMS_HEAD = (CLAIMS_HEADER, "|---|---|---|---|---|---|")


def restated_readme(text: str, mode: Mode, cells: dict, command: str, restated: int) -> str:
    """``text`` with the exploration column, its footnote and the claims table from ``cells``
    (a note on the restatement added where ``restated`` runs' rates were restated)."""
    lines = text.split("\n")
    out_lines: list[str] = []
    column = None
    in_claims = False
    for line in lines:
        if in_claims:
            if line.startswith("|"):
                continue  # the old rows: rebuilt below the separator
            in_claims = False
        parts = [part.strip() for part in line.strip().strip("|").split("|")] if line.startswith("| ") else []
        if "exploration rate" in parts:
            column = parts.index("exploration rate")
        elif not line.startswith("|"):
            column = None
        if column is not None and len(parts) > column and parts[2] in ARMS:
            rho = 1.0 if parts[2] == "dense" else next(
                (d for d in mode.densities if f"{d:.0%}" == parts[1]), None)
            cell = cells.get((parts[0], parts[2], rho))
            if cell is not None:
                parts[column] = f"{np.mean(cell['explorations']):.4f}"
                line = "| " + " | ".join(parts) + " |"
        if line == CLAIMS_HEADER:
            out_lines += [*CLAIMS_HEAD, *claims(mode, cells)]
            in_claims = True
            continue
        out_lines.append(line.replace(OLD_EXPLORATION_RULE, EXPLORATION_RULE + "; "))
        if line.startswith("Generated by `") and restated:
            out_lines += ["", f"Exploration rates restated over the sparse layers by `{command}` ({restated} runs): "
                          "they were measured over every layer, and a layer dense at the start adds its whole size "
                          "to both the connections ever active and the possible ones, so the restated rate is exact; "
                          "runs.csv keeps the old rate as `exploration_rate_all_layers`."]
    return "\n".join(out_lines)


# -- main -----------------------------------------------------------------------------------
def parse_args(argv):
    parser = study_parser(
        __doc__,
        quick="minutes on 2 cores: the 784-100-100-10 network for 3 epochs (the first, small-budget study)",
        smoke="seconds: digits, tiny network, 2 seeds, 2 epochs",
        data_dir="folder of the data sets (default $TOPO_DATA_DIR, else ../shared/data)",
        out=f"results folder (default {DEFAULT_OUT.relative_to(REPO)}; required with --smoke)",
        runs="scratch folder of the training runs (default OUT/runs/MODE)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 5)")
    parser.add_argument("--summarise-only", action="store_true",
                        help="train nothing: report the runs already finished (an incomplete study says so)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="train N runs at once, each in its own process with one thread (default 1)")
    parser.add_argument("--device", default="cpu",
                        help="torch device the runs train on (cpu, cuda; default cpu); the README names it")
    parser.add_argument("--stop-after", type=float, default=None, metavar="MINUTES",
                        help="start no run after MINUTES minutes; the runs left stay for a later sitting")
    parser.add_argument("--restate-exploration", action="store_true",
                        help="train nothing: rebuild from OUT/runs.csv the README's exploration rates and claims "
                             "table and the exploration figure, first restating over the sparse layers the rates "
                             "an older version measured over every layer")
    parser.add_argument("--compact-runs", action="store_true",
                        help="once a run is measured, delete its checkpoints and resume state "
                             "(its measures and final masks stay, enough to summarise the study)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


#: where a study's runs folder says how and on what its runs were trained
TRAINED_BY = "trained_by.json"


def record_trained_by(runs: Path, argv: list[str], args) -> None:
    """Add this sitting (command, device, machine) to ``runs/trained_by.json``."""
    import os
    import platform

    import torch

    from topo.checkpoint import atomic_write_text

    sitting = {"command": "python examples/topology_driven_training.py " + " ".join(argv),
               "device": args.device, "jobs": args.jobs, "cpus": os.cpu_count(), "torch": torch.__version__,
               "machine": platform.machine()}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        sitting["gpu"] = torch.cuda.get_device_name(0)
    runs.mkdir(parents=True, exist_ok=True)
    sittings = read_trained_by(runs)
    atomic_write_text(runs / TRAINED_BY, json.dumps(sittings + [sitting], indent=1))


def read_trained_by(runs: Path) -> list[dict]:
    try:
        sittings = json.loads((runs / TRAINED_BY).read_text())
    except (OSError, ValueError):
        return []
    return sittings if isinstance(sittings, list) else []


def trained_by_text(sittings: list[dict]) -> str:
    """One line per sitting: the command and the machine it ran on."""
    if not sittings:
        return "not recorded (runs trained before topo kept a record)."
    parts = []
    for s in sittings:
        where = s.get("gpu") or "CPU"
        parts.append(f"`{s.get('command', '?')}` on {where} ({s.get('device', '?')}, {s.get('jobs', 1)} runs at "
                     f"a time, {s.get('cpus', '?')} CPU cores, torch {s.get('torch', '?')})")
    return "; ".join(parts) + "."


#: per worker process: the data sets it loaded, by name
_DATA: dict[str, Any] = {}


def train_and_measure(config, run_dir: Path, data_dir: Path | None, compact: bool, dataset=None) -> tuple[str, dict]:
    """Train (or resume, or reuse) one run, measure it, cache the measures; ``(how, measures)``.

    Runs in a worker process under ``--jobs``: it loads its data set once and keeps it.
    """
    from topo.training.data import load_dataset
    from topo.training.trainer import train_or_resume

    if dataset is None:
        if config.dataset not in _DATA:
            _DATA[config.dataset] = load_dataset(config.dataset, data_dir=data_dir)
        dataset = _DATA[config.dataset]
    result, how = train_or_resume(config, run_dir, dataset=dataset, replace_other=True)
    measured = measure_run(run_dir, result.metrics)
    save_measures(run_dir, measured)
    if compact:
        compact_run(run_dir)
    return how, {k: v for k, v in measured.items() if k != "final"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    mode = make_mode(study_mode(args))
    if args.smoke and args.out is None:
        print(f"{STUDY}: --smoke writes only where --out says (never into examples/results/)", file=sys.stderr)
        return 2
    if refuse_smoke_writes(STUDY, args.smoke, [args.out, args.runs]):
        return 2
    if args.seeds is not None:
        mode.seeds = tuple(range(1, args.seeds + 1))
    mode.device = args.device
    out = Path(args.out) if args.out is not None else DEFAULT_OUT
    runs = Path(args.runs) if args.runs is not None else out / "runs" / mode.name
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = progress_log(STUDY, width=7)
    data_dir = data_folder(args.data_dir)

    data, skipped = load_datasets(mode.datasets, data_dir, STUDY)
    mode.datasets = tuple(d for d in mode.datasets if d in data)
    if args.restate_exploration:
        from topo.errors import TopoError

        command = "python examples/topology_driven_training.py " + " ".join(argv)
        try:
            restated = restate_exploration(mode, out, data, command)
        except TopoError as error:
            print(f"{STUDY}: {error}", file=sys.stderr)
            return 2
        log(f"restated {restated} runs' exploration rates over the sparse layers" if restated
            else f"{out / 'runs.csv'} already holds sparse-layer exploration rates; nothing restated")
        return 0
    plan = run_plan(mode)
    measured: dict[tuple, dict] = {}
    counts: dict[str, int] = {}
    todo = []
    for dataset, arm, density, seed in plan:
        config = arm_config(mode, dataset, arm, density, seed, device=args.device)
        run_dir = run_dir_of(runs, dataset, arm, density, seed)
        key = (dataset, arm, density, seed)
        records = _finished_records(run_dir, config)
        cached = load_measures(run_dir) if records is not None else None
        if cached is not None:
            measured[key] = cached
            counts["reused"] = counts.get("reused", 0) + 1
        elif records is not None and (run_dir / "checkpoints").is_dir():
            m = measure_run(run_dir, records)
            save_measures(run_dir, m)
            measured[key] = m
            counts["reused"] = counts.get("reused", 0) + 1
        elif not args.summarise_only:
            todo.append((key, config, run_dir))
    log(f"{len(measured)} of {len(plan)} runs finished before; {len(todo)} to train"
        + ("" if args.summarise_only else f" with {args.jobs} job(s) on {args.device}"))

    def finished(key, how, result) -> None:
        counts[how] = counts.get(how, 0) + 1
        cached = load_measures(todo_dirs[key])
        if cached is not None:
            measured[key] = cached
        dataset, arm, density, seed = key
        log(f"[{len(measured)}/{len(plan)}] {dataset} {arm} {density:g} seed {seed}: {how}, "
            f"test acc {result['test_acc']:.4f}")

    def out_of_time() -> bool:
        return args.stop_after is not None and time.perf_counter() - started > 60 * args.stop_after

    todo_dirs = {key: run_dir for key, _, run_dir in todo}
    if todo and not args.summarise_only:
        record_trained_by(runs, argv, args)
    if args.jobs == 1:
        for key, config, run_dir in todo:
            if out_of_time():
                break
            how, result = train_and_measure(config, run_dir, data_dir, args.compact_runs, dataset=data[key[0]])
            finished(key, how, result)
    elif todo:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pending = list(todo)
        running: dict[Any, tuple] = {}
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            while pending or running:
                while pending and len(running) < args.jobs and not out_of_time():
                    key, config, run_dir = pending.pop(0)
                    running[pool.submit(train_and_measure, config, run_dir, data_dir, args.compact_runs)] = key
                if not running:
                    break
                done_now, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done_now:
                    key = running.pop(future)
                    try:
                        how, result = future.result()
                    except Exception as error:  # one failed run must not lose the others
                        counts["failed"] = counts.get("failed", 0) + 1
                        log(f"{key}: failed: {type(error).__name__}: {error}")
                        continue
                    finished(key, how, result)

    from topo.checkpoint import read_metrics

    by_cell: dict[tuple, list[dict]] = {}
    for key in plan:  # plan order, so seeds line up across cells
        if tuple(key) in measured:
            m = measured[tuple(key)]
            # test accuracy after every epoch (from metrics.jsonl, kept by compacted runs too)
            m["acc_curve"] = [float(r["test_acc"]) for r in read_metrics(run_dir_of(runs, *key))]
            by_cell.setdefault(key[:3], []).append(m)
    cells = {}
    rows = []
    for key, ms in by_cell.items():
        accs = [m["test_acc"] for m in ms]
        curves = [m.get("acc_curve", []) for m in ms]
        acc, ci = mean_ci(accs)
        cells[key] = {"accs": accs, "acc": acc, "ci": ci, "final_cvs": [m["final_cv"] for m in ms],
                      "cv_curves": [m["cv_curve"] for m in ms], "epochs": ms[0]["epochs"],
                      "explorations": [m["exploration"] for m in ms], "removed": [m["removed"] for m in ms],
                      # runs measured before the rate left dense layers out say nothing of its layers
                      "explorations_all_layers": sum("exploration_layers" not in m for m in ms),
                      "epoch_times": [m["epoch_time"] for m in ms], "nnstd": seed_nnstd([m["final"] for m in ms]),
                      "acc_curves": curves}
        for m in ms:
            rows.append({"dataset": key[0], "method": key[1], "density": key[2], "test_acc": m["test_acc"],
                         **{f"final_cv_L{k + 1}": c for k, c in enumerate(m["final_cv"])},
                         "exploration_rate": m["exploration"], "hidden_neurons_removed": m["removed"],
                         "seconds_per_epoch": m["epoch_time"]})
    done = sum(len(ms) for ms in by_cell.values())
    write_csv(out / "runs.csv", rows)
    files = figures(mode, cells, out) if cells else []
    write_report(mode, argv, out, cells, done, len(plan), skipped, time.perf_counter() - started, files, counts,
                 trained=read_trained_by(runs))
    log(f"done: {done} of {len(plan)} runs; {out / 'README.md'}")
    return 0


def _finished_records(run_dir: Path, config) -> list[dict] | None:
    """The metrics of a finished run of ``config`` in ``run_dir``, or None."""
    from topo.checkpoint import read_metrics

    if not (run_dir / "metrics.jsonl").is_file():
        return None
    try:
        records = read_metrics(run_dir)
    except Exception:  # a run being written or damaged counts as not finished
        return None
    if not records or int(records[-1]["epoch"]) < config.epochs:
        return None
    try:  # a finished run of another configuration (an earlier mode's) is not this one
        from topo.training.config import TrainConfig, config_identity

        saved = TrainConfig.from_dict(json.loads((run_dir / "run.json").read_text())["config"])
    except Exception:  # unreadable, torn, or of an older schema: not this run
        return None
    if config_identity(saved) != config_identity(config):
        return None
    return records


if __name__ == "__main__":
    sys.exit(main())

"""NNSTD study (Liu et al., "Topological Insights into Sparse Neural Networks", ECML-PKDD 2020).

Ten sparse networks that start nearly alike (each made by changing 1% of the previous
one's connections) are trained with an adaptive-connectivity method; the claim is that
their topologies drift far apart (pairwise NNSTD grows) while their accuracies stay alike.

Part 1 reads the ten published SET networks in ``<data>/set-mlp`` (784-784-784-784-10)
at their saved epochs and computes the pairwise NNSTD matrix at each epoch, plus the
spread of their test accuracies (``testacc.txt``, seven of the ten networks) and topo's
own evaluation of the final weights on the Fashion-MNIST and MNIST test sets.

Part 2 does the same with topo's own SET and RigL: one base network's initial masks,
variants each made by moving 1% of the previous variant's connections (per sparse
layer), every network trained from its masks (``TrainConfig.init = "masks:PATH"``) with
the same seed, so the masks are the only difference between the runs.

Usage::

    python examples/nnstd_evolution.py            # full: MNIST, 10 networks per method
    python examples/nnstd_evolution.py --quick    # minutes: digits, 5 networks per method
    python examples/nnstd_evolution.py --smoke    # seconds (the test suite)

Writes README.md, results.csv, accuracy.csv and PNG figures into
examples/results/nnstd_evolution/ (``--out``); training runs go to ``<out>/runs/<mode>``
(git-ignored) and finished runs are reused when the script is run again.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this script
from _study import (data_folder, progress_log, study_folders, study_mode,  # noqa: E402
                    study_parser, write_csv)  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STUDY = "nnstd_evolution"
DPI = 100
SET_EPOCHS_ALL = (0, 10, 20, 30, 40, 50, 100, 150, 190)


@dataclass(frozen=True)
class Mode:
    name: str
    set_networks: int          # published SET networks used (of ten)
    set_epochs: tuple          # their epochs compared
    dataset: str               # topo's own runs
    hidden: tuple
    sparsity: float
    epochs: int
    networks: int              # networks per method
    nnstd_epochs: tuple        # epochs of topo's runs compared
    batch_size: int
    lr: float
    update_every: int          # RigL
    eval_images: int | None    # test images for topo's evaluation of the published weights (None: all)


MODES = {
    "full": Mode("full", 10, SET_EPOCHS_ALL, "mnist", (300, 300, 300), 0.98, 60, 10,
                 (0, 1, 2, 5, 10, 20, 40, 60), 128, 0.05, 100, None),
    "quick": Mode("quick", 10, SET_EPOCHS_ALL, "digits", (128, 128, 128), 0.9, 20, 5,
                  (0, 1, 2, 5, 10, 20), 64, 0.05, 20, None),
    "smoke": Mode("smoke", 3, (0, 190), "digits", (16, 16), 0.8, 1, 3, (0, 1), 64, 0.05, 10, 500),
}
CHANGE_FRACTION = 0.01   # share of a layer's connections moved to make the next variant
DROP_FRACTION = 0.3      # SET's zeta and RigL's initial drop fraction (the paper's SET uses 0.3)


# -- small helpers --------------------------------------------------------------------
def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    n = matrix.shape[0]
    return matrix[~np.eye(n, dtype=bool)]


def matrix_summary(matrix: np.ndarray) -> dict:
    """Mean/min/max off-diagonal, the mean over chain neighbours (|i-j| = 1) and the
    Spearman correlation of NNSTD with the chain distance |i-j| (how much the order in
    which the variants were made still shows)."""
    from scipy.stats import spearmanr

    n = matrix.shape[0]
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    values = matrix[i, j]
    gap = np.abs(i - j)
    rho = spearmanr(gap, values).statistic if n > 2 and np.ptp(values) > 0 else float("nan")
    return {
        "nnstd_mean": float(values.mean()),
        "nnstd_min": float(values.min()),
        "nnstd_max": float(values.max()),
        "nnstd_neighbours": float(values[gap == 1].mean()),
        "chain_spearman": float(rho),
    }


def nnstd_rows(topologies) -> tuple[np.ndarray, dict]:
    """The NNSTD matrix over the sparse layers (topo's default) and the summary row.

    ``nnstd_mean_all_layers`` is the paper's mean, which counts a dense layer (distance 0
    after matching) as one more layer; it equals ``nnstd_mean`` where every layer is sparse.
    """
    from topo.analysis.distance import nnstd_matrix

    matrix = nnstd_matrix(topologies)
    row = matrix_summary(matrix)
    if any(layer.density >= 1.0 for layer in topologies[0]):
        row["nnstd_mean_all_layers"] = matrix_summary(nnstd_matrix(topologies, include_dense=True))["nnstd_mean"]
    else:
        row["nnstd_mean_all_layers"] = row["nnstd_mean"]
    return matrix, row


def mean_turnover(topologies) -> float:
    """Mean over pairs and sparse layers of topo.analysis.distance.mask_turnover."""
    from topo.analysis.distance import mask_turnover

    values = []
    for a in range(len(topologies)):
        for b in range(a + 1, len(topologies)):
            per_layer = mask_turnover(topologies[a], topologies[b])
            values.extend(t for t, layer in zip(per_layer, topologies[a]) if layer.density < 1.0)
    return float(np.mean(values)) if values else float("nan")


def random_reference(topology, seed: int = 7) -> float:
    """NNSTD from ``topology`` to a random network with the same number of connections
    in every layer (uniform placement): how far apart "unrelated" is at this density."""
    from topo.analysis.distance import nnstd
    from topo.topology import Topology

    rng = np.random.default_rng(seed)
    masks = []
    for layer in topology:
        flat = np.zeros(layer.size, dtype=bool)
        flat[rng.choice(layer.size, size=layer.nnz, replace=False)] = True
        masks.append(flat.reshape(layer.shape))
    return nnstd(topology, Topology.from_masks(masks, names=topology.names)).distance


def fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def pct(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def curves(epochs, series, *, ylabel, title, path):
    """A line figure (one line per series) drawn by topo.plotting, relabelled for NNSTD."""
    from topo.plotting import fanin_cv_curves, save_figure

    fig = fanin_cv_curves(epochs, series)
    ax = fig.axes[0]
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(bottom=0.0)
    save_figure(fig, path, dpi=DPI)


def heatmap(matrix, labels, title, path):
    from topo.plotting import nnstd_heatmap

    nnstd_heatmap(matrix, labels, title=title, path=path, dpi=DPI)


# -- part 1: the published SET networks -----------------------------------------------
def set_network_folders(set_dir: Path, n: int) -> list[Path]:
    return [set_dir / f"e5_s0_w{k}" for k in range(n)]


def evaluate_on_idx(topology, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a topology's weights (topo's MaskedMLP: ReLU between layers)."""
    import torch

    from topo.training.model import from_topology

    torch.set_num_threads(1)
    model = from_topology(topology)
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(images, dtype=torch.float32))
    return float((logits.argmax(dim=1).numpy() == labels).mean())


def read_test_set(name: str, data_dir: Path, limit: int | None = None):
    """Raw test images scaled to [0, 1] (as the SET code feeds them) and labels, or None."""
    from topo.errors import TopoError
    from topo.training.data import locate, read_idx

    try:
        files = locate(name, data_dir=data_dir)
    except TopoError:
        return None
    images = read_idx(files["test_images"], ndim=3).reshape(-1, 28 * 28).astype(np.float32) / 255.0
    labels = read_idx(files["test_labels"], ndim=1).astype(np.int64)
    return images[:limit], labels[:limit]


def published_set_part(mode: Mode, data_dir: Path | None, out: Path, log) -> dict | None:
    import topo

    set_dir = data_dir / "set-mlp" if data_dir is not None else None
    if set_dir is None or not set_dir.is_dir():
        log(f"part 1 skipped: no set-mlp folder under {data_dir} (set --data-dir or TOPO_DATA_DIR)")
        return None
    folders = set_network_folders(set_dir, mode.set_networks)
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        log(f"part 1 skipped: missing {', '.join(str(m) for m in missing)}")
        return None
    labels = [f"w{k}" for k in range(len(folders))]
    rows, matrices = [], {}
    for epoch in mode.set_epochs:
        started = time.perf_counter()
        topologies = [topo.formats.load(f / f"epoch_{epoch:03d}", weights=False) for f in folders]
        matrix, summary = nnstd_rows(topologies)
        matrices[epoch] = matrix
        row = {"family": "published SET (set-mlp)", "epoch": epoch, "networks": len(folders)}
        row.update(summary)
        row["turnover_mean"] = mean_turnover(topologies)
        row["random_reference"] = random_reference(topologies[0])
        rows.append(row)
        log(f"  set-mlp epoch {epoch:3d}: mean NNSTD {row['nnstd_mean']:.3f} "
            f"(turnover {row['turnover_mean']:.3f}) in {time.perf_counter() - started:.1f} s")
    first, last = mode.set_epochs[0], mode.set_epochs[-1]
    shown = [first, last] if len(mode.set_epochs) < 4 else [first, 10, 50, last]
    figures = []
    for epoch in shown:
        name = f"set_mlp_nnstd_epoch{epoch:03d}.png"
        heatmap(matrices[epoch], labels, f"Published SET networks: NNSTD at epoch {epoch}", out / name)
        figures.append(name)
    curves(list(mode.set_epochs), {"mean NNSTD (off-diagonal)": [r["nnstd_mean"] for r in rows],
                                   "chain neighbours |i-j|=1": [r["nnstd_neighbours"] for r in rows],
                                   "mask turnover (no matching)": [r["turnover_mean"] for r in rows]},
           ylabel="distance between networks", title="Published SET networks drift apart",
           path=out / "set_mlp_nnstd_over_epochs.png")
    figures.append("set_mlp_nnstd_over_epochs.png")

    # accuracies: testacc.txt (published), and topo's forward pass of the final weights
    accuracy = []
    tests = {name: read_test_set(name, data_dir, mode.eval_images) for name in ("fashion-mnist", "mnist")}
    for label, folder in zip(labels, folders):
        entry = {"family": "published SET (set-mlp)", "network": label, "source": "testacc.txt"}
        testacc = folder / "testacc.txt"
        if testacc.is_file():
            values = np.loadtxt(testacc)
            entry["final_test_acc"] = float(values[-1])
            entry["epochs_recorded"] = int(values.size)
        last_topology = topo.formats.load(folder / f"epoch_{last:03d}")
        for name, test in tests.items():
            if test is not None:
                entry[f"topo_eval_{name}"] = evaluate_on_idx(last_topology, *test)
        accuracy.append(entry)
    return {"rows": rows, "matrices": matrices, "accuracy": accuracy, "figures": figures, "labels": labels}


# -- part 2: topo's own runs ----------------------------------------------------------
def perturb(masks: list[np.ndarray], fraction: float, rng) -> list[np.ndarray]:
    """Move round(fraction * nnz) connections of every sparse layer to positions that
    were inactive (not the ones just removed); a dense layer is left alone."""
    new = []
    for mask in masks:
        mask = mask.copy()
        flat = mask.reshape(-1)
        if flat.all():
            new.append(mask)
            continue
        active = np.flatnonzero(flat)
        inactive = np.flatnonzero(~flat)
        n = max(1, int(round(fraction * active.size)))
        n = min(n, inactive.size)
        flat[rng.choice(active, size=n, replace=False)] = False
        flat[rng.choice(inactive, size=n, replace=False)] = True
        new.append(mask)
    return new


def variant_checkpoints(mode: Mode, dataset, runs: Path, log) -> list[Path]:
    """The base network's initial masks and the chain of 1% variants, as checkpoints."""
    from topo.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
    from topo.topology import Topology
    from topo.training.config import TrainConfig
    from topo.training.trainer import train_or_resume

    base_run = runs / "base"
    base = TrainConfig(dataset=mode.dataset, hidden=mode.hidden, sparsity=mode.sparsity, density="uniform",
                       dense_output=True, method="static", epochs=0, seed=0, threads=1, device="cpu")
    _, how = train_or_resume(base, base_run, dataset=dataset, replace_other=True)
    if how != "trained":
        log(f"  {how} {base_run.name}")
    paths = [list_checkpoints(base_run)[0]]
    rng = np.random.default_rng(2020)
    topology = load_checkpoint(paths[0], weights=False)
    masks = [layer.mask.toarray() for layer in topology]
    for k in range(1, mode.networks):
        masks = perturb(masks, CHANGE_FRACTION, rng)
        path = runs / "variants" / f"w{k}.safetensors"
        if not path.is_file():
            save_checkpoint(Topology.from_masks(masks, names=topology.names), path)
        paths.append(path)
    return paths


def own_runs_part(mode: Mode, data_dir: Path | None, out: Path, runs: Path, log) -> dict | None:
    from topo.checkpoint import load_checkpoint, read_metrics
    from topo.errors import TopoError
    from topo.training.config import TrainConfig
    from topo.training.data import load_dataset
    from topo.training.trainer import train_or_resume

    try:
        dataset = load_dataset(mode.dataset, data_dir=data_dir)
    except TopoError as error:
        log(f"part 2 skipped: {error}")
        return None
    starts = variant_checkpoints(mode, dataset, runs, log)
    labels = [f"w{k}" for k in range(len(starts))]
    rows, matrices, accuracy, figures = [], {}, [], []
    series = {}
    train_seconds = 0.0
    for method in ("set", "rigl"):
        run_dirs = []
        for k, start in enumerate(starts):
            config = TrainConfig(
                dataset=mode.dataset, hidden=mode.hidden, sparsity=mode.sparsity, density="uniform",
                dense_output=True, init=f"masks:{start}", method=method, drop_fraction=DROP_FRACTION,
                update_every=mode.update_every, epochs=mode.epochs, batch_size=mode.batch_size, lr=mode.lr,
                seed=0, threads=1, device="cpu",
            )
            run_dir = runs / method / f"w{k}"
            started = time.perf_counter()
            _, how = train_or_resume(config, run_dir, dataset=dataset, replace_other=True)
            if how != "trained":
                log(f"  {how} {run_dir.name}")
            run_dirs.append(run_dir)
            records = read_metrics(run_dir)
            final = records[-1]
            train_seconds += sum(r.get("epoch_time", 0.0) for r in records)
            accuracy.append({"family": f"topo {method.upper() if method == 'set' else 'RigL'} ({mode.dataset})",
                             "network": labels[k], "source": "metrics.jsonl",
                             "final_test_acc": final["test_acc"], "epochs_recorded": final["epoch"]})
            log(f"  {method} w{k}: test acc {final['test_acc']:.4f} ({time.perf_counter() - started:.1f} s)")
        family = f"topo {'SET' if method == 'set' else 'RigL'} ({mode.dataset})"
        for epoch in mode.nnstd_epochs:
            topologies = [load_checkpoint(r / "checkpoints" / f"epoch_{epoch:04d}.safetensors", weights=False)
                          for r in run_dirs]
            matrix, summary = nnstd_rows(topologies)
            matrices[(method, epoch)] = matrix
            row = {"family": family, "epoch": epoch, "networks": len(run_dirs)}
            row.update(summary)
            row["turnover_mean"] = mean_turnover(topologies)
            row["random_reference"] = random_reference(topologies[0])
            rows.append(row)
        series[family] = [r["nnstd_mean"] for r in rows if r["family"] == family]
        for epoch in (mode.nnstd_epochs[0], mode.nnstd_epochs[-1]):
            name = f"topo_{method}_nnstd_epoch{epoch:03d}.png"
            heatmap(matrices[(method, epoch)], labels, f"{family}: NNSTD at epoch {epoch}", out / name)
            figures.append(name)
    curves(list(mode.nnstd_epochs), series, ylabel="mean off-diagonal NNSTD",
           title=f"topo's runs from masks 1% apart ({mode.dataset})", path=out / "topo_nnstd_over_epochs.png")
    figures.append("topo_nnstd_over_epochs.png")
    return {"rows": rows, "matrices": matrices, "accuracy": accuracy, "figures": figures, "labels": labels,
            "n_train": len(dataset.y_train), "n_test": len(dataset.y_test),
            "densities": read_metrics(runs / "base")[0]["densities"], "train_seconds": train_seconds}


# -- an earlier run of the study ------------------------------------------------------
def read_previous(folder: Path) -> dict:
    """An earlier run's ``results.csv`` and ``accuracy.csv`` (and ``about.txt``, one line
    saying how it was made), to compare topo's own runs with.

    results.csv files written before the column ``nnstd_mean_all_layers`` existed hold the
    paper's mean (dense output layer counted) in ``nnstd_mean``.
    """
    import csv

    with open(folder / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(folder / "accuracy.csv", newline="") as handle:
        accuracy = list(csv.DictReader(handle))
    about = folder / "about.txt"
    for row in rows:
        row.setdefault("nnstd_mean_all_layers", row["nnstd_mean"])
    return {"rows": rows, "accuracy": accuracy, "folder": folder,
            "about": about.read_text().strip() if about.is_file() else str(folder)}


def previous_section(previous: dict, part2: dict) -> list[str]:
    """README lines: topo's SET and RigL figures of this run beside the earlier run's."""
    from scipy.stats import ttest_ind

    lines = [f"## Against the earlier run ({previous['about']})", "",
             "Mean NNSTD with the dense output layer counted (the only mean both runs recorded), per epoch, and the "
             "final test accuracy of the networks (mean ± SD; Welch's t-test between the two runs).", "",
             "| family | epoch | earlier | this run | change |", "|---|---|---|---|---|"]
    moved = []
    for family in dict.fromkeys(r["family"] for r in part2["rows"]):
        before = {int(r["epoch"]): float(r["nnstd_mean_all_layers"]) for r in previous["rows"] if r["family"] == family}
        now = {r["epoch"]: r["nnstd_mean_all_layers"] for r in part2["rows"] if r["family"] == family}
        shared = [e for e in now if e in before]
        for epoch in shared:
            change = f"{now[epoch] - before[epoch]:+.3f}".replace("-0.000", "+0.000")  # no sign from CSV rounding
            lines.append(f"| {family} | {epoch} | {fmt(before[epoch])} | {fmt(now[epoch])} | {change} |")
        acc_before = [float(a["final_test_acc"]) for a in previous["accuracy"] if a["family"] == family]
        acc_now = [a["final_test_acc"] for a in part2["accuracy"] if a["family"] == family]
        if shared:
            last = shared[-1]
            text = (f"{family}: final mean NNSTD {fmt(before[last])} -> {fmt(now[last])} "
                    f"({(now[last] - before[last]) / before[last]:+.0%})")
            if len(acc_before) > 1 and len(acc_now) > 1:
                p = float(ttest_ind(acc_now, acc_before, equal_var=False).pvalue)
                text += (f"; test accuracy {pct(np.mean(acc_before))} ± {pct(np.std(acc_before, ddof=1))} -> "
                         f"{pct(np.mean(acc_now))} ± {pct(np.std(acc_now, ddof=1))} (Welch p {p:.2g})")
            moved.append(text)
    return lines + [""] + [f"- {line}" for line in moved] + [""]


# -- the report -----------------------------------------------------------------------
def spread(values) -> dict:
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if values.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max())}


def verdict(first: dict, last: dict) -> str:
    """Did the networks drift apart, and how far toward unrelated random networks?"""
    share = last["nnstd_mean"] / last["random_reference"] if last["random_reference"] > 0 else float("nan")
    if last["nnstd_mean"] <= first["nnstd_mean"] + 0.05:
        return "no (little drift)"
    return (f"yes: they drift apart, ending at {share:.0%} of the NNSTD of unrelated random networks"
            + (" (far apart)" if share >= 0.5 else " (but stay much closer than unrelated networks)"))


def claim_rows(mode: Mode, part1: dict | None, part2: dict | None) -> list[tuple[str, str, str, str]]:
    rows = []
    setting1 = f"published set-mlp networks w0-w{mode.set_networks - 1}, 784-784-784-784-10, SET, epochs {mode.set_epochs[0]}-{mode.set_epochs[-1]}"
    own = f"{mode.name}: {mode.dataset}, {'-'.join(map(str, mode.hidden))}, {mode.sparsity:.0%} sparse (uniform, dense output), {mode.networks} networks/method, {mode.epochs} epochs, seed 0"
    if part1 is not None:
        r = part1["rows"]
        first, last = r[0], r[-1]
        peak = max(r, key=lambda x: x["nnstd_mean"])
        rows.append((
            "Networks that start 1% apart have nearly the same topology at the start",
            "small NNSTD between the ten networks at the beginning of training",
            f"set-mlp epoch_{first['epoch']:03d}: mean NNSTD {fmt(first['nnstd_mean'])} (neighbours {fmt(first['nnstd_neighbours'])}, "
            f"mask turnover {fmt(first['turnover_mean'])}) [{setting1}]. The shared epoch_000 is already after one SET epoch "
            f"({first['turnover_mean']:.0%} of a network's connections are not in another's), not the 1%-apart initial masks",
            "partly: closest at epoch 0, but not 'nearly identical' in the shared files",
        ))
        rows.append((
            "Their topologies drift far apart during training",
            "pairwise NNSTD grows with training: very different sparse topologies",
            f"set-mlp: mean NNSTD {fmt(first['nnstd_mean'])} at epoch {first['epoch']} -> {fmt(last['nnstd_mean'])} at epoch {last['epoch']} "
            f"(largest {fmt(peak['nnstd_mean'])} at epoch {peak['epoch']}); chain order (Spearman of NNSTD with the chain distance abs(i-j)) "
            f"{fmt(first['chain_spearman'], 2)} -> {fmt(last['chain_spearman'], 2)}; unrelated random networks of the same layer sizes: {fmt(last['random_reference'])}",
            verdict(first, last),
        ))
        acc = spread([a.get("final_test_acc") for a in part1["accuracy"]])
        fm = spread([a.get("topo_eval_fashion-mnist") for a in part1["accuracy"]])
        rows.append((
            "... while their accuracy stays alike",
            "all ten reach about the same test accuracy",
            f"testacc.txt (final of 200 epochs, {acc['n']} networks): {pct(acc['mean'])} ± {pct(acc['std'])}, "
            f"range {pct(acc['min'])}-{pct(acc['max'])} ({fmt(100 * (acc['max'] - acc['min']), 2)} points); "
            f"topo's forward pass of the epoch-{mode.set_epochs[-1]} weights on Fashion-MNIST test: {pct(fm['min'])}-{pct(fm['max'])} ({fm['n']} networks)",
            "yes" if acc["n"] and acc["max"] - acc["min"] < 0.01 else ("n/a" if not acc["n"] else "no"),
        ))
        mn = spread([a.get("topo_eval_mnist") for a in part1["accuracy"]])
        if fm["n"] and mn["n"]:
            rows.append((
                "(data) the shared set-mlp networks were trained on MNIST (../shared/data/README.md)",
                "-",
                f"their final weights classify the Fashion-MNIST test set at {pct(fm['mean'])} and MNIST at {pct(mn['mean'])} (chance) "
                f"with topo's MaskedMLP (ReLU, pixels/255); testacc.txt (~87%) matches Fashion-MNIST",
                "no: the networks are Fashion-MNIST networks" if fm["mean"] > 0.5 and mn["mean"] < 0.2 else "see the accuracy table",
            ))
    if part2 is not None:
        for method in ("SET", "RigL"):
            r = [x for x in part2["rows"] if x["family"].startswith(f"topo {method}")]
            accs = spread([a["final_test_acc"] for a in part2["accuracy"] if a["family"].startswith(f"topo {method}")])
            first, last = r[0], r[-1]
            rows.append((
                f"topo {method}: networks from masks 1% apart drift apart, accuracy alike",
                "as above (the paper ran SET)" if method == "SET" else "(not in the paper: RigL's gradient-driven growth)",
                f"mean NNSTD {fmt(first['nnstd_mean'])} at epoch {first['epoch']} -> {fmt(last['nnstd_mean'])} at epoch {last['epoch']} "
                f"(unrelated random networks: {fmt(last['random_reference'])}); "
                f"test accuracy {pct(accs['mean'])} ± {pct(accs['std'])} (range {fmt(100 * (accs['max'] - accs['min']), 2)} points) [{own}]",
                verdict(first, last) + ("" if accs["max"] - accs["min"] < 0.02 else "; accuracy spread > 2 points"),
            ))
    return rows


def dataset_note(part1: dict | None) -> str:
    """Which data set the published networks classify, from topo's evaluation of their weights."""
    if part1 is None:
        return "- Part 1 did not run."
    acc = spread([a.get("final_test_acc") for a in part1["accuracy"]])
    fm = spread([a.get("topo_eval_fashion-mnist") for a in part1["accuracy"]])
    mn = spread([a.get("topo_eval_mnist") for a in part1["accuracy"]])
    if not (fm["n"] and mn["n"]):
        return "- The Fashion-MNIST or MNIST test set was not found, so the published weights were not evaluated."
    text = (f"- The shared networks' accuracy files record {pct(acc['mean'])} (final epoch); evaluated by topo on the test "
            f"sets, their final weights score {pct(fm['mean'])} on Fashion-MNIST and {pct(mn['mean'])} on MNIST")
    if fm["mean"] > 0.5 and mn["mean"] < 0.2:
        text += (", so they were trained on Fashion-MNIST, not on MNIST as ../shared/data/README.md says (the testacc.txt "
                 "values are multiples of 1/12000, which also does not fit MNIST's 10,000 test images).")
    return text + "."[: int(not text.endswith("."))]


def render_readme(command: str, mode: Mode, part1, part2, elapsed: float, data_dir, previous: dict | None = None) -> str:
    from topo.training.config import TrainConfig

    regrow = TrainConfig().set_regrow_init  # the runs are made with the default
    lines = [
        "# NNSTD evolution: similar starts, different ends (Liu et al. 2020)",
        "",
        f"mode: {mode.name}, seeds: 1 (seed 0 for all {mode.networks} networks per method; they differ by their masks), "
        f"data: {mode.dataset} (topo's runs) and the published set-mlp networks (Fashion-MNIST), epochs: "
        f"{mode.epochs} (topo's runs), {', '.join(str(e) for e in mode.set_epochs)} (set-mlp)",
        "",
        "Verdict: see the agrees? column of the claims; no interval, the study has one seed per network (the spread "
        "over the network pairs is in the NNSTD tables).",
        "",
        f"Command: `{command}`",
        "",
        f"SET regrows new connections with initial weights '{regrow}' (`--set-regrow-init`; 'normal' is the "
        "reference implementation's small normal draw, 'zero' starts them at 0).",
        "",
        f"Mode: **{mode.name}**. Published networks: {mode.set_networks} of ../shared/data/set-mlp at epochs "
        f"{', '.join(str(e) for e in mode.set_epochs)}. topo's runs: {mode.dataset}, hidden {'-'.join(map(str, mode.hidden))}, "
        f"{mode.sparsity:.0%} sparse overall (one density for every layer but the output layer, which is dense), {mode.networks} networks per method "
        f"(w0 = the base's initial masks, w(k) = w(k-1) with {CHANGE_FRACTION:.0%} of each sparse layer's connections moved), "
        f"SET and RigL with drop fraction {DROP_FRACTION}, RigL update every {mode.update_every} steps, {mode.epochs} epochs, "
        + (f"initial layer densities {', '.join(f'{d:.3f}' for d in part2['densities'])}; " if part2 else "")
        + f"batch {mode.batch_size}, SGD lr {mode.lr} cosine, seed 0 for every network (same weight initialisation and batch order; "
        f"only the masks differ). This invocation took {elapsed:.0f} s on {os.cpu_count()} shared cores"
        + (f" (training {part2['train_seconds']:.0f} s, the sum of the runs' epoch times; finished runs are reused)" if part2 else "")
        + ", one training process, threads=1.",
        "",
        "## Claims",
        "",
        "| claim | paper | topo (setting) | agrees? |",
        "|---|---|---|---|",
    ]
    for row in claim_rows(mode, part1, part2):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    lines += ["", "The paper's values are stated qualitatively here (its heatmaps were not transcribed). "
              "NNSTD is `topo.analysis.distance.nnstd_matrix` (the paper's method: optimal neuron matching layer by layer), "
              "averaged over the sparse layers, topo's default; the column 'dense counted' is the paper's mean, which "
              "counts the dense output layer (distance 0 after matching) as one more layer. Mask turnover is "
              "`mask_turnover` averaged over the sparse layers (no neuron matching).", ""]
    header = ("| family | epoch | networks | mean NNSTD | dense counted | min | max | neighbours (abs(i-j)=1) "
              "| Spearman(NNSTD, abs(i-j)) | mask turnover | NNSTD to a random network |")
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    for title, part in (("Published SET networks (../shared/data/set-mlp)", part1), ("topo's own runs", part2)):
        lines += [f"## {title}", ""]
        if part is None:
            lines += ["Skipped (data not found).", ""]
            continue
        lines += [header, sep]
        for r in part["rows"]:
            lines.append(f"| {r['family']} | {r['epoch']} | {r['networks']} | {fmt(r['nnstd_mean'])} | "
                         f"{fmt(r['nnstd_mean_all_layers'])} | {fmt(r['nnstd_min'])} | "
                         f"{fmt(r['nnstd_max'])} | {fmt(r['nnstd_neighbours'])} | {fmt(r['chain_spearman'], 2)} | {fmt(r['turnover_mean'])} | {fmt(r['random_reference'])} |")
        lines += ["", "| family | network | final test accuracy | source | topo eval Fashion-MNIST | topo eval MNIST |", "|---|---|---|---|---|---|"]
        for a in part["accuracy"]:
            lines.append(f"| {a['family']} | {a['network']} | {pct(a.get('final_test_acc'))} | {a['source'] if 'final_test_acc' in a else 'no testacc.txt'} | "
                         f"{pct(a.get('topo_eval_fashion-mnist'))} | {pct(a.get('topo_eval_mnist'))} |")
        lines.append("")
        for name in part["figures"]:
            lines += [f"![{name}]({name})", ""]
    if previous is not None and part2 is not None:
        lines += previous_section(previous, part2)
    lines += [
        "## Notes",
        "",
        ("- The shared `epoch_000` checkpoints are not the initial masks: networks that should share all but a few percent of "
         f"their connections (each variant 1% from the previous) already have about {part1['rows'][0]['turnover_mean']:.0%} of "
         "their connections not in the other's (mean mask turnover |A xor B| / (|A|+|B|) over pairs); they were probably saved "
         "after the first epoch's SET rewiring (zeta = 0.3), not before training." if part1 else "- Part 1 did not run."),
        "- How much the chain order still shows is the Spearman column: NNSTD against the distance abs(i-j) of two networks "
        "in the chain of variants (1 = networks made further apart stay further apart).",
        dataset_note(part1),
        "- The published code counts dense layers (distance 0 after matching) in the mean, so with one dense layer "
        "among four its maximum is 0.75; topo's default mean over the sparse layers reaches 1. Both are in the tables "
        "('mean NNSTD' and 'dense counted'; they agree where every layer is sparse). The distance to a random "
        "network is over the sparse layers too.",
        f"- Training runs are in `{(REPO / 'examples' / 'results' / STUDY / 'runs').relative_to(REPO)}/<mode>` (git-ignored); "
        "a re-run reuses finished runs and resumes interrupted ones.",
        f"- Data folder: {os.path.relpath(data_dir, REPO) if data_dir is not None else 'not found'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(
        __doc__,
        quick="a few minutes on two cores (digits, 5 networks per method)",
        smoke="seconds: tiny networks, 1 epoch (the test suite)",
        data_dir="folder with mnist/, fashion-mnist/, set-mlp/ (default $TOPO_DATA_DIR or ../shared/data)",
        out=f"where README.md, CSVs and figures go (default {(REPO / 'examples' / 'results' / STUDY).relative_to(REPO)}; "
            "--smoke: a new temporary folder, never examples/results/)",
        runs="scratch folder of training runs (default OUT/runs/MODE)",
        path_type=None,
    )
    parser.add_argument("--previous", type=Path, default=None, metavar="FOLDER",
                        help="results folder of an earlier run of this study (its results.csv, accuracy.csv and "
                             "an optional about.txt saying how it was made): the README compares topo's SET and "
                             "RigL figures with it")
    args = parser.parse_args(argv)
    mode = MODES[study_mode(args)]
    previous = None
    if args.previous is not None:
        try:
            previous = read_previous(args.previous)
        except (OSError, KeyError, ValueError) as error:
            print(f"nnstd_evolution: --previous {args.previous}: cannot read its results ({error})", file=sys.stderr)
            return 2
    folders = study_folders(STUDY, args, mode.name)
    if folders is None:
        return 2
    out, runs = folders
    out.mkdir(parents=True, exist_ok=True)
    data_dir = data_folder(args.data_dir)

    log = progress_log()
    started = time.perf_counter()
    log(f"{STUDY} ({mode.name}): data {data_dir}")
    part1 = published_set_part(mode, data_dir, out, log)
    part2 = own_runs_part(mode, data_dir, out, runs, log)
    elapsed = time.perf_counter() - started

    from topo.checkpoint import atomic_write_text

    rows = (part1["rows"] if part1 else []) + (part2["rows"] if part2 else [])
    write_csv(out / "results.csv", rows)
    write_csv(out / "accuracy.csv", (part1["accuracy"] if part1 else []) + (part2["accuracy"] if part2 else []))
    shown = ["python", "examples/nnstd_evolution.py", *(argv if argv is not None else sys.argv[1:])]
    atomic_write_text(out / "README.md", render_readme(shlex.join(shown), mode, part1, part2, elapsed, data_dir, previous))
    log(f"wrote {out / 'README.md'} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One self-contained HTML report of one or more training runs.

The report opens offline in any browser: figures are embedded as base64 PNG
(``<img src="data:image/png;base64,...">``), the styling is a short embedded style
sheet, there is no JavaScript and nothing is fetched from elsewhere.

This module decides what the report says (numbers, tables, figures, notes) as plain
data; the Jinja2 templates in ``topo/templates/`` (``report.html.j2``,
``blocks.html.j2``, ``report.css``) decide how it looks. Autoescaping is on, so
everything read from files (configuration values, metric names, layer names) is
HTML-escaped.

For each run it holds a summary (final metrics, density, fan-in CV, drift
convergence), a per-layer table, figures (loss and accuracy, fan-in ridge plot, CV /
drift / turnover, densities, hub persistence, gradient against fan-in, the final
fan-in distribution with fits) and the run's configuration (``run.json``). With several
runs it starts with a comparison: a table of the runs, their training curves together
and, where their shapes agree, the NNSTD between their final checkpoints.

:func:`build_report` returns the HTML text; :func:`write_report` writes it atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.progress import ProgressCallback
from topo.runs import RunData, load_run_data  # the data of one run; re-exported as the report's names

__all__ = ["REPORT_SECTIONS", "RunData", "load_run_data", "run_summary", "layer_table", "build_report", "write_report"]

#: The sections every run gets, as the suffixes of their HTML ids (``run1-summary``, ...).
REPORT_SECTIONS = (
    "summary",
    "layers",
    "curves",
    "fanin",
    "drift",
    "exploration",
    "density",
    "hubs",
    "gradients",
    "degree",
    "configuration",
)

_TITLES = {
    "summary": "Summary",
    "layers": "Layers",
    "curves": "Loss and accuracy",
    "fanin": "Fan-in over training",
    "drift": "Drift toward equilibrium",
    "exploration": "Exploration and active width",
    "density": "Layer densities",
    "hubs": "Hub persistence",
    "gradients": "Gradient against fan-in",
    "degree": "Final fan-in distribution",
    "configuration": "Configuration",
}

_CAPTIONS = {
    "fanin": "Histograms of the integer fan-in of each layer's neurons, one row per checkpoint "
    "(labelled by epoch, first at the top); CV is each row's coefficient of variation.",
    "drift": "Left: fan-in CV. Middle: Wasserstein-1 distance of the normalised fan-in to the "
    "equilibrium (the pooled last checkpoints), dotted lines where a layer converged, dashed the "
    "tolerance. Right: share of connections that changed between consecutive checkpoints.",
    "exploration": "Left: exploration rate (ITOP), the share of possible connections active in at least "
    "one checkpoint so far, per layer and (dashed) for the network; it starts at the initial density. "
    "Right: share of each layer's neurons still present (with an input or an output); a removed "
    "neuron has neither.",
    "density": "Share of possible connections present, per layer and (dashed) for the network.",
    "hubs": "Jaccard overlap of each checkpoint's hubs (top 10% of neurons by fan-in) with the final hubs.",
    "gradients": "Per-neuron mean |gradient| against fan-in at the last checkpoint; concentration is "
    "the hubs' mean gradient over all neurons' mean, ρ the Spearman correlation.",
    "degree": "Share of neurons with fan-in at least x, with lognormal, power-law (tail), exponential "
    "and normal fits; the AIC winner is drawn solid.",
}



# -- numbers -----------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (np.integer, int)):
        return f"{int(value):,}"
    if _is_number(value):
        value = float(value)
        if not math.isfinite(value):
            return "–"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _config_value(config: Mapping[str, Any], key: str) -> Any:
    """A configuration value from run.json, at its top level or under ``"config"``."""
    inner = config.get("config")
    if isinstance(inner, Mapping) and key in inner:
        return inner[key]
    return config.get(key)


def run_summary(data: RunData, *, include_dense: bool = False) -> dict[str, Any]:
    """Headline figures of a run: epochs, final and best metrics, density, CV, drift convergence.

    Parameters
    ----------
    data : RunData
        As :func:`load_run_data` returns it.
    include_dense : bool
        Count dense layers in the mean CV and the convergence.

    Returns
    -------
    dict
        ``name``, ``method``, ``dataset``, ``sparsity``, ``epochs``, ``checkpoints``,
        ``final`` (the numeric fields of the last metrics record), ``best_val_acc``,
        ``density``, ``nnz``, ``fan_in_cv_mean``, ``converged`` (layers converged /
        layers) and ``converged_epoch`` (the latest epoch at which a layer converged),
        ``dense_layers`` (the last checkpoint's dense layers). The mean CV and the
        convergence are over the sparse layers unless ``include_dense``: a dense
        layer's fan-ins tie (CV 0) and it converges trivially.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import append_metrics, checkpoint_name, save_checkpoint, write_run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> run = Path(tmp.name) / "rigl_a"
    >>> _ = write_run_config(run, {"method": "rigl", "dataset": "mnist", "sparsity": 0.5})
    >>> for epoch in range(3):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.5).astype(int)
    ...     net = Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"])
    ...     _ = save_checkpoint(net, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    ...     if epoch:
    ...         append_metrics(run, {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.5 + 0.1 * epoch})
    >>> summary = run_summary(load_run_data(run))
    >>> summary["name"], summary["method"], summary["epochs"], summary["checkpoints"], summary["best_val_acc"]
    ('rigl_a', 'rigl', 2, 3, 0.7)
    >>> summary["final"], summary["nnz"], summary["dense_layers"], summary["converged"]
    ({'epoch': 2, 'train_loss': 0.5, 'val_acc': 0.7}, 34, ['out'], '0/1')
    >>> tmp.cleanup()
    """
    from topo.analysis.degree import dense_layer_names, fan_in_cv, summary_layers

    summary: dict[str, Any] = {
        "name": data.name,
        "method": _config_value(data.config, "method"),
        "dataset": _config_value(data.config, "dataset"),
        "sparsity": _config_value(data.config, "sparsity"),
        "checkpoints": len(data.topologies),
    }
    summary["final"] = {k: v for k, v in (data.metrics[-1].items() if data.metrics else []) if _is_number(v)}
    val = [r.get("val_acc") for r in data.metrics if _is_number(r.get("val_acc"))]
    summary["best_val_acc"] = max(val) if val else None
    epochs = [r.get("epoch") for r in data.metrics if _is_number(r.get("epoch"))]
    last = data.topologies[-1] if data.topologies else None
    summary["epochs"] = max(epochs) if epochs else (last.epoch if last is not None else None)
    dense = dense_layer_names(last) if last is not None else []
    summary["dense_layers"] = dense
    if last is not None:
        kept = summary_layers([layer.name in dense for layer in last], include_dense=include_dense)
        cvs = np.array(fan_in_cv(last), dtype=np.float64)[kept]
        summary["density"] = last.density
        summary["nnz"] = last.nnz
        summary["fan_in_cv_mean"] = float(np.nanmean(cvs)) if np.isfinite(cvs).any() else None
    else:
        summary.update(density=None, nnz=None, fan_in_cv_mean=None)
    if data.drift is not None:
        result = data.drift
        counted = summary_layers([name in dense for name in result.layers], include_dense=include_dense)
        convergence = [result.convergence[k] for k in counted]
        done = [at for at in convergence if at is not None]
        summary["converged"] = f"{len(done)}/{len(convergence)}"
        summary["converged_epoch"] = (
            max(_x_of(result, at) for at in done) if len(done) == len(convergence) and done else None
        )
    else:
        summary["converged"] = None
        summary["converged_epoch"] = None
    return summary


def _x_of(result: Any, index: int) -> Any:
    epoch = result.epochs[index]
    return epoch if epoch is not None else result.labels[index]


def layer_table(data: RunData) -> list[dict[str, Any]]:
    """One row per layer of the last checkpoint.

    Each row holds the shape, density and fan-in CV at the first and last checkpoint,
    drift (final W1, converged epoch, equilibrium CV), and the gradient concentration
    and Spearman correlation where the checkpoint has gradient statistics. When a layer
    is dense, every row says whether it is (``dense``), and the dense layers have no
    gradient concentration or correlation (all their fan-ins tie).

    Parameters
    ----------
    data : RunData
        As :func:`load_run_data` returns it.

    Returns
    -------
    list of dict
        Keys ``layer``, ``shape``, ``nnz``, ``density_first``, ``density``,
        ``fan_in_mean``, ``cv_first``, ``cv``, and where they apply ``w1_final``,
        ``converged_at``, ``equilibrium_cv``, ``dense``, ``concentration``,
        ``spearman``; empty when the run has no checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import append_metrics, checkpoint_name, save_checkpoint, write_run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> run = Path(tmp.name) / "rigl_a"
    >>> _ = write_run_config(run, {"method": "rigl", "dataset": "mnist", "sparsity": 0.5})
    >>> for epoch in range(3):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.5).astype(int)
    ...     net = Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"])
    ...     _ = save_checkpoint(net, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    ...     if epoch:
    ...         append_metrics(run, {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.5 + 0.1 * epoch})
    >>> for row in layer_table(load_run_data(run)):
    ...     print(row["layer"], row["shape"], row["nnz"], row["dense"], round(row["density"], 3))
    fc1 6×8 22 False 0.458
    out 2×6 12 True 1.0
    >>> tmp.cleanup()
    """
    from topo.analysis.degree import coefficient_of_variation, is_dense
    from topo.analysis.gradients import gradient_concentration, hierarchy_strength

    if not data.topologies:
        return []
    first, last = data.topologies[0], data.topologies[-1]
    rows = []
    for j, layer in enumerate(last):
        row: dict[str, Any] = {
            "layer": layer.name,
            "shape": f"{layer.n_out}×{layer.n_in}",
            "nnz": layer.nnz,
            "density_first": first[layer.name].density if layer.name in first.names else None,
            "density": layer.density,
            "fan_in_mean": float(layer.fan_in.mean()) if layer.n_out else None,
            "cv_first": coefficient_of_variation(first[layer.name].fan_in) if layer.name in first.names else None,
            "cv": coefficient_of_variation(layer.fan_in),
        }
        result = data.drift
        if result is not None and layer.name in result.layers:
            k = result.layers.index(layer.name)
            at = result.convergence[k]
            row["w1_final"] = float(result.wasserstein[-1, k])
            row["converged_at"] = None if at is None else _x_of(result, at)
            row["equilibrium_cv"] = result.equilibrium_fit.get(layer.name, {}).get("cv")
        if is_dense(layer):
            row["dense"] = True
        elif "grad_mean" in layer.stats:
            # a dense layer has no hubs and no fan-in spread, so neither of these means anything
            row["concentration"] = gradient_concentration(layer)
            row["spearman"] = hierarchy_strength(layer)
        rows.append(row)
    if any("dense" in row for row in rows):
        for row in rows:
            row.setdefault("dense", False)
    return rows


# -- the blocks a section is made of (rendered by templates/blocks.html.j2) ---------------
Block = dict


def _note(text: str) -> Block:
    return {"kind": "note", "text": text}


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *, text_columns=()) -> Block:
    if not rows:
        return _note("nothing to show")
    return {
        "kind": "table",
        "columns": [{"title": title, "text": key in text_columns} for key, title in columns],
        "rows": [[{"value": _fmt(row.get(key)), "text": key in text_columns} for key, _ in columns] for row in rows],
    }


def _figure(make: Callable[[], Any], alt: str, caption: str | None, *, dpi: int) -> Block:
    """A figure, or a note saying why it is not available (a problem the data has, not a bug)."""
    from topo.plotting.output import figure_bytes

    try:
        fig = make()
    except TopoError as exc:
        return _note(f"Not available: {exc}")
    data = base64.b64encode(figure_bytes(fig, "png", dpi=dpi)).decode("ascii")
    return {"kind": "figure", "src": f"data:image/png;base64,{data}", "alt": alt, "caption": caption}


def _cards(items: Sequence[tuple[str, Any]]) -> Block:
    return {"kind": "cards", "cards": [{"value": _fmt(v), "label": k} for k, v in items]}


def _dense_note(notes: Mapping[str, str]) -> list[Block]:
    """A note naming the dense layers a figure leaves out, or nothing."""
    if not notes:
        return []
    return [_note("Not drawn: " + "; ".join(f"{name} ({text})" for name, text in notes.items()) + ".")]


def _dense_layers(topologies: Sequence[Any]) -> dict[str, str]:
    """Layer name -> note, for the layers of the last checkpoint dense in every checkpoint given."""
    from topo.plotting.compose import dense_note, is_dense

    last = topologies[-1]
    return {
        layer.name: dense_note(layer)
        for layer in last
        if all(layer.name in t.names and is_dense(t[layer.name]) for t in topologies)
    }


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = []
        for key, inner in value.items():
            items.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list):
        return [(prefix, json.dumps(value, default=str))]
    return [(prefix, value)]


_LAYER_COLUMNS = [
    ("layer", "layer"), ("shape", "out×in"), ("dense", "dense"), ("nnz", "connections"),
    ("density_first", "density (first)"), ("density", "density"), ("fan_in_mean", "fan-in mean"),
    ("cv_first", "CV (first)"), ("cv", "CV"), ("w1_final", "W1 to equilibrium"),
    ("converged_at", "converged at epoch"), ("equilibrium_cv", "equilibrium CV"),
    ("concentration", "gradient concentration"), ("spearman", "Spearman ρ"),
]


_EXPLORATION_COLUMNS = [
    ("layer", "layer"), ("exploration_rate", "exploration rate"), ("initial_density", "initial density"),
    ("width", "width"), ("active_width", "active width"), ("neurons_removed", "neurons removed"),
    ("explored_fan_in_mean", "mean explored fan-in share"),
]


def _exploration_blocks(topologies: Sequence[Any], *, dpi: int, include_dense: bool = False) -> list[Block]:
    """The exploration figure and its per-layer table, or a note why there is none."""
    from topo.analysis.exploration import exploration
    from topo.plotting import compose

    try:
        result = exploration(topologies, include_dense=include_dense)
    except TopoError as exc:
        return [_note(f"Not available: {exc}")]
    return [
        _figure(lambda: compose.exploration_figure(result), "exploration rate and active width",
                _CAPTIONS["exploration"], dpi=dpi),
        _table(result.layer_rows(), _EXPLORATION_COLUMNS, text_columns=("layer",)),
    ]


def _run_sections(
    data: RunData, prefix: str, *, dpi: int, max_ridge_rows: int, tick: Callable[[], None], include_dense: bool = False
) -> list[dict]:
    """The sections of one run: anchor, title and blocks each, in :data:`REPORT_SECTIONS` order."""
    from topo.plotting import compose

    sections: list[dict] = []

    def section(key: str, *blocks: Block | list[Block]) -> None:
        flat: list[Block] = []
        for item in blocks:
            flat.extend(item if isinstance(item, list) else [item])
        sections.append({"anchor": f"{prefix}-{key}", "title": _TITLES[key], "blocks": flat})
        tick()

    summary = run_summary(data, include_dense=include_dense)
    final = summary["final"]
    cards = [(k, final[k]) for k in ("test_acc", "val_acc", "train_loss") if k in final]
    cards += [
        ("best val_acc", summary["best_val_acc"]),
        ("epochs", summary["epochs"]),
        ("density", summary["density"]),
        ("mean fan-in CV", summary["fan_in_cv_mean"]),
        ("layers converged", summary["converged"]),
        ("all converged by epoch", summary["converged_epoch"]),
    ]
    facts = [(k, summary[k]) for k in ("method", "dataset", "sparsity") if summary[k] is not None]
    fact_line = ", ".join(f"{k} {_fmt(v)}" for k, v in facts)
    blocks: list[Block] = [
        {"kind": "meta", "text": str(data.path) + (f" — {fact_line}" if fact_line else "")},
        _cards([(k, v) for k, v in cards if v is not None]),
    ]
    if final:
        blocks += [{"kind": "text", "text": "Last metrics record:"}, _table([final], [(k, k) for k in final])]
    if data.drift_error:
        blocks.append(_note(f"Drift not computed: {data.drift_error}"))
    if summary["dense_layers"]:
        dense = ", ".join(summary["dense_layers"])
        blocks.append(_note(
            f"Dense layers ({dense}) are counted in the mean fan-in CV and the layers converged." if include_dense
            else f"Mean fan-in CV and layers converged are over the sparse layers; dense layers ({dense}: every "
                 "connection present, equal fan-ins) are left out."
        ))
    section("summary", blocks)

    rows = layer_table(data)
    columns = [c for c in _LAYER_COLUMNS if any(c[0] in r for r in rows)]
    section("layers", _table(rows, columns, text_columns=("layer", "shape")) if rows else _note("No checkpoints."))

    if data.metrics:
        section("curves", _figure(lambda: compose.curves_figure(data.path), "loss and accuracy", None, dpi=dpi))
    else:
        section("curves", _note("No metrics recorded (metrics.jsonl is missing or empty)."))

    topologies = data.topologies
    if topologies:
        dense_run = _dense_layers(topologies)
        dense_last = _dense_layers(topologies[-1:])
        section("fanin", _figure(lambda: compose.fanin_figure(topologies, max_rows=max_ridge_rows, dense="omit"),
                                 "fan-in ridge plot", _CAPTIONS["fanin"], dpi=dpi), _dense_note(dense_run))
        if data.drift is not None:
            section("drift", _figure(lambda: compose.drift_figure(data.drift), "fan-in CV, drift and turnover", _CAPTIONS["drift"], dpi=dpi))
        else:
            section("drift", _note(f"Not available: {data.drift_error or 'no drift'}"))
        section("exploration", _exploration_blocks(topologies, dpi=dpi, include_dense=include_dense))
        section("density", _figure(lambda: compose.density_figure(topologies), "layer densities", _CAPTIONS["density"], dpi=dpi))
        section("hubs", _figure(lambda: compose.hubs_figure(topologies, dense="omit"), "hub persistence", _CAPTIONS["hubs"],
                                dpi=dpi), _dense_note(dense_run))
        gradients = _figure(lambda: compose.gradients_figure(topologies[-1], dense="omit"), "gradient against fan-in",
                            _CAPTIONS["gradients"], dpi=dpi)
        # a dense layer is only worth a note where the figure exists at all
        section("gradients", gradients, _dense_note(dense_last) if gradients["kind"] == "figure" else [])
        section("degree", _figure(lambda: compose.degree_figure(topologies[-1], dense="omit"), "fan-in distribution with fits",
                                  _CAPTIONS["degree"], dpi=dpi), _dense_note(dense_last))
    else:
        for key in ("fanin", "drift", "exploration", "density", "hubs", "gradients", "degree"):
            section(key, _note("No checkpoints in this run."))

    if data.config:
        flat = [{"key": k, "value": v if _is_number(v) or v is None or isinstance(v, bool) else str(v)} for k, v in _flatten(data.config)]
        raw = json.dumps(data.config, indent=2, sort_keys=True, default=str)
        section("configuration", _table(flat, [("key", "key"), ("value", "value")], text_columns=("key", "value")),
                {"kind": "details", "summary": "run.json", "text": raw})
    else:
        section("configuration", _note("No run.json."))
    return sections


def _comparison(runs: Sequence[RunData], *, dpi: int, include_dense: bool = False) -> list[Block]:
    from topo.plotting import compose

    rows = []
    for data in runs:
        summary = run_summary(data, include_dense=include_dense)
        final = summary["final"]
        rows.append(
            {
                "name": data.name, "method": summary["method"], "dataset": summary["dataset"],
                "sparsity": summary["sparsity"], "epochs": summary["epochs"],
                "test_acc": final.get("test_acc"), "best_val_acc": summary["best_val_acc"],
                "train_loss": final.get("train_loss"), "density": summary["density"],
                "fan_in_cv_mean": summary["fan_in_cv_mean"], "converged": summary["converged"],
            }
        )
    columns = [
        ("name", "run"), ("method", "method"), ("dataset", "dataset"), ("sparsity", "sparsity"),
        ("epochs", "epochs"), ("test_acc", "final test_acc"), ("best_val_acc", "best val_acc"),
        ("train_loss", "final train_loss"), ("density", "density"), ("fan_in_cv_mean", "mean fan-in CV"),
        ("converged", "layers converged"),
    ]
    blocks = [_table(rows, columns, text_columns=("name", "method", "dataset", "converged"))]
    with_metrics = [d for d in runs if d.metrics]
    if with_metrics:
        blocks.append(_figure(lambda: compose.curves_figure([d.path for d in with_metrics]), "loss and accuracy of all runs", None, dpi=dpi))
    finals = [d.topologies[-1] for d in runs if d.topologies]
    if len(finals) >= 2:

        def distance():
            from topo.analysis.distance import nnstd_matrix

            matrix = nnstd_matrix(finals, include_dense=include_dense)  # topologies already loaded
            return compose.distance_figure(matrix=matrix, labels=compose.distance_labels(finals))

        blocks += [
            {"kind": "heading", "text": "Topology distance between the final checkpoints"},
            _figure(distance, "NNSTD between final checkpoints",
                    "NNSTD: neuron-matched topology distance (0: the same graph up to relabelling); "
                    "runs are named by what tells them apart.", dpi=dpi),
        ]
    return blocks


def _environment():
    """The Jinja2 environment of the report's templates (package data of topo), autoescaping on."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("topo", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def build_report(
    runs: Sequence[str | os.PathLike | RunData] | str | os.PathLike,
    *,
    title: str | None = None,
    dpi: int = 100,
    max_ridge_rows: int = 10,
    include_dense: bool = False,
    progress: ProgressCallback | None = None,
) -> str:
    """The HTML text of a report on one or more runs.

    Parameters
    ----------
    runs : run folder(s), or :class:`RunData` already loaded
    title : str, optional
        Default: ``"topo report: NAME"`` (or the number of runs).
    dpi : int
        Resolution of the embedded figures.
    max_ridge_rows : int
        Checkpoints shown in the fan-in ridge plot (spread evenly).
    include_dense : bool
        Count dense layers in the network-level summaries (mean fan-in CV, layers
        converged, NNSTD between runs); by default they are over the sparse layers
        and the dense layers are named apart.
    progress : callable, optional
        ``progress(done, total)`` over loading and drawing.

    Returns
    -------
    str
        A complete HTML document, self-contained.

    Raises
    ------
    TopoError
        If a path is not a run folder or a file cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import append_metrics, checkpoint_name, save_checkpoint, write_run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> run = Path(tmp.name) / "rigl_a"
    >>> _ = write_run_config(run, {"method": "rigl", "dataset": "mnist", "sparsity": 0.5})
    >>> for epoch in range(3):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.5).astype(int)
    ...     net = Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"])
    ...     _ = save_checkpoint(net, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    ...     if epoch:
    ...         append_metrics(run, {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.5 + 0.1 * epoch})
    >>> html = build_report(run, dpi=30)
    >>> html.startswith("<!DOCTYPE html>"), "<title>topo report: rigl_a</title>" in html
    (True, True)
    >>> html.count('src="data:image/png;base64,')
    7
    >>> build_report([])
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: no runs to report on
    >>> tmp.cleanup()
    """
    from topo import __version__

    if isinstance(runs, (str, os.PathLike, RunData)):
        runs = [runs]
    runs = list(runs)
    if not runs:
        raise TopoError("no runs to report on")
    steps_per_run = 1 + len(REPORT_SECTIONS)
    total = steps_per_run * len(runs) + (1 if len(runs) > 1 else 0)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    loaded: list[RunData] = []
    for run in runs:
        loaded.append(run if isinstance(run, RunData) else load_run_data(run))
        tick()
    _distinct_names(loaded)

    title = title or (f"topo report: {loaded[0].name}" if len(loaded) == 1 else f"topo report: {len(loaded)} runs")
    comparison: list[Block] = []
    if len(loaded) > 1:
        comparison = _comparison(loaded, dpi=dpi, include_dense=include_dense)
        tick()
    run_views = []
    for index, data in enumerate(loaded, start=1):
        prefix = f"run{index}"
        sections = _run_sections(
            data, prefix, dpi=dpi, max_ridge_rows=max_ridge_rows, tick=tick, include_dense=include_dense
        )
        run_views.append({"anchor": prefix, "name": data.name, "sections": sections})
    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return _environment().get_template("report.html.j2").render(
        title=title,
        version=__version__,
        generated=generated,
        sources=[str(d.path) for d in loaded],
        comparison=comparison,
        runs=run_views,
    )


def _distinct_names(loaded: Sequence[RunData]) -> None:
    """Give runs whose names collide the fewest trailing folders that tell them apart, so that
    headings and anchors stay apart; the same folder given twice is counted ("run (2)")."""
    from topo.plotting.labels import shortest_run_names

    names = [d.name for d in loaded]
    if len(set(names)) == len(names):
        return
    tails = shortest_run_names([os.path.abspath(d.path) for d in loaded], strip_common=False)
    seen: dict[str, int] = {}
    for data, tail in zip(loaded, tails):
        seen[tail] = seen.get(tail, 0) + 1
        data.name = tail if seen[tail] == 1 else f"{tail} ({seen[tail]})"


def write_report(
    runs: Sequence[str | os.PathLike] | str | os.PathLike,
    path: str | os.PathLike,
    **options: Any,
) -> Path:
    """Build the report (see :func:`build_report`) and write it to ``path`` atomically.

    Parameters
    ----------
    runs : run folder(s)
    path : path-like
        The HTML file to write; its folder is created.
    **options
        Passed to :func:`build_report` (``title``, ``dpi``, ...).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TopoError
        As :func:`build_report`.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo import Topology
    >>> from topo.checkpoint import append_metrics, checkpoint_name, save_checkpoint, write_run_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> run = Path(tmp.name) / "rigl_a"
    >>> _ = write_run_config(run, {"method": "rigl", "dataset": "mnist", "sparsity": 0.5})
    >>> for epoch in range(3):
    ...     fc1 = (np.random.default_rng(epoch).random((6, 8)) < 0.5).astype(int)
    ...     net = Topology.from_masks([fc1, np.ones((2, 6))], names=["fc1", "out"])
    ...     _ = save_checkpoint(net, run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    ...     if epoch:
    ...         append_metrics(run, {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.5 + 0.1 * epoch})
    >>> written = write_report(run, Path(tmp.name) / "report.html", title="RigL, 50 %", dpi=30)
    >>> written.name, "<h1>RigL, 50 %</h1>" in written.read_text(encoding="utf-8")
    ('report.html', True)
    >>> tmp.cleanup()
    """
    from topo.atomic import atomic_write_text

    return atomic_write_text(path, build_report(runs, **options))

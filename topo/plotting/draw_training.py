"""Drawing loss and accuracy over epochs from metrics records."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from topo.plotting._shared import finish, integer_ticks, note, palette, panels, themed
from topo.plotting.output import DEFAULT_DPI

__all__ = ["training_curves"]


_ACCURACY_SUFFIXES = ("_acc", "_accuracy")


def _metric_keys(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in keys and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.append(key)
    losses = [k for k in keys if k == "loss" or k.endswith("_loss")]
    accuracies = [k for k in keys if k in ("acc", "accuracy") or k.endswith(_ACCURACY_SUFFIXES)]
    return losses, accuracies


def _metric_series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for index, record in enumerate(records):
        value = record.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        epoch = record.get("epoch")
        xs.append(float(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else float(index + 1))
        ys.append(float(value))
    return np.array(xs), np.array(ys)


def training_curves(
    records: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    dpi: int = DEFAULT_DPI,
):
    """Loss and accuracy over epochs from ``metrics.jsonl`` records.

    Every numeric field named ``loss`` or ``*_loss`` goes to the loss panel, every
    ``acc``, ``accuracy``, ``*_acc`` or ``*_accuracy`` to the accuracy panel; records
    that lack a field are skipped for that field only, and an empty panel says so.
    The x position is the record's ``epoch``, or its position when it has none.

    Parameters
    ----------
    records : sequence of mapping, or mapping of run name to sequence of mapping
        One run's records, or several runs' (one colour per run, named once in a
        legend below the panels; one line style per field, named in each panel).
    title : str, optional
    path, dpi
        See :func:`~topo.plotting.draw_fanin.fanin_ridge`.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes titled ``"Loss"`` and ``"Accuracy"``, x label ``"epoch"``; each line is
        labelled ``"<run> <field>"`` (``"<field>"`` for one run).

    Examples
    --------
    >>> records = [{"epoch": 1, "train_loss": 0.9, "test_acc": 0.70},
    ...            {"epoch": 2, "train_loss": 0.5, "test_acc": 0.82}]
    >>> fig = training_curves(records)
    >>> [ax.get_title() for ax in fig.axes]
    ['Loss', 'Accuracy']
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['train_loss']
    """
    runs: Mapping[str, Sequence[Mapping[str, Any]]]
    runs = records if isinstance(records, Mapping) else {"": records}
    several = len(runs) > 1
    styles: list[Any] = ["-", "--", ":", "-."]
    with themed():
        from matplotlib.lines import Line2D

        fig, (ax_loss, ax_acc) = panels(2, panel_size=(5.0, 3.6))
        run_colours = palette(len(runs))
        for ax, pick, empty in ((ax_loss, 0, "no loss recorded"), (ax_acc, 1, "no accuracy recorded")):
            # one line style per field, the same in every run
            fields = list(dict.fromkeys(k for run_records in runs.values() for k in _metric_keys(run_records)[pick]))
            field_style = {key: styles[i % len(styles)] for i, key in enumerate(fields)}
            field_colours = dict(zip(fields, palette(len(fields))))
            drawn: list[str] = []
            for run_index, (run_name, run_records) in enumerate(runs.items()):
                for key in _metric_keys(run_records)[pick]:
                    x, y = _metric_series(run_records, key)
                    if x.size == 0:
                        continue
                    if several:
                        colour, style, label = run_colours[run_index], field_style[key], f"{run_name} {key}"
                    else:
                        colour, style, label = field_colours[key], "-", key
                    ax.plot(x, y, linestyle=style, color=colour, marker="o" if x.size <= 40 else None,
                            markersize=3, linewidth=1.5, label=label)
                    drawn.append(key)
                    integer_ticks(ax, x)
            if not drawn:
                note(ax, empty)
            elif several:
                # the panel's legend says which field each line style is; the runs' colours
                # are said once, below both panels, so that no legend covers the lines
                shown = [key for key in fields if key in drawn]
                ax.legend([Line2D([], [], color="0.3", linestyle=field_style[k]) for k in shown], shown,
                          fontsize="small")
            else:
                ax.legend(fontsize="small")
            ax.set_xlabel("epoch")
        if several:
            handles = [Line2D([], [], color=colour, linewidth=2.5) for colour in run_colours]
            fig.legend(handles, [str(name) for name in runs], loc="outside lower center",
                       ncols=min(len(runs), 2), fontsize="small", frameon=False)
        ax_loss.set_ylabel("loss")
        ax_loss.set_title("Loss")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_title("Accuracy")
        if title:
            fig.suptitle(title)
    return finish(fig, path, dpi)

"""Figures a reader can use: labels naming run and epoch (topo.plotting.labels), dense layers as a note, titles that fit."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plot_runs import make_run
from topo import plotting
from topo.errors import TopoError
from topo.plotting.labels import Labels, run_epoch_labels, shortest_run_names

_WORD = re.compile(r"[^_\-/ .]+(?:\.\d[^_\-/ .]*)*")


# -- run names ------------------------------------------------------------------------------
def test_run_names_drop_common_words_at_separators():
    assert shortest_run_names(["sweep/rigl_s0_mnist", "sweep/rigl_s1_mnist"]) == ["s0", "s1"]
    # cut only where a separator is: "seed10" and "seed12" share "seed1" but no word
    assert shortest_run_names(["seed10", "seed12"]) == ["seed10", "seed12"]
    # never cut to nothing: "rigl" is all of the first name
    assert shortest_run_names(["rigl", "rigl_long"]) == ["rigl", "rigl_long"]
    assert shortest_run_names(["rigl_s", "rigl_long"]) == ["s", "long"]
    assert shortest_run_names(["runs/rigl_a"]) == ["rigl_a"]
    assert shortest_run_names([]) == []


def test_run_names_use_parent_folders_only_where_needed():
    paths = ["/r/a/seed0", "/r/b/seed0", "/r/c/seed1"]
    # folder names collide, so one parent is taken, then the shared "seed" word is dropped
    assert shortest_run_names(paths, strip_common=False) == ["a/seed0", "b/seed0", "c/seed1"]
    # then the seeds, last words that no longer tell the runs apart, go
    assert shortest_run_names(paths) == ["a", "b", "c"]
    assert shortest_run_names(["/x/run_a", "/y/run_b"], strip_common=False) == ["run_a", "run_b"]
    # the same run given twice gets the same name
    assert shortest_run_names(["/x/rigl_a", "/x/rigl_b", "/x/rigl_a"]) == ["a", "b", "a"]


_word = st.text(alphabet="abc01", min_size=1, max_size=3)
_name = st.lists(st.tuples(_word, st.sampled_from("_-.")), min_size=1, max_size=4).map(
    lambda parts: "".join(w + s for w, s in parts)[:-1]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_name, min_size=2, max_size=6, unique=True))
def test_run_names_are_unique_pieces_of_the_runs_and_as_short_as_rules_allow(runs):
    names = shortest_run_names(runs)
    assert len(set(names)) == len(runs)  # unique
    words = [_WORD.findall(name) for name in names]
    for run, name_words in zip(runs, words):
        # a nonempty selection of the run's own words, in order
        remaining = iter(_WORD.findall(run))
        assert name_words and all(word in remaining for word in name_words)
    # no shorter form by the rules: dropping every name's last word would make two collide
    trimmed = [tuple(w[:-1]) for w in words]
    assert not all(trimmed) or len(set(trimmed)) < len(trimmed)


def test_run_names_of_a_sweep():
    runs = ["digits-lognormal-cv1-sp0.9-seed0-92b67585", "digits-powerlaw-cv1-sp0.9-seed0-00d2d29c",
            "digits-random-sp0.8-seed0-0de18615", "digits-dense-seed0-f630e436"]
    # "digits" and "seed0" are in every name, the ids are not needed
    assert shortest_run_names(runs) == ["lognormal-cv1-sp0.9", "powerlaw-cv1-sp0.9", "random-sp0.8", "dense"]
    twins = ["digits-random-sp0.9-seed0-23f36a0d", "digits-random-sp0.9-seed0-abd80194", "digits-dense-seed0-f630e436"]
    # two runs that differ only by their id keep it
    assert shortest_run_names(twins) == ["random-sp0.9-23f36a0d", "random-sp0.9-abd80194", "dense-f630e436"]


# -- run and epoch labels ------------------------------------------------------------------
def test_labels_name_what_differs_and_title_what_is_shared():
    same_epoch = run_epoch_labels(["/r/rigl_a", "/r/rigl_b", "/r/rigl_c"], [190, 190, 190])
    assert same_epoch == Labels(["a", "b", "c"], "epoch 190")
    assert same_epoch.title("NNSTD") == "NNSTD (epoch 190)"
    one_run = run_epoch_labels(["/r/rigl_a"] * 3, [0, 10, 190])
    assert one_run == Labels(["0", "10", "190"], "run rigl_a")
    both = run_epoch_labels(["/r/rigl_a", "/r/rigl_a", "/r/rigl_b"], [10, 190, 190])
    assert both == Labels(["a@10", "a@190", "b@190"], None)
    assert both.title("NNSTD") == "NNSTD"
    inside = run_epoch_labels(["/r/x", "/r/x"], ["5", "5@120"])
    assert inside.labels == ["5", "5@120"]


def test_labels_without_run_or_epoch_and_repeats():
    assert run_epoch_labels([None, None], [None, None]).labels == ["#0", "#1"]
    assert run_epoch_labels(["/r/a", None], [3, 3]).labels == ["a", "#1"]
    # the same checkpoint twice is counted, the only place a count appears
    assert run_epoch_labels(["/r/a", "/r/b", "/r/a"], [1, 1, 1]).labels == ["a", "b", "a (2)"]
    with pytest.raises(ValueError):
        run_epoch_labels(["/r/a"], [1, 2])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["/s/rigl_a", "/s/rigl_b", "/t/rigl_a", "/s/set_a"]),
                          st.integers(0, 3)), min_size=2, max_size=8, unique=True))
def test_labels_are_unique_for_distinct_checkpoints(pairs):
    runs, epochs = zip(*pairs)
    labels = run_epoch_labels(list(runs), list(epochs))
    assert len(set(labels.labels)) == len(pairs)
    assert not any("(" in label for label in labels.labels)  # no counted repeats
    if len(set(epochs)) > 1:
        for label, epoch in zip(labels.labels, epochs):
            assert label == str(epoch) or label.endswith(f"@{epoch}")


# -- figures that use them -----------------------------------------------------------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels")
    return make_run(root / "rigl_s0_mnist", epochs=2), make_run(root / "rigl_s1_mnist", epochs=2, seed=3)


def _ticks(ax):
    return [t.get_text() for t in ax.get_xticklabels()]


def test_distance_figure_names_run_and_epoch(two_runs):
    a, b = two_runs
    checkpoints = [a / "checkpoints" / "epoch_0001.safetensors", a / "checkpoints" / "epoch_0002.safetensors",
                   b / "checkpoints" / "epoch_0002.safetensors"]
    fig = plotting.distance_figure(checkpoints)
    assert _ticks(fig.axes[0]) == ["s0@1", "s0@2", "s1@2"]
    # run folders stand for their last checkpoint: both at epoch 2, said once in the title
    fig = plotting.distance_figure([a, b])
    assert _ticks(fig.axes[0]) == ["s0", "s1"]
    assert fig.axes[0].get_title() == "NNSTD between checkpoints (epoch 2)"
    assert plotting.distance_matrix([a, b])[1] == ["s0", "s1"]


def test_clustermap_title_is_inside_the_figure(two_runs, tmp_path):
    a, b = two_runs
    checkpoints = [a / "checkpoints" / f"epoch_000{e}.safetensors" for e in range(3)]
    fig = plotting.distance_figure(checkpoints, style="clustermap", path=tmp_path / "c.png", dpi=40)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    titles = [t for t in fig.findobj(lambda o: hasattr(o, "get_text") and "NNSTD, clustered" in str(o.get_text()))]
    assert titles, "no title drawn"
    box = titles[0].get_window_extent(renderer)
    width, height = fig.get_size_inches() * fig.dpi
    assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height


def test_curves_legend_names_runs(two_runs):
    fig = plotting.curves_figure(list(two_runs))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["rigl_s0_mnist", "rigl_s1_mnist"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train_loss"]


# -- dense layers --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def erk_like_run(tmp_path_factory):
    """fc3 (4 x 12) dense at every epoch, as ERK makes a small output layer."""
    return make_run(tmp_path_factory.mktemp("dense") / "erk", epochs=2, dense=("fc3",))


def test_is_dense_and_note():
    import topo

    full = topo.Layer.from_mask("out", np.ones((10, 100), dtype=bool))
    almost = np.ones((10, 100), dtype=bool)
    almost[3, 7] = False
    assert plotting.is_dense(full) and not plotting.is_dense(topo.Layer.from_mask("out", almost))
    assert not plotting.is_dense(topo.Layer.from_mask("empty", np.zeros((0, 5), dtype=bool)))
    assert plotting.dense_note(full) == "dense: all 10×100 connections"


def test_fanin_figure_draws_a_dense_layer_as_a_note(erk_like_run):
    fig = plotting.fanin_figure(erk_like_run)
    assert [ax.get_title() for ax in fig.axes] == ["fc1", "fc2", "fc3"]
    dense_ax = fig.axes[2]
    assert [t.get_text() for t in dense_ax.texts] == ["dense: all 4×12 connections"]
    assert not dense_ax.patches and not dense_ax.axison  # no histogram, no axes: a note
    assert fig.axes[0].patches  # the sparse layers keep their histograms
    fig = plotting.fanin_figure(erk_like_run, dense="omit")
    assert [ax.get_title() for ax in fig.axes] == ["fc1", "fc2"]
    fig = plotting.fanin_figure(erk_like_run, dense="draw")
    assert fig.axes[2].patches
    with pytest.raises(TopoError, match="dense"):
        plotting.fanin_figure(erk_like_run, layers=["fc3"], dense="omit")


def test_degree_and_gradient_figures_note_dense_layers(erk_like_run):
    fig = plotting.degree_figure(erk_like_run)
    assert [t.get_text() for t in fig.axes[2].texts] == ["dense: all 4×12 connections"]
    assert not fig.axes[2].lines
    fig = plotting.gradients_figure(erk_like_run)
    assert [t.get_text() for t in fig.axes[2].texts] == ["dense: all 4×12 connections"]
    assert not fig.axes[2].collections


def test_hubs_figure_leaves_out_dense_layers(erk_like_run):
    fig = plotting.hubs_figure(erk_like_run)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fc1", "fc2"]
    assert [t.get_text() for t in ax.texts] == ["not drawn: fc3 (dense: all 4×12 connections)"]
    assert not plotting.hubs_figure(erk_like_run, dense="omit").axes[0].texts
    legend = plotting.hubs_figure(erk_like_run, dense="draw").axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend] == ["fc1", "fc2", "fc3"]


# -- composition reads runs only through topo.runs -----------------------------------------
def test_checkpoint_place(two_runs, tmp_path):
    from topo.runs import checkpoint_place

    a, _ = two_runs
    assert checkpoint_place(a) == (os.path.abspath(a), "2")  # a run folder: its last checkpoint
    assert checkpoint_place(a / "checkpoints" / "epoch_0001.safetensors") == (os.path.abspath(a), "1")
    assert checkpoint_place(a / "checkpoints" / "epoch_0001_step_00000040.safetensors") == (os.path.abspath(a), "1@40")
    foreign = tmp_path / "model.pt"
    assert checkpoint_place(foreign) == (str(foreign), None)
    loaded = plotting.run_checkpoints(a)[1]
    assert checkpoint_place(loaded) == (os.path.abspath(a), "1")


def test_composition_reads_runs_only_through_topo_runs():
    """No plotting or report module imports the checkpoint or format readers itself."""
    import ast
    from pathlib import Path

    import topo

    root = Path(topo.__file__).parent
    for path in [*sorted((root / "plotting").glob("*.py")), root / "report.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(("topo.checkpoint", "topo.formats")), f"{path.name} imports {module}"


def test_epoch_axes_tick_whole_epochs():
    fig = plotting.fanin_cv_curves([0, 1], {"fc1": [0.1, 0.2]})
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    fig = plotting.training_curves({"a": [{"epoch": 0, "train_loss": 1.0}, {"epoch": 1, "train_loss": 0.5}],
                                    "b": [{"epoch": 0, "train_loss": 1.1}, {"epoch": 1, "train_loss": 0.6}]})
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    fig = plotting.turnover_curves([1], {"fc1": [0.2]})
    assert list(fig.axes[0].get_xticks()) == [1.0]
    # fractional positions keep fractional ticks
    fig = plotting.fanin_cv_curves([0, 0.5], {"fc1": [0.1, 0.2]})
    assert not all(float(t).is_integer() for t in fig.axes[0].get_xticks())

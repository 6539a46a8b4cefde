"""Figures: topo.plotting (drawing from data, composing from runs), and `topo plot`."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from plot_runs import expected_size, make_run, png_size
from topo import plotting
from topo.errors import TopoError

DPI = 40  # small files; sizes are checked against the figure's inches anyway


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("plots") / "run", epochs=4)


@pytest.fixture(scope="module")
def run_without_grads(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("plots") / "nograd", epochs=2, grads=False, seed=5)


def _assert_png(path, fig, dpi=DPI):
    assert path.is_file()
    width, height = png_size(path)
    want_w, want_h = expected_size(fig, dpi)
    assert abs(width - want_w) <= 1 and abs(height - want_h) <= 1


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _ytick_texts(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


@pytest.fixture(autouse=True)
def no_pyplot_figures_left():
    """No figure may stay registered with pyplot (global state) after a test."""
    yield
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


# -- files ----------------------------------------------------------------------------
def test_figure_format_by_extension(tmp_path):
    assert plotting.figure_format("a.png") == "png"
    assert plotting.figure_format("a.SVG") == "svg"
    assert plotting.figure_format(tmp_path / "b.pdf") == "pdf"
    for bad in ("a.gif", "a", "a.png.txt"):
        with pytest.raises(TopoError, match="unsupported figure file extension"):
            plotting.figure_format(bad)


def test_save_figure_writes_png_svg_pdf(tmp_path):
    fig = plotting.fanin_cv_curves([0, 1, 2], {"fc1": [0.1, 0.2, 0.3]})
    png = plotting.save_figure(fig, tmp_path / "sub" / "f.png", dpi=DPI)
    _assert_png(png, fig)
    svg = plotting.save_figure(fig, tmp_path / "f.svg")
    assert b"<svg" in svg.read_bytes()[:2000]
    pdf = plotting.save_figure(fig, tmp_path / "f.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(TopoError):
        plotting.save_figure(fig, tmp_path / "f.jpg")
    assert not (tmp_path / "f.jpg").exists()
    # atomic write leaves no temporary files behind
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["f.png"]


# -- fan-in ridge plot ---------------------------------------------------------------
def test_fanin_ridge_panels_rows_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    labels = [0, 10, 20, 30]
    fan_ins = {
        "fc1": [rng.integers(5, 40 + 20 * k, 50) for k in range(4)],
        "fc2": [rng.integers(1, 10, 20) for _ in range(4)],
    }
    fig = plotting.fanin_ridge(fan_ins, labels, path=tmp_path / "r.png", dpi=DPI)
    _assert_png(tmp_path / "r.png", fig)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["fc1", "fc2"]
    for ax in fig.axes:
        assert ax.get_xlabel() == "fan-in"
        # first checkpoint at the top: tick labels bottom-up are the epochs reversed
        assert _ytick_texts(ax) == ["30", "20", "10", "0"]
        # one filled histogram per checkpoint
        filled = [p for p in ax.patches if p.get_fill()]
        assert len(filled) == 4
    assert fig.axes[0].get_ylabel() == "epoch"
    # CV annotations, one per row
    texts = [t.get_text() for t in fig.axes[1].texts if t.get_text().startswith("CV ")]
    assert len(texts) == 4


def test_fanin_ridge_bins_hold_whole_values():
    fig = plotting.fanin_ridge({"a": [np.array([1, 2, 2, 3, 7])]}, [0], annotate_cv=False)
    (patch,) = [p for p in fig.axes[0].patches if p.get_fill()]
    xs = patch.get_path().vertices[:, 0]
    # every bin edge lies on a half-integer
    assert np.allclose(np.mod(xs, 1.0), 0.5)


def test_fanin_ridge_log_x_and_errors():
    fan_ins = {"a": [np.array([0, 1, 2, 5, 50, 300]), np.array([3, 4, 5, 6, 7, 8])]}
    fig = plotting.fanin_ridge(fan_ins, ["start", "end"], log_x=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlim()[0] > 0
    assert ax.get_ylabel() == "checkpoint"  # labels are not epochs
    with pytest.raises(TopoError, match="2 histograms for 3 checkpoints"):
        plotting.fanin_ridge(fan_ins, [0, 1, 2])
    with pytest.raises(TopoError):
        plotting.fanin_ridge({}, [0])


def test_fanin_figure_from_run(run, tmp_path):
    fig = plotting.fanin_figure(run, path=tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_bytes().lstrip().startswith(b"<?xml")
    assert len(fig.axes) == 3
    assert _ytick_texts(fig.axes[0]) == ["4", "3", "2", "1", "0"]
    fig = plotting.fanin_figure(run, layers=["fc2"], epochs=[0, 4])
    assert [ax.get_title() for ax in fig.axes] == ["fc2"]
    assert _ytick_texts(fig.axes[0]) == ["4", "0"]
    fig = plotting.fanin_figure(run, max_rows=3)
    assert _ytick_texts(fig.axes[0]) == ["4", "2", "0"]
    with pytest.raises(TopoError, match="no checkpoint at the end of epoch 9"):
        plotting.fanin_figure(run, epochs=[0, 9])
    with pytest.raises(TopoError, match="no layer named 'fc9'"):
        plotting.fanin_figure(run, layers=["fc9"])


def test_parse_epochs():
    assert plotting.parse_epochs("0,5, 10") == [0, 5, 10]
    assert plotting.parse_epochs("0-4") == [0, 1, 2, 3, 4]
    assert plotting.parse_epochs("0-30:10,3") == [0, 3, 10, 20, 30]
    assert plotting.parse_epochs("") is None
    with pytest.raises(TopoError):
        plotting.parse_epochs("a-b")
    assert plotting.select_evenly(10, 4) == [0, 3, 6, 9]
    assert plotting.select_evenly(3, 12) == [0, 1, 2]


# -- curves ------------------------------------------------------------------------------
def test_drift_overview_from_run(run, tmp_path):
    fig = plotting.drift_figure(run, path=tmp_path / "d.png", dpi=DPI)
    _assert_png(tmp_path / "d.png", fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Fan-in CV per layer", "Drift toward equilibrium", "Mask turnover between checkpoints"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3
    assert fig.axes[1].get_ylabel() == "W1 distance to equilibrium"
    cv_ax, drift_ax, turnover_ax = fig.axes
    assert _legend_texts(cv_ax) == ["fc1", "fc2", "fc3"]
    assert len(cv_ax.get_lines()[0].get_xdata()) == 5
    assert len(turnover_ax.get_lines()[0].get_xdata()) == 4  # pairs of consecutive checkpoints
    assert "tolerance" in _legend_texts(drift_ax)
    fig = plotting.drift_figure(run, layers=["fc1"])
    assert _legend_texts(fig.axes[0]) == ["fc1"]


def test_drift_curves_marks_convergence():
    fig = plotting.drift_curves([0, 1, 2, 3], {"a": [0.5, 0.2, 0.04, 0.03]}, tolerance=0.05, converged={"a": 2})
    ax = fig.axes[0]
    vertical = [line for line in ax.get_lines() if np.allclose(line.get_xdata(), 2.0)]
    assert vertical, "a dotted line at the convergence epoch"


def test_hubs_and_density_from_run(run):
    fig = plotting.hubs_figure(run)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "overlap with final hubs"
    assert ax.get_ylim()[0] < 0 < 1 < ax.get_ylim()[1] < 1.1
    lines = ax.get_lines()
    assert len(lines) == 3
    assert all(np.isclose(line.get_ydata()[-1], 1.0) for line in lines)  # the last overlaps itself
    fig = plotting.density_figure(run, layers=["fc1", "fc3"])
    (ax,) = fig.axes
    assert ax.get_ylabel() == "density"
    assert _legend_texts(ax) == ["fc1", "fc3", "network"]


def test_training_curves_handle_missing_fields(tmp_path):
    records = [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5, "val_acc": 0.7}, {"epoch": 3}]
    fig = plotting.training_curves(records, path=tmp_path / "c.png", dpi=DPI)
    _assert_png(tmp_path / "c.png", fig)
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("Loss", "Accuracy")
    assert _legend_texts(loss_ax) == ["train_loss"]
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1.0, 2.0]
    assert _legend_texts(acc_ax) == ["val_acc"]
    fig = plotting.training_curves([{"epoch": 1, "train_loss": 1.0}])
    assert any("no accuracy recorded" in t.get_text() for t in fig.axes[1].texts)
    fig = plotting.training_curves({"a": records, "b": [{"epoch": 1, "val_acc": 0.5, "test_acc": 0.4}]})
    acc_ax = fig.axes[1]
    assert [line.get_label() for line in acc_ax.get_lines()] == ["a val_acc", "b val_acc", "b test_acc"]
    # fields by line style in the panel, runs by colour once for the figure
    assert _legend_texts(acc_ax) == ["val_acc", "test_acc"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    styles = {line.get_label(): line.get_linestyle() for line in acc_ax.get_lines()}
    assert styles["a val_acc"] == styles["b val_acc"] != styles["b test_acc"]


def test_curves_figure_from_runs(run, run_without_grads, tmp_path):
    fig = plotting.curves_figure([run, run_without_grads])
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["run val_acc", "run test_acc", "nograd val_acc", "nograd test_acc"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["run", "nograd"]
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(TopoError, match="no metrics"):
        plotting.curves_figure(empty)


# -- degree distribution ------------------------------------------------------------------
def test_degree_figure_log_log_with_fits(run, tmp_path):
    fig = plotting.degree_figure(run, path=tmp_path / "deg.pdf")
    assert (tmp_path / "deg.pdf").read_bytes()[:5] == b"%PDF-"
    assert [ax.get_title() for ax in fig.axes] == ["fc1", "fc2", "fc3"]
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert ax.get_xlabel() == "fan-in"
    legend = _legend_texts(ax)
    assert legend[0] == "data"
    assert any(text.endswith("best") for text in legend)
    assert {text.split()[0] for text in legend[1:]} <= {"lognormal", "powerlaw", "exponential", "normal"}
    assert len(legend) >= 4


def test_degree_distribution_ccdf_values():
    values = np.array([0, 1, 1, 2, 4])
    fig = plotting.degree_distribution({"a": values}, kind="ccdf")
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert list(x) == [1, 2, 4]
    assert np.allclose(y, [4 / 5, 2 / 5, 1 / 5])  # share of all neurons with fan-in >= x
    fig = plotting.degree_distribution({"a": values}, kind="pmf")
    assert np.allclose(fig.axes[0].get_lines()[0].get_ydata(), [2 / 5, 1 / 5, 1 / 5])
    with pytest.raises(TopoError):
        plotting.degree_distribution({"a": values}, kind="cdf")


# -- distances -------------------------------------------------------------------------------
def _two_clusters():
    # items 0, 2, 4 are close to each other, as are 1, 3; the groups are far apart
    groups = np.array([0, 1, 0, 1, 0])
    matrix = np.where(groups[:, None] == groups[None, :], 0.1, 0.9)
    np.fill_diagonal(matrix, 0.0)
    matrix[0, 2] = 0.12  # slightly asymmetric, as NNSTD is
    return matrix, [f"c{i}" for i in range(5)]


def test_nnstd_heatmap(tmp_path):
    matrix, labels = _two_clusters()
    fig = plotting.nnstd_heatmap(matrix, labels, path=tmp_path / "h.png", dpi=DPI)
    _assert_png(tmp_path / "h.png", fig)
    assert len(fig.axes) == 2  # heatmap and colour bar
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert fig.axes[1].get_ylabel() == "NNSTD"
    with pytest.raises(TopoError):
        plotting.nnstd_heatmap(np.zeros((2, 3)))


def test_nnstd_clustermap_groups_by_distance(tmp_path):
    matrix, labels = _two_clusters()
    fig = plotting.nnstd_clustermap(matrix, labels, path=tmp_path / "c.png", dpi=DPI)
    _assert_png(tmp_path / "c.png", fig)
    assert len(fig.axes) == 4  # heatmap, two dendrograms, colour bar
    heat = max(fig.axes, key=lambda ax: ax.get_position().width * ax.get_position().height)
    order = [t.get_text() for t in heat.get_xticklabels()]
    assert sorted(order) == sorted(labels)
    # the order is the one of an average linkage of the symmetrised distances themselves
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    symmetric = (matrix + matrix.T) / 2
    assert order == [labels[i] for i in leaves_list(linkage(squareform(symmetric), "average"))]
    position = {label: i for i, label in enumerate(order)}
    first, second = sorted(position[l] for l in ("c0", "c2", "c4")), sorted(position[l] for l in ("c1", "c3"))
    assert first[-1] - first[0] == 2 and second[-1] - second[0] == 1  # each group contiguous
    with pytest.raises(TopoError):
        plotting.nnstd_clustermap(np.zeros((1, 1)))
    with pytest.raises(TopoError):
        plotting.nnstd_clustermap(matrix, method="ward")


def test_distance_figure_from_run_folder(run):
    fig = plotting.distance_figure([run])
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    # one run: the epochs alone, the run named once in the title
    assert labels == [str(e) for e in range(5)]
    assert fig.axes[0].get_title() == "NNSTD between checkpoints (run run)"
    matrix = np.array(fig.axes[0].collections[0].get_array()).reshape(5, 5)
    assert np.allclose(np.diag(matrix), 0.0) and matrix.max() > 0


# -- gradients ---------------------------------------------------------------------------
def test_gradients_figure(run, run_without_grads, tmp_path):
    fig = plotting.gradients_figure(run, path=tmp_path / "g.png", dpi=DPI)
    _assert_png(tmp_path / "g.png", fig)
    assert [ax.get_title() for ax in fig.axes] == ["fc1", "fc2", "fc3"]
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("fan-in", "mean |gradient|")
    note = "\n".join(t.get_text() for t in ax.texts)
    assert "concentration" in note and "Spearman" in note
    assert len(ax.collections[0].get_offsets()) == 24  # one point per neuron
    with pytest.raises(TopoError, match="grad_mean"):
        plotting.gradients_figure(run_without_grads)


# -- the command line ------------------------------------------------------------------
def _invoke(args, cwd=None):
    from topo_cli.main import main

    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_plot_default_path_and_output(run, tmp_path):
    result = _invoke(["plot", "fanin", str(run), "--epochs", "0,2,4", "--log-x", "--dpi", "40"])
    assert result.exit_code == 0, result.output
    default = run / "figures" / "fanin.png"
    assert result.output.strip() == f"wrote {default}"
    assert png_size(default)[0] > 0
    out = tmp_path / "curves.svg"
    result = _invoke(["plot", "curves", str(run), "-o", str(out)])
    assert result.exit_code == 0 and out.is_file()


def test_cli_plot_errors_are_one_line(run, tmp_path):
    result = _invoke(["plot", "drift", str(run), "-o", str(tmp_path / "x.gif")])
    assert result.exit_code == 2  # a usage error
    assert result.output.count("\n") == 1 and result.output.startswith("Error:") and ".gif" in result.output
    result = _invoke(["plot", "degree", str(run), "--layers", "nope"])
    assert result.exit_code == 1 and "no layer named 'nope'" in result.output


def test_cli_plot_distance_default_in_cwd(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, last = run / "checkpoints" / "epoch_0000.safetensors", run / "checkpoints" / "epoch_0004.safetensors"
    result = _invoke(["plot", "distance", str(first), str(last), "--style", "clustermap", "--dpi", "40"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "wrote distance.png"
    assert png_size(tmp_path / "distance.png")[0] > 0

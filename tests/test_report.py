"""The HTML report: topo.report and `topo report`."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from plot_runs import make_run
from topo.errors import TopoError
from topo.report import REPORT_SECTIONS, build_report, layer_table, load_run_data, run_summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return make_run(root / "rigl_a", epochs=3), make_run(root / "rigl_b", epochs=2, seed=7, grads=False)


@pytest.fixture(scope="module")
def report_path(runs, tmp_path_factory):
    """`topo report` on two runs, written once for the tests below."""
    from topo_cli.main import main

    path = tmp_path_factory.mktemp("out") / "report.html"
    result = CliRunner().invoke(main, ["report", str(runs[0]), str(runs[1]), "-o", str(path), "--dpi", "50"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {path}"
    return path


def test_report_has_every_section(report_path):
    text = report_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert 'id="comparison"' in text
    for run in (1, 2):
        for section in REPORT_SECTIONS:
            assert f'id="run{run}-{section}"' in text, f"run{run}-{section} missing"
            assert f'href="#run{run}-{section}"' in text  # listed in the contents
    assert "<h2>rigl_a</h2>" in text and "<h2>rigl_b</h2>" in text


def test_report_is_self_contained(report_path):
    text = report_path.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]*)"', text)
    # comparison: curves and NNSTD; run 1: 8 figures (exploration included); run 2: 7 (no gradients)
    assert len(images) == 2 + 8 + 7
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()
    assert "@import" not in text


def test_report_content(report_path):
    text = report_path.read_text(encoding="utf-8")
    # the configuration is shown, escaped
    assert "config.method" in text and "rigl" in text
    assert "&lt;b&gt;escaped&lt;/b&gt; &amp; kept" in text
    assert "<b>escaped</b>" not in text
    # final metrics of run 1 (epoch 3): test_acc 0.48 + 0.15
    assert ">0.63<" in text
    # the run without gradient statistics says so instead of failing
    run2 = text[text.index('id="run2-gradients"'):]
    assert "Not available" in run2[: run2.index("</section>")]
    # per-layer table
    assert "W1 to equilibrium" in text and "gradient concentration" in text


def test_summary_and_layer_table(runs):
    data = load_run_data(runs[0])
    summary = run_summary(data)
    assert summary["method"] == "rigl" and summary["dataset"] == "synthetic"
    assert summary["epochs"] == 3 and summary["checkpoints"] == 4
    assert summary["final"]["test_acc"] == pytest.approx(0.63)
    assert summary["best_val_acc"] == pytest.approx(0.65)
    assert summary["density"] == pytest.approx(data.topologies[-1].density)
    assert summary["converged"].endswith("/3")
    rows = layer_table(data)
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "fc3"]
    assert rows[0]["shape"] == "24×16"
    assert np.isfinite(rows[0]["concentration"]) and np.isfinite(rows[0]["w1_final"])


def test_report_handles_runs_without_metrics_or_checkpoints(tmp_path):
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    text = build_report([bare])
    for section in REPORT_SECTIONS:
        assert f'id="run1-{section}"' in text
    assert "No metrics recorded" in text and "No checkpoints" in text
    with pytest.raises(TopoError, match="not a topo run folder"):
        build_report([tmp_path])
    with pytest.raises(TopoError, match="no such run folder"):
        build_report([tmp_path / "missing"])


def test_report_renders_in_headless_chromium(report_path, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium) so the report is not rendered")
    import matplotlib.image

    shot = tmp_path / "shot.png"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
        report_path.resolve().as_uri(),
    ]
    subprocess.run(command, check=False, capture_output=True, timeout=120)
    assert shot.is_file(), "chromium wrote no screenshot"
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (2000, 1280)
    assert float(pixels[..., :3].var()) > 0  # not blank


def _section(text: str, anchor: str) -> str:
    start = text.index(f'id="{anchor}"')
    return text[start: text.index("</section>", start)]


def test_report_draws_dense_layers_as_a_note(tmp_path):
    run = make_run(tmp_path / "erk", epochs=2, dense=("fc3",))
    text = build_report([run], dpi=30)
    note = "Not drawn: fc3 (dense: all 4×12 connections)."
    for key in ("fanin", "hubs", "gradients", "degree"):
        section = _section(text, f"run1-{key}")
        assert note in section, key
        assert section.count("<img ") == 1, key  # the sparse layers are still drawn
    # the density figure shows the dense layer at 1 like any other: no note there
    assert "Not drawn" not in _section(text, "run1-density")
    # the layer table marks it, and gives it no gradient concentration (its fan-ins tie)
    rows = layer_table(load_run_data(run))
    assert [r["dense"] for r in rows] == [False, False, True]
    assert "concentration" in rows[0] and "concentration" not in rows[2]
    assert '<th class="text">out×in</th><th>dense</th>' in text
    # a run without dense layers has no such note
    assert "Not drawn" not in build_report([make_run(tmp_path / "sparse", epochs=1)], dpi=30)


def test_report_names_runs_by_what_tells_them_apart(tmp_path):
    a = make_run(tmp_path / "x" / "rigl", epochs=1)
    b = make_run(tmp_path / "y" / "rigl", epochs=1, seed=3)
    text = build_report([a, b], dpi=30)
    # same folder name: the parent folders tell them apart, no "(2)"
    assert "<h2>x/rigl</h2>" in text and "<h2>y/rigl</h2>" in text and "(2)" not in text


def test_report_templates_escape_and_ship_in_the_wheel(runs, tmp_path):
    """The templates autoescape, and a wheel built from the project carries them."""
    import zipfile

    from topo.report import _environment

    page = _environment().get_template("blocks.html.j2").module.block({"kind": "note", "text": "<i>x</i> & y"})
    assert str(page) == '<p class="note">&lt;i&gt;x&lt;/i&gt; &amp; y</p>'
    pytest.importorskip("setuptools", reason="building a wheel needs setuptools")
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("topo", "cli"):
        shutil.copytree(root / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"topo/templates/{p.name}" for p in (root / "topo" / "templates").iterdir() if p.is_file()}
    assert shipped and shipped <= names
    assert "topo/plotting/compose.py" in names

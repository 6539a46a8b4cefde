"""Smoke runs of the studies never touch the committed results in examples/results/.

Each study's --smoke run, without --out, writes into a new temporary folder (or, for
topology_driven_training, refuses without --out); asked to write inside
examples/results/, every study refuses before writing anything. Both are checked by
hashing every file under examples/results/ before and after.
"""

from __future__ import annotations

import hashlib
import tempfile

import pytest

from example_scripts import EXAMPLES, load_example

RESULTS = EXAMPLES / "results"
STUDIES = ["ggr_density", "gradient_hierarchy", "nnstd_evolution", "pruning_classes", "psn_static_profiles",
           "rigl_equilibrium", "structure_predicts_performance", "topology_driven_training"]
# studies that read --data-dir: a missing folder keeps them on the bundled digits set
WITH_DATA_DIR = set(STUDIES) - {"structure_predicts_performance"}


def _hashes() -> dict[str, str]:
    """SHA-256 of every file under examples/results/ (the git-ignored run scratch folders included)."""
    return {str(p.relative_to(RESULTS)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(RESULTS.rglob("*")) if p.is_file()}


@pytest.fixture
def private_tempdir(tmp_path, monkeypatch):
    """tempfile's folders made under tmp_path, so the default smoke folder is found and cleaned up."""
    folder = tmp_path / "tempdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("stem", STUDIES)
def test_smoke_without_out_leaves_results_unchanged(stem, tmp_path, private_tempdir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a study's relative defaults land here, not in the repository
    before = _hashes()
    assert before, "examples/results/ holds the committed results"
    study = load_example(stem)
    argv = ["--smoke"] + (["--data-dir", str(tmp_path / "no-data")] if stem in WITH_DATA_DIR else [])
    code = study.main(argv)
    assert _hashes() == before
    if stem == "topology_driven_training":
        assert code == 2  # refuses: a smoke run writes only where --out says
        assert not list(private_tempdir.glob(f"topo-{stem}-smoke-*"))
    else:
        assert code == 0
        # the report went into one new temporary folder of its own
        (made,) = list(private_tempdir.glob(f"topo-{stem}-smoke-*"))
        assert list(made.rglob("README.md")), f"{stem} wrote no README.md into {made}"


@pytest.mark.parametrize("stem", STUDIES)
def test_smoke_refuses_to_write_into_results(stem, tmp_path, private_tempdir, capsys):
    before = _hashes()
    study = load_example(stem)
    target = RESULTS / stem
    option = "--results" if stem == "structure_predicts_performance" else "--out"
    argv = ["--smoke", option, str(target)]
    if stem == "structure_predicts_performance":
        argv += ["--out", str(tmp_path / "sweep")]
    assert study.main(argv) == 2
    message = capsys.readouterr().err
    assert "never writes into examples/results/" in message and str(target) in message
    assert _hashes() == before
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("stem", ["ggr_density", "rigl_equilibrium", "nnstd_evolution", "pruning_classes",
                                  "topology_driven_training"])
def test_smoke_refuses_runs_folder_inside_results(stem, tmp_path, capsys):
    before = _hashes()
    argv = ["--smoke", "--out", str(tmp_path / "out"), "--runs", str(RESULTS / stem / "runs" / "smoke")]
    assert load_example(stem).main(argv) == 2
    assert "never writes into examples/results/" in capsys.readouterr().err
    assert _hashes() == before and not (tmp_path / "out").exists()

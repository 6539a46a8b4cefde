"""topo.runs: reading run folders, epoch selection, profiles; messages that name no CLI flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from plot_runs import make_run
from topo import Topology, TopoError
from topo.analysis.drift import drift
from topo.errors import shorten_list
from topo.runs import (
    describe_epochs,
    load_equilibrium,
    load_masks,
    load_run,
    load_topology,
    parse_epochs,
    read_profile,
    run_checkpoints,
    save_profile,
)
from topo_cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "run", epochs=4)


def test_shorten_list_keeps_short_lists_and_shortens_long_ones():
    assert shorten_list([0, 1, 2, 3, 4]) == "0, 1, 2, 3, 4"
    assert shorten_list(range(102)) == "0, 1, 2, ..., 101 (102 in all)"
    assert shorten_list(range(102), head=2, tail=2) == "0, 1, ..., 100, 101 (102 in all)"
    assert shorten_list([]) == "none"


def test_describe_epochs_as_runs():
    assert describe_epochs(range(101)) == "0-100"
    assert describe_epochs([5, 0, 1, 2, 9, 10]) == "0-2, 5, 9-10"
    # every other epoch of 200: 100 single runs, shortened
    assert describe_epochs(range(0, 200, 2)) == "0, 2, 4, ..., 198 (100 in all)"


def test_missing_epoch_names_the_run_and_its_epochs_not_a_flag(run):
    with pytest.raises(TopoError) as info:
        run_checkpoints(run, epochs=[0, 7])
    message = str(info.value)
    assert message == f"{run}: no checkpoint at the end of epoch 7 in this run; it has epochs 0-4"
    assert "--" not in message
    with pytest.raises(TopoError, match=r"epoch 5, 6, 7, \.\.\., 104 \(100 in all\)"):
        run_checkpoints(run, epochs=range(5, 105))


def test_run_checkpoints_and_load_run_read_in_training_order(run):
    picked = run_checkpoints(run, epochs=[4, 0, 2])
    assert [t.epoch for t in picked] == [0, 2, 4]
    assert [t.epoch for t in load_run(run)] == [0, 1, 2, 3, 4]
    assert [t.epoch for t in load_run(run, last_k=2)] == [3, 4]
    with pytest.raises(TopoError, match="no such run folder"):
        load_run(run / "checkpoints" / "nothing-here")


def test_parse_epochs_error_names_no_flag_but_the_cli_does(run):
    assert parse_epochs("0-30:10,3") == [0, 3, 10, 20, 30]
    with pytest.raises(TopoError) as info:
        parse_epochs("0,x")
    assert "'x' is not an epoch" in str(info.value) and "--" not in str(info.value)
    result = CliRunner().invoke(main, ["plot", "fanin", str(run), "--epochs", "0,x", "-o", str(run / "f.png")])
    assert result.exit_code == 2 and "--epochs" in result.output and "'x' is not an epoch" in result.output


def test_load_masks_drops_statistics_and_rereads_a_changed_file(run, tmp_path):
    path = run / "checkpoints" / "epoch_0004.safetensors"
    full = load_topology(path)
    masks = load_masks(path)
    assert "grad_mean" in full[0].stats and not masks[0].stats
    for a, b in zip(full, masks):
        assert (a.mask != b.mask).nnz == 0
    assert load_masks(path) is masks  # kept
    with pytest.raises(TopoError, match="no such file"):
        load_masks(tmp_path / "missing.safetensors")


def test_equilibrium_from_a_run_folder_or_a_profile_file(run, tmp_path):
    checkpoints = load_run(run)
    reference, source = load_equilibrium(run, last_k=2)
    assert source == str(run) and [t.epoch for t in reference] == [3, 4]
    from_folder = drift(checkpoints, equilibrium=reference, equilibrium_source=source, last_k=2)
    np.testing.assert_array_equal(from_folder.wasserstein, drift(checkpoints, last_k=2).wasserstein)
    assert from_folder.equilibrium_source == str(run)

    path = save_profile(from_folder, tmp_path / "eq.json")
    assert json.loads(path.read_text())["kind"] == "topo-fanin-profile"
    profile, source = load_equilibrium(path)
    assert source == str(path) and profile == read_profile(path)
    # in-memory equilibria pass through untouched
    assert load_equilibrium(None) == (None, None)
    assert load_equilibrium(checkpoints)[0] is checkpoints
    with pytest.raises(TopoError, match="no such profile file"):
        load_equilibrium(tmp_path / "missing.json")


def test_analysis_refuses_paths_without_a_reader(run):
    with pytest.raises(TopoError, match="topologies or a profile mapping"):
        drift(load_run(run), equilibrium=str(run))
    assert isinstance(load_topology(run / "checkpoints" / "epoch_0000.safetensors"), Topology)

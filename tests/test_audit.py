"""topo.audit: finding checkpoints, one row per checkpoint, error rows, parallel runs."""

from __future__ import annotations

import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import topo
from topo import Topology, TopoError
from topo.analysis.degree import degree_summary, fan_in_cv
from topo.analysis.fits import fit_fan_in
from topo.analysis.hubs import hub_indices
from topo.audit import AuditRow, audit_path, audit_paths, find_checkpoints
from topo.checkpoint import checkpoint_name, save_checkpoint, write_run_config

from conftest import random_sparse_weights

SHAPES = [(40, 30), (50, 40), (10, 50)]
NAMES = ["fc1", "fc2", "out"]


def make_net(seed: int, density: float = 0.3) -> Topology:
    weights = random_sparse_weights(SHAPES, density, seed=seed)
    return Topology.from_weights(weights, names=NAMES)


class Evil:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def tree(tmp_path):
    """Loose checkpoints, a run folder, junk, and hostile or broken files."""
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    save_checkpoint(make_net(1), root / "a.safetensors", epoch=7)
    save_checkpoint(make_net(2), root / "sub" / "b.safetensors")
    run = root / "run"
    write_run_config(run, {"seed": 0})
    for epoch in (0, 1, 2):
        save_checkpoint(make_net(10 + epoch), run / "checkpoints" / checkpoint_name(epoch), epoch=epoch)
    save_checkpoint(make_net(20), run / "checkpoints" / checkpoint_name(2, 55), epoch=2, step=55)
    (run / "metrics.jsonl").write_text('{"epoch": 0}\n')
    (run / ".topo.lock").write_text("")  # the run's bookkeeping: part of the run, no rows
    (run / "state").mkdir()
    (run / "state" / "last.pt").write_bytes(b"training state")
    (root / "notes.txt").write_text("not a checkpoint")
    (root / ".hidden.safetensors").write_bytes(b"")
    (root / "empty.pt").write_bytes(b"")
    good = (root / "a.safetensors").read_bytes()
    (root / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (root / "garbage.ckpt").write_bytes(os.urandom(256))
    marker = tmp_path / "MARKER"
    with open(root / "evil.pt", "wb") as handle:
        pickle.dump({"fc1.weight": Evil(marker)}, handle)
    (root / "links").mkdir()
    (root / "links" / "gone.pt").symlink_to(root / "links" / "missing.pt")
    (root / "links" / "gone.txt").symlink_to(root / "links" / "missing.txt")
    return types.SimpleNamespace(root=root, run=run, marker=marker)


def by_name(rows):
    return {Path(row.path).name: row for row in rows}


# -- finding ----------------------------------------------------------------------
def test_find_checkpoints_walks_and_orders(tree):
    found = find_checkpoints([tree.root])
    names = [p.relative_to(tree.root).as_posix() for p in found]
    assert names == [
        "a.safetensors",
        "empty.pt",
        "evil.pt",
        "garbage.ckpt",
        # a run's checkpoints in training order: the step inside epoch 2 before its end
        "run/checkpoints/epoch_0000.safetensors",
        "run/checkpoints/epoch_0001.safetensors",
        "run/checkpoints/epoch_0002_step_00000055.safetensors",
        "run/checkpoints/epoch_0002.safetensors",
        "sub/b.safetensors",
        "truncated.safetensors",
    ]


def test_find_checkpoints_explicit_paths_and_duplicates(tree):
    a = tree.root / "a.safetensors"
    notes = tree.root / "notes.txt"
    # a file named explicitly is always audited; a path found twice appears once
    assert find_checkpoints([a, notes, a]) == [a, notes]
    assert find_checkpoints([tree.root / "sub"]) == [tree.root / "sub" / "b.safetensors"]
    with pytest.raises(TopoError, match="no such file or folder"):
        find_checkpoints([tree.root / "missing"])


def test_folder_recognised_as_one_checkpoint_is_not_descended(tmp_path, monkeypatch):
    """A folder that a reader reads whole (HF model, SET epoch) is one row."""
    reader = types.ModuleType("fake_folder_reader")

    def sniff(path):
        return Path(path).is_dir() and (Path(path) / "model.marker").is_file()

    def read(path, **options):
        return make_net(5).with_info(format="fakefolder", warnings=["made up for a test"])

    reader.sniff, reader.read, reader.EXTENSIONS = sniff, read, ()
    monkeypatch.setitem(sys.modules, "fake_folder_reader", reader)
    monkeypatch.setitem(topo.formats.READERS, "fakefolder", "fake_folder_reader")

    model = tmp_path / "zoo" / "model"
    model.mkdir(parents=True)
    (model / "model.marker").write_text("")
    (model / "extra.ckpt").write_bytes(b"part of the model")  # found only if descended into
    save_checkpoint(make_net(7), tmp_path / "zoo" / "loose.safetensors")

    assert find_checkpoints([tmp_path / "zoo"]) == [tmp_path / "zoo" / "loose.safetensors", model]
    assert find_checkpoints([model]) == [model]

    # a recognised folder of recognised folders (a whole run) is walked, not one row
    run = tmp_path / "run"
    for epoch in ("epoch_010", "epoch_000"):
        (run / epoch).mkdir(parents=True)
        (run / epoch / "model.marker").write_text("")
    (run / "model.marker").write_text("")
    assert find_checkpoints([run]) == [run / "epoch_000", run / "epoch_010"]
    rows = audit_paths([tmp_path / "zoo"])
    assert [row.status for row in rows] == ["ok", "ok"]
    assert rows[1].format == "fakefolder"
    assert rows[1].warnings == ("made up for a test",)


# -- measuring --------------------------------------------------------------------
def test_row_values_match_degree_analysis(tree):
    path = tree.root / "a.safetensors"
    row = audit_path(path)
    net = topo.load(path, weights=False)
    summary = degree_summary(net)
    assert row.status == "ok" and row.error is None
    assert row.format == "topo"
    assert row.epoch == 7 and row.step is None
    assert row.n_layers == 3
    assert row.nnz == summary.nnz == net.nnz
    assert row.total == summary.size == sum(o * i for o, i in SHAPES)
    assert row.density == pytest.approx(summary.density)
    assert row.layer_density_mean == pytest.approx(np.mean(net.densities))
    assert row.layer_density_max == pytest.approx(max(net.densities))
    assert row.fan_in_cv_mean == pytest.approx(summary.fan_in_cv_mean)
    assert row.fan_in_cv_max == pytest.approx(max(fan_in_cv(net)))
    assert row.no_inputs == summary.no_inputs
    assert row.no_outputs == summary.no_outputs
    # the fitted layer: most output neurons among layers whose fan-in varies
    assert row.best_fit_layer == "fc2"
    assert row.best_fit == fit_fan_in(net["fc2"].fan_in).best
    into_hubs = sum(int(layer.fan_in[hub_indices(layer, fraction=0.1)].sum()) for layer in net)
    assert row.hub_share == pytest.approx(into_hubs / net.nnz)
    assert 0.1 < row.hub_share < 1.0


def test_constant_fan_in_and_dead_neurons(tmp_path):
    mask1 = np.zeros((6, 4), dtype=bool)
    mask1[:, :2] = True  # every neuron has fan-in 2; inputs 2 and 3 feed nothing
    mask2 = np.ones((3, 6), dtype=bool)
    mask2[:, 5] = False  # hidden neuron 5 feeds nothing
    net = Topology.from_masks([mask1, mask2], names=["h", "o"])
    save_checkpoint(net, tmp_path / "c.safetensors")
    row = audit_path(tmp_path / "c.safetensors")
    assert row.best_fit == "constant"
    assert row.best_fit_layer == "h"  # the larger layer when none varies
    assert row.fan_in_cv_mean == 0.0 and row.fan_in_cv_max == 0.0
    assert row.no_inputs == 0 and row.no_outputs == 3
    # top 10% by fan-in is one neuron per layer: 2 of 12 and 5 of 15 connections
    assert row.hub_share == pytest.approx((2 + 5) / 27)


def test_layers_regex(tree):
    path = tree.root / "a.safetensors"
    net = topo.load(path, weights=False)
    row = audit_path(path, layers=r"^fc")
    assert row.n_layers == 2
    assert row.nnz == net["fc1"].nnz + net["fc2"].nnz
    assert row.fan_in_cv_max == pytest.approx(max(fan_in_cv(net)[:2]))
    skipped = audit_path(path, layers="nomatch")
    assert skipped.status == "skipped" and "nomatch" in skipped.error
    with pytest.raises(TopoError, match="regular expression"):
        audit_paths([path], layers="(")


# -- bad input --------------------------------------------------------------------
def test_error_rows_and_the_audit_goes_on(tree):
    rows = by_name(audit_paths([tree.root]))
    assert len(rows) == 14  # every file under the folder, each once
    assert rows["gone.pt"].status == rows["gone.txt"].status == "refused"
    assert rows["gone.pt"].error == rows["gone.txt"].error == "broken symbolic link"
    assert rows["notes.txt"].status == "skipped" and rows["notes.txt"].error.startswith("not a checkpoint")
    assert rows[".hidden.safetensors"].status == "skipped" and "hidden" in rows[".hidden.safetensors"].error
    ok = {name for name, row in rows.items() if row.status == "ok"}
    assert ok == {
        "a.safetensors", "b.safetensors", "epoch_0000.safetensors", "epoch_0001.safetensors",
        "epoch_0002.safetensors", "epoch_0002_step_00000055.safetensors",
    }
    assert rows["empty.pt"].error == "empty file (0 bytes)"
    truncated = rows["truncated.safetensors"]
    assert truncated.status == "refused"
    assert any(word in truncated.error for word in ("truncated", "corrupt", "safetensors"))
    assert rows["garbage.ckpt"].status == "refused"
    for row in rows.values():
        if row.status != "ok":
            # one line, the reason without repeating the path, and no figures
            assert row.error and "\n" not in row.error
            assert not row.error.startswith(row.path)
            assert row.nnz is None and row.density is None


def _torch_save(obj, path):
    torch = pytest.importorskip("torch")
    torch.save(obj, path)


def _pickle_v2(obj, path):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def _npy(obj, path):
    np.save(path, np.array([obj["payload"]], dtype=object), allow_pickle=True)


def _npz(obj, path):
    np.savez(path, w=np.array([obj["payload"]], dtype=object))


@pytest.mark.parametrize(
    "name, write, row_is_folder",
    [
        ("evil.pt", _torch_save, False),  # a torch.save file with a hostile object inside
        ("pytorch_model.bin", _pickle_v2, True),  # makes its folder a Hugging Face model folder
        ("lightning.ckpt", _torch_save, False),
        ("evil.npy", _npy, False),  # an object array: pickled inside a numpy file
        ("evil.npz", _npz, False),
    ],
)
def test_hostile_pickle_is_refused_without_running(tmp_path, name, write, row_is_folder):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / name
    write({"fc1.weight": np.zeros((3, 3), dtype=np.float32), "payload": Evil(marker)}, path)
    rows = audit_paths([folder])
    assert not marker.exists(), "auditing executed code from a pickle"
    assert len(rows) == 1
    row = rows[0]
    assert row.path == str(folder if row_is_folder else path)
    reader = "numpy" if name.startswith("evil.np") else "pytorch"
    if write is _torch_save:
        # read inertly: the payload is an inert record, the numpy weight (all zeros) is read
        assert row.status == "ok" and row.nnz == 0 and row.total == 9
        return
    assert row.status == "refused"
    if reader in topo.formats.READERS:
        # refused for what it is (not "corrupt"), and the reason says why
        assert "refused" in row.error and "pickle" in row.error
    else:
        assert "not a checkpoint format topo recognises" in row.error


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="running as root: file permissions are not enforced, chmod 000 cannot be tested")
def test_unreadable_permissions(tmp_path):
    path = tmp_path / "locked.safetensors"
    save_checkpoint(make_net(1), path)
    path.chmod(0)
    try:
        row = audit_path(path)
    finally:
        path.chmod(0o644)
    assert row.status == "refused" and "ermission" in row.error


def test_missing_path_row_and_raise(tmp_path):
    row = audit_path(tmp_path / "gone.pt")
    assert row == AuditRow(path=str(tmp_path / "gone.pt"), status="refused", error="no such file or folder")
    with pytest.raises(TopoError, match="no such file or folder"):
        audit_paths([tmp_path / "gone.pt"])
    assert audit_paths([tmp_path]) == []


# -- where it runs ----------------------------------------------------------------
def comparable(rows):
    return [row.as_dict() for row in rows]


def test_two_workers_give_the_same_rows(tree):
    # topo files and error rows only: a worker that reads a .pt file would import torch (slow)
    paths = [tree.run, tree.root / "truncated.safetensors", tree.root / "empty.pt", tree.root / "sub"]
    one = audit_paths(paths, workers=1)
    two = audit_paths(paths, workers=2)
    assert len(one) == 7 and [row.status for row in one].count("refused") == 2
    assert comparable(two) == comparable(one)


def test_dask_cluster_gives_the_same_rows(tree):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    one = audit_paths([tree.root], workers=1)
    done = []
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        rows = audit_paths([tree.root], scheduler=cluster.scheduler_address, progress=lambda d, t: done.append((d, t)))
    assert comparable(rows) == comparable(one)
    n_read = len(find_checkpoints([tree.root]))
    assert done[-1] == (n_read, n_read)
    assert not tree.marker.exists()


def test_scheduler_without_dask_names_the_extra(tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(TopoError, match=r"topo-toolkit\[dask\]"):
        audit_paths([tree.root / "a.safetensors"], scheduler="tcp://127.0.0.1:1")


# -- real data ----------------------------------------------------------------------
def test_set_network_folder(shared_data):
    epoch = shared_data / "set-mlp" / "e5_s0_w0" / "epoch_190"
    if not epoch.is_dir():
        pytest.skip(f"{epoch} not found")
    if topo.formats.detect_format(epoch) is None:
        pytest.skip("no reader recognises a SET epoch folder yet")
    rows = audit_paths([epoch.parent])
    by_path = {row.path: row for row in rows}
    row = by_path[str(epoch)]
    epochs = [r for r in rows if Path(r.path).name.startswith("epoch_")]
    assert len(epochs) >= 9 and all(r.status == "ok" for r in epochs)
    # the rest (testacc.txt) is listed, not dropped
    assert all(r.status == "skipped" and r.error.startswith("not a checkpoint") for r in rows if r not in epochs)
    assert row.n_layers == 4
    assert row.total == 784 * 784 * 3 + 784 * 10
    net = topo.load(epoch, weights=False)
    assert row.nnz == net.nnz
    assert row.fan_in_cv_mean == pytest.approx(degree_summary(net).fan_in_cv_mean)
    assert not math.isnan(row.hub_share)


# -- folders: one model only when it is a model folder ----------------------------------
def save_mlp(path, widths, seed=0):
    """A plain (non-topo) safetensors file of Linear weights ``[out, in]`` for ``widths``."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        weight = rng.standard_normal((n_out, n_in)).astype(np.float32)
        weight[rng.random(weight.shape) < 0.5] = 0.0
        tensors[f"layers.{i}.weight"] = weight
        tensors[f"layers.{i}.bias"] = np.zeros(n_out, np.float32)
    save_file(tensors, str(path))
    return tensors


def total_of(widths):
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def test_folder_of_separate_models_gives_a_row_each(tmp_path):
    torch = pytest.importorskip("torch")
    folder = tmp_path / "zoo"
    folder.mkdir()
    a = save_mlp(folder / "model_a.safetensors", [20, 30, 10], seed=1)
    b = save_mlp(folder / "model_b.safetensors", [40, 50, 5], seed=2)
    torch.save({"fc.weight": torch.ones(3, 7)}, folder / "other.pt")
    rows = by_name(audit_paths([folder]))
    assert sorted(rows) == ["model_a.safetensors", "model_b.safetensors", "other.pt"]
    assert all(row.status == "ok" for row in rows.values()), rows
    for name, tensors, widths in (("model_a.safetensors", a, [20, 30, 10]), ("model_b.safetensors", b, [40, 50, 5])):
        row = rows[name]
        assert row.n_layers == 2 and row.total == total_of(widths)
        assert row.nnz == sum(int(np.count_nonzero(t)) for key, t in tensors.items() if key.endswith("weight"))
    assert rows["other.pt"].total == 21 and rows["other.pt"].nnz == 21


def test_nine_corrupt_files_give_nine_rows(tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    suffixes = [".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".onnx", ".h5", ".npz", ".keras"]
    rng = np.random.default_rng(3)
    for i, suffix in enumerate(suffixes):
        (folder / f"broken_{i}{suffix}").write_bytes(rng.bytes(64 + i))
    rows = audit_paths([folder])
    assert len(rows) == 9
    assert sorted(Path(row.path).name for row in rows) == sorted(f"broken_{i}{s}" for i, s in enumerate(suffixes))
    for row in rows:
        assert row.status == "refused" and row.error and "\n" not in row.error


def test_nested_model_folders(tmp_path):
    zoo = tmp_path / "zoo"
    hf = zoo / "org" / "hf-model"  # config.json beside the weights: one model
    hf.mkdir(parents=True)
    save_mlp(hf / "model.safetensors", [8, 6, 4])
    (hf / "config.json").write_text('{"model_type": "mlp"}')
    (hf / "tokenizer.json").write_text("{}")
    sharded = zoo / "sharded"  # an index JSON and its shards: one model
    sharded.mkdir()
    from safetensors.numpy import save_file

    save_file({"layers.0.weight": np.ones((6, 8), np.float32)}, str(sharded / "model-00001-of-00002.safetensors"))
    save_file({"layers.1.weight": np.ones((4, 6), np.float32)}, str(sharded / "model-00002-of-00002.safetensors"))
    (sharded / "model.safetensors.index.json").write_text(
        '{"weight_map": {"layers.0.weight": "model-00001-of-00002.safetensors",'
        ' "layers.1.weight": "model-00002-of-00002.safetensors"}}'
    )
    loose = zoo / "loose"  # safetensors files without config or index: separate models
    loose.mkdir()
    save_mlp(loose / "x.safetensors", [5, 4, 3])
    save_mlp(loose / "y.safetensors", [5, 4, 3])
    save_checkpoint(make_net(4), loose / "z.safetensors")
    (zoo / "README.md").write_text("a zoo")
    rows = audit_paths([zoo])
    got = [(Path(row.path).relative_to(zoo).as_posix(), row.status) for row in rows]
    assert got == [
        ("README.md", "skipped"),
        ("loose/x.safetensors", "ok"),
        ("loose/y.safetensors", "ok"),
        ("loose/z.safetensors", "ok"),
        ("org/hf-model", "ok"),
        ("sharded", "ok"),
    ]
    by_path = {Path(row.path).relative_to(zoo).as_posix(): row for row in rows}
    assert by_path["org/hf-model"].total == total_of([8, 6, 4])
    assert by_path["loose/x.safetensors"].total == total_of([5, 4, 3])
    assert by_path["sharded"].total == total_of([8, 6, 4]) and by_path["sharded"].n_layers == 2
    assert by_path["README.md"].error.startswith("not a checkpoint")


# -- symbolic links -------------------------------------------------------------------
@pytest.fixture
def linked(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    save_checkpoint(make_net(1), outside / "secret.safetensors")
    (outside / "dir").mkdir()
    save_checkpoint(make_net(2), outside / "dir" / "c.safetensors")
    root = tmp_path / "audited"
    (root / "hf").mkdir(parents=True)
    save_checkpoint(make_net(3), root / "own.safetensors")
    (root / "alias.safetensors").symlink_to(root / "own.safetensors")  # stays inside
    (root / "out.safetensors").symlink_to(outside / "secret.safetensors")
    (root / "outdir").symlink_to(outside / "dir")
    (root / "up").symlink_to(root)  # a loop back into the audited folder
    save_mlp(outside / "weights.safetensors", [6, 5, 4])
    (root / "hf" / "config.json").write_text("{}")
    (root / "hf" / "model.safetensors").symlink_to(outside / "weights.safetensors")
    return types.SimpleNamespace(root=root, outside=outside)


def test_links_out_of_the_folder_are_refused(linked):
    rows = by_name(audit_paths([linked.root]))
    assert rows["own.safetensors"].status == "ok"
    assert rows["alias.safetensors"].status == "ok"  # a link inside the folder is followed
    assert rows["alias.safetensors"].nnz == rows["own.safetensors"].nnz
    for name, target in (("out.safetensors", "secret.safetensors"), ("outdir", "dir"), ("hf", "weights.safetensors")):
        row = rows[name]
        assert row.status == "refused" and row.nnz is None
        assert "outside the audited folder" in row.error and target in row.error
        assert "follow_symlinks=True follows it" in row.error and "--" not in row.error
    assert "c.safetensors" not in rows  # nothing behind the refused folder link was read
    assert rows["up"].status == "skipped" and "already searched" in rows["up"].error


def test_follow_symlinks_reads_them(linked):
    rows = by_name(audit_paths([linked.root], follow_symlinks=True))
    assert rows["out.safetensors"].status == "ok"
    assert rows["out.safetensors"].nnz == make_net(1).nnz
    assert rows["c.safetensors"].status == "ok"
    assert rows["hf"].status == "ok" and rows["hf"].total == total_of([6, 5, 4])


# -- patterns and requested sparsity in rows ---------------------------------------------
def test_rows_carry_layer_patterns_and_requested_sparsity(tmp_path):
    rng = np.random.default_rng(5)
    keep = np.argsort(rng.random((16, 8, 4)), axis=2)[:, :, :2]
    two_four = np.zeros((16, 8, 4), dtype=bool)
    np.put_along_axis(two_four, keep, True, axis=2)
    two_four = two_four.reshape(16, 32)
    unstructured = rng.random((8, 16)) < 0.3
    net = Topology.from_masks([two_four, unstructured, np.ones((3, 8), dtype=bool)], names=["a", "b", "c"])
    path = tmp_path / "run" / "checkpoints" / checkpoint_name(1)
    save_checkpoint(net, path, epoch=1, run_info={"config": {"sparsity": 0.6, "dense_output": True}})
    row = audit_path(path)
    assert row.status == "ok" and row.pattern == "2:4, unstructured, dense" and row.layers_2_4 == 1
    masks = [two_four, unstructured, np.ones((3, 8), dtype=bool)]
    nnz = sum(int(m.sum()) for m in masks)
    assert row.sparsity == pytest.approx(1 - nnz / sum(m.size for m in masks))
    assert row.requested_sparsity == 0.6  # from the run's configuration
    a, b, c = row.layers
    assert (a["name"], a["pattern"], a["pattern_compliance"], a["runs_2_4"]) == ("a", "2:4", 1.0, True)
    assert b["pattern"] == "unstructured" and b["pattern_compliance"] is None
    counts = unstructured.reshape(8, 4, 4).sum(axis=2)
    assert b["compliance_2_4"] == pytest.approx(np.mean(counts <= 2))
    assert b["sparsity"] == pytest.approx(1 - unstructured.mean())
    assert c["pattern"] == "dense" and c["requested_sparsity"] == 0.0  # dense_output
    assert a["requested_sparsity"] is None
    assert row.as_dict()["layers"][0]["pattern"] == "2:4"


def test_every_file_under_the_fixtures_is_accounted_for():
    """The foreign-format fixtures, audited as one folder: every file is in exactly one
    row (its own, or its model folder's), and model folders are single rows."""
    fixtures = Path(__file__).parent / "fixtures"
    if not fixtures.is_dir():
        pytest.skip("no fixtures folder")
    rows = audit_paths([fixtures])
    assert {row.status for row in rows} <= {"ok", "refused", "skipped"}
    covered: list[Path] = []
    for row in rows:
        path = Path(row.path)
        covered.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
        assert row.status == "ok" or (row.error and "\n" not in row.error), row
    everything = sorted(p for p in fixtures.rglob("*") if p.is_file())
    assert sorted(covered) == everything  # nothing dropped, nothing twice
    by_path = {Path(row.path).relative_to(fixtures).as_posix(): row for row in rows}
    for folder in ("keras3/mlp_unzipped_folder", "pytorch/gpt2_tiny"):
        assert by_path[folder].status == "ok", by_path[folder]  # a model folder: one row
    for name, row in by_path.items():
        if name.endswith("make_fixtures.py"):
            assert row.status == "skipped" and row.error.startswith("not a checkpoint")
        if name.endswith((".keras", ".weights.h5", ".msgpack")):
            assert row.status == "ok", row


def _write_pruned_model(path: Path, n_tensors: int, shape: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """float16 MLP weights, alternately 2:4 along the inputs and 50% unstructured."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(n_tensors):
        w = rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
        if i % 2 == 0:
            groups = w.reshape(shape[0], -1, 4)
            np.put_along_axis(groups, np.argsort(rng.random(groups.shape), axis=2)[:, :, :2], 0, axis=2)
        else:
            w[rng.random(shape) < 0.5] = 0
        tensors[f"model.layers.{i}.mlp.proj.weight"] = w
    save_file(tensors, str(path))
    return tensors


def test_large_safetensors_models_are_audited_one_layer_at_a_time(tmp_path, monkeypatch):
    from topo.formats import _assemble, safetensors_hf

    path = tmp_path / "model.safetensors"
    tensors = _write_pruned_model(path, 4, (64, 256))
    monkeypatch.setattr(safetensors_hf.StoredTensor, "__array__", lambda *a, **k: pytest.fail("whole tensor read"))
    monkeypatch.setattr(_assemble, "ROW_BLOCK_CELLS", 1000)  # several blocks per tensor
    row = audit_path(path)
    masks = [tensors[f"model.layers.{i}.mlp.proj.weight"] != 0 for i in range(4)]
    assert row.status == "ok" and row.n_layers == 4
    assert row.nnz == sum(int(m.sum()) for m in masks)
    assert [layer["pattern"] for layer in row.layers] == ["2:4", "unstructured", "2:4", "unstructured"]
    assert row.layers_2_4 == 2
    fan_in = [m.sum(axis=1) for m in masks]
    assert row.fan_in_cv_max == pytest.approx(max(f.std() / f.mean() for f in fan_in))
    top = [np.sort(f)[::-1][: math.ceil(0.1 * f.size)].sum() for f in fan_in]
    assert row.hub_share == pytest.approx(sum(top) / row.nnz)


def _peak_growth_kib(code: str, path: Path) -> int:
    """Growth of a fresh process's peak resident memory (VmHWM) over its level after imports."""
    import subprocess

    script = (
        "import sys\n"
        "import topo, topo.audit, topo.analysis.patterns, topo.analysis.fits, topo.analysis.hubs, scipy.special\n"
        "def hwm():\n"
        "    return int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
        "before = hwm()\n" + code + "\nprint(hwm() - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc (Linux)")
def test_audit_memory_is_bounded_by_the_largest_layer_not_the_model(tmp_path):
    path = tmp_path / "model.safetensors"
    _write_pruned_model(path, 8, (1024, 4096))  # 8 MB of float16 per tensor, 64 MB in all
    largest_kib = 1024 * 4096 * 2 // 1024
    streamed = _peak_growth_kib("row = topo.audit.audit_path(sys.argv[1]); assert row.status == 'ok'", path)
    # what holding every mask at once costs (the way audits read before)
    whole = _peak_growth_kib("net = topo.load(sys.argv[1], weights=False); assert len(net) == 8", path)
    assert streamed < 2 * largest_kib + 16 * 1024, (streamed, whole)
    assert streamed < whole / 2, (streamed, whole)

"""topo.formats.orbax: checkpoint folders written by orbax-checkpoint.

The fixtures were written by Orbax itself (tests/fixtures/orbax/make_fixtures.py). The
truth is read here from the stores directly with tensorstore (the library Orbax writes
them with), never with topo.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from topo.errors import TopoError
from topo.formats import detect_format, load

FIXTURES = Path(__file__).parent / "fixtures" / "orbax"


def _stored(item: Path, name: str) -> np.ndarray:
    ts = pytest.importorskip("tensorstore")
    meta = json.loads((item / "_METADATA").read_text())
    base = {"driver": "file", "path": str(item.resolve())}
    if meta["use_ocdbt"]:
        kvstore = {"driver": "ocdbt", "base": base, "path": f"{name}/"}
    else:
        kvstore = {"driver": "file", "path": str(item.resolve() / name) + "/"}
    return ts.open({"driver": "zarr", "kvstore": kvstore, "open": True}, read=True).result().read().result()


@pytest.mark.parametrize("folder", ["standard", "zarr"])
def test_pytree_checkpoint_kernels_in_out(folder):
    pytest.importorskip("tensorstore")
    path = FIXTURES / folder
    assert detect_format(path) == "orbax"
    net = load(path)
    assert net.names == ["hidden_1", "hidden_2", "out"]
    for layer in net:
        kernel = _stored(path, f"params.{layer.name}.kernel")
        assert np.array_equal(layer.mask.toarray(), kernel.T != 0)  # a kernel is [in, out]
        np.testing.assert_array_equal(layer.bias, _stored(path, f"params.{layer.name}.bias"))
    square = _stored(path, "params.hidden_2.kernel")
    assert square.shape == (8, 8) and not np.array_equal(square != 0, square.T != 0)
    assert net.info["storage"] == ("ocdbt" if folder == "standard" else "zarr")
    assert all(not layer.standalone for layer in net)


def test_checkpoint_manager_reads_newest_step_params_only():
    pytest.importorskip("tensorstore")
    path = FIXTURES / "manager"
    assert detect_format(path) == "orbax"
    net = load(path)
    assert net.info["steps"] == [1, 2] and net.info["step"] == 2 and net.info["item"] == "default"
    item = path / "2" / "default"
    assert net.names == ["hidden_1", "hidden_2", "out"]  # Adam's mu/nu (opt_state) are not layers
    for layer in net:
        assert np.array_equal(layer.mask.toarray(), _stored(item, f"params.{layer.name}.kernel").T != 0)
    older = load(path / "1")
    assert older.info["item"] == "default"
    assert sum(layer.mask.nnz for layer in older) > sum(layer.mask.nnz for layer in net)


def test_symlink_out_of_the_checkpoint_is_refused(tmp_path):
    pytest.importorskip("tensorstore")
    copy = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "zarr", copy)
    outside = tmp_path / "elsewhere"
    shutil.copytree(copy / "params.out.kernel", outside)
    shutil.rmtree(copy / "params.out.kernel")
    os.symlink(outside, copy / "params.out.kernel")
    with pytest.raises(TopoError, match=r"params\.out\.kernel"):
        load(copy)


def test_array_declaring_more_than_the_folder_can_hold_is_refused(tmp_path):
    pytest.importorskip("tensorstore")
    copy = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "zarr", copy)
    zarray = copy / "params.out.kernel" / ".zarray"
    meta = json.loads(zarray.read_text())
    meta["shape"] = [200000, 200000]  # 160 GB of never-written chunks (fill value)
    zarray.write_text(json.dumps(meta))
    with pytest.raises(TopoError, match=r"ckpt: refused: .*params\.out\.kernel"):
        load(copy)


def test_missing_tensorstore_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorstore", None)  # import fails as if not installed
    with pytest.raises(TopoError, match=r'standard: reading Orbax checkpoints needs tensorstore.*topo-toolkit\[orbax\]'):
        load(FIXTURES / "standard")


def test_not_an_orbax_folder(tmp_path):
    (tmp_path / "_METADATA").write_text("{}")
    with pytest.raises(TopoError, match="no tree_metadata"):
        load(tmp_path, format="orbax")


def test_flax_checkpoint_folder_name_gives_the_step(tmp_path):
    pytest.importorskip("tensorstore")
    item = tmp_path / "checkpoint_5"
    shutil.copytree(FIXTURES / "standard", item)
    assert load(item).info["step"] == 5
    assert load(tmp_path).info["step"] == 5  # the folder flax.training.checkpoints writes into

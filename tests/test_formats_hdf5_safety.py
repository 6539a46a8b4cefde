"""Hostile HDF5 files: nothing is read from outside the file, nothing huge is allocated.

Every file is written here with h5py, in both Keras layouts (the legacy ``layer_names``
one and Keras 3's ``layers/<key>/vars/<i>``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from topo.errors import TopoError  # noqa: E402
from topo.formats import load  # noqa: E402

SECRET = np.arange(1, 7, dtype=np.float32)


def _legacy(path, write):
    """A legacy Keras weights file with one layer ``d`` whose kernel ``write`` creates."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"d"])
        group = f.create_group("d")
        group.attrs["weight_names"] = np.array([b"kernel:0"])
        write(group, "kernel:0")
    return path


def _keras3(path, write):
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        group = f.create_group("layers/dense/vars")
        write(group, "0")
    return path


LAYOUTS = {"legacy": _legacy, "keras3": _keras3}


@pytest.fixture
def outside(tmp_path):
    """A file outside the checkpoint holding bytes an attacker wants to read."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    raw = folder / "passwd"
    raw.write_bytes(SECRET.tobytes())
    other = folder / "other.h5"
    with h5py.File(other, "w") as f:
        f["w"] = SECRET.reshape(3, 2)
    return raw, other


@pytest.mark.parametrize("layout", LAYOUTS)
def test_external_storage_is_refused(tmp_path, outside, layout):
    raw, _ = outside
    path = LAYOUTS[layout](
        tmp_path / "ext.h5", lambda g, n: g.create_dataset(n, shape=(3, 2), dtype="f4", external=[(str(raw), 0, 24)])
    )
    with h5py.File(path, "r") as f:  # h5py itself would read the outside file
        ds = f["d/kernel:0"] if layout == "legacy" else f["layers/dense/vars/0"]
        assert np.array_equal(ds[()].ravel(), SECRET)
    with pytest.raises(TopoError, match=r"ext\.h5: refused: dataset .* external files .*passwd"):
        load(path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_external_link_is_refused(tmp_path, outside, layout):
    _, other = outside
    path = LAYOUTS[layout](tmp_path / "link.h5", lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(other), "/w")))
    with pytest.raises(TopoError, match=r"link\.h5: refused: HDF5 member .* external link to .*other\.h5"):
        load(path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_soft_link_to_an_external_link_is_refused(tmp_path, outside, layout):
    _, other = outside

    def write(group, name):
        group.file["hidden"] = h5py.ExternalLink(str(other), "/w")
        group[name] = h5py.SoftLink("/hidden")

    path = LAYOUTS[layout](tmp_path / "soft.h5", write)
    with pytest.raises(TopoError, match=r"soft\.h5: refused: HDF5 member 'hidden' is an external link"):
        load(path)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_soft_link_inside_the_file_is_followed(tmp_path, layout):
    kernel = np.array([[1, 0, 2], [0, 3, 0]], np.float32)  # [in=2, out=3]

    def write(group, name):
        group.file["stored"] = kernel
        group[name] = h5py.SoftLink("/stored")

    net = load(LAYOUTS[layout](tmp_path / "inside.h5", write))
    assert np.array_equal(net[0].mask.toarray(), kernel.T != 0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_virtual_dataset_is_refused(tmp_path, outside, layout):
    _, other = outside

    def write(group, name):
        vlayout = h5py.VirtualLayout(shape=(3, 2), dtype="f4")
        vlayout[:] = h5py.VirtualSource(str(other), "w", shape=(3, 2))
        group.create_virtual_dataset(name, vlayout)

    path = LAYOUTS[layout](tmp_path / "virtual.h5", write)
    with pytest.raises(TopoError, match=r"virtual\.h5: refused: dataset .* virtual dataset"):
        load(path)


def _fill_value_bomb(path, layout, count=100, side=5830):
    """``count`` datasets of side x side float32 (136 MB each) that were never written."""
    with h5py.File(path, "w") as f:
        if layout == "legacy":
            f.attrs["layer_names"] = np.array([f"l{i}".encode() for i in range(count)])
        else:
            f.create_group("vars")
        for i in range(count):
            if layout == "legacy":
                group = f.create_group(f"l{i}")
                group.attrs["weight_names"] = np.array([b"kernel:0"])
                name = "kernel:0"
            else:
                group = f.create_group(f"layers/dense_{i}/vars")
                name = "0"
            chunks = (side // 4, side // 4) if i % 2 else None  # both storage layouts
            group.create_dataset(name, shape=(side, side), dtype="f4", fillvalue=1.0, chunks=chunks)
    return path


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fill_value_bomb_is_refused_quickly_in_bounded_memory(tmp_path, layout):
    path = _fill_value_bomb(tmp_path / f"bomb_{layout}.h5", layout)
    assert path.stat().st_size < 400_000
    script = textwrap.dedent(
        f"""
        import resource, sys
        from topo_cli.main import main
        try:
            main(["inspect", {str(path)!r}])
        except SystemExit as exc:
            code = exc.code
        print("MAXRSS_KB", int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]), file=sys.stderr)
        sys.exit(code)
        """
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if not line.startswith("MAXRSS_KB")]
    assert len(lines) == 1, done.stderr
    assert path.name in lines[0] and "never written" in lines[0]
    max_rss_kb = int(done.stderr.split("MAXRSS_KB")[1].split()[0])
    assert max_rss_kb < 1024**2  # under 1 GB
    assert elapsed < 10


def test_compressed_dataset_within_ratio_still_reads(tmp_path):
    kernel = np.zeros((300, 200), np.float32)
    kernel[::7, ::3] = 1.5
    path = _keras3(tmp_path / "gz.weights.h5", lambda g, n: g.create_dataset(n, data=kernel, compression="gzip"))
    net = load(path)
    assert np.array_equal(net[0].mask.toarray(), kernel.T != 0)


def _vlen_ints():
    data = np.empty(1, dtype=object)
    data[0] = np.arange(3, dtype=np.int32)
    return data


def test_attributes_of_variable_length_types_are_never_read_in_process(tmp_path, monkeypatch):
    """Variable-length attribute data lives in the global heap: a damaged sequence type
    crashed libhdf5 and a damaged heap made it loop forever (both found by fuzzing).
    Variable-length strings (what Keras 3's legacy ``model.save("x.h5")`` writes) are
    read in a time- and memory-limited child process; other variable-length types never."""
    legacy = tmp_path / "attr.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs.create("layer_names", data=_vlen_ints(), dtype=h5py.vlen_dtype(np.int32))
    with pytest.raises(TopoError, match=r"attr\.h5: HDF5 attribute 'layer_names' .*is not a string"):
        load(legacy)
    named = tmp_path / "vlen_names.h5"
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    kernel[0, 1] = 0
    with h5py.File(named, "w") as f:
        f.attrs.create("layer_names", data=["d"], dtype=h5py.string_dtype())
        group = f.create_group("d")
        group.attrs.create("weight_names", data=["d/kernel:0"], dtype=h5py.string_dtype())
        group.create_dataset("d/kernel:0", data=kernel)
    net = load(named)
    assert net.names == ["d"]
    np.testing.assert_array_equal(net[0].mask.toarray(), kernel.T != 0)
    # A read that hangs inside libhdf5 ends in one line naming the file, not a hang.
    from topo.formats import _hdf5

    monkeypatch.setattr(_hdf5, "VLEN_TIMEOUT_S", 1)
    monkeypatch.setattr(_hdf5, "_VLEN_SCRIPT", "import time; time.sleep(30)")
    with pytest.raises(TopoError, match=r"vlen_names\.h5: HDF5 attribute 'layer_names' .*did not finish"):
        load(named)
    # A child that crashes (as libhdf5 did on a damaged sequence type) is one clean line too.
    monkeypatch.setattr(_hdf5, "_VLEN_SCRIPT", "import os; os.abort()")
    with pytest.raises(TopoError, match=r"vlen_names\.h5: HDF5 attribute 'layer_names' .*cannot be read"):
        load(named)
    # Keras 3 keeps each layer's name in a variable-length vars/@name: it is not read at all.
    keras3 = tmp_path / "k3.weights.h5"
    with h5py.File(keras3, "w") as f:
        f.create_group("vars")
        group = f.create_group("layers/dense/vars")
        group.attrs.create("name", data=_vlen_ints(), dtype=h5py.vlen_dtype(np.int32))
        group.create_dataset("0", data=np.ones((3, 2), np.float32))
    assert load(keras3).names == ["dense"]

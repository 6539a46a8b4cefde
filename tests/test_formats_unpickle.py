"""topo.formats._unpickle: torch.save files read with numpy, nothing imported, nothing run.

Files are written by torch itself; the truth is what torch holds in memory.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from topo.errors import TopoError  # noqa: E402
from topo.formats import load  # noqa: E402
from topo.formats._unpickle import StoredTensor  # noqa: E402
from topo.formats.pytorch import load_state_dict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "pytorch"


class WritesOnReduce:
    """Unpickled by pickle, it opens (creates) the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class WritesOnSetstate:
    """Unpickled by pickle, its ``__setstate__`` writes the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).write_text("ran")


class WritesOnNew:
    """Unpickled by pickle (protocol 2+: NEWOBJ), its ``__new__`` writes the marker file."""

    def __new__(cls, marker: str = ""):
        if marker:
            Path(marker).write_text("ran")
        return super().__new__(cls)

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def __getnewargs__(self):
        return (self.marker,)


def _replace_pickle(path: Path, data: bytes) -> None:
    """Put ``data`` in place of the archive's data.pkl, keeping every other member."""
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for info, payload in members:
            archive.writestr(info, data if info.filename.endswith("/data.pkl") else payload)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("zipped", [True, False])
def test_payloads_in_torch_files_never_run(tmp_path, protocol, zipped):
    markers = [tmp_path / f"marker{i}" for i in range(3)]
    payload = {
        "w": torch.arange(12.0).reshape(4, 3),
        "reduce": WritesOnReduce(str(markers[0])),
        "setstate": WritesOnSetstate(str(markers[1])),
        "new": WritesOnNew(str(markers[2])),
    }
    markers[2].unlink()  # written by the constructor above
    path = tmp_path / "payload.pt"
    torch.save(payload, path, pickle_protocol=protocol, _use_new_zipfile_serialization=zipped)
    # The control: torch's own full unpickler does run all three.
    torch.load(path, weights_only=False)
    assert all(m.exists() for m in markers)
    for m in markers:
        m.unlink()

    net = load(path)
    assert not any(m.exists() for m in markers)
    assert net.names == ["w"]
    np.testing.assert_array_equal(net[0].weight, payload["w"].numpy())


@pytest.mark.parametrize(
    "opcodes",
    [
        b"(S'{m}'\nios\nsystem\n.",  # protocol 0 INST
        b"\x80\x02(cos\nsystem\nX{n}{m}o.",  # OBJ
        b"\x80\x02cos\nsystem\nX{n}{m}\x85R.",  # REDUCE
        b"\x80\x02cbuiltins\nexec\nX{n}{m}\x85R.",  # REDUCE of exec on a string of code
    ],
    ids=["INST", "OBJ", "REDUCE", "exec"],
)
def test_handcrafted_opcodes_never_run(tmp_path, opcodes):
    marker = tmp_path / "marker"
    command = f"touch {marker}" if b"exec" not in opcodes else f"open({str(marker)!r}, 'w')"
    data = opcodes.replace(b"{m}", command.encode()).replace(b"{n}", len(command).to_bytes(4, "little"))
    pickle.loads(data)  # the control: a real unpickler runs it
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "crafted.pt"
    torch.save({"w": torch.ones(2, 2)}, path)
    _replace_pickle(path, data)
    obj = load_state_dict(path)
    assert not marker.exists()
    assert obj is None  # an inert record with nothing in it
    with pytest.raises(TopoError, match="crafted.pt"):
        load(path)
    assert not marker.exists()


def test_reading_torch_files_never_imports_torch(tmp_path):
    folder = tmp_path / "foreign"
    folder.mkdir()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    torch.save(model.state_dict(), folder / "zip.pt")
    torch.save(model.state_dict(), folder / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(model, folder / "whole.pt")
    code = textwrap.dedent(
        f"""
        import sys
        from topo.formats import load
        from topo.audit import audit_paths
        rows = audit_paths([{str(folder)!r}])
        assert len(rows) == 3 and all(row.ok for row in rows), rows
        for name in ("zip.pt", "legacy.pth", "whole.pt"):
            assert load({str(folder)!r} + "/" + name).names == ["0", "2"]
        print("torch imported:", "torch" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout


def _arrays(path):
    obj = load_state_dict(path)
    return {k: v.array() for k, v in obj.items()}


@pytest.mark.parametrize("zipped", [True, False])
def test_dtypes_offsets_and_strides(tmp_path, zipped):
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10) / 7
    tensors = {
        "f32": base,
        "f64": base.double(),
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f8_e4m3": (base / 10).to(torch.float8_e4m3fn),
        "f8_e5m2": (base / 10).to(torch.float8_e5m2),
        "i8": base.to(torch.int8),
        "u8": base.to(torch.uint8),
        "i64": base.long(),
        "bool": base > 3,
        "transposed": base.t(),  # strides (1, 10)
        "offset": base[2:, 3:],  # storage offset 23, non-contiguous rows
        "stepped": base[::2, ::3],  # strides (20, 3)
        "shared_row": base[4],  # shares the storage of "f32"
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(3.5),
    }
    path = tmp_path / "dtypes.pt"
    torch.save(tensors, path, _use_new_zipfile_serialization=zipped)
    got = _arrays(path)
    assert list(got) == list(tensors)
    for key, tensor in tensors.items():
        expected = tensor.float().numpy() if tensor.dtype in (torch.bfloat16, torch.float8_e4m3fn,
                                                               torch.float8_e5m2) else tensor.numpy()
        assert got[key].shape == expected.shape, key
        np.testing.assert_array_equal(got[key], expected, err_msg=key)
        assert got[key].dtype == expected.dtype, key


def test_sparse_and_quantized_tensors(tmp_path):
    gen = torch.Generator().manual_seed(0)
    dense = torch.randn(7, 5, generator=gen) * (torch.rand(7, 5, generator=gen) < 0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tensors = {
            "coo": dense.to_sparse(),
            "csr": dense.to_sparse_csr(),
            "csc": dense.to_sparse_csc(),
            "q_tensor": torch.quantize_per_tensor(dense, 0.05, 3, torch.qint8),
            "q_channel": torch.quantize_per_channel(dense, torch.rand(7, generator=gen) / 10 + 0.01,
                                                    torch.arange(7), 0, torch.quint8),
        }
    path = tmp_path / "sparse.pt"
    torch.save(tensors, path)
    got = _arrays(path)
    for key in ("coo", "csr", "csc"):
        assert got[key].format == "csr"
        np.testing.assert_array_equal(got[key].toarray(), dense.numpy())
    for key in ("q_tensor", "q_channel"):
        np.testing.assert_allclose(got[key], tensors[key].dequantize().numpy(), rtol=1e-6, atol=1e-7)


def _peak(code: str) -> tuple[str, float, float]:
    """Run ``code`` in a fresh interpreter: its output, wall seconds and peak memory (MB)."""
    script = textwrap.dedent(
        f"""
        import resource, time
        start = time.perf_counter()
        {textwrap.indent(textwrap.dedent(code), '        ').strip()}
        print("wall", time.perf_counter() - start)
        print("peak_mb", int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]) / 1024)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines() if " " in line)
    return result.stdout, float(lines["wall"]), float(lines["peak_mb"])


def test_stride_zero_and_huge_sparse_bombs_are_refused_quickly(tmp_path):
    torch.save({"w": torch.ones(1).expand(100_000, 100_000)}, tmp_path / "expand.pt")
    indices = torch.tensor([[0], [0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        huge = torch.sparse_coo_tensor(indices, torch.ones(1), (10**9, 10**9))
    torch.save({"w": huge}, tmp_path / "sparse.pt")
    torch.save({"w": torch.ones(1).expand(300, 300)}, tmp_path / "small_expand.pt")
    assert (tmp_path / "expand.pt").stat().st_size < 4096
    for name in ("expand.pt", "sparse.pt"):
        out, wall, peak = _peak(
            f"""
            from topo.errors import TopoError
            from topo.formats import load
            try:
                load({str(tmp_path / name)!r})
            except TopoError as exc:
                print("error", exc)
            """
        )
        error = [line for line in out.splitlines() if line.startswith("error ")]
        assert error and "refused" in error[0] and name in error[0], out
        assert wall < 10 and peak < 1024, (wall, peak)
    # A small broadcast view is read (it repeats 4 bytes 90,000 times: under the floor of the ratio rule).
    net = load(tmp_path / "small_expand.pt")
    assert net[0].shape == (300, 300) and net[0].density == 1.0


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    torch.save({"w": torch.randn(40, 30)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) - 100])
    with pytest.raises(TopoError, match=r"cut\.pt.*truncated"):
        load(tmp_path / "cut.pt")
    torch.save({"w": torch.randn(4, 3)}, tmp_path / "z.pt")
    with zipfile.ZipFile(tmp_path / "z.pt") as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    with zipfile.ZipFile(tmp_path / "short.pt", "w", zipfile.ZIP_STORED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload[:20] if name.endswith("/data/0") else payload)
    with pytest.raises(TopoError, match=r"short\.pt.*storage '0'"):
        load(tmp_path / "short.pt")


def test_torchscript_archives_are_still_refused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(nn.Linear(3, 2)).save(str(tmp_path / "scripted.pt"))
    with pytest.raises(TopoError, match="TorchScript"):
        load(tmp_path / "scripted.pt")


def test_stored_tensor_is_lazy(tmp_path):
    torch.save({"w": torch.randn(3, 2)}, tmp_path / "lazy.pt")
    stored = load_state_dict(tmp_path / "lazy.pt")["w"]
    assert isinstance(stored, StoredTensor)
    assert stored.shape == (3, 2) and stored.dtype_name == "float32" and stored.layout == "strided"
    assert stored.array().shape == (3, 2)


def test_shared_references_cannot_unfold_into_a_huge_tree(tmp_path):
    # 40 levels of a list holding the level below twice: 2**40 leaves from a few hundred bytes.
    level = [torch.ones(2, 2)]
    for _ in range(40):
        level = [level, level]
    torch.save({"w": level}, tmp_path / "laughs.pt")
    assert (tmp_path / "laughs.pt").stat().st_size < 10_000
    with pytest.raises(TopoError, match=r"laughs\.pt: refused: .*more than"):
        load(tmp_path / "laughs.pt")


def test_deeply_nested_pickle_is_one_clean_error(tmp_path):
    depth = 100_000  # [[[...]]]: EMPTY_LIST 100,000 times, then APPEND each into the one before
    data = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    path = tmp_path / "deep.pt"
    torch.save({"w": torch.ones(2, 2)}, path)
    _replace_pickle(path, data)
    with pytest.raises(TopoError, match=r"deep\.pt"):
        load(path)


def test_many_views_of_one_storage_are_refused(tmp_path):
    # 2,000 full views of one 64 KB storage: 128 MB to read from a file of a few hundred KB.
    base = torch.ones(128, 128)
    torch.save({f"w{i}": base[:, :] for i in range(2000)}, tmp_path / "views.pt")
    assert (tmp_path / "views.pt").stat().st_size < 400_000
    with pytest.raises(TopoError, match=r"views\.pt: refused: the tensors of this file together"):
        load(tmp_path / "views.pt")
    # Tied weights (one storage read twice) are fine.
    torch.save({"a.weight": base, "b.weight": base}, tmp_path / "tied.pt")
    assert load(tmp_path / "tied.pt").names == ["a", "b"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_inside_torch_files(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    big_endian = (rng.normal(size=(5, 4)) * (rng.random((5, 4)) < 0.5)).astype(">f4")
    fortran = np.asfortranarray(rng.integers(0, 2, size=(3, 5)).astype(np.int64))
    mask = rng.random((5, 4)) < 0.3
    obj = {
        "fc1.weight": big_endian,
        "fc2.weight": fortran,
        "step": np.int64(40),
        "masks": {"fc1.weight": mask},
        "names": np.array(["a", None], dtype=object),  # not numeric: left unread
    }
    path = tmp_path / "numpy.pt"
    torch.save(obj, path, pickle_protocol=protocol)
    loaded = load_state_dict(path)
    np.testing.assert_array_equal(loaded["fc1.weight"].array(), big_endian.astype("<f4"))
    np.testing.assert_array_equal(loaded["fc2.weight"].array(), fortran)
    assert loaded["step"] == 40 and loaded["names"] is None
    net = load(path)
    assert net.names == ["fc1", "fc2"] and net.step == 40
    np.testing.assert_array_equal(net[0].mask.toarray(), mask)  # the saved mask wins
    np.testing.assert_array_equal(net[1].mask.toarray(), fortran != 0)

"""Hostile input for every reader: only TopoError may ever escape topo.formats.load.

A fuzz test mutates small valid files of every format (byte flips, truncation,
insertion); empty files and junk with each format's suffix are checked too.
"""

from __future__ import annotations

import io
import json
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topo.errors import TopoError
from topo.formats import load
from topo.topology import Topology

FUZZ_EXAMPLES = 130  # per format; 9 formats -> over 1,000 cases


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(6, 4)).astype(np.float32)
    w1[rng.random((6, 4)) < 0.5] = 0
    w2 = rng.normal(size=(3, 6)).astype(np.float32)
    return w1, w2


def _torch_bytes(zipped: bool) -> bytes:
    import torch

    w1, w2 = _weights()
    buffer = io.BytesIO()
    state = {"fc1.weight": torch.from_numpy(w1), "fc1.bias": torch.zeros(6), "fc2.weight": torch.from_numpy(w2)}
    torch.save(state, buffer, _use_new_zipfile_serialization=zipped)
    return buffer.getvalue()


def _safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    w1, w2 = _weights()
    return save({"fc1.weight": w1, "fc2.weight": w2, "fc1.bias": np.zeros(6, np.float32)})


def _npz_bytes() -> bytes:
    w1, w2 = _weights()
    buffer = io.BytesIO()
    np.savez(buffer, fc1=w1, fc2=w2)
    return buffer.getvalue()


def _npz_compressed_sparse_bytes() -> bytes:
    buffer = io.BytesIO()
    sp.save_npz(buffer, sp.csr_matrix(_weights()[0]), compressed=True)
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, _weights()[0])
    return buffer.getvalue()


def _h5_bytes(folder: Path) -> bytes:
    import h5py

    w1, w2 = _weights()
    path = folder / "seed.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"d1", b"d2"])
        for name, kernel in (("d1", w1.T), ("d2", w2.T)):
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            group.create_dataset(f"{name}/kernel:0", data=kernel)
            group.create_dataset(f"{name}/bias:0", data=np.zeros(kernel.shape[1], np.float32))
    return path.read_bytes()


def _onnx_bytes() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    w1, w2 = _weights()
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1), helper.make_node("MatMul", ["h", "w2"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2.T.copy(), "w2")],
    )
    return helper.make_model(graph).SerializeToString()


_FOLDER = Path(tempfile.mkdtemp(prefix="topo-fuzz-"))
SEEDS = {
    "torch_zip.pt": lambda: _torch_bytes(True),
    "torch_legacy.pt": lambda: _torch_bytes(False),
    "plain.safetensors": _safetensors_bytes,
    "arrays.npz": _npz_bytes,
    "sparse.npz": _npz_compressed_sparse_bytes,
    "array.npy": _npy_bytes,
    "keras.h5": lambda: _h5_bytes(_FOLDER),
    "model.onnx": _onnx_bytes,
    "model.bin": lambda: _torch_bytes(True),
}
_CACHE: dict[str, bytes] = {}


def _seed(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = SEEDS[name]()
    return _CACHE[name]


def _check(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = load(path)
        except TopoError as exc:
            assert str(exc).startswith(str(path)) or str(path) in str(exc), str(exc)
            return
    assert isinstance(result, Topology)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_files_are_valid(name):
    path = _FOLDER / f"valid-{name}"
    path.write_bytes(_seed(name))
    net = load(path)
    assert net.nnz > 0


mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("insert"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64))),
)


def _mutate(data: bytes, how) -> bytes:
    kind, arg = how
    if kind == "flip":
        out = bytearray(data)
        for where, value in arg:
            out[int(where * len(out))] = value
        return bytes(out)
    if kind == "truncate":
        return data[: int(arg * len(data))]
    where, blob = arg
    cut = int(where * len(data))
    return data[:cut] + blob + data[cut:]


@pytest.mark.parametrize("name", sorted(SEEDS))
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(how=mutation)
def test_fuzzed_files_raise_only_topo_error(name, how):
    path = _FOLDER / f"fuzz-{name}"
    path.write_bytes(_mutate(_seed(name), how))
    _check(path)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npz", ".npy", ".h5", ".onnx", ".xyz"])
def test_empty_and_junk_files(tmp_path, suffix):
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(TopoError, match=f"empty{suffix}"):
        load(empty)
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(b"this is not a network\n" * 10)
    with pytest.raises(TopoError, match=f"junk{suffix}"):
        load(junk)


def test_plain_pickle_is_never_unpickled(tmp_path, capfd):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for suffix in (".pt", ".pkl", ".npy", ".bin"):
        path = tmp_path / f"evil{suffix}"
        path.write_bytes(pickle.dumps({"w": Evil()}, protocol=2))
        with pytest.raises(TopoError):
            load(path)
    assert not marker.exists()
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(TopoError, match="no such file"):
        load(tmp_path / "nope.pt")
    with pytest.raises(TopoError, match="unknown format"):
        load(tmp_path, format="nope")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "x"}))
    with pytest.raises(TopoError):
        load(tmp_path)


def test_run_folder_with_undecodable_or_deeply_nested_files(tmp_path):
    from topo.checkpoint import read_metrics, read_run_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    (run / "metrics.jsonl").write_bytes(b'{"epoch": 0}\n{"loss": "\xff\xfe"}\n{"epoch": 1}\n')
    with pytest.raises(TopoError, match=r"run\.json: run configuration"):
        read_run_config(run)
    with pytest.raises(TopoError, match=r"metrics\.jsonl: .*line 2"):
        read_metrics(run)
    (run / "metrics.jsonl").write_text('{"epoch": 0}\n' + "[" * 100_000 + "\n{}\n")
    with pytest.raises(TopoError, match=r"metrics\.jsonl: .*line 2"):
        read_metrics(run)


def _fuzz_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("topo_fuzz_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STRUCTURED_SEEDS = ["plain.safetensors", "arrays.npz", "sparse.npz", "array.npy", "torch_zip.pt"]


@pytest.mark.parametrize("name", STRUCTURED_SEEDS)
def test_structure_aware_mutations_raise_only_topo_error(name):
    """The mutators of benchmarks/fuzz.py (header and JSON edits, .npy header edits, zip
    members rebuilt with valid CRCs), a few dozen cases per format in the test suite."""
    import random

    fuzz = _fuzz_module()
    rng = random.Random(name)
    for case in range(40):
        path = _FOLDER / f"structured-{case}-{name}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate zip members are made on purpose
            path.write_bytes(fuzz.mutate_for_name(name, _seed(name), rng))
        _check(path)
        path.unlink()

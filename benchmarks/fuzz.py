"""Structure-aware fuzzing of every reader and of run folders.

    .venv/bin/python benchmarks/fuzz.py                 # 20,000 cases
    .venv/bin/python benchmarks/fuzz.py --cases 2000 --keep /tmp/fuzz-findings

Seeds are small valid inputs of every format topo reads: written here with the
libraries themselves (safetensors, topo's own checkpoints and run folders, torch zip
and legacy files, NumPy ``.npz`` / ``.npy`` / scipy sparse, Keras HDF5, ONNX, SET
folders, Hugging Face folders with shards, index and config) and taken from the
committed test fixtures (Keras 3, Flax msgpack, ONNX, PyTorch files, Orbax folders).

Each case mutates one seed, knowing its structure:

- bytes: bit flips, interesting integers written over 1/2/4/8 bytes, truncation,
  insertion, a copied chunk;
- safetensors headers: the JSON re-encoded after an edit (huge, negative or mistyped
  shapes, offsets and dtypes, deep nesting, non-UTF-8), the length prefix kept right
  or edited;
- JSON files (``config.json``, index files, ``run.json``, ``metrics.jsonl``) and
  msgpack trees (Flax): a value replaced by another type or an extreme number, a key
  dropped, deep nesting;
- ``.npy`` headers: shapes, dtypes and ``fortran_order`` edited;
- zip archives (``.npz``, torch zip, ``.keras``): one member mutated as above, members
  renamed (``../x.npy``), dropped or duplicated, the archive rebuilt with valid CRCs
  so that the reader meets the change and not a checksum error;
- folders: a member mutated, removed, or replaced by a link out of the folder.

Even cases are loaded with their weights (``load``), odd ones masks only, layer by
layer (``scan``, as ``topo inspect`` reads). Every case runs in a worker process with a
memory limit (``resource.setrlimit``) and a time limit. The outcome is one of: loaded, clean error (``TopoError``), other
exception, crash (the worker died) and hang (over the time limit). The goal is 0 of
the last three. ``--keep DIR`` keeps the inputs of such cases for reproduction.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import zipfile
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
OUTCOMES = ("loaded", "clean error", "other exception", "crash", "hang")

INTERESTING_INTS = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                    2**63 - 1, 2**63, 2**64 - 1]
INTERESTING_JSON = [None, True, False, -1, 0, 1, 2**31, 2**53 + 1, 2**63, 10**30, -(10**18), 1.5, 1e308, float("nan"),
                    "", "x", "F32", "BF16", "O", [], [0], [-1, 5], [10**9, 10**9], [2**40, 2**40], {}, {"a": 1},
                    "\udcff", "../../../etc/passwd", "/etc/passwd"]


# -- seeds ------------------------------------------------------------------------------
def _weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(6, 4)).astype(np.float32)
    w1[rng.random((6, 4)) < 0.5] = 0
    w2 = rng.normal(size=(3, 6)).astype(np.float32)
    return w1, w2


def _make_seeds(folder: Path) -> dict[str, Path]:
    """Valid inputs of every format, as ``kind -> path`` (files and folders)."""
    import h5py
    import scipy.sparse as sp
    import torch
    from onnx import TensorProto, helper, numpy_helper, save_model
    from safetensors.numpy import save_file

    from topo.checkpoint import append_metrics, save_checkpoint, write_run_config
    from topo.topology import Topology

    folder.mkdir(parents=True, exist_ok=True)
    w1, w2 = _weights()
    seeds: dict[str, Path] = {}

    def add(kind: str, path: Path) -> None:
        seeds[kind] = path

    save_file({"fc1.weight": w1, "fc1.bias": np.zeros(6, np.float32), "fc2.weight": w2},
              str(folder / "plain.safetensors"))
    add("safetensors", folder / "plain.safetensors")

    net = Topology.from_weights([w1, w2], names=["fc1", "fc2"])
    save_checkpoint(net, folder / "topo_dense.safetensors", epoch=3)
    add("topo", folder / "topo_dense.safetensors")
    sparse_mask = np.zeros((40, 40), bool)
    sparse_mask[np.arange(40), (np.arange(40) * 7) % 40] = True
    save_checkpoint(Topology.from_masks([sparse_mask, sparse_mask]), folder / "topo_csr.safetensors", epoch=1)
    add("topo-csr", folder / "topo_csr.safetensors")

    run = folder / "run"
    write_run_config(run, {"method": "rigl", "sparsity": 0.9, "seed": 0, "widths": [4, 6, 3]})
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    for epoch in (0, 1):
        save_checkpoint(net, run / "checkpoints" / f"epoch_{epoch:04d}.safetensors", epoch=epoch)
        append_metrics(run, {"epoch": epoch, "loss": 1.0 / (epoch + 1), "accuracy": 0.5})
    add("run-folder", run)

    state = {"fc1.weight": torch.from_numpy(w1), "fc1.bias": torch.zeros(6), "fc2.weight": torch.from_numpy(w2)}
    torch.save(state, folder / "zip.pt")
    add("torch-zip", folder / "zip.pt")
    torch.save(state, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    add("torch-legacy", folder / "legacy.pt")

    np.savez(folder / "arrays.npz", fc1=w1, fc2=w2)
    add("npz", folder / "arrays.npz")
    np.savez_compressed(folder / "compressed.npz", fc1=w1, fc2=w2)
    add("npz-deflated", folder / "compressed.npz")
    sp.save_npz(folder / "sparse.npz", sp.csr_matrix(w1))
    add("scipy-sparse", folder / "sparse.npz")
    np.save(folder / "array.npy", w1)
    add("npy", folder / "array.npy")

    set_folder = folder / "set_run" / "epoch_010"
    set_folder.mkdir(parents=True)
    for k, w in enumerate((w1, w2)):
        with_bias = np.vstack([w.T, np.ones((1, w.shape[0]), np.float32)])
        sp.save_npz(set_folder / f"weight_l{k}.npz", sp.csr_matrix(with_bias))
    add("set-folder", folder / "set_run")

    with h5py.File(folder / "keras.h5", "w") as f:
        f.attrs["layer_names"] = np.array([b"d1", b"d2"])
        for name, kernel in (("d1", w1.T), ("d2", w2.T)):
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            group.create_dataset(f"{name}/kernel:0", data=kernel)
            group.create_dataset(f"{name}/bias:0", data=np.zeros(kernel.shape[1], np.float32))
    add("keras-h5", folder / "keras.h5")

    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1), helper.make_node("MatMul", ["h", "w2"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2.T.copy(), "w2")],
    )
    save_model(helper.make_model(graph), str(folder / "model.onnx"))
    add("onnx", folder / "model.onnx")

    hf = folder / "hf"
    hf.mkdir()
    save_file({"model.layers.0.mlp.fc1.weight": w1}, str(hf / "model-00001-of-00002.safetensors"))
    save_file({"model.layers.0.mlp.fc2.weight": w2}, str(hf / "model-00002-of-00002.safetensors"))
    index = {"metadata": {"total_size": int(w1.nbytes + w2.nbytes)},
             "weight_map": {"model.layers.0.mlp.fc1.weight": "model-00001-of-00002.safetensors",
                            "model.layers.0.mlp.fc2.weight": "model-00002-of-00002.safetensors"}}
    (hf / "model.safetensors.index.json").write_text(json.dumps(index))
    (hf / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 1}))
    add("hf-folder", hf)

    # committed fixtures written by the libraries themselves
    for sub, pattern in (("keras3", "*.keras"), ("keras3", "*.weights.h5"), ("flax", "*.msgpack"),
                         ("onnx", "*.onnx"), ("pytorch", "*.pt*")):
        for path in sorted((FIXTURES / sub).glob(pattern)):
            add(f"{sub}:{path.name}", path)
    for path in sorted((FIXTURES / "orbax").glob("*")):
        if path.is_dir():
            add(f"orbax:{path.name}", path)
    if (FIXTURES / "pytorch" / "gpt2_tiny").is_dir():
        add("pytorch:gpt2_tiny", FIXTURES / "pytorch" / "gpt2_tiny")
    return seeds


# -- mutations --------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
    how = rng.choice(["flip", "flip", "int", "truncate", "insert", "chunk"])
    out = bytearray(data)
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
    elif how == "int":
        width = rng.choice([1, 2, 4, 8])
        value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
        i = rng.randrange(max(1, len(out) - width + 1))
        out[i:i + width] = value.to_bytes(width, rng.choice(["little", "big"]))
    elif how == "truncate":
        del out[rng.randrange(len(out)):]
    elif how == "insert":
        i = rng.randrange(len(out) + 1)
        out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        a = rng.randrange(len(out))
        b = min(len(out), a + rng.randint(1, 256))
        i = rng.randrange(len(out) + 1)
        out[i:i] = out[a:b] * rng.randint(1, 4)
    return bytes(out)


_DEEP_RE = re.compile(r'"\\u0000DEEP(\d+)\\u0000"')


def _deep(rng: random.Random) -> object:
    """A marker that :func:`_dumps` writes as that many nested lists (too deep for json.dumps)."""
    return f"\x00DEEP{rng.choice([50, 900, 5000, 100_000])}\x00"


def mutate_tree(tree: object, rng: random.Random) -> object:
    """A JSON-like tree with one value replaced, a key dropped or deep nesting inserted."""
    if not isinstance(tree, (dict, list)) or not tree:
        return rng.choice(INTERESTING_JSON + [_deep(rng)])
    parent: object = tree
    key: object = None
    node: object = tree
    for _ in range(rng.randint(1, 6)):
        if isinstance(node, dict) and node:
            parent, key = node, rng.choice(list(node))
        elif isinstance(node, list) and node:
            parent, key = node, rng.randrange(len(node))
        else:
            break
        node = parent[key]  # type: ignore[index]
        if rng.random() < 0.35:
            break
    choice = rng.random()
    if choice < 0.12 and isinstance(parent, dict):
        del parent[key]
    elif choice < 0.2:
        parent[key] = _deep(rng)  # type: ignore[index]
    elif choice < 0.3 and isinstance(node, (int, float)) and not isinstance(node, bool):
        parent[key] = rng.choice([node * 10**9, -node - 1, node + 2**31, 0])  # type: ignore[index]
    elif choice < 0.4 and isinstance(node, list) and node:
        parent[key] = node * rng.choice([2, 1000])  # type: ignore[index]
    else:
        parent[key] = rng.choice(INTERESTING_JSON)  # type: ignore[index]
    return tree


def _dumps(tree: object) -> str:
    text = json.dumps(tree, default=str)
    return _DEEP_RE.sub(lambda m: "[" * int(m.group(1)) + "1" + "]" * int(m.group(1)), text)


def mutate_json_text(data: bytes, rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.1:
        return mutate_bytes(data, rng)
    if r < 0.15:
        return data[: len(data) // 2] + b"\xff\xfe" + data[len(data) // 2:]
    if r < 0.2:
        return b"[" * rng.choice([1000, 100_000]) + b"1" + b"]" * rng.choice([0, 1000])
    lines = data.decode("utf-8", "replace").splitlines()
    if len(lines) > 1:  # JSON lines: one line
        i = rng.randrange(len(lines))
        try:
            lines[i] = _dumps(mutate_tree(json.loads(lines[i]), rng))
        except ValueError:
            lines[i] = lines[i][: len(lines[i]) // 2]
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    try:
        tree = json.loads(data)
    except ValueError:
        return mutate_bytes(data, rng)
    return _dumps(mutate_tree(tree, rng)).encode("utf-8", "surrogatepass")


def mutate_safetensors(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 8 or rng.random() < 0.2:
        return mutate_bytes(data, rng)
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + n])
    except ValueError:
        return mutate_bytes(data, rng)
    body = data[8 + n:]
    r = rng.random()
    if r < 0.6:
        header = mutate_tree(header, rng)
    elif r < 0.75 and isinstance(header, dict):  # many names over the same bytes
        entries = [k for k in header if k != "__metadata__"]
        if entries:
            source = header[rng.choice(entries)]
            for i in range(rng.choice([2, 50, 3000])):
                header[f"dup.{i}.weight"] = source
    elif r < 0.85 and isinstance(header, dict):  # a huge or negative declared shape
        entries = [k for k in header if k != "__metadata__"]
        if entries:
            entry = header[rng.choice(entries)]
            if isinstance(entry, dict):
                entry["shape"] = rng.choice([[10**9, 10**9], [2**31, 1], [-1, 4], [0, 5], [1] * 40, [10**8 + 1, 10**8]])
    raw = _dumps(header).encode("utf-8", "surrogatepass")
    prefix_len = len(raw) if rng.random() < 0.9 else rng.choice([0, len(raw) + 1, len(raw) - 1, 2**40, 100_000_001])
    return struct.pack("<Q", prefix_len & (2**64 - 1)) + raw + body


_SHAPE_RE = re.compile(rb"'shape': \(([^)]*)\)")
_DESCR_RE = re.compile(rb"'descr': '([^']*)'")


def mutate_npy(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.3 or not data.startswith(b"\x93NUMPY"):
        return mutate_bytes(data, rng)
    r = rng.random()
    if r < 0.45:
        shape = rng.choice([b"100000, 100000", b"-1, 4", b"", b"0, 5", b"1, 1, 1, 1, 1, 1, 1", b"10**9,", b"2**62, 2",
                            b"6, 4000000000", b"'a', 2", b"1000000000, 1000000000"])
        out = _SHAPE_RE.sub(b"'shape': (" + shape + b")", data, count=1)
    elif r < 0.8:
        descr = rng.choice([b"|O", b"<U8", b">f8", b"<c16", b"|b1", b"<M8[s]", b"|V4", b"<f2", b"xx", b"<i8"])
        out = _DESCR_RE.sub(b"'descr': '" + descr + b"'", data, count=1)
    else:
        out = data.replace(b"False", b"True", 1)
    return out


def mutate_msgpack(data: bytes, rng: random.Random) -> bytes:
    import msgpack

    if rng.random() < 0.3:
        return mutate_bytes(data, rng)
    try:
        tree = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:
        return mutate_bytes(data, rng)

    def leaf_edit(node: object) -> object:
        # Flax stores arrays as ExtType(1, msgpack([shape, dtype, bytes])): edit inside it too.
        if isinstance(node, msgpack.ExtType) and rng.random() < 0.7:
            try:
                inner = msgpack.unpackb(node.data, raw=False)
                inner = mutate_tree(list(inner), rng)
                return msgpack.ExtType(node.code, msgpack.packb(inner, use_bin_type=True))
            except Exception:
                return msgpack.ExtType(node.code, mutate_bytes(node.data, rng))
        return mutate_tree(node, rng)

    def walk(node: object, depth: int = 0) -> object:
        if isinstance(node, dict) and node and depth < 6 and rng.random() < 0.7:
            key = rng.choice(list(node))
            node[key] = walk(node[key], depth + 1)
            return node
        return leaf_edit(node)

    try:
        return msgpack.packb(walk(tree), use_bin_type=True)
    except Exception:
        return mutate_bytes(data, rng)


def mutate_zip(data: bytes, rng: random.Random) -> bytes:
    """One member mutated (or renamed, dropped, duplicated); the archive rebuilt with valid CRCs."""
    try:
        source = zipfile.ZipFile(io.BytesIO(data))
        members = [(info, source.read(info)) for info in source.infolist()]
    except Exception:
        return mutate_bytes(data, rng)
    if not members or rng.random() < 0.1:
        return mutate_bytes(data, rng)
    index = rng.randrange(len(members))
    info, payload = members[index]
    r = rng.random()
    name = info.filename
    if r < 0.08:
        name = rng.choice(["../" + name, "/abs/" + name, name + ".extra", "a/../../" + name, name.upper()])
    elif r < 0.14:
        del members[index]
    elif r < 0.2:
        members.append((info, payload))
    else:
        payload = mutate_for_name(name, payload, rng)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i, (member, content) in enumerate(members):
            target = name if i == index else member.filename
            archive.writestr(zipfile.ZipInfo(target, date_time=member.date_time), content,
                             compress_type=member.compress_type)
    return out.getvalue()


def mutate_for_name(name: str, data: bytes, rng: random.Random) -> bytes:
    """The mutation that knows the structure a file of this name has (bytes when it cannot parse it)."""
    try:
        return _structured(name, data, rng)
    except (ValueError, RecursionError, UnicodeError, struct.error, OverflowError, TypeError):
        return mutate_bytes(data, rng)


def _structured(name: str, data: bytes, rng: random.Random) -> bytes:
    lower = name.lower()
    if lower.endswith(".safetensors"):
        return mutate_safetensors(data, rng)
    if lower.endswith((".json", ".jsonl")):
        return mutate_json_text(data, rng)
    if lower.endswith(".npy"):
        return mutate_npy(data, rng)
    if lower.endswith(".msgpack"):
        return mutate_msgpack(data, rng)
    if data[:4] == b"PK\x03\x04" and rng.random() < 0.75:
        return mutate_zip(data, rng)
    if data.startswith(b"\x93NUMPY"):
        return mutate_npy(data, rng)
    return mutate_bytes(data, rng)


def make_case(seed: Path, target: Path, rng: random.Random) -> Path:
    """Write one mutated copy of ``seed`` under ``target``; return the path to load."""
    target.mkdir(parents=True)
    if seed.is_file():
        out = target / seed.name
        out.write_bytes(mutate_for_name(seed.name, seed.read_bytes(), rng))
        return out
    copy = target / seed.name
    shutil.copytree(seed, copy, symlinks=True)
    files = sorted(p for p in copy.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        return copy
    victim = rng.choice(files)
    r = rng.random()
    if r < 0.06:
        victim.unlink()
    elif r < 0.12:  # a link out of the folder
        outside = target / "outside.bin"
        outside.write_bytes(victim.read_bytes())
        victim.unlink()
        victim.symlink_to(outside)
    else:
        for _ in range(rng.choice([1, 1, 1, 2])):
            victim.write_bytes(mutate_for_name(victim.name, victim.read_bytes(), rng))
    return copy


# -- workers ----------------------------------------------------------------------------
def _limit_memory(extra_bytes: int) -> None:
    import resource

    vm = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                vm = int(line.split()[1]) * 1024
    limit = vm + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _exercise(path: Path, kind: str, masks_only: bool) -> str:
    """Load ``path`` like a command would (with weights, or masks only layer by layer as
    ``topo inspect`` does); return the outcome class."""
    from topo.analysis.degree import layer_degree
    from topo.checkpoint import read_metrics, read_run_config
    from topo.errors import TopoError
    from topo.formats import load, scan

    try:
        if masks_only:
            topology, _ = scan(path, layer_degree)
        else:
            topology = load(path, weights=True)
        _ = (topology.nnz, topology.widths)
        if kind == "run-folder":
            read_run_config(path)
            read_metrics(path)
        return "loaded"
    except TopoError:
        return "clean error"


def _worker(conn, memory_bytes: int, seeds: list[str]) -> None:
    import warnings

    warnings.simplefilter("ignore")
    # import every reader and read every seed once before the memory limit is set
    from topo.formats import READERS, _module, load

    for name in READERS:
        try:
            _module(name)
        except Exception:
            pass
    for seed in seeds:
        try:
            load(seed)
        except Exception:
            pass
    _limit_memory(memory_bytes)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        case_id, path, kind = job
        try:
            outcome, detail = _exercise(Path(path), kind, masks_only=case_id % 2 == 1), ""
        except BaseException as exc:  # noqa: BLE001 - everything that is not TopoError is a finding
            outcome, detail = "other exception", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        conn.send((case_id, outcome, detail))


class Pool:
    """Worker processes that each run one case at a time, replaced when they die or hang."""

    def __init__(self, n: int, memory_bytes: int, timeout: float, seeds: list[str]) -> None:
        self.ctx = mp.get_context("spawn")
        self.memory_bytes, self.timeout, self.seeds = memory_bytes, timeout, seeds
        self.workers = [self._start() for _ in range(n)]

    def _start(self) -> dict:
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=_worker, args=(child, self.memory_bytes, self.seeds), daemon=True)
        process.start()
        child.close()
        return {"process": process, "conn": parent, "job": None, "since": 0.0}

    def run(self, jobs, on_result) -> None:
        jobs = iter(jobs)
        pending = True
        while True:
            for i, worker in enumerate(self.workers):
                if worker["job"] is None and pending:
                    job = next(jobs, None)
                    if job is None:
                        pending = False
                        continue
                    worker["job"], worker["since"] = job, time.monotonic()
                    worker["conn"].send(job)
            busy = [w for w in self.workers if w["job"] is not None]
            if not busy:
                return
            ready = wait([w["conn"] for w in busy] + [w["process"].sentinel for w in busy], timeout=0.5)
            now = time.monotonic()
            for i, worker in enumerate(self.workers):
                job = worker["job"]
                if job is None:
                    continue
                if worker["conn"] in ready:
                    try:
                        case_id, outcome, detail = worker["conn"].recv()
                    except (EOFError, OSError):
                        outcome, detail = "crash", f"worker exit code {worker['process'].exitcode}"
                        self._replace(i)
                    on_result(job, outcome, detail)
                    worker["job"] = None
                elif worker["process"].sentinel in ready or not worker["process"].is_alive():
                    worker["process"].join(1)
                    on_result(job, "crash", f"worker exit code {worker['process'].exitcode}")
                    self._replace(i)
                elif now - worker["since"] > self.timeout:
                    on_result(job, "hang", f"over {self.timeout:.0f} s")
                    self._replace(i)

    def _replace(self, i: int) -> None:
        old = self.workers[i]
        if old["process"].is_alive():
            old["process"].kill()
        old["process"].join(5)
        old["conn"].close()
        self.workers[i] = self._start()

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker["conn"].send(None)
            except (OSError, BrokenPipeError):
                pass
        for worker in self.workers:
            worker["process"].join(5)
            if worker["process"].is_alive():
                worker["process"].kill()


def _unreadable_seeds(seeds: dict[str, Path]) -> list[str]:
    from topo.errors import TopoError
    from topo.formats import load

    out = []
    for kind, path in seeds.items():
        try:
            load(path)
        except TopoError as exc:
            out.append(f"{kind} ({str(exc).split(': ', 1)[-1][:80]})")
    return out


# -- main -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20_000, help="number of mutated inputs (default 20,000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the mutations")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address space each worker may add (MiB)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a case counts as a hang")
    parser.add_argument("--keep", type=Path, help="keep the inputs of findings (other exception, crash, hang) here")
    parser.add_argument("--only", help="regular expression: fuzz only the seed kinds it matches")
    args = parser.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore")  # zipfile warns about the duplicate members made on purpose

    work = Path(tempfile.mkdtemp(prefix="topo-fuzz-"))
    try:
        seeds = _make_seeds(work / "seeds")
        if args.only:
            seeds = {k: v for k, v in seeds.items() if re.search(args.only, k)}
        kinds = sorted(seeds)
        print(f"{len(kinds)} seeds: {', '.join(kinds)}", flush=True)
        unreadable = _unreadable_seeds(seeds)
        if unreadable:
            print("seeds that do not load unmutated (their readers' cases test error paths only): "
                  + "; ".join(unreadable), flush=True)
        rng = random.Random(args.seed)
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        findings: list[tuple[str, str, str, str]] = []
        started = time.monotonic()
        done = [0]

        def jobs():
            for case in range(args.cases):
                kind = kinds[case % len(kinds)]
                case_rng = random.Random(rng.getrandbits(64))
                path = make_case(seeds[kind], work / "cases" / f"{case:06d}", case_rng)
                yield case, str(path), "run-folder" if kind == "run-folder" else kind

        def on_result(job, outcome, detail):
            case, path, kind = job
            counts[kind][outcome] += 1
            done[0] += 1
            if outcome in ("other exception", "crash", "hang"):
                findings.append((kind, outcome, detail, path))
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(Path(path).parent, args.keep / f"{case:06d}-{kind.replace(':', '_')}", symlinks=True,
                                    dirs_exist_ok=True)
            shutil.rmtree(Path(path).parent, ignore_errors=True)
            if done[0] % 1000 == 0:
                total = collections.Counter()
                for c in counts.values():
                    total.update(c)
                print(f"  {done[0]:,} cases, {time.monotonic() - started:.0f} s: "
                      + ", ".join(f"{o} {total[o]:,}" for o in OUTCOMES), flush=True)

        pool = Pool(args.workers, args.memory_mb * 1024**2, args.timeout, [str(p) for p in seeds.values()])
        try:
            pool.run(jobs(), on_result)
        finally:
            pool.close()
        elapsed = time.monotonic() - started

        width = max(len(k) for k in kinds)
        print(f"\n{'seed':<{width}}  " + "  ".join(f"{o:>15}" for o in OUTCOMES))
        total = collections.Counter()
        for kind in kinds:
            total.update(counts[kind])
            print(f"{kind:<{width}}  " + "  ".join(f"{counts[kind][o]:>15,}" for o in OUTCOMES))
        print(f"{'all':<{width}}  " + "  ".join(f"{total[o]:>15,}" for o in OUTCOMES))
        print(f"\n{sum(total.values()):,} cases in {elapsed:.0f} s with {args.workers} workers "
              f"(memory limit +{args.memory_mb} MiB, time limit {args.timeout:.0f} s)")
        if findings:
            print("\nfindings (first 40):")
            by_kind = collections.Counter((k, o, d) for k, o, d, _ in findings)
            for (kind, outcome, detail), n in by_kind.most_common(40):
                print(f"  {n:>5} x {kind}: {outcome}: {detail}")
        goal = total["other exception"] + total["crash"] + total["hang"]
        print("goal (0 other exceptions, 0 crashes, 0 hangs): " + ("met" if goal == 0 else f"MISSED ({goal:,} findings)"))
        return 0 if goal == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

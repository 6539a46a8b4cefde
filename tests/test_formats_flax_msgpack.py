"""topo.formats.flax_msgpack: files written by ``flax.serialization.to_bytes``.

The fixtures were written by Flax itself (tests/fixtures/flax/make_fixtures.py). The
truth is decoded here with msgpack and numpy directly (Flax's array extension is
``ExtType(1, msgpack([shape, dtype, bytes]))``), never with topo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

msgpack = pytest.importorskip("msgpack")

from topo.errors import TopoError  # noqa: E402
from topo.formats import detect_format, load  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "flax"


def _raw(path: Path) -> dict:
    def hook(code, data):
        shape, dtype, buffer = msgpack.unpackb(data)
        if dtype == "bfloat16":
            return (np.frombuffer(buffer, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
        return np.frombuffer(buffer, np.dtype(dtype)).reshape(shape)

    return msgpack.unpackb(path.read_bytes(), ext_hook=hook, strict_map_key=False)


@pytest.mark.parametrize("name", ["mlp.msgpack", "train_state.msgpack"])
def test_linen_params_kernels_are_in_out_whatever_the_shape(name):
    path = FIXTURES / name
    assert detect_format(path) == "flax-msgpack"
    params = _raw(path)["params"]
    net = load(path)
    assert sorted(net.names) == sorted(params)  # optimizer moments (opt_state) are not layers
    square = params["a_square"]["kernel"]
    assert square.shape[0] == square.shape[1] and not np.array_equal(square != 0, square.T != 0)
    for layer in net:
        kernel, bias = params[layer.name]["kernel"], params[layer.name]["bias"]
        assert np.array_equal(layer.mask.toarray(), kernel.T != 0)  # [in, out] -> [out, in]
        np.testing.assert_array_equal(layer.weight, kernel.T)
        np.testing.assert_array_equal(layer.bias, bias)
    assert net.info["collection"] == "params"
    if name == "train_state.msgpack":
        raw = _raw(path)
        assert net.info["step"] == int(raw["step"]) == 42
        assert "opt_state" in raw


def test_safetensors_holding_flax_kernels_read_by_name():
    """A ``kernel`` in a safetensors file is [in, out] too: the name decides, not the shape."""
    from safetensors.numpy import load_file

    path = FIXTURES / "mlp.safetensors"
    stored = load_file(str(path))
    net = load(path)
    for layer in net:
        kernel = stored[f"{layer.name}.kernel"]
        assert np.array_equal(layer.mask.toarray(), kernel.T != 0)
        np.testing.assert_array_equal(layer.bias, stored[f"{layer.name}.bias"])
    square = next(layer for layer in net if layer.name == "a_square")
    assert square.shape == (8, 8)


def test_npz_of_flax_params_reads_kernels_by_name(tmp_path):
    params = _raw(FIXTURES / "mlp.msgpack")["params"]
    path = tmp_path / "params.npz"
    np.savez(path, **{f"{k}/{v}": a for k, d in params.items() for v, a in d.items()})
    net = load(path)
    square = next(layer for layer in net if layer.name == "a_square")
    assert np.array_equal(square.mask.toarray(), params["a_square"]["kernel"].T != 0)


def test_square_arrays_without_a_telling_name_are_flagged(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "square.npz"
    np.savez(path, w0=rng.normal(size=(6, 6)), w1=rng.normal(size=(6, 6)))
    net = load(path)
    assert any("layout not known" in w for w in net.info["warnings"])


def test_conv_embedding_and_bfloat16():
    path = FIXTURES / "cnn_embed.msgpack"
    params = _raw(path)["params"]
    net = load(path)
    by_name = {layer.name: layer for layer in net}
    for conv in ("conv_a", "conv_b"):
        kernel = params[conv]["kernel"]  # [kh, kw, in, out]
        assert np.array_equal(by_name[conv].mask.toarray(), (kernel != 0).any(axis=(0, 1)).T)
        assert by_name[conv].info["kernel_density"] == pytest.approx(np.count_nonzero(kernel) / kernel.size)
    table = params["embed"]["embedding"]  # [vocab, dim]
    assert by_name["embed"].shape == (table.shape[1], table.shape[0])
    assert np.array_equal(by_name["embed"].mask.toarray(), table.T != 0)
    assert by_name["embed"].standalone
    np.testing.assert_array_equal(by_name["proj"].weight, params["proj"]["kernel"].T)


def test_nnx_pure_dict_without_params_collection():
    path = FIXTURES / "nnx.msgpack"
    raw = _raw(path)
    net = load(path)
    assert net.names == ["first", "second"]
    for layer in net:
        assert np.array_equal(layer.mask.toarray(), raw[layer.name]["kernel"].T != 0)
    assert any("no 'params' collection" in w for w in net.info["warnings"])


def _ext_array(shape, dtype, buffer):
    return msgpack.ExtType(1, msgpack.packb([list(shape), dtype, buffer]))


def test_array_declaring_more_than_it_stores_is_refused(tmp_path):
    path = tmp_path / "lie.msgpack"
    payload = {"params": {"d": {"kernel": _ext_array((100000, 100000), "float32", b"\0" * 16)}}}
    path.write_bytes(msgpack.packb(payload))
    assert detect_format(path) == "flax-msgpack"
    with pytest.raises(TopoError, match=r"lie\.msgpack: .*declares shape \(100000, 100000\).* stores 16 bytes"):
        load(path)


def test_unknown_dtype_and_corrupt_files(tmp_path):
    path = tmp_path / "odd.msgpack"
    path.write_bytes(msgpack.packb({"params": {"d": {"kernel": _ext_array((2, 2), "object", b"\0" * 16)}}}))
    with pytest.raises(TopoError, match=r"odd\.msgpack: .*dtype 'object'"):
        load(path)
    good = (FIXTURES / "mlp.msgpack").read_bytes()
    cut = tmp_path / "cut.msgpack"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(TopoError, match=r"cut\.msgpack: "):
        load(cut)


def test_chunked_array_is_reassembled(tmp_path):
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4)
    flat = kernel.reshape(-1)
    chunked = {"__msgpack_chunked_array__": True, "shape": {"0": 3, "1": 4},
               "chunks": {"0": _ext_array((8,), "float32", flat[:8].tobytes()),
                          "1": _ext_array((4,), "float32", flat[8:].tobytes())}}
    path = tmp_path / "chunked.msgpack"
    path.write_bytes(msgpack.packb({"params": {"big": {"kernel": chunked}}}))
    net = load(path)
    np.testing.assert_array_equal(net[0].weight, kernel.T)


def test_sorted_state_dict_is_read_in_network_order():
    """Flax writes dict keys as they are (sorted after any jax.tree_map): the shapes decide."""
    path = FIXTURES / "mlp.msgpack"
    params = _raw(path)["params"]
    assert list(params) == sorted(params)  # the file's order is alphabetical, not the network's
    # The only order using every layer in which each kernel's outputs feed the next one's inputs.
    shapes = {name: params[name]["kernel"].shape for name in params}
    first = [n for n in shapes if all(shapes[n][0] != shapes[m][1] for m in shapes if m != n)]
    assert first == ["z_in"]
    net = load(path)
    assert net.names == ["z_in", "a_square", "m_out"]
    assert all(a.n_out == b.n_in for a, b in zip(net, net.layers[1:]))
    assert not any(layer.standalone for layer in net)


def test_deeply_nested_map_is_one_clean_line(tmp_path):
    path = tmp_path / "deep.msgpack"
    path.write_bytes(b"\x81\xa1a" * 200_000 + msgpack.packb(_ext_array((2, 2), "float32", b"\0" * 16)))
    with pytest.raises(TopoError, match=r"deep\.msgpack: not a readable msgpack file \(nested too deeply\)"):
        load(path)


def test_folder_of_flax_checkpoints_reads_the_newest_step():
    folder = FIXTURES / "checkpoints"
    steps = sorted(int(p.name.split("_")[1]) for p in folder.iterdir())
    assert steps == [3, 10]
    assert detect_format(folder) == "flax-msgpack"
    net = load(folder)
    assert net.info["step"] == 10 and net.info["steps"] == [3, 10]
    newest = _raw(folder / "checkpoint_10")["params"]
    oldest = _raw(folder / "checkpoint_3")["params"]
    for layer in net:
        assert np.array_equal(layer.mask.toarray(), newest[layer.name]["kernel"].T != 0)
    assert sum(np.count_nonzero(p["kernel"]) for p in newest.values()) < sum(
        np.count_nonzero(p["kernel"]) for p in oldest.values())
    assert load(folder / "checkpoint_3").info["step"] == 3

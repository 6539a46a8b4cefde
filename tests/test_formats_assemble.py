"""build_topology builds new values: the reader's tensors and lists are left as they were."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from topo.formats._assemble import Tensor, build_topology


def _state(tensors):
    """Every field of every tensor: the object it refers to, and a copy of arrays' values."""
    state = []
    for t in tensors:
        entry = {}
        for f in fields(t):
            value = getattr(t, f.name)
            copied = value.copy() if isinstance(value, (np.ndarray, dict)) else value
            entry[f.name] = (value, copied)
        state.append(entry)
    return state


def _unchanged(tensors, before) -> None:
    for t, entry in zip(tensors, before):
        for name, (obj, copied) in entry.items():
            now = getattr(t, name)
            assert now is obj, f"{t.key}.{name} was replaced ({obj!r} -> {now!r})"
            if isinstance(obj, np.ndarray):
                assert np.array_equal(now, copied), f"{t.key}.{name} was changed in place"
            elif isinstance(obj, dict):
                assert now == copied, f"{t.key}.{name} was changed in place"


def test_naming_biases_kinds_and_groups_leave_the_tensors_alone(tmp_path):
    rng = np.random.default_rng(0)
    tensors = [
        # an embedding table [vocab, dim]: its layout is flipped in the layer
        Tensor(key="embed.weight", value=rng.normal(size=(10, 4)).astype(np.float32)),
        # a linear layer whose bias is found among the 1-D tensors
        Tensor(key="fc1.weight", value=rng.normal(size=(8, 4)).astype(np.float32)),
        Tensor(key="fc1.bias", value=np.arange(8, dtype=np.float32)),
        # a depthwise convolution after an 8-channel one: its groups are inferred
        Tensor(key="conv1.weight", value=rng.normal(size=(8, 3, 3, 3)).astype(np.float32)),
        Tensor(key="conv2.weight", value=rng.normal(size=(8, 1, 3, 3)).astype(np.float32)),
    ]
    warnings, skipped = ["a reader's warning"], ["reader-skipped"]
    before = _state(tensors)

    net = build_topology(tensors, path=tmp_path / "x", format="t", warnings=warnings, skipped=skipped)

    # what it built used the names, bias, kind and groups it found ...
    by_name = {layer.name: layer for layer in net}
    assert by_name["embed"].shape == (4, 10)
    assert by_name["embed"].info["role"] == "embedding"
    assert np.array_equal(by_name["fc1"].bias, np.arange(8, dtype=np.float32))
    assert by_name["conv2"].info["groups_inferred"] is True
    assert by_name["conv2"].shape == (8, 8)
    assert net.info["warnings"][0] == "a reader's warning"
    assert net.info["skipped"][0] == "reader-skipped"
    # ... without writing any of it into the reader's tensors or lists
    _unchanged(tensors, before)
    assert all(t.name is None and t.kind is None and t.bias is None for t in tensors)
    assert tensors[0].layout == "out_in" and tensors[4].groups == 1 and tensors[4].info == {}
    assert warnings == ["a reader's warning"] and skipped == ["reader-skipped"]


def test_reordering_by_shape_leaves_the_tensor_list_alone(tmp_path):
    # declared a (3 -> 5), b (7 -> 3): only b then a chains
    a = Tensor(key="a.weight", value=np.ones((5, 3), np.float32))
    b = Tensor(key="b.weight", value=np.ones((3, 7), np.float32))
    tensors = [a, b]
    before = _state(tensors)

    net = build_topology(tensors, path=Path(tmp_path / "x"), format="t")

    assert net.names == ["b", "a"]
    assert net.info["order"].startswith("inferred from shapes")
    assert tensors == [a, b] and tensors[0] is a
    _unchanged(tensors, before)

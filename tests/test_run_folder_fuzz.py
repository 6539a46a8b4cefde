"""Hostile run folders: every bad ``run.json``, ``metrics.jsonl``, checkpoint metadata and
training state ends in TopoError (one line naming the file), never another exception.

A real run is trained once; each case copies it, damages one file the way a fuzzer or an
attacker would (wrong types, non-UTF-8 bytes, truncation, deep nesting, header edits),
and then every reader of run folders is called on it: the run-folder readers, topo.load,
the report's loader and summary, and ``resume``.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import topo
from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics, read_run_config
from topo.errors import TopoError
from topo.training.config import TrainConfig
from topo.training.trainer import resume, train

#: values of every JSON type (and a few hostile ones) that replace a field's value
VALUES = [
    None, "", "x", "null", "[0, 1]", [], [1, "a"], {}, {"a": {"b": 1}}, True, False, 1.5, -1, 0, 10**30,
    float("nan"), "\udcff", "é" * 3, [[[[[[1]]]]]],
]
DEEP = 100_000


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fuzz") / "run"
    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1, batch_size=256, threads=1, device="cpu", seed=3)
    result = train(config, run_dir=run)
    return run, result


def _deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def _replace_value(obj, rng: random.Random):
    """Replace the value of one random key somewhere in a JSON object (or one list item)."""
    containers = []

    def walk(node):
        if isinstance(node, dict) and node:
            containers.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list) and node:
            containers.append(node)
            for value in node:
                walk(value)

    walk(obj)
    target = rng.choice(containers)
    key = rng.choice(list(target)) if isinstance(target, dict) else rng.randrange(len(target))
    target[key] = rng.choice(VALUES)
    return obj


def _bytes_edit(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(["truncate", "flip", "non-utf8", "insert"])
    if not data:
        return b"\xff"
    position = rng.randrange(len(data))
    if kind == "truncate":
        return data[:position]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "non-utf8":
        return data[:position] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE, 0xED])]) + data[position:]
    return data[:position] + rng.choice([b"\n", b"{", b"]", b'"', b"\x00", b"\\"]) + data[position:]


def _json_dumps(value) -> str:
    # lone surrogates and NaN are what a hostile writer can put in; the reader must cope
    return json.dumps(value)


def _mutate_run_json(run: Path, rng: random.Random) -> str:
    path = run / "run.json"
    kind = rng.choice(["value", "value", "value", "bytes", "deep", "not-object"])
    if kind == "value":
        path.write_text(_json_dumps(_replace_value(json.loads(path.read_text()), rng)))
    elif kind == "bytes":
        path.write_bytes(_bytes_edit(path.read_bytes(), rng))
    elif kind == "deep":
        path.write_text('{"kind": "topo-train-run", "config": ' + _deep() + "}")
    else:
        path.write_text(_json_dumps(rng.choice([[1, 2], 3, "run", None])))
    return f"run.json {kind}"


def _mutate_metrics(run: Path, rng: random.Random) -> str:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines()
    kind = rng.choice(["value", "value", "value", "bytes", "deep", "not-object"])
    index = rng.randrange(len(lines))
    if kind == "value":
        lines[index] = _json_dumps(_replace_value(json.loads(lines[index]), rng))
        path.write_text("\n".join(lines) + "\n")
    elif kind == "bytes":
        path.write_bytes(_bytes_edit(path.read_bytes(), rng))
    elif kind == "deep":
        lines.insert(index, '{"epoch": ' + _deep() + "}")
        path.write_text("\n".join(lines) + "\n")
    else:
        lines[index] = _json_dumps(rng.choice([[1, 2], 3, "epoch", None]))
        path.write_text("\n".join(lines) + "\n")
    return f"metrics.jsonl {kind}"


def _mutate_checkpoint(run: Path, rng: random.Random) -> str:
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    path = rng.choice(list_checkpoints(run))
    kind = rng.choice(["metadata", "metadata", "metadata", "bytes"])
    if kind == "bytes":
        data = path.read_bytes()
        # most of the interest is in the header: edit there more often
        head = int.from_bytes(data[:8], "little") + 8
        if rng.random() < 0.7:
            path.write_bytes(_bytes_edit(data[:head], rng) + data[head:])
        else:
            path.write_bytes(_bytes_edit(data, rng))
        return f"{path.name} bytes"
    with safe_open(str(path), framework="np") as handle:
        metadata = dict(handle.metadata())
    tensors = load_file(str(path))
    key = rng.choice(["epoch", "step", "layers", "format_version", "run", "info"])
    choice = rng.choice(["null", "[0, 1]", "-3", "1e3", "", "x" * 1000, _deep(), "{}", "[]", '[{"name": 5}]', "7"])
    metadata[key] = choice
    save_file(tensors, str(path), metadata=metadata)
    return f"{path.name} metadata {key}={choice[:20]!r}"


def _mutate_state(run: Path, rng: random.Random) -> str:
    path = run / "state" / "last.pt"
    path.write_bytes(_bytes_edit(path.read_bytes(), rng))
    return "state bytes"


MUTATORS = [_mutate_run_json, _mutate_metrics, _mutate_checkpoint, _mutate_state]


def _call_readers(run: Path, dataset, *, with_resume: bool) -> list[str]:
    """Call every reader of run folders; the names of those that raised something other than TopoError."""
    from topo.report import load_run_data, run_summary

    calls = [
        ("read_run_config", lambda: read_run_config(run)),
        ("read_metrics", lambda: read_metrics(run)),
        ("list_checkpoints", lambda: list_checkpoints(run)),
        ("load_checkpoint", lambda: [load_checkpoint(p) for p in list_checkpoints(run)]),
        ("topo.load", lambda: topo.load(run)),
        ("report", lambda: run_summary(load_run_data(run))),
    ]
    if with_resume:
        calls.append(("resume", lambda: resume(run, dataset=dataset)))
    failures = []
    for name, call in calls:
        try:
            call()
        except TopoError as exc:
            text = str(exc)
            if "\n" in text or not text:
                failures.append(f"{name}: TopoError not one line: {text!r}")
        except Exception as exc:  # noqa: BLE001 - exactly what this test looks for
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    return failures


def test_fuzzed_run_folders_raise_only_topo_errors(base_run, tmp_path):
    from topo.training.data import load_dataset

    run, _ = base_run
    dataset = load_dataset("digits", seed=3)
    rng = random.Random(20261130)
    problems = []
    cases = 160
    for case in range(cases):
        copy = tmp_path / f"case{case}"
        shutil.copytree(run, copy)
        mutator = MUTATORS[case % len(MUTATORS)]
        what = mutator(copy, rng)
        # resume trains models: only for the files it reads first, and not every time
        with_resume = mutator in (_mutate_run_json, _mutate_state) or case % 8 == 2
        for failure in _call_readers(copy, dataset, with_resume=with_resume):
            problems.append(f"case {case} ({what}): {failure}")
        shutil.rmtree(copy)
    assert problems == [], "\n".join(problems[:30])


@pytest.mark.parametrize("epoch", ["null", "[0, 1]", "1.5", "-1", "x"])
def test_bad_epoch_metadata_does_not_break_format_detection(base_run, tmp_path, epoch):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from topo.formats import detect_format

    _, result = base_run
    source = result.checkpoints[-1]
    with safe_open(str(source), framework="np") as handle:
        metadata = dict(handle.metadata())
    metadata["epoch"] = epoch
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(source)), str(bad), metadata=metadata)
    assert detect_format(bad) == "topo"  # still recognised as topo's own
    with pytest.raises(TopoError, match=r"bad\.safetensors: checkpoint metadata 'epoch' is not a non-negative integer"):
        topo.load(bad)


def test_run_folder_readers_name_the_file_and_line(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run[0], run)
    metrics = run / "metrics.jsonl"
    good = metrics.read_bytes()
    metrics.write_bytes(good + b'{"epoch": 2, "val_acc": "\xff"}\n')
    with pytest.raises(TopoError, match=r"metrics\.jsonl: line 3 is not UTF-8 text"):
        read_metrics(run)
    metrics.write_bytes(good + b'{"epoch": "2"}\n')
    with pytest.raises(TopoError, match=r"metrics\.jsonl: line 3: 'epoch' is not a non-negative integer"):
        read_metrics(run)
    metrics.write_bytes(good + b'{"epoch": 2, "densities": [0.1, "x"]}\n')
    with pytest.raises(TopoError, match=r"line 3: 'densities' is not a list of numbers"):
        read_metrics(run)
    metrics.write_bytes(good + b"[" * DEEP + b"]" * DEEP + b"\n")
    with pytest.raises(TopoError, match=r"line 3 is (nested too deeply|not a JSON object)"):
        read_metrics(run)
    # a last line cut short inside a character is an interrupted write, not an error
    metrics.write_bytes(good + '{"epoch": 2, "note": "é'.encode()[:-1])
    assert len(read_metrics(run)) == 2
    config = run / "run.json"
    config.write_bytes(b'{"kind": "topo-train-run", "x": "\xc3"}')
    with pytest.raises(TopoError, match=r"run\.json: run configuration is not UTF-8 text"):
        read_run_config(run)
    config.write_text("[1, 2]")
    with pytest.raises(TopoError, match=r"run\.json: run configuration is not a JSON object \(found an array\)"):
        read_run_config(run)
    config.write_text('{"a": ' + _deep() + "}")
    with pytest.raises(TopoError, match=r"run\.json: run configuration is not valid JSON \(nested too deeply\)"):
        read_run_config(run)


def test_topo_error_is_a_value_error():
    assert issubclass(TopoError, ValueError)
    with pytest.raises(ValueError, match="where: what"):
        raise TopoError("what", path="where")
    assert str(TopoError("two\nlines", path="f")) == "f: two lines"


def test_fuzzed_run_folders_through_the_cli_end_in_one_line(base_run, tmp_path):
    from click.testing import CliRunner

    from topo_cli.main import main

    run, _ = base_run
    rng = random.Random(7)
    runner = CliRunner()
    problems = []
    for case in range(24):
        copy = tmp_path / f"case{case}"
        shutil.copytree(run, copy)
        mutator = MUTATORS[case % len(MUTATORS)]
        what = mutator(copy, rng)
        commands = [["inspect", str(copy)], ["drift", str(copy)]]
        if mutator in (_mutate_run_json, _mutate_state):
            commands.append(["train", "--resume", str(copy), "-q"])
        for command in commands:
            result = runner.invoke(main, command)
            crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
            errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
            if crashed or "Traceback" in result.output or (result.exit_code != 0 and len(errors) != 1):
                detail = repr(result.exception) if crashed else result.output[-300:]
                problems.append(f"case {case} ({what}) topo {command[0]}: exit {result.exit_code}: {detail}")
        shutil.rmtree(copy)
    assert problems == [], "\n".join(problems[:20])

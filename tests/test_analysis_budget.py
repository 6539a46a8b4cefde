"""Analyses check what they will allocate before they allocate it, and the CLI turns
running out of memory into one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from topo.analysis.budget import AnalysisTooLarge, check_bytes, check_nnstd, human_bytes, max_bytes, max_steps
from topo.checkpoint import save_checkpoint
from topo.errors import TopoError
from topo.topology import Layer, Topology
from topo_cli.main import main


def _layer(name, n_out, n_in, fan_in, seed=0):
    rng = np.random.default_rng(seed)
    indptr = np.arange(n_out + 1, dtype=np.int64) * fan_in
    if fan_in == 1:  # one input each: already sorted and distinct (fast for 10^7 rows)
        indices = rng.integers(0, n_in, size=n_out)
    else:
        indices = np.sort(rng.integers(0, n_in, size=(n_out, fan_in)), axis=1).ravel()
    mask = sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, indptr), shape=(n_out, n_in))
    mask.sum_duplicates()
    return Layer.from_mask(name, mask)


def _small(seed=0, hidden=40):
    return Topology([_layer("fc1", hidden, 30, 6, seed), _layer("fc2", 10, hidden, 8, seed + 1)])


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_BYTES", "1_000")
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_STEPS", "50")
    assert max_bytes() == 1000 and max_steps() == 50
    check_bytes(1000, "x")
    with pytest.raises(AnalysisTooLarge, match=r"^f: refused: a thing needs 1\.95 KiB, more than the analysis memory limit of 1000 B \(raise TOPO_MAX_ANALYSIS_BYTES to allow it\); do less$"):
        check_bytes(2000, "a thing", path="f", hint="do less")
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_BYTES", "lots")
    with pytest.raises(TopoError, match="TOPO_MAX_ANALYSIS_BYTES='lots' is not an integer"):
        max_bytes()
    monkeypatch.delenv("TOPO_MAX_ANALYSIS_BYTES")
    assert max_bytes() > 2**28  # half the machine's memory by default
    assert human_bytes(728 * 2**40) == "728 TiB" and human_bytes(74.5 * 2**30) == "74.5 GiB"


def _in_subprocess(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a script in a fresh interpreter: the 10^7-neuron networks stay out of the test
    process (whose peak memory other tests measure through their own subprocesses)."""
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
    )


_WIDE = """
    import sys
    sys.path.insert(0, {tests!r})
    from test_analysis_budget import _layer
    from topo.topology import Topology
    wide = Topology([_layer("fc1", 10**7, {n_in}, 1), _layer("fc2", 10, 10**7, {fan_in})])
"""


def test_nnstd_of_a_ten_million_neuron_layer_is_refused_before_allocating():
    done = _in_subprocess(
        _WIDE.format(tests=str(Path(__file__).parent), n_in=4, fan_in=2)
        + """
    import time
    from topo.analysis.budget import check_nnstd
    started = time.perf_counter()
    try:
        check_nnstd(wide, wide)
    except Exception as exc:
        print(type(exc).__name__, time.perf_counter() - started)
        print(exc)
    """
    )
    kind = done.stdout.splitlines()[0].split()[0]  # no timing asserted: shared machines are noisy
    assert kind == "AnalysisTooLarge", done.stderr
    assert "NNSTD of layer 'fc1' (10,000,000 x 10,000,000 neurons, up to 2.5e+13 pairs that share inputs) needs" in done.stdout
    check_nnstd(_small(), _small(1))  # ordinary networks pass


def test_matched_hub_overlap_checks_first_and_reuses_given_matchings(monkeypatch):
    from topo.analysis.distance import nnstd
    from topo.analysis.hubs import hub_overlap

    a, b = _small(0), _small(5)
    matchings = nnstd(a, b).matchings
    assert hub_overlap(a, b, matched=True, matchings=matchings) == hub_overlap(a, b, matched=True)
    # fc1's 40 x 40 neurons all share inputs: 1,600 pairs of 48 bytes
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_BYTES", str(48 * 1600 - 1))
    with pytest.raises(AnalysisTooLarge, match="NNSTD of layer 'fc1' \\(40 x 40 neurons, up to 1.6e\\+03 pairs"):
        hub_overlap(a, b, matched=True)
    assert hub_overlap(a, b, fraction=0.2)  # by index: no NNSTD, no check
    monkeypatch.delenv("TOPO_MAX_ANALYSIS_BYTES")
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_STEPS", str(25 * (40 * 40 + 10 * 10) - 1))
    with pytest.raises(AnalysisTooLarge, match=r"NNSTD \(1\.7e\+03 pairs of neurons that share inputs\)"):
        check_nnstd(a, b)
    check_nnstd(a, b, match_output=False)  # the output layer is not matched: 1600 pairs


def test_structure_features_refuse_costly_graph_metrics_with_a_hint(monkeypatch):
    from topo.analysis.structure import hidden_betweenness, square_clustering, structure_features

    net = _small()
    full = structure_features(net)
    # the products' terms: each layer's cheaper Gram matrix, and the two layers' product
    grams = sum(min(np.sum(l.fan_in.astype(float) ** 2), np.sum(l.fan_out.astype(float) ** 2)) for l in net)
    chained = float(np.dot(net[0].fan_in.astype(float), net[1].fan_out.astype(float)))
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_STEPS", str(int(25 * (grams + chained)) - 1))
    with pytest.raises(AnalysisTooLarge, match=r"square clustering .*graph_metrics=False skips"):
        square_clustering(net)
    with pytest.raises(AnalysisTooLarge, match=r"square clustering"):
        structure_features(net)
    without = structure_features(net, graph_metrics=False)
    assert np.isnan(without["square_clustering"]) and without["paths"] == full["paths"]
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_STEPS", str(10**12))
    monkeypatch.setenv("TOPO_MAX_ANALYSIS_BYTES", "1000")
    with pytest.raises(AnalysisTooLarge, match=r"betweenness \(a graph of 80 neurons and"):
        hidden_betweenness(net)
    monkeypatch.delenv("TOPO_MAX_ANALYSIS_BYTES")
    assert square_clustering(net) == full["square_clustering"]


def test_wide_networks_through_the_cli_answer_in_one_line_quickly(tmp_path):
    path = tmp_path / "wide.safetensors"
    made = _in_subprocess(
        _WIDE.format(tests=str(Path(__file__).parent), n_in=16, fan_in=1000)
        + """
    from topo.checkpoint import save_checkpoint
    save_checkpoint(wide, sys.argv[1])
    """,
        str(path),
    )
    assert made.returncode == 0, made.stderr

    def topo(*args):
        started = time.perf_counter()
        done = _in_subprocess("from topo_cli.main import main; main()", *args)
        return done, time.perf_counter() - started

    done, seconds = topo("compare", str(path), str(path))
    assert done.returncode == 1 and seconds < 60 and "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "NNSTD of layer 'fc1' (10,000,000 x 10,000,000 neurons, up to 6.25e+12 pairs" in line
    assert "needs 273 TiB" in line

    done, seconds = topo("hubs", str(path))
    assert done.returncode == 0 and seconds < 60, done.stderr
    text = " ".join(done.stdout.split())
    assert "fc1 1000000/10000000" in text and "the table shows the 50 strongest per layer" in text

    done, seconds = topo("features", str(path))
    assert done.returncode == 1 and seconds < 60 and "Traceback" not in done.stderr
    line = " ".join(done.stderr.split())
    assert "refused: betweenness (256 breadth-first searches over 1e+07 neurons" in line and "--no-graph" in line


def test_hubs_table_shows_the_strongest_and_json_lists_all(tmp_path):
    net = Topology([_layer("fc1", 2000, 30, 5), _layer("fc2", 10, 2000, 50)])
    path = save_checkpoint(net, tmp_path / "net.safetensors")
    runner = CliRunner()
    table = runner.invoke(main, ["hubs", str(path)])
    assert table.exit_code == 0 and "the table shows the 50 strongest per layer" in " ".join(table.output.split())
    payload = json.loads(runner.invoke(main, ["hubs", str(path), "--format", "json"]).output)
    fc1 = payload["layers"][0]
    assert fc1["n_hubs"] == 200 and len(fc1["hubs"]) == 200
    fan_in = net[0].fan_in
    keys = [(-h["fan_in"], h["neuron"]) for h in fc1["hubs"]]
    assert keys == sorted(keys) and all(fan_in[h["neuron"]] == h["fan_in"] for h in fc1["hubs"])


def test_memory_errors_become_one_line(tmp_path, monkeypatch):
    import topo.analysis.hubs as hubs

    path = save_checkpoint(_small(), tmp_path / "net.safetensors")

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 728 TiB for an array with shape (10000000, 10000000) and data type float64")

    monkeypatch.setattr(hubs, "hub_indices", exhausted)
    result = CliRunner().invoke(main, ["hubs", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (
        "Error: out of memory (Unable to allocate 728 TiB for an array with shape (10000000, 10000000) and data "
        "type float64); the input is too large for this machine's memory"
    )


@pytest.mark.parametrize("seed", range(6))
def test_hub_indices_in_linear_time_equal_the_stable_sort_definition(seed):
    from topo.analysis.hubs import hub_indices

    rng = np.random.default_rng(seed)
    n_out = int(rng.integers(1, 300))
    dense = rng.random((n_out, 12)) < rng.uniform(0.05, 0.6)  # small fan-ins: many ties
    layer = Layer.from_mask("l", dense)
    for fraction in (0.01, 0.1, 0.33, 0.5, 1.0):
        count = max(1, int(np.ceil(round(fraction * n_out, 9))))
        expected = np.sort(np.argsort(-layer.fan_in, kind="stable")[:count])
        np.testing.assert_array_equal(hub_indices(layer, fraction=fraction), expected)


def test_spectral_radius_of_a_wide_flat_layer_through_its_gram_matrix():
    from topo.analysis.structure import spectral_radius

    rng = np.random.default_rng(4)
    for shape in ((20, 30_000), (30_000, 12)):  # above the dense-SVD size, one side small
        dense = rng.random(shape) < 0.01
        expected = np.linalg.norm(dense.astype(np.float64), 2)
        assert spectral_radius(Layer.from_mask("flat", dense)) == pytest.approx(expected, rel=1e-10)


def test_recursion_errors_become_one_line(tmp_path, monkeypatch):
    import topo.analysis.hubs as hubs

    path = save_checkpoint(_small(), tmp_path / "net.safetensors")

    def nested(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(hubs, "hub_indices", nested)
    result = CliRunner().invoke(main, ["hubs", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: the input is nested too deeply to process (Python's recursion limit)"


@pytest.mark.parametrize("seed", range(4))
def test_square_clustering_from_gram_matrices_matches_networkx(seed):
    import networkx as nx

    from topo.analysis.structure import square_clustering
    from topo.graph import to_networkx

    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(2, 12, size=4)]
    layers = [
        Layer.from_mask(f"l{k}", rng.random((widths[k + 1], widths[k])) < rng.uniform(0.2, 0.7)) for k in range(3)
    ]
    # and a standalone layer: its own chain
    layers.append(Layer.from_mask("side", rng.random((5, 7)) < 0.5, standalone=True))
    topology = Topology(layers)
    graph = to_networkx(topology, weights=False).to_undirected()
    assert square_clustering(topology) == pytest.approx(nx.bipartite.robins_alexander_clustering(graph), rel=1e-12)


def test_square_clustering_of_a_wide_layer_takes_the_cheap_side():
    from topo.analysis.structure import square_clustering

    wide = Topology([_layer("fc1", 30, 10**6, 40), _layer("fc2", 5, 30, 10)])
    started = time.perf_counter()
    value = square_clustering(wide)
    assert 0.0 <= value <= 1.0 and time.perf_counter() - started < 20

"""topo.analysis.patterns: N:M, block and unstructured masks, compliance shares, requested sparsity.

Every mask here is built with numpy, and every expected share is counted with numpy
reshapes of the dense mask, independently of the CSR arithmetic under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import topo.analysis
from topo import Topology
from topo.analysis.patterns import (
    block_compliance,
    layer_pattern,
    layer_patterns,
    nm_block_counts,
    nm_compliance,
    pattern_summary,
    requested_sparsity,
    sparsity_report,
)


def n_of_m(rng, n_out, n_in, n, m):
    """Exactly n connections in every block of m consecutive inputs, placed at random."""
    scores = rng.random((n_out, n_in // m, m))
    keep = np.argsort(scores, axis=2)[:, :, :n]
    mask = np.zeros((n_out, n_in // m, m), dtype=bool)
    np.put_along_axis(mask, keep, True, axis=2)
    return mask.reshape(n_out, n_in)


def block_counts(mask, m):
    """Connections per block of m inputs, the last block padded with absent inputs."""
    n_out, n_in = mask.shape
    padded = np.zeros((n_out, -(-n_in // m) * m), dtype=np.int64)
    padded[:, :n_in] = mask
    return padded.reshape(n_out, -1, m).sum(axis=2)


def tile_stats(mask, rows, cols):
    """(share of tiles empty or full, share of connections in full tiles, share of gaps in empty tiles)."""
    n_out, n_in = mask.shape
    comply = full_conn = empty_gaps = tiles = 0
    for r in range(0, n_out, rows):
        for c in range(0, n_in, cols):
            tile = mask[r : r + rows, c : c + cols]
            tiles += 1
            if tile.all():
                comply += 1
                full_conn += tile.size
            elif not tile.any():
                comply += 1
                empty_gaps += tile.size
    nnz, gaps = int(mask.sum()), int(mask.size - mask.sum())
    return comply / tiles, full_conn / nnz if nnz else 1.0, empty_gaps / gaps if gaps else 1.0


@pytest.fixture
def rng():
    return np.random.default_rng(12)


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (1, 4), (1, 8), (2, 8), (8, 16)])
def test_exact_n_of_m(rng, n, m):
    mask = n_of_m(rng, 48, 64, n, m)
    found = layer_pattern(mask, "fc")
    assert found.pattern == f"{n}:{m}" and (found.n, found.m) == (n, m)
    assert found.pattern_compliance == 1.0
    assert found.nnz == int(mask.sum()) and found.density == pytest.approx(n / m)
    # 2:4 kernels take anything with at most 2 of every 4 inputs
    counts4 = block_counts(mask, 4)
    assert found.compliance_2_4 == pytest.approx(np.mean(counts4 <= 2))
    assert found.runs_2_4 == bool((counts4 <= 2).all())
    assert found.runs_2_4 == (n / m <= 0.5 and (n, m) in {(2, 4), (1, 4), (1, 8), (2, 8)})


def test_four_of_eight_is_not_two_of_four(rng):
    mask = n_of_m(rng, 64, 96, 4, 8)
    assert layer_pattern(mask).pattern == "4:8"
    share = np.mean(block_counts(mask, 4) <= 2)
    assert 0.3 < share < 0.8  # 4:8 lets a half-block hold 3 or 4
    assert layer_pattern(mask).compliance_2_4 == pytest.approx(share)
    assert not layer_pattern(mask).runs_2_4


def test_partly_compliant_two_of_four(rng):
    mask = n_of_m(rng, 50, 80, 2, 4)
    blocks = mask.reshape(50, 20, 4)
    # regrow one connection in 6% of the blocks: they hold 3
    chosen = rng.choice(blocks.shape[0] * blocks.shape[1], size=60, replace=False)
    for flat in chosen:
        row, block = divmod(int(flat), 20)
        free = np.flatnonzero(~blocks[row, block])
        blocks[row, block, free[0]] = True
    mask = blocks.reshape(50, 80)
    found = layer_pattern(sp.csr_matrix(mask))
    want = np.mean(block_counts(mask, 4) <= 2)
    assert want == pytest.approx(1 - 60 / 1000)
    assert found.pattern == "2:4" and found.pattern_compliance == pytest.approx(want)
    assert nm_compliance(mask, 2, 4) == pytest.approx(want)
    assert not found.runs_2_4


def test_ragged_last_block():
    mask = np.zeros((3, 10), dtype=bool)
    mask[:, [0, 1, 4, 7, 8, 9]] = True  # blocks of 4: 2, 2 and (last, 2 inputs long) 2
    hist = nm_block_counts(mask, 4)
    counts = block_counts(mask, 4)
    assert hist.tolist() == np.bincount(counts.ravel(), minlength=5).tolist()
    assert nm_compliance(mask, 1, 4) == pytest.approx(np.mean(counts <= 1))
    found = layer_pattern(mask)
    assert found.compliance_2_4 == 1.0 and not found.runs_2_4  # 10 inputs: not a multiple of 4


@pytest.mark.parametrize("rows, cols", [(4, 1), (1, 4), (8, 1), (2, 2), (4, 4)])
def test_block_patterns(rng, rows, cols):
    base = rng.random((64 // rows, 48 // cols)) < 0.6
    mask = np.kron(base, np.ones((rows, cols), dtype=bool)).astype(bool)
    found = layer_pattern(mask)
    assert found.pattern == f"block {rows}x{cols}" and found.block == (rows, cols)
    assert found.pattern_compliance == 1.0
    assert block_compliance(mask, rows, cols) == (1.0, 1.0, 1.0)
    # a tile twice as tall straddles two independent blocks: counted independently
    got = block_compliance(mask, rows * 2, cols)
    assert got == pytest.approx(tile_stats(mask, rows * 2, cols))
    assert got[0] < 1.0


def test_block_compliance_with_edges_and_damage(rng):
    base = rng.random((9, 7)) < 0.5
    mask = np.kron(base, np.ones((4, 1), dtype=bool)).astype(bool)[:34]  # last tile row cut short
    mask[0, :] = ~mask[0, :]  # damage one row
    assert block_compliance(mask, 4, 1) == pytest.approx(tile_stats(mask, 4, 1))
    assert block_compliance(sp.csr_matrix(mask), 2, 2) == pytest.approx(tile_stats(mask, 2, 2))


@pytest.mark.parametrize("density", [0.01, 0.1, 0.3, 0.45, 0.7, 0.97])
def test_unstructured(rng, density):
    mask = rng.random((200, 256)) < density
    found = layer_pattern(mask)
    assert found.pattern == "unstructured"
    assert found.pattern_compliance is None and found.n is None and found.block is None
    assert found.compliance_2_4 == pytest.approx(np.mean(block_counts(mask, 4) <= 2))
    assert found.runs_2_4 == bool((block_counts(mask, 4) <= 2).all())


def test_dense_and_empty():
    dense = layer_pattern(np.ones((5, 8)))
    assert dense.pattern == "dense" and dense.pattern_compliance == 1.0 and dense.compliance_2_4 == 0.0
    empty = layer_pattern(np.zeros((5, 8)))
    assert empty.pattern == "empty" and empty.runs_2_4 and empty.compliance_2_4 == 1.0


def test_stored_zeros_are_not_connections():
    mask = sp.csr_matrix(np.tile([1.0, 1.0, 0.0, 0.0], (16, 4)))
    mask.data[0] = 0.0  # an explicit zero in the sparse structure
    found = layer_pattern(mask)
    assert found.nnz == 127 and found.pattern == "2:4" and found.runs_2_4


def test_too_small_to_tell(rng):
    # 10 blocks of 8, 9 of them with at most 3 connections, density 3/8: random placement
    # gives that about 7% of the time (binomial tail above CHANCE_LEVEL), so no 3:8
    mask = np.zeros((5, 16), dtype=bool)
    for row, columns in enumerate(([0, 3, 5, 8, 9, 14], [1, 2, 7, 10, 11, 15], [0, 4, 6, 9, 12, 13], [2, 5, 7, 8, 13, 15])):
        mask[row, columns] = True  # 3 + 3, in different places
    mask[4, [0, 1, 2, 3, 9, 12]] = True  # 4 + 2
    assert nm_compliance(mask, 3, 8) == 0.9 and mask.mean() == 3 / 8
    found = layer_pattern(mask)
    assert found.pattern == "unstructured"
    # 12 tiles of 2x1, all empty or full, at density 0.3: 0.58 ** 12 = 0.0014 by chance
    stem = np.array([[0, 1, 0, 1], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]], dtype=bool)
    assert block_compliance(stem, 2, 1) == (1.0, 1.0, 1.0)
    assert layer_pattern(stem).pattern == "unstructured"
    assert layer_pattern(np.tile(stem[:4], (20, 5))).pattern == "block 2x1"  # no longer luck
    # the same rows repeated 40 times are no longer luck, if they comply
    big = np.tile(n_of_m(rng, 5, 16, 3, 8), (40, 1))
    assert layer_pattern(big).pattern == "3:8"


def test_layers_of_a_topology_and_summary(rng):
    net = Topology.from_masks(
        [n_of_m(rng, 32, 16, 2, 4), n_of_m(rng, 32, 32, 2, 4), rng.random((10, 32)) < 0.3, np.ones((4, 10))],
        names=["a", "b", "c", "d"],
    )
    found = layer_patterns(net)
    assert [p.name for p in found] == ["a", "b", "c", "d"]
    assert [p.pattern for p in found] == ["2:4", "2:4", "unstructured", "dense"]
    assert pattern_summary(found) == "2:4 x2, unstructured, dense"
    assert topo.analysis.layer_pattern is layer_pattern  # re-exported


def test_requested_against_achieved(rng):
    masks = [rng.random((20, 10)) < 0.25, np.ones((5, 20))]
    net = Topology.from_masks(masks, names=["fc1", "fc2"])
    achieved = 1 - sum(m.sum() for m in masks) / sum(m.size for m in masks)
    assert sparsity_report(net).requested is None and not sparsity_report(net).any_requested
    report = sparsity_report(net.with_info(requested_sparsity=0.5))
    assert report.requested == 0.5 and report.achieved == pytest.approx(achieved)
    assert [layer.requested for layer in report.layers] == [None, None]
    report = sparsity_report(net.with_info(requested_sparsity={"fc1": 0.75, "fc2": 0.0}))
    assert report.requested == pytest.approx(0.75 * 200 / 300)  # size-weighted
    assert report.layers[0].achieved == pytest.approx(1 - masks[0].mean())
    assert report.layers[0].gap == pytest.approx(report.layers[0].achieved - 0.75)
    assert requested_sparsity({"requested_sparsity": 1.5}) == (None, {})  # not a share: ignored


@pytest.mark.parametrize("shape", [(9, 7), (8, 6), (1, 5), (7, 1)])
def test_pair_shares_match_tile_counts(rng, shape):
    from topo.analysis.patterns import _Connections, _pairs_in_full

    for density in (0.2, 0.6, 0.9):
        mask = rng.random(shape) < density
        if not mask.any():
            continue
        conn = _Connections(mask)
        if shape[0] >= 2:
            assert _pairs_in_full(conn, 2, 1) == pytest.approx(tile_stats(mask, 2, 1)[1])
        if shape[1] >= 2:
            assert _pairs_in_full(conn, 1, 2) == pytest.approx(tile_stats(mask, 1, 2)[1])


def test_pair_share_of_a_wide_sparse_layer(rng):
    from topo.analysis.patterns import _Connections, _pairs_in_full

    mask = np.zeros((41, 100_000), dtype=bool)  # too wide for a count per tile
    mask[rng.integers(0, 41, 300), rng.integers(0, 100_000, 300)] = True
    mask[0:2, :40] = True  # some full 2x1 tiles
    mask[40, :3] = True  # the last row is a tile on its own
    paired = 2 * int((mask[0:40:2] & mask[1:40:2]).sum()) + int(mask[40].sum())
    assert _pairs_in_full(_Connections(sp.csr_matrix(mask)), 2, 1) == pytest.approx(paired / mask.sum())


def _masks_for_both_counters(rng):
    """Masks of every kind and awkward shapes: odd sides, one row, one column, blocks, N:M."""
    masks = [rng.random(shape) < density
             for shape in [(1, 1), (1, 5), (7, 1), (9, 7), (65, 130), (130, 257), (200, 64)]
             for density in (0.05, 0.5, 0.97)]
    masks.append(n_of_m(rng, 70, 256, 2, 4))
    masks.append(n_of_m(rng, 33, 96, 4, 8))
    masks.append(np.repeat(np.repeat(rng.random((17, 19)) < 0.4, 4, axis=0), 2, axis=1)[:67, :37])
    masks.append(np.ones((5, 9), dtype=bool))
    masks.append(np.zeros((5, 9), dtype=bool))
    return masks


@pytest.mark.parametrize("chunk_cells, bit_counts", [(1, True), (2**25, True), (2**20, False)])
def test_bitmap_and_connection_counts_agree(rng, monkeypatch, chunk_cells, bit_counts):
    """Dense-ish layers are counted on their bitmap, sparse ones from their connections:
    every count, and so every pattern, is the same either way (and with many chunks, and
    without numpy 2's bit counts)."""
    from topo.analysis import patterns

    monkeypatch.setattr(patterns, "_CHUNK_CELLS", chunk_cells)  # 1: one chunk per 64 rows
    if not bit_counts:
        monkeypatch.setattr(patterns, "_BITWISE_COUNT", None)
    for mask in _masks_for_both_counters(rng):
        bitmap, connections = patterns._Bitmap(mask), patterns._Connections(mask)
        for m in (1, 2, 3, 4, 8, 16, 32, 64, 128):
            if m <= mask.shape[1]:
                expected = np.bincount(block_counts(mask, m).ravel(), minlength=m + 1)
                assert np.array_equal(bitmap.group_histogram(m), expected)
                assert np.array_equal(connections.group_histogram(m), expected)
                for n in range(0, m + 1, max(1, m // 4)):
                    assert bitmap.blocks_at_most(m, n) == connections.blocks_at_most(m, n) == expected[: n + 1].sum()
        if mask.any():
            for rows, cols in ((2, 1), (1, 2)):
                if rows <= mask.shape[0] and cols <= mask.shape[1]:
                    assert bitmap.pairs_in_full(rows, cols) == connections.pairs_in_full(rows, cols)
                    assert bitmap.pairs_in_full(rows, cols) / mask.sum() == pytest.approx(
                        tile_stats(mask, rows, cols)[1])
        for rows in (1, 2, 4, 64):
            for cols in (1, 2, 8, 64):
                assert bitmap.tile_stats(rows, cols) == connections.tile_stats(rows, cols), (mask.shape, rows, cols)
        monkeypatch.setattr(patterns, "DENSE_COUNTING_DENSITY", 0.0)
        by_bitmap = layer_pattern(mask)
        monkeypatch.setattr(patterns, "DENSE_COUNTING_DENSITY", 2.0)
        assert layer_pattern(mask) == by_bitmap
        monkeypatch.setattr(patterns, "DENSE_COUNTING_DENSITY", 1 / 16)

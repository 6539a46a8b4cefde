"""The sparse training backend: kernels against dense torch, training against the masked backend."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo.checkpoint import list_checkpoints, load_checkpoint, read_metrics, read_run_config  # noqa: E402
from topo.errors import TopoError  # noqa: E402
from topo.training import backends  # noqa: E402
from topo.training.config import TrainConfig  # noqa: E402
from topo.training.sparse_layers import (  # noqa: E402
    dense_gradient,
    sample_mask_csr,
    sparse_linear,
    top_gradient_positions,
)
from topo.training.trainer import TIMING_FIELDS, resume, train  # noqa: E402

TINY = dict(dataset="digits", hidden=(32, 16), epochs=3, batch_size=64, threads=1, device="cpu", sparsity=0.8)


def _config(**changes):
    return TrainConfig(**{**TINY, **changes})


def _layer(seed=0, shape=(9, 7), density=0.4):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=generator) < density
    weight = torch.randn(shape, generator=generator) * mask
    bias = torch.randn(shape[0], generator=generator)
    return mask, weight, bias


# -- kernels -------------------------------------------------------------------------
def test_forward_and_every_gradient_match_a_dense_layer():
    mask, weight, bias = _layer()
    layer = sparse_linear(mask.shape, mask, weight[mask], bias)
    x = torch.randn(5, 7, requires_grad=True)
    out = layer(x)
    (out.sin() * 3).sum().backward()

    x_dense = x.detach().clone().requires_grad_(True)
    w_dense = weight.clone().requires_grad_(True)
    b_dense = bias.clone().requires_grad_(True)
    out_dense = x_dense @ w_dense.t() + b_dense
    (out_dense.sin() * 3).sum().backward()

    torch.testing.assert_close(out, out_dense)
    torch.testing.assert_close(x.grad, x_dense.grad)
    # the sampled product gives the dense gradient at the stored positions, in row-major order
    torch.testing.assert_close(layer.values.grad, w_dense.grad[mask])
    torch.testing.assert_close(layer.bias.grad, b_dense.grad)


def test_kept_batch_gives_the_dense_gradient_and_its_top_k_outside_the_mask():
    mask, weight, bias = _layer(seed=1, shape=(13, 11))
    layer = sparse_linear(mask.shape, mask, weight[mask], bias)
    layer.keep_batch = True
    x = torch.randn(6, 11)
    target = torch.randn(6, 13)
    ((layer(x) - target) ** 2).sum().backward()
    w_dense = weight.clone().requires_grad_(True)
    ((x @ w_dense.t() + bias - target) ** 2).sum().backward()
    torch.testing.assert_close(dense_gradient(layer), w_dense.grad)

    scores = w_dense.grad.abs().reshape(-1).numpy().copy()
    scores[mask.reshape(-1).numpy()] = -1.0
    expected = np.sort(np.argsort(-scores, kind="stable")[:17])
    # blocks of one and a half rows: the running top-k crosses block boundaries
    got = top_gradient_positions(layer, layer.flat_positions(), 17, block_elements=16)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_sample_mask_csr_gives_each_row_its_fan_in_of_distinct_uniform_columns():
    fan_in = np.array([0, 1, 5, 40, 3] * 200)
    mask = sample_mask_csr(fan_in, 50, np.random.default_rng(3))
    assert mask.shape == (1000, 50)
    np.testing.assert_array_equal(np.diff(mask.indptr), fan_in)
    assert mask.nnz == fan_in.sum() and mask.has_canonical_format
    # uniform over columns: every column is drawn about nnz / 50 times (binomial, 5 sigma)
    counts = np.bincount(mask.indices, minlength=50)
    expected = mask.nnz / 50
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_layer_backends_choices():
    shapes = [(4096, 4096), (4096, 4096), (10, 4096)]
    nnz = [4096 * 40, 4096 * 4096 // 2, 40960]
    assert backends.layer_backends("sparse", shapes, nnz) == ["sparse", "sparse", "masked"]  # full layer: masked
    assert backends.layer_backends("auto", shapes, nnz) == ["sparse", "masked", "masked"]  # dense-ish, small
    assert backends.layer_backends("masked", shapes, nnz) == ["masked"] * 3
    with pytest.raises(TopoError, match="backend"):
        backends.layer_backends("csr", shapes, nnz)


# -- training: the same as the masked backend -----------------------------------------
def _final_layers(run_dir):
    return load_checkpoint(list_checkpoints(run_dir)[-1])


@pytest.mark.parametrize(
    "method, options",
    [
        ("static", {}),
        ("set", {"drop_fraction": 0.3}),
        ("rigl", {"update_every": 5, "drop_fraction": 0.5}),
        ("rigl", {"update_every": 4, "optimizer": "adam", "lr": 0.01}),
    ],
)
def test_sparse_backend_trains_as_the_masked_backend(tmp_path, method, options):
    runs = {}
    for backend in ("masked", "sparse"):
        runs[backend] = train(_config(method=method, backend=backend, **options), run_dir=tmp_path / backend)
    masked, sparse = runs["masked"], runs["sparse"]
    if method == "rigl":
        assert sum(m["mask_updates"] for m in masked.metrics) > 0
    if method == "set":
        assert any(m.get("masks_changed_after_epoch") for m in masked.metrics)
    assert read_run_config(sparse.run_dir)["network"]["backends"] == ["sparse", "sparse", "sparse"]
    assert read_run_config(masked.run_dir)["network"]["backends"] == ["masked"] * 3
    for a_path, b_path in zip(list_checkpoints(masked.run_dir), list_checkpoints(sparse.run_dir)):
        for la, lb in zip(load_checkpoint(a_path), load_checkpoint(b_path)):
            assert (la.mask != lb.mask).nnz == 0, (a_path.name, la.name)
            np.testing.assert_allclose(lb.weight, la.weight, atol=2e-5, rtol=1e-4)
            np.testing.assert_allclose(lb.bias, la.bias, atol=2e-5, rtol=1e-4)
    for ra, rb in zip(masked.metrics, sparse.metrics):
        assert ra["nnz"] == rb["nnz"] and ra["fan_in_cv"] == pytest.approx(rb["fan_in_cv"])
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-4)


def test_auto_keeps_small_layers_masked_and_records_it(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "AUTO_MIN_SIZE", 32 * 16)
    monkeypatch.setattr(backends, "AUTO_MAX_DENSITY", 0.9)
    result = train(_config(method="set", backend="auto", epochs=2), run_dir=tmp_path / "run")
    # fc1 (32 x 64) and fc2 (16 x 32) are large enough here, fc3 (10 x 16) is not
    assert read_run_config(result.run_dir)["network"]["backends"] == ["sparse", "sparse", "masked"]
    masked = train(_config(method="set", epochs=2), run_dir=tmp_path / "masked")
    for la, lb in zip(_final_layers(masked.run_dir), _final_layers(result.run_dir)):
        assert (la.mask != lb.mask).nnz == 0
        np.testing.assert_allclose(lb.weight, la.weight, atol=2e-5, rtol=1e-4)


def test_sparse_run_resumes_as_an_uninterrupted_one(tmp_path):
    config = _config(method="rigl", backend="sparse", epochs=4, update_every=7)
    whole = train(config, run_dir=tmp_path / "whole")

    def interrupt(epoch, step):
        if epoch == 3 and step == 2 * 23 + 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=tmp_path / "cut", on_step=interrupt)
    result = resume(tmp_path / "cut")
    assert result.resumed_from == 2 and result.epochs_done == 4
    untimed = [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_metrics(tmp_path / "cut")]
    assert untimed == [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in whole.metrics]
    for la, lb in zip(_final_layers(whole.run_dir), _final_layers(tmp_path / "cut")):
        assert (la.mask != lb.mask).nnz == 0
        np.testing.assert_array_equal(la.weight, lb.weight)


# -- layers too large to form densely (the limit lowered for the test) ----------------
def test_streamed_rigl_update_equals_the_dense_rule_without_ties(monkeypatch):
    shapes = [(40, 30), (20, 40)]
    generator = np.random.default_rng(0)
    masks = [generator.random(s) < 0.3 for s in shapes]
    results = []
    for limit in (10**9, 100):
        monkeypatch.setattr(backends, "DENSE_LIMIT", 10**9)  # the same initial weights in both
        model, kinds = backends.build_network("sparse", shapes, masks, seed=4, method="rigl")
        monkeypatch.setattr(backends, "DENSE_LIMIT", limit)
        assert kinds == ["sparse", "sparse"]
        steps = backends.steps_for(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        from topo.training.algorithms import get_algorithm

        algorithm = get_algorithm("rigl", update_every=1, drop_fraction=0.3, end_fraction=1.0)
        algorithm.setup(masks=masks, steps_per_epoch=10, epochs=1, total_steps=10)
        x = torch.randn(16, 30, generator=torch.Generator().manual_seed(1))
        steps.before_backward(algorithm, 1)
        model(x).pow(2).sum().backward()
        optimizer.step()  # momentum state that the update must carry over or reset
        steps.before_backward(algorithm, 1)
        optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        assert steps.update(algorithm, 1, optimizer, torch.Generator().manual_seed(5))
        results.append(
            [(layer.dense_mask().clone(), layer.dense_weight().clone(),
              optimizer.state[layer.values]["momentum_buffer"].clone()) for layer in model.layers]
        )
    for (mask_a, weight_a, state_a), (mask_b, weight_b, state_b) in zip(*results):
        assert torch.equal(mask_a, mask_b)
        torch.testing.assert_close(weight_a, weight_b)
        torch.testing.assert_close(state_a, state_b)


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_streamed_updates_keep_counts_and_checkpoints_hold_masks_without_dense_weights(tmp_path, monkeypatch, method):
    monkeypatch.setattr(backends, "DENSE_LIMIT", 32 * 64 - 1)  # fc1 (32 x 64) is "too large"
    result = train(_config(method=method, backend="sparse", update_every=5, epochs=3), run_dir=tmp_path / "run")
    records = result.metrics
    assert len({r["nnz"] for r in records}) == 1
    assert sum(r["mask_updates"] for r in records) > 0 or any(r.get("masks_changed_after_epoch") for r in records)
    first, last = load_checkpoint(list_checkpoints(result.run_dir)[0]), _final_layers(result.run_dir)
    assert last[0].weight is None and last[1].weight is not None  # fc1 stored as mask and bias
    assert (first[0].mask != last[0].mask).nnz > 0  # fc1's connections moved
    np.testing.assert_array_equal(first[0].fan_in.sum(), last[0].fan_in.sum())


def test_methods_without_a_streamed_update_refuse_large_layers(monkeypatch):
    monkeypatch.setattr(backends, "DENSE_LIMIT", 100)
    masks = [np.random.default_rng(0).random((20, 30)) < 0.2]
    with pytest.raises(TopoError, match="'ggr'.*never formed densely"):
        backends.build_network("sparse", [(20, 30)], masks, method="ggr")


# -- sparsify(backend=...) in the user's own loop ---------------------------------------
def _user_run(method, backend, epochs=3, **options):
    import torch.nn.functional as F

    from topo import sparsify
    from topo.training.data import load_dataset

    data = load_dataset("digits", val_fraction=0.1, seed=0)
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    X = torch.as_tensor(data.X_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.int64)
    steps = -(-len(y) // 64)
    controller = sparsify(model, optimizer, method=method, density=0.2, layers="all", epochs=epochs,
                          steps_per_epoch=steps, seed=5, backend=backend, **options)
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(y), 64):
            index = order[start:start + 64]
            optimizer.zero_grad()
            F.cross_entropy(model(X[index]), y[index]).backward()
            optimizer.step()
    return model, controller


@pytest.mark.parametrize("method, options", [("static", {}), ("set", {}), ("rigl", {"update_every": 5})])
def test_sparsify_sparse_backend_trains_as_the_masked_one(tmp_path, method, options):
    _, masked = _user_run(method, "masked", **options)
    model, sparse = _user_run(method, "sparse", **options)
    assert sparse.kinds == ["sparse", "sparse", "sparse"]
    assert type(model[0]).__name__ == "SparseLinear"
    if method == "rigl":
        assert masked.mask_updates > 0 and sparse.mask_updates == masked.mask_updates
    if method == "set":
        assert masked.masks_changed_after_epoch > 0
    assert sparse.nnz() == masked.nnz()
    for a, b in zip(masked.topology(), sparse.topology()):
        assert a.name == b.name
        assert (a.mask != b.mask).nnz == 0
        np.testing.assert_allclose(b.weight, a.weight, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(b.bias, a.bias, atol=2e-5, rtol=1e-4)
    # a normal topo checkpoint that every command reads
    written = sparse.save_checkpoint(tmp_path / "run", metrics={"note": 1})
    back = load_checkpoint(written)
    assert [layer.nnz for layer in back] == sparse.nnz()
    assert read_run_config(tmp_path / "run")["backends"] == ["sparse"] * 3


def test_sparsify_sparse_state_round_trip(tmp_path):
    import io

    model, controller = _user_run("rigl", "sparse", epochs=1, update_every=5)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "sparse": controller.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model2, controller2 = _user_run("rigl", "sparse", epochs=1, update_every=7)  # other masks by now
    with pytest.raises(TopoError, match="method"):
        controller2.load_state_dict({**saved["sparse"], "method": "set"})
    model2.load_state_dict(saved["model"])
    controller2.load_state_dict(saved["sparse"])
    assert controller2.step == controller.step and controller2.nnz() == controller.nnz()
    x = torch.randn(4, 64)
    torch.testing.assert_close(model2(x), model(x))


def test_cli_trains_with_the_sparse_backend_and_every_command_reads_its_checkpoints(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from topo_cli.main import main

    monkeypatch.setattr(backends, "DENSE_LIMIT", 32 * 64 - 1)  # fc1 is stored without its dense weights
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--backend", "sparse", "--method", "set", "--epochs", "2",
                                  "--hidden", "32,16", "--threads", "1", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert read_run_config(run)["network"]["backends"] == ["sparse", "sparse", "sparse"]
    first, last = (str(p) for p in (list_checkpoints(run)[0], list_checkpoints(run)[-1]))
    assert load_checkpoint(last)[0].weight is None
    for args in (["inspect", last], ["compare", first, last], ["hubs", last], ["distance", first, last],
                 ["drift", str(run)], ["inspect", "--format", "json", last]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    text = runner.invoke(main, ["train", "--help"]).output
    flat = " ".join(text.split())
    assert "--backend" in flat and "masked|sparse|auto" in flat.replace(" ", "")
    bad = runner.invoke(main, ["train", "--backend", "csr", "--epochs", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "csr" in bad.output


def test_random_fan_ins_of_layers_beyond_numpys_sampler_place_the_budget_uniformly(monkeypatch):
    from topo.training import profiles

    monkeypatch.setattr(profiles, "_HYPERGEOMETRIC_LIMIT", 1000)
    n_out, n_in, budget = 400, 50, 2000
    fan_in = profiles.fan_in_profile("random", n_out, n_in, budget, rng=np.random.default_rng(1))
    assert fan_in.sum() == budget and fan_in.min() >= 0 and fan_in.max() <= n_in
    # row counts of a uniform placement: hypergeometric, mean budget/n_out, variance below it
    size = n_out * n_in
    variance = budget * (n_in / size) * (1 - n_in / size) * (size - budget) / (size - 1)
    assert fan_in.mean() == budget / n_out
    assert abs(fan_in.var() - variance) < 0.2 * variance

"""sparsify(): topo's algorithms in the user's own training loop (topo.integrations.sparsify)."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import topo  # noqa: E402
from topo.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from topo.errors import TopoError  # noqa: E402
from topo.training.config import TrainConfig  # noqa: E402


def _config(method: str, tmp_path) -> TrainConfig:
    return TrainConfig(
        dataset="digits",
        hidden=(24, 16),
        sparsity=0.8,
        method=method,
        epochs=3,
        retrain_epochs=2,
        batch_size=64,
        lr=0.05,
        schedule="constant",
        optimizer="sgd",
        momentum=0.9,
        weight_decay=1e-4,
        update_every=5,
        drop_fraction=0.3,
        seed=7,
        device="cpu",
        threads=1,
        out=str(tmp_path / "run"),
    )


def _methods():
    from topo.training.algorithms import available_algorithms

    return [name for name in available_algorithms() if not name.startswith("test-")]


@pytest.mark.parametrize("method", _methods())
def test_matches_topo_train_bit_for_bit(method, tmp_path):
    """Every registered method of topo train, through sparsify() in a plain loop, gives the same run."""
    from topo.training.init import load_training_data
    from topo.training.loop import shuffle_generator
    from topo.training.trainer import train

    config = _config(method, tmp_path)
    result = train(config)
    checkpoints = list_checkpoints(result.run_dir)
    initial, final = load_checkpoint(checkpoints[0]), load_checkpoint(checkpoints[-1])

    # the user's model: plain torch layers holding topo train's initial weights
    data = load_training_data(config)
    model = nn.Sequential(nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        for module, layer in zip(model[::2], initial):
            module.weight.copy_(torch.from_numpy(layer.weight))
            module.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    X = torch.as_tensor(data.X_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.int64)
    steps_per_epoch = -(-len(y) // config.batch_size)
    sparse = topo.sparsify(
        model, optimizer, method=method, density=1 - config.sparsity, distribution=config.density,
        layers="all", epochs=config.epochs, steps_per_epoch=steps_per_epoch, seed=config.seed,
        **config.algorithm_options(),
    )
    for module, layer in zip(model[::2], initial):  # same masks from the same seed
        np.testing.assert_array_equal(getattr(module, "topo_weight_mask").numpy(), layer.mask.toarray())
    for epoch in range(1, config.total_epochs + 1):
        order = torch.randperm(len(y), generator=shuffle_generator(config.seed, epoch))
        for start in range(0, len(y), config.batch_size):
            index = order[start:start + config.batch_size]
            optimizer.zero_grad(set_to_none=False)
            F.cross_entropy(model(X[index]), y[index]).backward()
            optimizer.step()

    assert sparse.step == final.step
    mine = sparse.topology()
    for layer, expected in zip(mine, final):
        np.testing.assert_array_equal(layer.mask.toarray(), expected.mask.toarray())
        np.testing.assert_array_equal(layer.weight, expected.weight)
        np.testing.assert_array_equal(layer.bias, expected.bias)
        np.testing.assert_array_equal(layer.stats["grad_mean"], expected.stats["grad_mean"])
    updates = sum(r["mask_updates"] for r in result.metrics)
    assert sparse.mask_updates == updates
    if method in ("rigl", "ggr"):
        assert updates > 0
    if method in ("set", "prune"):
        assert sparse.masks_changed_after_epoch == sum(bool(r.get("masks_changed_after_epoch")) for r in result.metrics)
        assert sparse.masks_changed_after_epoch > 0


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 12, 3, padding=1)
        self.conv3 = nn.Conv2d(12, 12, 3, padding=1)
        self.fc1 = nn.Linear(12 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@pytest.mark.parametrize("method", ["rigl", "set", "ggr", "srigl"])
def test_every_layer_keeps_its_nnz_exactly_over_100_steps(method):
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = {} if method == "set" else {"update_every": 7}
    sparse = topo.sparsify(model, optimizer, method=method, density=0.2, epochs=10, steps_per_epoch=10,
                           drop_fraction=0.4, **schedule)
    assert sparse.names == ["conv2", "conv3", "fc1"]  # first and last stay dense by default
    budgets = sparse.nnz()
    assert budgets == sparse.budgets
    first_masks = [m.clone() for m in sparse.masks]
    X, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    for step in range(100):
        index = torch.randint(0, 64, (16,))
        optimizer.zero_grad()
        F.cross_entropy(model(X[index]), y[index]).backward()
        optimizer.step()
        nnz = sparse.nnz()
        if method == "ggr":
            assert sum(nnz) == sum(budgets)  # GGR moves connections between layers, never the total
        else:
            assert nnz == budgets
        for weight, mask in zip(sparse.weights, sparse.masks):
            assert int(torch.count_nonzero(weight[~mask])) == 0
    assert sparse.step == 100
    changed = any(not torch.equal(a, b) for a, b in zip(first_masks, sparse.masks))
    assert changed and (sparse.mask_updates > 0 or sparse.masks_changed_after_epoch > 0)


def _mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3))


def _train(model, optimizer, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 10, generator=generator)
        y = torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def test_state_dict_round_trip_resumes_exactly():
    def fresh():
        model = _mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sparse = topo.sparsify(model, optimizer, method="set", density=0.3, layers="all", epochs=6,
                               steps_per_epoch=10, drop_fraction=0.3)
        return model, optimizer, sparse

    model, optimizer, sparse = fresh()
    _train(model, optimizer, 35, seed=1)
    _train(model, optimizer, 25, seed=2)
    uninterrupted = [p.detach().clone() for p in model.parameters()], [m.clone() for m in sparse.masks]

    model, optimizer, sparse = fresh()
    _train(model, optimizer, 35, seed=1)  # stops inside epoch 4
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "sparse": sparse.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model, optimizer, sparse = fresh()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    sparse.load_state_dict(saved["sparse"])
    assert sparse.step == 35
    _train(model, optimizer, 25, seed=2)
    for a, b in zip(model.parameters(), uninterrupted[0]):
        assert torch.equal(a.detach(), b)
    for a, b in zip(sparse.masks, uninterrupted[1]):
        assert torch.equal(a, b)
    assert "topo_weight_mask" not in "".join(model.state_dict())  # the user's state dict is unchanged


def test_save_checkpoint_makes_a_run_that_topo_commands_read(tmp_path):
    from click.testing import CliRunner

    from topo_cli.main import main

    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse = topo.sparsify(model, optimizer, method="rigl", density=0.25, layers="all", epochs=3,
                           steps_per_epoch=10, update_every=4)
    run = tmp_path / "mine"
    sparse.save_checkpoint(run)
    for epoch in range(3):
        _train(model, optimizer, 10, seed=epoch)
        sparse.save_checkpoint(run, metrics={"train_loss": 1.0 / (epoch + 1), "val_acc": 0.5})
    one = sparse.save_checkpoint(tmp_path / "single.safetensors")
    files = [p.name for p in list_checkpoints(run)]
    assert files == [f"epoch_000{e}.safetensors" for e in range(4)]
    last = load_checkpoint(run / "checkpoints" / "epoch_0003.safetensors")
    assert last.names == ["0", "2", "4"]
    assert [layer.nnz for layer in last] == sparse.nnz()
    np.testing.assert_array_equal(last[1].stats["grad_mean"], sparse.grad_mean()["2"])
    assert float(last[1].stats["grad_mean"].sum()) > 0
    assert load_checkpoint(one).epoch == 3
    runner = CliRunner()
    first = str(run / "checkpoints" / "epoch_0000.safetensors")
    final = str(run / "checkpoints" / "epoch_0003.safetensors")
    for args in (["compare", first, final], ["distance", first, final], ["hubs", str(run)], ["drift", str(run)],
                 ["report", str(run), "-o", str(tmp_path / "r.html")]):
        outcome = runner.invoke(main, args)
        assert outcome.exit_code == 0, (args, outcome.output)
    assert (tmp_path / "r.html").stat().st_size > 1000


def test_methods_come_from_the_registry():
    from topo.training.algorithms import Algorithm, available_algorithms, register

    name = "test-every-step-keep"
    if name not in available_algorithms():

        @register(name)
        class EveryStep(Algorithm):
            option_names = ("update_every",)

            def __init__(self, *, update_every: int = 1):
                super().__init__(update_every=update_every)
                self.calls = 0

            def is_update_step(self, step):
                return True

            def update(self, step, weights, grads, masks, generator):
                self.calls += 1
                return None

    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse = topo.sparsify(model, optimizer, method=name, density=0.5, epochs=1, steps_per_epoch=5)
    _train(model, optimizer, 5, seed=0)
    assert sparse.algorithm.calls == 5 and sparse.mask_updates == 0


def test_bad_arguments_raise_topo_errors():
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TopoError, match="unknown training method 'nope'.*rigl"):
        topo.sparsify(model, optimizer, method="nope", epochs=1, steps_per_epoch=1)
    with pytest.raises(TopoError, match="takes no option banana"):
        topo.sparsify(model, optimizer, method="rigl", epochs=1, steps_per_epoch=1, banana=3)
    with pytest.raises(TopoError, match="density must be in"):
        topo.sparsify(model, optimizer, density=1.5, epochs=1, steps_per_epoch=1)
    with pytest.raises(TopoError, match="give epochs= and steps_per_epoch="):
        topo.sparsify(model, optimizer, method="rigl")
    with pytest.raises(TopoError, match="no Linear/Conv layer named fc9"):
        topo.sparsify(model, optimizer, method="static", layers=["fc9"])
    other = torch.optim.SGD(_mlp().parameters(), lr=0.1)
    with pytest.raises(TopoError, match="does not update 2.weight"):
        topo.sparsify(model, other, method="static")
    sparse = topo.sparsify(model, optimizer, method="static", density=0.5, layers=r"^[02]$")
    assert sparse.names == ["0", "2"]
    _train(model, optimizer, 2, seed=0)
    with pytest.raises(TopoError, match="give epoch="):
        sparse.save_checkpoint("unused-run-folder")
    with pytest.raises(TopoError, match="not a sparsify"):
        sparse.load_state_dict({"step": 3})


def test_select_positions_picks_what_a_stable_sort_picks():
    """The partial selection behind RigL/SET/GGR/pruning equals a full stable sort's choice."""
    from topo.training.algorithms.base import select_positions

    def by_sorting(scores, candidates, n, generator, largest):
        index = torch.nonzero(candidates).reshape(-1)
        n = min(max(n, 0), index.numel())
        index = index[torch.randperm(index.numel(), generator=generator)]
        return index[torch.sort(scores[index], stable=True, descending=largest).indices[:n]]

    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        size = int(torch.randint(1, 300, (1,), generator=g))
        # many ties (integer scores) every other trial: the random tie-break must match too
        scores = torch.randint(0, 5, (size,), generator=g).float() if trial % 2 else torch.rand(size, generator=g)
        if trial % 7 == 0:
            scores[torch.rand(size, generator=g) < 0.1] = float("nan")
        candidates = torch.rand(size, generator=g) < 0.6
        n = int(torch.randint(0, size + 2, (1,), generator=g))
        for largest in (True, False):
            mine = select_positions(scores, candidates, n, torch.Generator().manual_seed(trial), largest=largest)
            expected = by_sorting(scores, candidates, n, torch.Generator().manual_seed(trial), largest)
            assert sorted(mine.tolist()) == sorted(expected.tolist())


def test_erk_for_convolutions_counts_the_kernel_as_rigl_does():
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sparse = topo.sparsify(model, optimizer, method="static", density=0.2)
    sizes = [m.numel() for m in sparse.masks]  # conv2 6->12 3x3, conv3 12->12 3x3, fc1 48->32
    assert sizes == [648, 1296, 1536]
    budget = round(0.2 * sum(sizes))
    # RigL's Erdős–Rényi-kernel: count = eps * (n_in + n_out + kh + kw), one eps for all
    scores = np.array([6 + 12 + 3 + 3, 12 + 12 + 3 + 3, 48 + 32], dtype=float)
    expected = budget * scores / scores.sum()
    assert sum(sparse.nnz()) == budget
    assert np.all(np.abs(np.array(sparse.nnz()) - expected) < 1.0)
    with pytest.raises(TopoError, match="kernel sizes given"):
        from topo.training.densities import layer_budgets

        layer_budgets([(4, 18), (3, 4)], 0.5, kernel_sizes=[(3, 3)])

"""TopologyMonitor and the Lightning / Hugging Face callbacks (topo.integrations)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import topo  # noqa: E402
from topo.errors import TopoError  # noqa: E402
from topo.integrations.monitor import TopologyMonitor  # noqa: E402


def _masks(model):
    return [getattr(m, "topo_weight_mask").numpy().copy() for m in model if hasattr(m, "topo_weight_mask")]


def _cv(values):
    values = np.asarray(values, dtype=float)
    return float(values.std() / values.mean())


def _hubs(mask, fraction=0.1):
    fan_in = mask.sum(axis=1)
    count = max(1, math.ceil(round(fraction * fan_in.size, 9)))
    return set(np.argsort(-fan_in, kind="stable")[:count].tolist())


def _sparse_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 30), nn.ReLU(), nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    sparse = topo.sparsify(model, optimizer, method="rigl", density=0.3, layers="all", epochs=2,
                           steps_per_epoch=20, update_every=5, drop_fraction=0.5)
    return model, optimizer, sparse


def _steps(model, optimizer, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 12, generator=generator)
        y = torch.randint(0, 4, (16,), generator=generator)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def test_monitor_figures_match_numpy_on_the_masks():
    model, optimizer, sparse = _sparse_mlp()
    monitor = TopologyMonitor()
    with pytest.raises(TopoError, match="before any update"):
        monitor.compute()
    monitor.update(model, step=0)
    first = _masks(model)
    values = monitor.compute()
    for name, mask in zip(["0", "2", "4"], first):
        assert values[f"{name}/fan_in_cv"] == pytest.approx(_cv(mask.sum(axis=1)))
        assert values[f"{name}/density"] == pytest.approx(mask.mean())
        assert values[f"{name}/no_input"] == np.count_nonzero(mask.sum(axis=1) == 0)
        assert values[f"{name}/no_output"] == np.count_nonzero(mask.sum(axis=0) == 0)
        assert f"{name}/turnover" not in values and f"{name}/nnstd" not in values
    # nothing trained: nothing moved
    monitor.update(model, step=0)
    same = monitor.compute()
    assert all(same[f"{n}/turnover"] == 0.0 and same[f"{n}/hub_overlap"] == 1.0 for n in ("0", "2", "4"))
    assert same["nnstd"] == 0.0

    _steps(model, optimizer, 20)
    assert sparse.mask_updates > 0
    monitor.update(model, step=20)
    after = _masks(model)
    values = monitor.compute()
    for name, a, b in zip(["0", "2", "4"], first, after):
        both = np.count_nonzero(a & b)
        expected_turnover = (a.sum() + b.sum() - 2 * both) / (a.sum() + b.sum())
        assert values[f"{name}/turnover"] == pytest.approx(expected_turnover)
        hubs_a, hubs_b = _hubs(a), _hubs(b)
        assert values[f"{name}/hub_overlap"] == pytest.approx(len(hubs_a & hubs_b) / len(hubs_a | hubs_b))
        assert values[f"{name}/fan_in_cv"] == pytest.approx(_cv(b.sum(axis=1)))
        assert 0.0 < values[f"{name}/nnstd"] <= 1.0
    assert any(values[f"{n}/turnover"] > 0 for n in ("0", "2", "4"))
    np.testing.assert_array_equal(monitor.fan_in()["2"], after[1].sum(axis=1))
    assert [h["step"] for h in monitor.history] == [0.0, 0.0, 20.0]
    monitor.reset()
    assert monitor.history == [] and monitor.topology is None


def test_monitor_layer_filter_and_changed_layers():
    model, _, _ = _sparse_mlp()
    monitor = TopologyMonitor(layers="^2$", nnstd=False)
    monitor.update(model)
    assert sorted(k.split("/")[0] for k in monitor.compute() if "/" in k) == ["2"] * 4
    with pytest.raises(TopoError, match="layers changed"):
        monitor.update(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2), nn.Linear(2, 1)))


class _Recording:
    """An experiment that records histograms as TensorBoard's SummaryWriter is called."""

    def __init__(self):
        self.histograms = []

    def add_histogram(self, tag, values, global_step=None):
        self.histograms.append((tag, np.asarray(values).copy(), global_step))


def test_lightning_callback_logs_through_the_trainers_loggers(tmp_path):
    lightning = pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger, Logger

    from topo.integrations.lightning import TopologyCallback

    class HistogramLogger(Logger):
        def __init__(self):
            super().__init__()
            self.metrics = []
            self._experiment = _Recording()

        @property
        def name(self):
            return "recording"

        @property
        def version(self):
            return 0

        @property
        def experiment(self):
            return self._experiment

        def log_hyperparams(self, params, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step=None):
            self.metrics.append((step, dict(metrics)))

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(12, 24), nn.Linear(24, 24), nn.Linear(24, 4)

        def forward(self, x):
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            self.sparse = topo.sparsify(self, optimizer, method="rigl", density=0.2, epochs=2,
                                        steps_per_epoch=8, update_every=3)
            return optimizer

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 12), torch.randint(0, 4, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    recording = HistogramLogger()
    csv = CSVLogger(tmp_path, name="csv")
    callback = TopologyCallback(every_n_steps=4)
    trainer = lightning.Trainer(
        max_epochs=2, logger=[csv, recording], callbacks=[callback], enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )
    module = Module()
    trainer.fit(module, loader)
    assert module.sparse.step == 16 and module.sparse.mask_updates > 0
    assert module.sparse.nnz() == module.sparse.budgets  # exact through Lightning's optimizer wrapper
    steps = [step for step, _ in recording.metrics if any(k.startswith("topology/") for k in _)]
    assert steps == [0, 4, 8, 12, 16]
    last_step, last = [entry for entry in recording.metrics if "topology/fc2/turnover" in entry[1]][-1]
    assert last["topology/fc2/density"] == pytest.approx(module.sparse.densities()[0])
    mask = module.fc2.topo_weight_mask.numpy()
    assert last["topology/fc2/fan_in_cv"] == pytest.approx(_cv(mask.sum(axis=1)))
    tag, values, step = recording.experiment.histograms[-1]
    assert tag == "topology/fc3/fan_in" and step == 16
    fc2_hist = [v for t, v, s in recording.experiment.histograms if t == "topology/fc2/fan_in" and s == 16][0]
    np.testing.assert_array_equal(fc2_hist, mask.sum(axis=1))
    written = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text()
    assert "topology/fc2/fan_in_cv" in written and "topology/nnstd" in written


def test_hugging_face_callback_logs_through_trainer_log(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from topo.integrations.hf import TopologyCallback, track_topology

    class Histograms(transformers.TrainerCallback):
        def __init__(self):
            self.tb_writer = _Recording()

    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=24, n_positions=8,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():  # a sparse MLP weight, to watch it
        weight = model.transformer.h[0].mlp.c_fc.weight
        weight[torch.rand(weight.shape) < 0.7] = 0.0
    ids = torch.randint(1, 24, (12, 8))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4, learning_rate=1e-3,
        report_to=[], save_strategy="no", logging_steps=100, use_cpu=True, disable_tqdm=True,
    )
    histograms = Histograms()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[histograms])
    callback = track_topology(trainer, every_n_steps=3, layers="mlp")
    assert isinstance(callback, TopologyCallback)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "topology/density" in entry]
    assert [entry["step"] for entry in logged] == [0, 3, 6]
    key = "topology/transformer.h.0.mlp.c_fc/density"
    c_fc = model.transformer.h[0].mlp.c_fc.weight.detach().numpy()
    assert logged[-1][key] == pytest.approx(float((c_fc != 0).mean()))
    assert "topology/transformer.h.0.mlp.c_fc/turnover" in logged[-1]
    tags = {tag for tag, _, _ in histograms.tb_writer.histograms}
    assert tags == {"topology/transformer.h.0.mlp.c_fc/fan_in", "topology/transformer.h.0.mlp.c_proj/fan_in"}
    last = [v for t, v, s in histograms.tb_writer.histograms if t.endswith("c_fc/fan_in") and s == 6][0]
    np.testing.assert_array_equal(last, (c_fc != 0).T.sum(axis=1))

    unattached = TopologyCallback()
    with pytest.raises(TopoError, match="needs the Trainer"):
        unattached.on_train_begin(args, trainer.state, trainer.control, model=model)

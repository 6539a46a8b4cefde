"""topo.formats.pytorch: state dicts written by torch itself."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from topo.errors import TopoError  # noqa: E402
from topo.formats import detect_format, load  # noqa: E402


def _mlp(seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 8))


def test_prune_reparametrisation_gives_mask_and_masked_weight(tmp_path):
    import torch.nn.utils.prune as prune

    model = _mlp()
    prune.l1_unstructured(model[0], "weight", amount=0.7)
    prune.random_unstructured(model[2], "weight", amount=0.5)
    path = tmp_path / "pruned.pt"
    torch.save(model.state_dict(), path)

    assert detect_format(path) == "pytorch"
    net = load(path)
    assert net.names == ["0", "2", "4"]
    assert [layer.shape for layer in net] == [(32, 16), (24, 32), (8, 24)]
    expected = model[0].weight_mask.numpy().astype(bool)
    assert np.array_equal(net[0].mask.toarray(), expected)
    assert net[0].nnz == expected.sum() == round(0.3 * 32 * 16)
    np.testing.assert_allclose(net[0].weight, (model[0].weight_orig * model[0].weight_mask).detach().numpy())
    np.testing.assert_allclose(net[0].bias, model[0].bias.detach().numpy())
    assert net[2].density == 1.0  # not pruned: nonzero pattern of a dense weight
    assert "weight_mask" in net[0].info["note"]
    assert net.info["format"] == "pytorch"


def test_explicit_mask_kept_even_where_weight_is_zero(tmp_path):
    import torch.nn.utils.prune as prune

    model = _mlp()
    prune.random_unstructured(model[0], "weight", amount=0.5)
    with torch.no_grad():
        model[0].weight_orig.zero_()  # a kept connection whose weight is exactly zero
    torch.save(model.state_dict(), tmp_path / "zero.pt")
    net = load(tmp_path / "zero.pt")
    assert net[0].nnz == int(model[0].weight_mask.sum())
    assert not net[0].weight.any()


def test_ao_pruning_parametrization_with_sparsifier_masks_and_squashed(tmp_path):
    from torch.ao.pruning import WeightNormSparsifier

    model = _mlp()
    sparsifier = WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, 4), zeros_per_block=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparsifier.prepare(model, config=[{"tensor_fqn": "0.weight"}, {"tensor_fqn": "2.weight"}])
        sparsifier.step()
    keys = list(model.state_dict())
    assert "0.parametrizations.weight.original" in keys
    masks = {fqn: entry["mask"] for fqn, entry in sparsifier.state_dict()["state"].items()}
    # FakeSparsity's mask is not a persistent buffer: save the sparsifier's masks beside the model.
    torch.save({"model": model.state_dict(), "sparsifier": {"state": {k: {"mask": v} for k, v in masks.items()}}},
               tmp_path / "prepared.pt")
    net = load(tmp_path / "prepared.pt")
    assert net.names == ["0", "2", "4"]
    assert np.array_equal(net[0].mask.toarray(), masks["0.weight"].numpy().astype(bool))
    assert net[0].density == pytest.approx(0.5)  # 2 of every block of 4 zeroed
    assert net[1].density == pytest.approx(0.5)

    # Without the sparsifier's masks: the original weights' pattern, and a warning says so.
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    bare = load(tmp_path / "bare.pt")
    assert bare[0].density == 1.0
    assert any("without a saved mask" in w for w in bare.info["warnings"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparsifier.squash_mask()
    torch.save(model.state_dict(), tmp_path / "squashed.pt")
    squashed = load(tmp_path / "squashed.pt")
    assert np.array_equal(squashed[0].mask.toarray(), net[0].mask.toarray())


def test_parametrize_buffer_mask(tmp_path):
    """A parametrization that keeps its mask as a persistent buffer (what the state dict holds)."""
    import torch.nn.utils.parametrize as parametrize

    class Masked(nn.Module):
        def __init__(self, mask):
            super().__init__()
            self.register_buffer("mask", mask)

        def forward(self, w):
            return w * self.mask

    model = _mlp()
    mask = (torch.rand(32, 16, generator=torch.Generator().manual_seed(3)) < 0.25).float()
    parametrize.register_parametrization(model[0], "weight", Masked(mask))
    torch.save(model.state_dict(), tmp_path / "param.pt")
    net = load(tmp_path / "param.pt")
    assert np.array_equal(net[0].mask.toarray(), mask.numpy().astype(bool))


def test_nested_checkpoint_lightning_dataparallel_and_mask_dict(tmp_path):
    model = _mlp()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(rng.random((24, 32)) < 0.2)
    ckpt = {
        "epoch": 7,
        "global_step": 1234,
        "state_dict": state,
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}],
        "mask": {"masks": {"module.2.weight": mask}},
    }
    torch.save(ckpt, tmp_path / "last.ckpt")
    net = load(tmp_path / "last.ckpt", weights=False)
    assert net.names == ["0", "2", "4"]
    assert net.epoch == 7 and net.step == 1234
    assert np.array_equal(net[1].mask.toarray(), mask.numpy())
    assert all(layer.weight is None for layer in net)

    first = torch.from_numpy(rng.random((32, 16)) < 0.2)
    torch.save({"masks": {"0": first}, "model_state_dict": model.state_dict()}, tmp_path / "masks.pth")
    with_masks = load(tmp_path / "masks.pth")
    assert np.array_equal(with_masks[0].mask.toarray(), first.numpy())
    assert with_masks[1].density == 1.0


def test_sparse_coo_and_csr_tensors(tmp_path):
    gen = torch.Generator().manual_seed(1)
    w1 = torch.randn(32, 16, generator=gen) * (torch.rand(32, 16, generator=gen) < 0.3)
    w2 = torch.randn(8, 32, generator=gen) * (torch.rand(8, 32, generator=gen) < 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = {"fc1.weight": w1.to_sparse(), "fc1.bias": torch.ones(32), "fc2.weight": w2.to_sparse_csr()}
    torch.save(state, tmp_path / "sparse.pt")
    net = load(tmp_path / "sparse.pt")
    assert net.names == ["fc1", "fc2"]
    assert np.array_equal(net[0].mask.toarray(), (w1 != 0).numpy())
    assert np.array_equal(net[1].mask.toarray(), (w2 != 0).numpy())
    np.testing.assert_allclose(net[1].weight, w2.numpy())
    assert net[0].bias is not None
    assert load(tmp_path / "sparse.pt", weights=False)[0].weight is None


def test_conv_layers_are_channel_level(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[2].zero_()  # output channel 2 loses every input
        model[2].weight[:, 5, :2] = 0  # partial kernel: the channel link survives
    torch.save(model.state_dict(), tmp_path / "conv.pt")
    net = load(tmp_path / "conv.pt")
    first = net[0]
    assert first.shape == (8, 3) and first.info["kind"] == "conv"
    assert first.fan_in[2] == 0 and first.fan_in[0] == 3
    assert first.info["kernel_density"] == pytest.approx(7 / 8)
    assert net[1].shape == (4, 8) and net[1].density == 1.0
    assert net[1].info["kernel_density"] == pytest.approx(1 - 4 * 6 / (4 * 8 * 9))
    assert net[2].shape == (2, 4) and not net[2].standalone


def test_bf16_and_layers_regex_and_mismatch_warning(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = {
        "enc.weight": torch.randn(10, 6, generator=gen).bfloat16(),
        "head.weight": torch.randn(3, 7, generator=gen),  # does not chain: 7 != 10
    }
    torch.save(state, tmp_path / "mix.pt")
    net = load(tmp_path / "mix.pt")
    assert net[0].weight.dtype == np.float32
    assert net[1].standalone and not net[0].standalone
    assert any("do not chain" in w and "head" in w for w in net.info["warnings"])
    only = load(tmp_path / "mix.pt", layers=r"^enc")
    assert only.names == ["enc"]
    with pytest.raises(TopoError, match="no layer name matches"):
        load(tmp_path / "mix.pt", layers="nothing")
    with pytest.raises(TopoError, match="regular expression"):
        load(tmp_path / "mix.pt", layers="(")


def test_legacy_serialization_and_nan_warning(tmp_path):
    w = torch.randn(5, 4)
    w[0, 0] = float("nan")
    w[1] = 0
    torch.save({"fc.weight": w}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert detect_format(tmp_path / "legacy.pt") == "pytorch"
    net = load(tmp_path / "legacy.pt")
    assert net[0].mask[0, 0]  # NaN counts as a connection
    assert net[0].fan_in[1] == 0
    assert any("NaN" in w for w in net.info["warnings"])


def test_complex_weights_are_refused(tmp_path):
    torch.save({"fc.weight": torch.randn(3, 3, dtype=torch.complex64)}, tmp_path / "c.pt")
    with pytest.raises(TopoError, match="non-numeric|real-valued"):
        load(tmp_path / "c.pt")


def test_pickle_with_a_payload_is_read_without_running_it(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    weight = torch.arange(6.0).reshape(3, 2)
    for name, zipped in (("evil_zip.pt", True), ("evil_legacy.pt", False)):
        torch.save({"weight": weight, "x": Evil()}, tmp_path / name, _use_new_zipfile_serialization=zipped)
        assert not marker.exists()
        net = load(tmp_path / name)  # the payload becomes an inert record; the weight is read
        assert not marker.exists()
        assert net.names == ["weight"]
        np.testing.assert_array_equal(net[0].weight, weight.numpy())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_is_refused(tmp_path):
    scripted = torch.jit.script(nn.Linear(3, 2))
    scripted.save(str(tmp_path / "scripted.pt"))
    with pytest.raises(TopoError, match="TorchScript"):
        load(tmp_path / "scripted.pt")

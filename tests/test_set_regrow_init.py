"""SET's regrowth initialisation (``--set-regrow-init``): values, choice, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topo.checkpoint import load_checkpoint
from topo.errors import TopoError
from topo.training.algorithms.set import SET
from topo.training.config import TrainConfig
from topo.training.masking import algorithm_after_epoch
from topo.training.trainer import resume, train


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = [torch.rand(6, 8, generator=g) < 0.4, torch.rand(3, 6, generator=g) < 0.5]
    weights = [torch.nn.Parameter(torch.randn(m.shape, generator=g) * m) for m in masks]
    return weights, masks


def _set(init):
    algo = SET(drop_fraction=0.5, set_regrow_init=init)
    _, masks = _state()
    algo.setup(masks=masks, steps_per_epoch=1, epochs=3, total_steps=3)
    return algo


def test_normal_grown_weights_follow_the_reference_rule():
    weights, masks = _state()
    old_masks = [m.clone() for m in masks]
    old_weights = [w.detach().clone() for w in weights]
    algo = _set("normal")
    assert algorithm_after_epoch(algo, 1, weights, masks, None, torch.Generator().manual_seed(5))
    # the truth: the same mask draw, then randn(count) / 10 per layer, row-major
    g = torch.Generator().manual_seed(5)
    expected_masks = _set("normal").after_epoch(1, old_weights, old_masks, g)
    for w, m, old_m, old_w, exp_m in zip(weights, masks, old_masks, old_weights, expected_masks):
        assert torch.equal(m, exp_m)
        grown = exp_m & ~old_m
        n = int(grown.sum())
        assert n > 0
        expected = torch.randn(n, generator=g).numpy() / 10
        np.testing.assert_allclose(w.detach()[grown].numpy(), expected, rtol=1e-6)
        kept = exp_m & old_m
        np.testing.assert_array_equal(w.detach()[kept].numpy(), old_w[kept].numpy())
        assert not bool(w.detach()[~exp_m].any())


def test_zero_grown_weights_start_at_zero():
    weights, masks = _state()
    old_masks = [m.clone() for m in masks]
    assert algorithm_after_epoch(_set("zero"), 1, weights, masks, None, torch.Generator().manual_seed(5))
    for w, m, old_m in zip(weights, masks, old_masks):
        grown = m & ~old_m
        assert int(grown.sum()) > 0
        assert not bool(w.detach()[grown].any())


def test_default_is_normal_and_bad_choice_names_the_option():
    assert SET().regrow_init == "normal"
    assert TrainConfig().set_regrow_init == "normal"
    with pytest.raises(TopoError, match="set_regrow_init|regrowth"):
        TrainConfig(method="set", set_regrow_init="uniform").validate()


def test_a_run_written_before_the_option_reads_back_as_it_trained():
    old = TrainConfig(method="set").to_dict()
    del old["set_regrow_init"]
    assert TrainConfig.from_dict(old).set_regrow_init == "zero"
    assert TrainConfig.from_dict(TrainConfig(method="set").to_dict()).set_regrow_init == "normal"


def test_train_help_lists_the_flag():
    from click.testing import CliRunner

    from cli.main import main

    out = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--set-regrow-init" in out and "zero" in out


@pytest.mark.parametrize("init", ["normal", "zero"])
def test_set_resume_is_bit_for_bit(tmp_path, init):
    from tests.test_trainer import _config

    config = _config(epochs=3, method="set", set_regrow_init=init, checkpoint_every=8)
    whole = tmp_path / "whole"
    train(config, run_dir=whole)
    cut = tmp_path / "cut"

    def interrupt(epoch, step):
        if epoch == 2 and step == 21 + 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=cut, on_step=interrupt)
    resume(cut)
    a = load_checkpoint(whole / "checkpoints" / "epoch_0003.safetensors")
    b = load_checkpoint(cut / "checkpoints" / "epoch_0003.safetensors")
    for la, lb in zip(a, b):
        assert (la.mask != lb.mask).nnz == 0
        np.testing.assert_array_equal(la.weight, lb.weight)

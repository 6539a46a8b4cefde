"""One schema for a training configuration: CLI flags, sweep keys, validation and run.json come from it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from topo.errors import TopoError
from topo.sweep import parse_sweep_spec
from topo.training.algorithms import available_algorithms
from topo.training.config import (
    OPTION_GROUPS,
    TrainConfig,
    coerce_option,
    config_identity,
    methods_taking,
    training_options,
)
from topo_cli.main import main
from topo_cli.train import train_command

#: what a run's identity held before the schema; studies and sweeps hash it, so it must not move
IDENTITY_KEYS_BEFORE = {
    "dataset", "val_fraction", "hidden", "sparsity", "density", "density_map", "dense_output", "profile", "cv",
    "hub_placement", "init", "method", "update_every", "drop_fraction", "end_fraction", "explore_fraction",
    "ggr_normalise", "prune_class", "prune_steps", "retrain_epochs", "epochs", "batch_size", "lr", "optimizer",
    "momentum", "weight_decay", "schedule", "seed", "checkpoint_every", "grad_batches",
}


def test_every_option_is_a_train_flag_with_its_default_and_group():
    params = {p.name: p for p in train_command.params}
    for item in training_options():
        assert item.name in params, item.name
        param = params[item.name]
        assert param.opts[0] == "--" + item.name.replace("_", "-")
        assert param.help_group == item.spec.group
        default = param.type_cast_value(None, param.default) if param.default is not None else None
        assert default == item.default, item.name
    assert set(params) - {item.name for item in training_options()} == {"resume", "quiet", "verbose"}


def test_help_lists_options_under_their_groups_in_order():
    text = CliRunner().invoke(main, ["train", "--help"]).output
    positions = [text.index(f"\n{group}:\n") for group in OPTION_GROUPS if any(
        item.spec.group == group for item in training_options())]
    assert positions == sorted(positions)
    method_section = text[text.index("\nMethod:\n"):text.index("\nOptimisation:\n")]
    assert "--update-every" in method_section and "--epochs" not in method_section
    assert "[" + "|".join(available_algorithms()) + "]" in text  # choices from the registry


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--sparsity", "1.5"], "--sparsity"),
        (["--lr", "0"], "--lr"),
        (["--epochs", "-1"], "--epochs"),
        (["--method", "magic"], "--method"),
        (["--profile", "zigzag"], "--profile"),
        (["--hidden", "16,x"], "--hidden"),
        (["--density-map", "[1]"], "--density-map"),
        (["--init", "bogus"], "--init"),
    ],
)
def test_usage_errors_exit_2_naming_the_flag(tmp_path, args, flag):
    result = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert not (tmp_path / "r").exists()


def test_method_options_say_which_methods_take_them():
    assert {"rigl", "ggr"} <= set(methods_taking("update_every")) and "set" not in methods_taking("update_every")
    assert methods_taking("prune_class") == ("prune",)
    text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "Used by: prune." in " ".join(text.split())


def test_run_json_round_trips_and_fills_defaults():
    config = TrainConfig(hidden="32,16", sparsity=0.8, density_map={"fc3": 1}, cv=None, method="set", seed=4)
    again = TrainConfig.from_json(config.to_json())
    assert again == config and again.hidden == (32, 16) and again.density_map == {"fc3": 1.0}
    old = config.to_dict()
    del old["grad_batches"]  # a run written before an option existed
    assert TrainConfig.from_dict(old).grad_batches == TrainConfig().grad_batches
    with pytest.raises(TopoError, match="configuration epochs: expected an integer"):
        TrainConfig.from_dict({"epochs": "3"})
    with pytest.raises(TopoError, match="unknown training options in configuration: warmup"):
        TrainConfig.from_dict({"warmup": 3})


def test_identity_keeps_its_keys_for_the_methods_that_existed():
    for method in ("static", "rigl", "set", "ggr", "prune"):
        # SET's own --set-regrow-init (added later) counts for SET runs only
        own = {"set_regrow_init"} if method == "set" else set()
        assert set(config_identity(TrainConfig(method=method))) == IDENTITY_KEYS_BEFORE | own


def test_sweep_values_are_coerced_by_the_schema():
    assert coerce_option("cv", "none", "[grid]") is None
    assert coerce_option("lr", 1, "[base]") == 1.0
    assert coerce_option("hidden", "4,4", "[grid]") == (4, 4)
    with pytest.raises(TopoError, match=r"\[grid\] batch_size: expected an integer"):
        coerce_option("batch_size", 2.5, "[grid]")
    with pytest.raises(TopoError, match=r"\[base\] density_map: must be a table"):
        parse_sweep_spec({"base": {"density_map": [1]}, "grid": {"seed": [0]}})


def test_config_module_has_no_hard_coded_method_list():
    import topo.training.config as config_module

    assert not hasattr(config_module, "METHODS")


def test_a_registered_method_brings_its_own_options_everywhere():
    """One class plus its registration: a flag, a sweep key, a checked range and run.json."""
    code = textwrap.dedent(
        """
        from click.testing import CliRunner
        import topo.training.algorithms as algorithms
        from topo.training.schema import option

        @algorithms.register("toy")
        class Toy(algorithms.Algorithm):
            option_names = ("update_every",)
            declared_options = {"toy_level": option(3, type=int, low=1, help="How toy it is.", group="Method options")}

            def __init__(self, *, update_every=100, toy_level=3):
                super().__init__(update_every=update_every, toy_level=toy_level)

        from topo.errors import TopoError
        from topo.sweep import parse_sweep_spec
        from topo.training.config import TrainConfig, config_identity
        from topo_cli.main import main

        config = TrainConfig(method="toy", toy_level=5).validate()
        assert config.algorithm_options() == {"update_every": 100, "toy_level": 5}
        assert TrainConfig.from_dict(config.to_dict()) == config
        assert config_identity(config)["toy_level"] == 5
        assert "toy_level" not in config_identity(TrainConfig(method="rigl"))
        text = CliRunner().invoke(main, ["train", "--help"]).output
        assert "--toy-level" in text and "Method options:" in text and "Used by: toy." in " ".join(text.split())
        bad = CliRunner().invoke(main, ["train", "--method", "toy", "--toy-level", "0"])
        assert bad.exit_code == 2 and "--toy-level" in bad.output, bad.output
        assert parse_sweep_spec({"grid": {"method": ["toy"], "toy_level": [1, 2]}}).grid["toy_level"] == [1, 2]
        try:
            parse_sweep_spec({"grid": {"toy_level": ["x"]}})
        except TopoError as exc:
            assert "toy_level: expected an integer" in str(exc)
        else:
            raise AssertionError("a string toy_level was accepted")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

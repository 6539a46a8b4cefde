import csv
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from topo import Layer, Topology, TopoError, save_checkpoint
from topo.analysis.drift import (
    DriftResult,
    drift,
    equilibrium_profile,
    normalised_fan_in,
    profile_samples,
    validate_profile,
)
from topo.runs import load_equilibrium, load_run, read_profile, save_profile
from topo.checkpoint import checkpoint_name, write_run_config
from topo_cli.main import main

N_OUT, N_IN, N_OUT2 = 200, 300, 10


def mask_with_fan_in(fan_in, n_in, rng):
    """A boolean [out, in] mask whose rows have exactly the given fan-ins, inputs at random."""
    order = np.argsort(rng.random((fan_in.size, n_in)), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n_in)[None, :], axis=1)
    return ranks < np.asarray(fan_in)[:, None]


def converging_run(n_ckpt=8, settle=4, seed=0):
    """Fan-ins move linearly from constant to a fixed lognormal sample, reached at `settle`, then stay."""
    rng = np.random.default_rng(seed)
    target = np.clip(np.rint(np.exp(np.log(30) + 0.6 * rng.standard_normal(N_OUT))), 1, N_IN)
    target2 = np.rint(np.linspace(20, 100, N_OUT2))
    topologies = []
    for t in range(n_ckpt):
        w = min(t / settle, 1.0)
        f1 = np.rint((1 - w) * target.mean() + w * target).astype(int)
        f2 = np.rint((1 - w) * 60 + w * target2).astype(int)
        masks = [mask_with_fan_in(f1, N_IN, rng), mask_with_fan_in(f2, N_OUT, rng)]
        topologies.append(Topology.from_masks(masks, names=["fc1", "fc2"], info={"epoch": t, "step": 10 * t}))
    return topologies


@pytest.fixture(scope="module")
def run_topologies():
    return converging_run()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, run_topologies):
    run = tmp_path_factory.mktemp("runs") / "rigl"
    write_run_config(run, {"algorithm": "rigl"})
    for t in run_topologies:
        save_checkpoint(t, run / "checkpoints" / checkpoint_name(t.epoch))
    return run


def test_converging_sequence_detected_at_the_right_checkpoint(run_topologies):
    result = drift(run_topologies)
    assert isinstance(result, DriftResult)
    assert result.layers == ["fc1", "fc2"]
    assert result.labels == [str(t) for t in range(8)]
    assert result.wasserstein.shape == result.ks.shape == result.cv.shape == (8, 2)
    assert result.turnover.shape == (7, 2)
    assert result.convergence == [4, 4]
    # distances shrink toward the settled checkpoints, then vanish (same fan-in multiset)
    assert np.all(np.diff(result.wasserstein[:5, 0]) < 0)
    assert result.wasserstein[3, 0] > 0.05
    assert np.allclose(result.wasserstein[4:], 0) and np.allclose(result.ks[4:], 0)
    assert result.cv[0, 0] == pytest.approx(0, abs=0.02)
    assert result.cv[-1, 0] == pytest.approx(np.std(run_topologies[-1][0].fan_in) / np.mean(run_topologies[-1][0].fan_in))
    # masks are redrawn at every checkpoint: turnover well above 0, at most 1
    assert np.all((result.turnover > 0.3) & (result.turnover <= 1))
    fit = result.equilibrium_fit["fc1"]
    logs = np.log(run_topologies[-1][0].fan_in)
    assert fit["mu"] == pytest.approx(logs.mean()) and fit["sigma"] == pytest.approx(logs.std())
    assert fit["cv"] == pytest.approx(math.sqrt(math.expm1(fit["sigma"] ** 2)))
    rows = result.to_rows()
    assert len(rows) == 16 and rows[0]["layer"] == "fc1" and math.isnan(rows[0]["turnover"])
    assert rows[2]["turnover"] == result.turnover[0, 0] and rows[9]["epoch"] == 4
    layer_rows = result.layer_rows()
    assert [r["converged_at"] for r in layer_rows] == [4, 4]


def test_tolerance_and_never_converging():
    rng = np.random.default_rng(1)
    # the spread keeps growing, so the last checkpoint differs from the pooled last three
    topologies = [
        Topology.from_masks([mask_with_fan_in(np.rint(np.linspace(50 - 6 * t, 50 + 6 * t, N_OUT)).astype(int), N_IN, rng)])
        for t in range(6)
    ]
    assert drift(topologies, tolerance=0.001).convergence == [None]
    loose = drift(topologies, tolerance=10.0)
    assert loose.convergence == [0]
    assert loose.labels == [f"#{i}" for i in range(6)]


def test_identical_masks_have_zero_turnover_and_shape_change_gives_nan():
    rng = np.random.default_rng(2)
    a = Topology([Layer.from_mask("fc", rng.random((40, 30)) < 0.3)])
    b = Topology([Layer.from_mask("fc", rng.random((40, 35)) < 0.3)])
    result = drift([a, a, b])
    assert result.turnover[0, 0] == 0
    assert math.isnan(result.turnover[1, 0])


def test_equilibrium_from_another_run_and_from_a_profile(run_topologies):
    settled = run_topologies[4:]
    other = drift(run_topologies, equilibrium=settled, last_k=2)
    assert other.convergence == [4, 4]
    assert other.equilibrium_source == "given topologies"

    profile = drift(run_topologies).profile()
    from_profile = drift(run_topologies, equilibrium=profile)
    assert from_profile.equilibrium_fit["fc1"]["mu"] == pytest.approx(profile["fc1"]["mu"])
    # the lognormal stands in for the settled fan-ins: close at the end, far at the start
    assert from_profile.wasserstein[-1, 0] < 0.1
    assert from_profile.wasserstein[0, 0] > 3 * from_profile.wasserstein[-1, 0]
    assert np.all(np.diff(from_profile.wasserstein[:5, 0]) < 0)


def test_profile_samples_are_deterministic_quantiles():
    a = profile_samples(3.0, 0.5, 2000)
    assert np.array_equal(a, profile_samples(3.0, 0.5, 2000))
    assert a.mean() == pytest.approx(1.0) and np.all(np.diff(a) >= 0)
    raw = a * np.exp(3.0 + 0.125)  # back near fan-in scale: whole numbers of a lognormal(3, 0.5)
    assert np.log(raw).std() == pytest.approx(0.5, abs=0.03)
    assert np.all(profile_samples(-5.0, 0.1, 10) == 1.0)  # tiny fan-ins round up to 1


def test_normalised_fan_in():
    assert np.allclose(normalised_fan_in(np.array([1, 2, 3])), [0.5, 1, 1.5])
    assert normalised_fan_in(np.zeros(4)) is None and normalised_fan_in(np.array([])) is None


def test_layer_without_connections_gives_nan():
    rng = np.random.default_rng(3)
    empty = Layer.from_mask("dead", np.zeros((5, 8), bool), standalone=True)
    topologies = [Topology([Layer.from_mask("fc", rng.random((20, 8)) < 0.5), empty]) for _ in range(3)]
    result = drift(topologies)
    assert np.all(np.isnan(result.wasserstein[:, 1])) and result.convergence[1] is None
    assert math.isnan(result.equilibrium_fit["dead"]["mu"])
    with pytest.raises(TopoError, match="dead"):
        save_profile(result, "unused.json")  # a NaN fit is not a valid profile


def test_drift_errors(run_topologies):
    with pytest.raises(TopoError, match="at least one"):
        drift([])
    with pytest.raises(TopoError, match="last_k"):
        drift(run_topologies, last_k=0)
    with pytest.raises(TopoError, match="tolerance"):
        drift(run_topologies, tolerance=-1)
    renamed = Topology([l.with_(name=f"x{i}") for i, l in enumerate(run_topologies[0])])
    with pytest.raises(TopoError, match="same layers"):
        drift([run_topologies[0], renamed])
    with pytest.raises(TopoError, match="fc2"):
        drift(run_topologies, equilibrium={"fc1": {"mu": 3.0, "sigma": 0.5}})
    with pytest.raises(TopoError, match="equilibrium must be"):
        drift(run_topologies, equilibrium=42)


def test_profile_round_trip(tmp_path, run_topologies):
    result = drift(run_topologies)
    path = save_profile(result, tmp_path / "sub" / "eq.json")
    document = json.loads(path.read_text())
    assert document["kind"] == "topo-fanin-profile" and document["version"] == 1
    assert document["distribution"] == "lognormal"
    assert set(document["layers"]["fc1"]) == {"mu", "sigma", "cv", "mean_fan_in"}
    profile = read_profile(path)
    assert profile == result.profile()  # JSON keeps floats exactly (shortest repr)
    # a mapping with only mu and sigma gets cv and mean_fan_in filled in
    save_profile({"fc1": {"mu": 2.0, "sigma": 0.5}}, tmp_path / "min.json")
    minimal = read_profile(tmp_path / "min.json")["fc1"]
    assert minimal["cv"] == pytest.approx(math.sqrt(math.expm1(0.25)))
    assert minimal["mean_fan_in"] == pytest.approx(math.exp(2.125))
    # drift can take the file as its equilibrium
    equilibrium, source = load_equilibrium(path)
    assert drift(run_topologies, equilibrium=equilibrium, equilibrium_source=source).equilibrium_source == str(path)


def test_read_profile_of_a_run_folder(run_folder, run_topologies):
    profile = read_profile(run_folder)
    expected = equilibrium_profile(run_topologies)
    for key in ("mu", "sigma", "cv", "mean_fan_in"):
        assert profile["fc1"][key] == pytest.approx(expected["fc1"][key])
    assert read_profile(run_folder, last_k=1)["fc2"]["mu"] == pytest.approx(expected["fc2"]["mu"])
    assert len(load_run(run_folder)) == 8 and len(load_run(run_folder, last_k=2)) == 2


GOOD = {"fc1": {"mu": 3.0, "sigma": 0.5, "cv": 0.53, "mean_fan_in": 22.7}}


@pytest.mark.parametrize(
    "document,message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"kind": "something-else", "version": 1, "layers": GOOD}), "not a topo fan-in profile"),
        (json.dumps([1, 2]), "not a topo fan-in profile"),
        (json.dumps({"kind": "topo-fanin-profile", "version": "1", "layers": GOOD}), "version"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 2, "layers": GOOD}), "newer"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "distribution": "gamma", "layers": GOOD}), "gamma"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {}}), "at least one layer"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1}), "at least one layer"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {"fc1": 3}}), "fc1"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {"fc1": {"sigma": 0.5}}}), "mu"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {"fc1": {"mu": 3, "sigma": -1}}}), "sigma"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {"fc1": {"mu": 3, "sigma": float("nan")}}}), "sigma"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {"fc1": {"mu": "3", "sigma": 1}}}), "mu"),
        (json.dumps({"kind": "topo-fanin-profile", "version": 1, "layers": {"fc1": {"mu": 3, "sigma": 1, "cv": -2}}}), "cv"),
    ],
)
def test_malformed_profile_raises_naming_the_file(tmp_path, document, message):
    path = tmp_path / "bad_profile.json"
    path.write_text(document)
    with pytest.raises(TopoError, match=message) as info:
        read_profile(path)
    assert "bad_profile.json" in str(info.value)


def test_read_profile_missing_and_plain_folder(tmp_path):
    with pytest.raises(TopoError, match="no such"):
        read_profile(tmp_path / "missing.json")
    with pytest.raises(TopoError, match="neither"):
        read_profile(tmp_path)
    assert validate_profile(GOOD)["fc1"]["cv"] == 0.53


# -- the command -----------------------------------------------------------------------
def test_cli_table_and_save_profile(tmp_path, run_folder):
    out = tmp_path / "profile.json"
    result = CliRunner().invoke(main, ["drift", str(run_folder), "--save-profile", str(out)])
    assert result.exit_code == 0, result.output
    assert "fc1" in result.stdout and "converged at" in result.stdout and "W1" in result.stdout
    assert f"wrote profile {out}" in result.stderr
    assert read_profile(out)["fc1"]["sigma"] > 0


def test_cli_json_csv_and_options(tmp_path, run_folder):
    runner = CliRunner()
    data = json.loads(runner.invoke(main, ["drift", str(run_folder), "--format", "json"]).stdout)
    assert len(data["checkpoints"]) == 16 and data["checkpoints"][0]["turnover"] is None
    assert [layer["converged_at"] for layer in data["layers"]] == [4, 4]
    assert data["equilibrium"] == "last 3 checkpoints"

    strict = json.loads(runner.invoke(main, ["drift", str(run_folder), "--format", "json", "--tolerance", "0"]).stdout)
    assert [layer["converged_at"] for layer in strict["layers"]] == [4, 4]
    early = json.loads(runner.invoke(main, ["drift", str(run_folder), "--format", "json", "--tolerance", "1"]).stdout)
    assert [layer["converged_at"] for layer in early["layers"]] == [0, 0]

    text = runner.invoke(main, ["drift", str(run_folder), "--format", "csv", "--last-k", "2"]).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 16 and rows[0]["layer"] == "fc1" and rows[0]["label"] == "0"
    assert float(rows[-1]["wasserstein"]) == pytest.approx(0, abs=1e-12)

    files = [str(p) for p in sorted((run_folder / "checkpoints").iterdir())]
    listed = json.loads(runner.invoke(main, ["drift", *files[:5], "--format", "json"]).stdout)
    assert len(listed["checkpoints"]) == 10

    profile = tmp_path / "eq.json"
    runner.invoke(main, ["drift", str(run_folder), "--save-profile", str(profile)])
    against = json.loads(runner.invoke(main, ["drift", str(run_folder), "--equilibrium", str(profile), "--format", "json"]).stdout)
    assert against["equilibrium"] == str(profile)


def test_cli_errors_are_one_line(tmp_path, run_folder):
    runner = CliRunner()
    missing = runner.invoke(main, ["drift", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "nope" in missing.output and "Traceback" not in missing.output
    plain = tmp_path / "plain"
    plain.mkdir()
    not_run = runner.invoke(main, ["drift", str(plain)])
    assert not_run.exit_code == 1 and "not a topo run folder" in not_run.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    wrong = runner.invoke(main, ["drift", str(run_folder), "--equilibrium", str(bad)])
    assert wrong.exit_code == 1 and "bad.json" in wrong.output and wrong.output.count("\n") == 1


def test_cli_does_not_import_torch(run_folder):
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from topo_cli.main import main\n"
        f"r = CliRunner().invoke(main, ['drift', {str(run_folder)!r}, '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(json.dumps('torch' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


def test_labels_use_epochs_and_steps_where_epochs_repeat(run_topologies):
    picked = [run_topologies[0].with_info(epoch=0, step=0), run_topologies[1].with_info(epoch=1, step=5),
              run_topologies[2].with_info(epoch=1, step=10), run_topologies[3].with_info(epoch=2, step=None)]
    result = drift(picked)
    assert result.labels == ["0", "1@5", "1@10", "2"]
    assert result.epochs == [0, 1, 1, 2] and result.steps == [0, 5, 10, None]

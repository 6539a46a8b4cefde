"""Forged `topo predict` model files never run anything.

Each forged file carries a live payload that writes a marker file when it is built; a
control first shows the payload does fire when the file is loaded the unsafe way, then
topo's loader (and `topo predict`) must refuse the file in one line with no marker written.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import topo.predict.bundle as predict_module
from topo.errors import TopoError
from topo.predict import LEGACY_MODEL_HEADER, MODEL_KIND, load_predictor
from topo_cli.main import main

_MARKER_ENV = "TOPO_TEST_PAYLOAD_MARKER"


class MarkerPayload:
    """Writes the marker file named in the environment as soon as its state is set."""

    def __init__(self) -> None:
        self.note = "harmless-looking"

    def __setstate__(self, state):
        Path(os.environ[_MARKER_ENV]).write_text("code ran")
        self.__dict__.update(state)


class _ReducePayload:
    """Unpickling it calls ``os.system`` (a shell command that writes the marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker"
    monkeypatch.setenv(_MARKER_ENV, str(path))
    return path


def _refused_everywhere(model: Path, marker: Path, complaint: str, run: Path) -> None:
    with pytest.raises(TopoError, match=complaint) as err:
        load_predictor(model)
    assert "\n" not in str(err.value) and str(model) in str(err.value)
    result = CliRunner().invoke(main, ["predict", str(model), str(run)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert complaint.split(".")[0].split("(")[0] in result.output
    assert not marker.exists()


def test_old_header_with_a_malicious_pickle_runs_nothing(tmp_path, marker):
    payload = pickle.dumps({"kind": MODEL_KIND, "model": _ReducePayload(marker)})
    model = tmp_path / "model.joblib"
    model.write_bytes(LEGACY_MODEL_HEADER + payload)
    # control: the payload is live
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_ReducePayload(control)))
    assert control.exists()
    _refused_everywhere(model, marker, "written by an older topo", tmp_path)


def test_forged_skops_file_with_an_untrusted_class_runs_nothing(tmp_path, marker):
    import skops.io as sio

    model = tmp_path / "model.skops"
    sio.dump({"kind": MODEL_KIND, "version": 2, "model": MarkerPayload()}, model)
    untrusted = sio.get_untrusted_types(file=model)
    assert any(name.endswith("MarkerPayload") for name in untrusted)
    # control: loaded with that type trusted, the payload fires
    sio.load(model, trusted=untrusted)
    assert marker.exists()
    marker.unlink()
    _refused_everywhere(model, marker, "holds types topo does not trust: .*MarkerPayload", tmp_path)


def test_forged_skops_file_naming_a_dangerous_function_is_refused(tmp_path, marker):
    import skops.io as sio

    model = tmp_path / "model.skops"
    sio.dump({"kind": MODEL_KIND, "version": 2, "model": os.system, "baseline": eval}, model)
    _refused_everywhere(model, marker, "holds types topo does not trust: .*(system|eval)", tmp_path)


def test_model_files_declaring_too_much_are_refused_before_unpacking(tmp_path, monkeypatch):
    model = tmp_path / "model.skops"
    with zipfile.ZipFile(model, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", "{}")
        archive.writestr("big.npy", b"\0" * 2_000_000)
    monkeypatch.setattr(predict_module, "MAX_MODEL_BYTES", 1_000_000)
    with pytest.raises(TopoError, match="unpacks to 2000002 bytes, more than the 1000000 allowed"):
        load_predictor(model)


def test_trusted_types_are_exactly_what_a_fitted_bundle_needs(tmp_path):
    import numpy as np
    import skops.io as sio

    from topo.predict import TRUSTED_TYPES, fit_predictor, save_predictor

    rng = np.random.default_rng(1)
    rows = [{f"x{i}": float(v) for i, v in enumerate(rng.normal(size=3))} for _ in range(12)]
    predictor = fit_predictor(rows, [r["x0"] for r in rows], folds=3, n_estimators=5)
    path = save_predictor(predictor, tmp_path / "model.skops")
    assert sorted(sio.get_untrusted_types(file=path)) == sorted(TRUSTED_TYPES)
    assert load_predictor(path).feature_names == predictor.feature_names

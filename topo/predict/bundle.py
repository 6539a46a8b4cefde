"""Model bundles: a :class:`~topo.predict.models.Predictor` written and read with ``skops.io``, no pickle.

See "Model files" in :mod:`topo.predict`: a bundle is a zip of JSON and ``.npy``
members, loaded only through an allow-list of types, its declared sizes checked first.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from topo.errors import TopoError, first_line
from topo.predict.models import CVScore, Predictor, choose_model

__all__ = [
    "LEGACY_MODEL_HEADER",
    "MODEL_KIND",
    "MODEL_VERSION",
    "TRUSTED_TYPES",
    "MAX_MODEL_BYTES",
    "MAX_MODEL_MEMBERS",
    "save_predictor",
    "load_predictor",
]

#: the first bytes of the pickle-based model files of earlier topo versions (never unpickled)
LEGACY_MODEL_HEADER = b"TOPO-PREDICTOR\x00v1\n"
MODEL_KIND = "topo-structure-predictor"
#: 2: skops, no pickle (1 was a joblib pickle)
MODEL_VERSION = 2
#: types a model file may hold beyond those skops trusts by default (fully qualified names)
TRUSTED_TYPES = ("numpy.dtype", "sklearn.tree._tree.Tree")
#: the most a model file may unpack to (sum of its members' declared sizes)
MAX_MODEL_BYTES = 1 << 30
#: the most members a model file may have
MAX_MODEL_MEMBERS = 200_000



def save_predictor(predictor: Predictor, path: str | os.PathLike) -> Path:
    """Write a model bundle with ``skops.io`` (no pickle), atomically.

    The payload holds the kind marker, the fitted models, feature names, target,
    cross-validation scores, feature options and the topo and scikit-learn versions.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo.predict.models import fit_predictor
    >>> density = np.linspace(0.05, 0.4, 8)
    >>> rows = [{"density": d, "fc1.fan_in_cv": c} for d, c in zip(density, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])]
    >>> predictor = fit_predictor(rows, 0.6 + 0.5 * density, target="test_acc", folds=4, n_estimators=20)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_predictor(predictor, Path(tmp) / "acc.skops")
    ...     print(path.name, path.read_bytes()[:2])
    acc.skops b'PK'
    """
    import zipfile

    import sklearn
    import skops.io as sio

    from topo.atomic import atomic_write_bytes

    payload = {
        "kind": MODEL_KIND,
        "version": MODEL_VERSION,
        "topo_version": predictor.topo_version,
        "sklearn_version": sklearn.__version__,
        "target": predictor.target,
        "feature_names": [str(name) for name in predictor.feature_names],
        "feature_options": _plain(dict(predictor.feature_options)),
        "checkpoint": predictor.checkpoint,
        "model": predictor.model,
        "baseline": predictor.baseline,
        "cv": {
            name: {
                "r2": float(s.r2),
                "fold_r2": [float(x) for x in s.fold_r2],
                "predictions": np.asarray(s.predictions, dtype=np.float64),
            }
            for name, s in predictor.cv.items()
        },
        "importances": {str(k): float(v) for k, v in predictor.importances.items()},
        "n_samples": int(predictor.n_samples),
        "folds": int(predictor.folds),
        "seed": int(predictor.seed),
        "chosen": str(predictor.chosen),
    }
    buffer = io.BytesIO()
    sio.dump(payload, buffer, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def _plain(value: Any) -> Any:
    """Feature options as JSON-like values (what skops stores without custom types)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_archive(data: bytes, path: Path) -> None:
    """A model file must be a zip whose declared sizes fit :data:`MAX_MODEL_BYTES`."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise TopoError(f"corrupt topo model bundle ({exc})", path=path) from None
    if len(members) > MAX_MODEL_MEMBERS:
        raise TopoError(f"model file has {len(members)} members, more than the {MAX_MODEL_MEMBERS} allowed", path=path)
    declared = sum(member.file_size for member in members)
    if declared > MAX_MODEL_BYTES:
        raise TopoError(
            f"model file unpacks to {declared} bytes, more than the {MAX_MODEL_BYTES} allowed", path=path
        )
    if "schema.json" not in {member.filename for member in members}:
        raise TopoError("not a topo model bundle (a zip file, but not a skops model file)", path=path)


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Read a model bundle written by :func:`save_predictor`; nothing in it can run code.

    The file's types are listed before anything is built; any type outside skops'
    default trust and :data:`TRUSTED_TYPES` makes the file refused.

    Raises
    ------
    TopoError
        If the file is missing, too large, written by an older topo (a pickle), names
        an untrusted type, is not a topo model bundle, or is corrupt.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from topo.predict.models import fit_predictor, predict
    >>> density = np.linspace(0.05, 0.4, 8)
    >>> rows = [{"density": d, "fc1.fan_in_cv": c} for d, c in zip(density, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])]
    >>> predictor = fit_predictor(rows, 0.6 + 0.5 * density, target="test_acc", folds=4, n_estimators=20)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = load_predictor(save_predictor(predictor, Path(tmp) / "acc.skops"))
    ...     _ = (Path(tmp) / "notes.skops").write_text("not a model")
    ...     try:
    ...         load_predictor(Path(tmp) / "notes.skops")
    ...     except TopoError as exc:
    ...         print(str(exc).replace(tmp, "<tmp>"))
    <tmp>/notes.skops: not a topo model bundle (not a skops model file)
    >>> loaded.target, loaded.chosen == predictor.chosen, loaded.feature_names == predictor.feature_names
    ('test_acc', True, True)
    >>> bool(np.array_equal(predict(loaded, rows), predict(predictor, rows)))
    True
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise TopoError("no such model file", path=path)
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise TopoError(f"model file is larger than the {MAX_MODEL_BYTES} bytes allowed", path=path)
    data = path.read_bytes()
    if data.startswith(LEGACY_MODEL_HEADER):
        raise TopoError(
            "written by an older topo (a pickle, which topo no longer loads because unpickling can run code); "
            "re-run topo predict fit to write it again",
            path=path,
        )
    if not data.startswith(b"PK"):
        raise TopoError("not a topo model bundle (not a skops model file)", path=path)
    _check_archive(data, path)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a damaged schema fails in many ways
        raise TopoError(f"corrupt topo model bundle ({type(exc).__name__}: {first_line(exc)[:200]})", path=path) from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise TopoError(f"refusing to load a model file that holds types topo does not trust: {shown}", path=path)
    try:
        payload = sio.load(io.BytesIO(data), trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # skops refuses what it does not trust; a damaged file fails in many ways
        raise TopoError(f"corrupt topo model bundle ({type(exc).__name__}: {first_line(exc)[:200]})", path=path) from None
    if not isinstance(payload, dict) or payload.get("kind") != MODEL_KIND:
        raise TopoError("not a topo model bundle (wrong kind)", path=path)
    try:
        return _predictor_from(payload, path)
    except TopoError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TopoError(f"corrupt topo model bundle ({type(exc).__name__}: {first_line(exc)[:200]})", path=path) from None


#: the options of :func:`topo.analysis.structure.structure_features` a bundle may carry, and their types
_FEATURE_OPTIONS = {"graph_metrics": bool, "betweenness_exact_max": int, "betweenness_samples": int, "seed": int}


def _predictor_from(payload: Mapping[str, Any], path: Path) -> Predictor:
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise TopoError("model bundle has no valid version", path=path)
    if version > MODEL_VERSION:
        raise TopoError(f"model bundle version {version} is newer than this topo reads", path=path)
    for key in ("model", "baseline"):
        if not callable(getattr(payload.get(key), "predict", None)):
            raise TopoError(f"model bundle's {key!r} is not a fitted model", path=path)
    names = payload["feature_names"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise TopoError("model bundle's feature names are not a list of names", path=path)
    options = payload.get("feature_options") or {}
    if not isinstance(options, dict):
        raise TopoError("model bundle's feature options are not a mapping", path=path)
    unknown = sorted(set(options) - set(_FEATURE_OPTIONS))
    if unknown:
        raise TopoError(f"model bundle has unknown feature options: {', '.join(map(str, unknown))}", path=path)
    for key, kind in _FEATURE_OPTIONS.items():
        if key in options and not (isinstance(options[key], kind) and (kind is bool or not isinstance(options[key], bool))):
            raise TopoError(f"model bundle's feature option {key!r} has the wrong type", path=path)
    cv = {
        str(name): CVScore(
            r2=float(v["r2"]), fold_r2=[float(x) for x in v["fold_r2"]], predictions=np.asarray(v["predictions"], dtype=np.float64)
        )
        for name, v in dict(payload["cv"]).items()
    }
    chosen = payload.get("chosen")
    if chosen is None:  # files of earlier versions: the choice their scores imply
        chosen = choose_model(cv) if {"boosting", "linear"} <= set(cv) else "boosting"
    if chosen not in ("boosting", "linear"):
        raise TopoError(f"model bundle's chosen model {chosen!r} is neither 'boosting' nor 'linear'", path=path)
    return Predictor(
        model=payload["model"],
        baseline=payload["baseline"],
        feature_names=list(names),
        target=str(payload["target"]),
        cv=cv,
        importances={str(k): float(v) for k, v in dict(payload["importances"]).items()},
        n_samples=int(payload["n_samples"]),
        folds=int(payload["folds"]),
        seed=int(payload["seed"]),
        feature_options=dict(options),
        checkpoint=str(payload.get("checkpoint", "last")),
        topo_version=str(payload.get("topo_version", "")),
        chosen=chosen,
    )

"""Predict a network's performance from its structure alone.

Stier, Darji and Granitzer (2021) predict the accuracy of sparse networks from
graph-theoretic properties of their structure (R² up to 0.81).  Here the features are
:func:`topo.analysis.structure.structure_features` of a checkpoint and the regressor
is whichever of two candidates cross-validates better: scikit-learn's gradient boosting,
or a ridge regression on standardised features (alpha 1).  A model with a worse
cross-validated R² is never chosen (a tie goes to ridge, the simpler one).  R² is
measured by k-fold cross-validation: the R² of the pooled out-of-fold predictions, and
the mean of the per-fold R².

Two baselines are always reported beside the chosen model:

* **density only**: the better of the two candidates fitted to the layer densities
  alone (the ``<layer>.density`` columns, or the network ``density`` where no layer
  column varies; a constant mean predictor where no density varies at all).  Structural
  metrics can carry no more than the density does; the difference between the chosen
  model's R² and this baseline's (:attr:`Predictor.structure_gain`) says how much the
  structure adds.
* **shuffled labels**: the chosen model fitted to targets permuted (seeded) relative to
  the feature rows; it must score R² near or below 0.

Where the best cross-validated R² is below 0 the model predicts worse than the mean of
the training targets, and :attr:`Predictor.warnings` says so.

Both models impute missing values (NaN features) with the training median.  The
feature columns are those every training network has (networks of different depth
share the whole-network features only), minus the columns that are constant or
missing everywhere.

Model files
-----------
A model file holds no pickle. It is written with ``skops.io`` (scikit-learn's
recommended safe persistence: a zip of JSON and ``.npy`` members) and loaded only
through an allow-list of types: the scikit-learn estimators and numpy containers that
skops trusts by default, plus :data:`TRUSTED_TYPES` (the decision trees inside the
boosting model and numpy dtypes). A file that names any other type is refused before
anything in it is built, so a forged model file cannot run code. The declared sizes of
its members are checked against :data:`MAX_MODEL_BYTES` first.

Files written by topo before this format (a pickle behind the 19-byte header
:data:`LEGACY_MODEL_HEADER`) are refused with a message that asks for a new
``topo predict fit``; they are never unpickled.

Training data from a sweep
--------------------------
:func:`sweep_training_data` reads a ``topo sweep`` results table: rows whose status
is ``done``, ``resumed`` or ``skipped`` with a finite target.  ``target="test_acc"``
maps to the column ``final_test_acc`` where that exists (generally ``final_<target>``
first, then ``<target>`` itself, so ``best_val_acc`` works as it is).  The features
come from each run folder's last checkpoint (``checkpoint="first"``: the initial
masks), and are cached in ``<results>.features.csv`` next to the results table, keyed
by run, checkpoint file, its size and modification time and
:data:`topo.analysis.structure.FEATURES_VERSION`, so a second fit on the same sweep
reads them back.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from topo.errors import TopoError

__all__ = [
    "LEGACY_MODEL_HEADER",
    "MODEL_KIND",
    "MAX_MODEL_BYTES",
    "TRUSTED_TYPES",
    "CVScore",
    "Predictor",
    "TrainingData",
    "feature_matrix",
    "density_columns",
    "cross_validate",
    "choose_model",
    "fit_predictor",
    "save_predictor",
    "load_predictor",
    "predict",
    "resolve_target",
    "sweep_training_data",
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
#: statuses of sweep rows whose runs finished
FINISHED = ("done", "resumed", "skipped")


@dataclass(frozen=True)
class CVScore:
    """Cross-validated R² of one model.

    Attributes
    ----------
    r2 : float
        R² of the pooled out-of-fold predictions.
    fold_r2 : list of float
        R² of each fold (NaN for a fold whose targets are constant).
    predictions : numpy.ndarray
        Out-of-fold prediction of every sample.
    """

    r2: float
    fold_r2: list[float]
    predictions: np.ndarray

    @property
    def fold_mean(self) -> float:
        values = np.array(self.fold_r2, dtype=np.float64)
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else float("nan")

    @property
    def fold_std(self) -> float:
        values = np.array(self.fold_r2, dtype=np.float64)
        values = values[np.isfinite(values)]
        return float(values.std()) if values.size else float("nan")


@dataclass
class Predictor:
    """A fitted structure-to-performance model and how well it cross-validated.

    Attributes
    ----------
    model, baseline : sklearn pipelines
        Gradient boosting and the ridge baseline, fitted on all samples.
    feature_names : list of str
        Columns the models take, in order.
    target : str
        What is predicted (the column name in the training table).
    cv : dict of str to CVScore
        ``"boosting"``, ``"linear"``, ``"shuffled"`` (the chosen model on permuted
        targets) and ``"density"`` (the density-only baseline); files of earlier topo
        versions may lack ``"density"``.
    importances : dict of str to float
        Impurity-based feature importances of the boosting model, largest first.
    n_samples, folds, seed : int
    feature_options : dict
        Options the features were computed with (:func:`structure_features`).
    checkpoint : str
        Which checkpoint of a run the features came from (``"last"`` / ``"first"``).
    topo_version : str
        The topo version that fitted it.
    chosen : {"boosting", "linear"}
        The candidate with the better cross-validated R²; :func:`predict` uses it.
    """

    model: Any
    baseline: Any
    feature_names: list[str]
    target: str
    cv: dict[str, CVScore]
    importances: dict[str, float]
    n_samples: int
    folds: int
    seed: int
    feature_options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = "last"
    topo_version: str = ""
    chosen: str = "boosting"

    @property
    def chosen_model(self) -> Any:
        """The fitted pipeline of the chosen candidate."""
        return self.baseline if self.chosen == "linear" else self.model

    @property
    def best_r2(self) -> float:
        """Cross-validated (pooled) R² of the chosen model."""
        return float(self.cv[self.chosen].r2)

    @property
    def structure_gain(self) -> float:
        """Chosen model's cross-validated R² minus the density-only baseline's (NaN if absent)."""
        density = self.cv.get("density")
        return float("nan") if density is None else self.best_r2 - float(density.r2)

    @property
    def warnings(self) -> list[str]:
        """Why the model should not be trusted (empty when nothing is wrong)."""
        found = []
        if not self.best_r2 >= 0:
            found.append(
                f"the best cross-validated R² is {self.best_r2:.3f} (below 0): the model predicts "
                f"{self.target} worse than the mean of the training targets"
            )
        return found


# -- features and models --------------------------------------------------------------
def feature_matrix(
    rows: Sequence[Mapping[str, float]], names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """A float64 matrix of feature rows.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping of feature name to value per sample.
    names : sequence of str, optional
        Columns to take (a fitted model's).  Default: the names every row has, in the
        first row's order, minus those that are missing or constant in all rows.

    Returns
    -------
    (numpy.ndarray, list of str)
        ``[n_samples, n_features]`` (non-finite values as NaN) and the column names.

    Raises
    ------
    TopoError
        If ``names`` is given and a row lacks one of them, or no column is left.
    """
    rows = list(rows)
    if not rows:
        raise TopoError("no feature rows")
    if names is None:
        common = [name for name in rows[0] if all(name in row for row in rows[1:])]
    else:
        common = list(names)
        for index, row in enumerate(rows):
            missing = [name for name in common if name not in row]
            if missing:
                raise TopoError(
                    f"network {index + 1} lacks {len(missing)} feature(s) the model needs, e.g. "
                    f"{', '.join(missing[:3])} (a different architecture than the model was fitted on?)"
                )
    matrix = np.array([[_number(row[name]) for name in common] for row in rows], dtype=np.float64)
    matrix[~np.isfinite(matrix)] = np.nan
    if names is None:
        keep = []
        for column in range(matrix.shape[1]):
            values = matrix[:, column]
            present = values[np.isfinite(values)]
            keep.append(present.size > 0 and np.ptp(present) > 0)
        keep = np.array(keep, dtype=bool)
        matrix = matrix[:, keep]
        common = [name for name, k in zip(common, keep) if k]
        if not common:
            raise TopoError("no feature varies between the networks; nothing to learn from")
    return matrix, common


def density_columns(names: Sequence[str]) -> list[int]:
    """Indices of the density features among ``names``.

    The per-layer densities (``<layer>.density``); where none is present, the network
    ``density``; empty where neither is.
    """
    names = list(names)
    layers = [i for i, name in enumerate(names) if name.endswith(".density")]
    if layers:
        return layers
    return [i for i, name in enumerate(names) if name == "density"]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _models(seed: int, n_estimators: int = 300):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    boosting = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        # the learning rate shrinks with the number of trees, keeping their total weight at 15
        GradientBoostingRegressor(
            n_estimators=n_estimators, learning_rate=min(1.0, 15.0 / n_estimators), max_depth=3, subsample=0.8,
            random_state=seed,
        ),
    )
    linear = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), Ridge(alpha=1.0)
    )
    return boosting, linear


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0:
        return float("nan")
    return 1.0 - float(np.sum((y - predicted) ** 2)) / total


def _cross_val(model, X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> CVScore:
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    predictions = np.empty_like(y)
    fold_r2 = []
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(X):
        fitted = clone(model).fit(X[train], y[train])
        predictions[test] = fitted.predict(X[test])
        fold_r2.append(_r2(y[test], predictions[test]) if test.size > 1 else float("nan"))
    return CVScore(r2=_r2(y, predictions), fold_r2=fold_r2, predictions=predictions)


def _check_xy(X: Any, y: Any, folds: int) -> tuple[np.ndarray, np.ndarray, int]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.size:
        raise TopoError(f"features are {X.shape} but there are {y.size} targets")
    if not np.all(np.isfinite(y)):
        raise TopoError("targets must be finite numbers")
    if y.size < 4:
        raise TopoError(f"need at least 4 networks to cross-validate, got {y.size}")
    folds = int(folds)
    if folds < 2:
        raise TopoError(f"folds must be at least 2, got {folds}")
    return X, y, min(folds, y.size)


def cross_validate(
    X: Any,
    y: Any,
    *,
    folds: int = 5,
    seed: int = 0,
    n_estimators: int = 300,
    feature_names: Sequence[str] | None = None,
) -> dict[str, CVScore]:
    """k-fold cross-validated R² of both candidates and of the two baselines.

    Parameters
    ----------
    X : array-like, shape ``[n_samples, n_features]``
    y : array-like, shape ``[n_samples]``
    folds : int
        k (at most the number of samples); the folds are shuffled with ``seed``.
    seed : int
        Seeds the folds, the boosting model and the control's permutation.
    n_estimators : int
        Trees of the boosting model (depth 3, subsample 0.8, learning rate
        ``15 / n_estimators``: 0.05 at the default 300).
    feature_names : sequence of str, optional
        Names of the columns of ``X``; the density-only baseline uses the columns
        :func:`density_columns` picks (a constant mean predictor where there are none).
        Without names there is no ``"density"`` entry.

    Returns
    -------
    dict of str to CVScore
        ``"boosting"``, ``"linear"``, ``"shuffled"`` (the better of the two, by
        :func:`choose_model`, fitted to targets permuted relative to the feature rows)
        and, with ``feature_names``, ``"density"`` (the better candidate on the density
        columns alone).

    Raises
    ------
    TopoError
        For mismatched shapes, non-finite targets, fewer than 4 samples or ``folds < 2``.
    """
    X, y, folds = _check_xy(X, y, folds)
    if int(n_estimators) < 1:
        raise TopoError(f"n_estimators must be at least 1, got {n_estimators}")
    if feature_names is not None and len(feature_names) != X.shape[1]:
        raise TopoError(f"{len(feature_names)} feature names for {X.shape[1]} feature columns")
    boosting, linear = _models(seed, int(n_estimators))
    scores = {
        "boosting": _cross_val(boosting, X, y, folds, seed),
        "linear": _cross_val(linear, X, y, folds, seed),
    }
    chosen = choose_model(scores)
    permuted = y[np.random.default_rng(seed).permutation(y.size)]
    scores["shuffled"] = _cross_val(linear if chosen == "linear" else boosting, X, permuted, folds, seed)
    if feature_names is not None:
        columns = density_columns(feature_names)
        if columns:
            density = {
                "boosting": _cross_val(boosting, X[:, columns], y, folds, seed),
                "linear": _cross_val(linear, X[:, columns], y, folds, seed),
            }
            scores["density"] = density[choose_model(density)]
        else:
            # no density varies: the best a density-only model can do is the training mean
            from sklearn.dummy import DummyRegressor

            scores["density"] = _cross_val(DummyRegressor(strategy="mean"), X[:, :1], y, folds, seed)
    return scores


def choose_model(scores: Mapping[str, CVScore]) -> str:
    """The candidate (``"boosting"`` or ``"linear"``) with the higher cross-validated R².

    A NaN score never wins; a tie goes to ``"linear"``, the simpler model.
    """
    boosting = float(scores["boosting"].r2)
    linear = float(scores["linear"].r2)
    if math.isnan(linear):
        return "boosting" if not math.isnan(boosting) else "linear"
    return "boosting" if boosting > linear else "linear"


def fit_predictor(
    rows: Sequence[Mapping[str, float]],
    y: Any,
    *,
    target: str = "target",
    folds: int = 5,
    seed: int = 0,
    feature_options: Mapping[str, Any] | None = None,
    checkpoint: str = "last",
    n_estimators: int = 300,
) -> Predictor:
    """Cross-validate, choose the better candidate, then fit both on all samples.

    Parameters
    ----------
    rows : sequence of mapping
        Feature rows (:func:`topo.analysis.structure.structure_features` output).
    y : array-like
        The target of each row.
    target : str
        Its name, kept with the model.
    folds, seed, n_estimators
        See :func:`cross_validate`.
    feature_options : mapping, optional
        The options the features were computed with; predictions use the same.
    checkpoint : str
        Which checkpoint the features came from (kept as a note).

    Returns
    -------
    Predictor
    """
    from topo._version import __version__

    X, names = feature_matrix(rows)
    X, y, folds = _check_xy(X, y, folds)
    scores = cross_validate(X, y, folds=folds, seed=seed, n_estimators=n_estimators, feature_names=names)
    boosting, linear = _models(seed, int(n_estimators))
    boosting.fit(X, y)
    linear.fit(X, y)
    raw = boosting[-1].feature_importances_
    order = np.argsort(-raw, kind="stable")
    importances = {names[i]: float(raw[i]) for i in order}
    return Predictor(
        model=boosting,
        baseline=linear,
        feature_names=names,
        target=str(target),
        cv=scores,
        importances=importances,
        n_samples=int(y.size),
        folds=folds,
        seed=int(seed),
        feature_options=dict(feature_options or {}),
        checkpoint=str(checkpoint),
        topo_version=__version__,
        chosen=choose_model(scores),
    )


# -- model files ----------------------------------------------------------------------
def save_predictor(predictor: Predictor, path: str | os.PathLike) -> Path:
    """Write a model bundle with ``skops.io`` (no pickle), atomically.

    The payload holds the kind marker, the fitted models, feature names, target,
    cross-validation scores, feature options and the topo and scikit-learn versions.

    Returns
    -------
    pathlib.Path
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
        raise TopoError(f"corrupt topo model bundle ({type(exc).__name__}: {_first_line(exc)})", path=path) from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise TopoError(f"refusing to load a model file that holds types topo does not trust: {shown}", path=path)
    try:
        payload = sio.load(io.BytesIO(data), trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # skops refuses what it does not trust; a damaged file fails in many ways
        raise TopoError(f"corrupt topo model bundle ({type(exc).__name__}: {_first_line(exc)})", path=path) from None
    if not isinstance(payload, dict) or payload.get("kind") != MODEL_KIND:
        raise TopoError("not a topo model bundle (wrong kind)", path=path)
    try:
        return _predictor_from(payload, path)
    except TopoError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TopoError(f"corrupt topo model bundle ({type(exc).__name__}: {_first_line(exc)})", path=path) from None


#: the options of :func:`topo.analysis.structure.structure_features` a bundle may carry, and their types
_FEATURE_OPTIONS = {"graph_metrics": bool, "betweenness_exact_max": int, "betweenness_samples": int, "seed": int}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


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


def predict(
    predictor: Predictor,
    items: Sequence[Any],
    *,
    baseline: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Predict the target of networks.

    Parameters
    ----------
    predictor : Predictor
    items : sequence
        Topologies, checkpoint paths / run folders, or feature mappings.
    baseline : bool
        Use the ridge model whichever was chosen (default: the chosen model).
    workers : int
        Local processes for computing features of paths.
    progress : callable, optional

    Returns
    -------
    numpy.ndarray of float64

    Raises
    ------
    TopoError
        If a network lacks features the model needs.
    """
    from topo.analysis.structure import feature_table

    items = list(items)
    if all(isinstance(item, Mapping) for item in items):
        rows = items
    else:
        from topo.runs import load_topology

        rows = feature_table(items, load=load_topology, workers=workers, progress=progress, **predictor.feature_options)
    X, _ = feature_matrix(rows, predictor.feature_names)
    model = predictor.baseline if baseline else predictor.chosen_model
    return np.asarray(model.predict(X), dtype=np.float64)


# -- training data from a sweep -------------------------------------------------------
@dataclass
class TrainingData:
    """Feature rows and targets of a sweep's finished runs.

    Attributes
    ----------
    rows : list of dict
        Features of each run.
    y : numpy.ndarray
        Targets.
    run_ids : list of str
    target_column : str
        The results column the targets came from.
    cache_path : pathlib.Path or None
        The features cache, where one was used.
    skipped : list of str
        Why rows were left out (``"<run_id>: <reason>"``).
    computed : int
        How many feature rows were computed (the rest came from the cache).
    """

    rows: list[dict[str, float]]
    y: np.ndarray
    run_ids: list[str]
    target_column: str
    cache_path: Path | None
    skipped: list[str]
    computed: int


def resolve_target(columns: Sequence[str], target: str) -> str:
    """The results column for ``target``: ``final_<target>`` where it exists, else ``target``.

    Raises
    ------
    TopoError
        If neither column exists.
    """
    columns = list(columns)
    for candidate in (f"final_{target}", target):
        if candidate in columns:
            return candidate
    known = [c for c in columns if c.endswith("_acc") or c.startswith(("final_", "best_"))]
    raise TopoError(f"no column for target {target!r} (looked for final_{target} and {target}); try one of {', '.join(known) or 'none'}")


def _run_folder(row: Mapping[str, str], results: Path) -> Path | None:
    candidates = []
    if row.get("run_dir"):
        candidates.append(Path(row["run_dir"]))
        candidates.append(results.parent / row["run_dir"])
    if row.get("run_id"):
        candidates.append(results.parent / "runs" / row["run_id"])
    for candidate in candidates:
        if (candidate / "run.json").is_file() or (candidate / "checkpoints").is_dir():
            return candidate
    return None


def _cache_key(run_id: str, checkpoint: Path) -> dict[str, str]:
    from topo.analysis.structure import FEATURES_VERSION

    stat = checkpoint.stat()
    return {
        "run_id": run_id,
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_size": str(stat.st_size),
        "checkpoint_mtime_ns": str(stat.st_mtime_ns),
        "features_version": str(FEATURES_VERSION),
    }


_KEY_COLUMNS = ("run_id", "checkpoint", "checkpoint_size", "checkpoint_mtime_ns", "features_version")


def _read_cache(path: Path) -> dict[tuple[str, ...], dict[str, float]]:
    if not path.is_file():
        return {}
    cached: dict[tuple[str, ...], dict[str, float]] = {}
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                key = tuple(row.get(c) or "" for c in _KEY_COLUMNS)
                cached[key] = {
                    name: _number(value) for name, value in row.items() if name not in _KEY_COLUMNS and value not in ("", None)
                }
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}  # an unreadable cache is recomputed, not an error
    return cached


def _write_cache(path: Path, entries: Sequence[tuple[dict[str, str], dict[str, float]]]) -> None:
    from topo.atomic import atomic_write_text

    names: list[str] = []
    seen: set[str] = set()
    for _, features in entries:
        for name in features:
            if name not in seen:
                seen.add(name)
                names.append(name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_KEY_COLUMNS, *names])
    for key, features in entries:
        cells = []
        for name in names:
            value = features.get(name)
            cells.append("" if value is None or not math.isfinite(value) else repr(float(value)))
        writer.writerow([key[c] for c in _KEY_COLUMNS] + cells)
    atomic_write_text(path, buffer.getvalue())


def sweep_training_data(
    results_csv: str | os.PathLike,
    *,
    target: str = "test_acc",
    checkpoint: str = "last",
    cache: bool = True,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    feature_options: Mapping[str, Any] | None = None,
) -> TrainingData:
    """Features and targets of the finished runs of a ``topo sweep`` results table.

    Parameters
    ----------
    results_csv : path-like
        The sweep's ``results.csv``.
    target : str
        See :func:`resolve_target`.
    checkpoint : {"last", "first"}
        The run's final checkpoint, or its initial masks (``epoch_0000``).
    cache : bool
        Read and update ``<results stem>.features.csv`` beside the table (only with
        the default ``feature_options``).
    workers : int
        Local processes for the features.
    progress : callable, optional
        ``progress(done, total)`` over the feature computations.
    feature_options : mapping, optional
        Passed to :func:`structure_features`.

    Returns
    -------
    TrainingData

    Raises
    ------
    TopoError
        If the table cannot be read, lacks the target, or no run is usable.
    """
    from topo.analysis.structure import feature_table
    from topo.checkpoint import list_checkpoints

    if checkpoint not in ("last", "first"):
        raise TopoError(f"checkpoint must be 'last' or 'first', got {checkpoint!r}")
    results = Path(results_csv)
    if not results.is_file():
        raise TopoError("no such results table", path=results)
    try:
        with open(results, newline="") as handle:
            reader = csv.DictReader(handle)
            table = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise TopoError(f"cannot read the results table ({exc})", path=results) from None
    if "run_id" not in columns or ("run_dir" not in columns and "run_id" not in columns):
        raise TopoError("not a topo sweep results table (no run_id / run_dir columns)", path=results)
    target_column = resolve_target(columns, target)

    skipped: list[str] = []
    jobs: list[tuple[str, Path, float]] = []
    for row in table:
        run_id = row.get("run_id") or "?"
        status = row.get("status")
        if status is not None and status not in FINISHED:
            skipped.append(f"{run_id}: status {status}")
            continue
        value = _number(row.get(target_column))
        if not math.isfinite(value):
            skipped.append(f"{run_id}: no {target_column}")
            continue
        folder = _run_folder(row, results)
        if folder is None:
            skipped.append(f"{run_id}: run folder not found")
            continue
        try:
            found = list_checkpoints(folder, include_steps=False)
        except TopoError:
            found = []
        if not found:
            skipped.append(f"{run_id}: no checkpoint")
            continue
        jobs.append((run_id, found[-1] if checkpoint == "last" else found[0], value))
    if not jobs:
        raise TopoError(f"no finished run with a {target_column} and a checkpoint", path=results)

    # the cache holds features computed with the default options only
    cache_path = results.with_name(results.stem + ".features.csv") if cache and not feature_options else None
    cached = _read_cache(cache_path) if cache_path is not None else {}
    keys = [_cache_key(run_id, path) for run_id, path, _ in jobs]
    rows: list[dict[str, float] | None] = []
    missing: list[int] = []
    for index, key in enumerate(keys):
        hit = cached.get(tuple(key[c] for c in _KEY_COLUMNS))
        rows.append(hit)
        if hit is None:
            missing.append(index)
    if missing:
        from topo.runs import load_topology

        fresh = feature_table(
            [str(jobs[i][1]) for i in missing], load=load_topology, workers=workers, progress=progress, **dict(feature_options or {})
        )
        for index, features in zip(missing, fresh):
            rows[index] = features
        if cache_path is not None:
            _write_cache(cache_path, list(zip(keys, rows)))  # type: ignore[arg-type]
    elif progress is not None:
        progress(len(jobs), len(jobs))
    return TrainingData(
        rows=[dict(r) for r in rows if r is not None],
        y=np.array([value for _, _, value in jobs], dtype=np.float64),
        run_ids=[run_id for run_id, _, _ in jobs],
        target_column=target_column,
        cache_path=cache_path,
        skipped=skipped,
        computed=len(missing),
    )

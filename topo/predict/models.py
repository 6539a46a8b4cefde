"""Model selection and baselines: cross-validated candidates, the chosen model, and predictions.

Two candidates (gradient boosting; ridge on standardised features) are cross-validated,
the better one is chosen (:func:`choose_model`), and two baselines are measured beside
it: the density-only model and the chosen model on shuffled targets (see
:mod:`topo.predict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from topo.errors import TopoError
from topo.predict.features import density_columns, feature_matrix
from topo.progress import ProgressCallback

__all__ = ["CVScore", "Predictor", "cross_validate", "choose_model", "fit_predictor", "predict"]


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

    Examples
    --------
    >>> import numpy as np
    >>> score = CVScore(r2=0.8, fold_r2=[0.7, 0.9, float("nan")], predictions=np.zeros(3))
    >>> round(score.fold_mean, 3), round(score.fold_std, 3)
    (0.8, 0.1)
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

    Examples
    --------
    A Predictor comes from :func:`fit_predictor` (or :func:`~topo.predict.bundle.load_predictor`):

    >>> import numpy as np
    >>> density = np.linspace(0.05, 0.4, 8)
    >>> rows = [{"fc1.density": d, "fc1.fan_in_cv": c} for d, c in zip(density, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])]
    >>> predictor = fit_predictor(rows, 0.6 + 0.5 * density, target="test_acc", folds=4, n_estimators=20)
    >>> predictor.chosen, predictor.feature_names, predictor.n_samples
    ('linear', ['fc1.density', 'fc1.fan_in_cv'], 8)
    >>> predictor.best_r2 > 0.9, predictor.warnings
    (True, [])
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

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.linspace(0.05, 0.4, 8), [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4]])
    >>> y = 0.6 + 0.5 * X[:, 0]
    >>> scores = cross_validate(X, y, folds=4, n_estimators=20, feature_names=["fc1.density", "fc1.fan_in_cv"])
    >>> sorted(scores)
    ['boosting', 'density', 'linear', 'shuffled']
    >>> scores["linear"].r2 > 0.9, scores["shuffled"].r2 < scores["linear"].r2
    (True, True)
    >>> len(scores["linear"].fold_r2), scores["linear"].predictions.shape
    (4, (8,))
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

    Examples
    --------
    >>> import numpy as np
    >>> def score(r2):
    ...     return CVScore(r2=r2, fold_r2=[r2], predictions=np.zeros(1))
    >>> choose_model({"boosting": score(0.7), "linear": score(0.5)})
    'boosting'
    >>> choose_model({"boosting": score(0.5), "linear": score(0.5)})
    'linear'
    >>> choose_model({"boosting": score(0.2), "linear": score(float("nan"))})
    'boosting'
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

    Examples
    --------
    >>> import numpy as np
    >>> density = np.linspace(0.05, 0.4, 8)
    >>> rows = [{"density": d, "fc1.fan_in_cv": c} for d, c in zip(density, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])]
    >>> predictor = fit_predictor(rows, 0.6 + 0.5 * density, target="test_acc", folds=4, n_estimators=20)
    >>> predictor.target, predictor.folds, sorted(predictor.cv), list(predictor.importances)[0]
    ('test_acc', 4, ['boosting', 'density', 'linear', 'shuffled'], 'density')
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


def predict(
    predictor: Predictor,
    items: Sequence[Any],
    *,
    baseline: bool = False,
    workers: int = 1,
    progress: ProgressCallback | None = None,
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

    Examples
    --------
    >>> import numpy as np
    >>> density = np.linspace(0.05, 0.4, 8)
    >>> rows = [{"density": d, "fc1.fan_in_cv": c} for d, c in zip(density, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])]
    >>> predictor = fit_predictor(rows, 0.6 + 0.5 * density, folds=4, n_estimators=20)
    >>> predicted = predict(predictor, [{"density": 0.1, "fc1.fan_in_cv": 0.5}, {"density": 0.3, "fc1.fan_in_cv": 0.5}])
    >>> predicted.shape, bool(predicted[1] > predicted[0])
    ((2,), True)
    >>> predict(predictor, [{"density": 0.1}])
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: network 1 lacks 1 feature(s) the model needs, e.g. fc1.fan_in_cv (a different architecture than the model was fitted on?)
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

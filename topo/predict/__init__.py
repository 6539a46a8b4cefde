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

The package, one module per purpose: :mod:`~topo.predict.features` (the features
table and a sweep's training data), :mod:`~topo.predict.models` (candidates, baselines,
the chosen model, predictions) and :mod:`~topo.predict.bundle` (model files).
"""

from __future__ import annotations

from topo.predict.bundle import LEGACY_MODEL_HEADER, MAX_MODEL_BYTES, MODEL_KIND, TRUSTED_TYPES, load_predictor, save_predictor
from topo.predict.features import TrainingData, density_columns, feature_matrix, resolve_target, sweep_training_data
from topo.predict.models import CVScore, Predictor, choose_model, cross_validate, fit_predictor, predict

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

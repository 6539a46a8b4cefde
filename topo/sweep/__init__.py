"""Sweeps: a grid of training runs from one TOML spec, resumable, with one results table.

A *spec* names the runs::

    [sweep]
    name = "tiny"                  # default: the spec file's name
    out = "runs/sweeps/tiny"       # default: runs/sweeps/<name>; relative to the current folder

    [base]                         # TrainConfig fields shared by every run
    dataset = "digits"
    hidden = [16]
    epochs = 2

    [grid]                         # lists; their cartesian product gives the runs
    method = ["static", "rigl"]
    seed = [0, 1]

    [[include]]                    # optional extra runs, each merged over [base]
    method = "set"

Keys are :class:`~topo.training.config.TrainConfig` fields (``out`` excepted: the
sweep places each run). Values have the field's type; for a field that may be unset
(``cv``, ``init``, ``threads``, ...) the string ``"none"`` unsets it, e.g.
``cv = ["none", 0.5]``. ``hidden`` takes ``[256, 256]`` or ``"256,256"`` (in
``[grid]``, a list of those). The grid's first key varies slowest.

Combinations that are invalid by construction are skipped with a note
(:attr:`SweepResult.notes`), not raised: a grid of ``profile = ["random",
"lognormal"]`` and ``cv = [0.5, 1.0]`` runs the lognormal profile at both CVs and
skips ``random`` (which takes no cv). Add such a baseline with ``cv = ["none", ...]``
in the grid or with an ``[[include]]`` table. The rules (only where ``init`` is
unset, since an equilibrium init sets every layer's profile itself): ``random``
takes no cv, ``constant`` no cv other than 0, and every parametric profile needs
one. An ``[[include]]`` table that breaks them is an error, as is any other bad
value: every expanded configuration is checked before any run starts.

Run folders are ``OUT/runs/<run_id>``: ``run_id`` is a readable name (the values of
the keys that vary: the grid's and the includes') and 8 hex digits of a SHA-256 of
the whole configuration, minus the fields that say where or how a run trains rather
than what it trains (``out``, ``data_dir``, ``threads``, ``device``). The same spec
gives the same ids, so running a sweep again

- skips a run whose metrics reached the configuration's total epochs (status
  ``skipped``; its figures are read back, not recomputed, when nothing changed),
- resumes a run folder that has training state but is unfinished
  (:func:`topo.training.trainer.resume`; status ``resumed``),
- deletes and restarts a run folder without state (the run crashed before its first
  checkpointed state); new runs get status ``done``.

These rules are :func:`topo.training.trainer.train_or_resume`'s; a non-empty folder
there that is not a topo run, or a run of another configuration, is the run's error
(left alone, not deleted).

A run that fails (a :class:`~topo.errors.TopoError` such as a loss that became NaN,
or any other exception) gets status ``error`` and its message; the sweep goes on.
Runs that have not finished yet are listed as ``pending``.

Results: ``OUT/results.csv``, rewritten atomically whenever a run finishes, so an
interrupted sweep keeps what finished. One row per run: ``run_id``, ``name``,
``status``, every configuration field named in the spec (grid keys first, then
include keys, then base keys), ``final_val_acc``, ``final_test_acc``,
``best_val_acc`` (over the trained epochs), ``epochs_done``, then per layer
``fan_in_cv_<layer>`` (of the final checkpoint), ``converged_<layer>`` (the epoch
from which the layer's fan-in stays within the tolerance of its equilibrium,
:func:`topo.analysis.drift.drift` with its defaults over all the run's checkpoints;
empty when it has not converged), ``grad_concentration_<layer>``
(:func:`topo.analysis.gradients.gradient_concentration` of the final checkpoint),
``neurons_removed_<layer>`` (neurons with no input and no output at the end; see
:func:`topo.analysis.degree.present_neurons`), ``run_dir`` and ``error``; after
``epochs_done`` comes ``exploration_rate``, the share of all possible connections
active in at least one checkpoint (:func:`topo.analysis.exploration.exploration`).
Each run's row is also kept as
``OUT/summaries/<run_id>.json``.

Runs execute through :func:`topo.parallel.map_jobs`: in this process, in local
processes (torch then uses one thread per run), or on a Dask cluster whose workers
see ``OUT`` at the same path.

The package, one module per purpose: :mod:`~topo.sweep.spec` (the TOML spec),
:mod:`~topo.sweep.grid` (its runs, named and validated), :mod:`~topo.sweep.job` (one
run in a worker, its summary), :mod:`~topo.sweep.results` (the results table) and
:mod:`~topo.sweep.execute` (:func:`run_sweep`).
"""

from __future__ import annotations

from topo.sweep.execute import SweepResult, run_sweep
from topo.sweep.grid import SweepRun, expand_grid, run_id_for
from topo.sweep.results import STATUSES, results_columns
from topo.sweep.spec import SweepSpec, parse_sweep_spec, read_sweep_spec
from topo.training.config import IDENTITY_EXCLUDED

__all__ = [
    "SweepSpec",
    "SweepRun",
    "SweepResult",
    "STATUSES",
    "IDENTITY_EXCLUDED",
    "read_sweep_spec",
    "parse_sweep_spec",
    "expand_grid",
    "run_id_for",
    "run_sweep",
    "results_columns",
]

"""Hyperparameter search scored by inner cross-validation on training songs only.

* :mod:`~merkit.tuning.space` — the search-space YAML schema and the spaces shipped in
  ``merkit/spaces`` (``--space paper``).
* :mod:`~merkit.tuning.search` — Optuna trials, inner stratified K-fold, epoch-level pruning
  of deep methods, trials persisted in the study's storage.
* :mod:`~merkit.tuning.nested` — ``tune:`` in a method's settings: the search inside each outer
  training fold (:class:`~merkit.tuning.nested.TunedEstimator`).
* :mod:`~merkit.tuning.run` — ``merkit tune``: search a dataset, write the best settings as a
  ``--config`` YAML.
"""

from __future__ import annotations

from merkit.tuning.nested import TunedEstimator, resolve_tuned, split_tune
from merkit.tuning.space import SearchSpace, load_space, parse_space

__all__ = [
    "SearchSpace",
    "TunedEstimator",
    "load_space",
    "parse_space",
    "resolve_tuned",
    "split_tune",
]

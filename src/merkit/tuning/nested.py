"""Nested tuning: the search inside every outer training fold, as an ordinary estimator.

A method's settings with ``tune: {space: …, trials: N}`` resolve (:func:`resolve_tuned`) to a
:class:`TunedEstimator` around the method: its ``fit`` runs the search by inner cross-validation
on the songs it is given — the outer fold's training songs, since the protocol splits first —
then refits the best settings on all of them. The outer test fold never takes part in the
choice, so the outer score is an honest estimate of "this method, tuned" (Cawley & Talbot,
JMLR 2010; Varma & Simon, BMC Bioinformatics 2006).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from merkit.core.errors import ConfigError
from merkit.core.protocols import PredictsDetails
from merkit.methods import ResolvedMethod, resolve_method
from merkit.tuning.search import SearchTask, best_point, inner_folds, run_search
from merkit.tuning.space import SearchSpace, load_space, with_sampler

TUNE_KEYS = ("space", "trials", "sampler", "inner_folds", "inner_repeats")


class TunedEstimator(ClassifierMixin, BaseEstimator, PredictsDetails):
    """A method whose settings are chosen in ``fit`` by an inner-CV search on the fit's data.

    Parameters
    ----------
    method : str
        The registered method.
    settings : dict
        Its fixed settings (without ``tune``).
    space : str or dict
        A space YAML path, ``"paper"`` (the shipped space), or an inline space mapping.
    trials : int, optional
        Trials per fit (default: the space's ``trials``, else its whole grid).
    sampler : str, optional
        ``grid``, ``tpe`` or ``random`` instead of the space's.
    inner_folds, inner_repeats : int, optional
        Override the space's inner cross-validation.
    quick : bool
        Apply the method's smoke-run settings.
    random_state : int
        Seeds the inner folds, the sampler and the refit (the protocol sets it per outer fold).

    Attributes
    ----------
    best_params_ : dict
        The chosen point of the space.
    best_score_ : float
        Its inner-CV macro F1.
    best_estimator_ : estimator
        The method refitted with the chosen settings on all the fit's data.
    classes_ : ndarray
    """

    def __init__(
        self,
        method: str,
        settings: dict[str, Any] | None = None,
        space: str | dict[str, Any] = "paper",
        trials: int | None = None,
        sampler: str | None = None,
        inner_folds: int | None = None,
        inner_repeats: int | None = None,
        quick: bool = False,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.settings = settings
        self.space = space
        self.trials = trials
        self.sampler = sampler
        self.inner_folds = inner_folds
        self.inner_repeats = inner_repeats
        self.quick = quick
        self.random_state = random_state

    def _space(self) -> SearchSpace:
        space = with_sampler(load_space(self.space, self.method), self.sampler)
        changes = {
            key: value
            for key, value in (
                ("inner_folds", self.inner_folds),
                ("inner_repeats", self.inner_repeats),
            )
            if value is not None
        }
        if changes:
            from dataclasses import replace

            space = replace(space, **changes)
        return space

    def _resolved(self, settings: Mapping[str, Any]) -> ResolvedMethod:
        return resolve_method(self.method, settings, quick=self.quick)

    def fit(self, X: Any, y: Any) -> TunedEstimator:
        """Search on ``(X, y)`` by inner cross-validation, then refit the best on all of it."""
        y = np.asarray(y)
        space = self._space()
        probe = self._resolved(copy.deepcopy(self.settings or {}))
        # The protocol hands a multi-input method a dict keyed by role; trials read inputs
        # keyed by input name.
        if probe.roles is None:
            inputs = {probe.inputs[0]: X}
        else:
            inputs = {name: X[role] for role, name in zip(probe.roles, probe.inputs, strict=True)}
        seed = int(self.random_state)
        task = SearchTask(
            method=self.method,
            base_settings=dict(self.settings or {}),
            space=space,
            inputs=inputs,
            labels=y,
            folds=tuple(
                inner_folds(y, n_splits=space.inner_folds, n_repeats=space.inner_repeats, seed=seed)
            ),
            seed=seed,
            quick=self.quick,
        )
        study = run_search(task, space.n_trials(self.trials), study_name="nested")
        self.best_params_, self.best_score_ = best_point(study)
        self.n_trials_ = len(study.trials)
        best = self._resolved(task.settings(self.best_params_))
        model = clone(best.estimator)
        seeds = {k: seed for k in model.get_params() if k.split("__")[-1] == "random_state"}
        if seeds:
            model.set_params(**seeds)
        model.fit(X, y)
        self.best_estimator_ = model
        self.classes_ = getattr(model, "classes_", np.unique(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.best_estimator_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.best_estimator_.predict_proba(X)

    def predict_details(self, X: Any, y: Any) -> tuple[Any, np.ndarray, dict[str, Any]]:
        """Song-level answers plus what the fold's record keeps: the chosen settings and their
        inner F1 (and the inner method's own details, e.g. chunk accuracy)."""
        inner = self.best_estimator_
        extras: dict[str, Any] = {}
        if hasattr(inner, "predict_details"):
            proba, predicted, extras = inner.predict_details(X, y)
            extras = dict(extras or {})
        else:
            proba = inner.predict_proba(X) if hasattr(inner, "predict_proba") else None
            predicted = inner.predict(X)
        extras["tuned"] = {
            "params": self.best_params_,
            "inner_f1": self.best_score_,
            "trials": self.n_trials_,
        }
        return proba, np.asarray(predicted), extras


def split_tune(settings: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A method's settings without ``tune``, and the ``tune`` mapping (None when absent).

    Raises
    ------
    ConfigError
        ``tune`` is not a mapping or has an unknown key (naming it).
    """
    settings = dict(settings or {})
    tune = settings.pop("tune", None)
    if tune is None:
        return settings, None
    if isinstance(tune, str | Path):
        tune = {"space": str(tune)}
    if not isinstance(tune, Mapping):
        raise ConfigError(
            f"setting 'tune' must be a mapping such as {{space: paper}}, not {tune!r}"
        )
    unknown = [key for key in tune if key not in TUNE_KEYS]
    if unknown:
        raise ConfigError(
            f"setting 'tune': unknown key {unknown[0]!r} (allowed: {', '.join(TUNE_KEYS)})"
        )
    return settings, dict(tune)


def resolve_tuned(
    name: str, settings: Mapping[str, Any] | None = None, *, quick: bool = False
) -> ResolvedMethod:
    """:func:`~merkit.methods.resolve_method`, plus nested tuning when settings hold ``tune``.

    With ``tune: {space: …, trials: N, inner_folds: K}`` the estimator is a
    :class:`TunedEstimator`; the space is checked against the method before any work (a setting
    the method does not accept fails now, naming it). The recorded settings keep ``tune``, so a
    results folder tells a nested-tuned run from a plain one.
    """
    from merkit.tuning.search import validate_space

    base, tune = split_tune(settings)
    resolved = resolve_method(name, base, quick=quick)
    if tune is None:
        return resolved
    space_spec = tune.get("space", "paper")
    if isinstance(space_spec, Path):
        space_spec = str(space_spec)
    space = with_sampler(load_space(space_spec, name), tune.get("sampler"))
    validate_space(name, space, base, quick=quick)
    trials = tune.get("trials")
    if trials is not None and (
        isinstance(trials, bool) or not isinstance(trials, int) or trials < 1
    ):
        raise ConfigError(f"setting 'tune.trials' must be a positive integer, got {trials!r}")
    space.n_trials(trials)  # a sampler without a trial budget fails now
    estimator = TunedEstimator(
        method=name,
        settings=base,
        space=space_spec if not isinstance(space_spec, Mapping) else dict(space_spec),
        trials=trials,
        sampler=tune.get("sampler"),
        inner_folds=tune.get("inner_folds"),
        inner_repeats=tune.get("inner_repeats"),
        quick=quick,
    )
    shown = dict(space_spec) if isinstance(space_spec, Mapping) else str(space_spec)
    recorded = {**resolved.settings, "tune": {**tune, "space": shown}}
    return ResolvedMethod(resolved.spec, resolved.inputs, resolved.roles, estimator, recorded)


def is_nested_tuned(settings: Mapping[str, Any] | None) -> bool:
    """Whether a method's recorded settings say it was tuned inside each outer fold."""
    return bool(settings) and "tune" in settings  # type: ignore[operator]


__all__ = ["TunedEstimator", "is_nested_tuned", "resolve_tuned", "split_tune"]

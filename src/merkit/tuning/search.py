"""The search: Optuna trials over a method's settings, each scored by inner cross-validation.

A trial resolves the method at one point of the space (:func:`merkit.methods.resolve_method`
validates it), fits it on the inner training folds of the rows it is given and scores macro F1
on the inner test folds; nothing else is read, so rows a caller keeps out (an outer test fold)
never influence the choice. Deep methods report each epoch's inner-validation F1 to the trial,
and Optuna's median pruner stops trials that trail the others at the same fold and epoch.

Trials are persisted in the study's storage (an SQLite file for ``merkit tune``): a search run
again with the same storage continues where it stopped. Trials of one study may also run in
several workers at once (each calls :func:`optimize` against the shared storage), which is
the seam for a cluster executor.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.model_selection import RepeatedStratifiedKFold

from merkit.core.errors import ConfigError
from merkit.core.inputs import InputArray, take
from merkit.methods import ResolvedMethod, resolve_method
from merkit.protocol.executor import Executor, SerialExecutor
from merkit.protocol.folds import Fold, ProtocolConfig
from merkit.protocol.runner import fit_fold
from merkit.tuning.space import SearchSpace, apply_setting

log = logging.getLogger(__name__)

STEP_PER_FOLD = 100_000
"""Pruning step of epoch ``e`` of inner fold ``i``: ``i * STEP_PER_FOLD + e``, so trials are
compared at the same fold and epoch."""


@dataclass(frozen=True)
class SearchTask:
    """Everything a trial needs: the method, its fixed settings, the data and the inner folds."""

    method: str
    base_settings: dict[str, Any]
    space: SearchSpace
    inputs: Mapping[str, InputArray]
    labels: np.ndarray
    folds: tuple[Fold, ...]
    seed: int
    quick: bool = False

    def settings(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The method's settings at ``point``: base settings < the space's settings < point."""
        merged = copy.deepcopy(dict(self.base_settings))
        for key, value in self.space.settings.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **copy.deepcopy(value)}
            else:
                merged[key] = copy.deepcopy(value)
        for name, value in point.items():
            apply_setting(merged, name, value)
        return merged


def inner_folds(
    labels: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    n_splits: int = 5,
    n_repeats: int = 1,
    seed: int = 0,
) -> list[Fold]:
    """Stratified repeated K-fold over ``rows`` only (row indices into ``labels``).

    Raises
    ------
    ConfigError
        A quadrant among ``rows`` has fewer than ``n_splits`` songs.
    """
    labels = np.asarray(labels)
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows)
    counts = np.bincount(labels[rows])
    present = counts[counts > 0]
    if present.size < 2 or present.min() < n_splits:
        raise ConfigError(
            f"inner_folds {n_splits} needs at least {n_splits} training songs per class; "
            f"the smallest class has {int(present.min()) if present.size else 0}"
        )
    splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    dummy = np.zeros((rows.size, 1))
    return [
        Fold(i // n_splits, i % n_splits, np.sort(rows[train]), np.sort(rows[test]))
        for i, (train, test) in enumerate(splitter.split(dummy, labels[rows]))
    ]


def validate_space(
    method: str, space: SearchSpace, base: Mapping[str, Any] | None = None, *, quick: bool = False
) -> ResolvedMethod:
    """Resolve the method at one point of the space (so an unknown or ill-typed setting fails
    before any work, naming it); returns that resolution. Without Optuna (the research extra)
    this is where a search fails, in one line."""
    from merkit.core.versions import require_extra

    require_extra("optuna", needed_by="tuning (merkit tune, or a method's 'tune' setting)")
    task = SearchTask(method, dict(base or {}), space, {}, np.zeros(0, int), (), 0, quick)
    point = space.first_point()
    try:
        return resolve_method(method, task.settings(point), quick=quick)
    except ConfigError as exc:
        raise ConfigError(f"{space.source}: {exc}") from None


def _pruning_target(estimator: Any) -> Any:
    """The TorchClassifier whose epochs can be reported (the estimator itself), else None."""
    from merkit.training.classifier import TorchClassifier

    return estimator if isinstance(estimator, TorchClassifier) else None


def _epoch_f1(network: Any, monitor_x: Any, monitor_y: np.ndarray, train_y: np.ndarray):
    """``score(ctx)``: macro F1 of the network being trained on the monitor rows."""
    from merkit.training.loop import Trainer

    classes = np.unique(train_y)
    inputs = network._inputs(monitor_x, network._names())
    expected = np.searchsorted(classes, monitor_y)

    def score(ctx: Any) -> float:
        outputs = Trainer(ctx.config).predict_outputs(ctx.model, inputs)
        return float(f1_score(expected, outputs.argmax(axis=1), average="macro", zero_division=0))

    return score


def cv_score(
    resolved: ResolvedMethod,
    task: SearchTask,
    *,
    report: Callable[[float, int], None] | None = None,
) -> tuple[float, list[float]]:
    """Mean and per-fold macro F1 of ``resolved`` over the task's inner folds.

    ``report(score, step)`` (a trial's) receives each epoch's inner-validation F1 of a deep
    method (see :data:`STEP_PER_FOLD`), and may raise to stop the trial.
    """
    from merkit.training.callbacks import EpochScoreReport

    protocol = ProtocolConfig(n_splits=2, n_repeats=1, random_state=task.seed)
    scores = []
    for index, fold in enumerate(task.folds):
        method = resolved
        network = _pruning_target(resolved.estimator) if report is not None else None
        if network is not None:
            monitor_x = resolved.estimator_input(task.inputs, fold.test)
            score = _epoch_f1(network, monitor_x, task.labels[fold.test], task.labels[fold.train])
            offset = index * STEP_PER_FOLD

            def at_step(value: float, epoch: int, offset: int = offset) -> None:
                report(value, offset + epoch)

            callback = EpochScoreReport(score, at_step)
            estimator = clone(network).set_params(callbacks=[*(network.callbacks or []), callback])
            method = ResolvedMethod(
                resolved.spec, resolved.inputs, resolved.roles, estimator, resolved.settings
            )
        record = fit_fold(method, task.inputs, task.labels, fold, protocol)
        scores.append(record.metrics.f1)
    return float(np.mean(scores)), scores


def make_objective(task: SearchTask) -> Callable[[Any], float]:
    """The Optuna objective: settings at the trial's point, scored by :func:`cv_score`."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        point = {param.name: param.suggest(trial) for param in task.space.params}
        settings = task.settings(point)
        resolved = resolve_method(task.method, settings, quick=task.quick)

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (inner F1 {value:.3f})")

        tic = time.perf_counter()
        mean, scores = cv_score(resolved, task, report=report)
        trial.set_user_attr("fold_f1", scores)
        trial.set_user_attr("f1_std", float(np.std(scores)))
        trial.set_user_attr("seconds", time.perf_counter() - tic)
        return mean

    return objective


def make_sampler(space: SearchSpace, seed: int) -> Any:
    import optuna

    if space.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, space.trials or 10))


def open_study(
    space: SearchSpace,
    *,
    storage: str | None = None,
    study_name: str = "merkit-tune",
    seed: int = 0,
    fail_stale: bool = True,
) -> Any:
    """Create or continue the study (``load_if_exists``), maximising inner macro F1.

    With ``fail_stale``, trials a killed process left ``RUNNING`` are marked failed, so their
    points are tried again (workers joining a live shared study pass False).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=make_sampler(space, seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        load_if_exists=True,
    )
    running = (optuna.trial.TrialState.RUNNING,)
    stale = study.get_trials(deepcopy=False, states=running) if fail_stale else []
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def finished_trials(study: Any) -> int:
    """Trials that count towards the budget: complete or pruned."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def optimize(
    study: Any,
    task: SearchTask,
    n_trials: int,
    *,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (or a grid is exhausted).

    One worker's loop; several workers may call it on one shared storage at once.
    """
    import optuna

    remaining = n_trials - finished_trials(study)
    if remaining <= 0:
        return
    # Workers sharing a study stop once it holds n_trials finished trials in all.
    cap = optuna.study.MaxTrialsCallback(
        n_trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    # A trial that fails raises (a bad setting, a data error): better than a study of failures.
    study.optimize(make_objective(task), n_trials=remaining, callbacks=[*callbacks, cap])


def run_search(
    task: SearchTask,
    n_trials: int,
    *,
    storage: str | None = None,
    study_name: str = "merkit-tune",
    executor: Executor | None = None,
    workers: int = 1,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
) -> Any:
    """Run (or continue) the search and return the Optuna study.

    ``executor`` runs ``workers`` loops of :func:`optimize` (default: one, in this process);
    several workers need a ``storage`` every one of them can reach.
    """
    if workers > 1 and storage is None:
        raise ConfigError("several search workers need a shared storage (an RDB URL)")
    study = open_study(task.space, storage=storage, study_name=study_name, seed=task.seed)
    if workers == 1:
        optimize(study, task, n_trials, callbacks=callbacks)
        return study

    work = partial(
        search_worker, task=task, storage=storage, study_name=study_name, n_trials=n_trials
    )
    list((executor or SerialExecutor()).map(work, range(workers)))
    return open_study(
        task.space, storage=storage, study_name=study_name, seed=task.seed, fail_stale=False
    )


def search_worker(
    index: int, *, task: SearchTask, storage: str, study_name: str, n_trials: int
) -> int:
    """One worker of a shared study (picklable, for a process or cluster executor): runs
    trials until the study holds ``n_trials`` finished ones; returns how many it ran."""
    study = open_study(
        task.space,
        storage=storage,
        study_name=study_name,
        seed=task.seed + index,
        fail_stale=False,
    )
    before = finished_trials(study)
    optimize(study, task, n_trials)
    return finished_trials(study) - before


def best_point(study: Any) -> tuple[dict[str, Any], float]:
    """The best trial's point and its inner F1.

    Raises
    ------
    ConfigError
        No trial completed (all pruned or failed).
    """
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError("no trial of the search completed; nothing to choose from") from None
    return dict(best.params), float(best.value)


def trials_frame(study: Any) -> Any:
    """Every trial as a pandas DataFrame (number, state, value, params, fold scores, time)."""
    return study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))


def take_rows(x: Any, rows: np.ndarray) -> Any:
    """Rows of an estimator input (an array, a per-song list, or a dict of them)."""
    if isinstance(x, Mapping):
        return {key: take(value, rows) for key, value in x.items()}
    return take(x, rows)


def storage_url(out_dir: Path) -> str:
    """The SQLite storage of ``merkit tune --out DIR``."""
    return f"sqlite:///{(out_dir / 'study.sqlite3').resolve()}"


__all__ = [
    "STEP_PER_FOLD",
    "SearchTask",
    "best_point",
    "cv_score",
    "finished_trials",
    "inner_folds",
    "make_objective",
    "open_study",
    "optimize",
    "run_search",
    "search_worker",
    "storage_url",
    "take_rows",
    "trials_frame",
    "validate_space",
]

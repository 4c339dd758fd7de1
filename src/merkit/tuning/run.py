"""``merkit tune``: search a method's settings on a dataset; write the best as a config YAML.

The search scores each trial by inner stratified cross-validation on the songs it is given
(:mod:`merkit.tuning.search`). Every trial is stored in ``OUT/study.sqlite3`` as it finishes,
so rerunning the same command continues an interrupted search; the best settings go to
``OUT/best.yaml`` in the ``{method: {setting: value}}`` form that ``merkit benchmark --config``
and ``merkit train --config`` read.

The settings are chosen on every song given; a cross-validated score of them on the same songs
is therefore optimistic (the choice saw the test folds). ``tune: {space: …}`` in a benchmark
config (:mod:`merkit.tuning.nested`) gives the honest estimate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from merkit.core.errors import ConfigError
from merkit.datasets.base import Dataset
from merkit.protocol.folds import write_json_atomic
from merkit.protocol.runner import resolve_inputs
from merkit.tuning.search import (
    SearchTask,
    best_point,
    finished_trials,
    inner_folds,
    open_study,
    optimize,
    storage_url,
    trials_frame,
    validate_space,
)
from merkit.tuning.space import SearchSpace, format_value


@dataclass(frozen=True)
class TuneResult:
    """What ``merkit tune`` found: the best point, its settings and score, where it wrote them."""

    method: str
    best_params: dict[str, Any]
    best_settings: dict[str, Any]
    best_f1: float
    n_trials: int
    seconds: float
    best_yaml: Path


def identity(method: str, dataset: Dataset, space: SearchSpace, base: Mapping[str, Any]) -> dict:
    """What a resumed study must share with the one on disk."""
    return json.loads(
        json.dumps(
            {
                "method": method,
                "dataset": dataset.name,
                "fingerprint": dataset.fingerprint(),
                "space": {**space.describe(), "source": None, "settings": space.settings},
                "base_settings": dict(base),
            },
            default=str,
        )
    )


def annotate_powers(text: str, space: SearchSpace) -> str:
    """``gamma: 3.0517578125e-05  # 2^-15``: a YAML comment on every value of a base-2 log range.

    The value stays a plain number (``merkit benchmark --config`` reads it as it is); the comment
    shows it the way the search space was written.
    """
    import yaml

    by_leaf = {p.name.rsplit(".", 1)[-1]: p for p in space.params}
    lines = []
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        param = by_leaf.get(key.strip())
        if sep and param is not None:
            try:
                shown = format_value(param, yaml.safe_load(value))
            except yaml.YAMLError:
                shown = ""
            if shown.startswith("2^"):
                line = f"{line}  # {shown}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def tune_method(
    method: str,
    space: SearchSpace,
    dataset: Dataset,
    out_dir: Path,
    *,
    trials: int | None = None,
    base_settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    cache: Any = None,
    n_jobs: int = 1,
    quick: bool = False,
    progress: bool = True,
    on_trial: Callable[[Any], None] | None = None,
) -> TuneResult:
    """Search ``method`` over ``space`` on every song of ``dataset``; write ``out_dir``'s files.

    Writes ``study.sqlite3`` (every trial, resumable), ``trials.csv``, ``search.json`` (the
    space, the best point and score, trial count, wall time) and ``best.yaml``.

    Raises
    ------
    ConfigError
        A setting the method does not accept (before any work), or ``out_dir`` holding a search
        of another method, dataset or space.
    """
    import optuna
    import yaml

    base = dict(base_settings or {})
    resolved = validate_space(method, space, base, quick=quick)
    n_trials = space.n_trials(trials)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(space, storage=storage_url(out_dir), study_name=method, seed=seed)
    stamp = identity(method, dataset, space, base)
    previous = study.user_attrs.get("identity")
    if previous is None:
        study.set_user_attr("identity", stamp)
    elif previous != stamp:
        raise ConfigError(
            f"{out_dir} holds a search of another method, dataset, space or settings; use "
            "another --out (or delete it) instead of mixing trials"
        )
    labels = np.asarray(dataset.labels)
    inputs = resolve_inputs(dataset, resolved.inputs, cache=cache, n_jobs=n_jobs, progress=progress)
    task = SearchTask(
        method=method,
        base_settings=base,
        space=space,
        inputs=inputs,
        labels=labels,
        folds=tuple(
            inner_folds(
                labels, n_splits=space.inner_folds, n_repeats=space.inner_repeats, seed=seed
            )
        ),
        seed=seed,
        quick=quick,
    )
    tic = time.perf_counter()

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials_frame(study).to_csv(out_dir / "trials.csv", index=False)
        if on_trial is not None:
            on_trial(trial)

    optimize(study, task, n_trials, callbacks=[after_trial])
    params, value = best_point(study)
    settings = task.settings(params)
    best_yaml = out_dir / "best.yaml"
    text = annotate_powers(yaml.safe_dump({method: _plain(settings)}, sort_keys=False), space)
    _write_text(best_yaml, text)
    trials_frame(study).to_csv(out_dir / "trials.csv", index=False)
    seconds = time.perf_counter() - tic
    write_json_atomic(
        out_dir / "search.json",
        {
            "method": method,
            "dataset": dataset.name,
            "n_songs": len(dataset),
            "space": space.describe(),
            "best_params": _plain(params),
            "best_inner_f1": value,
            "finished_trials": finished_trials(study),
            "seconds_this_run": seconds,
            "seed": seed,
        },
    )
    return TuneResult(method, params, settings, value, finished_trials(study), seconds, best_yaml)


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so the YAML holds plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)


__all__ = ["TuneResult", "tune_method"]

"""Run a method under the protocol: per-fold fit/predict, results written as each fold finishes.

A rerun into the same output folder skips the folds whose result files exist, so an interrupted
benchmark resumes without recomputing finished folds.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sklearn.base import clone

from merkit.datasets.base import Dataset
from merkit.errors import ConfigError
from merkit.protocol.folds import Fold, ProtocolConfig, write_json_atomic
from merkit.protocol.metrics import fold_metrics, summarize

InputArray = np.ndarray | list[np.ndarray]
FOLD_FORMAT = 1


@dataclass
class MethodResult:
    """Outcome of one method on one dataset; ``complete`` is False while folds are missing."""

    method: str
    dataset: str
    protocol: ProtocolConfig
    per_fold: list[dict[str, Any]]
    n_total: int
    seconds: float
    inputs: tuple[str, ...]
    paper_f1: float | None = None

    @property
    def complete(self) -> bool:
        return len(self.per_fold) == self.n_total

    @property
    def summary(self) -> dict[str, Any]:
        return summarize([f["metrics"] for f in self.per_fold])


def resolve_inputs(
    dataset: Dataset,
    names: Sequence[str],
    *,
    cache: Any = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> dict[str, InputArray]:
    """Arrays aligned with ``dataset.songs`` for each input name.

    ``table:NAME`` reads a feature table of the dataset; any other name is a representation
    computed from audio (and cached) by :func:`merkit.representations.compute`.
    """
    from merkit import representations

    resolved: dict[str, InputArray] = {}
    for name in names:
        if name.startswith("table:"):
            resolved[name] = dataset.table(name.removeprefix("table:"))
        else:
            resolved[name] = representations.compute(
                dataset, name, cache=cache, n_jobs=n_jobs, progress=progress
            )
    return resolved


def take(array: InputArray, rows: np.ndarray) -> InputArray:
    """Rows of an input: fancy indexing for arrays, a list for per-song arrays of varying shape."""
    if isinstance(array, np.ndarray):
        return array[rows]
    return [array[i] for i in rows]


def estimator_input(inputs: Mapping[str, InputArray], rows: np.ndarray) -> Any:
    """What an estimator's ``fit``/``predict`` receives: the array, or a dict for several inputs."""
    if len(inputs) == 1:
        return take(next(iter(inputs.values())), rows)
    return {name: take(array, rows) for name, array in inputs.items()}


def fold_seed(protocol: ProtocolConfig, fold: Fold) -> int:
    """A distinct, reproducible seed per (protocol seed, repeat, fold)."""
    return protocol.random_state * 100_003 + fold.repeat * 1_000 + fold.fold


def run_method(
    name: str,
    estimator: Any,
    dataset: Dataset,
    inputs: Mapping[str, InputArray],
    folds: Sequence[Fold],
    protocol: ProtocolConfig,
    out_dir: Path,
    *,
    config: Mapping[str, Any] | None = None,
    save_models: bool = False,
    progress: bool = True,
    paper_f1: float | None = None,
) -> MethodResult:
    """Cross-validate an unfitted estimator; each fold's predictions and metrics go to a JSON file.

    Parameters
    ----------
    name : str
        Method name; results go to ``out_dir / name``.
    estimator : sklearn-style estimator
        Cloned per fold; gets ``random_state`` (if it has one) from :func:`fold_seed`.
    config : mapping, optional
        The method's settings. Stored beside the results; resuming with different settings into
        the same folder is refused rather than mixing results of two configurations.
    save_models : bool
        Also save each fold's fitted model (estimators with a ``save(path)`` method).
    """
    method_dir = out_dir / name
    fold_dir = method_dir / "folds"
    _check_config(method_dir, dataset, protocol, dict(config or {}))

    labels = dataset.labels
    ids = dataset.song_ids
    per_fold: list[dict[str, Any]] = []
    columns = (
        TextColumn(f"[bold]{name}[/] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("folds", total=len(folds))
        for fold in folds:
            path = fold_dir / f"{fold.name}.json"
            record = _read_fold(path, [ids[i] for i in fold.test])
            if record is None:
                bar.update(task, description=f"fold {fold.name}")
                record = _fit_fold(
                    estimator, inputs, labels, ids, fold, protocol, method_dir, save_models
                )
                write_json_atomic(path, record)
            per_fold.append(record)
            bar.advance(task)
    result = MethodResult(
        method=name,
        dataset=dataset.name,
        protocol=protocol,
        per_fold=per_fold,
        n_total=len(folds),
        # Compute time of the folds themselves, so a resumed run reports the same number.
        seconds=float(sum(record.get("seconds", 0.0) for record in per_fold)),
        inputs=tuple(inputs),
        paper_f1=paper_f1,
    )
    write_json_atomic(method_dir / "summary.json", {"method": name, **result.summary})
    return result


def _fit_fold(
    estimator: Any,
    inputs: Mapping[str, InputArray],
    labels: np.ndarray,
    ids: list[str],
    fold: Fold,
    protocol: ProtocolConfig,
    method_dir: Path,
    save_models: bool,
) -> dict[str, Any]:
    seed = fold_seed(protocol, fold)
    model = clone(estimator)
    # Nested estimators (pipeline steps) are seeded too: every ``*random_state`` parameter.
    seeds = {k: seed for k in model.get_params() if k.split("__")[-1] == "random_state"}
    if seeds:
        model.set_params(**seeds)
    tic = time.perf_counter()
    model.fit(estimator_input(inputs, fold.train), labels[fold.train])
    x_test = estimator_input(inputs, fold.test)
    proba = model.predict_proba(x_test) if hasattr(model, "predict_proba") else None
    predicted = np.asarray(model.predict(x_test), dtype=np.int64)
    if save_models and hasattr(model, "save"):
        model.save(method_dir / "models" / f"{fold.name}.pt")
    record = {
        "format": FOLD_FORMAT,
        "repeat": fold.repeat,
        "fold": fold.fold,
        "seed": seed,
        "seconds": time.perf_counter() - tic,
        "test_ids": [ids[i] for i in fold.test],
        "y_true": labels[fold.test].tolist(),
        "y_pred": predicted.tolist(),
        "proba": None if proba is None else np.round(np.asarray(proba, dtype=float), 6).tolist(),
        "metrics": fold_metrics(labels[fold.test], predicted),
    }
    # A pipeline's network is its last step.
    final = getattr(model, "_final_estimator", model)
    history = getattr(model, "history_", None) or getattr(final, "history_", None)
    if history is not None and hasattr(history, "to_dict"):
        full = history.to_dict()
        record["training"] = {
            key: full.get(key) for key in ("epochs_run", "stop_reason", "best_epoch", "device")
        }
        record["training"]["final_train_accuracy"] = (full.get("accuracy") or [None])[-1]
    del model
    gc.collect()
    return record


def _read_fold(path: Path, test_ids: list[str]) -> dict[str, Any] | None:
    """A finished fold's record, or None when it must be (re)computed."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if record.get("format") != FOLD_FORMAT or record.get("test_ids") != test_ids:
        return None
    return record


def _check_config(
    method_dir: Path, dataset: Dataset, protocol: ProtocolConfig, config: dict[str, Any]
) -> None:
    stamp = {
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "protocol": protocol.model_dump(),
        "config": json.loads(json.dumps(config, default=str)),
    }
    path = method_dir / "config.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != stamp:
            raise ConfigError(
                f"{method_dir} holds results of another dataset, protocol or configuration; "
                "use a different --out folder (or delete it) instead of mixing results"
            )
        return
    write_json_atomic(path, stamp)

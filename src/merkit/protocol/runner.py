"""Run a method under the protocol: each fold a unit of work, results written as folds finish.

:func:`fit_fold` fits and scores one fold and returns a :class:`FoldRecord` (it writes nothing
but, when asked, its networks' training states); :func:`run_method` drives the folds through an
:class:`Executor` and writes each record. A rerun into the same output folder skips the folds
whose valid result files exist, so an interrupted benchmark resumes without recomputing finished
folds, and a fold killed mid-training continues from the training state its network last wrote
(``folds/<fold>.partial.<n>.pt``, :mod:`merkit.training.resume`), which the fold file then
supersedes. One driver at a time writes a method's
folder: :func:`run_method` holds ``<method>/.lock`` (an OS file lock, released even when the
driver is killed) and refuses to start while another process holds it.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from merkit.core.errors import ConfigError
from merkit.core.inputs import InputArray, parse_input, take
from merkit.core.progress import progress_bar
from merkit.core.protocols import (
    AcceptsValidation,
    NeedsAllSongs,
    PredictsDetails,
    ReportsAugmentation,
    training_history_of,
)
from merkit.datasets.base import Dataset
from merkit.methods.resolve import ResolvedMethod
from merkit.protocol.executor import Executor, SerialExecutor, TaskNeeds, TasksFailed
from merkit.protocol.folds import Fold, ProtocolConfig, write_json_atomic
from merkit.protocol.metrics import fold_metrics, summarize
from merkit.protocol.models import check_saveable, save_model
from merkit.protocol.records import FoldMetrics, FoldRecord, TrainingInfo, write_fold
from merkit.protocol.state import identity_hash, read_method_state, reconcile_config
from merkit.training.resume import remove_partial, resume_scope

_log = logging.getLogger(__name__)


@dataclass
class MethodResult:
    """Outcome of one method on one dataset; ``complete`` is False while folds are missing."""

    method: str
    dataset: str
    protocol: ProtocolConfig
    per_fold: list[FoldRecord]
    n_total: int
    seconds: float
    inputs: tuple[str, ...]
    paper_f1: float | None = None
    settings: dict[str, Any] | None = None
    """The method's recorded settings (``tune``, ``train_fraction`` say how it was run)."""
    regime: str = "unrecorded"
    """Training regime against the method's recipe (:mod:`merkit.methods.regime`)."""
    n_songs: int | None = None
    """Songs in the dataset the run used."""

    @property
    def paper_note(self) -> str | None:
        """Why the paper's Table 3 number may not sit beside this result (None: it may)."""
        from merkit.protocol.comparability import paper_comparison

        fraction = (self.settings or {}).get("train_fraction", 1.0)
        if self.paper_f1 is not None and fraction < 1:
            return f"trained on {100 * fraction:g} % of each training fold"
        return paper_comparison(
            paper_f1=self.paper_f1,
            dataset=self.dataset,
            n_songs=self.n_songs,
            protocol=self.protocol,
            regime=self.regime,
        )

    @property
    def comparable_paper_f1(self) -> float | None:
        """The paper's number where this result is comparable with it, else None."""
        return self.paper_f1 if self.paper_note is None else None

    @property
    def complete(self) -> bool:
        return len(self.per_fold) == self.n_total

    @property
    def summary(self) -> dict[str, Any]:
        return summarize([f.metrics.model_dump() for f in self.per_fold])


def resolve_inputs(
    dataset: Dataset,
    names: Sequence[str],
    *,
    cache: Any = None,
    n_jobs: int = 1,
    progress: bool = True,
    seed: int = 0,
    mapper: Any = None,
) -> dict[str, InputArray]:
    """Arrays aligned with ``dataset.songs`` for each input name (:mod:`merkit.core.inputs`).

    A feature table is read from the dataset; the representations are computed from audio (and
    cached) by :func:`merkit.representations.extract.compute_many` in one pass over the songs, so
    each file is
    decoded once for all of them (through ``mapper`` when given, e.g. an executor's
    ``song_mapper`` that computes the songs on a cluster); ``seed`` reaches stochastic ones
    (augmented copies; see :func:`repeat_seed`).
    """
    from merkit.representations import extract

    representations = [name for name in names if parse_input(name).kind != "table"]
    stats = {name: extract.ComputeStats() for name in representations}
    options = dict(cache=cache, n_jobs=n_jobs, progress=progress, seed=seed, mapper=mapper)
    computed = (
        extract.compute_many(dataset, representations, stats=stats, **options)
        if representations
        else {}
    )
    resolved: dict[str, InputArray] = {}
    for name in names:
        parsed = parse_input(name)
        if parsed.kind == "table":
            resolved[name] = dataset.table(parsed.name)
        else:
            resolved[name] = computed[name]
            if is_per_repeat(name):
                _log_copies(name, resolved[name], stats[name], seed)
    return resolved


def is_per_repeat(name: str) -> bool:
    """True for a stochastic representation (augmented copies): computed per repeat."""
    parsed = parse_input(name)
    if parsed.kind != "representation":
        return False
    from merkit.representations.registry import REPRESENTATIONS

    rep = REPRESENTATIONS.get(parsed.name, None)  # unregistered: the caller supplies it
    return rep is not None and rep.stochastic


def repeat_seed(protocol: ProtocolConfig, repeat: int) -> int:
    """Seed of a repeat's augmented copies: one per (protocol seed, repeat).

    Every fold of a repeat shares it, so a song's copies are computed once per repeat (then read
    from the cache) and are the same in every fold that trains on it; repeats differ.
    """
    return protocol.random_state * 1_000 + repeat


def _log_copies(name: str, array: InputArray, stats: Any, seed: int) -> None:
    from merkit.representations.registry import get_representation

    rep = get_representation(name)
    rows = array if isinstance(array, list) else list(array)
    per_song = rows[0].size * np.dtype(rep.dtype).itemsize if rows else 0
    _log.info(
        "%s (seed %d): %d song(s) computed, %d from the cache; %.0f KB per song, "
        "%.1f MB in the feature cache",
        name,
        seed,
        stats.computed,
        stats.cached,
        per_song / 1e3,
        per_song * len(rows) / 1e6,
    )


def estimator_input(inputs: Mapping[str, InputArray], rows: np.ndarray) -> Any:
    """The array of a single input, or a dict keyed by input name for several.

    Methods with roles get a dict keyed by role instead: see
    :meth:`~merkit.methods.ResolvedMethod.estimator_input`.
    """
    if len(inputs) == 1:
        return take(next(iter(inputs.values())), rows)
    return {name: take(array, rows) for name, array in inputs.items()}


def fold_seed(protocol: ProtocolConfig, fold: Fold) -> int:
    """A distinct, reproducible seed per (protocol seed, repeat, fold)."""
    return protocol.random_state * 100_003 + fold.repeat * 1_000 + fold.fold


def fit_fold(
    method: ResolvedMethod,
    inputs: Mapping[str, InputArray],
    labels: np.ndarray,
    fold: Fold,
    protocol: ProtocolConfig,
    *,
    song_ids: Sequence[str] | None = None,
    keep_model: bool = False,
    collect_garbage: bool | None = None,
    resume_dir: Path | None = None,
    resume_key: str = "",
) -> FoldRecord:
    """Fit a clone of the method's estimator on one fold's training rows and score its test rows.

    Pure: nothing is written (except the training states of ``resume_dir``); the same
    arguments give the same record (every ``random_state`` inside the estimator is set to
    :func:`fold_seed`), also when the fold resumed from training states.

    Parameters
    ----------
    method : ResolvedMethod
        From :func:`merkit.methods.resolve_method` (or :meth:`ResolvedMethod.of`).
    inputs : mapping
        Input name -> array (or per-song list) aligned with ``labels``.
    labels : ndarray
        Class index per song.
    fold : Fold
        Row indices of the split.
    protocol : ProtocolConfig
        For the seed.
    song_ids : sequence of str, optional
        Song id per row, recorded for the test rows (default: row numbers).
    keep_model : bool
        Attach the fitted estimator to ``record.model`` (not serialised).
    collect_garbage : bool, optional
        Run the garbage collector after the fit, so a network's memory is freed before the next
        fold. Default: only for estimators that may hold a network (:func:`holds_network`); a
        collection costs ~0.5 s once torch is loaded, more than a small SVM's whole fold.
    resume_dir : Path, optional
        Make the fold's network fits resumable (:mod:`merkit.training.resume`): each writes its
        state to ``resume_dir/<fold>.partial.<n>.pt`` as it trains and continues from a
        matching one, so a fold killed mid-training goes on from its last epoch. The caller
        removes the files once the record is safely written
        (:func:`merkit.training.resume.remove_partial`). None:
        no states (the fits of a search inside the estimator never have them either).
    resume_key : str
        Added to the states' fingerprint (the runner gives its configuration stamp's hash, so
        a state of another dataset or protocol is never resumed).

    Returns
    -------
    FoldRecord
    """
    labels = np.asarray(labels)
    ids = [str(i) for i in range(len(labels))] if song_ids is None else list(song_ids)
    seed = fold_seed(protocol, fold)
    model = clone(method.estimator)
    # Nested estimators (pipeline steps) are seeded too: every ``*random_state`` parameter.
    seeds = {k: seed for k in model.get_params() if k.split("__")[-1] == "random_state"}
    if seeds:
        model.set_params(**seeds)
    fit_options: dict[str, Any] = {}
    extras: dict[str, Any] | None = None
    if (
        fold.validate is not None
        and fold.validate.size
        and isinstance(model, AcceptsValidation)
        and model.accepts_validation
    ):
        # A fixed split's validation songs, for a method that selects with them.
        fit_options["validation"] = (
            method.estimator_input(inputs, fold.validate),
            labels[fold.validate],
        )
    if isinstance(model, NeedsAllSongs) and model.needs_all_songs:
        # A published-code compat mode that fits on every song, test songs included (it leaks;
        # the method labels its fold records so). Only methods that ask get the other songs.
        every = np.arange(len(labels))
        fit_options["all_songs"] = (method.estimator_input(inputs, every), labels)
    key = _resume_key(method, fold, seed, resume_key) if resume_dir is not None else ""
    tic = time.perf_counter()
    with resume_scope(resume_dir, fold.name, key) as scope:
        model.fit(method.estimator_input(inputs, fold.train), labels[fold.train], **fit_options)
    fitted = time.perf_counter()
    carried = None if scope is None else scope.carried()
    if carried is not None:
        # What the earlier sessions spent up to the states this fold resumed from.
        extras = {"resumed": carried}
        tic -= carried["seconds_before"]
    x_test = method.estimator_input(inputs, fold.test)
    if isinstance(model, PredictsDetails):
        # e.g. a ChunkedClassifier: song-level answers and chunk-level scores in one pass
        proba, predicted, details = model.predict_details(x_test, labels[fold.test])
        extras = {**(extras or {}), **(details or {})} or None
    else:
        proba = model.predict_proba(x_test) if hasattr(model, "predict_proba") else None
        predicted = model.predict(x_test)
        if proba is None:
            # Decision values only (an RBF SVM): probabilities calibrated on the training fold,
            # as its shipped form is, for the report; the predictions above stay the model's.
            from merkit.estimators.calibration import in_fold_probabilities

            proba = in_fold_probabilities(
                model,
                method.estimator_input(inputs, fold.train),
                labels[fold.train],
                x_test,
                seed=seed,
            )
    predicted = np.asarray(predicted, dtype=np.int64)
    done = time.perf_counter()
    augment_info = model.augment_info_ if isinstance(model, ReportsAugmentation) else None
    if augment_info is not None:
        # What the fold trained on, and the seed of its copies (see repeat_seed).
        extras = {
            **(extras or {}),
            "augment": {**augment_info, "copy_seed": _copy_seed(method, protocol, fold)},
        }
    record = FoldRecord(
        repeat=fold.repeat,
        fold=fold.fold,
        seed=seed,
        seconds=done - tic,
        fit_seconds=fitted - tic,
        predict_seconds=done - fitted,
        test_ids=[ids[i] for i in fold.test],
        y_true=labels[fold.test].tolist(),
        y_pred=predicted.tolist(),
        proba=None if proba is None else np.round(np.asarray(proba, dtype=float), 6).tolist(),
        metrics=FoldMetrics(**fold_metrics(labels[fold.test], predicted)),
        training=_training_info(model),
        extras={**method.provenance(), **(extras or {})} or None,
        model=model if keep_model else None,
    )
    if collect_garbage is None:
        collect_garbage = holds_network(model)
    del model
    if collect_garbage:
        gc.collect()
    return record


def _resume_key(method: ResolvedMethod, fold: Fold, seed: int, extra: str) -> str:
    """What a fold's training states are made of: method, settings, rows, seed (sha256)."""
    body = {
        "method": method.name,
        "config": method.config(),
        "fold": fold.name,
        "train": hashlib.sha256(np.asarray(fold.train, dtype="<i8").tobytes()).hexdigest(),
        "test": hashlib.sha256(np.asarray(fold.test, dtype="<i8").tobytes()).hexdigest(),
        "seed": seed,
        "run": extra,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _copy_seed(method: ResolvedMethod, protocol: ProtocolConfig, fold: Fold) -> int | None:
    if any(is_per_repeat(name) for name in method.inputs):
        return repeat_seed(protocol, fold.repeat)
    return None


def _accepts(function: Any, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _training_info(model: Any) -> TrainingInfo | None:
    # A pipeline's network is its last step; meta-estimators report their inner one's.
    history = training_history_of(model)
    if history is None and isinstance(model, Pipeline):
        history = training_history_of(model[-1])
    if history is None or not hasattr(history, "to_dict"):
        return None
    full = history.to_dict()
    return TrainingInfo(
        **{key: full.get(key) for key in ("epochs_run", "stop_reason", "best_epoch", "device")},
        final_train_accuracy=(full.get("accuracy") or [None])[-1],
    )


def run_method(
    method: ResolvedMethod,
    dataset: Dataset,
    inputs: Mapping[str, InputArray],
    folds: Sequence[Fold],
    protocol: ProtocolConfig,
    out_dir: Path,
    *,
    executor: Executor | None = None,
    save_models: bool = False,
    progress: bool = True,
    cache: Any = None,
    n_jobs: int = 1,
    resume: bool = True,
) -> MethodResult:
    """Cross-validate a method; each fold's record goes to ``out_dir/<method>/folds/<fold>.json``.

    Parameters
    ----------
    method : ResolvedMethod
        The method; its :meth:`~ResolvedMethod.config` is stored in ``<method>/config.json``.
        Resuming with different settings into a folder that holds finished folds is refused
        rather than mixing results of two configurations.
    inputs : mapping
        Input name -> array. A method input missing here (augmented copies) is computed per
        repeat with :func:`repeat_seed`, through ``cache`` with ``n_jobs`` processes, before
        that repeat's pending folds run.
    executor : Executor, optional
        Runs the pending folds (default: :class:`SerialExecutor`).
    save_models : bool
        Also save each fold's fitted model under ``<method>/models`` (see
        :func:`merkit.protocol.models.save_model`).
    resume : bool
        Resume folds mid-training: each network fit of a pending fold writes its state to
        ``<method>/folds/<fold>.partial.<n>.pt`` as it trains (:mod:`merkit.training.resume`),
        a rerun continues from it bit for bit, and the fold file supersedes (removes) it.
    """
    method_dir = out_dir / method.name
    if save_models:
        check_saveable(method.name, method.estimator)
    with method_lock(method_dir):
        return _run_locked(
            method,
            dataset,
            inputs,
            folds,
            protocol,
            method_dir,
            executor,
            save_models,
            progress,
            cache=cache,
            n_jobs=n_jobs,
            resume=resume,
        )


def _run_locked(
    method: ResolvedMethod,
    dataset: Dataset,
    inputs: Mapping[str, InputArray],
    folds: Sequence[Fold],
    protocol: ProtocolConfig,
    method_dir: Path,
    executor: Executor | None,
    save_models: bool,
    progress: bool,
    *,
    cache: Any = None,
    n_jobs: int = 1,
    resume: bool = True,
) -> MethodResult:
    fold_dir = method_dir / "folds"
    ids = dataset.song_ids
    state = read_method_state(method_dir, {f.name: [ids[i] for i in f.test] for f in folds})
    state.check_entries()  # a folder where a fold file belongs: refused before any work
    stamp = config_stamp(dataset, protocol, method)
    if reconcile_config(state, stamp):
        write_json_atomic(method_dir / "config.json", stamp)
    stamp_hash = identity_hash(stamp)
    note = state.unexpected_note(len(folds))
    if note:
        _log.warning("%s", note)
    for name, problem in state.damaged.items():
        _log.warning(
            "fold file %s is not a valid result (%s); recomputing that fold",
            fold_dir / f"{name}.json",
            problem,
        )
    done: dict[str, FoldRecord] = {}
    pending: list[Fold] = []
    for fold in folds:
        record = state.records.get(fold.name)
        if record is not None and save_models and not _model_saved(method_dir, fold):
            record = None  # refit to save the model asked for
        if record is None:
            pending.append(fold)
        else:
            done[fold.name] = record
    missing = [name for name in method.inputs if name not in inputs]
    # One batch of folds per repeat when copies are computed per repeat, else one batch.
    batches: dict[int | None, list[Fold]] = {}
    for fold in pending:
        batches.setdefault(fold.repeat if missing else None, []).append(fold)
    label = f"[bold]{method.name}[/] {{task.description}}"
    finished = len(done)
    for repeat, batch in batches.items():
        batch_inputs = dict(inputs)
        if repeat is not None:
            # Before the fold bar opens: the extraction shows its own progress bar.
            batch_inputs.update(
                resolve_inputs(
                    dataset,
                    missing,
                    cache=cache,
                    n_jobs=n_jobs,
                    progress=progress,
                    seed=repeat_seed(protocol, repeat),
                    mapper=getattr(executor, "song_mapper", None),
                )
            )
        task = partial(
            fit_fold,
            method,
            batch_inputs,
            dataset.labels,
            protocol=protocol,
            song_ids=ids,
            keep_model=save_models,
            resume_dir=fold_dir if resume else None,
            resume_key=stamp_hash,
        )
        run = executor or SerialExecutor()
        # ``needs`` is optional in the protocol: an executor without it ignores resources.
        options = {"needs": fold_needs(method, batch_inputs)} if _accepts(run.map, "needs") else {}
        try:
            with progress_bar(label, enabled=progress, transient=False) as bar:
                bar_task = bar.add_task("folds", total=len(folds), completed=finished)
                for record in run.map(task, batch, **options):
                    if save_models:
                        save_model(record.model, method_dir / "models" / record.name)
                        record.model = None
                    record.config_sha256 = stamp_hash  # the fold says which settings made it
                    write_fold(fold_dir / f"{record.name}.json", record)
                    remove_partial(fold_dir, record.name)  # superseded by the fold file
                    done[record.name] = record
                    finished += 1
                    bar.update(bar_task, description=f"fold {record.name}")
                    bar.advance(bar_task)
        except TasksFailed as failed:
            # The executor's indices are positions in this batch: name the folds instead.
            kept = f"{len(done)} of {len(folds)} {method.name} folds are finished and saved in "
            raise TasksFailed(
                method.name,
                failed.failures,
                names=[fold.name for fold in batch],
                kept=kept + str(fold_dir),
            ) from None
        del batch_inputs, task
    per_fold = [done[fold.name] for fold in folds]
    result = MethodResult(
        method=method.name,
        dataset=dataset.name,
        protocol=protocol,
        per_fold=per_fold,
        n_total=len(folds),
        # Compute time of the folds themselves, so a resumed run reports the same number.
        seconds=float(sum(record.seconds for record in per_fold)),
        inputs=method.inputs,
        paper_f1=method.spec.paper_f1,
        settings=dict(method.settings),
        regime=method.regime,
        n_songs=len(dataset),
    )
    write_json_atomic(method_dir / "summary.json", {"method": method.name, **result.summary})
    return result


def _model_saved(method_dir: Path, fold: Fold) -> bool:
    return any((method_dir / "models").glob(f"{fold.name}.*"))


def config_stamp(
    dataset: Dataset, protocol: ProtocolConfig, method: ResolvedMethod
) -> dict[str, Any]:
    """What ``<method>/config.json`` holds: identity (compared on resume) and ``info``."""
    info: dict[str, Any] = {
        "n_songs": len(dataset),
        "inputs": list(method.inputs),
        "paper_f1": method.spec.paper_f1,
        "regime": method.regime,
    }
    if any(is_per_repeat(name) for name in method.inputs):
        from merkit.estimators.augmentation import library_version

        # The copies' numbers depend on the audiomentations release (its defaults changed).
        info["audiomentations"] = library_version("audiomentations")
    return {
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "protocol": protocol.stamp(),
        "config": json.loads(json.dumps(method.config(), default=str)),
        "info": info,
    }


# ---- What one fold asks of an executor, and who may write a method's folder.
# :func:`fold_needs` sizes a fold task (a core, a GPU for a network, memory for its copies of the
# data); :func:`method_lock` lets one driver at a time write a method's fold files (an OS file lock,
# released even when the driver is killed).


@contextmanager
def method_lock(method_dir: Path) -> Iterator[None]:
    """Hold ``method_dir/.lock`` while this process writes the method's folds.

    Raises
    ------
    ConfigError
        When another process (a second ``merkit benchmark`` into the same ``--out``) holds it.
    """
    method_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(method_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"another merkit process is running {method_dir.name!r} into {method_dir.parent} "
            "(it holds the folder's .lock); wait for it to finish or use another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def uses_network(estimator: Any) -> bool:
    """Whether ``estimator`` trains a torch network (so a fold of it can use a GPU).

    True when one of its parameters is a ``device`` (a
    :class:`merkit.training.classifier.TorchClassifier`,
    or a pipeline or wrapper holding one) or its class is defined beside torch code (e.g. the
    hybrid, which builds its networks inside ``fit``).
    """
    if any(key.split("__")[-1] == "device" for key in estimator.get_params(deep=True)):
        return True
    module = vars(sys.modules.get(type(estimator).__module__, object()))
    return "torch" in module or "TorchClassifier" in module


def input_bytes(inputs: Mapping[str, InputArray]) -> int:
    """Bytes held by the arrays of ``inputs`` (feature tables, representations)."""
    total = 0
    for value in inputs.values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif hasattr(value, "to_numpy"):
            total += int(value.memory_usage(deep=True).sum())
        else:
            total += sum(np.asarray(part).nbytes for part in value)
    return total


def fold_needs(method: ResolvedMethod, inputs: Mapping[str, InputArray]) -> TaskNeeds:
    """One fold's requests: a core, a GPU for a network, and memory for its copies of the data.

    Memory: twice the inputs (the training and test rows are copied out of the shared arrays,
    then scaled or batched) plus a base of 1 GiB for a network, 256 MiB otherwise.
    """
    network = uses_network(method.estimator)
    base = (1 << 30) if network else (256 << 20)
    return TaskNeeds(
        cpus=1.0,
        gpus=1.0 if network else 0.0,
        memory=2 * input_bytes(inputs) + base,
        label=method.name,
    )


_PLAIN_MODULES = ("sklearn", "imblearn", "merkit.features")


def holds_network(estimator: Any) -> bool:
    """Whether ``estimator`` may hold a network: anything but scikit-learn, imbalanced-learn
    and merkit's feature steps, at any depth of its parameters."""
    found = [estimator]
    get_params = getattr(estimator, "get_params", None)
    if get_params is not None:
        found += [v for v in get_params(deep=True).values() if hasattr(v, "fit")]
    return not all(type(sub).__module__.startswith(_PLAIN_MODULES) for sub in found)

"""Train one final model on a whole dataset and export it as a model directory.

:func:`train_final` fits a method on every song and describes it in a
:class:`~merkit.product.model_dir.ModelManifest`, quoting the method's cross-validated scores from a
benchmark ``results.csv`` (:func:`read_cv_results`) in the model card (:mod:`merkit.product.card`);
:func:`save_model` writes it as a model directory (:mod:`merkit.product.model_dir`). Prediction
lives in
:mod:`merkit.product.predict`, which reads model directories and never imports this module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from merkit.core.errors import ConfigError, DataError, MerkitError
from merkit.core.inputs import parse_input
from merkit.core.labels import QUADRANTS
from merkit.datasets.base import Dataset
from merkit.product.card import model_card
from merkit.product.model_dir import (
    JOBLIB_FILE,
    MANIFEST,
    MODEL_CARD,
    MODEL_FORMAT,
    TORCH_FILE,
    CvComparison,
    CvScores,
    EstimatorFile,
    InputSpec,
    ModelManifest,
    TrainingData,
    jsonable,
    library_versions,
    merkit_version,
    save_model_dir,
)

DEFAULT_WINDOW_S = 30.0
"""Window length for whole tracks when the training clips' lengths cannot be read."""


@dataclass
class TrainedModel:
    """A fitted final model in memory: the estimator, its manifest and its model card text.

    ``merkit.product.predict.Predictor(model.manifest, model.estimator)`` predicts with it unsaved.
    """

    estimator: Any
    manifest: ModelManifest
    card: str


def train_final(
    method: str,
    dataset: Dataset,
    *,
    params: dict[str, Any] | None = None,
    cache: Any = None,
    n_jobs: int = 1,
    progress: bool = True,
    cv_results: Path | None = None,
    seed: int = 0,
    window_s: float | None = None,
    hop_s: float | None = None,
) -> TrainedModel:
    """Fit ``method`` on every song of ``dataset`` for prediction on new songs.

    The estimator is :func:`merkit.methods.resolve_method`'s (the same settings, ``inputs:``
    overrides and validation as ``merkit benchmark``) fitted on all songs; its inputs are
    computed (and cached) exactly as the benchmark computes them. Two changes make it a product
    model: every ``random_state`` inside it is set to ``seed``, and an estimator without
    ``predict_proba`` (an RBF SVM) is wrapped in scikit-learn's ``CalibratedClassifierCV``
    (Platt's sigmoid fitted on out-of-fold decision values of a seeded stratified 5-fold split,
    then one estimator refitted on all songs: ``ensemble=False``), because predictions report
    class probabilities.

    Methods that need a ``table:`` input train too, but the model is marked not audio-only and
    predicting a new song with it is refused.

    Parameters
    ----------
    method : str
        A registered method name (``merkit methods``).
    dataset : Dataset
        Training songs; every quadrant must have at least one.
    params : dict, optional
        The method's settings (as in a benchmark ``--config``).
    cache : FeatureCache, optional
        Representation cache (default: merkit's).
    n_jobs : int
        Processes for feature extraction.
    progress : bool
        Show progress bars.
    cv_results : Path, optional
        A benchmark ``results.csv`` holding this method's cross-validated scores on this dataset,
        quoted in the model card. Without it the card says the method was not cross-validated.
    seed : int
        Seed of every random choice in the estimator.
    window_s, hop_s : float, optional
        Window length and hop for whole tracks. Default: the median training clip length rounded to
        0.1 s (or 30 s when it cannot be read from the audio headers), and half of it.

    Returns
    -------
    TrainedModel

    Raises
    ------
    ConfigError
        Unknown method, bad settings or window, unusable ``cv_results``.
    DataError
        A quadrant without songs, or problems reading the data.
    """
    from sklearn.base import clone

    from merkit.methods import resolve_method
    from merkit.protocol.runner import resolve_inputs

    resolved = resolve_method(method, params)  # validates every setting before any work
    spec, input_names, params = resolved.spec, list(resolved.inputs), resolved.settings
    estimator = clone(resolved.estimator)
    missing = [q for q, n in dataset.counts().items() if n == 0]
    if missing:
        raise DataError(
            f"dataset {dataset.name!r} has no songs in {', '.join(missing)}; "
            "a final model needs examples of all four quadrants"
        )
    median = _median_duration(dataset)
    window, hop = _window_settings(window_s, hop_s, median)
    cv = read_cv_results(cv_results, spec.name, dataset, params) if cv_results else None
    roles = resolved.roles or (None,) * len(input_names)
    inputs_spec = [_input_spec(name, role) for name, role in zip(input_names, roles, strict=True)]
    if getattr(estimator, "training_only_copies", False):
        # Augmented copies are for training; the saved model predicts from the original input.
        inputs_spec = [_input_spec(input_names[0])]

    _seed_everything(estimator, seed)
    calibration = None
    if not hasattr(estimator, "predict_proba"):
        estimator, calibration = _calibrated(estimator, dataset, seed, len(input_names))
    inputs = resolve_inputs(dataset, input_names, cache=cache, n_jobs=n_jobs, progress=progress)
    features = resolved.estimator_input(inputs, np.arange(len(dataset)))
    del inputs
    estimator.fit(features, dataset.labels)

    manifest = ModelManifest(
        merkit_version=merkit_version(),
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        method=spec.name,
        method_summary=spec.summary,
        params=jsonable(params),
        seed=seed,
        calibration=calibration,
        inputs=inputs_spec,
        window_s=window,
        hop_s=hop,
        training=TrainingData(
            dataset=dataset.name,
            n_songs=len(dataset),
            counts=dataset.counts(),
            fingerprint=dataset.fingerprint(),
            median_duration_s=median,
        ),
        cv=cv,
        libraries=library_versions(),
    )
    return TrainedModel(estimator=estimator, manifest=manifest, card=model_card(manifest))


def _input_spec(name: str, role: str | None = None) -> InputSpec:
    if parse_input(name).kind == "table":
        return InputSpec(name=name, kind="table", role=role)
    from merkit.representations.registry import get_representation

    rep = get_representation(name)
    return InputSpec(
        name=name,
        role=role,
        kind="representation",
        sr=rep.sr,
        params=jsonable(rep.params),
        version=rep.version,
        dtype=rep.dtype,
        fn=rep.fn,
    )


def _seed_everything(estimator: Any, seed: int) -> None:
    """Set every ``random_state`` of a scikit-learn-style estimator, at any nesting depth."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return
    updates = {
        key: seed for key in get_params(deep=True) if key.rsplit("__", 1)[-1] == "random_state"
    }
    if updates:
        estimator.set_params(**updates)


def _calibrated(estimator: Any, dataset: Dataset, seed: int, n_inputs: int) -> tuple[Any, str]:
    """Wrap a classifier without ``predict_proba`` in a seeded calibration: Platt (sigmoid) for
    one input array, a multinomial logistic regression on out-of-fold decision values for a
    dict of several inputs (:class:`merkit.estimators.calibration.CrossValCalibratedClassifier`)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold

    from merkit.estimators.calibration import CrossValCalibratedClassifier

    n_splits = min(5, min(dataset.counts().values()))
    if n_splits < 2:
        raise DataError(
            f"calibrating probabilities needs at least 2 songs per quadrant in {dataset.name!r}"
        )
    if n_inputs > 1:
        wrapped = CrossValCalibratedClassifier(estimator, n_splits=n_splits, random_state=seed)
        return wrapped, (
            f"multinomial logistic regression on out-of-fold decision values "
            f"({n_splits}-fold, seed {seed})"
        )
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    wrapped = CalibratedClassifierCV(estimator, method="sigmoid", cv=cv, ensemble=False)
    return wrapped, f"Platt sigmoid on out-of-fold decision values ({n_splits}-fold, seed {seed})"


def _median_duration(dataset: Dataset) -> float | None:
    """Median clip length in seconds from headers or source attributes; None if unknown."""
    from merkit.audio.decode import audio_info

    durations: list[float] = []
    for song in dataset.songs:
        source = song.source
        path = getattr(source, "path", None)
        length = getattr(source, "duration", None)
        try:
            if path is not None:
                durations.append(audio_info(path).duration)
            elif isinstance(length, int | float):
                durations.append(float(length))
        except MerkitError:
            continue  # an unreadable header: the feature extraction will name the file
    if not durations:
        return None
    return float(np.median(durations))


def _window_settings(
    window_s: float | None, hop_s: float | None, median: float | None
) -> tuple[float, float]:
    if window_s is None:
        window_s = (
            DEFAULT_WINDOW_S if median is None else max(1.0, math.ceil(round(median * 10, 6)) / 10)
        )
    if not window_s >= 1.0:
        raise ConfigError(f"the window must be at least 1 s long, got {window_s}")
    hop_s = window_s / 2 if hop_s is None else hop_s
    if not 0 < hop_s <= window_s:
        raise ConfigError(f"the hop must be in (0, window] = (0, {window_s}], got {hop_s}")
    return float(window_s), float(hop_s)


# ---------------------------------------------------------------------------------------------
# Cross-validation results for the card


def read_cv_results(
    path: Path, method: str, dataset: Dataset, params: dict[str, Any] | None = None
) -> CvScores:
    """This method's row of a benchmark ``results.csv``, checked against the training data.

    The benchmark writes ``<out>/results.csv`` and ``<out>/<method>/config.json``; when the latter
    exists, a different song list or settings becomes a caveat printed in the model card.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, has no row for ``method``, or that row is on another
        dataset.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cross-validation results file does not exist: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read cross-validation results {path}: {exc}") from None
    needed = {"method", "dataset", "f1"}
    if not needed <= set(frame.columns):
        raise ConfigError(
            f"{path} is not a merkit benchmark results.csv (it lacks columns "
            f"{', '.join(sorted(needed - set(frame.columns)))})"
        )
    rows = frame[frame["method"] == method]
    if rows.empty:
        listed = ", ".join(map(str, frame["method"])) or "none"
        raise ConfigError(f"{path} has no results for method {method!r} (it lists: {listed})")
    row = rows.iloc[-1]
    if str(row["dataset"]) != dataset.name:
        raise ConfigError(
            f"{path}: the results of {method!r} are on dataset {row['dataset']!r}, "
            f"but the model is trained on {dataset.name!r}"
        )

    def number(column: str) -> float | None:
        value = row.get(column)
        return None if value is None or pd.isna(value) else float(value)

    n_splits = number("n_splits")
    return CvScores(
        source=path.name,
        dataset=str(row["dataset"]),
        protocol=str(row.get("protocol", "unknown protocol")),
        n_splits=None if n_splits is None else int(n_splits),
        f1=float(row["f1"]),
        f1_std=number("f1_std"),
        precision=number("precision"),
        recall=number("recall"),
        accuracy=number("accuracy"),
        f1_per_quadrant={q: v for q in QUADRANTS if (v := number(f"f1_{q}")) is not None},
        caveats=_cv_caveats(path.parent / method / "config.json", dataset, params or {}),
        comparisons=_cv_comparisons(path.parent, method),
    )


def _cv_comparisons(run_dir: Path, method: str) -> list[CvComparison]:
    """The method against every other method of the same benchmark folder with the same folds
    (Nadeau & Bengio's corrected resampled t-test on per-fold macro F1); none when fold records
    are missing or differ."""
    from merkit.protocol.results import load_results
    from merkit.report.stats import corrected_resampled_ttest, fold_scores

    try:
        results = load_results(run_dir)
    except MerkitError:
        return []
    if method not in results:
        return []
    comparisons = []
    for other in results.methods:
        if other == method:
            continue
        try:
            scores, ratio = fold_scores({method: results[method], other: results[other]}, "f1")
        except MerkitError:
            continue  # other folds: no paired test
        if len(scores) < 2:
            continue
        test = corrected_resampled_ttest((scores[method] - scores[other]).to_numpy(), ratio)
        comparisons.append(
            CvComparison(
                other=other,
                n_folds=len(scores),
                other_f1=float(scores[other].mean()),
                delta_f1=test.mean,
                ci_low=test.ci_low,
                ci_high=test.ci_high,
                t=test.t,
                p=test.p,
            )
        )
    return comparisons


def _cv_caveats(config_path: Path, dataset: Dataset, params: dict[str, Any]) -> list[str]:
    if not config_path.is_file():
        return []
    try:
        stamp = json.loads(config_path.read_text())
    except (json.JSONDecodeError, OSError):
        return [f"{config_path.name} beside the results could not be read"]
    caveats = []
    if stamp.get("fingerprint") not in (None, dataset.fingerprint()):
        caveats.append(
            "the cross-validation ran on a different list of songs than this model was trained on"
        )
    cv_params = (stamp.get("config") or {}).get("params")
    if cv_params is not None and cv_params != jsonable(params):
        caveats.append(
            f"the cross-validation used the settings {cv_params}, this model {jsonable(params)}"
        )
    return caveats


# ---------------------------------------------------------------------------------------------
# Saving


def save_model(model: TrainedModel, out_dir: Path | str) -> Path:
    """Write ``model`` as a model directory (:func:`merkit.product.model_dir.save_model_dir`).

    The replacement of an existing model is atomic: a kill at any instant leaves the old model or
    the new one complete at ``out_dir``. Any other existing non-empty folder is refused.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ModelError
        ``out_dir`` is a non-empty folder that is not a model directory, or writing fails.

    The folder is recorded in the trust list (:mod:`merkit.trust`): merkit wrote it here, so
    ``merkit predict`` loads it without ``--trust`` while it stays unchanged.
    """
    out_dir = Path(out_dir)
    model.manifest = save_model_dir(model.estimator, model.manifest, model.card, out_dir)
    from merkit.trust import record_trust

    with contextlib.suppress(OSError, MerkitError):  # unwritable list: predict asks for --trust
        record_trust(out_dir, "merkit")  # merkit wrote it here: `merkit predict` may load it
    return out_dir


__all__ = [
    "JOBLIB_FILE",
    "MANIFEST",
    "MODEL_CARD",
    "MODEL_FORMAT",
    "TORCH_FILE",
    "CvScores",
    "EstimatorFile",
    "InputSpec",
    "ModelManifest",
    "TrainedModel",
    "TrainingData",
    "library_versions",
    "model_card",
    "read_cv_results",
    "save_model",
    "train_final",
]

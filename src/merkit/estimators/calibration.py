"""Class probabilities for classifiers that give only decision values, whatever their inputs.

scikit-learn's :class:`~sklearn.calibration.CalibratedClassifierCV` needs one array ``X``;
merkit's multi-input estimators (a fusion of own features and CRNN tags, say) take a dict of
arrays keyed by input name. :class:`CrossValCalibratedClassifier` does the same job for both:
out-of-fold decision values on ``n_splits`` stratified folds fit a multinomial logistic
regression, and the estimator is then refitted on every row (scikit-learn's ``ensemble=False``).

How reliable the probabilities are is measured on cross-validated (out-of-fold) predictions:
:func:`expected_calibration_error` and :func:`reliability_table`. :class:`ProbabilityCalibration`
is an optional post-hoc layer stored beside a model's estimator (``calibration.json``), fitted on
out-of-fold predictions only: a temperature on the log-probabilities and the threshold below
which an answer is called mixed (:func:`mixed_threshold`). The estimator itself is not touched.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from merkit.core.errors import DataError, ModelError
from merkit.core.inputs import take
from merkit.core.protocols import ReportsTraining, training_history_of

CALIBRATION_FILE = "calibration.json"
"""The optional post-hoc calibration layer of a model directory."""


def decision_scores(estimator: Any, X: Any) -> np.ndarray:
    """``(n, n_classes)`` scores: the decision function, else log-probabilities."""
    if hasattr(estimator, "decision_function"):
        scores = np.asarray(estimator.decision_function(X), dtype=np.float64)
        return scores[:, None] if scores.ndim == 1 else scores
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    return np.log(np.clip(proba, 1e-3, 1.0))


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of an input array, or of every array of a dict of inputs."""
    if isinstance(X, Mapping):
        return {name: take(value, rows) for name, value in X.items()}
    return take(X, rows)


def n_rows(X: Any) -> int:
    """Number of rows of an input array or of a dict of equally long inputs."""
    if isinstance(X, Mapping):
        lengths = {len(value) for value in X.values()}
        if len(lengths) != 1:
            raise DataError(f"inputs differ in length: {sorted(lengths)}")
        return lengths.pop()
    return len(X)


class CrossValCalibratedClassifier(ClassifierMixin, BaseEstimator, ReportsTraining):
    """Calibrate ``estimator``'s decision values into class probabilities (any input type).

    Parameters
    ----------
    estimator : classifier
        Fitted ``n_splits + 1`` times: once per fold for out-of-fold decision values, once on
        every row for prediction.
    n_splits : int
        Stratified folds (shuffled with ``random_state``).
    random_state : int, optional
        Seed of the fold split and of the logistic regression.
    """

    def __init__(self, estimator: Any, n_splits: int = 5, random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.n_splits = n_splits
        self.random_state = random_state

    def training_history(self) -> Any:
        """The fitted inner estimator's training history, if it reports one
        (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return training_history_of(getattr(self, "estimator_", None))

    def fit(self, X: Any, y: Any) -> CrossValCalibratedClassifier:
        """Out-of-fold decision values → logistic regression; then the estimator on all rows."""
        y = np.asarray(y)
        n = n_rows(X)
        folds = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.random_state)
        oof: np.ndarray | None = None
        for train, test in folds.split(np.zeros(n), y):
            fitted = clone(self.estimator).fit(take_rows(X, train), y[train])
            scores = decision_scores(fitted, take_rows(X, test))
            if oof is None:
                oof = np.zeros((n, scores.shape[1]))
            oof[test] = scores
        assert oof is not None
        self.calibrator_ = LogisticRegression(max_iter=2000, random_state=self.random_state)
        self.calibrator_.fit(oof, y)
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.calibrator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, columns in :attr:`classes_` order."""
        return self.calibrator_.predict_proba(decision_scores(self.estimator_, X))

    def supports_refit(self) -> bool:
        """Whether the fitted estimator's SVM can be refitted with examples
        (:mod:`merkit.estimators.support_refit`)."""
        from merkit.estimators.support_refit import supports_refit

        return hasattr(self, "estimator_") and supports_refit(self.estimator_)

    def refit_with_examples(
        self, X: Any, y: Any, sample_weight: np.ndarray
    ) -> CrossValCalibratedClassifier:
        """A copy whose estimator is refitted on its support vectors plus ``(X, y)``.

        The calibration map is kept as fitted: it assumes the refitted SVM's decision values
        keep the original's scale (the same C and gamma, most support vectors shared)."""
        from merkit.estimators.support_refit import refit_with_examples

        refitted = copy.copy(self)
        refitted.estimator_ = refit_with_examples(self.estimator_, X, y, sample_weight)
        return refitted

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# ---------------------------------------------------------------------------------------------
# Reliability of probabilities, and a post-hoc layer fitted on out-of-fold predictions


def _top(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if proba.ndim != 2 or len(proba) != len(y):
        raise DataError(f"probabilities of shape {proba.shape} for {len(y)} labels")
    return proba.max(axis=1), (proba.argmax(axis=1) == y).astype(np.float64)


def reliability_table(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Top-label reliability: for each of ``n_bins`` equal-width bins of the top probability,
    its range, how many answers fall in it, their mean confidence and how often they are right.

    ``y`` holds column indices of ``proba`` (the true class of each row).
    """
    conf, right = _top(proba, y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = which == b
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": int(mask.sum()),
                "confidence": float(conf[mask].mean()) if mask.any() else math.nan,
                "accuracy": float(right[mask].mean()) if mask.any() else math.nan,
            }
        )
    return rows


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Top-label expected calibration error: the answer-weighted mean gap between confidence
    and accuracy over ``n_bins`` equal-width bins (0 = a confidence of 70 % is right 70 % of
    the time)."""
    rows = reliability_table(proba, y, n_bins)
    n = sum(r["n"] for r in rows)
    return float(
        sum(r["n"] * abs(r["confidence"] - r["accuracy"]) for r in rows if r["n"]) / max(n, 1)
    )


def scale_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``p ** (1/T)``, renormalised: T > 1 softens probabilities, T < 1 sharpens them."""
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the log loss of ``scale_temperature(proba, T)`` (T in
    [0.05, 20])."""
    from scipy.optimize import minimize_scalar

    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)

    def loss(log_t: float) -> float:
        p = scale_temperature(proba, math.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))

    found = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(found.x))


def mixed_threshold(proba: np.ndarray, y: np.ndarray, *, accuracy: float = 0.5) -> float:
    """The top probability below which the first choice is right less often than ``accuracy``.

    Fitted as an isotonic (non-decreasing) curve of "the top answer is right" against the top
    probability; the threshold is the smallest top probability whose fitted accuracy reaches
    ``accuracy`` (answers below it are called mixed).
    """
    from sklearn.isotonic import IsotonicRegression

    conf, right = _top(proba, y)
    curve = IsotonicRegression(out_of_bounds="clip").fit(conf, right)
    grid = np.round(np.arange(0.25, 1.0001, 0.005), 3)
    reached = grid[curve.predict(grid) >= accuracy]
    return float(reached[0]) if reached.size else 1.0


@dataclass(frozen=True)
class ProbabilityCalibration:
    """A post-hoc layer over a model's probabilities, stored as ``calibration.json``.

    Attributes
    ----------
    temperature : float
        Applied as :func:`scale_temperature` to each window's probabilities (1 = unchanged).
    mixed_below : float
        Answers whose top probability (after the temperature) is below this are mixed.
    fitted_on : str
        What it was fitted on, in words (out-of-fold predictions of which protocol).
    ece_before, ece_after : float, optional
        Expected calibration error of those predictions without and with the layer (the latter
        cross-fitted: each song's prediction scored with a layer fitted without it).
    """

    temperature: float = 1.0
    mixed_below: float = 0.5
    fitted_on: str = ""
    ece_before: float | None = None
    ece_after: float | None = None

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """The calibrated probabilities (unchanged for temperature 1)."""
        if self.temperature == 1.0:
            return np.asarray(proba, dtype=np.float64)
        return scale_temperature(proba, self.temperature)

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / CALIBRATION_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ProbabilityCalibration | None:
        """The layer of a model directory, or None when it has none."""
        path = Path(model_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            layer = cls(**data)
            ok = 0.0 < float(layer.temperature) < 100.0 and 0.0 <= float(layer.mixed_below) <= 1.0
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"{path} is damaged: {exc}") from None
        if not ok:
            raise ModelError(f"{path}: temperature or mixed_below out of range")
        return layer


def in_fold_probabilities(
    model: Any, X_train: Any, y_train: Any, X_test: Any, *, n_splits: int = 5, seed: int = 0
) -> np.ndarray | None:
    """Calibrated probabilities for a fitted ``model`` that has only a decision function.

    What a benchmark records for a method whose shipped form is calibrated (an RBF SVM): the
    fitted pipeline's steps before the classifier (scaling, in-fold ReliefF) transform the
    training fold once; the classifier alone is refitted on ``n_splits`` stratified parts of it
    for out-of-fold decision values, which fit a multinomial logistic regression. Only training
    songs are used, and the model's own predictions are left as they are (the probabilities
    are reported beside them, e.g. for the report's arousal/valence plot); the cost is
    ``n_splits`` extra fits of the final classifier on already-transformed features.

    Returns
    -------
    ndarray of shape (n_test, n_classes), or None
        None when ``model`` has no ``decision_function`` or the inputs are not one array (a
        dict of inputs), or a quadrant has fewer than ``n_splits`` training songs.
    """
    from sklearn.pipeline import Pipeline

    if not hasattr(model, "decision_function") or isinstance(X_train, Mapping):
        return None
    y_train = np.asarray(y_train)
    if np.bincount(y_train).min(initial=n_splits) < n_splits:
        return None
    if isinstance(model, Pipeline):
        head, final = model[:-1], model[-1]
        Z_train, Z_test = head.transform(X_train), head.transform(X_test)
    else:
        final, Z_train, Z_test = model, X_train, X_test
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    oof: np.ndarray | None = None
    for train, test in folds.split(np.zeros(len(y_train)), y_train):
        fitted = clone(final).fit(take(Z_train, train), y_train[train])
        scores = decision_scores(fitted, take(Z_train, test))
        oof = np.zeros((len(y_train), scores.shape[1])) if oof is None else oof
        oof[test] = scores
    calibrator = LogisticRegression(max_iter=2000, random_state=seed).fit(oof, y_train)
    proba = calibrator.predict_proba(decision_scores(final, Z_test))
    # Columns in label order 0..k-1 even if a class were missing from the calibrator.
    full = np.zeros((proba.shape[0], int(y_train.max()) + 1))
    full[:, calibrator.classes_] = proba
    return full


__all__ = [
    "CALIBRATION_FILE",
    "CrossValCalibratedClassifier",
    "ProbabilityCalibration",
    "decision_scores",
    "expected_calibration_error",
    "fit_temperature",
    "in_fold_probabilities",
    "mixed_threshold",
    "n_rows",
    "reliability_table",
    "scale_temperature",
    "take_rows",
]

"""Class probabilities for classifiers that give only decision values, whatever their inputs.

scikit-learn's :class:`~sklearn.calibration.CalibratedClassifierCV` needs one array ``X``;
merkit's multi-input estimators (a fusion of own features and CRNN tags, say) take a dict of
arrays keyed by input name. :class:`CrossValCalibratedClassifier` does the same job for both:
out-of-fold decision values on ``n_splits`` stratified folds fit a multinomial logistic
regression, and the estimator is then refitted on every row (scikit-learn's ``ensemble=False``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from merkit.core.errors import DataError
from merkit.core.inputs import take


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


class CrossValCalibratedClassifier(ClassifierMixin, BaseEstimator):
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


__all__ = ["CrossValCalibratedClassifier", "decision_scores", "n_rows", "take_rows"]

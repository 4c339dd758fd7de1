"""Feature alignment: re-standardise a fitted model's input space on a user's own collection.

A model trained on one collection meets another whose features are shifted and scaled (other
instruments, recording, mastering): its SVM sees every song of the new collection off to one
side, and answers one quadrant for most of them. :class:`FeatureAlignment` moves the new
collection's rows back where the training rows were, column by column, in the space the final
classifier sees (:func:`merkit.estimators.axes.model_space`: after the model's imputers and
scalers),

    z' = (z - m_target) / s_target * s_source + m_source,

with the target's mean ``m_target`` and standard deviation ``s_target`` estimated on the user's
songs, *unlabelled* (a diagonal CORAL, Sun et al. 2016), shrunk toward the source's with ``prior``
pseudo-songs so a handful of songs moves them only part of the way. :func:`aligned_copy` puts a
fitted alignment in front of a fitted model's final classifier (the model passed in is never
changed), so the calibration and everything after it stay as fitted.

Measured on 4QAED's held-out genres (``benchmarks/results/4qaed_adapt_fewshot.md``) an
alignment on *unlabelled* songs hurts there: a genre's features differ from the training mix
mostly because its songs are mostly one quadrant, and re-centring removes exactly that.
:class:`ClassShift` instead estimates the offset from a few *labelled* songs, quadrant by
quadrant (``merkit adapt --kind shift``, followed by an SVM refit).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from merkit.core.errors import ModelError

DEFAULT_PRIOR = 10.0
"""Pseudo-songs of trust in the source statistics when estimating the target's."""


class FeatureAlignment(TransformerMixin, BaseEstimator):
    """Column-wise mean/scale alignment of target rows onto source rows (module docstring).

    Parameters
    ----------
    prior : float
        Shrinkage of the target's mean and log-scale toward the source's, in rows.
    scale : bool
        Align the scale too (else only the mean).
    """

    def __init__(self, prior: float = DEFAULT_PRIOR, scale: bool = True) -> None:
        self.prior = prior
        self.scale = scale

    def fit(self, source: np.ndarray, target: np.ndarray) -> FeatureAlignment:
        """Source statistics from ``source`` rows (the training songs, or their mean and
        standard deviation as a ``(2, d)`` array), target statistics from ``target`` rows."""
        source = np.asarray(source, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
            raise ValueError("source and target must be 2-D with the same number of columns")
        if len(target) < 2:
            raise ValueError("alignment needs at least 2 target rows")
        eps = 1e-6
        self.source_mean_ = source.mean(axis=0)
        self.source_std_ = np.maximum(source.std(axis=0), eps)
        n = len(target)
        w = n / (n + self.prior)
        self.target_mean_ = w * target.mean(axis=0) + (1 - w) * self.source_mean_
        log_t = np.log(np.maximum(target.std(axis=0), eps))
        self.target_std_ = np.exp(w * log_t + (1 - w) * np.log(self.source_std_))
        if not self.scale:
            self.target_std_ = self.source_std_.copy()
        # constant source columns (std ~ 0) are only re-centred
        self.target_std_ = np.where(self.source_std_ <= eps, 1.0, self.target_std_)
        self.n_target_ = n
        return self

    def transform(self, Z: Any) -> np.ndarray:
        Z = np.asarray(Z, dtype=np.float64)
        ratio = np.where(self.source_std_ <= 1e-6, 1.0, self.source_std_ / self.target_std_)
        return (Z - self.target_mean_) * ratio + self.source_mean_


class ClassShift(TransformerMixin, BaseEstimator):
    """Subtract a fitted domain offset from every row (:func:`fit_class_shift`).

    Attributes
    ----------
    offset_ : np.ndarray
        ``(d,)``: what the user's songs of each quadrant sit off from the training songs of that
        quadrant, on average over the quadrants, shrunk toward 0.
    """

    def __init__(self, prior: float = DEFAULT_PRIOR) -> None:
        self.prior = prior

    def fit(
        self,
        rows: np.ndarray,
        labels: np.ndarray,
        class_means: np.ndarray,
    ) -> ClassShift:
        """Offset from labelled ``rows`` (one per song) with quadrant codes ``labels`` and the
        source's per-class means ``class_means`` (``(k, d)``): the mean over the labelled
        classes of (their mean minus the source's mean), times ``n / (n + prior)``.

        Unlike :class:`FeatureAlignment` the offset compares songs of the *same* quadrant, so a
        collection that is mostly one quadrant is not pulled toward the training mix."""
        rows = np.asarray(rows, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        class_means = np.asarray(class_means, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != class_means.shape[1]:
            raise ValueError("rows and class means must have the same number of columns")
        if not self.prior >= 0:
            raise ValueError(f"prior must be >= 0, not {self.prior}")
        seen = np.unique(labels)
        delta = np.mean([rows[labels == c].mean(0) - class_means[c] for c in seen], axis=0)
        self.offset_ = len(rows) / (len(rows) + self.prior) * delta
        self.n_songs_ = len(rows)
        return self

    def transform(self, Z: Any) -> np.ndarray:
        return np.asarray(Z, dtype=np.float64) - self.offset_


def final_classifier(estimator: Any) -> Any:
    """The fitted classifier at the end of ``estimator`` (what sees the model-space rows)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from merkit.estimators.calibration import CrossValCalibratedClassifier
    from merkit.estimators.fusion import FusionClassifier

    if isinstance(estimator, CrossValCalibratedClassifier):
        return final_classifier(estimator.estimator_)
    if isinstance(estimator, CalibratedClassifierCV):
        return final_classifier(estimator.calibrated_classifiers_[0].estimator)
    if isinstance(estimator, GridSearchCV):
        return final_classifier(estimator.best_estimator_)
    if isinstance(estimator, FusionClassifier):
        return final_classifier(estimator.final_estimator_)
    if isinstance(estimator, Pipeline):
        return final_classifier(estimator.steps[-1][1])
    if hasattr(estimator, "base"):
        return final_classifier(estimator.base)
    return estimator


def source_class_means(estimator: Any, reference: np.ndarray, k: int) -> np.ndarray:
    """Per-class means of the training rows ``reference`` (model space, e.g. a familiarity
    measure's ``reference_``), each row labelled by the model's own answer for it (the training
    labels are not kept in a model folder; on its training songs the model is mostly right)."""
    reference = np.asarray(reference, dtype=np.float64)
    pred = np.asarray(final_classifier(estimator).predict(reference)).astype(np.int64)
    overall = reference.mean(0)
    return np.stack(
        [reference[pred == c].mean(0) if (pred == c).any() else overall for c in range(k)]
    )


def _insert(pipeline: Any, alignment: FeatureAlignment) -> Any:
    from sklearn.pipeline import Pipeline

    steps = list(pipeline.steps)
    return Pipeline([*steps[:-1], ("align", alignment), steps[-1]])


def aligned_copy(estimator: Any, alignment: Any) -> Any:
    """A copy of the fitted ``estimator`` whose final classifier sees aligned rows.

    Reaches through merkit's calibration wrapper, scikit-learn's ``CalibratedClassifierCV``
    (each calibrated copy), early fusion and pipelines, like
    :func:`merkit.estimators.axes.model_space`.

    Raises
    ------
    ModelError
        An estimator whose final classifier merkit cannot reach.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

    from merkit.estimators.calibration import CrossValCalibratedClassifier
    from merkit.estimators.fusion import FusionClassifier

    est = copy.copy(estimator)
    if isinstance(est, CrossValCalibratedClassifier):
        est.estimator_ = aligned_copy(est.estimator_, alignment)
        return est
    if isinstance(est, CalibratedClassifierCV):
        est.calibrated_classifiers_ = [copy.copy(c) for c in est.calibrated_classifiers_]
        for c in est.calibrated_classifiers_:
            c.estimator = aligned_copy(c.estimator, alignment)
        return est
    if isinstance(est, FusionClassifier):
        if est.combine != "early":
            raise ModelError("feature alignment needs one input space: early fusion, not late")
        final = est.final_estimator_
        if not isinstance(final, Pipeline):
            final = Pipeline([("classifier", final)])
        est.final_estimator_ = _insert(final, alignment)
        return est
    if isinstance(est, Pipeline):
        return _insert(est, alignment)
    if hasattr(est, "base"):  # merkit.product.adapt.RecalibratedClassifier
        est.base = aligned_copy(est.base, alignment)
        return est
    raise ModelError(f"merkit cannot align the inputs of {type(estimator).__name__}")


__all__ = [
    "DEFAULT_PRIOR",
    "ClassShift",
    "FeatureAlignment",
    "aligned_copy",
    "final_classifier",
    "source_class_means",
]

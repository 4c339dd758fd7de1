"""Refit a trained SVM on its own support vectors plus a few new, weighted examples.

A kernel SVM's solution depends only on its support vectors: the other training points lie
outside the margin with zero dual weight, so an SVM trained on the support vectors alone is the
same model (for scikit-learn's one-vs-one :class:`~sklearn.svm.SVC`, ``support_vectors_`` is the
union over the class pairs, and a point outside one pair's margin leaves that pair's solution
unchanged). A shipped model carries its support vectors but not its training set, so adding a
handful of labelled songs from a user's domain and refitting on support vectors + new songs
moves the boundary near those songs much as a full retrain would. Measured on 4QAED's held-out
genres (``benchmarks/results/4qaed_adapt_refit.md``), this matches retraining on every training
song plus the examples to within a few tenths of a point.

:func:`refit_with_examples` walks a fitted model down to its SVM: a
:class:`~sklearn.svm.SVC`, a :class:`~sklearn.model_selection.GridSearchCV` around one (its best
estimator is refitted), a :class:`~sklearn.pipeline.Pipeline` ending in one (earlier steps
transform the examples as fitted, never refitted), a scikit-learn
:class:`~sklearn.calibration.CalibratedClassifierCV` (each calibrated copy's SVM; the calibration
maps are kept), or any estimator with a ``refit_with_examples(X, y, sample_weight)`` method
(merkit's :class:`~merkit.estimators.fusion.FusionClassifier` and
:class:`~merkit.estimators.calibration.CrossValCalibratedClassifier`). The model passed in is never
changed.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from merkit.core.errors import DataError, ModelError

__all__ = ["refit_svc", "refit_with_examples", "supports_refit"]


def _svc_of(step: Any) -> SVC | None:
    """The fitted SVC a step is or wraps (a search's best estimator), else None."""
    if isinstance(step, BaseSearchCV):
        step = getattr(step, "best_estimator_", None)
    return step if isinstance(step, SVC) and hasattr(step, "support_vectors_") else None


def supports_refit(model: Any) -> bool:
    """Whether :func:`refit_with_examples` can refit ``model`` (it ends in a fitted SVC)."""
    if hasattr(model, "supports_refit"):
        return bool(model.supports_refit())
    if isinstance(model, Pipeline):
        return _svc_of(model.steps[-1][1]) is not None
    if isinstance(model, CalibratedClassifierCV):
        found = getattr(model, "calibrated_classifiers_", [])
        return bool(found) and all(supports_refit(c.estimator) for c in found)
    return _svc_of(model) is not None


def refit_svc(svc: SVC, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> SVC:
    """A new SVC with ``svc``'s settings, fitted on its support vectors and ``(X, y)``.

    Each support vector weighs 1 (merkit fits its SVMs unweighted); ``sample_weight`` weighs
    the new rows. ``y`` holds labels of ``svc.classes_``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    weight = np.asarray(sample_weight, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != svc.support_vectors_.shape[1]:
        raise DataError(
            f"examples have shape {X.shape}; the SVM was trained on "
            f"{svc.support_vectors_.shape[1]} columns"
        )
    if len(y) != len(X) or len(weight) != len(X):
        raise DataError(f"{len(X)} example rows but {len(y)} labels and {len(weight)} weights")
    unknown = sorted(set(np.unique(y).tolist()) - set(svc.classes_.tolist()))
    if unknown:
        raise DataError(f"example labels {unknown} are not classes of the model")
    labels = np.repeat(svc.classes_, svc.n_support_)  # support vectors are grouped by class
    rows = np.vstack([svc.support_vectors_, X])
    targets = np.concatenate([labels, y])
    weights = np.concatenate([np.ones(len(labels)), weight])
    return clone(svc).fit(rows, targets, sample_weight=weights)


def refit_with_examples(model: Any, X: Any, y: Any, sample_weight: Any = None) -> Any:
    """A copy of the fitted ``model`` whose SVM is refitted on its support vectors + ``(X, y)``.

    Parameters
    ----------
    model : estimator
        A fitted model ending in an SVC (module docstring); left unchanged.
    X : array or dict of arrays
        The examples, in the model's own input format.
    y : array-like
        Their labels (the model's classes).
    sample_weight : array-like, optional
        Weight of each example row (default 1).

    Raises
    ------
    ModelError
        The model has no SVM this function can reach.
    """
    y = np.asarray(y)
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    if hasattr(model, "refit_with_examples"):
        return model.refit_with_examples(X, y, weight)
    if isinstance(model, Pipeline):
        svc = _svc_of(model.steps[-1][1])
        if svc is not None:
            refitted = copy.deepcopy(model)
            inputs = model[:-1].transform(X) if len(model.steps) > 1 else X
            refitted.steps[-1] = (model.steps[-1][0], refit_svc(svc, inputs, y, weight))
            return refitted
    elif isinstance(model, CalibratedClassifierCV) and supports_refit(model):
        refitted = copy.deepcopy(model)
        for calibrated in refitted.calibrated_classifiers_:
            calibrated.estimator = refit_with_examples(calibrated.estimator, X, y, weight)
        return refitted
    elif (svc := _svc_of(model)) is not None:
        return refit_svc(svc, np.asarray(X), y, weight)
    raise ModelError(
        f"refitting with examples needs a model whose classifier is a fitted SVM (svm, svm-own, "
        f"the default fusion); this one is a {type(model).__name__}"
    )

"""A classifier trained on oversampled data: the sampler runs inside ``fit``, on training rows only.

:class:`OversampledClassifier` composes a sampler with the imbalanced-learn interface
(``fit_resample(X, y)``, e.g. :class:`merkit.estimators.deepsmote.DeepSMOTE`) and any classifier:
``fit``
resamples the training data (a cross-validation fold's training songs) and fits the classifier on
the result; ``predict`` applies the classifier to real data only. Synthetic rows belong to no song:
they get fresh group ids of their own, so group-aware training (random chunks per song) never
mixes them with a real song.

A sampler whose ``needs_all_songs`` is True (a published-code compat mode that fits on every
song) gets ``all_songs=(X_all, y_all)`` through :meth:`OversampledClassifier.fit`; merkit's
protocol passes it to such methods only.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from merkit.core.protocols import (
    NeedsAllSongs,
    PredictsDetails,
    ReportsTraining,
    training_history_of,
)

__all__ = ["OversampledClassifier"]


def _accepts(function: Any, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


class OversampledClassifier(
    ClassifierMixin, BaseEstimator, NeedsAllSongs, PredictsDetails, ReportsTraining
):
    """Fit ``estimator`` on ``sampler.fit_resample(X, y)``; predict with it on real data.

    Parameters
    ----------
    sampler : object
        Has ``fit_resample(X, y)`` returning the real rows first, then the synthetic ones.
    estimator : classifier
        Fitted on the resampled data; receives ``groups`` when its ``fit`` takes them.

    Attributes
    ----------
    sampler_ : object
        The fitted clone of ``sampler`` (its ``details()``, if any, go to fold records).
    estimator_ : classifier
        The fitted clone of ``estimator``.
    classes_ : np.ndarray
    n_synthetic_ : int
        Rows the sampler added.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "sampler": [HasMethods(["fit_resample"])],
        "estimator": [HasMethods(["fit", "predict"])],
    }

    def __init__(self, sampler: Any, estimator: Any) -> None:
        self.sampler = sampler
        self.estimator = estimator

    @property
    def needs_all_songs(self) -> bool:
        """The sampler's wish to see every song (published-code compat); False by default."""
        sampler = self.sampler
        return isinstance(sampler, NeedsAllSongs) and bool(sampler.needs_all_songs)

    def fit(
        self,
        X: Any,
        y: Any,
        groups: Any = None,
        all_songs: tuple[Any, Any] | None = None,
    ) -> OversampledClassifier:
        """Resample ``X``, ``y`` and fit the classifier on the result.

        Parameters
        ----------
        X, y : array-like
            Training data (real songs).
        groups : array-like, optional
            Song (group) id per row; synthetic rows get new ids after the largest one. Default:
            one group per row.
        all_songs : (X_all, y_all), optional
            Every song, for a sampler that needs them (see :attr:`needs_all_songs`).
        """
        self._validate_params()
        self.sampler_ = clone(self.sampler)
        options = {"all_songs": all_songs} if self.needs_all_songs else {}
        X_res, y_res = self.sampler_.fit_resample(X, y, **options)
        n_real = len(y)
        self.n_synthetic_ = len(y_res) - n_real
        if groups is None:
            real_groups = np.arange(n_real)
        else:
            real_groups = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
        start = int(real_groups.max()) + 1 if n_real else 0
        all_groups = np.concatenate([real_groups, start + np.arange(self.n_synthetic_)])
        self.estimator_ = clone(self.estimator)
        if _accepts(self.estimator_.fit, "groups"):
            self.estimator_.fit(X_res, y_res, groups=all_groups)
        else:
            self.estimator_.fit(X_res, y_res)
        self.classes_ = self.estimator_.classes_
        return self

    @property
    def history_(self) -> Any:
        """The classifier's training history, when it keeps one (for fold records)."""
        return getattr(getattr(self, "estimator_", None), "history_", None)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The classifier's class probabilities on ``X`` (real data, never resampled)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The classifier's predictions on ``X``."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    def training_history(self) -> Any:
        """The fitted inner estimator's training history, if it reports one
        (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return training_history_of(getattr(self, "estimator_", None))

    def predict_details(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Probabilities, labels and what the sampler did (for fold records)."""
        check_is_fitted(self, "estimator_")
        extras: dict[str, Any] = {}
        if hasattr(self.estimator_, "predict_details"):
            proba, predicted, inner = self.estimator_.predict_details(X, y)
            extras.update(inner or {})
        else:
            proba = self.estimator_.predict_proba(X)
            predicted = self.classes_[np.argmax(proba, axis=1)]
        details = getattr(self.sampler_, "details", None)
        extras.update(details() if callable(details) else {"synthetic_total": self.n_synthetic_})
        return proba, predicted, extras

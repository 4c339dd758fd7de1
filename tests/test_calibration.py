"""CrossValCalibratedClassifier: probabilities for decision-value classifiers with dict inputs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import LinearSVC

from merkit.core.errors import DataError
from merkit.estimators.calibration import (
    CrossValCalibratedClassifier,
    decision_scores,
    n_rows,
    take_rows,
)


class DictLinearSVC(ClassifierMixin, BaseEstimator):
    """A linear SVM on the concatenation of a dict's arrays; counts the rows it is fitted on."""

    fitted_sizes: ClassVar[list[int]] = []

    def fit(self, X, y):
        DictLinearSVC.fitted_sizes.append(n_rows(X))
        self.svm_ = LinearSVC().fit(np.hstack([X["a"], X["b"]]), y)
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, X):
        return self.svm_.decision_function(np.hstack([X["a"], X["b"]]))


def _blobs(n_per_class: int = 30, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array(["Q1", "Q2", "Q3", "Q4"]), n_per_class)
    centres = {"Q1": (4, 0), "Q2": (0, 4), "Q3": (-4, 0), "Q4": (0, -4)}
    xy = np.array([centres[q] for q in labels]) + rng.normal(0, 0.5, (len(labels), 2))
    return {"a": xy[:, :1], "b": xy[:, 1:]}, labels


def test_dict_inputs_get_probabilities_from_out_of_fold_scores() -> None:
    X, y = _blobs()
    DictLinearSVC.fitted_sizes = []
    model = CrossValCalibratedClassifier(DictLinearSVC(), n_splits=4, random_state=0).fit(X, y)
    # four folds of 90 training rows, then one fit on all 120
    assert DictLinearSVC.fitted_sizes == [90, 90, 90, 90, 120]
    proba = model.predict_proba(X)
    assert proba.shape == (120, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_) == ["Q1", "Q2", "Q3", "Q4"]
    # well separated blobs: confident and right
    assert (model.predict(X) == y).mean() == 1.0
    assert proba.max(axis=1).min() > 0.5


def test_helpers_take_rows_of_dicts_and_reject_ragged_inputs() -> None:
    X, _ = _blobs(2)
    part = take_rows(X, np.array([0, 3]))
    np.testing.assert_array_equal(part["a"], X["a"][[0, 3]])
    assert n_rows(X) == 8
    with pytest.raises(DataError, match="inputs differ in length"):
        n_rows({"a": np.zeros(3), "b": np.zeros(4)})
    scores = decision_scores(DictLinearSVC().fit(*_blobs(5)), X)
    assert scores.shape == (8, 4)

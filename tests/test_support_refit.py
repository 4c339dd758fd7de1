"""Refitting a trained SVM on its support vectors plus new examples
(merkit.estimators.support_refit): the
support vectors alone give back the same SVM, examples from a shifted domain move the boundary
there, every supported wrapper is reached, and the model passed in is never changed."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from merkit.core.errors import DataError, ModelError
from merkit.estimators.calibration import CrossValCalibratedClassifier
from merkit.estimators.fusion import FusionClassifier
from merkit.estimators.support_refit import refit_svc, refit_with_examples, supports_refit

CENTRES = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])


def blobs(n_per_class: int, offset: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian classes at :data:`CENTRES` (+ ``offset`` on both axes), sd 0.5."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n_per_class)
    return CENTRES[y] + offset + rng.normal(0, 0.5, (len(y), 2)), y


def shifted_domain(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same four classes with their places permuted (class c sits where c+1 trained), far
    from the training domain: only examples from this domain can teach the model its layout."""
    x, y = blobs(n_per_class, offset=10.0, seed=seed)
    return x, (y - 1) % 4


def test_support_vectors_alone_give_back_the_same_svm() -> None:
    x, y = blobs(60, seed=1)
    svc = SVC(C=2.0, gamma=0.5).fit(x, y)
    assert len(svc.support_) < len(y)  # some points are not support vectors
    again = refit_svc(svc, np.zeros((0, 2)), np.zeros(0, dtype=int), np.zeros(0))
    grid = np.random.default_rng(2).uniform(-2, 5, (500, 2))
    assert again.decision_function(grid) == pytest.approx(svc.decision_function(grid), abs=2e-3)
    assert np.array_equal(again.predict(grid), svc.predict(grid))


def test_examples_from_a_new_domain_move_the_boundary_there_only() -> None:
    x, y = blobs(60, seed=3)
    svc = SVC(C=4.0, gamma=0.5).fit(x, y)
    new_x, new_y = shifted_domain(30, seed=4)
    assert np.mean(svc.predict(new_x) == new_y) < 0.5  # the new layout is unknown to it
    examples = np.concatenate([np.flatnonzero(new_y == c)[:3] for c in range(4)])
    held_out = np.setdiff1d(np.arange(len(new_y)), examples)
    refitted = refit_svc(svc, new_x[examples], new_y[examples], np.full(len(examples), 3.0))
    assert np.mean(refitted.predict(new_x[held_out]) == new_y[held_out]) > 0.95
    test_x, test_y = blobs(40, seed=5)  # the original domain is still classified as before
    assert np.mean(refitted.predict(test_x) == test_y) > 0.95
    assert np.mean(refitted.predict(test_x) == svc.predict(test_x)) > 0.97


def test_every_wrapper_is_refitted_as_a_copy() -> None:
    x, y = blobs(40, seed=6)
    new_x, new_y = shifted_domain(10, seed=7)
    pipe = Pipeline([("scale", StandardScaler()), ("svm", SVC(gamma=0.5))])
    search = Pipeline(
        [("scale", StandardScaler()), ("svm", GridSearchCV(SVC(), {"C": [1.0, 4.0]}, cv=3))]
    )
    platt = CalibratedClassifierCV(
        Pipeline([("scale", StandardScaler()), ("svm", SVC(gamma=0.5))]),
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        ensemble=False,
    )
    for model in (pipe, search, platt, SVC(gamma=0.5)):
        model.fit(x, y)
        before = model.predict(new_x)
        assert supports_refit(model)
        refitted = refit_with_examples(model, new_x, new_y, np.full(len(new_y), 3.0))
        assert refitted is not model
        assert np.array_equal(model.predict(new_x), before)  # the original is untouched
        assert np.mean(refitted.predict(new_x) == new_y) > 0.9, type(model).__name__
    # scaled as fitted: the pipeline's scaler is the original one, not refitted on the examples
    refitted = refit_with_examples(pipe, new_x, new_y)
    assert refitted[0].mean_ == pytest.approx(pipe[0].mean_)


def test_early_fusion_and_its_calibration_refit_their_final_svm() -> None:
    def member() -> Pipeline:
        return Pipeline([("scale", StandardScaler()), ("svm", SVC())])

    x, y = blobs(40, seed=8)
    new_x, new_y = shifted_domain(10, seed=9)

    def split(a: np.ndarray) -> dict[str, np.ndarray]:
        return {"a": a[:, :1], "b": a[:, 1:]}

    fusion = FusionClassifier(
        [("a", member()), ("b", member())],
        {"a": ["a"], "b": ["b"]},
        combine="early",
        final_estimator=Pipeline([("svm", SVC(gamma=0.5))]),
    )
    model = CrossValCalibratedClassifier(fusion, n_splits=3).fit(split(x), y)
    assert supports_refit(model)
    refitted = refit_with_examples(model, split(new_x), new_y, np.full(len(new_y), 3.0))
    assert refitted.calibrator_ is model.calibrator_
    assert refitted.estimator_.transformers_ is model.estimator_.transformers_
    assert refitted.estimator_.final_estimator_ is not model.estimator_.final_estimator_
    assert np.mean(model.predict(split(new_x)) == new_y) < 0.5
    assert np.mean(refitted.predict(split(new_x)) == new_y) > 0.9
    late = FusionClassifier([("a", member())], {"a": ["a"]}, combine="late").fit(split(x), y)
    assert not supports_refit(late)
    with pytest.raises(ModelError, match="only early fusion into an SVM"):
        refit_with_examples(late, split(new_x), new_y)


def test_models_without_an_svm_and_bad_examples_are_refused() -> None:
    x, y = blobs(20, seed=10)
    logreg = LogisticRegression().fit(x, y)
    assert not supports_refit(logreg)
    with pytest.raises(ModelError, match="needs a model whose classifier is a fitted SVM"):
        refit_with_examples(logreg, x, y)
    svc = SVC().fit(x, y)
    with pytest.raises(DataError, match="trained on 2 columns"):
        refit_svc(svc, np.zeros((3, 5)), np.zeros(3, dtype=int), np.ones(3))
    with pytest.raises(DataError, match=r"labels \[7\] are not classes"):
        refit_svc(svc, np.zeros((1, 2)), np.array([7]), np.ones(1))

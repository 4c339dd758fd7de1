"""Feature alignment and the labelled per-quadrant shift (merkit.estimators.align) on a synthetic
shifted domain with known answers: the adapted classifier must beat the unadapted one by a
margin, scored only on songs whose labels were never used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from merkit.estimators.align import (
    ClassShift,
    FeatureAlignment,
    aligned_copy,
    final_classifier,
    source_class_means,
)

CENTRES = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])


def _domain(n: int, offset: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n)
    return CENTRES[y] + offset + rng.normal(0, 0.7, (len(y), 2)), y


@pytest.fixture(scope="module")
def model() -> Pipeline:
    X, y = _domain(50, np.zeros(2), 0)
    return Pipeline([("scale", StandardScaler()), ("svm", SVC(random_state=0))]).fit(X, y)


def test_class_shift_recovers_a_known_offset_and_beats_the_unadapted_model(model) -> None:
    offset = np.array([3.0, -3.0])
    X, y = _domain(40, offset, 1)
    rng = np.random.default_rng(2)
    chosen = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in range(4)]
    )
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    Z = model[:-1].transform(X)
    reference = model[:-1].transform(_domain(50, np.zeros(2), 0)[0])
    means = source_class_means(model, reference, 4)
    shift = ClassShift(prior=0.0).fit(Z[chosen], y[chosen], means)
    expected = offset / model["scale"].scale_
    assert shift.offset_ == pytest.approx(expected, abs=0.35)
    adapted = aligned_copy(model, shift)
    before = np.mean(model.predict(X[rest]) == y[rest])
    after = np.mean(adapted.predict(X[rest]) == y[rest])
    assert after > before + 0.3
    assert final_classifier(adapted) is model[-1]  # the SVM itself is untouched
    assert model.predict(X[:3]).shape == (3,)  # the original still works as before


def test_prior_shrinks_the_shift_by_n_over_n_plus_prior() -> None:
    rows = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    means = np.array([[0.0, 0.0], [2.0, 0.0]])
    assert ClassShift(prior=0.0).fit(rows, labels, means).offset_ == pytest.approx([1.0, 0.0])
    assert ClassShift(prior=4.0).fit(rows, labels, means).offset_ == pytest.approx([0.5, 0.0])


def test_feature_alignment_maps_target_moments_onto_source() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(0, 1, (500, 3))
    target = rng.normal(5, 3, (500, 3))
    out = FeatureAlignment(prior=0.0).fit(source, target).transform(target)
    assert out.mean(0) == pytest.approx(source.mean(0), abs=1e-9)
    assert out.std(0) == pytest.approx(source.std(0), rel=1e-9)
    half = FeatureAlignment(prior=500.0).fit(source, target)
    assert half.target_mean_ == pytest.approx((target.mean(0) + source.mean(0)) / 2)

"""ReliefFSelector: finds planted features, is clonable, and is fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from merkit.core.errors import ConfigError, DataError
from merkit.features.selection import ReliefFSelector, _skrebate_scores, relieff_scores

INFORMATIVE = (1, 3, 4)


def planted(n: int = 160, p: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise features, except three columns whose sum decides one of four classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    signal = X[:, INFORMATIVE].sum(axis=1)
    y = np.digitize(signal, np.quantile(signal, [0.25, 0.5, 0.75]))
    return X, np.array(["Q1", "Q2", "Q3", "Q4"])[y]


def test_planted_features_are_the_top_three() -> None:
    X, y = planted()
    selector = ReliefFSelector(n_features_to_select=3).fit(X, y)
    assert set(np.flatnonzero(selector.get_support())) == set(INFORMATIVE)
    assert set(selector.top_features_[:3]) == set(INFORMATIVE)
    assert sorted(selector.ranking_[list(INFORMATIVE)]) == [1, 2, 3]
    assert selector.scores_.shape == (X.shape[1],)
    # informative features clearly beat the best noise feature
    noise = np.delete(selector.scores_, INFORMATIVE)
    assert selector.scores_[list(INFORMATIVE)].min() > 2 * noise.max()
    assert selector.transform(X).shape == (X.shape[0], 3)
    np.testing.assert_array_equal(selector.transform(X), X[:, sorted(INFORMATIVE)])


def test_ranking_is_a_permutation_consistent_with_scores() -> None:
    X, y = planted(n=80, p=12)
    selector = ReliefFSelector(n_features_to_select=5).fit(X, y)
    assert sorted(selector.ranking_) == list(range(1, 13))
    order = np.argsort(selector.ranking_)
    assert np.all(np.diff(selector.scores_[order]) <= 0)  # rank 1 has the highest score


def test_clone_and_refit_gives_identical_support() -> None:
    X, y = planted()
    first = ReliefFSelector(n_features_to_select=5, n_neighbors=7).fit(X, y)
    second = clone(first)
    assert second.get_params() == {"n_features_to_select": 5, "n_neighbors": 7, "n_jobs": 1}
    assert not hasattr(second, "scores_")
    second.fit(X, y)
    np.testing.assert_array_equal(first.get_support(), second.get_support())
    np.testing.assert_array_equal(first.scores_, second.scores_)


def test_keeps_everything_when_asked_for_more_features_than_exist() -> None:
    X, y = planted(n=60, p=6)
    selector = ReliefFSelector(n_features_to_select=100).fit(X, y)
    assert selector.get_support().all()
    assert selector.transform(X).shape == X.shape


def test_dataframe_input_gives_feature_names_out() -> None:
    X, y = planted(n=80, p=20)
    frame = pd.DataFrame(X, columns=[f"F{i:04d}" for i in range(20)])
    selector = ReliefFSelector(n_features_to_select=3).fit(frame, y)
    assert set(selector.get_feature_names_out()) == {f"F{i:04d}" for i in INFORMATIVE}


def test_constant_and_missing_values_do_not_break_scoring() -> None:
    X, y = planted(n=100, p=15)
    X[:, 0] = 3.0  # constant: no information
    X[[3, 40], 7] = np.nan  # skrebate skips missing values
    selector = ReliefFSelector(n_features_to_select=3).fit(X, y)
    assert np.isfinite(selector.scores_).all()
    assert selector.scores_[0] == 0.0
    assert set(selector.top_features_[:3]) == set(INFORMATIVE)


def _mixed(rng: np.random.Generator, n: int) -> np.ndarray:
    X = rng.normal(size=(n, 12))
    X[:, :3] = rng.integers(0, 3, size=(n, 3))  # discrete columns (<= 10 distinct values)
    X[:, 3] = 1.0  # constant
    return X


@pytest.mark.parametrize(
    "case", ["continuous-4-classes", "binary", "mixed-types", "tiny-class", "all-discrete"]
)
def test_vectorised_relieff_matches_skrebate(case: str) -> None:
    rng = np.random.default_rng(3)
    n = 90
    X = rng.normal(size=(n, 15))
    y = rng.integers(0, 4, size=n)
    if case == "binary":
        y = y % 2
    elif case == "mixed-types":
        X = _mixed(rng, n)
    elif case == "tiny-class":  # fewer members than k: skrebate then counts the instance itself
        y = np.r_[np.zeros(n - 9, int), np.ones(4, int), np.full(5, 2)]
    elif case == "all-discrete":
        X = rng.integers(0, 4, size=(n, 8)).astype(float)
    ours = relieff_scores(X, y, n_neighbors=10)
    reference = _skrebate_scores(X, y, n_neighbors=10, n_jobs=1)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-14)


def test_vectorised_relieff_ranks_a_planted_feature_first() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, size=200)
    X = rng.normal(size=(200, 40))
    X[:, 23] += 2.0 * y  # the only informative column
    assert np.argmax(relieff_scores(X, y, n_neighbors=10)) == 23


class SpySelector(ReliefFSelector):
    """Records the rows every fitted copy saw (clones share the class-level log)."""

    seen: list[np.ndarray] = []  # noqa: RUF012 - deliberately shared across clones

    def fit(self, X: np.ndarray, y: np.ndarray) -> SpySelector:
        SpySelector.seen.append(np.asarray(X)[:, -1].copy())  # last column holds the row id
        return super().fit(X, y)


def test_in_a_pipeline_the_selector_never_sees_test_rows() -> None:
    X, y = planted(n=120, p=10)
    row_id = np.arange(len(X), dtype=float)[:, None]  # a harmless extra column: the row number
    X_ids = np.hstack([X, row_id])
    cv = StratifiedKFold(n_splits=4, shuffle=True, random_state=0)
    SpySelector.seen.clear()
    pipe = make_pipeline(SpySelector(n_features_to_select=4), StandardScaler(), SVC())
    predicted = cross_val_predict(pipe, X_ids, y, cv=cv)
    assert predicted.shape == y.shape
    assert len(SpySelector.seen) == 4
    for (train, test), seen in zip(cv.split(X_ids, y), SpySelector.seen, strict=True):
        np.testing.assert_array_equal(np.sort(seen.astype(int)), train)
        assert not np.isin(test, seen.astype(int)).any()


@pytest.mark.parametrize(
    "params",
    [
        {"n_features_to_select": 0},
        {"n_features_to_select": 2.5},
        {"n_neighbors": 0},
        {"n_jobs": 0},
    ],
)
def test_invalid_parameters_raise_config_error(params: dict[str, object]) -> None:
    X, y = planted(n=40, p=5)
    with pytest.raises(ConfigError, match="ReliefFSelector"):
        ReliefFSelector(**params).fit(X, y)  # type: ignore[arg-type]


def test_single_class_is_a_data_error() -> None:
    X, _ = planted(n=30, p=5)
    with pytest.raises(DataError, match="at least two classes"):
        ReliefFSelector().fit(X, np.array(["Q1"] * 30))

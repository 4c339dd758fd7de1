"""Fusion of member methods: known answers, no test rows in any choice, shapes, clear errors."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from merkit.core.errors import ConfigError
from merkit.estimators.fusion import FusionClassifier, simplex_grid, tuned_clone
from merkit.methods import ResolvedMethod, resolve_method
from merkit.protocol.folds import Fold, ProtocolConfig
from merkit.protocol.runner import fit_fold


def two_halves(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Four classes y = 2a + b; input ``table:a`` carries bit a only, ``table:b`` bit b only."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    xa = rng.normal(size=(n, 4)) + 2.5 * a[:, None]
    xb = rng.normal(size=(n, 4)) + 2.5 * b[:, None]
    return {"table:a": xa, "table:b": xb}, 2 * a + b


HALVES = [
    {"method": "svm", "name": "a", "inputs": ["table:a"], "C": 1.0, "gamma": 0.1},
    {"method": "svm", "name": "b", "inputs": ["table:b"], "C": 1.0, "gamma": 0.1},
]


def macro_f1(estimator: Any, X: dict[str, np.ndarray], y: np.ndarray) -> float:
    return float(f1_score(y, estimator.predict(X), average="macro"))


def test_late_fusion_of_two_half_signals_beats_each_member() -> None:
    X, y = two_halves(400, seed=0)
    X_test, y_test = two_halves(400, seed=1)
    fused = resolve_method("fusion", {"members": HALVES, "combine": "late"}).estimator.fit(X, y)
    alone = [
        resolve_method("svm", {k: v for k, v in m.items() if k not in ("method", "name")})
        for m in HALVES
    ]
    scores = [
        macro_f1(r.estimator.fit(X[r.inputs[0]], y), X_test[r.inputs[0]], y_test) for r in alone
    ]
    # A member knows one of the two bits: at best half of the four classes.
    assert max(scores) < 0.6
    # Each bit is right ~90 % of the time (2.5 sd apart), so both about 0.8.
    assert macro_f1(fused, X_test, y_test) > 0.75
    # Symmetric members: the chosen weights are near even, and sum to one.
    assert fused.weights_.sum() == pytest.approx(1.0)
    assert 0.3 <= fused.weights_[0] <= 0.7
    proba = fused.predict_proba(X_test)
    assert proba.shape == (400, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_useless_member_gets_no_weight() -> None:
    X, y = two_halves(400, seed=2)
    X["table:noise"] = np.random.default_rng(3).normal(size=(400, 4))
    members = [
        {"method": "svm", "name": "both", "inputs": ["table:a"], "C": 1.0, "gamma": 0.1},
        {"method": "svm", "name": "noise", "inputs": ["table:noise"], "C": 1.0, "gamma": 0.1},
    ]
    fused = resolve_method("fusion", {"members": members, "combine": "late"}).estimator.fit(X, y)
    assert fused.weights_[1] <= 0.2 < fused.weights_[0]


class Spy(ClassifierMixin, BaseEstimator):
    """Logistic regression that logs the row ids (column 0) it is fitted on and scores."""

    log: ClassVar[list[tuple[str, frozenset[int]]]] = []

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray) -> Spy:
        Spy.log.append(("fit", frozenset(X[:, 0].astype(int).tolist())))
        self.model_ = LogisticRegression(C=self.C).fit(X[:, 1:], y)
        self.classes_ = self.model_.classes_
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        Spy.log.append(("score", frozenset(X[:, 0].astype(int).tolist())))
        return self.model_.decision_function(X[:, 1:])


def test_weights_and_calibration_never_see_the_test_fold() -> None:
    X, y = two_halves(300, seed=4)
    ids = np.arange(300, dtype=float)[:, None]
    inputs = {name: np.hstack([ids, value]) for name, value in X.items()}
    fusion = FusionClassifier(
        [("a", Spy()), ("b", Spy())], {"a": ["table:a"], "b": ["table:b"]}, inner_cv=4
    )
    method = ResolvedMethod.of("fused", fusion, ["table:a", "table:b"])
    rng = np.random.default_rng(0)
    test = np.sort(rng.choice(300, 60, replace=False))
    train = np.setdiff1d(np.arange(300), test)
    fold = Fold(repeat=0, fold=0, train=train, test=test)
    Spy.log.clear()
    record = fit_fold(method, inputs, y, fold, ProtocolConfig(), keep_model=True)
    test_ids = set(test.tolist())
    fits = [rows for kind, rows in Spy.log if kind == "fit"]
    # 2 members x (1 final fit + 4 inner fits), none on a test row.
    assert len(fits) == 10
    assert all(not rows & test_ids for rows in fits)
    # Inner fits score only rows they were not fitted on, and together every training row once.
    pairs = list(zip(Spy.log, Spy.log[1:], strict=False))
    inner = [(f[1], s[1]) for f, s in pairs if f[0] == "fit" and s[0] == "score" and f[1] != s[1]]
    inner = [(f, s) for f, s in inner if not s & test_ids]
    assert len(inner) == 8
    assert all(not f & s for f, s in inner)
    assert set().union(*(s for _, s in inner[:4])) == set(train.tolist())
    # The test rows are scored only after every fit, by the two final members (predict_proba,
    # then predict).
    scored_test = [i for i, (kind, rows) in enumerate(Spy.log) if rows & test_ids]
    last_fit = max(i for i, (kind, _) in enumerate(Spy.log) if kind == "fit")
    assert len(scored_test) == 4 and min(scored_test) > last_fit
    assert all(Spy.log[i][1] == test_ids for i in scored_test)
    # The same fit with other test-row values chooses the same weights.
    shuffled = {k: v.copy() for k, v in inputs.items()}
    for value in shuffled.values():
        value[test, 1:] = rng.normal(size=(len(test), 4)) * 10
    again = fit_fold(method, shuffled, y, fold, ProtocolConfig(), keep_model=True)
    np.testing.assert_array_equal(record.model.weights_, again.model.weights_)


def test_stacking_and_early_fusion_shapes() -> None:
    X, y = two_halves(300, seed=5)
    X_test, y_test = two_halves(200, seed=6)
    stacked = resolve_method("fusion", {"members": HALVES, "combine": "stacking"}).estimator
    stacked.fit(X, y)
    assert stacked.final_estimator_.coef_.shape == (4, 8)  # 2 members x 4 class scores
    assert stacked.predict_proba(X_test).shape == (200, 4)
    assert macro_f1(stacked, X_test, y_test) > 0.75
    early = resolve_method("fusion", {"members": HALVES, "combine": "early"}).estimator
    early.fit(X, y)
    assert early.final_estimator_[-1].n_features_in_ == 8  # the two 4-column inputs, joined
    assert not hasattr(early, "predict_proba")  # the default SVC gives no probabilities
    assert early.predict(X_test).shape == (200,)
    assert macro_f1(early, X_test, y_test) > 0.75
    # ... but its decision values, which a product model calibrates into probabilities
    from merkit.estimators.calibration import CrossValCalibratedClassifier

    scores = early.decision_function(X_test)
    assert scores.shape == (200, 4)
    np.testing.assert_array_equal(early.classes_[scores.argmax(1)], early.predict(X_test))
    calibrated = CrossValCalibratedClassifier(
        resolve_method("fusion", {"members": HALVES, "combine": "early"}).estimator, n_splits=3
    ).fit(X, y)
    proba = calibrated.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (calibrated.predict(X_test) == early.predict(X_test)).mean() > 0.9


def test_fusion_is_sklearn_clean() -> None:
    resolved = resolve_method("fusion", {"members": HALVES})
    assert resolved.inputs == ("table:a", "table:b")
    assert resolved.roles == ("table:a", "table:b")
    fusion = resolved.estimator
    params = fusion.get_params()
    assert params["a__svm__C"] == 1.0
    copy = clone(fusion).set_params(a__svm__C=4.0, weight_step=0.25)
    assert copy.get_params()["a__svm__C"] == 4.0
    assert fusion.get_params()["a__svm__C"] == 1.0  # the original is untouched
    assert not hasattr(copy, "weights_")
    assert len(simplex_grid(3, 0.25)) == 15  # C(4 + 2, 2)


def test_tuned_clone_freezes_the_grid_choice() -> None:
    X, y = two_halves(200, seed=7)
    member = resolve_method(
        "svm",
        {
            "inputs": ["table:a"],
            "grid": True,
            "inner_folds": 3,
            "c_exponents": [-3, 3],
            "gamma_exponents": [-5, -1],
        },
    ).estimator
    fitted = clone(member).fit(X["table:a"], y)
    frozen = tuned_clone(fitted)
    assert isinstance(frozen, Pipeline) and isinstance(frozen[0], type(member[0]))
    assert frozen[-1].get_params()["C"] == fitted[-1].best_params_["C"]
    assert frozen[-1].get_params()["gamma"] == fitted[-1].best_params_["gamma"]
    assert not hasattr(frozen[-1], "support_")  # unfitted


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"members": ["svm", "no-such-method"]}, "member 2 ('no-such-method'): unknown method"),
        ({"members": ["svm", "svm"]}, "two members are named 'svm'"),
        ({"members": []}, "non-empty list"),
        ({"members": [{"name": "x"}]}, "entry 1 must be a method name"),
        ({"members": [{"method": "svm", "C": -1}]}, "bad setting 'C'"),
        ({"members": ["fusion"]}, "cannot be a member"),
        ({"combine": "blend"}, "'combine' must be late, stacking or early"),
        ({"weights": [1.0, 1.0, 1.0]}, "one weight per member (2)"),
        ({"inputs": ["own-features"]}, "takes no 'inputs' setting"),
        ({"members": [{"method": "svm", "inputs": ["no-such-rep"]}]}, "no-such-rep"),
    ],
)
def test_bad_settings_fail_before_any_work(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="method 'fusion'") as caught:
        resolve_method("fusion", settings)
    assert message in str(caught.value)


def test_early_fusion_needs_pipelines() -> None:
    fusion = FusionClassifier(
        [("a", LogisticRegression())],
        {"a": ["table:a"]},
        combine="early",
        final_estimator=Pipeline([("s", StandardScaler()), ("lr", LogisticRegression())]),
    )
    X, y = two_halves(40, seed=8)
    with pytest.raises(ConfigError, match="member 'a' must be a pipeline"):
        fusion.fit(X, y)


def test_member_candidates_are_chosen_on_the_inner_folds() -> None:
    X, y = two_halves(300, seed=9)
    members = [
        {**HALVES[0], "tune": {"svm__C": [1e-4, 1.0]}},  # C = 1e-4 cannot separate anything
        HALVES[1],
    ]
    fused = resolve_method("fusion", {"members": members, "combine": "late"}).estimator.fit(X, y)
    assert fused.best_params_ == {"a": {"svm__C": 1.0}}
    assert fused.estimators_[0][-1].C == 1.0
    assert fused.estimators_[1][-1].C == 1.0
    assert set(fused.inner_f1_) == {"a", "b"}
    with pytest.raises(ConfigError, match="'tune' must map parameters"):
        resolve_method("fusion", {"members": [{**HALVES[0], "tune": {"svm__C": 1.0}}]})
    with pytest.raises(ConfigError, match="cannot be tuned"):
        resolve_method("fusion", {"members": [{**HALVES[0], "tune": {"nope": [1]}}]})

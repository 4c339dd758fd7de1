"""Arousal/valence models, the answer rule, familiarity, and their place in a model directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from merkit.core.errors import ModelError
from merkit.core.labels import QUADRANTS
from merkit.estimators.axes import (
    Familiarity,
    axis_target,
    combine,
    fit_axis_models,
    model_space,
    quadrant_of_sides,
)
from merkit.product.companions import add_companions, axis_template
from merkit.product.export import save_model, train_final
from merkit.product.model_dir import read_manifest
from merkit.product.predict import load_model
from merkit.product.prediction import song_result
from merkit.product.relative import with_relative
from merkit.representations.cache import NullCache
from product_helpers import LOGREG, register_test_methods, synthetic_files

register_test_methods()


def test_axis_targets_follow_the_quadrants() -> None:
    y = np.array([0, 1, 2, 3])  # Q1..Q4
    assert axis_target(y, "arousal").tolist() == [1, 1, 0, 0]
    assert axis_target(y, "valence").tolist() == [1, 0, 0, 1]
    assert quadrant_of_sides([1, 1, 0, 0], [1, 0, 0, 1]).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="axis"):
        axis_target(y, "dominance")


def test_combine_by_hand() -> None:
    proba = np.array([[0.4, 0.1, 0.3, 0.2]])
    p_axes = np.array([[0.2, 0.9]])  # low arousal, positive valence
    # joint: p(q) * P(arousal side) * P(valence side) = .072, .002, .024, .144 (sum .242)
    codes, final = combine(proba, p_axes, "joint")
    assert final[0, 0] == pytest.approx((0.072 + 0.002) / 0.242)
    assert final[0, 1] == pytest.approx((0.072 + 0.144) / 0.242)
    assert QUADRANTS[codes[0]] == "Q4"
    codes, final = combine(proba, p_axes, "quadrant")
    assert QUADRANTS[codes[0]] == "Q1" and final[0].tolist() == pytest.approx([0.5, 0.6])
    codes, final = combine(proba, p_axes, "axes")
    assert QUADRANTS[codes[0]] == "Q4" and final[0].tolist() == [0.2, 0.9]


@pytest.mark.parametrize("rule", ["joint", "axes"])
def test_the_answer_always_lies_on_its_axes(rule: str) -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=500)
    p_axes = rng.uniform(size=(500, 2))
    codes, final = combine(proba, p_axes, rule)  # type: ignore[arg-type]
    high = np.isin(codes, [0, 1])
    positive = np.isin(codes, [0, 3])
    assert (high == (final[:, 0] >= 0.5)).all() and (positive == (final[:, 1] >= 0.5)).all()


def _quadrant_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature 0 carries arousal, feature 1 valence, 8 more are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    high = np.isin(y, [0, 1])
    positive = np.isin(y, [0, 3])
    X = rng.normal(size=(n, 10))
    X[:, 0] += np.where(high, 2.0, -2.0)
    X[:, 1] += np.where(positive, 2.0, -2.0)
    return X, y


def test_axis_models_learn_each_axis_on_its_own() -> None:
    X, y = _quadrant_data(400, 0)
    X_test, y_test = _quadrant_data(400, 1)
    template = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    axes = fit_axis_models(template, X, y)
    p = axes.predict_proba(X_test)
    assert ((p[:, 0] >= 0.5) == (axis_target(y_test, "arousal") == 1)).mean() > 0.95
    assert ((p[:, 1] >= 0.5) == (axis_target(y_test, "valence") == 1)).mean() > 0.95
    # the arousal model reads feature 0, the valence model feature 1
    arousal_coef = axes.arousal[-1].coef_[0]
    valence_coef = axes.valence[-1].coef_[0]
    assert np.argmax(np.abs(arousal_coef)) == 0 and np.argmax(np.abs(valence_coef)) == 1


def test_axis_template_keeps_the_recipe_and_ends_in_a_logistic_regression() -> None:
    template, recipe = axis_template("svm-own", {})
    assert isinstance(template, Pipeline)
    assert isinstance(template.steps[-1][1], LogisticRegressionCV)
    assert [name for name, _ in template.steps[:-1]] == ["impute", "scale", "relieff"]
    assert "logistic regression" in recipe
    fusion, _ = axis_template("fusion", {})
    assert isinstance(fusion.final_estimator[-1], LogisticRegressionCV)
    with pytest.raises(ModelError, match="pipeline or early fusion"):
        axis_template("fusion", {"combine": "late"})


def test_model_space_is_what_the_final_classifier_sees() -> None:
    X, y = _quadrant_data(200, 0)
    pipe = Pipeline([("scale", StandardScaler()), ("svm", SVC())])
    calibrated = CalibratedClassifierCV(pipe, cv=3, ensemble=False).fit(X, y)
    inner = calibrated.calibrated_classifiers_[0].estimator
    assert np.allclose(model_space(calibrated, X[:5]), inner[:-1].transform(X[:5]))
    with pytest.raises(ModelError, match="not known"):
        model_space(SVC().fit(X, y), X)


def test_familiarity_flags_about_its_quantile_in_distribution_and_all_noise() -> None:
    X, _ = _quadrant_data(400, 0)
    fresh, _ = _quadrant_data(1000, 1)
    known = Familiarity(k=5, quantile=0.95, n_splits=10).fit(X)
    flagged = (known.relative_distance(fresh) > 1).mean()
    assert 0.0 < flagged < 0.12  # ~5 % by construction (fresh rows see all 400, not 360)
    rng = np.random.default_rng(2)
    assert (known.relative_distance(rng.normal(scale=8.0, size=(50, 10))) > 1).all()
    pipe = Pipeline([("scale", StandardScaler()), ("svm", SVC())]).fit(X, _quadrant_data(400, 0)[1])
    space = model_space(pipe, np.full((1, 10), 1e300))  # overflows to inf after scaling
    assert np.isfinite(space).all() and known.relative_distance(space)[0] > 1


def test_song_result_with_axes_and_familiarity() -> None:
    window_proba = np.array([[0.4, 0.1, 0.3, 0.2], [0.4, 0.1, 0.3, 0.2]])
    spans = [(0.0, 3.0, False), (1.5, 4.5, False)]
    result = song_result(
        None,
        window_proba,
        spans,
        4.5,
        -20.0,
        QUADRANTS,
        {},
        segments=False,
        window_axes=np.array([[0.1, 0.9], [0.3, 0.9]]),
        window_familiarity=np.array([1.5, 2.5]),
    )
    assert result.quadrant_model == "Q1"
    assert result.quadrant == "Q4" and result.arousal == "low" and result.valence == "positive"
    assert result.p_high_arousal_axis == pytest.approx(0.2)
    assert result.p_high_arousal == pytest.approx((0.072 + 0.002) / 0.242)
    assert result.familiarity == pytest.approx(2.0) and result.familiar is False
    assert not result.reliable and any("unlike the music" in w for w in result.warnings)
    plain = song_result(None, window_proba, spans, 4.5, -20.0, QUADRANTS, {}, segments=False)
    assert plain.quadrant == "Q1" and plain.familiar is None and plain.reliable


def test_relative_uses_the_axis_models_each_on_its_own() -> None:
    # quadrant probabilities all alike; the axis models order the songs
    base = song_result(
        None,
        np.array([[0.25, 0.25, 0.25, 0.25]]),
        [(0.0, 3.0, False)],
        3.0,
        -20.0,
        QUADRANTS,
        {},
        segments=False,
    )
    results = [
        base.model_copy(update={"p_high_arousal_axis": a, "p_positive_valence_axis": v})
        for a, v in zip(np.linspace(0.1, 0.3, 10), np.linspace(0.9, 0.7, 10), strict=True)
    ]
    placed = with_relative(results)
    # arousal rises, valence falls: the first songs are low/positive (Q4), the last high/neg (Q2)
    assert [p.relative.quadrant for p in placed[:3]] == ["Q4"] * 3
    assert [p.relative.quadrant for p in placed[-3:]] == ["Q2"] * 3
    assert placed[0].relative.arousal_score == pytest.approx(2 * 0.1 - 1)


@pytest.fixture(scope="module")
def companion_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    songs = synthetic_files(tmp_path_factory.mktemp("synthetic"), n_per_quadrant=5)
    model = train_final(LOGREG, songs, cache=NullCache(), progress=False)
    path = save_model(model, tmp_path_factory.mktemp("models") / "logreg")
    return path, songs


def test_companions_join_a_model_directory_without_moving_its_estimator(
    companion_model: tuple[Path, object],
) -> None:
    path, songs = companion_model
    before = (path / "estimator.joblib").read_bytes()
    answer_before = load_model(path).predict(songs.songs[0].source.path)
    add_companions(path, songs, cache=NullCache(), progress=False)
    assert (path / "estimator.joblib").read_bytes() == before
    manifest = read_manifest(path)
    assert manifest.companions is not None and manifest.companions.rule == "joint"
    assert "Arousal, valence and familiarity" in (path / "MODEL_CARD.md").read_text()
    predictor = load_model(path)
    result = predictor.predict(songs.songs[0].source.path)
    assert result.probabilities == answer_before.probabilities
    assert result.quadrant_model == answer_before.quadrant
    assert result.p_high_arousal_axis is not None and result.familiar is True
    noise = np.random.default_rng(0).normal(scale=0.3, size=3 * 16000).astype(np.float32)
    flagged = predictor.predict(noise, sr=16000)
    assert flagged.familiar is False and not flagged.reliable
    # a damaged companion is named, not half-loaded
    raw = json.loads((path / "manifest.json").read_text())
    raw["companions"]["axes"]["sha256"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=r"axes\.joblib is damaged"):
        load_model(path)


def test_familiarity_flags_a_row_a_little_off_in_many_features() -> None:
    """Pink noise's case: within the usual distance of its nearest training rows, but outside
    the training range in many columns at once."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 60))
    known = Familiarity().fit(X)
    distance_only = Familiarity(tail=0.0).fit(X)
    row = np.zeros((1, 60))
    row[0, :10] = 2.4 * np.sign(np.random.default_rng(1).normal(size=10))
    assert distance_only.relative_distance(row)[0] < 1  # the distance alone misses it
    assert known.relative_distance(row)[0] > 1
    assert 8 / 60 <= known.outside(row)[0] <= 10 / 60  # 2.4 sd lies near the 1 % tails
    # calibrated together: held-out rows flagged by either measure are ~5 %
    flagged = np.maximum(
        known.held_out_distances_ / known.threshold_,
        known.held_out_outside_ / known.tail_threshold_,
    )
    assert np.mean(flagged > 1) <= 0.05
    fresh = rng.normal(size=(1000, 60))
    assert 0.0 < np.mean(known.relative_distance(fresh) > 1) < 0.12


def test_familiarity_saved_before_the_range_measure_scores_by_distance() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5))
    old = Familiarity(tail=0.0).fit(X)
    for name in ("tail", "tail_threshold_", "level_"):  # what an older pickle lacks
        delattr(old, name)
    rows = rng.normal(size=(5, 5))
    assert old.outside(rows) is None
    assert old.relative_distance(rows) == pytest.approx(old.distance(rows) / old.threshold_)


def test_extended_familiarity_knows_the_new_rows_and_forgets_nothing() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    known = Familiarity().fit(X)
    new = rng.normal(loc=6.0, scale=0.3, size=(8, 8))  # a user's songs, far from training
    probe = np.vstack([rng.normal(size=(50, 8)), new])
    extended = known.extended(new)
    assert (known.relative_distance(new) > 1).all()
    middle = new.mean(axis=0, keepdims=True)  # among them: familiar now
    assert known.relative_distance(middle)[0] > 1 and extended.relative_distance(middle)[0] <= 1
    assert (extended.relative_distance(probe) <= known.relative_distance(probe) + 1e-12).all()
    assert extended.threshold_ == known.threshold_
    assert len(known.reference_) == 200 and len(extended.reference_) == 208  # original kept


def test_refresh_familiarity_refits_only_the_familiarity_file(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from merkit.product.companions import refresh_familiarity

    songs = synthetic_files(tmp_path_factory.mktemp("refresh"), n_per_quadrant=4)
    model = train_final(LOGREG, songs, cache=NullCache(), progress=False)
    path = save_model(model, tmp_path_factory.mktemp("models") / "refresh")
    add_companions(path, songs, cache=NullCache(), progress=False)
    old = load_model(path).familiarity
    for name in ("tail", "tail_threshold_", "level_"):
        delattr(old, name)
    old.threshold_ = float(np.quantile(old.held_out_distances_, 0.95))
    import joblib

    joblib.dump(old, path / "familiarity.joblib")  # a measure saved before the range part
    raw = json.loads((path / "manifest.json").read_text())
    from merkit.product.model_dir import _sha256

    raw["companions"]["familiarity"]["sha256"] = _sha256(path / "familiarity.joblib")
    (path / "manifest.json").write_text(json.dumps(raw))
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    manifest = refresh_familiarity(path, card="# card\n")
    after = {p.name: p.read_bytes() for p in path.iterdir()}
    assert {n for n in before if before[n] != after.get(n)} == {
        "familiarity.joblib",
        "manifest.json",
        "MODEL_CARD.md",
    }
    fresh = load_model(path).familiarity
    assert fresh.tail_threshold_ is not None
    assert fresh.reference_ == pytest.approx(old.reference_)
    assert "percentiles, feature by feature" in manifest.companions.familiarity_recipe

"""Honest answers (issue 29.4): the mixed flag, expected calibration error, the post-hoc
temperature layer and its mixed threshold, checked against hand-computed values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from merkit.core.errors import ModelError
from merkit.core.labels import QUADRANT_MEANINGS
from merkit.estimators.calibration import (
    CALIBRATION_FILE,
    ProbabilityCalibration,
    expected_calibration_error,
    fit_temperature,
    mixed_threshold,
    reliability_table,
    scale_temperature,
)
from merkit.product.export import save_model, train_final
from merkit.product.predict import load_model
from merkit.product.prediction import mixed_answer
from merkit.representations.cache import NullCache
from product_helpers import LOGREG, register_test_methods, synthetic_files, tone, write_wav

register_test_methods()


def test_the_issues_contradictory_headline_is_mixed() -> None:
    # the 4.5-minute track of issue 29: Q1 on top of four near-equal probabilities, while the
    # valence side (P(Q1) + P(Q4) = 0.471) says negative
    p = {"Q1": 0.306, "Q2": 0.257, "Q3": 0.271, "Q4": 0.166}
    mixed, second, words = mixed_answer(p, "high", "negative", QUADRANT_MEANINGS)
    assert mixed and second == "Q3"
    assert words == "between Q1 happy/excited and Q3 sad/melancholic"


@pytest.mark.parametrize(
    ("p", "arousal", "valence", "below", "expected"),
    [
        ({"Q1": 0.8, "Q2": 0.1, "Q3": 0.05, "Q4": 0.05}, "high", "positive", 0.5, False),
        # sides agree, but the top is under the threshold
        ({"Q1": 0.45, "Q2": 0.2, "Q3": 0.05, "Q4": 0.3}, "high", "positive", 0.5, True),
        ({"Q1": 0.45, "Q2": 0.2, "Q3": 0.05, "Q4": 0.3}, "high", "positive", 0.4, False),
        # confident top, but another model's arousal side says low: mixed
        ({"Q1": 0.05, "Q2": 0.7, "Q3": 0.2, "Q4": 0.05}, "low", "negative", 0.5, True),
    ],
)
def test_mixed_rule(
    p: dict[str, float], arousal: str, valence: str, below: float, expected: bool
) -> None:
    mixed, second, words = mixed_answer(p, arousal, valence, QUADRANT_MEANINGS, mixed_below=below)
    assert mixed is expected
    top = max(p, key=p.__getitem__)
    assert words.startswith("between " if expected else f"{top} {QUADRANT_MEANINGS[top]}")
    assert (second is not None) is expected


def test_ece_and_reliability_table_by_hand() -> None:
    # 4 answers at top 0.9 (3 right), 2 at top 0.6 (both wrong)
    proba = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    y = np.array([0, 0, 0, 1, 1, 1])
    table = reliability_table(proba, y, n_bins=10)
    assert [r["n"] for r in table] == [0, 0, 0, 0, 0, 2, 0, 0, 4, 0]  # 0.6 in (0.5, 0.6]
    assert table[8]["accuracy"] == 0.75 and table[8]["confidence"] == pytest.approx(0.9)
    # ECE = (4 * |0.9 - 0.75| + 2 * |0.6 - 0|) / 6 = (0.6 + 1.2) / 6 = 0.3
    assert expected_calibration_error(proba, y, n_bins=10) == pytest.approx(0.3)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == 0.0


def test_temperature_is_recovered_and_the_threshold_is_where_accuracy_crosses_half() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, size=(20_000, 4))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in truth])  # the true probabilities
    overconfident = scale_temperature(truth, 0.5)  # p ** 2, renormalised
    assert fit_temperature(overconfident, y) == pytest.approx(2.0, rel=0.06)
    assert expected_calibration_error(truth, y) < 0.02
    assert expected_calibration_error(overconfident, y) > 0.08
    fixed = scale_temperature(overconfident, fit_temperature(overconfident, y))
    assert expected_calibration_error(fixed, y) < 0.02
    # calibrated probabilities: the first choice is right half the time where its p is 0.5
    assert mixed_threshold(truth, y) == pytest.approx(0.5, abs=0.04)
    np.testing.assert_allclose(scale_temperature(truth, 1.0), truth)


def test_the_layer_is_applied_and_leaves_the_estimator_alone(tmp_path: Path) -> None:
    songs = synthetic_files(tmp_path / "songs")
    model = save_model(train_final(LOGREG, songs, cache=NullCache(), progress=False),
                       tmp_path / "m")  # fmt: skip
    estimator_bytes = (model / "estimator.joblib").read_bytes()
    song = write_wav(tmp_path / "a.wav", tone(3.0, freq=300.0), 16_000)
    plain = load_model(model)
    assert plain.calibration is None and plain.mixed_below == 0.5
    before = plain.predict(song)

    ProbabilityCalibration(temperature=2.0, mixed_below=0.9, fitted_on="test").save(model)
    layered = load_model(model)
    after = layered.predict(song)
    expected = scale_temperature(np.array([list(before.probabilities.values())]), 2.0)[0]
    np.testing.assert_allclose(list(after.probabilities.values()), expected, atol=1e-9)
    assert after.mixed  # every answer is under 0.9 once softened
    assert (model / "estimator.joblib").read_bytes() == estimator_bytes

    (model / CALIBRATION_FILE).write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ModelError, match="out of range"):
        load_model(model)
    (model / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="is damaged"):
        load_model(model)
    shutil.rmtree(model)

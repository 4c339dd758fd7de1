"""The side-margin reliability flag (issue 33, item 2): an answer of a model with axis models
whose final arousal or valence lies within ``UNSURE_SIDE_BELOW`` of an even chance is flagged
unreliable, with the quadrants it lies between (``benchmarks/results/reliability_signals.md``)."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.core.labels import QUADRANT_MEANINGS
from merkit.product.prediction import UNSURE_SIDE_BELOW, song_result, unsure_sides

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")


def test_threshold_is_the_chosen_one() -> None:
    assert UNSURE_SIDE_BELOW == 0.21


def test_clear_sides_are_not_flagged() -> None:
    # margins 0.4 and 0.3, both at least 0.21
    assert unsure_sides("Q1", 0.9, 0.8, QUADRANT_MEANINGS) is None
    assert unsure_sides("Q3", 0.28, 0.22, QUADRANT_MEANINGS) is None  # margins 0.22, 0.28


def test_an_unsure_valence_names_the_quadrant_across_it() -> None:
    reason = unsure_sides("Q1", 0.9, 0.6, QUADRANT_MEANINGS)  # valence margin 0.1
    assert reason is not None
    # Q1 is high arousal, positive valence: across the valence line lies Q2 (high, negative)
    assert "between the training songs of Q1 (happy/excited) and Q2 (angry/tense)" in reason
    assert "Q3" not in reason and "Q4" not in reason
    assert "valence is close to even (P(positive valence) 0.60)" in reason
    assert reason.endswith("the answer is not reliable")


def test_an_unsure_arousal_names_the_quadrant_across_it() -> None:
    reason = unsure_sides("Q3", 0.62, 0.1, QUADRANT_MEANINGS)  # arousal margin 0.12
    assert reason is not None and "Q2" in reason and "Q3" in reason
    assert "Q1" not in reason and "Q4" not in reason and "P(high arousal) 0.62" in reason


def test_both_sides_unsure_name_all_four() -> None:
    reason = unsure_sides("Q3", 0.45, 0.4, QUADRANT_MEANINGS)
    assert reason is not None and "Q1 (happy/excited), Q2 (angry/tense), Q3" in reason
    assert "and Q4 (calm/serene)" in reason
    assert "arousal and valence is close to even" in reason


def test_other_labels_are_left_alone() -> None:
    assert unsure_sides("calm", 0.5, 0.5, {}) is None


def test_song_result_flags_an_unsure_valence_of_a_model_with_axes() -> None:
    window_proba = np.array([[0.4, 0.4, 0.1, 0.1]])
    spans = [(0.0, 3.0, False)]
    # joint: .4*.9*.55 = .198, .4*.9*.45 = .162, .1*.1*.45 = .0045, .1*.1*.55 = .0055 (sum .37)
    # P(high) = .36/.37 = .973, P(positive) = .2035/.37 = .55: valence margin .05 < .21
    result = song_result(
        None,
        window_proba,
        spans,
        3.0,
        -20.0,
        QUADRANTS,
        {},
        segments=False,
        window_axes=np.array([[0.9, 0.55]]),
    )
    assert result.quadrant == "Q1"
    assert result.p_positive_valence == pytest.approx(0.2035 / 0.37)
    assert not result.reliable and len(result.warnings) == 1
    assert "Q1 (happy/excited) and Q2 (angry/tense)" in result.warnings[0]
    # clear axes: joint P(high) = P(positive) = .576/.586, no flag
    clear = song_result(
        None,
        np.array([[0.7, 0.1, 0.1, 0.1]]),
        spans,
        3.0,
        -20.0,
        QUADRANTS,
        {},
        segments=False,
        window_axes=np.array([[0.9, 0.9]]),
    )
    assert clear.reliable and clear.warnings == []
    # without axis models the flag does not apply (P(positive) = .5 here, sides agree)
    plain = song_result(None, window_proba, spans, 3.0, -20.0, QUADRANTS, {}, segments=False)
    assert plain.reliable and plain.quadrant == "Q1"

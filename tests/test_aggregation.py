"""Song-level aggregation rules on hand-made chunk predictions."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import merkit.estimators.aggregation as aggregation
from merkit.core.errors import ConfigError, DataError
from merkit.estimators.aggregation import (
    AGGREGATIONS,
    aggregate_songs,
    get_aggregation,
    mean_proba,
    paper_mean_index,
    vote,
)

# one chunk's probabilities, most probable quadrant Q1..Q4 (class index 0..3)
Q1 = [0.70, 0.10, 0.10, 0.10]
Q2 = [0.10, 0.70, 0.10, 0.10]
Q3 = [0.10, 0.10, 0.70, 0.10]
Q4 = [0.10, 0.10, 0.10, 0.70]


def chosen(vector: np.ndarray) -> int:
    return int(np.argmax(vector))


def test_mean_proba_is_the_column_mean() -> None:
    p = np.array([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(mean_proba(p), [0.25, 0.5, 0.25])


def test_vote_counts_argmaxes_not_confidence() -> None:
    # two chunks lean weakly to class 0, one is sure of class 1: the mean picks 1, the vote 0
    p = np.array([[0.55, 0.45], [0.55, 0.45], [0.0, 1.0]])
    assert chosen(mean_proba(p)) == 1
    shares = vote(p)
    assert chosen(shares) == 0
    np.testing.assert_allclose(shares, [2 / 3, 1 / 3], atol=1e-6)
    assert shares.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("chunks", "winner"),
    [
        # Q1 and Q2 tie with two votes each; Q2's mean probability is higher
        ([[0.40, 0.35, 0.15, 0.10], [0.40, 0.35, 0.15, 0.10], Q2, Q2], 1),
        # the same votes, but now Q1's chunks are the confident ones
        ([[0.90, 0.04, 0.03, 0.03]] * 2 + [[0.30, 0.40, 0.20, 0.10]] * 2, 0),
    ],
)
def test_vote_tie_goes_to_the_higher_mean_probability(chunks: list, winner: int) -> None:
    p = np.array(chunks)
    shares = vote(p)
    np.testing.assert_allclose(shares[:2], [0.5, 0.5], atol=1e-6)
    assert chosen(shares) == winner
    assert chosen(mean_proba(p)) == winner


def test_vote_exact_tie_everywhere_takes_the_first_class() -> None:
    assert chosen(vote(np.array([[0.6, 0.4], [0.4, 0.6]]))) == 0


@pytest.mark.parametrize(
    ("chunks", "quadrant"),
    [
        ([Q1, Q4], 2),  # the paper code's quirk: (0 + 3) / 2 = 1.5 -> 2 -> Q3
        ([Q1, Q1, Q4], 1),  # 3 / 3 = 1 -> Q2, though two of three chunks say Q1
        ([Q1, Q2], 0),  # 0.5 rounds half to even -> 0 (rounding halves up would give Q2)
        ([Q3, Q4], 2),  # 2.5 rounds half to even -> 2 (rounding halves up would give Q4)
        ([Q2, Q3], 2),  # 1.5 -> 2
        ([Q4], 3),
        ([Q2, Q2, Q2, Q4], 2),  # 6 / 4 = 1.5 -> 2
        ([Q1, Q1, Q1, Q4], 1),  # 3 / 4 = 0.75 -> 1
    ],
)
def test_paper_mean_index_rounds_the_mean_class_index(chunks: list, quadrant: int) -> None:
    out = paper_mean_index(np.array(chunks))
    expected = np.zeros(4)
    expected[quadrant] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_q1_plus_q4_is_q3_only_for_the_paper_rule() -> None:
    p = np.array([Q1, Q4])
    assert chosen(paper_mean_index(p)) == 2
    assert chosen(mean_proba(p)) in (0, 3)
    assert chosen(vote(p)) in (0, 3)


def test_registry_names_and_unknown_rule() -> None:
    assert set(AGGREGATIONS) == {"mean-proba", "vote", "paper-mean-index"}
    assert get_aggregation("vote") is vote
    assert get_aggregation(mean_proba) is mean_proba
    for bad in ("median", None, 3):
        with pytest.raises(ConfigError, match=r"unknown aggregation .*mean-proba, vote"):
            get_aggregation(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", sorted(AGGREGATIONS))
def test_aggregate_songs_applies_the_rule_per_song(rule: str) -> None:
    rng = np.random.default_rng(0)
    counts = [3, 1, 4, 2]
    song_of_chunk = np.repeat(np.arange(4), counts)
    song_of_chunk = song_of_chunk[rng.permutation(len(song_of_chunk))]  # chunks interleaved
    proba = rng.dirichlet(np.ones(4), size=len(song_of_chunk))
    out = aggregate_songs(proba, song_of_chunk, rule)
    assert out.shape == (4, 4)
    for song in range(4):
        np.testing.assert_allclose(out[song], AGGREGATIONS[rule](proba[song_of_chunk == song]))


def test_aggregate_songs_hand_computed() -> None:
    proba = np.array([[0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.0, 1.0]])
    np.testing.assert_allclose(
        aggregate_songs(proba, np.array([1, 0, 1, 0])), [[0.25, 0.75], [0.5, 0.5]]
    )


def test_aggregate_songs_refuses_bad_input() -> None:
    proba = np.full((3, 2), 0.5)
    with pytest.raises(DataError, match=r"songs without any chunk: \[1\]"):
        aggregate_songs(proba, np.array([0, 0, 2]))
    with pytest.raises(DataError, match="one song index per chunk"):
        aggregate_songs(proba, np.array([0, 1]))
    with pytest.raises(DataError, match="out of range for 2 songs"):
        aggregate_songs(proba, np.array([0, 1, 2]), n_songs=2)
    with pytest.raises(DataError, match="non-negative integer"):
        aggregate_songs(proba, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match="NaN"):
        aggregate_songs(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ConfigError):
        aggregate_songs(proba, np.array([0, 0, 1]), "mode")


def test_docstring_examples() -> None:
    result = doctest.testmod(aggregation, extraglobs={"np": np})
    assert result.attempted >= 5
    assert result.failed == 0

"""One answer per song from the class probabilities of its chunks (or a long track's windows).

Segment-level models (the paper's §3.4: ShortChunk CNN, Sample CNN) classify short chunks of a
song; the song's answer combines its chunks' answers ("many-to-one"). Each rule here maps a
``(n_chunks, n_classes)`` array of chunk probabilities to one ``(n_classes,)`` probability-like
vector whose argmax is the song's class:

``"mean-proba"`` (default)
    Mean of the chunk probabilities (also what :class:`~merkit.product.predict.Predictor` does with
    the
    windows of a long track).
``"vote"``
    Majority vote of the chunks' argmax classes; the vector holds the vote shares.
``"paper-mean-index"``
    The published code's rule: the mean of the chunks' argmax class *indices*, rounded. It treats
    the quadrant index as a number, so one Q1 chunk and one Q4 chunk average to 1.5, which rounds
    to index 2: **Q3**, a quadrant neither chunk chose. Kept to reproduce the paper's numbers.

:func:`aggregate_songs` applies a rule to every song of a flat chunk array grouped by song. This
module depends on numpy and :mod:`merkit.core.errors` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

import numpy as np

from merkit.core.errors import ConfigError, DataError

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_AGGREGATION",
    "Aggregation",
    "aggregate_songs",
    "get_aggregation",
    "mean_proba",
    "paper_mean_index",
    "vote",
]

Aggregation = Callable[[np.ndarray], np.ndarray]
"""A rule: ``(n_chunks, n_classes)`` chunk probabilities -> ``(n_classes,)`` song vector."""

TIE_EPS: Final[float] = 1e-6
"""Weight of the mean probability added to the vote shares to break ties (see :func:`vote`)."""


def _check_proba(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] == 0 or proba.shape[1] == 0:
        raise DataError(
            "chunk probabilities must be a non-empty (n_chunks, n_classes) array, "
            f"got shape {proba.shape}"
        )
    if not np.isfinite(proba).all():
        raise DataError("chunk probabilities contain NaN or infinity")
    return proba


def mean_proba(proba: np.ndarray) -> np.ndarray:
    """Mean of the chunks' class probabilities.

    Parameters
    ----------
    proba : np.ndarray, shape (n_chunks, n_classes)
        Class probabilities of one song's chunks.

    Returns
    -------
    np.ndarray, shape (n_classes,)
        float64; sums to 1 when every row does.

    Examples
    --------
    >>> mean_proba(np.array([[0.75, 0.25], [0.25, 0.75]])).tolist()
    [0.5, 0.5]
    """
    return _check_proba(proba).mean(axis=0)


def vote(proba: np.ndarray) -> np.ndarray:
    """Majority vote of the chunks' argmax classes, ties broken by mean probability.

    Parameters
    ----------
    proba : np.ndarray, shape (n_chunks, n_classes)
        Class probabilities of one song's chunks.

    Returns
    -------
    np.ndarray, shape (n_classes,)
        The vote shares (fraction of chunks whose most probable class is each class), plus
        ``TIE_EPS`` (1e-6) times the mean probability, renormalised to sum 1. Vote shares differ
        by at least ``1 / n_chunks``, far more than the added term, so the argmax is the class
        with the most votes and, among classes with equally many, the one with the highest mean
        probability (then the first class, if that ties too). Each entry is within 1e-6 of the
        exact vote share.

    Examples
    --------
    Two chunks vote class 0, two vote class 1; class 1 has the higher mean probability:

    >>> p = np.array([[0.6, 0.4], [0.55, 0.45], [0.1, 0.9], [0.2, 0.8]])
    >>> int(np.argmax(vote(p))), np.round(vote(p), 3).tolist()
    (1, [0.5, 0.5])
    """
    proba = _check_proba(proba)
    n_chunks, n_classes = proba.shape
    shares = np.bincount(proba.argmax(axis=1), minlength=n_classes) / n_chunks
    scores = shares + TIE_EPS * proba.mean(axis=0)
    return scores / scores.sum()


def paper_mean_index(proba: np.ndarray) -> np.ndarray:
    """The paper code's rule: round the mean of the chunks' argmax class indices.

    The published ShortChunk/Sample CNN code takes each chunk's argmax class index, averages the
    indices and rounds to the nearest integer, which its authors found better than the mode. The
    index is treated as a number, so with classes ordered Q1..Q4 (indices 0..3) a song with one
    Q1 and one Q4 chunk averages to 1.5 and becomes Q3 (index 2).

    Rounding is numpy's (:func:`numpy.rint`, halves to the even integer), as in the published
    code; Python's built-in ``round`` does the same on floats. The Q1 + Q4 -> Q3 quirk does not
    depend on the tie rule (1.5 rounds to 2 either way), but other halves do: Q1 + Q2 (0.5) gives
    Q1 and Q3 + Q4 (2.5) gives Q3 here, where rounding halves up would give Q2 and Q4.

    Parameters
    ----------
    proba : np.ndarray, shape (n_chunks, n_classes)
        Class probabilities of one song's chunks, columns in class-index order.

    Returns
    -------
    np.ndarray, shape (n_classes,)
        One-hot vector of the chosen class (the rule yields no probabilities).

    Examples
    --------
    >>> q1, q4 = [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]
    >>> paper_mean_index(np.array([q1, q4])).tolist()  # Q1 + Q4 -> Q3
    [0.0, 0.0, 1.0, 0.0]
    """
    proba = _check_proba(proba)
    index = int(np.rint(proba.argmax(axis=1).mean()))
    out = np.zeros(proba.shape[1])
    out[index] = 1.0
    return out


AGGREGATIONS: Final[Mapping[str, Aggregation]] = MappingProxyType(
    {"mean-proba": mean_proba, "vote": vote, "paper-mean-index": paper_mean_index}
)
"""Song-level aggregation rules by name."""

DEFAULT_AGGREGATION: Final[str] = "mean-proba"


def get_aggregation(rule: str | Aggregation) -> Aggregation:
    """The aggregation function for a name in :data:`AGGREGATIONS` (a callable passes through).

    Parameters
    ----------
    rule : str or callable
        ``"mean-proba"``, ``"vote"``, ``"paper-mean-index"``, or a function with the
        :data:`Aggregation` signature.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    if callable(rule):
        return rule
    try:
        return AGGREGATIONS[rule]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown aggregation {rule!r}; choose one of: {', '.join(AGGREGATIONS)}"
        ) from None


def aggregate_songs(
    chunk_proba: np.ndarray,
    song_of_chunk: np.ndarray,
    rule: str | Aggregation = DEFAULT_AGGREGATION,
    *,
    n_songs: int | None = None,
) -> np.ndarray:
    """Aggregate chunk probabilities to one row per song.

    Parameters
    ----------
    chunk_proba : np.ndarray, shape (n_chunks, n_classes)
        Probabilities of every chunk, in any order.
    song_of_chunk : np.ndarray of int, shape (n_chunks,)
        Index ``0..n_songs-1`` of the song each chunk belongs to.
    rule : str or callable, default "mean-proba"
        A name in :data:`AGGREGATIONS` or an :data:`Aggregation` function.
    n_songs : int, optional
        Number of songs; default ``song_of_chunk.max() + 1``. Every song needs a chunk.

    Returns
    -------
    np.ndarray, shape (n_songs, n_classes)
        Row ``i`` is ``rule`` applied to song ``i``'s chunks, in their original order.

    Raises
    ------
    DataError
        Shapes disagree, an index is out of range, or a song has no chunk.
    ConfigError
        Unknown rule.

    Examples
    --------
    >>> p = np.array([[0.75, 0.25], [0.25, 0.75], [0.125, 0.875]])
    >>> aggregate_songs(p, np.array([0, 0, 1])).tolist()
    [[0.5, 0.5], [0.125, 0.875]]
    """
    fn = get_aggregation(rule)
    chunk_proba = _check_proba(chunk_proba)
    song_of_chunk = np.asarray(song_of_chunk)
    if song_of_chunk.shape != (chunk_proba.shape[0],):
        raise DataError(
            f"song_of_chunk has shape {song_of_chunk.shape}, expected ({chunk_proba.shape[0]},) "
            "(one song index per chunk)"
        )
    if not np.issubdtype(song_of_chunk.dtype, np.integer) or song_of_chunk.min() < 0:
        raise DataError("song_of_chunk must hold non-negative integer song indices")
    if n_songs is None:
        n_songs = int(song_of_chunk.max()) + 1
    counts = np.bincount(song_of_chunk, minlength=n_songs)
    if len(counts) > n_songs:
        raise DataError(f"song index {int(song_of_chunk.max())} out of range for {n_songs} songs")
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        raise DataError(f"songs without any chunk: {missing[:10].tolist()}")
    # a stable sort keeps each song's chunks in their original order
    order = np.argsort(song_of_chunk, kind="stable")
    groups = np.split(chunk_proba[order], np.cumsum(counts)[:-1])
    return np.stack([np.asarray(fn(group), dtype=np.float64) for group in groups])

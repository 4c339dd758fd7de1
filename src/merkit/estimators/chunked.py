"""Chunk-level training, song-level answers: :class:`ChunkedClassifier`.

Segment-level models (the paper's §3.4) learn from short chunks of each song: during training
every chunk is a separate sample carrying its song's label; at test time the chunks' predictions
are combined into one answer per song (:mod:`merkit.estimators.aggregation`).
:class:`ChunkedClassifier`
wraps any scikit-learn classifier with ``predict_proba`` (e.g. a
:class:`~merkit.training.classifier.TorchClassifier`) to do both, so a chunked method
cross-validates like
any song-level one: ``X`` holds one entry per **song**, and the protocol's folds split songs, so the
chunks of one song are always on the same side of a split.

Input layout. ``X`` is a sequence with one array per song, ``(n_chunks_i, *chunk_shape)``: a list,
a 1-D object array, or a regular array ``(n_songs, n_chunks, *chunk_shape)`` when every song has
the same number of chunks. A model with several inputs takes a dict of such sequences; a song must
have the same number of chunks in every input. A song given as a 1-D array is a sequence of
one-value chunks. Every song needs at least one chunk.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import Tags, get_tags
from sklearn.utils.validation import check_is_fitted

from merkit.core.errors import ConfigError, DataError
from merkit.core.protocols import PredictsDetails, ReportsTraining, training_history_of
from merkit.estimators.aggregation import (
    DEFAULT_AGGREGATION,
    Aggregation,
    aggregate_songs,
    get_aggregation,
)

__all__ = ["ChunkedClassifier", "chunk_accuracy", "stack_chunks"]

GROUP_PARAMETERS: tuple[str, ...] = ("groups", "sample_groups")
"""Names of an inner ``fit`` parameter that receives each chunk's song index."""


def _songs(X: Any, what: str) -> list[np.ndarray]:
    """One array per song, each with chunks along axis 0."""
    if sparse.issparse(X):
        raise TypeError(f"{what}: sparse input is not supported; pass one array of chunks per song")
    if not isinstance(X, (np.ndarray, Sequence)) and hasattr(X, "__array__"):
        X = np.asarray(X)  # array-likes such as pandas objects
    if isinstance(X, np.ndarray) and (X.dtype != object or X.ndim != 1):
        if X.ndim < 2:
            raise DataError(
                f"{what}: expected one array of chunks per song (a list, an object array or an "
                f"array of shape (n_songs, n_chunks, ...)), got an array of shape {X.shape}"
            )
        X = list(X)
    elif isinstance(X, np.ndarray):
        X = list(X)
    if not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise TypeError(
            f"{what}: expected a sequence with one array of chunks per song, got {type(X).__name__}"
        )
    if not X:
        raise DataError(f"{what}: no songs")
    songs = [np.asarray(song) for song in X]
    for i, song in enumerate(songs):
        if song.ndim == 0 or len(song) == 0:
            raise DataError(f"{what}: song {i} has no chunks (shape {song.shape})")
    return songs


def _stack(songs: list[np.ndarray], what: str) -> np.ndarray:
    shapes = {song.shape[1:] for song in songs}
    if len(shapes) != 1:
        raise DataError(f"{what}: chunks differ in shape across songs: {sorted(shapes)[:4]}")
    stacked = np.concatenate(songs)
    return stacked.reshape(-1, 1) if stacked.ndim == 1 else stacked


def stack_chunks(X: Any) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray]:
    """All chunks of all songs as one array of samples, and each chunk's song index.

    Parameters
    ----------
    X : sequence of array-like, or dict of them
        One array ``(n_chunks_i, *chunk_shape)`` per song (see the module's docstring); a dict
        for several inputs.

    Returns
    -------
    chunks : np.ndarray or dict of np.ndarray
        ``(sum n_chunks_i, *chunk_shape)``, songs in order, each song's chunks in order (dtype
        kept); one-value chunks become a column ``(n, 1)``.
    song_of_chunk : np.ndarray of int64, shape (sum n_chunks_i,)
        Index of the song each row came from.

    Raises
    ------
    DataError
        A song without chunks, chunks of different shapes, or inputs that disagree in songs or
        chunk counts.

    Examples
    --------
    >>> chunks, song = stack_chunks([np.zeros((2, 3)), np.ones((1, 3))])
    >>> chunks.shape, song.tolist()
    ((3, 3), [0, 0, 1])
    """
    if isinstance(X, Mapping) and not sparse.issparse(X):  # a DOK matrix is a dict
        if not X:
            raise DataError("X: an empty dict of inputs")
        per_input = {name: _songs(value, f"input {name!r}") for name, value in X.items()}
        counts = {name: [len(song) for song in songs] for name, songs in per_input.items()}
        first, reference = next(iter(counts.items()))
        for name, count in counts.items():
            if len(count) != len(reference):
                raise DataError(
                    f"inputs {first!r} and {name!r} differ in number of songs: "
                    f"{len(reference)} vs {len(count)}"
                )
            if count != reference:
                song = next(
                    i for i, (a, b) in enumerate(zip(reference, count, strict=True)) if a != b
                )
                raise DataError(
                    f"song {song} has {reference[song]} chunks in input {first!r} but "
                    f"{count[song]} in {name!r}"
                )
        song_counts = reference
        chunks: np.ndarray | dict[str, np.ndarray] = {
            name: _stack(songs, f"input {name!r}") for name, songs in per_input.items()
        }
    else:
        songs = _songs(X, "X")
        song_counts = [len(song) for song in songs]
        chunks = _stack(songs, "X")
    song_of_chunk = np.repeat(np.arange(len(song_counts), dtype=np.int64), song_counts)
    return chunks, song_of_chunk


def chunk_accuracy(chunk_proba: np.ndarray, song_of_chunk: np.ndarray, y_song_index: Any) -> float:
    """Fraction of chunks whose most probable class is their song's class (chunk-level accuracy).

    Parameters
    ----------
    chunk_proba : np.ndarray, shape (n_chunks, n_classes)
    song_of_chunk : np.ndarray of int, shape (n_chunks,)
    y_song_index : array-like of int, shape (n_songs,)
        Each song's true class as a column index of ``chunk_proba``.

    Returns
    -------
    float

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    >>> chunk_accuracy(p, np.array([0, 0, 1]), [0, 1])
    0.6666666666666666
    """
    chunk_proba = np.asarray(chunk_proba)
    truth = np.asarray(y_song_index)[np.asarray(song_of_chunk)]
    return float(np.mean(chunk_proba.argmax(axis=1) == truth))


def _group_parameter(estimator: Any) -> str | None:
    """The explicitly named ``fit`` parameter that takes song membership, if any."""
    try:
        parameters = inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return None
    return next((name for name in GROUP_PARAMETERS if name in parameters), None)


class ChunkedClassifier(
    MetaEstimatorMixin, ClassifierMixin, BaseEstimator, PredictsDetails, ReportsTraining
):
    """Train a classifier on every chunk of every song; answer per song by aggregation.

    Parameters
    ----------
    estimator : classifier
        Unfitted scikit-learn classifier with ``predict_proba``; cloned in :meth:`fit` and
        trained on the chunks (one row per chunk, labelled with its song's class). Its
        parameters are reachable as ``estimator__name`` (e.g. ``estimator__random_state``,
        which the protocol seeds per fold). If its ``fit`` has a ``groups`` or
        ``sample_groups`` parameter it receives each chunk's song index, so a trainer can
        sample chunks per song or keep a song's chunks on one side of an inner split.
    aggregation : str or callable, default "mean-proba"
        Song-level rule from :data:`merkit.estimators.aggregation.AGGREGATIONS` (``"mean-proba"``,
        ``"vote"``, ``"paper-mean-index"``) or a function with that signature.

    Attributes
    ----------
    estimator_ : classifier
        The fitted inner estimator.
    classes_ : np.ndarray
        Class labels (the inner estimator's).
    n_train_chunks_ : int
        Chunks the inner estimator was trained on.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> y = np.array([0, 1] * 10)
    >>> X = [rng.normal(label, 1.0, size=(3 + i % 3, 2)) for i, label in enumerate(y)]
    >>> model = ChunkedClassifier(LogisticRegression()).fit(X, y)
    >>> model.predict_proba(X).shape, model.n_train_chunks_
    ((20, 2), 79)
    """

    def __init__(self, estimator: Any, aggregation: str | Aggregation = DEFAULT_AGGREGATION):
        self.estimator = estimator
        self.aggregation = aggregation

    def fit(self, X: Any, y: Any) -> ChunkedClassifier:
        """Fit a clone of ``estimator`` on all chunks of the songs in ``X``.

        Parameters
        ----------
        X : sequence of array-like, or dict of them
            One array of chunks per song (see the module's docstring).
        y : array-like, shape (n_songs,)
            Song labels.

        Returns
        -------
        ChunkedClassifier
            ``self``.
        """
        get_aggregation(self.aggregation)  # an unknown rule fails before the training
        if not hasattr(self.estimator, "predict_proba"):
            raise ConfigError(
                f"ChunkedClassifier needs an estimator with predict_proba, got {self.estimator!r}"
            )
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise DataError(f"labels must be one-dimensional, got shape {labels.shape}")
        chunks, song_of_chunk = stack_chunks(X)
        n_songs = int(song_of_chunk[-1]) + 1
        if n_songs != len(labels):
            raise DataError(f"X has {n_songs} songs but y has {len(labels)} labels")
        estimator = clone(self.estimator)
        extra = {}
        group_parameter = _group_parameter(estimator)
        if group_parameter is not None:
            extra[group_parameter] = song_of_chunk
        estimator.fit(chunks, labels[song_of_chunk], **extra)
        self.estimator_ = estimator
        self.classes_ = estimator.classes_
        self.n_train_chunks_ = len(song_of_chunk)
        return self

    def predict_chunk_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of every chunk and the song each belongs to.

        Parameters
        ----------
        X : sequence of array-like, or dict of them
            One array of chunks per song.

        Returns
        -------
        chunk_proba : np.ndarray, shape (n_chunks, n_classes)
            Columns in ``classes_`` order.
        song_of_chunk : np.ndarray of int64, shape (n_chunks,)
            Index of each chunk's song in ``X``.
        """
        check_is_fitted(self, "estimator_")
        chunks, song_of_chunk = stack_chunks(X)
        return np.asarray(self.estimator_.predict_proba(chunks)), song_of_chunk

    def predict_proba(self, X: Any) -> np.ndarray:
        """Song-level probabilities ``(n_songs, n_classes)``: each song's chunks aggregated."""
        chunk_proba, song_of_chunk = self.predict_chunk_proba(X)
        return aggregate_songs(
            chunk_proba, song_of_chunk, self.aggregation, n_songs=int(song_of_chunk[-1]) + 1
        )

    def predict(self, X: Any) -> np.ndarray:
        """Song-level class labels ``(n_songs,)``."""
        proba = self.predict_proba(X)  # first: it checks that the model is fitted
        return self.classes_[np.argmax(proba, axis=1)]

    def training_history(self) -> Any:
        """The fitted inner estimator's training history, if it reports one
        (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return training_history_of(getattr(self, "estimator_", None))

    def predict_details(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Song-level probabilities and labels plus chunk-level scores, in one pass over ``X``.

        The protocol calls this (instead of ``predict_proba`` and ``predict``) to keep the
        chunk-level numbers in each fold's record without predicting the test chunks twice.

        Parameters
        ----------
        X : sequence of array-like, or dict of them
            One array of chunks per song.
        y : array-like, shape (n_songs,)
            True song labels.

        Returns
        -------
        proba : np.ndarray, shape (n_songs, n_classes)
        predicted : np.ndarray, shape (n_songs,)
        extras : dict
            ``aggregation``, ``chunk_accuracy`` (each chunk's argmax against its song's label),
            ``chunk_macro_f1``, ``n_test_chunks`` and ``n_train_chunks``.
        """
        from sklearn.metrics import f1_score

        chunk_proba, song_of_chunk = self.predict_chunk_proba(X)
        proba = aggregate_songs(
            chunk_proba, song_of_chunk, self.aggregation, n_songs=int(song_of_chunk[-1]) + 1
        )
        predicted = self.classes_[np.argmax(proba, axis=1)]
        truth = np.asarray(y)[song_of_chunk]
        chunk_pred = self.classes_[chunk_proba.argmax(axis=1)]
        extras = {
            "aggregation": self.aggregation if isinstance(self.aggregation, str) else "custom",
            "chunk_accuracy": float(np.mean(chunk_pred == truth)),
            "chunk_macro_f1": float(f1_score(truth, chunk_pred, average="macro")),
            "n_test_chunks": len(song_of_chunk),
            "n_train_chunks": int(self.n_train_chunks_),
        }
        return proba, predicted, extras

    def chunk_score(self, X: Any, y: Any) -> float:
        """Chunk-level accuracy: each chunk's own prediction against its song's label.

        The paper reports segment-level models at song level; the chunk-level number is kept
        beside it to show what the aggregation adds.
        """
        chunk_proba, song_of_chunk = self.predict_chunk_proba(X)
        column = {label: i for i, label in enumerate(self.classes_.tolist())}
        # a label unseen in training (-1) counts as wrong for every chunk of its song
        index = [column.get(label, -1) for label in np.asarray(y).tolist()]
        return chunk_accuracy(chunk_proba, song_of_chunk, index)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = get_tags(self.estimator).input_tags.allow_nan
        tags.input_tags.sparse = False
        return tags

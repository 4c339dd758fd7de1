"""ShortChunk / Sample CNN methods: chunking of real clip lengths, random-chunk epochs, no test
chunk in training, song-level answers and chunk-level numbers in the fold records."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from merkit.core.errors import ConfigError
from merkit.datasets.base import Dataset, Song
from merkit.estimators.chunked import ChunkedClassifier
from merkit.methods import ResolvedMethod, resolve_method
from merkit.protocol import ProtocolConfig
from merkit.protocol.folds import Fold, make_folds
from merkit.protocol.runner import fit_fold
from merkit.representations import extract
from merkit.representations.cache import NullCache
from merkit.training.classifier import TorchClassifier
from merkit.training.config import TrainConfig
from merkit.training.hooks import Batch, Callback, FitContext
from merkit.training.loop import Trainer
from merkit.training.sampling import RandomChunks, sample_per_group

SR = 16_000
CHUNK = 59_049


class ArraySource:
    """An in-memory audio source of a given length (a quiet chirp)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @property
    def key(self) -> str:
        return f"test-array:{self.seconds}"

    @property
    def description(self) -> str:
        return f"{self.seconds} s test clip"

    def load(self, sr: int) -> np.ndarray:
        n = round(self.seconds * sr)
        t = np.arange(n) / sr
        return (0.3 * np.sin(2 * np.pi * (200 + 50 * t) * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("seconds", "n_chunks"),
    [
        (10.0, 2),  # 160 000 samples = 2 chunks + 41 902 dropped
        (29.0, 7),  # 464 000 = 7 chunks (413 343) + 50 657 dropped; 8 would need 472 392
        (30.1, 8),  # 481 600 = 8 chunks (472 392) + 9 208 dropped
    ],
)
def test_clip_lengths_give_whole_chunks_and_drop_the_remainder(
    seconds: float, n_chunks: int
) -> None:
    assert n_chunks == round(seconds * SR) // CHUNK
    dataset = Dataset("clips", [Song("a", ArraySource(seconds), "Q1")])
    cache = NullCache()
    waves = extract.compute(dataset, "waveform-chunks", cache=cache, progress=False)
    mels = extract.compute(dataset, "logmel-chunks", cache=cache, progress=False)
    assert waves.shape == (1, n_chunks, CHUNK)
    assert mels.shape == (1, n_chunks, 116, 128)
    # chunks are consecutive, non-overlapping slices from the start
    y = ArraySource(seconds).load(SR)
    np.testing.assert_array_equal(waves[0].ravel(), y[: n_chunks * CHUNK])


def test_songs_of_different_lengths_come_as_one_array_per_song() -> None:
    songs = [Song(f"s{i}", ArraySource(s), "Q1") for i, s in enumerate((10.0, 29.0, 30.1))]
    out = extract.compute(
        Dataset("clips", songs), "logmel-chunks", cache=NullCache(), progress=False
    )
    assert [song.shape for song in out] == [(2, 116, 128), (7, 116, 128), (8, 116, 128)]


# ---- random-chunk epochs -----------------------------------------------------------------------


def test_sample_per_group_takes_k_per_song_without_replacement() -> None:
    groups = np.repeat(np.arange(5), [1, 3, 8, 2, 8])
    rows = np.arange(len(groups))
    rng = np.random.default_rng(0)
    for k in (1, 2, 3):
        picked = sample_per_group(rows, groups, k, rng)
        counts = np.bincount(groups[picked], minlength=5)
        np.testing.assert_array_equal(counts, np.minimum(k, [1, 3, 8, 2, 8]))
        assert len(set(picked.tolist())) == len(picked)
        assert np.all(np.diff(picked) > 0)


class EpochRows(Callback):
    """Records the rows of each epoch (from the batches)."""

    order = 5
    epochs: ClassVar[list[np.ndarray]] = []

    def on_epoch_start(self, ctx: FitContext) -> None:
        EpochRows.epochs.append(np.empty(0, dtype=int))

    def on_batch_start(self, ctx: FitContext, batch: Batch) -> Batch:
        EpochRows.epochs[-1] = np.concatenate([EpochRows.epochs[-1], batch.index])
        return batch


def _fit_rows(seed: int, per_song: int) -> list[np.ndarray]:
    groups = np.repeat(np.arange(6), 8)
    X = np.random.default_rng(0).normal(size=(len(groups), 3)).astype(np.float32)
    y = (groups % 2).astype(np.int64)
    model = torch.nn.Linear(3, 2)
    config = TrainConfig(epochs=3, batch_size=4, stop_train_accuracy=None, seed=seed)
    EpochRows.epochs = []
    Trainer(config).fit(model, [X], y, callbacks=[RandomChunks(groups, per_song), EpochRows()])
    return [np.sort(rows) for rows in EpochRows.epochs]


def test_random_chunk_epochs_are_k_per_song_and_reproducible() -> None:
    first = _fit_rows(seed=3, per_song=2)
    groups = np.repeat(np.arange(6), 8)
    for rows in first:
        np.testing.assert_array_equal(np.bincount(groups[rows]), [2] * 6)  # 12 of 48 rows
    assert not all(np.array_equal(first[0], rows) for rows in first[1:]), "same draw every epoch"
    again = _fit_rows(seed=3, per_song=2)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _fit_rows(seed=4, per_song=2)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_chunks_per_song_is_checked_and_needs_groups() -> None:
    with pytest.raises(ConfigError, match="chunks_per_song|chunks per song"):
        resolve_method("shortchunk", {"chunks_per_song": 0})
    with pytest.raises(ConfigError, match="groups"):
        TorchClassifier(model="dnn", chunks_per_song=1, epochs=1).fit(
            np.zeros((4, 3), np.float32), [0, 1, 0, 1]
        )


# ---- the methods under the protocol --------------------------------------------------------


class TagRecorder(Callback):
    """Records the song tag (cell [0, 0]) of every chunk the network trains on."""

    tags: ClassVar[list[int]] = []

    def on_batch_start(self, ctx: FitContext, batch: Batch) -> Batch:
        TagRecorder.tags.extend(batch.inputs[0][:, 0, 0].round().int().tolist())
        return batch


def tagged_chunks(n_songs: int = 8, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Small log-mel chunks (2..4 per song, 32 x 32) whose cell [0, 0] holds the song's row."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_songs) % 4
    songs = []
    for i, label in enumerate(labels):
        chunks = rng.normal(size=(int(rng.integers(2, 5)), 32, 32)).astype(np.float32)
        chunks[:, :, label * 8 : (label + 1) * 8] += 2.0
        chunks[:, 0, 0] = i
        songs.append(chunks)
    return songs, labels


@pytest.mark.parametrize("per_song", [None, 1])
def test_no_chunk_of_a_test_song_reaches_the_network(per_song: int | None) -> None:
    songs, labels = tagged_chunks()
    settings = {
        "epochs": 1,
        "batch_size": 4,
        "chunks_per_song": per_song,
        "device": "cpu",
        "model_params": {"n_frames": 32, "n_mels": 32},  # small chunks: a fast test
        "train_options": {"mixed_precision": False, "num_threads": 1},
        "callbacks": [TagRecorder()],
    }
    method = resolve_method("shortchunk", settings)
    protocol = ProtocolConfig(n_splits=2, n_repeats=1, random_state=1)
    fold = make_folds(labels, protocol)[0]
    TagRecorder.tags = []
    record = fit_fold(method, {"logmel-chunks": songs}, labels, fold, protocol)
    seen = set(TagRecorder.tags)
    assert not seen & set(fold.test.tolist()), "a chunk of a test song reached training"
    assert seen == set(fold.train.tolist())
    n_train = sum(len(songs[i]) for i in fold.train)
    per_epoch = n_train if per_song is None else len(fold.train)
    assert len(TagRecorder.tags) == per_epoch
    # the song-level record keeps the chunk-level numbers beside it
    extras = record.extras
    assert extras is not None
    assert extras["n_test_chunks"] == sum(len(songs[i]) for i in fold.test)
    assert extras["n_train_chunks"] == n_train
    assert extras["aggregation"] == "mean-proba"
    assert 0.0 <= extras["chunk_accuracy"] <= 1.0
    assert record.training is not None and record.training.epochs_run == 1
    assert len(record.y_pred) == len(fold.test)


class FixedChunkProba(TorchClassifier):
    """Chunk probabilities read from the chunk itself (row [0, :4]), for hand-checked records."""

    def fit(self, X: Any, y: Any, groups: Any = None) -> FixedChunkProba:
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(X)[:, 0, :4].astype(np.float64)


def test_fold_record_has_song_level_answer_and_chunk_level_accuracy() -> None:
    q1, q4 = [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]

    def song(*chunks: list[float]) -> np.ndarray:
        out = np.zeros((len(chunks), 2, 4))
        out[:, 0, :] = chunks
        return out

    # train songs: one per class; test songs: (Q1, Q4) labelled Q3, and (Q4, Q4, Q1) labelled Q4
    songs = [song(q1), song(q4), song(q1), song(q4), song(q1, q4), song(q4, q4, q1)]
    labels = np.array([0, 1, 2, 3, 2, 3])
    fold = Fold(repeat=0, fold=0, train=np.arange(4), test=np.array([4, 5]))
    for rule, expected in (("paper-mean-index", [2, 2]), ("vote", [0, 3]), ("mean-proba", [0, 3])):
        model = ChunkedClassifier(FixedChunkProba(), aggregation=rule)
        method = ResolvedMethod.of("fixed", model, ["x"])
        record = fit_fold(method, {"x": songs}, labels, fold, ProtocolConfig(n_splits=2))
        # Q1 + Q4 -> Q3 under the paper's rule (right here by accident), Q1 by the others
        assert record.y_pred == expected, rule
        assert record.extras["chunk_accuracy"] == pytest.approx(2 / 5)  # only the 2 Q4 chunks
        assert record.extras["aggregation"] == rule


def test_aggregation_is_a_setting_checked_up_front() -> None:
    method = resolve_method("samplecnn", {"aggregation": "vote", "epochs": 1})
    assert method.estimator.aggregation == "vote"
    assert method.estimator.estimator.model == "samplecnn"
    with pytest.raises(ConfigError, match="samplecnn.*aggregation 'median'"):
        resolve_method("samplecnn", {"aggregation": "median"})


def test_defaults_are_the_paper_table1_recipes() -> None:
    for name, epochs in (("shortchunk", 100), ("samplecnn", 150)):
        inner = resolve_method(name).estimator.estimator
        assert (inner.epochs, inner.batch_size, inner.optimizer, inner.lr) == (
            epochs,
            50,
            "sgd",
            1e-3,
        )
        assert inner.chunks_per_song is None  # every chunk, every epoch
        assert inner.stop_train_accuracy == 0.90

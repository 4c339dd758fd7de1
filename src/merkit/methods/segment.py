"""Segment-level methods (the paper's §3.4): ShortChunk CNN and Sample CNN, answered per song.

Each song is cut into non-overlapping 59 049-sample chunks (3.69 s at 16 kHz, the remainder
dropped; ``logmel-chunks`` and ``waveform-chunks`` in :mod:`merkit.representations.registry`). Every
chunk of a training song is a training sample with its song's label; the protocol's folds split
songs, so a song's chunks are never on both sides of a split
(:class:`~merkit.estimators.chunked.ChunkedClassifier`). A test song's answer aggregates its chunks'
probabilities (``aggregation``: ``mean-proba``, ``vote`` or the published code's
``paper-mean-index``).

Defaults are the paper's Table 1 recipes: every chunk of every song in each epoch, SGD lr 1e-3,
batch 50, at most 100 (ShortChunk) or 150 (Sample CNN) epochs, stop at 90 % training accuracy.
``chunks_per_song: k`` switches to Won et al.'s sampling: each epoch trains on k random chunks
per song, an epoch ``8 / k`` times cheaper for 30 s clips.
"""

from __future__ import annotations

from typing import Any

from merkit.estimators.aggregation import DEFAULT_AGGREGATION, get_aggregation
from merkit.estimators.chunked import ChunkedClassifier
from merkit.methods.base import MethodSpec
from merkit.methods.deep import torch_recipe
from merkit.methods.registry import register_method


def chunked_recipe(model: str, *, epochs: int, batch_size: int, optimizer: str, lr: float):
    """A builder of a :class:`ChunkedClassifier` around a TorchClassifier paper recipe.

    The builder takes ``aggregation`` (the song-level rule) and any TorchClassifier setting
    (``epochs``, ``lr``, ``chunks_per_song``, ``train_options`` ...).
    """
    inner = torch_recipe(model, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr)

    def build(aggregation: str = DEFAULT_AGGREGATION, **overrides: Any) -> ChunkedClassifier:
        get_aggregation(aggregation)  # an unknown rule fails when the settings are read
        return ChunkedClassifier(inner(**overrides), aggregation=aggregation)

    build.__doc__ = f"Chunks -> {inner.__doc__} Song answer: aggregation of the chunks."
    return build


# Smoke runs: one random chunk per song per epoch, a few epochs, Adam to learn in that budget
# (the raw-waveform network costs ~3x more per chunk: fewer epochs, smaller batches).
QUICK_SEGMENT = {"epochs": 4, "chunks_per_song": 1, "optimizer": "adam", "lr": 1e-3}
QUICK_SAMPLECNN = {**QUICK_SEGMENT, "epochs": 2, "batch_size": 16}

SHORTCHUNK = register_method(
    MethodSpec(
        name="shortchunk",
        summary="ShortChunk CNN (7 residual 2-D blocks) on 116x128 log-mel chunks, per-song answer",
        inputs=("logmel-chunks",),
        build=chunked_recipe("shortchunk", epochs=100, batch_size=50, optimizer="sgd", lr=1e-3),
        paper_row="ShortChunk CNN",
        paper_f1=0.6061,
        quick=QUICK_SEGMENT,
    )
)

SAMPLECNN = register_method(
    MethodSpec(
        name="samplecnn",
        summary="Sample CNN (11 1-D conv blocks) on raw 59 049-sample waveform chunks",
        inputs=("waveform-chunks",),
        build=chunked_recipe("samplecnn", epochs=150, batch_size=50, optimizer="sgd", lr=1e-3),
        paper_row="Sample CNN",
        paper_f1=0.6092,
        quick=QUICK_SAMPLECNN,
    )
)

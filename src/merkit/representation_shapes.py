"""Output shapes of the registered representations, from the sample rate and the parameters.

Each function is ``shape(sr, params) -> tuple`` (``None`` for a length that depends on the song),
a :class:`merkit.representations.Representation`'s ``shape``; module-level functions, not
lambdas, so that a representation pickles to worker processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from merkit.logmel import CHUNK_SAMPLES

__all__ = [
    "artist_chunks_shape",
    "classic_aug_shape",
    "codec_own_features_shape",
    "crnn_conv_shape",
    "logmel_chunks_shape",
    "logmel_shape",
    "openl3_shape",
    "own_features_shape",
    "waveform_chunks_shape",
    "won_logmel_shape",
]


def logmel_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (params.get("n_frames"), int(params.get("n_mels", 128)))


def classic_aug_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (4, *logmel_shape(sr, params))


def logmel_chunks_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    frames = 1 + int(params.get("chunk", CHUNK_SAMPLES)) // int(params.get("hop_length", 512))
    return (None, frames, int(params.get("n_mels", 128)))


def waveform_chunks_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (None, int(params.get("chunk", CHUNK_SAMPLES)))


def own_features_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    from merkit.features.own import OWN_FEATURE_NAMES

    return (len(OWN_FEATURE_NAMES),)


def codec_own_features_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    from merkit.codec import CODECS
    from merkit.features.own import OWN_FEATURE_NAMES

    return (len(params.get("codecs", CODECS)), len(OWN_FEATURE_NAMES))


def won_logmel_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    crop = params.get("crop_samples")
    return (None if crop is None else 1 + int(crop) // 256, 96)


def artist_chunks_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (10, 129, 128)


def openl3_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (None, int(params.get("embedding_size", 512)))


def crnn_conv_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    # A module-level function (not a lambda), so the representation pickles to workers.
    width = {"conv": 256, "gru": 32, "tags": 50}[params["output"]]
    return (width * len(params["checkpoints"]),)

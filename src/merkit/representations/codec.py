"""Lossy-codec round trips in memory, and own features of the round-tripped audio.

A model fitted on one encoding of its training songs (4QAED: 16 kHz Opus) can read a feature
that a user's MP3 changes as a change of emotion. :func:`codec_own_features` gives each training
song's own features after an MP3 and an Opus round trip; the ``codec`` augmentation
(:mod:`merkit.estimators.augmentation`) adds them as copies of the song in training, so the model
learns
that the encoding does not matter. Encoding is libsndfile's (LAME for MP3, libopus), in memory.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from merkit.core.errors import ConfigError

__all__ = [
    "CODECS",
    "Codec",
    "band_limited_own_features",
    "codec_own_features",
    "round_trip",
]


@dataclass(frozen=True)
class Codec:
    """A lossy encoding: libsndfile format and subtype, sample rate, compression settings.

    ``compression_level`` is libsndfile's 0 (best) .. 1 (smallest file).
    """

    format: str
    subtype: str
    sr: int
    compression_level: float | None = None
    bitrate_mode: str | None = None


CODECS: Final[dict[str, Codec]] = {
    # ~40 kb/s MPEG-2 layer III: a low-quality MP3 (low-pass, the decoder keeps the encoder delay)
    "mp3-22k": Codec("MP3", "MPEG_LAYER_III", 22_050, 0.8, "CONSTANT"),
    # ~57 kb/s Opus at its native 48 kHz
    "opus-48k": Codec("OGG", "OPUS", 48_000, 0.8),
}
"""Round trips of :func:`codec_own_features` by name (the ``codec`` augmentation's copies)."""


def round_trip(y: np.ndarray, sr: int, codec: Codec) -> np.ndarray:
    """Encode mono ``y`` with ``codec`` and decode it as :func:`merkit.audio.decode.load_audio`
    would.

    The signal is resampled to the codec's rate (soxr HQ), encoded and decoded in memory,
    resampled back to ``sr`` and peak-normalised to -0.1 dBFS.

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(n,)``.
    sr : int
        Their rate in Hz.
    codec : Codec
        The encoding.

    Returns
    -------
    np.ndarray
        float32 mono at ``sr``; its length can differ from ``n`` by the codec's padding.
    """
    import soundfile as sf

    from merkit.audio.decode import peak_normalize, resample

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"round_trip expects a mono 1-D waveform, got shape {y.shape}")
    buffer = io.BytesIO()
    options = {}
    if codec.compression_level is not None:
        options["compression_level"] = codec.compression_level
    if codec.bitrate_mode is not None:
        options["bitrate_mode"] = codec.bitrate_mode
    sf.write(
        buffer,
        resample(y, sr, codec.sr),
        codec.sr,
        format=codec.format,
        subtype=codec.subtype,
        **options,
    )
    buffer.seek(0)
    decoded, decoded_sr = sf.read(buffer, dtype="float32", always_2d=True)
    mono = decoded.mean(axis=1) if decoded.shape[1] > 1 else decoded[:, 0]
    return peak_normalize(resample(mono, int(decoded_sr), sr))


def codec_own_features(
    y: np.ndarray,
    sr: int,
    *,
    seed: int = 0,
    codecs: Sequence[str] = tuple(CODECS),
) -> np.ndarray:
    """Own features of ``y`` after each round trip of ``codecs``: shape ``(len(codecs), 317)``.

    Deterministic (``seed`` is accepted for the representation signature and unused).

    Raises
    ------
    ConfigError
        For an unknown codec name.
    """
    from merkit.features.own import extract_own_features

    unknown = [c for c in codecs if c not in CODECS]
    if unknown:
        raise ConfigError(f"unknown codecs {unknown} (known: {', '.join(CODECS)})")
    return np.stack([extract_own_features(round_trip(y, sr, CODECS[c]), sr) for c in codecs])


def band_limited_own_features(
    y: np.ndarray, sr: int, *, seed: int = 0, via_sr: int = 48_000
) -> np.ndarray:
    """Own features of ``y`` after a soxr round trip through ``via_sr`` (48 kHz: the band any file
    resampled to ``sr`` keeps; :func:`merkit.audio.frontend.band_limit`), the ``own-features-bl``
    representation. The ``-canon`` representations (:mod:`merkit.audio.frontend`) go further."""
    from merkit.audio.frontend import band_limit
    from merkit.features.own import extract_own_features

    return extract_own_features(band_limit(y, sr, via_sr), sr)

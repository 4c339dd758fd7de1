"""merkit.codec: in-memory codec round trips and the codec augmentation's copies."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.codec import CODECS, Codec, codec_own_features, round_trip
from merkit.errors import ConfigError
from merkit.features.own import OWN_FEATURE_NAMES

SR = 16_000


def _tone(seconds: float = 2.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("name", list(CODECS))
def test_round_trip_keeps_a_tone_and_normalises_its_peak(name: str) -> None:
    y = _tone()
    out = round_trip(y, SR, CODECS[name])
    assert out.dtype == np.float32 and out.ndim == 1
    # Codec padding adds at most ~0.1 s; nothing of the tone is lost.
    assert 0 <= len(out) - len(y) < 0.1 * SR
    assert np.max(np.abs(out)) == pytest.approx(10 ** (-0.1 / 20), rel=1e-4)
    spectrum = np.abs(np.fft.rfft(out[SR // 2 : SR // 2 + SR]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s window: 1 Hz bins


@pytest.mark.parametrize("name", list(CODECS))
def test_round_trip_loses_the_band_below_nyquist(name: str) -> None:
    # Resampling back to 16 kHz (soxr HQ) keeps 7 kHz and removes 7.9 kHz: the band that
    # separates a native 16 kHz file from any other encoding of the same song.
    y = _tone(freq=440.0) + _tone(freq=7_000.0) + _tone(freq=7_900.0)
    out = round_trip(y, SR, CODECS[name])
    spectrum = np.abs(np.fft.rfft(out[SR // 2 : SR // 2 + SR]))
    assert spectrum[7_000] > 0.9 * spectrum[440]
    assert spectrum[7_900] < 0.01 * spectrum[440]


def test_round_trip_refuses_stereo() -> None:
    with pytest.raises(ConfigError, match="mono"):
        round_trip(np.zeros((2, SR), dtype=np.float32), SR, Codec("WAV", "PCM_16", SR))


def test_codec_own_features_one_row_per_codec() -> None:
    y = _tone(3.0) + 0.05 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    out = codec_own_features(y, SR, codecs=["mp3-22k"])
    assert out.shape == (1, len(OWN_FEATURE_NAMES))
    assert np.all(np.isfinite(out))
    with pytest.raises(ConfigError, match="unknown codecs"):
        codec_own_features(y, SR, codecs=["flac"])


def test_codec_augmentation_resolves_for_svm_own_only() -> None:
    from merkit.methods import resolve_method

    resolved = resolve_method("svm-own", {"augment": ["codec"]})
    assert resolved.inputs == ("own-features", "codec-own-features")
    with pytest.raises(ConfigError, match="codec"):
        resolve_method("cnn", {"augment": ["codec"]})

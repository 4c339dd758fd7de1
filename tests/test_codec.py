"""merkit.representations.codec: in-memory codec round trips and the codec augmentation's copies."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.core.errors import ConfigError
from merkit.features.own import OWN_FEATURE_NAMES
from merkit.representations.codec import CODECS, Codec, codec_own_features, round_trip

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


def test_band_limit_gives_a_16k_file_the_band_of_a_resampled_one() -> None:
    from merkit.audio.decode import resample
    from merkit.audio.frontend import band_limit

    y = _tone(freq=440.0) + _tone(freq=7_000.0) + _tone(freq=7_900.0)
    out = band_limit(y, SR, 48_000)
    assert out.shape == y.shape and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out[SR // 2 : SR // 2 + SR]))
    assert spectrum[7_000] > 0.9 * spectrum[440]
    assert spectrum[7_900] < 0.01 * spectrum[440]
    # A 44.1 kHz file resampled to 16 kHz has lost the same band: the two agree closely.
    from_44k = resample(resample(y, SR, 44_100), 44_100, SR)
    middle = slice(SR // 4, -SR // 4)
    assert np.max(np.abs(from_44k[middle] - out[middle])) < 0.05 * np.max(np.abs(y))


def test_own_features_bl_is_a_registered_representation() -> None:
    from merkit.representations.registry import get_representation

    rep = get_representation("own-features-bl")
    assert rep.shape is not None and rep.shape(SR, rep.params) == (len(OWN_FEATURE_NAMES),)


def test_codec_copies_join_training_and_prediction_reads_originals_only() -> None:
    from merkit.methods import resolve_method

    resolved = resolve_method("svm-own", {"augment": ["codec"], "n_features": "all"})
    rng = np.random.default_rng(0)
    n, d = 40, len(OWN_FEATURE_NAMES)
    y = np.repeat(np.arange(4), n // 4)
    original = rng.standard_normal((n, d))
    original[:, 0] += 3 * y
    copies = original[:, None, :] + 0.1 * rng.standard_normal((n, 2, d))
    X = {"original": original, "codec": copies}
    model = resolved.estimator
    x_train, y_train, groups = model.training_set(X, y)
    assert x_train.shape == (3 * n, d)
    np.testing.assert_array_equal(y_train, np.tile(y, 3))
    np.testing.assert_array_equal(groups, np.tile(np.arange(n), 3))
    np.testing.assert_array_equal(x_train[n : 2 * n], copies[:, 0])
    model.fit(X, y)
    assert (model.predict(original) == y).mean() > 0.9

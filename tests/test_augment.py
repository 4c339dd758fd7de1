"""merkit.representations.augmented: classic Hybrid-method transforms and the
audiomentations copies (TFM/SB/RG)."""

from __future__ import annotations

import itertools
import random

import librosa
import numpy as np
import pytest

from merkit.core.errors import ConfigError
from merkit.representations import augmented as augment
from merkit.representations.logmel import LogMelConfig, logmel

SR = 16_000
UP, DOWN = 440.0 * 2 ** (2 / 12), 440.0 * 2 ** (-2 / 12)  # 493.88 Hz, 392.00 Hz


def _noise(seconds: float, seed: int = 0, scale: float = 0.3) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(
        np.float32
    )


def _sine(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_frequency(y: np.ndarray) -> float:
    """Frequency of the largest FFT bin (zero-padded 4x for ~0.08 Hz resolution on 3 s)."""
    n = 4 * len(y)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=n))
    return float(np.argmax(spectrum) * SR / n)


def _onsets(y: np.ndarray, hop: int = 256) -> np.ndarray:
    """Rising edges of the RMS envelope, with hysteresis (phase-vocoder output wobbles)."""
    rms = librosa.feature.rms(y=y, frame_length=512, hop_length=hop)[0]
    high, low = 0.2 * rms.max(), 0.05 * rms.max()
    found, armed = [], True
    for i, value in enumerate(rms):
        if armed and value > high:
            found.append(i * hop)
            armed = False
        elif value < low:
            armed = True
    return np.array(found)


# --------------------------------------------------------------------------------------------
# Time shift


def test_shift_signal_moves_content_and_zero_fills() -> None:
    y = np.arange(1, 7, dtype=np.float32)
    np.testing.assert_array_equal(augment.shift_signal(y, 2), [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(augment.shift_signal(y, -2), [3, 4, 5, 6, 0, 0])
    np.testing.assert_array_equal(augment.shift_signal(y, 0), y)
    np.testing.assert_array_equal(augment.shift_signal(y, 6), np.zeros(6))
    np.testing.assert_array_equal(augment.shift_signal(y, -9), np.zeros(6))


@pytest.mark.parametrize("compat", [False, True])
def test_time_shift_moves_a_click_by_the_drawn_amount(compat: bool) -> None:
    n = 12 * SR
    centre = n // 2
    y = np.full(n, 0.1, dtype=np.float32)
    y[centre] = 1.0
    shifts = []
    for seed in range(6):
        expected = augment.draw_shift_samples(np.random.default_rng(seed), SR, compat=compat)
        out = augment.time_shift(y, SR, np.random.default_rng(seed), compat=compat)
        shifts.append(expected)
        assert out.shape == y.shape and out.dtype == np.float32
        assert abs(expected) <= 5 * SR
        assert int(np.argmax(out)) == centre + expected
        gap = slice(0, expected) if expected >= 0 else slice(n + expected, n)
        assert np.all(out[gap] == 0.0)  # the vacated part is silent ...
        rest = np.delete(out, np.r_[np.arange(n)[gap], centre + expected])
        assert np.all(rest == np.float32(0.1))  # ... and nothing else changed
    assert len(set(shifts)) == len(shifts)


def test_time_shift_direction_probabilities() -> None:
    rng = np.random.default_rng(0)
    paper = np.array([augment.draw_shift_samples(rng, SR) for _ in range(4000)])
    assert np.abs(paper).max() <= 5 * SR
    assert abs(np.mean(paper > 0) - 0.5) < 0.03
    # Uniform magnitude: mean 2.5 s.
    assert abs(np.abs(paper).mean() / SR - 2.5) < 0.1

    compat = np.array([augment.draw_shift_samples(rng, SR, compat=True) for _ in range(4000)])
    assert np.abs(compat).max() < 5 * SR
    # The repo: later with p = 1/2 + 1/8, earlier with p = 1/4 + 1/8.
    assert abs(np.mean(compat > 0) - 5 / 8) < 0.03


# --------------------------------------------------------------------------------------------
# Pitch shift


def test_pitch_shift_moves_a_sine_by_two_semitones_either_way() -> None:
    y = _sine(440.0, 3.0)
    assert abs(_peak_frequency(y) - 440.0) < 0.5
    seen = set()
    for seed in range(6):
        steps = augment.draw_semitones(np.random.default_rng(seed))
        out = augment.pitch_shift(y, SR, np.random.default_rng(seed))
        assert out.shape == y.shape and out.dtype == np.float32
        target = UP if steps > 0 else DOWN
        assert abs(_peak_frequency(out) - target) / target < 0.005
        seen.add(steps)
    assert seen == {2.0, -2.0}


def test_pitch_shift_compat_always_goes_up() -> None:
    y = _sine(440.0, 3.0)
    for seed in range(3):
        out = augment.pitch_shift(y, SR, np.random.default_rng(seed), compat=True)
        assert abs(_peak_frequency(out) - UP) / UP < 0.005


# --------------------------------------------------------------------------------------------
# Time stretch


def test_time_stretch_keeps_length_and_scales_onset_spacing() -> None:
    n, spacing = 8 * SR, 8000  # a 1 kHz tone gated on for 0.25 s every 0.5 s
    gate = (np.arange(n) % spacing) < spacing // 2
    y = (_sine(1000.0, 8.0) * gate).astype(np.float32)
    original = _onsets(y)
    assert abs(np.diff(original).mean() - spacing) < 0.02 * spacing
    rates = set()
    for seed in range(6):
        rate = augment.draw_stretch_rate(np.random.default_rng(seed))
        out = augment.time_stretch(y, SR, np.random.default_rng(seed))
        assert out.shape == y.shape and out.dtype == np.float32
        onsets = _onsets(out)
        mean_spacing = (onsets[-1] - onsets[0]) / (len(onsets) - 1)
        assert abs(mean_spacing - spacing / rate) < 0.03 * spacing / rate
        if rate > 1:  # faster: the tail is zero-padded
            assert np.all(out[int(n / rate) + 2048 :] == 0.0)
        rates.add(rate)
    assert rates == {0.5, 1.5}


def test_time_stretch_rejects_bad_rates() -> None:
    with pytest.raises(ConfigError, match="positive"):
        augment.time_stretch(_noise(1.0), SR, np.random.default_rng(0), rates=(0.0, 1.5))
    with pytest.raises(ConfigError):
        augment.time_stretch(_noise(1.0), SR, np.random.default_rng(0), rates=())


# --------------------------------------------------------------------------------------------
# Power shift


def test_power_shift_adds_exactly_ten_db() -> None:
    mel = np.random.default_rng(0).uniform(-80, 0, size=(20, 8)).astype(np.float32)
    signs = set()
    for seed in range(8):
        out = augment.power_shift_db(mel, np.random.default_rng(seed))
        assert out.dtype == np.float32
        shift = float(np.round(np.mean(out - mel)))
        assert abs(shift) == 10.0
        np.testing.assert_array_equal(out, mel + np.float32(shift))
        signs.add(shift)
    assert signs == {10.0, -10.0}


# --------------------------------------------------------------------------------------------
# The classic set


def test_classic_logmels_full_size_on_a_30_second_clip() -> None:
    y = _noise(30.0)
    out = augment.classic_augmented_logmels(y, SR, seed=7)
    assert out.shape == (4, 942, 128) and out.dtype == np.float32
    np.testing.assert_array_equal(out, augment.classic_augmented_logmels(y, SR, seed=7))
    other = augment.classic_augmented_logmels(y, SR, seed=8)
    assert not np.array_equal(out, other)
    # The fourth copy is the original's log-mel shifted by ±10 dB.
    original = logmel(y, LogMelConfig())
    shift = float(np.round(np.mean(out[3] - original)))
    assert abs(shift) == 10.0
    np.testing.assert_array_equal(out[3], original + np.float32(shift))
    # The waveform copies differ from the original's mel.
    for copy in out[:3]:
        assert not np.allclose(copy, original)


def test_classic_logmels_crop_first_and_pass_the_config() -> None:
    # 32 s: the first 1.875 s must be dropped before transforming (the repo's crop to the last
    # 482 000 samples); compat pitch shift is always +2, so copy 1 can be recomputed exactly.
    y = _noise(32.0, seed=3)
    params = {"n_frames": 100, "crop_samples": 48_000, "time_reversed": True}
    out = augment.classic_augmented_logmels(y, SR, seed=1, compat=True, **params)
    assert out.shape == (4, 100, 128)
    cfg = LogMelConfig(**params)
    cropped = y[-48_000:]
    up = librosa.effects.pitch_shift(cropped, sr=SR, n_steps=2.0, res_type="soxr_hq")
    np.testing.assert_allclose(out[1], logmel(up, cfg), atol=1e-4)


def test_classic_logmels_reject_bad_config() -> None:
    with pytest.raises(ConfigError, match="n_mels"):
        augment.classic_augmented_logmels(_noise(1.0), SR, seed=0, n_mels=-1)
    with pytest.raises(ConfigError, match="bogus"):
        augment.augmented_logmel(_noise(1.0), SR, seed=0, transform="rg", bogus=1)


# --------------------------------------------------------------------------------------------
# audiomentations


def test_pinned_pre_041_defaults() -> None:
    assert set(augment.AUGMENTATIONS) == {"tfm", "sb", "rg", "tanh"}
    mask, stop = augment.AUGMENTATIONS["tfm"]().transforms
    assert (mask.min_band_part, mask.max_band_part, mask.fade_duration, mask.p) == (0, 0.5, 0, 1)
    assert (stop.min_center_freq, stop.max_center_freq, stop.p) == (200.0, 4000.0, 1.0)
    (gain,) = augment.AUGMENTATIONS["rg"]().transforms
    assert (gain.min_gain_db, gain.max_gain_db, gain.p) == (-12.0, 12.0, 1.0)
    (eq,) = augment.AUGMENTATIONS["sb"]().transforms
    assert (eq.min_gain_db, eq.max_gain_db, eq.p) == (-12.0, 12.0, 1.0)


@pytest.mark.parametrize("name", ["tfm", "sb", "rg", "tanh"])
def test_audiomentations_copy_is_seeded_and_restores_global_state(name: str) -> None:
    y = _noise(3.0)
    before = y.copy()
    random.seed(123)
    np.random.seed(456)
    first = augment.audiomentations_copy(y, SR, seed=5, transform=name)
    # The caller's global streams continue as if nothing had drawn from them.
    after_py, after_np = random.random(), np.random.random()
    random.seed(123)
    np.random.seed(456)
    assert (after_py, after_np) == (random.random(), np.random.random())

    assert first.shape == y.shape and first.dtype == np.float32
    np.testing.assert_array_equal(y, before)
    np.testing.assert_array_equal(
        first, augment.audiomentations_copy(y, SR, seed=5, transform=name)
    )
    assert not np.array_equal(first, augment.audiomentations_copy(y, SR, seed=6, transform=name))


def test_gain_stays_within_twelve_db() -> None:
    y = _noise(2.0, scale=0.05)
    gains = []
    for seed in range(10):
        out = augment.audiomentations_copy(y, SR, seed=seed, transform="rg")
        ratio = out / y
        assert np.allclose(ratio, ratio[0], rtol=1e-5)  # one gain for the whole clip
        rms_db = 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(y**2)))
        assert -12.0 - 1e-4 <= rms_db <= 12.0 + 1e-4
        gains.append(rms_db)
    assert np.ptp(gains) > 3.0  # the gain really is random


def test_seven_band_eq_changes_the_spectrum_not_the_length() -> None:
    y = _noise(3.0)
    out = augment.audiomentations_copy(y, SR, seed=2, transform="sb")
    assert out.shape == y.shape
    # Compare average power in octave bands: an EQ with gains in ±12 dB moves some by > 1 dB.
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    before, after = np.abs(np.fft.rfft(y)) ** 2, np.abs(np.fft.rfft(out)) ** 2
    edges = [62.5, 125, 250, 500, 1000, 2000, 4000, 8000]
    changes = [
        10
        * np.log10(
            after[(freqs >= lo) & (freqs < hi)].mean() / before[(freqs >= lo) & (freqs < hi)].mean()
        )
        for lo, hi in itertools.pairwise(edges)
    ]
    assert max(abs(c) for c in changes) > 1.0
    assert max(abs(c) for c in changes) <= 12.0 + 3.0  # bands overlap, but not by much


def test_time_mask_silences_one_span_of_at_most_half_the_clip() -> None:
    y = _noise(4.0)
    n = len(y)
    lengths = []
    for seed in range(8):
        pipeline = augment.AUGMENTATIONS["tfm"]()
        with augment.seeded_global_random(seed):
            replay = pipeline(samples=y, sample_rate=SR)
        out = augment.audiomentations_copy(y, SR, seed=seed, transform="tfm")
        np.testing.assert_array_equal(out, replay)
        t, t0 = pipeline.transforms[0].parameters["t"], pipeline.transforms[0].parameters["t0"]
        assert 0 <= t <= n // 2 and 0 <= t0 <= n - t
        lengths.append(t)
        # The band-stop filter runs after the mask, so the span is silent once its ringing
        # has died away (50 ms), and the audio outside it is not.
        settle = int(0.05 * SR)
        if t > settle:
            assert np.abs(out[t0 + settle : t0 + t]).max() < 1e-4
        outside = np.r_[out[:t0], out[t0 + t + settle :]]
        assert np.sqrt(np.mean(outside**2)) > 0.05
    assert len(set(lengths)) == len(lengths) and max(lengths) > n // 4


def test_time_mask_has_hard_edges() -> None:
    y = _noise(2.0)
    mask = augment.AUGMENTATIONS["tfm"]().transforms[0]
    with augment.seeded_global_random(0):
        out = mask(samples=y, sample_rate=SR)
    t, t0 = mask.parameters["t"], mask.parameters["t0"]
    assert t > 0
    assert np.all(out[t0 : t0 + t] == 0.0)  # no fade: exact zeros edge to edge
    np.testing.assert_array_equal(
        np.delete(out, np.arange(t0, t0 + t)), np.delete(y, np.arange(t0, t0 + t))
    )


def test_band_stop_attenuates_its_band() -> None:
    y = _noise(4.0, seed=1)
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    for seed in range(3):
        pipeline = augment.AUGMENTATIONS["tfm"]()
        with augment.seeded_global_random(seed):
            pipeline(samples=y, sample_rate=SR)
        stop = pipeline.transforms[1]  # re-apply the drawn filter alone, without the mask
        centre, width = stop.parameters["center_freq"], stop.parameters["bandwidth"]
        assert 200.0 <= centre <= 4000.0 and 0.5 <= width / centre <= 1.99
        out = stop.apply(y, SR)
        band = (freqs > centre - width / 4) & (freqs < centre + width / 4)
        far = (freqs > 2 * (centre + width)) | (freqs < (centre - width / 2) / 2)
        gain = np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(y))
        assert 20 * np.log10(gain[band].mean()) < -10.0
        assert abs(20 * np.log10(np.median(gain[far]))) < 1.0


def test_unknown_transform_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tfm"):
        augment.audiomentations_copy(_noise(1.0), SR, seed=0, transform="specaugment")
    with pytest.raises(ConfigError):
        augment.augmented_logmel(_noise(1.0), SR, seed=0, transform="nope")


def test_augmented_logmel_is_the_log_mel_of_the_cropped_copy() -> None:
    y = _noise(30.5, seed=4)  # longer than 482 000 samples: cropped before augmenting
    out = augment.augmented_logmel(y, SR, seed=9, transform="tfm")
    assert out.shape == (942, 128) and out.dtype == np.float32
    copy = augment.audiomentations_copy(y[-482_000:], SR, seed=9, transform="tfm")
    np.testing.assert_array_equal(out, logmel(copy, LogMelConfig()))
    small = augment.augmented_logmel(y, SR, seed=9, transform="rg", n_frames=50)
    assert small.shape == (50, 128)

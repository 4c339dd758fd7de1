"""merkit's own librosa feature extractor and the optional Essentia backend."""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FOURQAED, needs_4qaed
from merkit.core.errors import AudioError, ConfigError
from merkit.features.essentia_backend import (
    ESSENTIA_MISSING,
    extract_essentia_features,
    flatten_pool,
)
from merkit.features.own import (
    OWN_FEATURE_NAMES,
    extract_own_features,
    sethares_dissonance,
)

SR = 16_000
FAMILIES = {"dynamics", "timbre", "rhythm", "tonality", "harmony", "articulation"}


def features(y: np.ndarray, sr: int = SR) -> dict[str, float]:
    return dict(zip(OWN_FEATURE_NAMES, extract_own_features(y, sr).tolist(), strict=True))


def midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def chord(notes: list[int], seconds: float = 6.0, harmonics: int = 4) -> np.ndarray:
    """Sum of harmonic tones (1/h amplitudes) at the given MIDI notes."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(
        np.sin(2 * np.pi * midi_hz(n) * h * t) / h for n in notes for h in range(1, harmonics + 1)
    )
    return (0.1 * y).astype(np.float32)


def click_track(bpm: float, seconds: float = 30.0) -> np.ndarray:
    """Short decaying 1 kHz bursts every beat."""
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    burst_t = np.arange(int(0.03 * SR)) / SR
    burst = (np.sin(2 * np.pi * 1000 * burst_t) * np.exp(-burst_t / 0.005)).astype(np.float32)
    for start in (np.arange(0, seconds, 60.0 / bpm) * SR).astype(int):
        end = min(start + len(burst), len(y))
        y[start:end] += burst[: end - start]
    return y


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return (np.random.default_rng(0).normal(size=5 * SR) * 0.05).astype(np.float32)


# --- names and shape ----------------------------------------------------------------------------


def test_names_unique_readable_and_grouped() -> None:
    assert len(OWN_FEATURE_NAMES) == len(set(OWN_FEATURE_NAMES))
    assert 250 <= len(OWN_FEATURE_NAMES) <= 500
    pattern = re.compile(r"^[a-z]+\.[A-Za-z0-9_]+(\.[a-z0-9_]+)?$")
    assert all(pattern.match(n) for n in OWN_FEATURE_NAMES)
    assert {n.split(".")[0] for n in OWN_FEATURE_NAMES} == FAMILIES
    for name in (
        "dynamics.rms.mean",
        "rhythm.tempo",
        "tonality.mode_major_minus_minor",
        "harmony.dissonance.mean",
        "timbre.mfcc_19.delta_std",
        "articulation.attack_time.mean",
    ):
        assert name in OWN_FEATURE_NAMES


def test_fixed_length_float32_and_deterministic(noise: np.ndarray) -> None:
    a = extract_own_features(noise, SR)
    b = extract_own_features(noise.copy(), SR, seed=123)  # no randomness: the seed changes nothing
    assert a.dtype == np.float32
    assert a.shape == (len(OWN_FEATURE_NAMES),)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(np.zeros(30 * SR, dtype=np.float32), id="silence-30s"),
        pytest.param(np.zeros(SR, dtype=np.float32), id="silence-1s"),
        pytest.param(np.full(SR, 0.5, dtype=np.float32), id="dc-1s"),
        pytest.param(np.random.default_rng(1).normal(size=SR).astype(np.float32), id="noise-1s"),
        pytest.param(np.r_[np.zeros(SR - 1), 1.0].astype(np.float32), id="single-impulse"),
        pytest.param(
            np.r_[np.full(100, np.nan), np.zeros(SR)].astype(np.float32), id="nan-samples"
        ),
    ],
)
def test_finite_on_degenerate_audio(signal: np.ndarray) -> None:
    values = extract_own_features(signal, SR)
    assert values.shape == (len(OWN_FEATURE_NAMES),)
    assert np.isfinite(values).all()


def test_silence_reads_as_silence() -> None:
    f = features(np.zeros(3 * SR, dtype=np.float32))
    assert f["dynamics.rms.mean"] == 0.0
    assert f["dynamics.rms_db.mean"] == -100.0  # the dB floor, not -inf
    assert f["rhythm.tempo"] == 0.0
    assert f["rhythm.onset_rate"] == 0.0
    assert f["harmony.dissonance.mean"] == 0.0


@pytest.mark.parametrize("sr", [8_000, 22_050, 44_100])
def test_other_sample_rates_give_same_layout(sr: int) -> None:
    t = np.arange(2 * sr) / sr
    values = extract_own_features((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    assert values.shape == (len(OWN_FEATURE_NAMES),)
    centroid = values[OWN_FEATURE_NAMES.index("timbre.spectral_centroid.mean")]
    assert abs(centroid - 440) < 15


@pytest.mark.parametrize(
    ("y", "sr", "match"),
    [
        (np.zeros((2, SR), dtype=np.float32), SR, "mono"),
        (np.zeros(SR // 4, dtype=np.float32), SR, "too short"),
        (np.zeros(SR, dtype=np.float32), 4_000, "sample rate"),
    ],
)
def test_bad_input_raises_audio_error(y: np.ndarray, sr: int, match: str) -> None:
    with pytest.raises(AudioError, match=match):
        extract_own_features(y, sr)


# --- values against hand-computed expectations --------------------------------------------------


@pytest.mark.parametrize("bpm", [90.0, 120.0])
def test_click_track_tempo_and_onsets(bpm: float) -> None:
    f = features(click_track(bpm))
    assert abs(f["rhythm.tempo"] - bpm) <= 5.0
    assert f["rhythm.onset_rate"] == pytest.approx(bpm / 60.0, abs=0.15)
    assert f["rhythm.beat_ibi_cv"] < 0.05  # a metronome is perfectly regular
    assert f["rhythm.pulse_clarity"] > 0.8
    assert f["articulation.attack_time.mean"] < 0.02  # the bursts start instantly


def test_major_triad_scores_more_major_than_minor_triad() -> None:
    for root in (60, 62, 57):  # C, D, A
        major = features(chord([root, root + 4, root + 7]))
        minor = features(chord([root, root + 3, root + 7]))
        assert (
            major["tonality.mode_major_minus_minor"]
            > minor["tonality.mode_major_minus_minor"] + 0.1
        )


def test_gain_scales_rms_and_keeps_spectral_shape(noise: np.ndarray) -> None:
    quiet, loud = features(noise), features(2.0 * noise)  # +6.02 dB
    assert loud["dynamics.rms.mean"] == pytest.approx(2.0 * quiet["dynamics.rms.mean"], rel=1e-4)
    assert loud["dynamics.rms_db.mean"] - quiet["dynamics.rms_db.mean"] == pytest.approx(
        20 * math.log10(2), abs=1e-3
    )
    for name in (
        "timbre.spectral_centroid.mean",
        "timbre.spectral_flatness.mean",
        "timbre.mfcc_05.mean",
        "harmony.dissonance.mean",
    ):
        assert loud[name] == pytest.approx(quiet[name], rel=1e-3, abs=1e-6), name


def test_sine_levels_and_centroid() -> None:
    amplitude = 0.1
    t = np.arange(5 * SR) / SR
    f = features((amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    expected_db = 20 * math.log10(amplitude / math.sqrt(2))  # RMS of a sine is A / sqrt(2)
    assert f["dynamics.rms_db.median"] == pytest.approx(expected_db, abs=0.1)
    # A-weighting is ~0 dB at 1 kHz, so the loudness reads like the plain level
    assert f["dynamics.loudness_a_db.median"] == pytest.approx(expected_db, abs=0.5)
    assert f["timbre.spectral_centroid.median"] == pytest.approx(1000, abs=10)
    assert f["timbre.spectral_flatness.mean"] < 0.01


def test_noise_is_flat_and_tone_is_not(noise: np.ndarray) -> None:
    f = features(noise)
    assert f["timbre.spectral_flatness.mean"] > 0.5
    assert f["timbre.spectral_entropy.mean"] > 0.9
    # white noise at 16 kHz: power is spread evenly, centroid near 4 kHz (half of Nyquist)
    assert f["timbre.spectral_centroid.mean"] == pytest.approx(4000, rel=0.05)


def test_sethares_curve_peaks_where_the_formula_says() -> None:
    # d(df) = exp(-3.51 s df) - exp(-5.75 s df) peaks at df* = ln(5.75/3.51) / (2.24 s)
    f0 = 440.0
    s = 0.24 / (0.0207 * f0 + 18.96)
    expected_peak = math.log(5.75 / 3.51) / ((5.75 - 3.51) * s)  # ~25.8 Hz
    df = np.linspace(0.0, 200.0, 2001)
    pairs_f = np.stack([np.full_like(df, f0), f0 + df], axis=1)
    d = sethares_dissonance(pairs_f, np.ones_like(pairs_f))
    assert d[0] == 0.0  # unison is consonant
    assert abs(df[np.argmax(d)] - expected_peak) < 0.2
    # a pair counts once, and amplitudes multiply
    single = sethares_dissonance(np.array([f0, f0 + 25.0]), np.array([0.5, 0.4]))
    curve = math.exp(-3.51 * s * 25.0) - math.exp(-5.75 * s * 25.0)
    assert single == pytest.approx(0.5 * 0.4 * curve)


def test_minor_second_is_more_dissonant_than_fifth() -> None:
    second = features(chord([72, 73], harmonics=1))
    fifth = features(chord([72, 79], harmonics=1))
    assert second["harmony.dissonance.mean"] > 10 * fifth["harmony.dissonance.mean"]


def test_runtime_per_30s_clip() -> None:
    rng = np.random.default_rng(2)
    # a plausible 30-s clip: chords with a beat and some noise
    y = np.tile(chord([60, 64, 67], seconds=2.0), 15)
    y = y + click_track(120.0) + 0.01 * rng.normal(size=len(y)).astype(np.float32)
    extract_own_features(y[: 3 * SR], SR)  # warm-up: filter banks are built once per rate
    start = time.process_time()
    extract_own_features(y, SR)
    elapsed = time.process_time() - start
    # measured ~0.35 s of CPU on one core; the bound leaves room for slow CI machines
    assert elapsed < 4.0


@needs_4qaed
def test_real_4qaed_clip_is_finite_and_plausible() -> None:
    path = sorted((FOURQAED / "Q1").glob("*"))[0]
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    f = features(y.mean(axis=1), sr)
    assert all(math.isfinite(v) for v in f.values())
    assert 30.0 <= f["rhythm.tempo"] <= 300.0
    assert f["rhythm.onset_rate"] > 0.2


# --- Essentia backend ---------------------------------------------------------------------------


def test_essentia_missing_raises_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "essentia", None)  # makes `import essentia` fail
    monkeypatch.setitem(sys.modules, "essentia.standard", None)
    with pytest.raises(ConfigError) as info:
        extract_essentia_features(tmp_path / "song.wav")
    assert str(info.value) == ESSENTIA_MISSING
    assert "pip install 'merkit[essentia]'" in str(info.value)


def test_flatten_pool_names_and_values() -> None:
    pool = {
        "lowlevel.loudness.mean": 0.5,
        "lowlevel.mfcc.mean": np.array([1.0, 2.0, 3.0]),
        "lowlevel.mfcc.cov": np.array([[1.0, 2.0], [2.0, 5.0]]),
        "tonal.key_edma.key": "C",
        "tonal.key_edma.scale": "minor",
        "tonal.chords_scale": "major",
        "metadata.audio_properties.length": 30.0,
        "rhythm.beats_position": np.array([0.5, 1.0]),
    }
    names, values = flatten_pool(pool)
    assert dict(zip(names, values.tolist(), strict=True)) == {
        "lowlevel.loudness.mean": 0.5,
        "lowlevel.mfcc.cov.0_0": 1.0,
        "lowlevel.mfcc.cov.0_1": 2.0,
        "lowlevel.mfcc.cov.1_1": 5.0,
        "lowlevel.mfcc.mean.0": 1.0,
        "lowlevel.mfcc.mean.1": 2.0,
        "lowlevel.mfcc.mean.2": 3.0,
        "tonal.chords_scale_major": 1.0,
        "tonal.key_edma.scale_major": 0.0,
    }
    assert list(names) == sorted(names)


def test_essentia_extracts_thousands_of_named_features(tmp_path: Path) -> None:
    pytest.importorskip("essentia", reason="essentia (optional, AGPL) is not installed")
    t = np.arange(3 * 22_050) / 22_050
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "a.wav", tone, 22_050)
    sf.write(tmp_path / "b.ogg", tone[::-1].copy(), 22_050)  # decoded to WAV first
    names_a, values_a = extract_essentia_features(tmp_path / "a.wav")
    names_b, _ = extract_essentia_features(tmp_path / "b.ogg")
    assert names_a == names_b
    assert len(names_a) > 2000
    assert len(set(names_a)) == len(names_a)
    assert values_a.shape == (len(names_a),)
    with pytest.raises(AudioError, match="not found"):
        extract_essentia_features(tmp_path / "missing.wav")


# --- the extractor's fast re-implementations equal the librosa calls they replace ---------------


def test_fast_helpers_match_librosa() -> None:
    import librosa
    import scipy.ndimage

    from merkit.features import own

    rng = np.random.default_rng(3)
    y = (chord([60, 64, 67], seconds=3.0) + 0.02 * rng.normal(size=3 * SR)).astype(np.float32)
    y[:400] = 0.0  # exact zeros exercise the zero-crossing threshold
    n_fft, hop = own._frame_params(SR)
    np.testing.assert_array_equal(
        own._zero_crossing_rate(y, n_fft, hop),
        librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0],
    )
    np.testing.assert_allclose(
        own._frame_rms(y, n_fft, hop),
        librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[0],
        rtol=1e-5,
        atol=1e-9,
    )
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)).astype(np.float64)
    assert own._estimate_tuning(S, SR, n_fft) == librosa.estimate_tuning(S=S, sr=SR, n_fft=n_fft)
    freqs = librosa.fft_frequencies(sr=SR, n_fft=n_fft)
    np.testing.assert_allclose(
        own._spectral_contrast(np.ascontiguousarray(S.T), freqs, 200.0),
        librosa.feature.spectral_contrast(S=S, sr=SR, freq=freqs, fmin=200.0, n_bands=6),
        rtol=1e-10,
    )
    mel = S[:96] ** 2
    np.testing.assert_array_equal(
        own._median_filter(mel, 17, axis=1),
        scipy.ndimage.median_filter(mel, size=(1, 17), mode="reflect"),
    )
    for mine, theirs in zip(
        own._hpss(mel, 17, 9), librosa.decompose.hpss(mel, kernel_size=(17, 9)), strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=hop)
    # float32 transforms: values in [-1, 1] agree to float32 precision
    np.testing.assert_allclose(
        own._tempogram(env, 64),
        librosa.feature.tempogram(onset_envelope=env, sr=SR, hop_length=hop, win_length=64),
        rtol=0,
        atol=1e-6,
    )


# --- the speed-ups of issue 30 give the values of the straightforward code, bit for bit ----------


def _partition_median(x: np.ndarray, width: int, axis: int) -> np.ndarray:
    """The ``width // 2``-th smallest of each mirrored window, by a partition of every window."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (width // 2, (width - 1) // 2)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, pad, mode="symmetric"), width, axis=axis
    )
    return np.partition(windows, width // 2, axis=-1)[..., width // 2]


@pytest.mark.parametrize("width", [1, 2, 3, 4, 8, 9, 16, 17, 19])
def test_median_network_equals_the_partition_median(width: int) -> None:
    from merkit.features import own

    rng = np.random.default_rng(width)
    ties = rng.integers(0, 4, (23, 31)).astype(np.float32)  # many equal values
    smooth = rng.random((96, 40)).astype(np.float32)
    for x in (ties, smooth):
        for axis in (0, 1):
            np.testing.assert_array_equal(
                own._median_filter(x, width, axis), _partition_median(x, width, axis)
            )


def test_contrast_min_max_bands_equal_the_partition() -> None:
    from merkit.audio import dsp
    from merkit.features import own

    rng = np.random.default_rng(5)
    n_fft, _ = own._frame_params(SR)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SR)
    spectra = (rng.random((60, len(freqs))) ** 3).astype(np.float32)
    spectra[:, 100:110] = 0.5  # ties inside a band
    fmin = 112.5  # the extractor's at 16 kHz: bands whose quantile holds 1, 2, 5 and 11 bins
    edges = np.zeros(own.CONTRAST_BANDS + 2)
    edges[1:] = fmin * 2.0 ** np.arange(own.CONTRAST_BANDS + 1)
    valley = np.zeros((own.CONTRAST_BANDS + 1, len(spectra)))
    peak = np.zeros_like(valley)
    for k in range(own.CONTRAST_BANDS + 1):  # librosa's band and quantile, by partition
        current = (freqs >= edges[k]) & (freqs <= edges[k + 1])
        idx = np.flatnonzero(current)
        if k > 0:
            current[idx[0] - 1] = True
        if k == own.CONTRAST_BANDS:
            current[idx[-1] + 1 :] = True
        sub = spectra[:, current] if k == own.CONTRAST_BANDS else spectra[:, current][:, :-1]
        q = max(int(np.rint(0.02 * np.sum(current))), 1)
        n = sub.shape[1]
        parted = np.partition(sub, (q - 1, n - q), axis=1)
        valley[k] = parted[:, :q].mean(axis=1)
        peak[k] = parted[:, n - q :].mean(axis=1)
    np.testing.assert_array_equal(
        own._spectral_contrast(spectra, freqs, fmin),
        dsp.power_to_db(peak) - dsp.power_to_db(valley),
    )


def test_sethares_mirrored_curve_equals_the_full_matrix() -> None:
    rng = np.random.default_rng(2)
    freqs = rng.uniform(50.0, 5000.0, (40, 12))
    amps = rng.random((40, 12))
    amps[:, -2:] = 0.0
    f_i, f_j = freqs[..., :, None], freqs[..., None, :]
    df = np.abs(f_i - f_j)
    s = 0.24 / (0.0207 * np.minimum(f_i, f_j) + 18.96)
    curve = np.exp(-3.51 * s * df) - np.exp(-5.75 * s * df)
    full = 0.5 * (amps[..., :, None] * amps[..., None, :] * curve).sum(axis=(-2, -1))
    np.testing.assert_array_equal(sethares_dissonance(freqs, amps), full)


def test_shared_summary_statistics_equal_each_alone() -> None:
    from merkit.features import own

    rng = np.random.default_rng(4)
    cases = [rng.normal(size=937), np.r_[rng.random(50), np.zeros(50)], np.ones(8), np.ones(1)]
    cases += [rng.normal(size=n) ** 3 for n in (2, 3, 4, 5, 1875, 1876)]
    cases += [np.r_[rng.random(9), np.inf], np.r_[rng.random(9), np.nan], np.array([np.inf])]
    for x in cases:
        with np.errstate(all="ignore"):  # inf - inf in the inf and NaN cases
            check_summary_of(x)
    assert own._stats(np.zeros(0), own.FULL_STATS) == [0.0] * len(own.FULL_STATS)


def check_summary_of(x: np.ndarray) -> None:
    """``own._stats`` of ``x`` equals each statistic computed alone, bit for bit."""
    from merkit.features import own

    d = np.diff(x)
    centred = x - x.mean()
    m2 = np.mean(centred**2)
    flat = m2 <= 1e-12 * (np.mean(x**2) + 1e-30)
    alone = [
        x.mean(),
        x.std(),
        np.percentile(x, 10),
        np.median(x),
        np.percentile(x, 90),
        0.0 if flat else np.mean(centred**3) / m2**1.5,
        0.0 if flat else np.mean(centred**4) / m2**2 - 3.0,
        np.mean(np.abs(d)) if x.size > 1 else 0.0,
        d.std() if x.size > 1 else 0.0,
    ]
    np.testing.assert_array_equal(own._stats(x, own.FULL_STATS), alone, strict=True)
    for stats in (own.MEAN_STD, own.EVENT_STATS, ("median",), ("p90", "mean")):
        expected = [alone[own.FULL_STATS.index(stat)] for stat in stats]
        np.testing.assert_array_equal(own._stats(x, stats), expected)


def test_flatness_entropy_and_range_equal_the_plain_formulas() -> None:
    import math

    from merkit.features import own

    rng = np.random.default_rng(7)
    y = (chord([60, 63, 67], seconds=4.0) + 0.05 * rng.normal(size=4 * SR)).astype(np.float32)
    y[: SR // 2] = 0.0  # silent frames: exact zeros in the power spectrum
    a = own._analyse(y, SR)
    timbre, dynamics = own._timbre(a), own._dynamics(a)
    with np.errstate(divide="ignore"):
        log_power = np.log(a.power)
    mean_log = np.maximum(log_power, np.float32(math.log(1e-10))).mean(axis=0, dtype=np.float64)
    flatness = np.exp(mean_log) / np.maximum(a.power, 1e-10).mean(axis=0)
    p_log_p = np.einsum(
        "ft,ft->t", a.power, np.where(a.power > 0, log_power, np.float32(0.0)), dtype=np.float64
    )
    energy = (own._band_indicators(SR, a.n_fft) @ a.power).sum(axis=0)
    safe = np.where(energy > own._EPS, energy, 1.0)
    entropy = np.where(
        energy > own._EPS, (np.log(safe) - p_log_p / safe) / math.log(a.power.shape[0]), 0.0
    )
    assert (a.power == 0).any()
    np.testing.assert_array_equal(timbre["timbre.spectral_flatness"], flatness, strict=True)
    np.testing.assert_array_equal(timbre["timbre.spectral_entropy"], entropy, strict=True)
    rms_db = dynamics["dynamics.rms_db"]
    assert dynamics["dynamics.range_db"] == float(
        np.percentile(rms_db, 95) - np.percentile(rms_db, 10)
    )


def test_row_statistics_equal_each_series_alone() -> None:
    from merkit.features import own

    rng = np.random.default_rng(8)
    for n in (2, 3, 4, 9, 937, 1875, 1876):
        x = rng.normal(size=(7, n)) ** 3
        x[1] = 2.5  # flat: no skew or kurtosis
        x[2, : n // 2] = 0.0
        x[3, -1], x[4, 0] = np.inf, np.nan
        for stats in (own.FULL_STATS, own.MEAN_STD, own.EVENT_STATS, ("p90", "median", "mean")):
            with np.errstate(all="ignore"):
                rows = own._row_stats(x, stats)
                alone = [own._stats(row, stats) for row in x]
            np.testing.assert_array_equal(rows, alone, strict=True)


def test_one_partition_gives_numpys_percentiles_and_median() -> None:
    from merkit.features import own

    rng = np.random.default_rng(5)
    qs = [0.0, 10.0, 25.0, 50.0, 90.0, 95.0, 99.9]
    for n in (*range(2, 40), 937, 1875, 1876):
        for x in (rng.normal(size=n), rng.integers(0, 4, size=n).astype(np.float64)):
            values, middle = own._percentiles(x.copy(), qs, median=True)
            assert values == [float(np.percentile(x, q)) for q in qs]
            assert middle == float(np.median(x))
            assert np.percentile(x, [10, 90]).tolist() == own._percentiles(x, [10.0, 90.0])[0]
    values, middle = own._percentiles(np.array([1.0, np.nan, 3.0]), [10.0], median=True)
    assert np.isnan(values[0]) and np.isnan(middle)


def _attacks_and_decays_loop(
    env: np.ndarray, centres: np.ndarray, pre: int, post: int, global_rms: float, step_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The onset-by-onset loop the vectorised version replaced."""
    n = len(env)
    attack_t, attack_s, decay_t = [], [], []
    for centre in centres.tolist():
        lo, hi = max(0, centre - pre), min(n, centre + post)
        seg = env[lo:hi]
        if seg.size < 3 or seg.max() <= 0:
            continue
        p = int(np.argmax(seg))
        peak = seg[p]
        below = np.flatnonzero(seg[:p] <= 0.2 * peak)
        start = int(below[-1]) if below.size else 0
        reach = start + int(np.argmax(seg[start : p + 1] >= 0.9 * peak))
        duration = max(reach - start, 1) * step_s
        attack_t.append(duration)
        attack_s.append((seg[reach] - seg[start]) / (global_rms * duration))
        after = np.flatnonzero(env[lo + p : min(n, lo + p + 2 * post)] <= 0.5 * peak)
        decay_t.append((after[0] if after.size else 2 * post) * step_s)
    return np.asarray(attack_t), np.asarray(attack_s), np.asarray(decay_t)


def test_vectorised_attacks_equal_the_onset_loop() -> None:
    from merkit.features import own

    rng = np.random.default_rng(7)
    env = rng.random(400) ** 2
    env[100:160] = 0.0  # silent stretch: skipped onsets
    env[200:230] = 0.3  # a plateau: ties for the peak
    centres = np.array([0, 1, 5, 20, 120, 130, 150, 210, 300, 385, 398, 399, 420])
    for pre, post in ((10, 30), (3, 5)):
        ours = own._attacks_and_decays(env, centres, pre, post, 0.4, 0.005)
        for mine, loop in zip(
            ours, _attacks_and_decays_loop(env, centres, pre, post, 0.4, 0.005), strict=True
        ):
            np.testing.assert_array_equal(mine, loop)
    empty = own._attacks_and_decays(env, np.zeros(0, dtype=np.int64), 10, 30, 0.4, 0.005)
    assert [v.shape for v in empty] == [(0,), (0,), (0,)]

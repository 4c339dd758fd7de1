"""merkit.audio.dsp against librosa (the definitions it follows) and against hand-computed values.

Continuous outputs are compared to a stated relative tolerance (on this machine they are
bit-identical: the same numpy/scipy operations in the same order); discrete outputs (onset frames,
beat frames) must be identical. A subprocess test checks that ``merkit predict`` with the
shipped model on own features imports neither librosa nor numba and compiles nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.conftest import FOURQAED, needs_4qaed

from conftest import needs_crnn_weights
from merkit.audio import dsp, rhythm

librosa = pytest.importorskip("librosa")

SR, N_FFT, HOP = 16000, 2048, 256
# float32 results: a few ulps of the largest value; float64 results: ~1e4 ulps
RTOL32, RTOL64 = 1e-6, 1e-12


def close(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Equal shapes, and every element within ``rtol`` of the largest magnitude of ``expected``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected), initial=0.0)) or 1.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def synthetic_clip(seconds: float = 8.0, bpm: float = 112.0, seed: int = 0) -> np.ndarray:
    """Chords on a click track with noise, a quiet intro and a fade: onsets, beats and pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for midi in (57, 61, 64):  # A major, slightly sharp
        f = 440.0 * 2 ** ((midi - 69 + 0.2) / 12)
        y += 0.2 * np.sin(2 * np.pi * f * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
    period = 60.0 / bpm
    clicks = np.zeros_like(t)
    for start in np.arange(1.0, seconds, period):
        i = int(start * SR)
        n = min(400, len(t) - i)
        clicks[i : i + n] += np.exp(-np.arange(n) / 60.0) * rng.normal(size=n)
    y = y + 0.8 * clicks + 0.01 * rng.normal(size=len(t))
    y[: SR // 2] *= 0.01  # near-silent intro: the beat tracker's first-beat rule matters
    return (y / np.max(np.abs(y))).astype(np.float32)


def mel_db(y: np.ndarray) -> np.ndarray:
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=96) @ (S * S)
    return librosa.power_to_db(mel.astype(np.float64), top_db=80.0)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return synthetic_clip()


@pytest.fixture(scope="module")
def envelope(clip: np.ndarray) -> np.ndarray:
    return librosa.onset.onset_strength(S=mel_db(clip), sr=SR, hop_length=HOP, lag=2)


# ---------------------------------------------------------------------------------------------
# Spectra and filter banks


@pytest.mark.parametrize("n_samples", [SR * 3, SR * 3 + 77, 3000])
def test_stft_matches_librosa(n_samples: int) -> None:
    y = synthetic_clip(seconds=4.0)[:n_samples]
    ours = dsp.stft(y, n_fft=N_FFT, hop_length=HOP)
    ref = librosa.stft(y, n_fft=N_FFT, hop_length=HOP)
    assert ours.dtype == ref.dtype == np.complex64
    close(ours, ref, RTOL32)


def test_stft_of_a_tone_peaks_at_its_bin() -> None:
    f = 1000.0  # bin 128 at 16 kHz / 2048
    y = np.sin(2 * np.pi * f * np.arange(SR) / SR)
    S = np.abs(dsp.stft(y, n_fft=N_FFT, hop_length=HOP))
    assert S.shape == (1 + N_FFT // 2, 1 + SR // HOP)
    assert set(np.argmax(S[:, 5:-5], axis=0)) == {128}
    # a periodic Hann window of N samples sums to N/2: the peak is amplitude * N/4
    assert S[128, 30] == pytest.approx(N_FFT / 4, rel=1e-3)


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels"),
    [(16000, 2048, 96), (22050, 2048, 128), (16000, 512, 96), (44100, 4096, 40)],
)
def test_mel_filterbank_matches_librosa(sr: int, n_fft: int, n_mels: int) -> None:
    ours = dsp.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.dtype == np.float32
    close(ours, ref, RTOL32)


def test_slaney_mel_scale_by_hand() -> None:
    # linear below 1 kHz (200/3 Hz per mel), then 27 mels per factor 6.4
    assert dsp.hz_to_mel(500.0) == pytest.approx(7.5)
    assert dsp.hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)
    assert dsp.mel_to_hz(dsp.hz_to_mel(3210.0)) == pytest.approx(3210.0)


@pytest.mark.parametrize("tuning", [0.0, -0.31, 0.17])
def test_chroma_filterbank_matches_librosa(tuning: float) -> None:
    ours = dsp.chroma_filterbank(sr=SR, n_fft=N_FFT, tuning=tuning)
    ref = librosa.filters.chroma(sr=SR, n_fft=N_FFT, tuning=tuning)
    close(ours, ref, RTOL32)
    # a bin near A4 (440 Hz = bin 56.3) weighs most on pitch class A (index 9, C first)
    assert np.argmax(ours[:, 56]) == 9


def test_a_weighting_matches_librosa_and_iec_values() -> None:
    freqs = dsp.fft_frequencies(sr=SR, n_fft=N_FFT)
    np.testing.assert_array_equal(freqs, librosa.fft_frequencies(sr=SR, n_fft=N_FFT))
    f = np.maximum(freqs, 1.0)
    close(dsp.a_weighting(f), librosa.A_weighting(f), RTOL64)
    # IEC 61672-1 table: 0 dB at 1 kHz, -19.1 dB at 100 Hz, -2.5 dB at 10 kHz
    assert dsp.a_weighting(np.array([1000.0, 100.0, 10000.0])) == pytest.approx(
        [0.0, -19.1, -2.5], abs=0.06
    )


# ---------------------------------------------------------------------------------------------
# Frame-level features


def test_power_to_db_mfcc_delta_match_librosa(clip: np.ndarray) -> None:
    S = np.abs(librosa.stft(clip, n_fft=N_FFT, hop_length=HOP)) ** 2
    close(dsp.power_to_db(S), librosa.power_to_db(S), RTOL32)
    assert dsp.power_to_db(np.array([1.0, 1e-3, 0.0])).tolist() == [0.0, -30.0, -80.0]
    db = mel_db(clip)
    coeffs = dsp.mfcc(db, n_mfcc=20)
    close(coeffs, librosa.feature.mfcc(S=db, sr=SR, n_mfcc=20), RTOL64)
    for order in (1, 2):
        close(
            dsp.delta(coeffs, width=9, order=order),
            librosa.feature.delta(coeffs, width=9, order=order),
            RTOL64,
        )
    # the first delta of a linear ramp is its slope
    assert dsp.delta(np.arange(20.0)[None, :] * 3.0, width=5) == pytest.approx(3.0)


def test_tonnetz_matches_librosa(clip: np.ndarray) -> None:
    S = np.abs(librosa.stft(clip, n_fft=N_FFT, hop_length=HOP)) ** 2
    chroma = librosa.filters.chroma(sr=SR, n_fft=N_FFT) @ S
    chroma[:, :3] = 0.0  # silent frames stay zero
    ours = dsp.tonnetz(chroma)
    close(ours, librosa.feature.tonnetz(chroma=chroma, sr=SR), RTOL64)
    assert np.all(ours[:, :3] == 0.0)
    # pitch class C alone: fifths circle at angle 0 (x = sin 0 = 0, y = cos 0 = 1)
    c = np.zeros((12, 1))
    c[0] = 1.0
    assert dsp.tonnetz(c)[:, 0] == pytest.approx([0.0, 1.0, 0.0, 1.0, 0.0, 0.5])


def test_softmask_and_abs2_match_librosa() -> None:
    rng = np.random.default_rng(3)
    X, R = rng.random((20, 30)), rng.random((20, 30))
    X[:, :2] = R[:, :2] = 0.0
    mask = dsp.softmask(X, R, power=2.0)
    close(mask, librosa.util.softmask(X, R, power=2.0, split_zeros=True), RTOL64)
    assert np.all(mask[:, :2] == 0.5)
    assert dsp.softmask(np.array([3.0]), np.array([4.0]), power=2.0) == pytest.approx(9 / 25)
    z = (rng.normal(size=50) + 1j * rng.normal(size=50)).astype(np.complex64)
    np.testing.assert_array_equal(dsp.abs2(z), librosa.util.abs2(z))


def test_softmask_pair_equals_two_softmasks() -> None:
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        X, R = rng.random((20, 30)).astype(dtype), rng.random((20, 30)).astype(dtype)
        X[:, :2] = R[:, :2] = 0.0
        X[3, 5:9] = 0.0
        mask, ref = dsp.softmask_pair(X, R, power=2.0)
        np.testing.assert_array_equal(mask, dsp.softmask(X, R, power=2.0))
        np.testing.assert_array_equal(ref, dsp.softmask(R, X, power=2.0))


def test_pitch_tuning_matches_librosa() -> None:
    rng = np.random.default_rng(4)
    freqs = 440.0 * 2 ** ((rng.integers(-24, 24, 400) + 0.23 + 0.02 * rng.normal(size=400)) / 12)
    assert dsp.pitch_tuning(freqs) == librosa.pitch_tuning(freqs)
    assert dsp.pitch_tuning(freqs) == pytest.approx(0.23, abs=0.02)
    assert dsp.pitch_tuning(np.zeros(3)) == 0.0


# ---------------------------------------------------------------------------------------------
# Onsets and beats (discrete: must be identical)


@pytest.mark.parametrize("lag", [1, 2])
@pytest.mark.parametrize("hop", [HOP, 2 * HOP])
def test_onset_strength_matches_librosa(clip: np.ndarray, lag: int, hop: int) -> None:
    db = mel_db(clip)
    ours = rhythm.onset_strength(db, hop_length=hop, lag=lag)
    close(ours, librosa.onset.onset_strength(S=db, sr=SR, hop_length=hop, lag=lag), RTOL64)


def test_onset_detect_matches_librosa(envelope: np.ndarray) -> None:
    ours = rhythm.onset_detect(envelope, sr=SR, hop_length=HOP)
    ref = librosa.onset.onset_detect(onset_envelope=envelope, sr=SR, hop_length=HOP)
    assert len(ours) > 10
    np.testing.assert_array_equal(ours, ref)
    assert rhythm.onset_detect(np.zeros(100), sr=SR, hop_length=HOP).size == 0


@pytest.mark.parametrize("wait", [0, 1, 4])
def test_peak_pick_matches_librosa(wait: int) -> None:
    x = np.random.default_rng(5).random(400)
    kwargs = dict(pre_max=3, post_max=2, pre_avg=5, post_avg=4, delta=0.05, wait=wait)
    ours = rhythm.peak_pick(x, **kwargs)
    np.testing.assert_array_equal(ours, librosa.util.peak_pick(x, **kwargs))
    assert np.all(np.diff(ours) > wait)


@pytest.mark.parametrize("bpm", [58.0, 96.3, 112.0, 140.0, 224.0])
def test_beat_track_matches_librosa(envelope: np.ndarray, bpm: float) -> None:
    ours = rhythm.beat_track(envelope, sr=SR, hop_length=HOP, bpm=bpm)
    _, ref = librosa.beat.beat_track(
        onset_envelope=envelope, sr=SR, hop_length=HOP, bpm=bpm, units="frames"
    )
    assert len(ref) > 5
    np.testing.assert_array_equal(ours, ref)


def test_beat_track_follows_a_click_track() -> None:
    env = np.zeros(1500)
    env[100::32] = 1.0  # a beat every 32 frames
    beats = rhythm.beat_track(env, sr=SR, hop_length=HOP, bpm=60.0 * SR / HOP / 32)
    # every click is a beat (the last one lands a few frames early, as librosa's does)
    assert beats[0] == 100
    assert set(np.diff(beats[:-1])) == {32}
    assert len(beats) == len(range(100, 1500, 32))
    assert rhythm.beat_track(np.zeros(200), sr=SR, hop_length=HOP, bpm=120.0).size == 0


@needs_4qaed
def test_real_clips_match_librosa() -> None:
    from merkit.audio.decode import load_audio

    for quadrant in ("Q1", "Q3"):
        path = sorted((FOURQAED / quadrant).glob("*"))[0]
        y = load_audio(path, SR)
        ref = librosa.stft(y, n_fft=N_FFT, hop_length=HOP)
        close(dsp.stft(y, n_fft=N_FFT, hop_length=HOP), ref, RTOL32)
        env = librosa.onset.onset_strength(S=mel_db(y), sr=SR, hop_length=HOP, lag=2)
        np.testing.assert_array_equal(
            rhythm.onset_detect(env, sr=SR, hop_length=HOP),
            librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=HOP),
        )
        for bpm in (81.0, 123.0):
            _, ref = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=bpm)
            ours = rhythm.beat_track(env, sr=SR, hop_length=HOP, bpm=bpm)
            np.testing.assert_array_equal(ours, ref)


# ---------------------------------------------------------------------------------------------
# The prediction path of the shipped model on own features


def own_features_model() -> Path:
    """The shipped ``svm-own`` model (named ``fast`` once shipped models have names)."""
    import json

    import merkit

    for name in ("fast", "default"):
        folder = Path(merkit.__file__).parent / "pretrained" / name
        manifest = folder / "manifest.json"
        if manifest.is_file():
            inputs = [i["name"] for i in json.loads(manifest.read_text())["inputs"]]
            if inputs == ["own-features"]:
                return folder
    pytest.skip("no shipped model on own features alone")


@pytest.mark.parametrize("model", ["fast", pytest.param("default", marks=needs_crnn_weights)])
def test_merkit_predict_imports_neither_librosa_nor_numba(model: str, tmp_path: Path) -> None:
    # both shipped models: svm-own (own features) and the fusion (own features + CRNN tags)
    t = np.arange(6 * 22050) / 22050
    y = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sign(np.sin(2 * np.pi * 2 * t)))
    wav = tmp_path / "tone.wav"
    sf.write(wav, np.stack([y, 0.5 * y], axis=1), 22050)  # stereo 22.05 kHz: mixed, resampled
    numba_dir = tmp_path / "numba-cache"
    numba_dir.mkdir()
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('LOADED', sorted(m for m in ('librosa', 'numba') "
        "if m in sys.modules), file=sys.stderr))\n"
        "from merkit.cli import app\n"
        f"app(['predict', {str(wav)!r}, '--model', {model!r}, '--format', 'json', "
        "'--quiet'])\n"
    )
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(numba_dir),  # empty: anything compiled would land here
        "MERKIT_CACHE": str(tmp_path / "merkit-cache"),  # no record of a verified numba cache
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"quadrant"' in proc.stdout
    assert "LOADED []" in proc.stderr
    assert not any(numba_dir.iterdir())  # no worker or helper process compiled anything


def test_needs_numba_only_for_inputs_through_librosa() -> None:
    from merkit.product.model_dir import read_manifest
    from merkit.product.predict import needs_numba

    manifest = read_manifest(own_features_model())
    assert [spec.name for spec in manifest.inputs] == ["own-features"]
    assert not needs_numba(manifest)

    def with_input(**update: object) -> object:
        spec = manifest.inputs[0].model_copy(update=update)
        return manifest.model_copy(update={"inputs": [spec]})

    assert needs_numba(with_input(name="classic-aug", fn=None))  # calls librosa's numba code
    assert needs_numba(with_input(name="made-up-input", fn="somewhere:else"))  # unknown
    assert needs_numba(with_input(fn="my_module:my_features"))  # not the registry's function

"""Audio loading, normalisation, cropping and header reading (merkit.audio.decode)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FOURQAED
from merkit.audio.decode import audio_info, crop_or_pad, load_audio, peak_normalize
from merkit.core.errors import AudioError, ConfigError

PEAK = 10 ** (-0.1 / 20)  # −0.1 dBFS as a linear amplitude
SHARED_CLIP = FOURQAED / "Q1" / "MT0000040632.ogg"


def _stereo(sr: int, seconds: float = 1.0) -> np.ndarray:
    """Left: 440 Hz at 0.4; right: 1000 Hz at 0.2 — the mono mix has a 2:1 amplitude ratio."""
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1000 * t)], 1)


def _amplitude_at(y: np.ndarray, sr: int, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    band = (freqs > freq - 20) & (freqs < freq + 20)
    return float(spectrum[band].max())


@pytest.mark.parametrize(
    ("ext", "subtype", "native_sr", "ratio_tol"),
    [
        ("wav", "FLOAT", 44_100, 0.01),
        ("flac", None, 44_100, 0.01),
        ("ogg", "VORBIS", 44_100, 0.1),
        ("ogg", "OPUS", 48_000, 0.1),
        ("mp3", "MPEG_LAYER_III", 44_100, 0.1),
    ],
)
def test_load_audio_stereo_to_16k_mono_normalised(
    tmp_path: Path, ext: str, subtype: str | None, native_sr: int, ratio_tol: float
) -> None:
    path = tmp_path / f"clip.{ext}"
    sf.write(path, _stereo(native_sr), native_sr, subtype=subtype)

    y = load_audio(path, sr=16_000)

    assert y.dtype == np.float32 and y.ndim == 1
    # Lossy codecs add encoder delay/padding; lossless ones resample exactly 1 s to 16 000 samples.
    assert abs(len(y) - 16_000) <= (0 if ext in ("wav", "flac") else 2_000)
    assert np.max(np.abs(y)) == pytest.approx(PEAK, abs=1e-6)
    # Both channels survive the downmix, at their 2:1 ratio (channel 0 alone would lose 1 kHz).
    ratio = _amplitude_at(y, 16_000, 440) / _amplitude_at(y, 16_000, 1000)
    assert ratio == pytest.approx(2.0, rel=ratio_tol)


def test_load_audio_without_normalisation_keeps_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (0.3 * rng.uniform(-1, 1, 8_000)).astype(np.float32)
    path = tmp_path / "mono.wav"
    sf.write(path, x, 16_000, subtype="FLOAT")

    np.testing.assert_array_equal(load_audio(path, sr=16_000, normalize=False), x)
    normalised = load_audio(path, sr=16_000)
    np.testing.assert_allclose(normalised, x * (PEAK / np.abs(x).max()), rtol=1e-6)


def test_load_audio_resamples_to_requested_rate(tmp_path: Path) -> None:
    path = tmp_path / "tone.flac"
    sf.write(path, _stereo(16_000, 2.0), 16_000)
    y = load_audio(path, sr=22_050)
    assert len(y) == 44_100
    assert _amplitude_at(y, 22_050, 440) > 10 * _amplitude_at(y, 22_050, 700)


def test_silent_file_stays_zero(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((1_000, 2)), 16_000)
    y = load_audio(path)
    assert len(y) == 1_000 and not np.any(y)


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.mp3"
    text.write_text("this is a text file, not audio\n" * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    sf.write(tmp_path / "ok.wav", np.zeros(1_000), 16_000)
    raw = (tmp_path / "ok.wav").read_bytes()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(raw[:20] + b"\x00" * 30 + raw[50:])  # garbled 'fmt ' chunk
    no_samples = tmp_path / "nosamples.wav"
    sf.write(no_samples, np.zeros((0, 2)), 44_100)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    return {
        "missing": tmp_path / "missing.wav",
        "empty": empty,
        "text": text,
        "corrupt": corrupt,
        "no_samples": no_samples,
        "folder": folder,
    }


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("text", "not a recognised audio format"),
        ("corrupt", "corrupt"),
        ("no_samples", "contains no samples"),
        ("folder", "not a regular file"),
    ],
)
def test_bad_inputs_raise_audio_error_naming_the_file(
    tmp_path: Path, case: str, reason: str
) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert path.name in message
    assert reason in message
    assert "\n" not in message


def test_audioread_fallback_is_used_when_soundfile_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import merkit.audio.decode

    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 200)  # libsndfile cannot read m4a
    tried: list[Path] = []

    def fake_audioread(p: Path) -> tuple[np.ndarray, int]:
        tried.append(p)
        return _stereo(44_100).astype(np.float32), 44_100

    monkeypatch.setattr(merkit.audio.decode, "_read_with_audioread", fake_audioread)
    y = load_audio(path)
    assert tried == [path] and len(y) == 16_000
    assert np.max(np.abs(y)) == pytest.approx(PEAK, abs=1e-6)


def test_non_finite_samples_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.1, np.nan, 0.2], dtype=np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match=re.escape("nan.wav")):
        load_audio(path)


def test_invalid_sample_rate_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_audio(tmp_path / "x.wav", sr=0)


def test_peak_normalize_values() -> None:
    y = np.array([0.0, 0.25, -0.5], dtype=np.float32)
    out = peak_normalize(y)
    np.testing.assert_allclose(out, np.array([0.0, 0.5, -1.0]) * PEAK, rtol=1e-6)
    np.testing.assert_allclose(peak_normalize(y, headroom_db=6.0)[2], -(10 ** (-6 / 20)), rtol=1e-6)
    assert not np.any(peak_normalize(np.zeros(5)))
    with pytest.raises(ConfigError):
        peak_normalize(y, headroom_db=-1)


def test_crop_or_pad() -> None:
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(crop_or_pad(y, 4), [6, 7, 8, 9])  # excess dropped from the start
    np.testing.assert_array_equal(crop_or_pad(y, 4, keep="first"), [0, 1, 2, 3])
    np.testing.assert_array_equal(crop_or_pad(y[:3], 5), [0, 1, 2, 0, 0])  # zeros at the end
    np.testing.assert_array_equal(crop_or_pad(y, 10), y)
    assert len(crop_or_pad(np.ones(500_000))) == 482_000
    with pytest.raises(ConfigError):
        crop_or_pad(y, 4, keep="middle")  # type: ignore[arg-type]


def test_audio_info(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    sf.write(path, _stereo(44_100, 0.5), 44_100)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (44_100, 2, 22_050)
    assert info.duration == pytest.approx(0.5)
    assert info.format.startswith("FLAC")
    bad = _bad_files(tmp_path)
    for case in ("missing", "empty", "text"):
        with pytest.raises(AudioError, match=re.escape(bad[case].name)):
            audio_info(bad[case])


@pytest.mark.skipif(not SHARED_CLIP.exists(), reason="4QAED audio not available in ../shared")
def test_real_4qaed_clip() -> None:
    info = audio_info(SHARED_CLIP)
    y = load_audio(SHARED_CLIP)
    assert info.sample_rate == 16_000 and info.channels == 1
    assert len(y) == info.frames
    assert np.max(np.abs(y)) == pytest.approx(PEAK, abs=1e-6)

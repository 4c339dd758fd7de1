"""Log-mel, chunking, the representation registry and compute()
(merkit.representations.registry)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from merkit.core.errors import AudioError, ConfigError, DataError
from merkit.datasets.base import Dataset, FileSource, Song
from merkit.representations.cache import FeatureCache, NullCache
from merkit.representations.extract import ComputeStats, compute, song_seed
from merkit.representations.logmel import (
    LogMelConfig,
    chunk_waveform,
    logmel,
    logmel_chunks,
    power_to_db,
)
from merkit.representations.registry import (
    REPRESENTATIONS,
    Representation,
    get_representation,
    register_representation,
)

SR = 16_000


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _sine(freq: float, n: int = 32_000, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


# --- log-mel --------------------------------------------------------------------------------


def test_shapes_and_frame_count() -> None:
    assert logmel(_noise(482_000)).shape == (942, 128)
    full = logmel(_noise(480_000))
    assert full.shape == (942, 128) and full.dtype == np.float32
    free = logmel(_noise(480_000), LogMelConfig(n_frames=None))
    assert free.shape == (938, 128)  # 1 + 480000 // 512 real frames
    np.testing.assert_array_equal(full[:938], free)


def test_padding_values() -> None:
    y = _noise(480_000)
    real = logmel(y, LogMelConfig(n_frames=None))
    with_min = logmel(y)  # default: pad with the clip's floor (silence)
    with_zero = logmel(y, LogMelConfig(pad_value="zero"))  # the code's 0 dB padding
    assert np.all(with_min[938:] == real.min())
    assert np.all(with_zero[938:] == 0.0)
    np.testing.assert_array_equal(with_zero[:938], real)


def test_matches_librosa_reference_pipeline() -> None:
    y = _noise(40_000, seed=3)
    reference = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=SR), ref=1.0, amin=1e-10, top_db=80.0
    ).T
    ours = logmel(y, LogMelConfig(n_frames=None))
    np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_paper_code_preset_reproduces_the_repo_recipe() -> None:
    """Filterbank for 22 050 Hz, reflect padding, 0 dB padding to 942 frames, np.rot90."""
    y = _noise(480_000, seed=4)
    mel = librosa.feature.melspectrogram(y=y, sr=22_050, pad_mode="reflect")
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    padded = np.zeros((128, 942), dtype=np.float32)
    padded[:, : db.shape[1]] = db
    expected = np.rot90(padded)

    ours = logmel(y, LogMelConfig.paper_code())
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    assert np.all(ours[:4] == 0.0)  # the padding lands in the first rows
    cfg = LogMelConfig.paper_code()
    assert (cfg.filterbank_sr, cfg.pad_mode, cfg.pad_value, cfg.time_reversed) == (
        22_050,
        "reflect",
        "zero",
        True,
    )


@pytest.mark.parametrize("filterbank_sr", [16_000, 22_050])
def test_filterbank_rate_moves_a_1khz_tone(filterbank_sr: int) -> None:
    # The filterbank believes FFT bin k sits at k * filterbank_sr / n_fft, so a real 1 kHz tone
    # is seen at 1000 * filterbank_sr / 16000 Hz; the peak band is the centre nearest to that.
    centres = librosa.mel_frequencies(n_mels=130, fmin=0.0, fmax=filterbank_sr / 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - 1000.0 * filterbank_sr / SR)))
    spectrum = logmel(_sine(1000.0), LogMelConfig(n_frames=None, filterbank_sr=filterbank_sr))
    assert int(np.argmax(spectrum[5:-5].mean(axis=0))) == expected


def test_filterbank_quirk_changes_the_band() -> None:
    correct = logmel(_sine(1000.0), LogMelConfig(n_frames=None))
    quirk = logmel(_sine(1000.0), LogMelConfig(n_frames=None, filterbank_sr=22_050))
    band_correct = int(np.argmax(correct.mean(axis=0)))
    band_quirk = int(np.argmax(quirk.mean(axis=0)))
    # Slaney centres (librosa.mel_frequencies(130, fmax=sr/2)[1:-1]): a 16 kHz bank has band 42
    # at 1005.6 Hz (41: 982.1, 43: 1030.2); a 22.05 kHz bank sees the tone at 1378.1 Hz, nearest
    # band 50 at 1384.5 Hz (49: 1348.2, 51: 1421.8).
    assert (band_correct, band_quirk) == (42, 50)


def test_time_reversal_flips_rows_exactly() -> None:
    y = _noise(300_000, seed=5)
    forward = logmel(y)
    backward = logmel(y, LogMelConfig(time_reversed=True))
    np.testing.assert_array_equal(backward, forward[::-1])


def test_pad_mode_only_changes_the_edge_frames() -> None:
    y = _noise(50_000, seed=6)
    constant = logmel(y, LogMelConfig(n_frames=None))
    reflect = logmel(y, LogMelConfig(n_frames=None, pad_mode="reflect"))
    # Centre padding is n_fft/2 = 1024 samples = 2 hops: only frames 0-1 and the last 2 differ.
    np.testing.assert_array_equal(constant[2:-2], reflect[2:-2])
    assert not np.allclose(constant[0], reflect[0])
    assert not np.allclose(constant[-1], reflect[-1])


def test_crop_keeps_the_last_samples() -> None:
    y = _noise(500_000, seed=7)
    np.testing.assert_array_equal(logmel(y), logmel(y[-482_000:]))
    assert not np.allclose(logmel(y), logmel(y[:482_000]))


def test_power_to_db_values_and_floor() -> None:
    np.testing.assert_allclose(
        power_to_db(np.array([1.0, 0.1, 1e-12]), top_db=None), [0.0, -10.0, -100.0], atol=1e-5
    )
    np.testing.assert_allclose(power_to_db(np.array([100.0, 1.0, 1e-9])), [20.0, 0.0, -60.0])
    spectrum = logmel(_sine(440.0) + _noise(32_000) * 1e-4, LogMelConfig(n_frames=None))
    assert spectrum.min() == pytest.approx(spectrum.max() - 80.0, abs=1e-4)


def test_silence_is_the_amin_floor() -> None:
    silent = logmel(np.zeros(20_000, dtype=np.float32))
    assert np.all(silent == silent[0, 0])
    assert silent[0, 0] == pytest.approx(-100.0, abs=1e-4)  # 10 * log10(amin = 1e-10)


def test_bad_waveforms_and_configs() -> None:
    with pytest.raises(AudioError):
        logmel(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        logmel(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError):
        LogMelConfig(n_mels=0)
    with pytest.raises(ValueError):
        LogMelConfig(pad_mode="edge")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LogMelConfig(n_frams=10)  # type: ignore[call-arg]


# --- chunks --------------------------------------------------------------------------------


def test_chunk_counts_and_content() -> None:
    y = _noise(30 * SR)
    chunks = chunk_waveform(y)
    assert chunks.shape == (8, 59_049)  # remainder of 7 608 samples dropped
    np.testing.assert_array_equal(chunks[3], y[3 * 59_049 : 4 * 59_049])
    short = chunk_waveform(y[: 2 * SR])
    assert short.shape == (1, 59_049)
    np.testing.assert_array_equal(short[0, : 2 * SR], y[: 2 * SR])
    assert not np.any(short[0, 2 * SR :])
    assert chunk_waveform(y[: 2 * 59_049]).shape == (2, 59_049)


def test_logmel_chunks() -> None:
    y = _noise(30 * SR, seed=8)
    out = logmel_chunks(y)
    assert out.shape == (8, 116, 128)
    chunk_cfg = LogMelConfig(n_frames=None, crop_samples=None)
    np.testing.assert_array_equal(out[5], logmel(y[5 * 59_049 : 6 * 59_049], chunk_cfg))
    # The frame-padding and crop settings of a passed config are ignored for chunks.
    np.testing.assert_array_equal(logmel_chunks(y, LogMelConfig(n_frames=942)), out)
    reversed_ = logmel_chunks(y, LogMelConfig(time_reversed=True))
    np.testing.assert_array_equal(reversed_, out[:, ::-1])
    assert logmel_chunks(y[: 2 * SR]).shape == (1, 116, 128)


# --- registry ------------------------------------------------------------------------------


def test_registry_contents() -> None:
    assert {"logmel", "logmel-paper", "logmel-chunks", "waveform-chunks", "own-features"} <= set(
        REPRESENTATIONS
    )
    own = get_representation("own-features")
    assert own.fn == "merkit.features.own:extract_own_features" and own.dtype == "float32"
    paper = get_representation("logmel-paper")
    assert paper.params["filterbank_sr"] == 22_050 and paper.params["time_reversed"] is True
    assert get_representation("logmel").params["filterbank_sr"] is None
    y = _noise(482_000)
    np.testing.assert_array_equal(
        get_representation("logmel").load_fn()(y, SR, seed=0, **paper.params),
        logmel(y, LogMelConfig.paper_code()),
    )


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown representation 'melgram'.*logmel-paper"):
        get_representation("melgram")


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_representation(Representation(name="logmel", fn="x:y"))


def test_unimportable_function_is_a_config_error() -> None:
    rep = Representation(name="broken", fn="merkit.no_such_module:f")
    with pytest.raises(ConfigError, match="no_such_module"):
        rep.load_fn()


# --- compute -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySource:
    """An in-memory audio source; counts its loads in ``LOADS``."""

    name: str
    seed: int
    n: int = 40_000

    @property
    def key(self) -> str:
        return f"array:{self.name}:{self.seed}:{self.n}"

    @property
    def description(self) -> str:
        return self.name

    def load(self, sr: int) -> np.ndarray:
        LOADS.append(self.name)
        return _noise(self.n, self.seed)


LOADS: list[str] = []
CALLS: list[int] = []


def counting_rep(y: np.ndarray, sr: int, *, seed: int, scale: float = 1.0) -> np.ndarray:
    CALLS.append(seed)
    return np.array([y.mean(), y.std() * scale, len(y)], dtype=np.float32)


def random_rep(y: np.ndarray, sr: int, *, seed: int) -> np.ndarray:
    CALLS.append(seed)
    return np.random.default_rng(seed).standard_normal(4).astype(np.float32)


def _dataset(n_songs: int = 4, n: int = 40_000) -> Dataset:
    songs = [
        Song(
            f"S{i:02d}", ArraySource(f"s{i}", seed=i, n=n + 1000 * i), "Q1Q2Q3Q4"[2 * (i % 4) :][:2]
        )
        for i in range(n_songs)
    ]
    return Dataset("toy", songs)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> str:
    LOADS.clear()
    CALLS.clear()
    monkeypatch.setitem(
        REPRESENTATIONS, "count", Representation(name="count", fn=f"{__name__}:counting_rep")
    )
    monkeypatch.setitem(
        REPRESENTATIONS,
        "random",
        Representation(name="random", fn=f"{__name__}:random_rep", stochastic=True),
    )
    return "count"


def test_compute_aligns_with_songs_and_second_call_hits_cache(
    tmp_path: Path, counting: str
) -> None:
    ds = _dataset()
    cache = FeatureCache(tmp_path)
    stats = ComputeStats()
    first = compute(ds, "count", cache=cache, progress=False, stats=stats)
    assert isinstance(first, np.ndarray) and first.shape == (4, 3)
    for row, song in zip(first, ds.songs, strict=True):
        y = song.source.load(SR)
        np.testing.assert_allclose(row, [y.mean(), y.std(), len(y)], rtol=1e-6)
    assert len(CALLS) == 4 and (stats.computed, stats.cached) == (4, 0)

    LOADS.clear()
    stats = ComputeStats()
    second = compute(ds, "count", cache=cache, progress=False, stats=stats)
    np.testing.assert_array_equal(second, first)
    assert len(CALLS) == 4 and LOADS == []  # nothing decoded or recomputed
    assert (stats.computed, stats.cached) == (0, 4)

    # New parameters are a new cache entry and a new result.
    scaled = compute(ds, "count", params={"scale": 2.0}, cache=cache, progress=False)
    assert len(CALLS) == 8
    np.testing.assert_allclose(scaled[:, 1], 2 * first[:, 1], rtol=1e-6)


def test_compute_passes_a_per_song_content_seed(tmp_path: Path, counting: str) -> None:
    ds = _dataset(3)
    cache = FeatureCache(tmp_path)
    out = compute(ds, "random", cache=cache, progress=False, seed=7)
    expected = [song_seed(s.source.key, 7) for s in ds.songs]
    assert expected == CALLS and len(set(expected)) == 3
    again = compute(ds, "random", cache=NullCache(), progress=False, seed=7)
    np.testing.assert_array_equal(out, again)  # reproducible without any cache
    other = compute(ds, "random", cache=cache, progress=False, seed=8)
    assert not np.allclose(out, other)  # the global seed is part of a stochastic key
    assert song_seed("file:abc", 1) == song_seed("file:abc", 1) != song_seed("file:abc", 2)


def test_compute_logmel_float16_rounding_is_identical_cold_and_warm(tmp_path: Path) -> None:
    ds = _dataset(3)
    cache = FeatureCache(tmp_path)
    cold = compute(ds, "logmel", cache=cache, progress=False)
    warm = compute(ds, "logmel", cache=cache, progress=False)
    uncached = compute(ds, "logmel", cache=NullCache(), progress=False)
    assert cold.shape == (3, 942, 128) and cold.dtype == np.float32
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_array_equal(cold, uncached)
    direct = logmel(ds.songs[1].source.load(SR))
    np.testing.assert_allclose(cold[1], direct, atol=0.07)  # float16 step at |x| < 128 is 1/16


def test_compute_returns_a_list_for_ragged_shapes(tmp_path: Path) -> None:
    songs = [
        Song("A", ArraySource("a", 0, n=3 * 59_049 + 5), "Q1"),
        Song("B", ArraySource("b", 1, n=59_049), "Q2"),
    ]
    out = compute(Dataset("ragged", songs), "waveform-chunks", cache=NullCache(), progress=False)
    assert isinstance(out, list) and [a.shape for a in out] == [(3, 59_049), (1, 59_049)]
    chunks = compute(
        Dataset("ragged", songs), "logmel-chunks", cache=FeatureCache(tmp_path), progress=False
    )
    assert [a.shape for a in chunks] == [(3, 116, 128), (1, 116, 128)]


def test_compute_errors(tmp_path: Path, counting: str) -> None:
    ds = _dataset(2)
    with pytest.raises(ConfigError, match="invalid log-mel parameters: n_melz"):
        compute(ds, "logmel", params={"n_melz": 64}, cache=NullCache(), progress=False)
    with pytest.raises(ConfigError, match="unknown representation"):
        compute(ds, "nope", cache=NullCache(), progress=False)
    with pytest.raises(DataError, match="S01"):
        no_audio = Dataset("x", [Song("S01", None, "Q1")])
        compute(no_audio, "count", cache=NullCache(), progress=False)
    bad = tmp_path / "broken.mp3"
    bad.write_text("not audio at all\n" * 10)
    with pytest.raises(AudioError, match=re.escape("broken.mp3")):
        compute(
            Dataset("bad", [Song("B", FileSource(bad), "Q1")]),
            "count",
            cache=NullCache(),
            progress=False,
        )


def _write_files(tmp_path: Path, n: int) -> Dataset:
    songs = []
    for i in range(n):
        path = tmp_path / f"song{i}.flac"
        sf.write(path, _noise(20_000 + 3_000 * i, seed=i), SR)
        songs.append(Song(f"F{i}", FileSource(path), "Q1"))
    return Dataset("files", songs)


def test_compute_in_parallel_matches_serial(tmp_path: Path) -> None:
    ds = _write_files(tmp_path, 4)
    serial = compute(ds, "logmel", cache=NullCache(), progress=False)
    stats = ComputeStats()
    cache = FeatureCache(tmp_path / "cache")
    parallel = compute(ds, "logmel", cache=cache, n_jobs=2, progress=True, stats=stats)
    np.testing.assert_array_equal(parallel, serial)
    assert stats.computed == 4
    stats = ComputeStats()
    compute(ds, "logmel", cache=cache, n_jobs=2, progress=False, stats=stats)
    assert stats.cached == 4


def test_cache_key_ignores_location_but_not_content(tmp_path: Path) -> None:
    ds = _write_files(tmp_path, 1)
    cache = FeatureCache(tmp_path / "cache")
    compute(ds, "logmel", cache=cache, progress=False)
    moved = tmp_path / "moved.flac"
    moved.write_bytes(ds.songs[0].source.path.read_bytes())
    stats = ComputeStats()
    compute(
        Dataset("m", [Song("F0", FileSource(moved), "Q1")]),
        "logmel",
        cache=cache,
        progress=False,
        stats=stats,
    )
    assert stats.cached == 1


@pytest.mark.parametrize("name", ["logmel", "logmel-paper"])
def test_registered_logmels_have_the_paper_shape(name: str) -> None:
    rep = get_representation(name)
    out = rep.load_fn()(_noise(480_000), rep.sr, seed=0, **rep.params)
    assert out.shape == (942, 128)


def test_filterbank_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import merkit.audio.dsp

    built: list[int] = []
    real_mel = merkit.audio.dsp.mel_filterbank

    def counting_mel(**kwargs: object) -> np.ndarray:
        built.append(1)
        return real_mel(**kwargs)

    monkeypatch.setattr(merkit.audio.dsp, "mel_filterbank", counting_mel)
    merkit.representations.logmel.mel_filterbank.cache_clear()
    merkit.representations.logmel._sparse_filterbank.cache_clear()
    try:
        for _ in range(3):
            logmel(_noise(10_000))
        logmel(_noise(10_000), LogMelConfig(filterbank_sr=22_050))
    finally:
        # leave no bank built by the wrapper
        merkit.representations.logmel.mel_filterbank.cache_clear()
        merkit.representations.logmel._sparse_filterbank.cache_clear()
    assert len(built) == 2  # one per distinct (sr, n_fft, n_mels)

"""The fast extraction path equals the straightforward one, and decodes each song once.

:func:`_reference_mel_power` and :func:`_reference_load` are the previous implementations
(frame-major STFT with a dense @ sparse product; ``mean(axis=1)`` mixdown and
:func:`merkit.audio.decode.peak_normalize`); the fast ones must equal them bit for bit, so cached
values
made before and after the change agree (the representation's version is unchanged).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.sparse
import soundfile as sf
import soxr

from merkit.audio.decode import decode_frames, decode_mono, load_audio, mixdown, peak_normalize
from merkit.core.errors import AudioError, ConfigError
from merkit.datasets.base import Dataset, FileSource, Song
from merkit.representations.cache import FeatureCache, NullCache
from merkit.representations.extract import (
    ComputeStats,
    SongJobs,
    _song_job,
    _Stacker,
    compute,
    compute_many,
    fill_cache,
    pipelined,
    threaded,
)
from merkit.representations.logmel import LogMelConfig, mel_filterbank, mel_power, power_to_db


def _reference_mel_power(y: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    padded = np.pad(np.asarray(y, np.float32), cfg.n_fft // 2, mode=cfg.pad_mode)
    n_frames = 1 + (len(padded) - cfg.n_fft) // cfg.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop_length]
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)).astype(np.float32)
    spectrum = scipy.fft.rfft(frames[:n_frames] * window, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    basis = mel_filterbank(cfg.filterbank_sr or cfg.sr, cfg.n_fft, cfg.n_mels)
    return np.ascontiguousarray(power @ scipy.sparse.csr_matrix(basis.T), dtype=np.float32)


def _reference_load(path: Path, sr: int = 16_000) -> np.ndarray:
    data, native = sf.read(str(path), dtype="float32", always_2d=True)
    y = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if native != sr:
        y = np.asarray(soxr.resample(y, native, sr, quality="HQ"), dtype=np.float32)
    return np.ascontiguousarray(peak_normalize(y))


def _music(n: int, sr: int = 16_000, seed: int = 0) -> np.ndarray:
    """Tones, noise, a silent stretch and a very quiet tail (tiny spectral values)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3_000 * t)
    y += 0.05 * rng.standard_normal(n)
    y[n // 3 : n // 2] = 0.0
    y[-n // 5 :] *= 1e-6
    return y.astype(np.float32)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "cfg",
    [LogMelConfig(), LogMelConfig.paper_code(), LogMelConfig(n_fft=1024, hop_length=300)],
    ids=["default", "paper-code", "other-sizes"],
)
@pytest.mark.parametrize("n", [480_960, 131_072, 65_536, 48_000, 700])  # 940, 257, 129 frames
def test_mel_power_is_bit_identical_to_the_frame_major_reference(cfg: LogMelConfig, n: int) -> None:
    y = _music(n, seed=n)
    fast, reference = mel_power(y, cfg), _reference_mel_power(y, cfg)
    assert fast.flags.c_contiguous and fast.shape == (1 + n // cfg.hop_length, cfg.n_mels)
    assert _same_bits(fast, reference)


def test_mel_power_matches_librosa_to_float32_rounding() -> None:
    y = _music(64_000, seed=1)
    ours = mel_power(y, LogMelConfig())
    theirs = librosa.feature.melspectrogram(y=y, sr=16_000, n_fft=2048, hop_length=512).T
    # float32 FFTs in both; relative to each frame's loudest band.
    scale = theirs.max(axis=1, keepdims=True)
    loud = scale[:, 0] > 1e-6
    assert loud.sum() > 50
    assert (np.abs(ours - theirs)[loud] / scale[loud]).max() < 1e-5
    db_ours = librosa.power_to_db(ours, ref=1.0, amin=1e-10, top_db=80.0)
    db_theirs = librosa.power_to_db(theirs, ref=1.0, amin=1e-10, top_db=80.0)
    assert np.abs(db_ours - db_theirs).max() < 0.01  # dB


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_mixdown_is_bit_identical_to_numpy_mean(channels: int) -> None:
    data = np.random.default_rng(channels).uniform(-1, 1, (10_001, channels)).astype(np.float32)
    data[:5] = [[1e-39] * channels] * 5  # subnormal samples average the same way too
    assert _same_bits(mixdown(data), data.mean(axis=1, dtype=np.float32))
    with pytest.raises(ValueError, match="frames, channels"):
        mixdown(data[:, 0])


@pytest.mark.parametrize(("rate", "channels"), [(44_100, 2), (22_050, 1), (16_000, 2)])
def test_load_audio_is_bit_identical_to_the_previous_path(
    tmp_path: Path, rate: int, channels: int
) -> None:
    mono = _music(rate * 3, sr=rate, seed=rate)
    data = np.stack([mono, np.roll(mono, 7) * 0.8], axis=1)[:, :channels]
    path = tmp_path / f"clip-{rate}-{channels}.flac"
    sf.write(str(path), data, rate, subtype="PCM_24")
    fast, reference = load_audio(path), _reference_load(path)
    assert _same_bits(fast, reference)
    assert np.isclose(np.abs(fast).max(), 10 ** (-0.1 / 20), rtol=1e-6)
    assert fast.flags.c_contiguous and fast.flags.writeable


def test_power_to_db_is_bit_identical_to_the_previous_formula() -> None:
    power = np.abs(_music(50_000, seed=3)).reshape(-1, 100) ** 3  # down to 0 and tiny values
    for top_db in (80.0, 20.0, None):
        db = 10.0 * np.log10(np.maximum(power, np.float32(1e-10)))
        if top_db is not None:
            db = np.maximum(db, db.max() - np.float32(top_db))
        ours = power_to_db(power, top_db=top_db)
        assert _same_bits(ours, db.astype(np.float32)) and ours is not power
    assert power.min() == 0.0 and np.all(power >= 0)  # the input is left as it was


@pytest.mark.parametrize("how", ["load", "file-source", "pipelined", "threaded"])
def test_logmel_of_a_file_is_bit_identical_to_the_previous_pipeline(
    tmp_path: Path, how: str
) -> None:
    rate = 44_100
    mono = _music(rate * 31, sr=rate, seed=5)  # longer than the 482 000-sample crop
    path = tmp_path / "long.wav"
    sf.write(str(path), np.stack([mono, -0.5 * mono], axis=1), rate, subtype="FLOAT")
    job = _song_job("logmel", None, FeatureCache(tmp_path / "cache"), 0)
    if how == "load":  # a source without decode methods: load_audio
        stored = job(_FileLike(path))[0]
    elif how == "file-source":  # decode_frames, then the mixdown in finish
        stored = job(FileSource(path))[0]
    else:  # the same in two threads, next to other songs
        other = tmp_path / "other.wav"
        sf.write(str(other), mono[:40_000], rate)
        sources = [FileSource(other), FileSource(path), FileSource(other)]
        run = pipelined if how == "pipelined" else threaded
        stored = list(run(SongJobs((job,)), sources))[1][0][0]
    y = _reference_load(path)[-482_000:]
    power = _reference_mel_power(y, LogMelConfig())
    db = 10.0 * np.log10(np.maximum(power, np.float32(1e-10)))
    db = np.maximum(db, db.max() - np.float32(80.0))[-942:].astype(np.float16)
    assert _same_bits(stored, db)


# --- one pass over each song ------------------------------------------------------------------


@dataclass(frozen=True)
class _FileLike:
    """A file source (see merkit.datasets.base.FileSource) that counts hashes and loads."""

    path: Path

    @property
    def key(self) -> str:
        _COUNTS.append(("key", self.path.name, threading.current_thread().name))
        return f"test:{self.path.name}:{self.path.stat().st_size}"

    @property
    def description(self) -> str:
        return str(self.path)

    def load(self, sr: int) -> np.ndarray:
        _COUNTS.append(("load", self.path.name, threading.current_thread().name))
        return load_audio(self.path, sr=sr)


@dataclass(frozen=True)
class _Decodable(_FileLike):
    """Also offers ``decode()`` (as FileSource does): one decode serves every rate."""

    def decode(self) -> tuple[np.ndarray, int]:
        _COUNTS.append(("decode", self.path.name, threading.current_thread().name))
        return decode_mono(self.path)


@dataclass(frozen=True)
class _Framed(_Decodable):
    """Also offers ``decode_frames()`` (as FileSource does): the mixdown waits for ``finish``."""

    def decode_frames(self) -> tuple[np.ndarray, int]:
        _COUNTS.append(("frames", self.path.name, threading.current_thread().name))
        return decode_frames(self.path)


_COUNTS: list[tuple[str, str, str]] = []


def _files(tmp_path: Path, n: int, source: type[_FileLike] = _Decodable) -> Dataset:
    songs = []
    for i in range(n):
        path = tmp_path / f"song{i}.wav"
        sf.write(str(path), _music(16_000 * 2 + 999 * i, sr=22_050, seed=i), 22_050)
        songs.append(Song(f"S{i}", source(path), "Q1"))
    return Dataset("files", songs)


def test_compute_many_hashes_and_decodes_each_song_once(tmp_path: Path) -> None:
    dataset = _files(tmp_path, 3)
    names = ["logmel", "waveform-chunks", "logmel-chunks"]
    cache = FeatureCache(tmp_path / "cache")
    _COUNTS.clear()
    stats = {name: ComputeStats() for name in names}
    together = compute_many(dataset, names, cache=cache, progress=False, stats=stats)
    assert sorted(c[:2] for c in _COUNTS) == sorted(
        (kind, f"song{i}.wav") for i in range(3) for kind in ("decode", "key")
    )
    assert all((s.computed, s.cached) == (3, 0) for s in stats.values())
    # Decoding runs in other threads (two songs at a time: every representation is thread-safe).
    assert {c[2] for c in _COUNTS if c[0] == "decode"} != {threading.current_thread().name}
    for name in names:  # the same values as one representation at a time, without a cache
        alone = compute(dataset, name, cache=NullCache(), progress=False)
        if isinstance(alone, list):
            assert all(_same_bits(a, b) for a, b in zip(alone, together[name], strict=True))
        else:
            assert _same_bits(alone, together[name])
    _COUNTS.clear()
    warm = {name: ComputeStats() for name in names}
    again = compute_many(dataset, names, cache=cache, progress=False, stats=warm)
    assert [c[0] for c in _COUNTS] == ["key"] * 3  # hashed once, nothing decoded
    assert all((s.computed, s.cached) == (0, 3) for s in warm.values())
    assert _same_bits(again["logmel"], together["logmel"])


@pytest.mark.parametrize("source", [_Decodable, _FileLike])
def test_one_decode_serves_every_missing_rate(tmp_path: Path, source: type[_FileLike]) -> None:
    dataset = _files(tmp_path, 2, source)
    cache = FeatureCache(tmp_path / "cache")
    compute(dataset, "logmel", cache=cache, progress=False)
    names = ["logmel", "waveform-chunks", "own-features"]
    params = {"waveform-chunks": {"sr": 8_000, "chunk": 500}, "own-features": {"sr": 11_025}}
    _COUNTS.clear()
    together = compute_many(dataset, names, params=params, cache=cache, progress=False)
    decodes = sorted(c[:2] for c in _COUNTS if c[0] != "key")
    if source is _Decodable:  # one decode per song for both missing rates
        assert decodes == [("decode", "song0.wav"), ("decode", "song1.wav")]
    else:  # a plain source is loaded once per missing rate
        assert decodes == [("load", f"song{i}.wav") for i in (0, 0, 1, 1)]
    chunks = compute(dataset, "waveform-chunks", params=params["waveform-chunks"],
                     cache=NullCache(), progress=False)  # fmt: skip
    assert all(_same_bits(a, b) for a, b in zip(chunks, together["waveform-chunks"], strict=True))
    assert chunks[0].shape == (len(load_audio(dataset.songs[0].source.path, sr=8_000)) // 500, 500)


def test_pipelined_keeps_order_and_raises_at_the_bad_song(tmp_path: Path) -> None:
    dataset = _files(tmp_path, 3)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + b"\0" * 100)
    sources = [dataset.songs[0].source, _FileLike(bad), dataset.songs[1].source]
    jobs = SongJobs((_song_job("waveform-chunks", {"chunk": 1000}, NullCache(), 0),))
    results = pipelined(jobs, sources)
    first = next(results)[0][0]
    assert first.shape == (len(load_audio(dataset.songs[0].source.path)) // 1000, 1000)
    with pytest.raises(AudioError, match="bad.wav"):
        next(results)
    assert list(pipelined(jobs, [])) == []


def test_decoding_and_mixdown_run_in_two_threads_with_the_same_values(tmp_path: Path) -> None:
    framed, plain = _files(tmp_path, 3, _Framed), _files(tmp_path, 3, _FileLike)
    _COUNTS.clear()
    values = compute(framed, "logmel", cache=NullCache(), progress=False)
    # decode() unused; nothing cached and logmel is not stochastic: no song hashed
    assert sorted(c[0] for c in _COUNTS) == ["frames"] * 3
    assert {c[2] for c in _COUNTS if c[0] == "frames"} != {threading.current_thread().name}
    assert _same_bits(values, compute(plain, "logmel", cache=NullCache(), progress=False))


def test_a_file_with_nan_samples_is_an_audio_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    data = np.stack([_music(20_000), _music(20_000, seed=1)], axis=1)
    data[5_000, 1] = np.nan
    sf.write(str(path), data, 16_000, subtype="FLOAT")
    dataset = Dataset("files", [Song("S0", FileSource(path), "Q1")])
    with pytest.raises(AudioError, match=r"nan\.wav' contains NaN or infinite samples"):
        compute(dataset, "logmel", cache=NullCache(), progress=False)
    with pytest.raises(AudioError, match=r"nan\.wav' contains NaN"):
        decode_mono(path)
    assert decode_frames(path)[0].shape == (20_000, 2)  # decoding alone checks no values


class _CountingJobs:
    """Stands in for :class:`SongJobs`: records which songs were prepared, and when."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.prepared: list[int] = []
        self.lock = threading.Lock()
        self.fail_at = fail_at

    def prepare(self, source: int) -> int:
        with self.lock:
            self.prepared.append(source)
        if source == self.fail_at:
            raise AudioError(f"cannot decode song {source}")
        return source * 10

    def finish(self, prepared: int) -> tuple[int, ...]:
        return (prepared + 1,)


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.parametrize("ahead", [1, 2, 3, 9])
def test_pipelined_decodes_at_most_ahead_songs_in_advance(ahead: int) -> None:
    jobs = _CountingJobs()
    songs = list(range(7))
    results = pipelined(jobs, songs, ahead=ahead)  # type: ignore[arg-type]
    for i in songs:
        assert next(results) == (10 * i + 1,)
        # While the consumer holds song i the thread prepares i + 1 .. i + ahead, never more.
        expected = min(len(songs), i + 1 + ahead)
        assert _wait_for(lambda e=expected: len(jobs.prepared) >= e)
        time.sleep(0.01)
        assert jobs.prepared == songs[:expected]
    assert list(results) == []


def test_pipelined_raises_in_order_and_rejects_a_bad_ahead() -> None:
    jobs = _CountingJobs(fail_at=2)
    results = pipelined(jobs, list(range(5)), ahead=3)  # type: ignore[arg-type]
    assert [next(results), next(results)] == [(1,), (11,)]
    with pytest.raises(AudioError, match="song 2"):
        next(results)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="ahead"):
            list(pipelined(jobs, [1], ahead=bad))  # type: ignore[arg-type]


class _CountingSongs:
    """Stands in for :class:`SongJobs` in :func:`threaded`: records songs started and running."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.started: list[int] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.fail_at = fail_at
        self.gate = threading.Event()

    def __call__(self, source: int) -> tuple[int, ...]:
        with self.lock:
            self.started.append(source)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.gate.wait(5.0)
            if source == self.fail_at:
                raise AudioError(f"cannot decode song {source}")
            return (source * 10 + 1,)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize(("threads", "ahead"), [(1, 0), (2, 0), (2, 2), (3, 1)])
def test_threaded_keeps_order_and_bounds_the_songs_in_flight(threads: int, ahead: int) -> None:
    jobs = _CountingSongs()
    songs = list(range(9))
    results = threaded(jobs, songs, threads=threads, ahead=ahead)  # type: ignore[arg-type]
    got: list[tuple[int, ...]] = []

    def consume() -> None:
        got.extend(results)

    consumer = threading.Thread(target=consume)
    consumer.start()
    # Held at the gate: `threads` songs run at once, `threads + ahead` are submitted, no more.
    assert _wait_for(lambda: jobs.running == threads)
    time.sleep(0.02)
    assert jobs.started and sorted(jobs.started) == list(range(threads))
    jobs.gate.set()
    consumer.join(5.0)
    assert got == [(10 * i + 1,) for i in songs]  # input order
    assert jobs.most_running == threads
    assert list(threaded(jobs, [])) == []  # type: ignore[arg-type]


def test_threaded_raises_in_order_and_rejects_bad_settings() -> None:
    jobs = _CountingSongs(fail_at=2)
    jobs.gate.set()
    results = threaded(jobs, list(range(6)))  # type: ignore[arg-type]
    assert [next(results), next(results)] == [(1,), (11,)]
    with pytest.raises(AudioError, match="song 2"):
        next(results)
    for bad in ({"threads": 0}, {"threads": 1.5}, {"ahead": -1}, {"threads": True}):
        with pytest.raises(ConfigError, match="threads|ahead"):
            list(threaded(jobs, [1], **bad))  # type: ignore[arg-type]


_REP_THREADS: list[str] = []


def thread_recording_rep(y: np.ndarray, sr: int, *, seed: int) -> np.ndarray:
    """Records the thread it runs in; returns the waveform's sum and length."""
    _REP_THREADS.append(threading.current_thread().name)
    return np.array([y.sum(dtype=np.float64), len(y)])


@pytest.mark.parametrize("thread_safe", [True, False])
def test_one_process_runs_whole_songs_in_threads_only_for_thread_safe_representations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_safe: bool
) -> None:
    from merkit.representations.registry import REPRESENTATIONS, Representation

    rep = Representation("recorder", thread_recording_rep, thread_safe=thread_safe, shape=None)
    monkeypatch.setitem(REPRESENTATIONS, "recorder", rep)
    dataset = _files(tmp_path, 5, _Framed)
    _REP_THREADS.clear()
    _COUNTS.clear()
    cache = FeatureCache(tmp_path / "cache")
    values = compute(dataset, "recorder", cache=cache, progress=False)
    here = threading.current_thread().name
    decoders = {c[2] for c in _COUNTS if c[0] == "frames"}
    if thread_safe:  # whole songs in the worker threads: decode and compute alike
        assert set(_REP_THREADS) <= {f"merkit-song_{i}" for i in range(2)}
        assert decoders <= {f"merkit-song_{i}" for i in range(2)}
    else:  # decoded ahead in one thread, computed in this one
        assert set(_REP_THREADS) == {here} and decoders == {"merkit-decode_0"}
    for song, value in zip(dataset.songs, values, strict=True):  # in song order
        y = load_audio(song.source.path)
        assert value[1] == len(y) and np.isclose(value[0], y.sum(dtype=np.float64), rtol=1e-6)
    assert (cache.hits, cache.misses) == (0, 5)
    compute(dataset, "recorder", cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (5, 5)  # counted exactly, whatever the thread


def test_the_stacker_fills_one_block_or_falls_back_to_a_list() -> None:
    rows = [np.full((2, 3), i, dtype=np.float16) for i in range(3)]
    fixed = _Stacker(3, (2, 3))
    for row in rows:
        fixed.add(row)
    block = fixed.result()
    assert isinstance(block, np.ndarray) and block.dtype == np.float32 and block.shape == (3, 2, 3)
    assert [float(block[i, 0, 0]) for i in range(3)] == [0.0, 1.0, 2.0]
    odd = _Stacker(3, (2, 3))  # a row of another shape than expected turns it into a list
    for row in [rows[0], np.zeros((4, 3), np.float16), rows[2]]:
        odd.add(row)
    listed = odd.result()
    assert isinstance(listed, list) and [a.shape for a in listed] == [(2, 3), (4, 3), (2, 3)]
    assert all(a.dtype == np.float32 for a in listed) and float(listed[2][0, 0]) == 2.0
    free = _Stacker(2, (None, 3))  # a free axis: kept, stacked at the end when shapes agree
    free.add(rows[1])
    free.add(rows[2])
    out = free.result()
    assert isinstance(out, np.ndarray) and out.shape == (2, 2, 3) and out.dtype == np.float32


def test_fill_cache_decodes_once_and_later_computes_only_read(tmp_path: Path) -> None:
    dataset = _files(tmp_path, 2)
    cache = FeatureCache(tmp_path / "cache")
    _COUNTS.clear()
    stats = fill_cache(dataset, ["logmel", "logmel-chunks", "logmel"], cache=cache, progress=False)
    assert {name: (s.computed, s.cached) for name, s in stats.items()} == {
        "logmel": (2, 0),
        "logmel-chunks": (2, 0),
    }
    assert sorted(c[0] for c in _COUNTS) == ["decode", "decode", "key", "key"]
    _COUNTS.clear()
    for name in ("logmel", "logmel-chunks"):
        hits = ComputeStats()
        compute(dataset, name, cache=cache, progress=False, stats=hits)
        assert (hits.computed, hits.cached) == (0, 2)
    assert [c[0] for c in _COUNTS] == ["key"] * 4


def scribble_rep(y: np.ndarray, sr: int, *, seed: int) -> np.ndarray:
    """Overwrites its input (allowed): other representations of the song must not see it."""
    total = np.array([y.sum(), len(y)], dtype=np.float64)
    y[:] = 123.0
    return total


def test_a_function_that_changes_its_input_cannot_affect_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merkit.representations.registry import REPRESENTATIONS, Representation

    monkeypatch.setitem(REPRESENTATIONS, "scribble", Representation("scribble", scribble_rep))
    dataset = _files(tmp_path, 2)
    for names in (["scribble", "waveform-chunks"], ["waveform-chunks", "scribble"]):
        both = compute_many(dataset, names, cache=NullCache(), progress=False)
        alone = compute(dataset, "waveform-chunks", cache=NullCache(), progress=False)
        assert _same_bits(both["waveform-chunks"], alone)
        y = load_audio(dataset.songs[0].source.path)
        assert both["scribble"][0][0] == np.float32(y.sum()) and both["scribble"][0][1] == len(y)


@pytest.mark.parametrize("sr", [0, -16_000, 16_000.5, "fast", True])
def test_a_bad_sample_rate_is_a_config_error(tmp_path: Path, sr: object) -> None:
    with pytest.raises(ConfigError, match="sr must be a positive integer"):
        compute(_files(tmp_path, 1), "logmel", params={"sr": sr}, progress=False)


class _CountedKey:
    """An audio source that counts how often its content key is read."""

    def __init__(self, y: np.ndarray, sr: int) -> None:
        self.y, self.sr, self.reads = y, sr, 0
        self.description = "counted"

    @property
    def key(self) -> str:
        self.reads += 1
        return "counted-song"

    def decode(self) -> tuple[np.ndarray, int]:
        return self.y, self.sr


def _seeded(y: np.ndarray, sr: int, *, seed: int = 0) -> np.ndarray:
    return np.array([float(seed)], dtype=np.float32)


def test_song_jobs_hash_a_song_only_where_a_cache_or_a_seed_needs_it(tmp_path: Path) -> None:
    from merkit.representations.extract import UNKEYED, SongJob, SongJobs, song_seed
    from merkit.representations.registry import Representation, get_representation

    y = np.random.default_rng(0).standard_normal(16_000).astype(np.float32)
    logmel = get_representation("logmel")
    plain = SongJob(logmel, 16_000, dict(logmel.params), NullCache(), 0)
    source = _CountedKey(y, 16_000)
    value, _ = SongJobs((plain,))(source)[0]
    assert source.reads == 0  # no cache, no seed: the song is not hashed
    cached = SongJob(logmel, 16_000, dict(logmel.params), FeatureCache(tmp_path), 0)
    np.testing.assert_array_equal(SongJobs((cached,))(source)[0][0], value)
    assert source.reads == 1  # once per song, for the cache's key
    stochastic = Representation("seeded", _seeded, stochastic=True)
    seeded = SongJob(stochastic, 16_000, {}, NullCache(), 7)
    out, _ = SongJobs((plain, seeded))(source)[1]
    assert source.reads == 2 and out[0] == song_seed("counted-song", 7)
    assert SongJobs((plain,)).keyed() is False and UNKEYED != "counted-song"

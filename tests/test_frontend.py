"""merkit.audio.frontend: the canonical front end makes a 16 kHz file and a resampled copy agree."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from merkit.audio.decode import level_normalize
from merkit.audio.frontend import band_limit, canonical, trim_silence
from merkit.core.errors import ConfigError
from merkit.features.own import extract_own_features
from merkit.representations.registry import canonical_representation, get_representation

SR = 16_000


def _tones(freqs: tuple[float, ...], seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    y = sum(0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    return np.asarray(y, dtype=np.float32)


def _amplitude(y: np.ndarray, freq: int) -> float:
    window = y[SR // 2 : SR // 2 + SR]  # 1 s: 1 Hz bins
    return float(np.abs(np.fft.rfft(window))[freq] * 2 / len(window))


def test_band_limit_keeps_the_low_band_and_removes_the_top() -> None:
    y = _tones((440.0, 5_000.0, 7_500.0))
    out = band_limit(y, SR, 14_000)
    assert out.shape == y.shape and out.dtype == np.float32
    assert _amplitude(out, 440) == pytest.approx(0.2, rel=1e-3)
    assert _amplitude(out, 5_000) == pytest.approx(0.2, rel=1e-2)
    assert _amplitude(out, 7_500) < 0.2 * 1e-3


def test_a_16k_file_and_a_resampled_copy_meet_in_the_canonical_form() -> None:
    # The same music as a native 16 kHz file and as a 44.1 kHz file resampled to 16 kHz: the
    # 7.9 kHz partial survives only in the first, until the canonical band removes it in both.
    native = _tones((300.0, 2_000.0, 6_000.0, 7_900.0), seconds=3.0)
    high = soxr.resample(native, SR, 44_100, quality="VHQ")
    resampled = soxr.resample(high, 44_100, SR, quality="HQ").astype(np.float32)[: len(native)]
    assert _amplitude(native, 7_900) > 10 * _amplitude(resampled, 7_900)
    a = canonical(native, SR, trim_db=None)
    b = canonical(resampled, SR, trim_db=None)
    inner = slice(SR // 4, -SR // 4)  # away from the resamplers' edge transients
    assert np.max(np.abs(a[inner] - b[inner])) < 2e-3
    assert np.max(np.abs(native[inner] - resampled[inner])) > 0.1


def test_trim_silence_cuts_at_the_first_and_last_loud_sample() -> None:
    y = np.zeros(100, dtype=np.float32)
    y[10] = 0.5e-3  # -66 dB below the peak: trimmed at 60 dB
    y[20] = 2e-3  # -54 dB: kept, the first sample
    y[50] = 1.0
    y[80] = -0.01  # the last sample
    out = trim_silence(y, 60.0)
    np.testing.assert_array_equal(out, y[20:81])
    assert trim_silence(np.zeros(8, np.float32), 60.0).shape == (8,)
    with pytest.raises(ConfigError, match="trim_db"):
        trim_silence(y, 0.0)


def test_canonical_drops_encoder_delay_and_normalises() -> None:
    y = _tones((440.0,))
    delayed = np.concatenate([np.zeros(800, np.float32), 0.5 * y])  # 50 ms of silence, -6 dB
    a, b = canonical(y, SR), canonical(delayed, SR)
    assert abs(len(a) - len(b)) <= 2
    assert np.max(np.abs(a)) == pytest.approx(10 ** (-0.1 / 20), rel=1e-5)
    # Another level rule on request: the 99.9th percentile of |y| at -3 dBFS.
    quiet = canonical(y, SR, level_percentile=99.9, level_dbfs=-3.0)
    assert np.percentile(np.abs(quiet), 99.9) == pytest.approx(10 ** (-3 / 20), rel=1e-5)
    n = min(len(a), len(b)) - 200
    assert np.max(np.abs(a[200:n] - b[200:n])) < 1e-2


def test_level_normalize_sets_the_percentile_and_ignores_a_few_spikes() -> None:
    # 1000 samples of magnitude 0.25 and one spike: the 99.9th percentile of 1001 magnitudes is
    # the 1000th smallest (position 0.999 * 1000), 0.25, so the spike does not count.
    y = np.full(1001, 0.25, dtype=np.float32)
    y[::2] *= -1
    y[500] = 0.9
    out = level_normalize(y, 99.9, -6.0)
    target = 10 ** (-6 / 20)
    assert out.dtype == np.float32
    assert np.abs(out[1]) == pytest.approx(target, rel=1e-6)
    assert out[500] == pytest.approx(0.9 / 0.25 * target, rel=1e-6)  # above full scale, kept
    # The same music with a louder spike (a codec's ringing) gets the same gain ...
    spiky = y.copy()
    spiky[500] = 1.2
    np.testing.assert_array_equal(level_normalize(spiky, 99.9, -6.0)[:500], out[:500])
    # ... where peak normalisation (percentile 100) would change it by 2.5 dB.
    peak_gain = level_normalize(y, 100, -6.0)[1] / level_normalize(spiky, 100, -6.0)[1]
    assert 20 * np.log10(peak_gain) == pytest.approx(20 * np.log10(1.2 / 0.9), rel=1e-5)
    assert level_normalize(np.zeros(4, np.float32), 99.9, -3.0).tolist() == [0.0] * 4
    with pytest.raises(ConfigError, match="percentile"):
        level_normalize(y, 0.0, -3.0)


def test_canonical_rejects_a_band_above_the_rate() -> None:
    with pytest.raises(ConfigError, match="band_sr"):
        canonical(_tones((440.0,)), SR, band_sr=16_000)


def test_canon_representation_is_the_inner_one_on_canonical_audio() -> None:
    import merkit.transfer.representations  # noqa: F401  (registers crnn-tags3-canon)

    rep = get_representation("own-features-canon")
    assert rep.params["inner"] == "own-features" and rep.shape is not None
    y = _tones((220.0, 880.0, 3_000.0), seconds=4.0)
    value = canonical_representation(y, SR, **rep.params)
    np.testing.assert_array_equal(value, extract_own_features(canonical(y, SR), SR))
    # Its cache key differs from the plain representation's: name, params and version.
    assert rep.version != get_representation("own-features").version
    # The tagger entry carries the plain entry's parameters (checkpoints, output, precision) and
    # version, so a new checkpoint or a version bump also invalidates its cached values.
    tags, plain = get_representation("crnn-tags3-canon"), get_representation("crnn-tags3")
    assert tags.params["checkpoints"] == plain.params["checkpoints"]
    assert {key: tags.params[key] for key in plain.params} == plain.params
    assert tags.version == f"1.{plain.version}" and tags.shape is plain.shape


def _scaled_in_place(y: np.ndarray, sr: int, *, seed: int = 0) -> np.ndarray:
    y *= 2.0  # a function that changes its input in place
    return y[:8].copy()


def _mean_front(y: np.ndarray, sr: int) -> np.ndarray:
    return y - y.mean()


def _in_place_split(params: dict) -> object:
    from merkit.representations.registry import FrontEndSplit

    return FrontEndSplit(key=("mean",), front=_mean_front, rest=_scaled_in_place)


def _in_place_rep(name: str) -> object:
    from merkit.representations.registry import Representation

    def fn(y: np.ndarray, sr: int, *, seed: int = 0) -> np.ndarray:
        return _scaled_in_place(_mean_front(y, sr), sr, seed=seed)

    return Representation(name=name, fn=fn, split=_in_place_split)


def test_song_jobs_run_one_front_end_for_two_inputs_with_its_settings(monkeypatch) -> None:
    """The default model's two ``*-canon`` inputs share one canonical front end per song (and a
    third input with other settings gets its own), bit for bit what each computes alone."""
    from dataclasses import replace

    from merkit.audio import frontend
    from merkit.audio.windows import Window
    from merkit.representations.cache import NullCache
    from merkit.representations.extract import SongJob, SongJobs

    own = get_representation("own-features-canon")
    plain = get_representation("logmel")
    logmel_canon = replace(
        own,
        name="logmel-canon-test",
        params={**own.params, "inner": "logmel", **plain.params},
        dtype=plain.dtype,
        shape=None,
    )
    other = replace(own, name="own-other", params={**own.params, "trim_db": 40.0})
    jobs = tuple(SongJob(rep, SR, dict(rep.params), NullCache(), 0)
                 for rep in (own, logmel_canon, other))  # fmt: skip
    y = 0.3 * np.random.default_rng(3).standard_normal(3 * 22_050).astype(np.float32)
    source = Window(0.0, 3.0, y, 22_050)  # resampled to 16 kHz, as a CD file is
    calls = []
    original = frontend.canonical
    monkeypatch.setattr(frontend, "canonical", lambda *a, **k: calls.append(1) or original(*a, **k))
    shared = SongJobs(jobs)(source)
    assert len(calls) == 2  # one for the two inputs with the same settings, one for the third
    alone = [SongJobs((job,))(source)[0] for job in jobs]
    assert len(calls) == 5
    for (value, cached), (expected, _) in zip(shared, alone, strict=True):
        assert not cached and value.dtype == expected.dtype
        np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(source.audio, y)  # the window's audio is left as it was
    # the split's defaults are canonical_representation's
    from merkit.representations.registry import CANONICAL_FRONT_DEFAULTS

    assert CANONICAL_FRONT_DEFAULTS == {"level_percentile": 100.0, "level_dbfs": -0.1}


def test_a_shared_front_end_is_copied_for_a_function_that_changes_it() -> None:
    from merkit.audio.windows import Window
    from merkit.representations.cache import NullCache
    from merkit.representations.extract import SongJob, SongJobs

    jobs = tuple(SongJob(_in_place_rep(n), SR, {}, NullCache(), 0) for n in ("a", "b", "c"))
    y = np.arange(SR, dtype=np.float32) / SR
    values = [value for value, _ in SongJobs(jobs)(Window(0.0, 1.0, y, SR))]
    alone = SongJobs(jobs[:1])(Window(0.0, 1.0, y, SR))[0][0]
    for value in values:
        np.testing.assert_array_equal(value, alone)

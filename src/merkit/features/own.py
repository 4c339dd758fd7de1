"""merkit's own handcrafted, emotion-oriented audio features (numpy/scipy, librosa's definitions).

One call turns a mono clip into a fixed-length, named vector (``OWN_FEATURE_NAMES``) of frame-level
descriptors summarised over the clip. The descriptors follow the feature families that the MER
literature (Panda et al. 2018, MIRtoolbox) links to arousal and valence:

``dynamics``
    RMS, A-weighted loudness, dynamic range, low-energy ratio, crest factor.
``timbre``
    Spectral centroid/bandwidth/rolloff/flatness/entropy/flux, zero-crossing rate, spectral
    contrast, band-energy ratios, 20 MFCCs with delta statistics.
``rhythm``
    Tempo, pulse clarity, tempogram peak ratio and metric ratios, onset rate and strength, beat
    regularity and strength.
``tonality``
    Chroma (absolute and key-relative), key clarity and major-minor mode score from
    Krumhansl-Kessler profile correlations (global and per 3-s window), tonal centroid (tonnetz).
``harmony``
    Sensory dissonance (Sethares' Plomp-Levelt model on the strongest spectral peaks of each frame)
    and the harmonic change detection function (Harte et al. 2006).
``articulation``
    Attack times and slopes at onsets, decay times, event density of the percussive part and the
    percussive/harmonic energy balance (HPSS).

The STFT (~100 ms window, hop 1/8 of it) is computed once per clip and reused by every spectral
descriptor; HPSS runs on the mel spectrogram pooled to a 2x coarser hop (96 bands instead of ~1000
bins) to stay fast. About 0.13 s of CPU per 30-s clip at 16 kHz on one thread of an Intel Xeon
(``benchmarks/results/own_features_speed.md``). The extractor draws no random numbers: the same
samples always give the same vector.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter1d
from scipy.signal import get_window

from merkit.audio import dsp, rhythm
from merkit.core.errors import AudioError

__all__ = ["OWN_FEATURE_NAMES", "extract_own_features"]

# --------------------------------------------------------------------------------------------
# Layout: every feature name is derived from these tables, so names and values cannot drift.
# --------------------------------------------------------------------------------------------

FULL_STATS: Final[tuple[str, ...]] = (
    "mean",
    "std",
    "p10",
    "median",
    "p90",
    "skew",
    "kurtosis",
    "delta_mean_abs",
    "delta_std",
)
"""Summary of a 1-D frame series: moments, percentiles and frame-to-frame change."""

MEAN_STD: Final[tuple[str, ...]] = ("mean", "std")
EVENT_STATS: Final[tuple[str, ...]] = ("mean", "std", "median")
MFCC_STATS: Final[tuple[str, ...]] = ("mean", "std", "delta_std", "delta2_std")

N_MFCC: Final[int] = 20
N_MELS: Final[int] = 96
PITCH_CLASSES: Final[tuple[str, ...]] = (
    "C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B",
)  # fmt: skip
TONNETZ_AXES: Final[tuple[str, ...]] = (
    "fifth_x",
    "fifth_y",
    "minor3_x",
    "minor3_y",
    "major3_x",
    "major3_y",
)
CONTRAST_BANDS: Final[int] = 6  # librosa returns n_bands + 1 rows (the last is the top band)
BANDS_HZ: Final[tuple[tuple[str, float, float], ...]] = (
    ("low", 0.0, 200.0),
    ("lowmid", 200.0, 1000.0),
    ("highmid", 1000.0, 4000.0),
    ("high", 4000.0, math.inf),
)
# Metric multiples of the tempo at which the tempogram is read (Prockup et al. 2015, as librosa).
TEMPO_FACTORS: Final[tuple[tuple[str, float], ...]] = (
    ("x4", 4.0),
    ("x8_3", 8 / 3),
    ("x3", 3.0),
    ("x2", 2.0),
    ("x4_3", 4 / 3),
    ("x3_2", 3 / 2),
    ("x1", 1.0),
    ("x2_3", 2 / 3),
    ("x3_4", 3 / 4),
    ("x1_2", 1 / 2),
    ("x1_3", 1 / 3),
    ("x3_8", 3 / 8),
    ("x1_4", 1 / 4),
)

# Krumhansl-Kessler key profiles (Krumhansl 1990), tonic first.
KK_MAJOR: Final[np.ndarray] = np.array(
    [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]
)
KK_MINOR: Final[np.ndarray] = np.array(
    [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]
)

MIN_SECONDS: Final[float] = 0.5
MIN_SR: Final[int] = 8000
TEMPO_RANGE_BPM: Final[tuple[float, float]] = (30.0, 300.0)
KEY_WINDOW_S: Final[float] = 3.0
N_PEAKS: Final[int] = 12  # spectral peaks per frame for the dissonance model
DB_FLOOR: Final[float] = -100.0


def _layout() -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    """(descriptor, stats) pairs in output order; ``None`` marks a scalar descriptor."""
    entries: list[tuple[str, tuple[str, ...] | None]] = []
    # dynamics
    entries += [(f"dynamics.{d}", FULL_STATS) for d in ("rms", "rms_db", "loudness_a_db")]
    entries += [(f"dynamics.{d}", None) for d in ("range_db", "low_energy_ratio", "crest_db")]
    # timbre
    entries += [
        (f"timbre.{d}", FULL_STATS)
        for d in (
            "spectral_centroid",
            "spectral_bandwidth",
            "spectral_rolloff",
            "spectral_flatness",
            "spectral_entropy",
            "spectral_flux",
            "zero_crossing_rate",
        )
    ]
    entries += [(f"timbre.spectral_contrast_{b}", MEAN_STD) for b in range(CONTRAST_BANDS + 1)]
    entries += [(f"timbre.band_ratio_{name}", MEAN_STD) for name, _, _ in BANDS_HZ]
    entries += [(f"timbre.mfcc_{i:02d}", MFCC_STATS) for i in range(N_MFCC)]
    # rhythm
    entries += [
        (f"rhythm.{d}", None)
        for d in ("tempo", "tempo_strength", "pulse_clarity", "tempogram_peak_ratio")
    ]
    entries += [("rhythm.pulse_clarity_local", MEAN_STD)]
    entries += [(f"rhythm.tempogram_ratio_{name}", None) for name, _ in TEMPO_FACTORS]
    entries += [(f"rhythm.{d}", None) for d in ("onset_rate", "beat_ibi_cv", "beat_strength")]
    entries += [("rhythm.onset_strength", FULL_STATS)]
    # tonality
    entries += [(f"tonality.chroma_{p}", MEAN_STD) for p in PITCH_CLASSES]
    entries += [(f"tonality.chroma_rel_{i:02d}", ("mean",)) for i in range(12)]
    entries += [
        (f"tonality.{d}", None)
        for d in (
            "key_clarity",
            "key_margin",
            "major_key_corr",
            "minor_key_corr",
            "mode_major_minus_minor",
            "key_change_rate",
        )
    ]
    entries += [("tonality.key_clarity_local", MEAN_STD), ("tonality.mode_local", MEAN_STD)]
    entries += [(f"tonality.tonnetz_{a}", MEAN_STD) for a in TONNETZ_AXES]
    entries += [("tonality.chroma_entropy", MEAN_STD)]
    # harmony
    entries += [("harmony.dissonance", FULL_STATS), ("harmony.harmonic_change", FULL_STATS)]
    # articulation
    entries += [
        (f"articulation.{d}", None)
        for d in ("percussive_ratio", "event_density", "low_envelope_ratio")
    ]
    entries += [("articulation.percussive_frame_ratio", MEAN_STD)]
    entries += [
        ("articulation.attack_time", EVENT_STATS),
        ("articulation.attack_slope", EVENT_STATS),
        ("articulation.decay_time", MEAN_STD),
    ]
    return tuple(entries)


_LAYOUT: Final = _layout()

OWN_FEATURE_NAMES: Final[tuple[str, ...]] = tuple(
    name if stats is None else f"{name}.{stat}"
    for name, stats in _LAYOUT
    for stat in (stats or ("",))
)
"""Names of :func:`extract_own_features`' values, in order (``group.descriptor.stat``)."""


# --------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------

_EPS: Final[float] = 1e-12


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is (nearly) zero, so silence gives 0 rather than NaN."""
    num_arr = np.asarray(num, dtype=np.float64)
    den_arr = np.asarray(den, dtype=np.float64)
    ok = np.abs(den_arr) > _EPS
    return np.where(ok, num_arr / np.where(ok, den_arr, 1.0), 0.0)


def _percentiles(
    x: np.ndarray, percentiles: Iterable[float], *, median: bool = False
) -> tuple[list[float], float]:
    """``np.percentile(x, p)`` for each ``p`` (linear interpolation) and ``np.median(x)``, from
    one partition of ``x``.

    ``np.percentile`` and ``np.median`` each partition the series, and their values depend only on
    the order statistics they read, not on how a partition arranges the rest. So one partition at
    all those ranks and numpy's float64 arithmetic (``np.median``: the mean of the middle one or
    two values; ``np.percentile``: its ``_lerp`` at the fraction of ``(n - 1) p / 100``) give the
    same floats; ``tests/test_features.py`` pins that. Any NaN gives NaN, as in numpy. Returns
    ``(percentile values, median)``; the median is NaN unless asked for. Needs ``x.size >= 2``.
    """
    n = x.size
    ranks = {n - 1}  # NaNs partition to the end: the last rank tells whether there is one
    reads: list[tuple[int, float]] = []
    for p in percentiles:
        virtual = (n - 1) * (p / 100)  # < n - 1 for p < 100, so both neighbours exist
        low = math.floor(virtual)
        reads.append((low, virtual - low))
        ranks |= {low, low + 1}
    if median:
        ranks |= {(n - 1) // 2, n // 2}
    part = np.partition(x, sorted(ranks))
    if math.isnan(part[-1]):
        return [math.nan] * len(reads), math.nan
    values = []
    for low, gamma in reads:
        a, b = float(part[low]), float(part[low + 1])
        diff = b - a
        values.append(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)
    middle = math.nan
    if median:
        half = n // 2
        middle = float(part[half]) if n % 2 else (float(part[half - 1]) + float(part[half])) / 2
    return values, middle


def _stats(x: np.ndarray, stats: Iterable[str]) -> list[float]:
    """Summary statistics of a 1-D series (0 for an empty or degenerate series), in order.

    The statistics share their work: one mean and centred series for std, skew and kurtosis
    (``x.std()`` is the square root of that mean square, as numpy computes it), one partition for
    p10, median and p90 (:func:`_percentiles`), one difference series. The same operations on the
    same arrays as computing each alone, so the same values (``tests/test_features.py``); the
    summary of a 30-s clip's 317 values measured 7.1 -> 5.6 ms of CPU against a percentile and a
    median call per series (``benchmarks/results/own_features_speed.md``).
    """
    x = np.asarray(x, dtype=np.float64)
    stats = tuple(stats)
    n = x.size
    if n == 0:
        return [0.0] * len(stats)
    found: dict[str, float] = {}
    mean = x.mean()
    found["mean"] = float(mean)
    if {"std", "skew", "kurtosis"} & set(stats):
        centred = x - mean
        m2 = float(np.mean(centred**2))
        found["std"] = math.sqrt(m2)  # np.std: sqrt(mean((x - mean)^2)), correctly rounded
        if "skew" in stats or "kurtosis" in stats:
            # a (numerically) constant series has no shape: report 0 instead of 0/0
            flat = m2 <= 1e-12 * (float(np.mean(x**2)) + 1e-30)
            found["skew"] = 0.0 if flat else float(np.mean(centred**3) / m2**1.5)
            found["kurtosis"] = 0.0 if flat else float(np.mean(centred**4) / m2**2 - 3.0)
    ordered = [s for s in ("p10", "p90") if s in stats]
    if ordered or "median" in stats:
        if n >= 2:
            values, middle = _percentiles(
                x, [10.0 if s == "p10" else 90.0 for s in ordered], median="median" in stats
            )
        else:  # numpy's own (its percentile of one inf is NaN)
            values = [float(np.percentile(x, 10 if s == "p10" else 90)) for s in ordered]
            middle = float(np.median(x))
        found.update(zip(ordered, values, strict=True))
        found["median"] = middle
    if "delta_mean_abs" in stats or "delta_std" in stats:
        if n < 2:
            found["delta_mean_abs"] = found["delta_std"] = 0.0
        else:
            d = np.diff(x)
            found["delta_mean_abs"] = float(np.mean(np.abs(d)))
            found["delta_std"] = float(d.std())
    return [found[stat] for stat in stats]  # KeyError: a layout typo, a programming error


def _row_stats(x: np.ndarray, stats: tuple[str, ...]) -> np.ndarray:
    """:func:`_stats` of each row of ``x`` ``(series, n)``, ``n >= 2``: ``(series, len(stats))``.

    Every reduction runs along the rows of a C-ordered array, which numpy sums row by row exactly
    as it sums one series alone (pairwise), the percentiles come from one partition of all rows at
    the ranks :func:`_percentiles` reads, with its arithmetic element-wise, and the powers of the
    mean square are Python's, as in :func:`_stats`: the same values
    (``tests/test_features.py``), with a few dozen numpy calls per group instead of per series.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[1]
    found: dict[str, np.ndarray] = {"mean": x.mean(axis=1)}
    if {"std", "skew", "kurtosis"} & set(stats):
        centred = x - found["mean"][:, None]
        m2 = np.mean(centred**2, axis=1)
        found["std"] = np.sqrt(m2)
        if "skew" in stats or "kurtosis" in stats:
            flat = m2 <= 1e-12 * (np.mean(x**2, axis=1) + 1e-30)
            squares = m2.tolist()
            skew = np.mean(centred**3, axis=1) / np.array([m**1.5 for m in squares])
            kurtosis = np.mean(centred**4, axis=1) / np.array([m**2 for m in squares]) - 3.0
            found["skew"] = np.where(flat, 0.0, skew)
            found["kurtosis"] = np.where(flat, 0.0, kurtosis)
    ordered = [(s, 10.0 if s == "p10" else 90.0) for s in ("p10", "p90") if s in stats]
    if ordered or "median" in stats:
        reads = []
        ranks = {n - 1}  # NaNs partition to the end, as in _percentiles
        for stat, p in ordered:
            virtual = (n - 1) * (p / 100)
            low = math.floor(virtual)
            reads.append((stat, low, virtual - low))
            ranks |= {low, low + 1}
        half = n // 2
        if "median" in stats:
            ranks |= {(n - 1) // 2, half}
        part = np.partition(x, sorted(ranks), axis=1)
        nan = np.isnan(part[:, -1])
        for stat, low, gamma in reads:
            a, b = part[:, low], part[:, low + 1]
            diff = b - a
            value = b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
            found[stat] = np.where(nan, np.nan, value)
        if "median" in stats:
            middle = part[:, half] if n % 2 else (part[:, half - 1] + part[:, half]) / 2
            found["median"] = np.where(nan, np.nan, middle)
    if "delta_mean_abs" in stats or "delta_std" in stats:
        d = np.diff(x, axis=1)
        found["delta_mean_abs"] = np.mean(np.abs(d), axis=1)
        found["delta_std"] = d.std(axis=1)
    return np.stack([found[stat] for stat in stats], axis=1)  # KeyError: a layout typo


def _db(x: np.ndarray, power: bool = False) -> np.ndarray:
    """Absolute decibels with a floor, so silence maps to ``DB_FLOOR`` instead of -inf."""
    factor = 10.0 if power else 20.0
    floor = 10.0 ** (DB_FLOOR / factor)
    return factor * np.log10(np.maximum(np.asarray(x, dtype=np.float64), floor))


def _zscore(v: np.ndarray, axis: int = -1) -> np.ndarray:
    centred = v - v.mean(axis=axis, keepdims=True)
    return _safe_div(centred, centred.std(axis=axis, keepdims=True))


def _key_correlations(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlations of chroma profiles ``(..., 12)`` with the 12 major and 12 minor keys.

    Returns ``(major, minor)``, each ``(..., 12)`` indexed by tonic pitch class. A flat or empty
    profile correlates 0 with every key.
    """
    keys_major, keys_minor = _key_profiles()
    z = _zscore(profiles)
    major = z @ keys_major / 12.0
    minor = z @ keys_minor / 12.0
    return major, minor


@lru_cache(maxsize=1)
def _key_profiles() -> tuple[np.ndarray, np.ndarray]:
    """The z-scored major and minor key profiles, transposed: column k has its tonic at k.

    Built once: 48 ``np.roll`` calls per clip were ~0.4 ms of the tonality family's CPU.
    """
    keys_major = np.stack([np.roll(KK_MAJOR, k) for k in range(12)])  # row k: tonic k
    keys_minor = np.stack([np.roll(KK_MINOR, k) for k in range(12)])
    out = _zscore(keys_major).T, _zscore(keys_minor).T
    for keys in out:
        keys.flags.writeable = False
    return out


# --------------------------------------------------------------------------------------------
# Analysis: everything computed once per clip
# --------------------------------------------------------------------------------------------


def _frame_params(sr: int) -> tuple[int, int]:
    """FFT size ~100 ms (power of two) and hop = n_fft / 8 (16 ms at 16 kHz)."""
    n_fft = int(2 ** round(math.log2(0.1 * sr)))
    return n_fft, n_fft // 8


# Filterbanks depend only on (sr, n_fft[, tuning]); building them per clip costs more than using
# them. The cached arrays are made read-only so no caller can corrupt the cache.
@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    fb = dsp.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=N_MELS)
    fb.flags.writeable = False
    return fb


@lru_cache(maxsize=8)
def _a_weights(sr: int, n_fft: int) -> np.ndarray:
    freqs = dsp.fft_frequencies(sr=sr, n_fft=n_fft)
    weights = (10.0 ** (dsp.a_weighting(np.maximum(freqs, 1.0)) / 10.0)).astype(np.float32)
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=256)
def _chroma_basis(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    # tuning comes from a 0.01-bin histogram, so a few hundred entries cover every clip
    fb = dsp.chroma_filterbank(sr=sr, n_fft=n_fft, tuning=tuning)
    fb.flags.writeable = False
    return fb


@lru_cache(maxsize=8)
def _band_indicators(sr: int, n_fft: int) -> np.ndarray:
    """``(len(BANDS_HZ), bins)`` 0/1 rows, so all band energies are one matrix product."""
    freqs = dsp.fft_frequencies(sr=sr, n_fft=n_fft)
    rows = np.stack([(freqs >= lo) & (freqs < hi) for _, lo, hi in BANDS_HZ]).astype(np.float32)
    rows.flags.writeable = False
    return rows


@dataclass(frozen=True)
class _Analysis:
    y: np.ndarray
    sr: int
    n_fft: int
    hop: int
    duration: float
    S: np.ndarray  # magnitude STFT (bins, frames)
    S_frames: np.ndarray  # the same, frame-major (frames, bins): per-frame sorts run contiguously
    power: np.ndarray  # |STFT|^2
    freqs: np.ndarray
    mel_power: np.ndarray  # (N_MELS, frames)
    mel_db: np.ndarray
    onset_env: np.ndarray  # (frames,)
    onsets: np.ndarray  # onset frame indices


def _analyse(y: np.ndarray, sr: int) -> _Analysis:
    n_fft, hop = _frame_params(sr)
    S = np.abs(dsp.stft(y, n_fft=n_fft, hop_length=hop))
    power = S * S
    freqs = dsp.fft_frequencies(sr=sr, n_fft=n_fft)
    mel_power = _mel_basis(sr, n_fft) @ power
    mel_db = _db(mel_power, power=True)
    onset_env = _onset_envelope(mel_db, sr, hop)
    onsets = _detect_onsets(onset_env, sr, hop)
    return _Analysis(
        y=y,
        sr=sr,
        n_fft=n_fft,
        hop=hop,
        duration=len(y) / sr,
        S=S,
        S_frames=np.ascontiguousarray(S.T),
        power=power,
        freqs=freqs,
        mel_power=mel_power,
        mel_db=mel_db,
        onset_env=onset_env,
        onsets=onsets,
    )


def _onset_envelope(mel_db: np.ndarray, sr: int, hop: int, lag: int = 2) -> np.ndarray:
    """Spectral-flux onset strength of a dB mel spectrogram.

    Levels more than 80 dB below the clip's peak are clamped, so fluctuations of the noise floor
    do not drown the onsets (and the envelope stays gain-invariant). The difference is taken over
    ``lag`` hops (default 2, i.e. 32 ms at 16 kHz): with 87.5 % window overlap a one-hop
    difference smears each onset.
    """
    clamped = np.maximum(mel_db, mel_db.max(initial=DB_FLOOR) - 80.0)
    return rhythm.onset_strength(clamped, hop_length=hop, lag=lag)


def _detect_onsets(onset_env: np.ndarray, sr: int, hop: int) -> np.ndarray:
    # the envelope is normalised by its max; an all-zero envelope (silence) has no onsets
    if float(np.max(onset_env, initial=0.0)) <= _EPS:
        return np.zeros(0, dtype=int)
    return rhythm.onset_detect(onset_env, sr=sr, hop_length=hop)


# --------------------------------------------------------------------------------------------
# Feature families; each returns {descriptor: scalar or 1-D series}
# --------------------------------------------------------------------------------------------

_Values = dict[str, float | np.ndarray]


def _frame_rms(y: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """RMS of centred, zero-padded frames (librosa's ``feature.rms`` framing), in float64.

    The frame is a whole number of hops, so each sample's square is summed once per hop block and
    the frames add up neighbouring blocks instead of re-reading every sample 8 times.
    """
    n_frames = 1 + len(y) // hop
    half = frame_length // 2
    padded = np.zeros((n_frames - 1) * hop + frame_length, dtype=np.float64)
    n = min(len(y), len(padded) - half)
    padded[half : half + n] = y[:n]
    if frame_length % hop:
        frames = sliding_window_view(padded, frame_length)[::hop]
        return np.sqrt(np.mean(frames**2, axis=1))
    per_frame = frame_length // hop
    blocks = (padded**2).reshape(-1, hop).sum(axis=1)
    sums = sliding_window_view(blocks, per_frame).sum(axis=1)
    return np.sqrt(sums[:n_frames] / frame_length)


def _dynamics(a: _Analysis) -> _Values:
    rms = _frame_rms(a.y, a.n_fft, a.hop)
    rms_db = _db(rms)
    # mean square of the unwindowed signal from the one-sided power spectrum (Parseval),
    # after A-weighting: a 1 kHz tone reads the same as rms_db
    window = get_window("hann", a.n_fft, fftbins=True)
    norm = a.n_fft**2 * float(np.mean(window**2)) / 2.0
    loudness = _db(_a_weights(a.sr, a.n_fft) @ a.power / norm, power=True)
    peak = float(np.max(np.abs(a.y), initial=0.0))
    high, low = _percentiles(rms_db, [95.0, 10.0])[0]  # np.percentile's values, one partition
    global_rms = float(np.sqrt(np.mean(a.y.astype(np.float64) ** 2)))
    return {
        "dynamics.rms": rms,
        "dynamics.rms_db": rms_db,
        "dynamics.loudness_a_db": loudness,
        "dynamics.range_db": float(high - low),
        "dynamics.low_energy_ratio": float(np.mean(rms < rms.mean())),
        "dynamics.crest_db": float(_db(_safe_div(peak, global_rms))) if global_rms > 0 else 0.0,
    }


def _spectral_shape(S: np.ndarray, freqs: np.ndarray) -> dict[str, np.ndarray]:
    """Centroid, bandwidth and 85 % rolloff of magnitude spectra ``(bins, frames)`` in Hz.

    Same definitions as librosa's (magnitude-weighted, bandwidth with p=2), in one pass: librosa's
    generic versions re-normalise the spectrogram for each descriptor and dominate the runtime.
    """
    # the three moments in one matrix product; spread = E[f^2] - centroid^2 (float64, and the
    # frequencies are far from the 1e8 range where the subtraction would lose digits)
    total, first, second = np.stack([np.ones_like(freqs), freqs, freqs**2]) @ S
    centroid = _safe_div(first, total)
    spread = np.maximum(_safe_div(second, total) - centroid**2, 0.0)
    cumulative = np.cumsum(S, axis=0)
    # the cumulative sum never decreases, so the first bin reaching 85 % is the count below it
    below = (cumulative < 0.85 * cumulative[-1][None, :]).sum(axis=0)
    rolloff = np.where(total > _EPS, freqs[np.minimum(below, len(freqs) - 1)], 0.0)
    return {"centroid": centroid, "bandwidth": np.sqrt(spread), "rolloff": rolloff}


def _zero_crossing_rate(y: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """librosa's ``zero_crossing_rate`` (edge-padded centred frames, |x| <= 1e-10 reads as 0).

    Crossings are marked once on the padded signal and counted per frame with a cumulative sum,
    instead of re-testing every sample in each of the 8 overlapping frames.
    """
    half = frame_length // 2
    padded = np.pad(y, (half, half), mode="edge")
    # sign bit after zeroing |x| <= 1e-10 (librosa's threshold) is exactly x < -1e-10
    negative = padded < -1e-10
    counts = np.zeros(len(padded) + 1, dtype=np.int64)
    np.cumsum(negative[1:] != negative[:-1], out=counts[2:])
    starts = np.arange(1 + (len(padded) - frame_length) // hop) * hop
    # a frame's first sample is never a crossing (librosa's pad=False)
    return (counts[starts + frame_length] - counts[starts + 1]) / frame_length


def _smallest_pair_mean(values: np.ndarray) -> np.ndarray:
    """Mean of the two smallest values of each row (a repeated minimum counts twice).

    A sum of two floats does not depend on their order, so this equals the mean of the first two
    columns of any partition of the rows; three passes over the rows instead of a partition.
    """
    first = values.argmin(axis=1)
    rest = values.copy()
    rest[np.arange(len(values)), first] = np.inf
    pair = np.stack([np.take_along_axis(values, first[:, None], axis=1)[:, 0], rest.min(axis=1)])
    return pair.T.mean(axis=1)


def _spectral_contrast(S_frames: np.ndarray, freqs: np.ndarray, fmin: float) -> np.ndarray:
    """librosa's ``spectral_contrast`` (octave bands, 2 % quantile, dB) of frame-major magnitudes
    ``(frames, bins)``; the band quantiles come from a partial partition instead of a full sort
    (the means of the same values).

    Bands whose quantile holds one or two values (the four lowest and, at 16 kHz, the fifth) take
    them by min/max instead: a mean of one or two values does not depend on their order, whereas
    for three or more the partition's order is kept (it fixes the float32 rounding of the sum).
    Each band is sliced rather than copied by a boolean mask.
    """
    edges = np.zeros(CONTRAST_BANDS + 2)
    edges[1:] = fmin * 2.0 ** np.arange(CONTRAST_BANDS + 1)
    valley = np.zeros((CONTRAST_BANDS + 1, S_frames.shape[0]))
    peak = np.zeros_like(valley)
    for k, (f_low, f_high) in enumerate(itertools.pairwise(edges)):
        idx = np.flatnonzero((freqs >= f_low) & (freqs <= f_high))
        # librosa's band: one bin below (except the first band), everything above for the top
        # band, and the band's last bin left out of the quantiles for the others
        start = int(idx[0]) - 1 if k > 0 else int(idx[0])
        stop = len(freqs) if k == CONTRAST_BANDS else int(idx[-1]) + 1
        q = max(int(np.rint(0.02 * (stop - start))), 1)
        sub = S_frames[:, start : stop if k == CONTRAST_BANDS else stop - 1]
        n = sub.shape[1]
        if q == 1:
            valley[k] = sub.min(axis=1)
            peak[k] = sub.max(axis=1)
        elif q == 2 and n >= 2:
            valley[k] = _smallest_pair_mean(sub)
            peak[k] = -_smallest_pair_mean(-sub)
        else:
            # Partitioned row by row in the row-major slice: each row ends arranged exactly as in
            # the column-major copy a boolean mask makes (``S_frames[:, mask]``, what this code
            # partitioned before), at ~20 % less CPU (17.9 -> 13.9 ms for the top band of a 30-s
            # clip). The q columns are then made column-major again, because the row means of a
            # column-major array add the q values one by one and a row-major one adds them
            # pairwise (q >= 8), which rounds differently.
            parted = np.partition(sub, (min(q, n) - 1, max(n - q, 0)), axis=1)
            valley[k] = np.asfortranarray(parted[:, :q]).mean(axis=1)
            peak[k] = np.asfortranarray(parted[:, n - q :]).mean(axis=1)
    return dsp.power_to_db(peak) - dsp.power_to_db(valley)


def _timbre(a: _Analysis) -> _Values:
    S, freqs, sr = a.S, a.freqs, a.sr
    shape = _spectral_shape(S, freqs)
    n_bins = a.power.shape[0]
    band_energy = _band_indicators(sr, a.n_fft) @ a.power
    frame_energy = band_energy.sum(axis=0)  # the bands tile [0, inf)
    # One float32 log of the power serves flatness and entropy: its ~1e-7 relative error is far
    # below what either statistic resolves, and it costs a quarter of a float64 log.
    with np.errstate(divide="ignore"):
        # (the power is float32 already from float32 samples: no copy then)
        log_power = np.log(a.power.astype(np.float32, copy=False))  # -inf at exact zeros
    # flatness of the power spectrum: geometric over arithmetic mean, floored like librosa
    # (one scratch array serves both floored spectra, and the log is zeroed in place for the
    # entropy: the same values in the same layout, 0.5-0.8 ms of CPU less than three new arrays)
    log_floor = np.float32(math.log(1e-10))
    scratch = np.maximum(log_power, log_floor)
    mean_log = scratch.mean(axis=0, dtype=np.float64)
    floored_mean = np.maximum(a.power, 1e-10, out=scratch).mean(axis=0)
    flatness = np.exp(mean_log) / floored_mean
    # entropy of p = P / E: -sum p log p = log E - sum(P log P) / E (zero bins contribute 0)
    np.copyto(log_power, np.float32(0.0), where=~(a.power > 0))
    p_log_p = np.einsum("ft,ft->t", a.power, log_power, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = np.where(
            frame_energy > _EPS,
            (
                np.log(np.where(frame_energy > _EPS, frame_energy, 1.0))
                - p_log_p / np.where(frame_energy > _EPS, frame_energy, 1.0)
            )
            / math.log(n_bins),
            0.0,
        )
    # flux of unit-norm spectra: |u - v|^2 = |u|^2 + |v|^2 - 2 u.v, with |u| in {0, 1}
    norms = np.sqrt(np.einsum("ft,ft->t", S, S))
    inv = _safe_div(1.0, norms)
    unit_sq = (norms * inv) ** 2
    dots = np.einsum("ft,ft->t", S[:, 1:], S[:, :-1]) * inv[1:] * inv[:-1]
    flux = np.sqrt(np.maximum(unit_sq[1:] + unit_sq[:-1] - 2.0 * dots, 0.0))
    zcr = _zero_crossing_rate(a.y, a.n_fft, a.hop)
    # Contrast bands are octaves from fmin; keep the top band's lower edge below Nyquist.
    fmin = min(200.0, 0.45 * sr / 2 ** (CONTRAST_BANDS - 1))
    contrast = _spectral_contrast(a.S_frames, freqs, fmin)
    out: _Values = {
        "timbre.spectral_centroid": shape["centroid"],
        "timbre.spectral_bandwidth": shape["bandwidth"],
        "timbre.spectral_rolloff": shape["rolloff"],
        "timbre.spectral_flatness": flatness,
        "timbre.spectral_entropy": entropy,
        "timbre.spectral_flux": flux,
        "timbre.zero_crossing_rate": zcr,
    }
    for b in range(CONTRAST_BANDS + 1):
        out[f"timbre.spectral_contrast_{b}"] = contrast[b]
    for (name, _, _), energy in zip(BANDS_HZ, band_energy, strict=True):
        out[f"timbre.band_ratio_{name}"] = _safe_div(energy, frame_energy)
    mfcc = dsp.mfcc(a.mel_db, n_mfcc=N_MFCC)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta needs an odd width <= frames
    if width >= 3:
        d1 = dsp.delta(mfcc, width=width, order=1)
        d2 = dsp.delta(mfcc, width=width, order=2)
    else:
        d1 = d2 = np.zeros_like(mfcc)
    # along the rows of a C-ordered copy: each row's std as alone (see _row_stats), 0.2 -> 0.06 ms
    d1_std = np.ascontiguousarray(d1).std(axis=1).tolist()
    d2_std = np.ascontiguousarray(d2).std(axis=1).tolist()
    for i in range(N_MFCC):
        out[f"timbre.mfcc_{i:02d}"] = mfcc[i]
        # the delta stats are scalars computed here; the layout reads them by stat name
        out[f"timbre.mfcc_{i:02d}.delta_std"] = d1_std[i]
        out[f"timbre.mfcc_{i:02d}.delta2_std"] = d2_std[i]
    return out


def _rhythm(a: _Analysis) -> _Values:
    env, sr, hop = a.onset_env, a.sr, a.hop
    win = 384  # 6 s of onset envelope at a 16 ms hop: lags down to ~10 bpm
    tg = _tempogram(env, win)
    ac = tg.mean(axis=1)  # each column is an autocorrelation normalised to 1 at lag 0
    lags = np.arange(len(ac))
    bpm = np.zeros(len(ac))
    bpm[1:] = 60.0 * sr / (hop * lags[1:])
    in_range = (bpm >= TEMPO_RANGE_BPM[0]) & (bpm <= TEMPO_RANGE_BPM[1])
    out: _Values = {"rhythm.onset_strength": env}
    if not np.any(in_range) or float(ac[in_range].max(initial=0.0)) <= 1e-9:
        # silence or no periodicity at all: no tempo to report
        tempo = strength = clarity = peak_ratio = 0.0
        local = np.zeros(tg.shape[1])
        ratios = np.zeros(len(TEMPO_FACTORS))
    else:
        cand = np.flatnonzero(in_range)
        # log-normal prior around 120 bpm (one octave std), as librosa's tempo estimator
        prior = -0.5 * (np.log2(bpm[cand] / 120.0)) ** 2
        best = int(cand[np.argmax(np.log1p(1e6 * ac[cand]) + prior)])
        tempo = _interpolated_tempo(ac, best, sr, hop)
        strength = float(ac[best])
        clarity = float(ac[cand].max())
        peaks = cand[
            (ac[cand] >= ac[np.maximum(cand - 1, 0)])
            & (ac[cand] > ac[np.minimum(cand + 1, len(ac) - 1)])
        ]
        top = np.sort(ac[peaks])[::-1]
        peak_ratio = float(top[1] / top[0]) if top.size >= 2 and top[0] > 0 else 0.0
        local = tg[cand].max(axis=0)
        # tempogram read at metric multiples of the tempo (librosa's tempogram_ratio idea)
        order = np.argsort(bpm[1:]) + 1
        ratios = np.interp(
            [tempo * f for _, f in TEMPO_FACTORS], bpm[order], ac[order], left=0.0, right=0.0
        )
    out.update(
        {
            "rhythm.tempo": tempo,
            "rhythm.tempo_strength": strength,
            "rhythm.pulse_clarity": clarity,
            "rhythm.tempogram_peak_ratio": peak_ratio,
            "rhythm.pulse_clarity_local": local,
            "rhythm.onset_rate": len(a.onsets) / a.duration,
        }
    )
    for (name, _), value in zip(TEMPO_FACTORS, ratios, strict=True):
        out[f"rhythm.tempogram_ratio_{name}"] = float(value)
    ibi_cv = beat_strength = 0.0
    if tempo > 0:
        beats = rhythm.beat_track(env, sr=sr, hop_length=hop, bpm=tempo)
        if beats.size >= 3:
            ibi = np.diff(beats).astype(np.float64)
            ibi_cv = float(ibi.std() / ibi.mean())
        if beats.size:
            beat_strength = float(_safe_div(env[beats].mean(), env.mean()))
    out["rhythm.beat_ibi_cv"] = ibi_cv
    out["rhythm.beat_strength"] = beat_strength
    return out


def _tempogram(env: np.ndarray, win: int) -> np.ndarray:
    """librosa's ``feature.tempogram`` (centred Hann-windowed autocorrelation, max-normalised).

    The windows are laid out frame-major so the FFTs run along contiguous memory; the values are
    the same transforms of the same data. Returns ``(lags, frames)`` like librosa.
    """
    n = len(env)
    padded = np.pad(env, (win // 2, win // 2), mode="linear_ramp", end_values=(0, 0))
    window = get_window("hann", win, fftbins=True).astype(np.float32)
    # float32 transforms: half the cost, and ~1e-7 relative error is far below what the
    # tempo statistics resolve
    frames = sliding_window_view(padded.astype(np.float32), win)[:n] * window
    n_fft = scipy.fft.next_fast_len(2 * win - 1, real=True)
    power = dsp.abs2(scipy.fft.rfft(frames, n=n_fft, axis=1))
    autocorr = scipy.fft.irfft(power, n=n_fft, axis=1)[:, :win].astype(np.float64)
    # max-abs normalisation (librosa's util.normalize, norm=inf); all-zero windows stay zero.
    # max |x| = max(max x, -min x) exactly, without an array of absolute values
    peak = np.maximum(autocorr.max(axis=1, keepdims=True), -autocorr.min(axis=1, keepdims=True))
    return (autocorr / np.where(peak > np.finfo(np.float32).tiny, peak, 1.0)).T


def _interpolated_tempo(ac: np.ndarray, lag: int, sr: int, hop: int) -> float:
    """Tempo of the autocorrelation peak at ``lag``, refined by parabolic interpolation.

    At a 16 ms hop, neighbouring lags are ~4 bpm apart near 120 bpm; the parabola recovers the
    sub-frame period.
    """
    refined = float(lag)
    if 1 <= lag < len(ac) - 1:
        left, mid, right = ac[lag - 1], ac[lag], ac[lag + 1]
        curvature = left - 2 * mid + right
        if curvature < 0:
            refined += float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return 60.0 * sr / (hop * refined)


def _estimate_tuning(S: np.ndarray, sr: int, n_fft: int) -> float:
    """librosa's ``estimate_tuning(S=S, sr=sr, n_fft=n_fft)`` with default parameters.

    ``piptrack`` only keeps peaks between 150 Hz and 4 kHz, so the peak picking and parabolic
    interpolation run on those bins (plus one neighbour each side) instead of the whole spectrum;
    the per-frame threshold still uses the whole frame's maximum, as librosa does.
    """
    freqs = dsp.fft_frequencies(sr=sr, n_fft=n_fft)
    keep = np.flatnonzero((freqs >= 150.0) & (freqs < min(4000.0, sr / 2)))
    if keep.size == 0 or S.shape[1] == 0:
        return 0.0
    lo, hi = max(int(keep[0]), 1), min(int(keep[-1]), S.shape[0] - 2)
    sub = S[lo - 1 : hi + 2]  # rows lo..hi and their neighbours
    left, mid, right = sub[:-2], sub[1:-1], sub[2:]
    # local maxima of the thresholded spectrum (x[i] > x[i-1] and x[i] >= x[i+1])
    thresholded = sub * (sub > 0.1 * S.max(axis=0, keepdims=True))
    t_left, t_mid, t_right = thresholded[:-2], thresholded[1:-1], thresholded[2:]
    rows, cols = np.nonzero((t_mid > t_left) & (t_mid >= t_right))
    curvature = (right + left - 2 * mid)[rows, cols]
    slope = ((right - left) / 2)[rows, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(slope) >= np.abs(curvature), 0.0, -slope / curvature)
    bins = rows + lo
    pitch = (bins + shift) * float(sr) / n_fft
    mag = mid[rows, cols] + 0.5 * ((right - left) / 2.0)[rows, cols] * shift
    voiced = pitch > 0
    threshold = np.median(mag[voiced]) if voiced.any() else 0.0
    return dsp.pitch_tuning(pitch[(mag >= threshold) & voiced])


def _tonality(a: _Analysis) -> tuple[_Values, np.ndarray]:
    """Tonality features, plus the frame-normalised chroma for the harmony family."""
    # tuning from every 4th frame: the estimate is stable and piptrack is the slow part
    # (silence or pitchless noise has no peaks: tuning 0)
    tuning = _estimate_tuning(a.S[:, ::4], a.sr, a.n_fft)
    if not np.isfinite(tuning):
        tuning = 0.0
    chroma_energy = _chroma_basis(a.sr, a.n_fft, float(tuning)) @ a.power
    frame_max = chroma_energy.max(axis=0)
    chroma = _safe_div(chroma_energy, frame_max[None, :])  # per-frame max = 1, silence = 0
    out: _Values = {}
    for i, pc in enumerate(PITCH_CLASSES):
        out[f"tonality.chroma_{pc}"] = chroma[i]

    profile = chroma_energy.sum(axis=1)
    major, minor = _key_correlations(profile)
    both = np.concatenate([major, minor])
    ranked = np.sort(both)[::-1]
    tonic = int(np.argmax(both)) % 12
    rel = np.roll(chroma.mean(axis=1), -tonic)  # key-relative: index 0 is the estimated tonic
    for i in range(12):
        out[f"tonality.chroma_rel_{i:02d}"] = float(rel[i])
    out["tonality.key_clarity"] = float(ranked[0])
    out["tonality.key_margin"] = float(ranked[0] - ranked[1])
    out["tonality.major_key_corr"] = float(major.max())
    out["tonality.minor_key_corr"] = float(minor.max())
    out["tonality.mode_major_minus_minor"] = float(major.max() - minor.max())

    seg = max(1, round(KEY_WINDOW_S * a.sr / a.hop))
    n_win = max(1, chroma_energy.shape[1] // seg)
    windows = np.stack(
        [chroma_energy[:, w * seg : (w + 1) * seg].sum(axis=1) for w in range(n_win)]
    )
    w_major, w_minor = _key_correlations(windows)
    w_both = np.concatenate([w_major, w_minor], axis=1)
    voiced = windows.sum(axis=1) > _EPS
    keys = np.argmax(w_both, axis=1)[voiced]
    out["tonality.key_clarity_local"] = w_both.max(axis=1)
    out["tonality.mode_local"] = w_major.max(axis=1) - w_minor.max(axis=1)
    changes = keys[1:] != keys[:-1]
    out["tonality.key_change_rate"] = float(changes.mean()) if changes.size else 0.0

    tonnetz = dsp.tonnetz(chroma_energy)
    tonnetz = np.nan_to_num(tonnetz)
    for i, axis in enumerate(TONNETZ_AXES):
        out[f"tonality.tonnetz_{axis}"] = tonnetz[i]
    pc = _safe_div(chroma_energy, chroma_energy.sum(axis=0)[None, :])
    ent = -np.sum(pc * np.log(np.where(pc > 0, pc, 1.0)), axis=0) / math.log(12)
    out["tonality.chroma_entropy"] = ent
    return out, tonnetz


def sethares_dissonance(freqs: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Sensory dissonance of sets of partials (Sethares 1993 fit of Plomp and Levelt's curve).

    Parameters
    ----------
    freqs, amps : np.ndarray, shape (..., n_partials)
        Partial frequencies in Hz and linear amplitudes; zero-amplitude partials contribute
        nothing, so sets of different sizes can be padded with zeros.

    Returns
    -------
    np.ndarray, shape (...)
        Sum over partial pairs of ``a_i a_j (exp(-3.5 s df) - exp(-5.75 s df))`` with
        ``s = 0.24 / (0.0207 f_min + 18.96)``.
    """
    # The curve is symmetric in (i, j) to the last bit (|a - b| = |b - a|, min commutes) and 0 on
    # the diagonal (exp(-0) - exp(-0)), so its exponentials are computed for the pairs i < j only
    # and mirrored: 3.6 instead of 5.4 ms for a 30-s clip's 1875 frames of 12 partials. The full
    # matrix is still summed, in the same order, so the result is unchanged.
    k = freqs.shape[-1]
    rows, cols = np.triu_indices(k, 1)
    f_i, f_j = freqs[..., rows], freqs[..., cols]
    df = np.abs(f_i - f_j)
    s = 0.24 / (0.0207 * np.minimum(f_i, f_j) + 18.96)
    upper = np.exp(-3.51 * s * df) - np.exp(-5.75 * s * df)
    curve = np.zeros((*freqs.shape, k), dtype=upper.dtype)
    curve[..., rows, cols] = upper
    curve[..., cols, rows] = upper
    pair = amps[..., :, None] * amps[..., None, :] * curve
    return 0.5 * pair.sum(axis=(-2, -1))  # each unordered pair counted once


def _dissonance(a: _Analysis) -> np.ndarray:
    """Per-frame dissonance of the ``N_PEAKS`` strongest spectral peaks (amplitudes sum to 1)."""
    # partials above 5 kHz add little roughness and cost half of the bins at 16 kHz
    band = (a.freqs >= 20.0) & (a.freqs <= 5000.0)
    lo, hi = np.flatnonzero(band)[[0, -1]]
    # frame-major copy: the peak search and the partial sort then run along contiguous memory
    spec, freqs = a.S_frames[:, lo : hi + 1], a.freqs[lo : hi + 1]
    is_peak = np.zeros_like(spec, dtype=bool)
    is_peak[:, 1:-1] = (spec[:, 1:-1] > spec[:, :-2]) & (spec[:, 1:-1] >= spec[:, 2:])
    # ignore peaks more than 60 dB below the frame's strongest one (window side lobes, noise floor)
    floor = np.maximum(spec.max(axis=1, keepdims=True) * 1e-3, _EPS)
    is_peak &= spec >= floor
    mag = spec * is_peak
    k = min(N_PEAKS, spec.shape[1])
    idx = np.argpartition(-mag, k - 1, axis=1)[:, :k]  # (frames, k)
    amps = np.take_along_axis(mag, idx, axis=1)
    peak_freqs = freqs[idx]
    amps = _safe_div(amps, amps.sum(axis=1, keepdims=True))
    return sethares_dissonance(peak_freqs, amps)


def _harmony(a: _Analysis, tonnetz: np.ndarray) -> _Values:
    sigma = max(1.0, 0.15 * a.sr / a.hop)  # smooth the tonal centroid over ~150 ms (Harte 2006)
    smooth = gaussian_filter1d(tonnetz, sigma=sigma, axis=1, mode="nearest")
    if smooth.shape[1] >= 3:
        change = np.linalg.norm(smooth[:, 2:] - smooth[:, :-2], axis=0)
    else:
        change = np.zeros(1)
    return {"harmony.dissonance": _dissonance(a), "harmony.harmonic_change": change}


def _batcher_pairs(lo: int, hi: int) -> Iterable[tuple[int, int]]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of wires ``lo..hi``
    (``hi - lo + 1`` a power of two); each puts the smaller value on ``i``."""

    def merge(lo: int, hi: int, r: int) -> Iterable[tuple[int, int]]:
        step = 2 * r
        if step < hi - lo:
            yield from merge(lo, hi, step)
            yield from merge(lo + r, hi, step)
            yield from ((i, i + r) for i in range(lo + r, hi - r, step))
        else:
            yield (lo, lo + r)

    if hi - lo >= 1:
        mid = lo + (hi - lo) // 2
        yield from _batcher_pairs(lo, mid)
        yield from _batcher_pairs(mid + 1, hi)
        yield from merge(lo, hi, 1)


@lru_cache(maxsize=16)
def _selection_network(n: int, rank: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """A comparator network whose wire ``rank`` ends holding the ``rank``-th smallest of ``n``.

    Batcher's network for the next power of two with the wires above ``n`` read as +inf (their
    comparators never move a value), then pruned backwards to what wire ``rank`` depends on.
    Each entry is ``(i, j, keep_min, keep_max)``: which of the comparator's two outputs is used.
    """
    size = 1 << max(n - 1, 0).bit_length()
    pairs = [(i, j) for i, j in _batcher_pairs(0, size - 1) if j < n]
    needed, kept = {rank}, []
    for i, j in reversed(pairs):
        keep_min, keep_max = i in needed, j in needed
        if keep_min or keep_max:
            kept.append((i, j, keep_min, keep_max))
            needed |= {i, j}
    return tuple(reversed(kept))


def _median_filter(x: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Median over ``width`` neighbours along ``axis`` with mirrored edges.

    Equals ``scipy.ndimage.median_filter`` with ``mode="reflect"`` and a 1-D kernel, and the
    ``width // 2``-th smallest of each window for an even width. The ``width`` shifted copies of
    ``x`` go through a median-selection network of elementwise min/max (124 whole-array
    operations for width 17, 40 for 9), instead of a partition of every window: a median is a
    selection, so the values are identical. On a 30-s clip's pooled (96, 937) mel spectrogram
    this measured 7.7 -> 3.4 ms of CPU for width 17 and 5.7 -> 0.9 ms for width 9.
    """
    pad = [(0, 0)] * x.ndim
    pad[axis] = (width // 2, (width - 1) // 2)
    padded = np.pad(x, pad, mode="symmetric")
    n = x.shape[axis]
    lead = (slice(None),) * (axis % x.ndim)
    # contiguous copies: every network step then writes into one of them
    wires = [padded[(*lead, slice(k, k + n))].copy() for k in range(width)]
    spare = np.empty_like(wires[0])
    for i, j, keep_min, keep_max in _selection_network(width, width // 2):
        if keep_min and keep_max:
            np.minimum(wires[i], wires[j], out=spare)
            np.maximum(wires[i], wires[j], out=wires[j])
            wires[i], spare = spare, wires[i]
        elif keep_min:
            np.minimum(wires[i], wires[j], out=wires[i])
        else:
            np.maximum(wires[i], wires[j], out=wires[j])
    return wires[width // 2]


def _hpss(
    S: np.ndarray, harmonic_width: int, percussive_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """librosa's ``decompose.hpss(S, kernel_size=(harmonic_width, percussive_width))``.

    Same median filters (time for the harmonic, frequency for the percussive part) and the same
    Wiener-like soft masks (power 2, margin 1); only the median filter is computed faster.
    """
    harm = _median_filter(S, harmonic_width, axis=1)
    perc = _median_filter(S, percussive_width, axis=0)
    mask_harm, mask_perc = dsp.softmask_pair(harm, perc, power=2.0)
    return S * mask_harm, S * mask_perc


def _articulation(a: _Analysis) -> _Values:
    # HPSS on the mel power spectrogram pooled to a 2x coarser hop (median filtering is the slow
    # part): 17 frames (~0.5 s at 16 kHz) along time for the harmonic part, 9 mel bands along
    # frequency for the percussive part
    n_pairs = a.mel_power.shape[1] // 2
    if n_pairs >= 2:
        # the mean of each pair, as the even plus the odd frames halved: the same float32 sum
        # and correctly rounded halving as ``mean`` over a length-2 axis (2.0 -> 0.2 ms)
        mel = a.mel_power
        pooled = (mel[:, 0 : 2 * n_pairs : 2] + mel[:, 1 : 2 * n_pairs : 2]) / 2
        hop = 2 * a.hop
    else:
        pooled, hop = a.mel_power, a.hop
    harm, perc = _hpss(pooled, harmonic_width=17, percussive_width=9)
    h_e, p_e = harm.sum(axis=0), perc.sum(axis=0)
    out: _Values = {
        "articulation.percussive_ratio": float(_safe_div(p_e.sum(), h_e.sum() + p_e.sum())),
        "articulation.percussive_frame_ratio": _safe_div(p_e, h_e + p_e),
    }
    perc_env = _onset_envelope(_db(perc, power=True), a.sr, hop, lag=1 if hop > a.hop else 2)
    out["articulation.event_density"] = len(_detect_onsets(perc_env, a.sr, hop)) / a.duration

    # fine amplitude envelope (10 ms frames, 5 ms hop) for attack and decay shapes
    step = max(1, round(0.005 * a.sr))
    n = len(a.y) // step
    blocks = a.y[: n * step].astype(np.float64).reshape(n, step)
    power = np.mean(blocks**2, axis=1)
    env = np.sqrt(np.convolve(power, [0.5, 0.5], mode="same"))
    global_rms = float(np.sqrt(power.mean())) if n else 0.0
    out["articulation.low_envelope_ratio"] = (
        float(np.mean(env < 0.1 * global_rms)) if global_rms > 0 else 0.0
    )
    step_s = step / a.sr
    centres = (a.onsets * a.hop / step).astype(np.int64)  # int() of each, as the scalar code
    attack_t, attack_s, decay_t = _attacks_and_decays(
        env, centres, round(0.05 / step_s), round(0.15 / step_s), global_rms, step_s
    )
    out["articulation.attack_time"] = attack_t
    out["articulation.attack_slope"] = attack_s
    out["articulation.decay_time"] = decay_t
    return out


def _attacks_and_decays(
    env: np.ndarray, centres: np.ndarray, pre: int, post: int, global_rms: float, step_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attack times and slopes and decay times of the envelope ``env`` around each onset.

    Each onset's segment is ``env[centre - pre : centre + post]`` (clipped to the envelope);
    segments shorter than 3 or without a positive value are skipped. The attack runs from the
    last value at most 20 % of the segment's peak before it to the first value reaching 90 % of
    it; the decay is the time after the peak to the first value at most 50 % of it (``2 post``
    steps if none within them). All onsets at once on ``(onsets, window)`` index arrays: the same
    comparisons and float64 operations as a loop over the onsets, so the same values, for ~185
    onsets of a 30-s clip in one pass instead of ~1500 small numpy calls.

    Returns
    -------
    attack_time, attack_slope, decay_time : np.ndarray
        float64, one value per kept onset, in onset order.
    """
    n = len(env)
    lo = np.maximum(centres - pre, 0)
    hi = np.minimum(centres + post, n)
    offsets = np.arange(pre + post)
    inside = offsets[None, :] < (hi - lo)[:, None]
    seg = np.where(inside, env[np.minimum(lo[:, None] + offsets, n - 1)], -np.inf)
    keep = ((hi - lo) >= 3) & (seg.max(axis=1, initial=-np.inf) > 0)
    seg, lo, inside = seg[keep], lo[keep], inside[keep]
    rows = np.arange(len(seg))
    p = np.argmax(seg, axis=1)  # the first maximum, as np.argmax of each segment
    peak = seg[rows, p]
    before = (offsets[None, :] < p[:, None]) & (seg <= 0.2 * peak[:, None])
    last = len(offsets) - 1 - np.argmax(before[:, ::-1], axis=1)
    start = np.where(before.any(axis=1), last, 0)
    rising = (
        (offsets[None, :] >= start[:, None])
        & (offsets[None, :] <= p[:, None])
        & (seg >= 0.9 * peak[:, None])
    )
    reach = np.argmax(rising, axis=1)
    duration = np.maximum(reach - start, 1) * step_s
    slope = (seg[rows, reach] - seg[rows, start]) / (global_rms * duration)
    tail = np.arange(2 * post)
    after = lo[:, None] + p[:, None] + tail  # env indices from each peak on
    fallen = (after < n) & (env[np.minimum(after, n - 1)] <= 0.5 * peak[:, None])
    decay = np.where(fallen.any(axis=1), np.argmax(fallen, axis=1), 2 * post) * step_s
    return duration.astype(np.float64), slope.astype(np.float64), decay.astype(np.float64)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _check_input(y: np.ndarray, sr: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"own features need mono audio (1-D samples), got shape {y.shape}")
    if int(sr) < MIN_SR:
        raise AudioError(f"own features need a sample rate of at least {MIN_SR} Hz, got {sr}")
    if len(y) < MIN_SECONDS * sr:
        raise AudioError(
            f"audio too short for own features: {len(y) / sr:.3f} s (need {MIN_SECONDS} s)"
        )
    # decoded NaN/inf samples would poison every frame; treat them as silence (the finiteness
    # test first: nan_to_num's masks cost ~1 ms of a 30-s clip's CPU when nothing is replaced)
    samples = y.astype(np.float32)
    if not np.isfinite(samples).all():
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return samples


def _summarise(values: _Values) -> np.ndarray:
    """The output vector: scalars as they are, each series' statistics in layout order.

    Series of one length that need the same statistics are summarised together by
    :func:`_row_stats` (the MFCCs, chroma, contrast bands, ... of a clip: a few groups instead of
    82 series one by one), which gives each row :func:`_stats`' values. Summary of a 30-s clip in
    two runs of ``benchmarks/own_features_speed.py``: 7.1 -> 5.6 ms of CPU with :func:`_stats`
    series by series, 7.3 -> 5.0 ms with the groups.
    """
    out = np.empty(len(OWN_FEATURE_NAMES), dtype=np.float64)
    used: set[str] = set()
    groups: dict[tuple[int, tuple[str, ...]], list[tuple[list[int], np.ndarray]]] = {}
    i = 0
    for name, stats in _LAYOUT:
        used.add(name)
        if stats is None:
            out[i] = float(values[name])  # type: ignore[arg-type]
            i += 1
            continue
        series = np.asarray(values[name], dtype=np.float64).ravel()
        # a family may precompute a stat that needs more than the series (e.g. MFCC deltas)
        positions, wanted = [], []
        for stat in stats:
            full = f"{name}.{stat}"
            if full in values:
                out[i] = float(values[full])  # type: ignore[arg-type]
                used.add(full)
            else:
                positions.append(i)
                wanted.append(stat)
            i += 1
        groups.setdefault((series.size, tuple(wanted)), []).append((positions, series))
    for (size, wanted), members in groups.items():
        if not wanted:
            continue
        if size >= 2 and len(members) >= 2:
            rows = _row_stats(np.stack([series for _, series in members]), wanted)
        else:
            rows = np.array([_stats(series, wanted) for _, series in members])
        for (positions, _), row in zip(members, rows, strict=True):
            out[positions] = row
    unused = set(values) - used
    if unused:  # a descriptor computed but missing from the layout: a bug, not a user error
        raise RuntimeError(f"own features computed but not laid out: {sorted(unused)}")
    return out


def _all_values(families: Iterable[_Values]) -> _Values:
    merged: _Values = {}
    for family in families:
        merged.update(family)
    return merged


def extract_own_features(y: np.ndarray, sr: int, *, seed: int = 0) -> np.ndarray:
    """Compute merkit's own emotion-oriented feature vector for one clip.

    Parameters
    ----------
    y : np.ndarray
        Mono samples (any float dtype), at least 0.5 s long. NaN/inf samples are read as 0.
    sr : int
        Sample rate in Hz (>= 8000). The analysis frames scale with it (~100 ms FFT, hop 1/8).
    seed : int
        Accepted for the representation-registry contract. The extractor draws no random numbers,
        so the result does not depend on it.

    Returns
    -------
    np.ndarray
        float32 vector of ``len(OWN_FEATURE_NAMES)`` finite values (undefined statistics, e.g. the
        tempo of silence, are 0).

    Raises
    ------
    AudioError
        If ``y`` is not 1-D, shorter than 0.5 s, or ``sr`` is below 8 kHz.
    """
    del seed  # deterministic; see docstring
    y = _check_input(y, int(sr))
    a = _analyse(y, int(sr))
    tonal, tonnetz = _tonality(a)
    values = _all_values(
        [_dynamics(a), _timbre(a), _rhythm(a), tonal, _harmony(a, tonnetz), _articulation(a)]
    )
    with np.errstate(all="ignore"):
        vector = _summarise(values)
    vector = np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)
    limit = float(np.finfo(np.float32).max)
    return np.clip(vector, -limit, limit).astype(np.float32)

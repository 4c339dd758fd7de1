"""The few spectral-analysis building blocks merkit's own features need, in numpy and scipy only.

They follow librosa's documented definitions (librosa 0.11; McFee et al. 2015) so that
:mod:`merkit.features.own` gives the values it gave when it called librosa, but importing this
module compiles nothing: every librosa module imports ``librosa.util``, whose numba kernels take
tens of seconds to compile on a fresh install, and ``merkit predict`` with the default model
needs nothing else from librosa. ``tests/test_dsp.py`` checks each function against librosa.

Where librosa's result depends on the order of floating-point operations (sums inside its numba
loops), the same order is kept here, so discrete decisions (peak picking, the beat tracker's
dynamic programme) come out identical rather than merely close.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import scipy.fft
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "a_weighting",
    "abs2",
    "chroma_filterbank",
    "delta",
    "fft_frequencies",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "mfcc",
    "pitch_tuning",
    "power_to_db",
    "softmask",
    "softmask_pair",
    "stft",
    "tonnetz",
]

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per
# factor 6.4 in frequency), as in the Auditory Toolbox.
_MEL_LINEAR_HZ: Final[float] = 200.0 / 3
_MEL_BREAK_HZ: Final[float] = 1000.0
_MEL_BREAK: Final[float] = _MEL_BREAK_HZ / _MEL_LINEAR_HZ
_MEL_LOG_STEP: Final[float] = math.log(6.4) / 27.0


# --------------------------------------------------------------------------------------------
# Spectra and frequency axes
# --------------------------------------------------------------------------------------------


def stft(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Short-time Fourier transform with a periodic Hann window and centred, zero-padded frames.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono signal (float32 gives a complex64 result, float64 complex128).
    n_fft : int
        Frame and FFT length in samples.
    hop_length : int
        Samples between frame starts.

    Returns
    -------
    np.ndarray, shape (1 + n_fft // 2, 1 + n // hop_length)
        Frame ``t`` is centred on sample ``t * hop_length``; the signal is padded with
        ``n_fft // 2`` zeros on each side. The transforms run in float64 (the window is float64)
        and are rounded to the input's complex type, as ``librosa.stft(center=True)`` does.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"stft expects a 1-D signal, got shape {y.shape}")
    out_dtype = np.result_type(y.dtype, np.complex64)
    half = n_fft // 2
    padded = np.pad(y, (half, half))
    n_frames = 1 + len(y) // hop_length
    frames = sliding_window_view(padded, n_fft)[: (n_frames - 1) * hop_length + 1 : hop_length]
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    out = np.empty((n_frames, 1 + half), dtype=out_dtype)
    # blocks of 64 frames keep the float64 temporaries in cache (1 MB at n_fft 2048): a third
    # faster than one large block
    step = 64
    for start in range(0, n_frames, step):
        block = frames[start : start + step] * window
        out[start : start + step] = np.fft.rfft(block, axis=1)
    return out.T


def fft_frequencies(*, sr: float, n_fft: int) -> np.ndarray:
    """Centre frequencies (Hz) of the ``1 + n_fft // 2`` bins of a real FFT."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def abs2(x: np.ndarray) -> np.ndarray:
    """Squared magnitude ``re^2 + im^2`` in the input's precision (real input: ``x^2``)."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return np.square(x.real) + np.square(x.imag)
    return np.square(x)


def power_to_db(S: np.ndarray, *, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(max(amin, S))`` (reference power 1), floored ``top_db`` below the array's peak.

    Parameters
    ----------
    S : np.ndarray
        Non-negative power values.
    amin : float
        Smallest power (avoids ``log(0)``).
    top_db : float or None
        Dynamic range kept below the maximum of the whole array; ``None`` keeps everything.
    """
    db = 10.0 * np.log10(np.maximum(amin, np.asarray(S)))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def a_weighting(frequencies: np.ndarray, *, min_db: float | None = -80.0) -> np.ndarray:
    """A-weighting (IEC 61672-1) in dB at ``frequencies`` (Hz), floored at ``min_db``.

    ``R_A(f) = 12194^2 f^4 / ((f^2 + 20.6^2) sqrt((f^2 + 107.7^2)(f^2 + 737.9^2)) (f^2 + 12194^2))``
    and ``A(f) = 20 log10 R_A(f) + 2.0``, so that ``A(1 kHz) = 0 dB``.
    """
    f_sq = np.asarray(frequencies, dtype=np.float64) ** 2.0
    c1, c2, c3, c4 = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2.0
    weights = 2.0 + 20.0 * (
        np.log10(c1)
        + 2 * np.log10(f_sq)
        - np.log10(f_sq + c1)
        - np.log10(f_sq + c2)
        - 0.5 * np.log10(f_sq + c3)
        - 0.5 * np.log10(f_sq + c4)
    )
    return weights if min_db is None else np.maximum(min_db, weights)


# --------------------------------------------------------------------------------------------
# Filter banks
# --------------------------------------------------------------------------------------------


def hz_to_mel(frequencies: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: ``f / (200/3)`` below 1 kHz, logarithmic (27 mels per x6.4) above."""
    f = np.asarray(frequencies, dtype=np.float64)
    linear = f / _MEL_LINEAR_HZ
    with np.errstate(divide="ignore", invalid="ignore"):
        log = _MEL_BREAK + np.log(f / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return np.where(f >= _MEL_BREAK_HZ, log, linear)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    linear = _MEL_LINEAR_HZ * m
    log = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (m - _MEL_BREAK))
    return np.where(m >= _MEL_BREAK, log, linear)


def mel_filterbank(*, sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters from 0 Hz to ``sr / 2``, Slaney-normalised (constant area).

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    n_fft : int
        FFT length the filters apply to.
    n_mels : int
        Number of filters.

    Returns
    -------
    np.ndarray, shape (n_mels, 1 + n_fft // 2), float32
        Filter ``i`` rises from edge ``i`` to ``i + 1`` and falls to ``i + 2`` of ``n_mels + 2``
        edges equally spaced in mels, scaled by ``2 / (f_{i+2} - f_i)``.
    """
    fft_freqs = fft_frequencies(sr=sr, n_fft=n_fft)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    widths = np.diff(edges)
    offsets = edges[:, None] - fft_freqs[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    # the triangles are rounded to float32 before the area normalisation, as librosa stores them
    triangles = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    scale = 2.0 / (edges[2 : n_mels + 2] - edges[:n_mels])
    return (triangles * scale[:, None]).astype(np.float32)


def chroma_filterbank(
    *,
    sr: float,
    n_fft: int,
    tuning: float = 0.0,
    n_chroma: int = 12,
    centre_octave: float = 5.0,
    octave_width: float = 2.0,
) -> np.ndarray:
    """Gaussian pitch-class filters over FFT bins (Ellis' chromagram), C first.

    Each bin's frequency is converted to a fractional pitch-class position (``n_chroma`` per
    octave, A4 = 440 Hz shifted by ``tuning`` fractions of a bin); the bin contributes to each
    pitch class by a Gaussian in the circular pitch distance, of half-width the bin's own width in
    pitch classes (at least 1). Each bin's weights are scaled to unit L2 norm, then weighted by a
    Gaussian over octaves centred on ``centre_octave`` (octave 0 starts at A0 = 27.5 Hz, so 5.0
    is A5 = 880 Hz) with standard deviation ``octave_width``.

    Returns
    -------
    np.ndarray, shape (n_chroma, 1 + n_fft // 2), float32
    """
    freqs = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    pitch = n_chroma * np.log2(freqs / (a440 / 16))
    pitch = np.concatenate(([pitch[0] - 1.5 * n_chroma], pitch))  # the DC bin, 1.5 octaves down
    bin_width = np.concatenate((np.maximum(np.diff(pitch), 1.0), [1.0]))
    half = np.round(n_chroma / 2.0)
    distance = pitch[None, :] - np.arange(n_chroma, dtype=np.float64)[:, None]
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / bin_width[None, :]) ** 2)
    norms = np.sum(np.abs(weights) ** 2, axis=0, keepdims=True) ** 0.5
    weights = weights / np.where(norms < np.finfo(np.float64).tiny, 1.0, norms)
    octave = np.exp(-0.5 * ((pitch / n_chroma - centre_octave) / octave_width) ** 2)
    weights = weights * octave[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)  # pitch class 0 = C, not A
    return np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Frame-level features
# --------------------------------------------------------------------------------------------


def mfcc(S_db: np.ndarray, *, n_mfcc: int) -> np.ndarray:
    """MFCCs: the orthonormal type-II DCT of a log-power mel spectrogram along frequency.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_mels, frames)
    n_mfcc : int
        Coefficients kept (the first ``n_mfcc``).
    """
    return scipy.fft.dct(S_db, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]


def delta(data: np.ndarray, *, width: int = 9, order: int = 1) -> np.ndarray:
    """Savitzky-Golay derivative of ``order`` along the last axis (polynomial order ``order``).

    ``width`` is the (odd) window length; the edges use a polynomial fitted to the first and last
    ``width`` frames (``mode="interp"``).
    """
    if width < 3 or width % 2 == 0 or width > data.shape[-1]:
        raise ValueError(f"delta width must be odd, >= 3 and <= {data.shape[-1]}, got {width}")
    return scipy.signal.savgol_filter(
        data, width, polyorder=order, deriv=order, axis=-1, mode="interp"
    )


def tonnetz(chroma: np.ndarray) -> np.ndarray:
    """Tonal centroid (Harte et al. 2006) of a chromagram ``(12, frames)``.

    Each frame is scaled to unit L1 norm (all-zero frames stay zero) and projected on three
    circles: fifths (radius 1), minor thirds (radius 1) and major thirds (radius 0.5).

    Returns
    -------
    np.ndarray, shape (6, frames)
        x and y of the fifths, minor-third and major-third circles.
    """
    n_chroma = chroma.shape[-2]
    pitch = np.linspace(0, 12, num=n_chroma, endpoint=False)
    angle = np.multiply.outer(np.array([7 / 6, 7 / 6, 3 / 2, 3 / 2, 2 / 3, 2 / 3]), pitch)
    angle[::2] -= 0.5  # x rows: cos(pi (r l - 1/2)) = sin(pi r l)
    radius = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    basis = radius[:, None] * np.cos(np.pi * angle)
    totals = np.sum(np.abs(chroma).astype(np.float64), axis=-2, keepdims=True)
    tiny = np.finfo(chroma.dtype).tiny if np.issubdtype(chroma.dtype, np.floating) else 0.0
    unit = (chroma / np.where(totals < tiny, 1.0, totals)).astype(chroma.dtype)
    return np.einsum("pc,ci->pi", basis, unit, optimize=True)


def softmask(X: np.ndarray, X_ref: np.ndarray, *, power: float = 1.0) -> np.ndarray:
    """Soft mask ``X^p / (X^p + X_ref^p)`` of two non-negative arrays; 0.5 where both are ~0.

    Both are divided by their element-wise maximum first, so large powers do not overflow.
    """
    return softmask_pair(X, X_ref, power=power)[0]


def softmask_pair(
    X: np.ndarray, X_ref: np.ndarray, *, power: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(softmask(X, X_ref), softmask(X_ref, X))`` with the work the two share done once.

    The element-wise maximum, the scaled powers and their sum are the same arrays in both masks
    (``max`` and ``+`` commute), so computing them once gives both (HPSS in
    :mod:`merkit.features.own`: 1.0 -> 0.35 ms of CPU for a 30-s clip's two masks, against two
    separate masks). Both are divided by the element-wise maximum first, so large powers do not
    overflow; 0.5 where both are ~0.
    """
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float32)
    larger = np.maximum(X, X_ref).astype(dtype)
    silent = larger < np.finfo(dtype).tiny
    larger[silent] = 1
    mask = (X / larger) ** power
    ref = (X_ref / larger) ** power
    total = mask + ref
    loud = ~silent
    np.divide(mask, total, out=mask, where=loud)
    np.divide(ref, total, out=ref, where=loud)
    mask[silent] = 0.5
    ref[silent] = 0.5
    return mask, ref


def pitch_tuning(frequencies: np.ndarray, *, resolution: float = 0.01) -> float:
    """Most common deviation of ``frequencies`` from the equal-tempered grid (A4 = 440 Hz).

    Returns the left edge of the fullest bin of a ``resolution``-wide histogram of the
    deviations in fractions of a semitone, in ``[-0.5, 0.5)``; 0.0 when no frequency is > 0.
    """
    f = np.atleast_1d(np.asarray(frequencies, dtype=np.float64))
    f = f[f > 0]
    if f.size == 0:
        return 0.0
    residual = np.mod(12 * np.log2(f / (440.0 / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, edges = np.histogram(residual, edges)
    return float(edges[np.argmax(counts)])

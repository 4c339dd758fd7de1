"""Onsets and beats in numpy and scipy only: the rhythm part of :mod:`merkit.audio.dsp` (see there
for
why merkit computes these itself instead of calling librosa), giving exactly librosa 0.11's
onset frames, peak picks and beat frames on the same input.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["beat_track", "onset_detect", "onset_strength", "peak_pick"]


# --------------------------------------------------------------------------------------------
# Onsets and beats
# --------------------------------------------------------------------------------------------


def onset_strength(
    S_db: np.ndarray, *, hop_length: int, lag: int = 1, centre_n_fft: int = 2048
) -> np.ndarray:
    """Spectral-flux onset envelope: mean over bands of the positive ``lag``-frame increase.

    Parameters
    ----------
    S_db : np.ndarray, shape (bands, frames)
        Log-power spectrogram.
    hop_length : int
        Hop of ``S_db`` in samples.
    lag : int
        Frames between the compared spectra (>= 1).
    centre_n_fft : int
        The envelope is delayed by ``lag + centre_n_fft // (2 * hop_length)`` frames (zeros in
        front, cut to ``frames``) to line up with centred analysis frames; librosa uses its
        default FFT length, 2048, for this even when given a spectrogram, and so does merkit.

    Returns
    -------
    np.ndarray, shape (frames,)
    """
    if lag < 1:
        raise ValueError(f"lag must be >= 1, got {lag}")
    S_db = np.atleast_2d(S_db)
    flux = np.maximum(0.0, S_db[:, lag:] - S_db[:, :-lag])
    env = np.mean(flux, axis=-2)
    delay = lag + centre_n_fft // (2 * hop_length)
    return np.pad(env, (delay, 0))[: S_db.shape[-1]]


def _sequential_window_sums(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``sum(x[n - before : n + after])`` for every ``n`` (clipped at the edges), added left to
    right like a plain loop, so the rounding matches a scalar implementation exactly."""
    padded = np.concatenate([np.zeros(before), x, np.zeros(after)])
    total = np.zeros(len(x))
    for k in range(before + after):  # adding the zero padding changes no sum
        total += padded[k : k + len(x)]
    return total


def peak_pick(
    x: np.ndarray,
    *,
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    wait: int,
) -> np.ndarray:
    """Indices of peaks of a 1-D series (Boeck et al. 2012), chosen greedily left to right.

    ``n`` is a peak if ``x[n] == max(x[n - pre_max : n + post_max])``,
    ``x[n] >= mean(x[n - pre_avg : n + post_avg]) + delta`` (windows clipped at the edges) and
    ``n`` is more than ``wait`` samples after the previous peak.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    padded = np.concatenate([np.full(pre_max, -np.inf), x, np.full(post_max - 1, -np.inf)])
    local_max = sliding_window_view(padded, pre_max + post_max).max(axis=1)
    idx = np.arange(n)
    counts = np.minimum(idx + post_avg, n) - np.maximum(idx - pre_avg, 0)
    means = _sequential_window_sums(x, pre_avg, post_avg) / counts
    candidates = np.flatnonzero((x == local_max) & (x >= means + delta))
    peaks: list[int] = []
    next_allowed = 0
    for c in candidates.tolist():  # conditions 1-2 do not depend on earlier picks
        if c >= next_allowed:
            peaks.append(c)
            next_allowed = c + wait + 1
    return np.asarray(peaks, dtype=int)


def onset_detect(onset_envelope: np.ndarray, *, sr: float, hop_length: int) -> np.ndarray:
    """Onset frames: peaks of the envelope rescaled to [0, 1] (librosa's default parameters).

    Peaks are local maxima over the previous 30 ms, at least 0.07 above the mean over +-100 ms,
    and at least 30 ms apart (window lengths in whole frames, rounded down).
    """
    env = np.asarray(onset_envelope, dtype=np.float64)
    env = env - np.min(env)
    env /= np.max(env) + np.finfo(env.dtype).tiny
    if not env.any() or not np.all(np.isfinite(env)):
        return np.zeros(0, dtype=int)
    return peak_pick(
        env,
        pre_max=math.ceil(0.03 * sr // hop_length),
        post_max=math.ceil(0.00 * sr // hop_length + 1),
        pre_avg=math.ceil(0.10 * sr // hop_length),
        post_avg=math.ceil(0.10 * sr // hop_length + 1),
        delta=float(np.float32(0.07)),  # librosa's peak picker takes delta as float32
        wait=math.ceil(0.03 * sr // hop_length),
    )


def _local_maxima(x: np.ndarray) -> np.ndarray:
    """``x[i] > x[i-1] and x[i] >= x[i+1]``; the first element never, the last if > its left."""
    out = np.zeros(len(x), dtype=bool)
    if len(x) >= 2:
        out[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
        out[-1] = x[-1] > x[-2]
    return out


def _beat_dp(
    localscore: np.ndarray, period: float, tightness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ellis' (2007) beat dynamic programme: backlinks and cumulative scores.

    Frame ``i``'s best predecessor is searched ``round(period / 2)`` to ``2 period`` frames back,
    with a penalty ``tightness (log(gap) - log(period))^2``; ties go to the nearest predecessor.
    The predecessors of a block of ``round(period / 2)`` frames all lie before the block, so each
    block is solved at once.
    """
    n = len(localscore)
    closest = int(np.round(period / 2))
    farthest = int(2 * period)
    if closest < 1:
        raise ValueError(f"beat period must be at least 2 frames, got {period}")
    lags = np.arange(closest, farthest + 1)
    # scalar logs (the C library's), like the compiled loop; the penalty depends on the gap only
    log_period = math.log(period)
    penalty = np.array([tightness * (math.log(g) - log_period) ** 2 for g in lags.tolist()])
    cumscore = np.zeros(n)
    backlink = np.full(n, -1, dtype=np.int64)
    # row j of this view holds cumscore[j : j + len(lags)], i.e. the predecessors of frame
    # j + farthest in increasing position; it sees each block's scores as they are written
    history = sliding_window_view(cumscore, len(lags)) if n >= len(lags) else None
    for start in range(0, n, closest):
        stop = min(start + closest, n)
        if start >= farthest and history is not None:  # every candidate lies inside the signal
            scores = history[start - farthest : stop - farthest, ::-1] - penalty
            best = np.argmax(scores, axis=1)  # first maximum = smallest gap, as the loop's >
            cumscore[start:stop] = localscore[start:stop] + scores.max(axis=1)
            backlink[start:stop] = np.arange(start, stop) - lags[best]
            continue
        rows = np.arange(start, stop)
        locs = rows[:, None] - lags[None, :]
        valid = locs >= 0
        scores = np.where(valid, cumscore[np.maximum(locs, 0)] - penalty[None, :], -np.inf)
        best = np.argmax(scores, axis=1)
        found = valid[:, 0]  # the nearest candidate is the first to leave the signal
        best_score = scores[np.arange(len(rows)), best]
        cumscore[rows] = np.where(found, localscore[rows] + best_score, localscore[rows])
        backlink[rows] = np.where(found, locs[np.arange(len(rows)), best], -1)
    # no backlink until the local score first reaches 1 % of its maximum
    strong = np.flatnonzero(localscore >= 0.01 * localscore.max())
    first = int(strong[0]) if strong.size else n
    backlink[:first] = -1
    return backlink, cumscore


def beat_track(
    onset_envelope: np.ndarray,
    *,
    sr: float,
    hop_length: int,
    bpm: float,
    tightness: float = 100.0,
    trim: bool = True,
) -> np.ndarray:
    """Beat frames at a given tempo by dynamic programming (Ellis 2007), as librosa tracks them.

    Parameters
    ----------
    onset_envelope : np.ndarray, shape (frames,)
        Onset strength.
    sr : float
        Sample rate of the audio in Hz.
    hop_length : int
        Hop of the envelope in samples.
    bpm : float
        Tempo (> 0); the beat period is ``round(60 sr / (hop_length bpm))`` frames.
    tightness : float
        Weight of the penalty on inter-beat gaps that differ from the period.
    trim : bool
        Drop leading and trailing beats whose smoothed local score is below half the RMS of the
        smoothed local score at the beats.

    Returns
    -------
    np.ndarray of int
        Beat frame indices, increasing; empty for an all-zero envelope.
    """
    env = np.asarray(onset_envelope, dtype=np.float64)
    if not env.any():
        return np.zeros(0, dtype=int)
    if bpm <= 0:
        raise ValueError(f"bpm must be positive, got {bpm}")
    period = float(np.round(float(sr) / hop_length * 60.0 / bpm))
    env = env / (env.std(ddof=1) + np.finfo(np.float64).tiny)

    # local score: the envelope smoothed by a Gaussian of +-period frames (same-size output),
    # summed tap by tap in the same order as a direct loop; librosa's loop bounds leave the
    # envelope's first frame out of every sum, and so does this
    taps = np.exp(-0.5 * (np.arange(-period, period + 1) * 32.0 / period) ** 2)
    half = len(taps) // 2
    padded = np.pad(env, (half, half))
    padded[half] = 0.0
    n = len(env)
    localscore = np.zeros(n)
    for k, w in enumerate(taps.tolist()):
        localscore += w * padded[2 * half - k : 2 * half - k + n]

    backlink, cumscore = _beat_dp(localscore, period, tightness)

    # last beat: the last local maximum of the cumulative score above half their median
    peaks = _local_maxima(cumscore)
    threshold = 0.5 * float(np.median(cumscore[peaks])) if peaks.any() else 0.0
    ok = np.flatnonzero(peaks & (cumscore >= threshold))
    frame = int(ok[-1]) if ok.size else n - 1
    beats = np.zeros(n, dtype=bool)
    while frame >= 0:
        beats[frame] = True
        frame = int(backlink[frame])

    smooth = np.convolve(localscore[beats], np.hanning(5))[2 : n + 2]
    mean_sq = 0.0
    for v in (smooth**2).tolist():  # left-to-right sum, as the compiled original
        mean_sq += v
    cut = 0.5 * (mean_sq / len(smooth)) ** 0.5 if trim else 0.0
    above = np.flatnonzero(localscore > cut)
    if above.size == 0:
        return np.zeros(0, dtype=int)
    beats[: above[0]] = False
    beats[above[-1] + 1 :] = False
    return np.flatnonzero(beats)

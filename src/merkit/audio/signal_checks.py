"""Audio that is not music, seen while a track streams: a constant level, a steady test tone.

Digital silence is flagged by its level (:data:`merkit.product.prediction.SILENCE_DBFS`). A constant
signal (a DC offset such as 0.5) is not quiet, but after per-window peak normalisation it gives
the model an input no training song resembles, and it answered Q2 at 67.6 % for it; a steady
test tone (a sine, a clipped sine, a chord held throughout) likewise has nothing of a song's
emotion in it. :class:`SignalCheck` looks at every window the predictor computes and says why
the answer is not reliable, in plain words.

The tone test needs two things at once, so real music is not flagged: the spectrum barely
changes from frame to frame (the median cosine similarity of a frame's magnitude spectrum to the
window's mean spectrum is above :data:`STEADY_SIMILARITY`) and nearly all energy sits in a few
frequency bins (:data:`TONE_BINS` bins hold more than :data:`TONE_ENERGY` of it). On the 900
clips of 4QAED the largest similarity is far below the threshold
(``benchmarks/results/signal_checks.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

N_FFT = 2048
"""Frame length of the tone test (128 ms at 16 kHz), hop half of it."""

STEADY_SIMILARITY = 0.97
"""Median frame-to-window spectral similarity above which a window counts as steady."""

TONE_BINS = 32
"""Frequency bins (of ``N_FFT // 2 + 1``) a steady tone's energy is concentrated in."""

TONE_ENERGY = 0.9
"""Fraction of the energy in the :data:`TONE_BINS` strongest bins above which audio is tonal."""

CONSTANT_DBFS = -60.0
"""Level of the signal's variation (its RMS after removing the mean) below which it is constant."""


class SignalCheck:
    """Accumulate, window by window, the evidence that a track is not music.

    Feed it each window's raw audio with :meth:`add` (or wrap the window iterator with
    :meth:`watch`), then ask :meth:`reasons`.
    """

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.spectrum = np.zeros(N_FFT // 2 + 1)
        self.steadiness: list[float] = []

    def add(self, y: np.ndarray) -> None:
        """Take one window's raw (not normalised) mono audio."""
        y = np.asarray(y, dtype=np.float64)
        if y.size == 0:
            return
        self.n += y.size
        self.total += float(y.sum())
        self.total_sq += float(np.dot(y, y))
        if y.size < N_FFT:
            y = np.pad(y, (0, N_FFT - y.size))
        frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[:: N_FFT // 2]
        frames = frames - frames.mean(axis=1, keepdims=True)
        magnitude = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1))
        power = magnitude**2
        energy = power.sum(axis=1)
        if energy.max() <= 0.0:
            return
        self.spectrum += power.sum(axis=0)
        loud = magnitude[energy > 1e-3 * energy.max()]  # pauses between beeps say nothing
        mean = loud.mean(axis=0)
        cosine = (loud @ mean) / (np.linalg.norm(loud, axis=1) * np.linalg.norm(mean) + 1e-30)
        self.steadiness.append(float(np.median(cosine)))

    def watch(self, windows: Iterator[object], sr: int) -> Iterator[object]:
        """Pass ``windows`` (:class:`merkit.audio.windows.Window`) through, adding each one's
        audio at ``sr``."""
        from merkit.audio.decode import resample

        for window in windows:
            # windows hold the track's own rate: the checks' thresholds are set at ``sr``
            y, rate = window.audio, window.sr  # type: ignore[attr-defined]
            if rate != sr:
                at = getattr(window, "resampled", None)  # the array the window's features read
                y = at(sr) if callable(at) else resample(y, rate, sr)
            self.add(y)
            yield window

    @property
    def tonal_fraction(self) -> float:
        """Share of the energy in the :data:`TONE_BINS` strongest frequency bins."""
        total = self.spectrum.sum()
        if total <= 0.0:
            return 0.0
        return float(np.sort(self.spectrum)[-TONE_BINS:].sum() / total)

    def reasons(self) -> list[str]:
        """Why the answer for the audio seen so far is not reliable (empty: no reason found)."""
        if self.n == 0:
            return []
        mean = self.total / self.n
        mean_sq = self.total_sq / self.n
        if 10 * math.log10(max(mean_sq, 1e-300)) < -60.0:
            return []  # silence: said by the level check
        variance = max(mean_sq - mean * mean, 0.0)
        sound_dbfs = 10 * math.log10(variance) if variance > 0 else -math.inf
        if sound_dbfs < CONSTANT_DBFS:
            shown = "none" if sound_dbfs == -math.inf else f"{sound_dbfs:.1f} dBFS"
            return [
                f"the audio is a constant level (offset {mean:+.3f}) with no sound in it "
                f"(variation {shown}): it is not music, so the answer is not reliable"
            ]
        if mean * mean > variance:
            return [
                f"the audio is mostly a constant offset ({mean:+.3f}), louder than the sound on "
                f"it ({sound_dbfs:.1f} dBFS): the answer is not reliable"
            ]
        steady = bool(self.steadiness) and float(np.median(self.steadiness)) > STEADY_SIMILARITY
        if steady and self.tonal_fraction > TONE_ENERGY:
            return [
                "the audio is a steady tone (the same few frequencies throughout), not music: "
                "the answer is not reliable"
            ]
        return []


__all__ = [
    "CONSTANT_DBFS",
    "N_FFT",
    "STEADY_SIMILARITY",
    "TONE_BINS",
    "TONE_ENERGY",
    "SignalCheck",
]

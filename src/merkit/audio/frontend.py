"""A canonical front end: every encoding of a song reaches the features with the same band and
the same start and end.

Two properties of a file, not of its song, move merkit's features (measured over 4QAED's songs
and five re-encodes of each, ``benchmarks/results/4qaed_encoding_agreement.md``):

* **The top of the band.** Features are computed at 16 kHz. A file already at 16 kHz (4QAED's
  Opus clips) keeps content up to 8 kHz; a file at any other rate is resampled, and the
  resampler's transition band (soxr HQ at 16 kHz: 7.3 kHz kept, 7.9 kHz gone) removes the top.
  The same song then differs in its 7.3-8 kHz content, which moves the top spectral-contrast
  band, the flatness, every MFCC mean a little and the tagger's top mel bands.
* **Silence at the ends.** An MP3 decoder can keep the encoder's delay (~50 ms at 22.05 kHz) and
  pad the end: near-silent frames that are outliers of every dB-scaled statistic.

:func:`canonical` removes both: a soxr round trip through ``band_sr`` (14 kHz: flat to ~6.3 kHz,
nothing above 7 kHz) puts the same low-pass on every input, whose transition lies where every
resampler is still flat, so a 16 kHz file and a resampled one come out with the same band; first,
the ends are trimmed to the first and last sample within ``trim_db`` of the peak. The
``*-canon`` representations (:func:`merkit.representations.registry.canonical_representation`)
apply it
before another representation's function.

Last, the level is normalised (:func:`merkit.audio.decode.level_normalize`; by default the peak, as
the paper does). A codec moves a song's peak by up to ~1 dB; normalising a high percentile
instead keeps the gain within ~0.1 dB, but the default model agreed across encodings no more
often with it, so the peak stays the default (``benchmarks/results/4qaed_encoding_agreement.md``).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from merkit.core.errors import ConfigError

__all__ = [
    "CANONICAL_BAND_SR",
    "CANONICAL_TRIM_DB",
    "band_limit",
    "canonical",
    "trim_silence",
]

CANONICAL_BAND_SR: Final[int] = 14_000
"""Rate of the band-limiting round trip: content above ~6.3 kHz is removed from every input."""

CANONICAL_TRIM_DB: Final[float] = 60.0
"""Leading and trailing samples more than this many dB below the peak are trimmed."""


def band_limit(y: np.ndarray, sr: int, via_sr: int) -> np.ndarray:
    """Resample ``y`` to ``via_sr`` and back (soxr HQ), keeping its length.

    With ``via_sr`` below ``sr`` this is a low-pass at about 0.45 ``via_sr``; above ``sr`` it is
    the band any file resampled to ``sr`` keeps.

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(n,)``.
    sr, via_sr : int
        Their rate and the rate of the round trip, in Hz.

    Returns
    -------
    np.ndarray
        float32, shape ``(n,)``.
    """
    from merkit.audio.decode import resample

    y = np.asarray(y, dtype=np.float32)
    out = resample(resample(y, sr, via_sr), via_sr, sr)[: len(y)]
    if len(out) < len(y):  # a rounding sample short
        out = np.pad(out, (0, len(y) - len(out)))
    return out


def trim_silence(y: np.ndarray, top_db: float) -> np.ndarray:
    """The part of ``y`` from its first to its last sample within ``top_db`` dB of its peak.

    Sample-exact, unlike a frame-based trim, so two decodings of one file that differ only in
    leading or trailing near-silence trim to the same start. All-zero audio is returned as is.
    """
    if top_db <= 0:
        raise ConfigError(f"trim_db must be > 0, got {top_db}")
    magnitude = np.abs(y)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak == 0.0:
        return y
    loud = np.flatnonzero(magnitude >= peak * 10.0 ** (-top_db / 20.0))
    return y[loud[0] : loud[-1] + 1]


def canonical(
    y: np.ndarray,
    sr: int,
    *,
    band_sr: int | None = CANONICAL_BAND_SR,
    trim_db: float | None = CANONICAL_TRIM_DB,
    level_percentile: float = 100.0,
    level_dbfs: float = -0.1,
) -> np.ndarray:
    """The canonical form of a decoded song: trimmed, band-limited, level-normalised.

    Parameters
    ----------
    y : np.ndarray
        Mono float32 samples at ``sr`` (as :func:`merkit.audio.decode.load_audio` returns them).
    sr : int
        Their rate in Hz.
    band_sr : int or None
        Rate of the band-limiting round trip (below ``sr``); ``None`` keeps the band.
    trim_db : float or None
        Trim threshold below the peak in dB; ``None`` keeps the ends.
    level_percentile, level_dbfs : float
        The ``level_percentile``-th percentile of ``|y|`` is set to ``level_dbfs``
        (:func:`merkit.audio.decode.level_normalize`); the defaults are peak normalisation to -0.1
        dBFS.

    Returns
    -------
    np.ndarray
        float32 mono at ``sr``.

    Raises
    ------
    ConfigError
        For a ``band_sr`` not below ``sr``, a non-positive ``trim_db`` or a percentile outside
        (0, 100].
    """
    from merkit.audio.decode import level_normalize

    y = np.asarray(y, dtype=np.float32)
    if band_sr is not None and not 0 < band_sr < sr:
        raise ConfigError(f"band_sr must lie between 0 and the rate {sr} Hz, got {band_sr}")
    # Trim first: the low-pass rings a few ms before an abrupt onset, which would move the start.
    if trim_db is not None:
        y = trim_silence(y, float(trim_db))
    if band_sr is not None:
        y = band_limit(y, sr, int(band_sr))
    return level_normalize(y, float(level_percentile), float(level_dbfs))

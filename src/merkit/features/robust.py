"""Leaving out the own features that move with a song's encoding rather than with the song.

The same song decoded from a 16 kHz Opus file, from MP3s at 22.05-44.1 kHz, from an Opus
re-encode or from a 44.1 kHz WAV gives nearly the same own-feature vector, except for a few
features whose change across encodings is large next to their spread across songs
(``benchmarks/encoding_agreement.py`` measures the ratio of within-song to between-song variance
over all 4QAED songs; its results file lists the ranking):

* ``timbre.spectral_contrast_6``: the octave band from 6.4 kHz to the 8 kHz Nyquist limit. Its
  top lies in the resampler's transition band (soxr HQ at 16 kHz keeps 7.3 kHz, halves 7.6 kHz
  and removes 7.9 kHz), so a file that is already 16 kHz keeps content there that every other
  encoding of the song loses; the band's valleys empty and its mean contrast moves by ~12
  between-song standard deviations, for a 44.1 kHz WAV as for an MP3.
* ``timbre.spectral_flatness``: the geometric mean of the power spectrum is dominated by the
  nearly empty bins above a codec's or a resampler's low-pass.
* the skewness and kurtosis of the frame levels in dB (``dynamics.rms_db``,
  ``dynamics.loudness_a_db``): a few frames of silence (an MP3 encoder's delay, which the decoder
  does not always remove) are extreme outliers on a dB scale; the same frames make one outlying
  onset in the spectral flux (its skewness and kurtosis).

On the canonical front end (:mod:`merkit.audio.frontend`) those shifts are gone, and what is left is
small everywhere (the largest ratio is 0.26, against 19.9 before it); ``codec-unstable`` also
leaves out the ten further features whose ratio there exceeds 0.02: seven statistics of
spectral-contrast bands 0-5 (mostly their spread over time), the tempogram's peak ratio, and two
statistics of the detected key (``key_change_rate``, one key-relative chroma mean), which jump
when a re-encode tips the key estimate. The threshold was set from the ratios alone (no labels);
dropping them fold by fold from the training songs' re-encodes gives the same agreement
(``4qaed_encoding_agreement.md``).

:class:`DropFeatures` removes such columns inside a pipeline (``svm-own``'s ``exclude_features``
setting), so the features themselves, and every cached vector, stay as they are.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Final

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from merkit.core.errors import ConfigError, DataError

__all__ = [
    "CODEC_SENSITIVE",
    "CODEC_UNSTABLE",
    "DropFeatures",
    "excluded_columns",
    "resolve_patterns",
]

CODEC_SENSITIVE: Final[tuple[str, ...]] = (
    "timbre.spectral_contrast_6.*",
    "timbre.spectral_flatness.*",
    "dynamics.rms_db.skew",
    "dynamics.rms_db.kurtosis",
    "dynamics.loudness_a_db.skew",
    "dynamics.loudness_a_db.kurtosis",
    "timbre.spectral_flux.skew",
    "timbre.spectral_flux.kurtosis",
)
"""Own-feature name patterns (shell-style) that move most with the encoding (see the module)."""

CODEC_UNSTABLE: Final[tuple[str, ...]] = (
    *CODEC_SENSITIVE,
    "timbre.spectral_contrast_0.mean",
    "timbre.spectral_contrast_0.std",
    "timbre.spectral_contrast_1.std",
    "timbre.spectral_contrast_2.std",
    "timbre.spectral_contrast_4.std",
    "timbre.spectral_contrast_5.mean",
    "timbre.spectral_contrast_5.std",
    "rhythm.tempogram_peak_ratio",
    "tonality.key_change_rate",
    "tonality.chroma_rel_05.mean",
)
""":data:`CODEC_SENSITIVE` and the features of the canonical front end (``own-features-canon``)
whose within/between-song variance ratio over 4QAED's 900 songs in six encodings exceeds 0.02
(label-free; see the module)."""

PRESETS: Final[dict[str, tuple[str, ...]]] = {
    "codec-sensitive": CODEC_SENSITIVE,
    "codec-unstable": CODEC_UNSTABLE,
}
"""Named pattern lists an ``exclude_features`` setting may give instead of patterns."""


def resolve_patterns(exclude: str | Sequence[str] | None) -> tuple[str, ...]:
    """Patterns of an ``exclude_features`` setting: a preset name, a pattern or a list of them.

    Raises
    ------
    ConfigError
        For a value that is neither a string nor a list of strings.
    """
    if exclude is None:
        return ()
    if isinstance(exclude, str):
        return PRESETS.get(exclude, (exclude,))
    if not isinstance(exclude, Sequence) or not all(isinstance(p, str) for p in exclude):
        raise ConfigError(
            "setting 'exclude_features' must be a preset "
            f"({', '.join(PRESETS)}), a name pattern or a list of them, not {exclude!r}"
        )
    return tuple(p for item in exclude for p in PRESETS.get(item, (item,)))


def excluded_columns(names: Sequence[str], patterns: Sequence[str]) -> np.ndarray:
    """Indices of the ``names`` matched by any of ``patterns`` (``fnmatch``, case-sensitive).

    Raises
    ------
    ConfigError
        When a pattern matches no name (a typo would otherwise drop nothing, silently).

    Examples
    --------
    >>> excluded_columns(["a.mean", "a.std", "b.mean"], ["a.*"]).tolist()
    [0, 1]
    """
    hits = np.zeros(len(names), dtype=bool)
    for pattern in patterns:
        matched = np.array([fnmatch.fnmatchcase(n, pattern) for n in names], dtype=bool)
        if not matched.any():
            raise ConfigError(f"exclude_features: pattern {pattern!r} matches no feature name")
        hits |= matched
    return np.flatnonzero(hits)


class DropFeatures(TransformerMixin, BaseEstimator):
    """Remove the columns whose names match ``exclude`` (stateless apart from the check).

    Parameters
    ----------
    exclude : str or list of str
        A preset (``"codec-sensitive"``, :data:`CODEC_SENSITIVE`), a shell-style name pattern,
        or a list of them.
    feature_names : list of str, optional
        The name of each input column; default the own features' names
        (:data:`merkit.features.own.OWN_FEATURE_NAMES`).

    Attributes
    ----------
    dropped_ : np.ndarray
        Indices of the removed columns.
    n_features_in_ : int
        Columns seen at fit.
    """

    def __init__(
        self,
        exclude: str | Sequence[str] = "codec-sensitive",
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.exclude = exclude
        self.feature_names = feature_names

    def _names(self) -> list[str]:
        if self.feature_names is not None:
            return list(self.feature_names)
        from merkit.features.own import OWN_FEATURE_NAMES

        return list(OWN_FEATURE_NAMES)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> DropFeatures:
        """Find the columns to drop; ``X`` must have one column per feature name."""
        names = self._names()
        n = np.shape(X)[1]
        if n != len(names):
            raise DataError(
                f"DropFeatures: the input has {n} columns but {len(names)} feature names are "
                "known; give feature_names for another feature vector"
            )
        self.dropped_ = excluded_columns(names, resolve_patterns(self.exclude))
        self.n_features_in_ = n
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``X`` without the dropped columns."""
        check_is_fitted(self, "dropped_")
        X = np.asarray(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"DropFeatures: fitted on {self.n_features_in_} columns, got {X.shape[1]}"
            )
        return np.delete(X, self.dropped_, axis=1)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "dropped_")
        names = list(input_features) if input_features is not None else self._names()
        return np.delete(np.asarray(names, dtype=object), self.dropped_)

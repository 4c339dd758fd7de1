"""Relative arousal and valence within a collection (``merkit predict DIR --relative``).

A model trained on 4QAED's mostly pop/rock clips can place a whole collection of other music
(solo piano, game or film scores) on one side of the emotion plane, e.g. every piano piece "calm".
Within such a collection the *differences* between songs still carry information. Relative mode:

1. derives an arousal and a valence score in [-1, 1] from each song's quadrant probabilities,
   ``arousal = P(Q1) + P(Q2) - P(Q3) - P(Q4)`` and ``valence = P(Q1) + P(Q4) - P(Q2) - P(Q3)``;
2. centres each score on the collection's median and scales it by its robust spread
   (1.4826 x median absolute deviation, a standard deviation for normal data; the standard
   deviation if the MAD is 0, and no scaling if that is 0 too);
3. reassigns each song's quadrant from the signs of its relative scores (arousal >= 0 is high,
   valence >= 0 positive; a song exactly at the median counts as high / positive).

**Assumption**: the collection spans the emotion plane, i.e. roughly as many songs lie above as
below the median on each axis. That is what "relative" means: a folder of only sad songs would
still be split into relatively happier and sadder halves. Hence a minimum of :data:`MIN_FILES`
songs, below which a median says little.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from merkit.core.errors import ConfigError
from merkit.core.labels import HIGH_AROUSAL, POSITIVE_VALENCE, QUADRANT_MEANINGS, QUADRANTS
from merkit.product.prediction import PredictionResult, RelativePlacement

MIN_FILES = 10
"""Fewest predicted songs relative mode accepts."""
MAD_TO_STD = 1.4826


def av_scores(proba: np.ndarray, labels: Sequence[str] = QUADRANTS) -> tuple[np.ndarray, ...]:
    """Arousal and valence scores in [-1, 1] from ``(n, 4)`` quadrant probabilities.

    ``arousal = P(high-arousal quadrants) - P(the others)``, likewise valence.
    """
    proba = np.asarray(proba, dtype=np.float64)
    high = np.array([q in HIGH_AROUSAL for q in labels])
    positive = np.array([q in POSITIVE_VALENCE for q in labels])
    arousal = proba[:, high].sum(axis=1) - proba[:, ~high].sum(axis=1)
    valence = proba[:, positive].sum(axis=1) - proba[:, ~positive].sum(axis=1)
    return arousal, valence


def robust_standardize(values: np.ndarray) -> np.ndarray:
    """``(values - median) / spread``, spread = 1.4826 MAD (std if the MAD is 0, else 1)."""
    values = np.asarray(values, dtype=np.float64)
    centred = values - np.median(values)
    spread = MAD_TO_STD * float(np.median(np.abs(centred)))
    if spread <= 1e-12:
        spread = float(np.std(values))
    return centred / spread if spread > 1e-12 else centred


def quadrant_of(arousal: float, valence: float) -> str:
    """The quadrant of a point of the plane (0 counts as high arousal / positive valence)."""
    if arousal >= 0:
        return "Q1" if valence >= 0 else "Q2"
    return "Q4" if valence >= 0 else "Q3"


def relative_placements(
    proba: np.ndarray, *, min_files: int = MIN_FILES
) -> list[RelativePlacement]:
    """Relative quadrant and scores of every row of ``proba`` (columns Q1..Q4).

    Raises
    ------
    ConfigError
        Fewer than ``min_files`` rows.
    """
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    if len(proba) < min_files:
        raise ConfigError(
            f"--relative needs at least {min_files} predicted songs to place them against each "
            f"other (it assumes the collection spans the emotion plane); got {len(proba)}"
        )
    arousal, valence = av_scores(proba)
    rel_a, rel_v = robust_standardize(arousal), robust_standardize(valence)
    placements = []
    for a, v, ra, rv in zip(arousal, valence, rel_a, rel_v, strict=True):
        quadrant = quadrant_of(ra, rv)
        placements.append(
            RelativePlacement(
                quadrant=quadrant,
                meaning=QUADRANT_MEANINGS[quadrant],
                arousal="high" if ra >= 0 else "low",
                valence="positive" if rv >= 0 else "negative",
                arousal_score=float(a),
                valence_score=float(v),
                relative_arousal=float(ra),
                relative_valence=float(rv),
            )
        )
    return placements


def with_relative(
    results: Sequence[PredictionResult], *, min_files: int = MIN_FILES
) -> list[PredictionResult]:
    """``results`` with :attr:`PredictionResult.relative` filled in, placed against each other.

    Raises
    ------
    ConfigError
        Fewer than ``min_files`` results.
    """
    proba = np.array([[r.probabilities[q] for q in QUADRANTS] for r in results]).reshape(-1, 4)
    placements = relative_placements(proba, min_files=min_files)
    return [r.model_copy(update={"relative": p}) for r, p in zip(results, placements, strict=True)]


__all__ = [
    "MIN_FILES",
    "av_scores",
    "quadrant_of",
    "relative_placements",
    "robust_standardize",
    "with_relative",
]

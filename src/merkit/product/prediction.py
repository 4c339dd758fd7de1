"""What a prediction returns: typed, JSON-serialisable results of :mod:`merkit.product.predict`.

``PredictionResult.model_json_schema()`` gives the JSON schema of ``merkit predict --format json``
items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from merkit.core.labels import HIGH_AROUSAL, POSITIVE_VALENCE, QUADRANT_MEANINGS
from merkit.estimators.aggregation import mean_proba

SILENCE_DBFS = -60.0
"""Raw RMS level below which audio counts as silent (the answer is flagged unreliable)."""


class SegmentPrediction(BaseModel):
    """The model's answer for one window of a track."""

    model_config = ConfigDict(frozen=True)

    start_s: float = Field(description="Window start in seconds from the beginning of the track")
    end_s: float = Field(description="Window end in seconds")
    quadrant: str = Field(description="Most probable quadrant of this window, 'Q1'..'Q4'")
    meaning: str = Field(description="Plain words for the quadrant, e.g. 'happy/excited'")
    probabilities: dict[str, float] = Field(description="P(Q1)..P(Q4) for this window (sum 1)")
    silent: bool = Field(
        False, description="Raw level below -60 dBFS RMS: left out of the track's average"
    )


class RelativePlacement(BaseModel):
    """Where a song lies relative to the rest of its collection (``merkit predict --relative``,
    :mod:`merkit.product.relative`)."""

    model_config = ConfigDict(frozen=True)

    quadrant: str = Field(description="Quadrant from the signs of the relative scores")
    meaning: str = Field(description="Plain words for that quadrant")
    arousal: Literal["high", "low"] = Field(description="Above or below the collection's median")
    valence: Literal["positive", "negative"] = Field(
        description="Above or below the collection's median"
    )
    arousal_score: float = Field(description="P(Q1) + P(Q2) - P(Q3) - P(Q4)")
    valence_score: float = Field(description="P(Q1) + P(Q4) - P(Q2) - P(Q3)")
    relative_arousal: float = Field(
        description="(arousal_score - collection median) / (1.4826 MAD of the collection)"
    )
    relative_valence: float = Field(description="As relative_arousal, for valence")


class PredictionResult(BaseModel):
    """The model's answer for one song (a file or a waveform).

    ``PredictionResult.model_json_schema()`` gives the JSON schema of ``merkit predict --format
    json`` items.
    """

    model_config = ConfigDict(frozen=True)

    path: str | None = Field(description="The audio file, or null for a waveform")
    quadrant: str = Field(description="Most probable quadrant, 'Q1'..'Q4'")
    meaning: str = Field(description="Plain words for the quadrant, e.g. 'calm/serene'")
    probabilities: dict[str, float] = Field(
        description="P(Q1)..P(Q4): mean of the window probabilities (sum 1)"
    )
    arousal: Literal["high", "low"] = Field(description="'high' when P(Q1)+P(Q2) >= 0.5")
    valence: Literal["positive", "negative"] = Field(
        description="'positive' when P(Q1)+P(Q4) >= 0.5"
    )
    p_high_arousal: float = Field(description="P(Q1) + P(Q2)")
    p_positive_valence: float = Field(description="P(Q1) + P(Q4)")
    confidence: float = Field(description="Probability of the predicted quadrant")
    duration_s: float = Field(description="Length of the audio in seconds")
    n_windows: int = Field(description="Windows the track was cut into")
    reliable: bool = Field(description="False when the answer should not be trusted (silence)")
    warnings: list[str] = Field(default_factory=list, description="Why, in plain words")
    segments: list[SegmentPrediction] | None = Field(
        None, description="Per-window answers, when requested"
    )
    relative: RelativePlacement | None = Field(
        None, description="Placement within the predicted collection, with --relative"
    )


class PredictionFailure(BaseModel):
    """A file that could not be predicted, with the one-line reason."""

    model_config = ConfigDict(frozen=True)

    path: str
    error: str


def _summary(probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    probs = {q: float(p) for q, p in zip(labels, probabilities, strict=True)}
    best = labels[int(np.argmax(probabilities))]
    return {"quadrant": best, "probabilities": probs}


def song_result(
    path: str | None,
    window_proba: np.ndarray,
    spans: list[tuple[float, float, bool]],
    duration_s: float,
    level_dbfs: float,
    labels: Sequence[str],
    label_meanings: Mapping[str, str],
    *,
    segments: bool,
) -> PredictionResult:
    """A track's :class:`PredictionResult` from its windows' probabilities.

    ``spans`` holds each window's (start s, end s, silent); silent windows are left out of the
    average unless every window is silent, and a track whose RMS level ``level_dbfs`` is below
    :data:`SILENCE_DBFS` is flagged unreliable.
    """
    meanings = {**QUADRANT_MEANINGS, **label_meanings}
    warnings: list[str] = []
    reliable = True
    level = level_dbfs
    if level < SILENCE_DBFS:
        reliable = False
        shown = "digital silence" if level == -math.inf else f"RMS {level:.1f} dBFS"
        warnings.append(
            f"the audio is silent or nearly so ({shown}, below {SILENCE_DBFS:g} dBFS): "
            "the answer is not reliable"
        )
    silent = np.array([s for _, _, s in spans])
    use = ~silent if (silent.any() and not silent.all()) else np.ones(len(spans), bool)
    if not use.all():
        warnings.append(
            f"{int((~use).sum())} of {len(spans)} windows are silent and were left out of "
            "the average"
        )
    proba = mean_proba(window_proba[use])  # the segment methods' song-level rule too
    proba = proba / proba.sum()
    summary = _summary(proba, labels)
    p = summary["probabilities"]
    p_high = sum(p[q] for q in HIGH_AROUSAL if q in p)
    p_pos = sum(p[q] for q in POSITIVE_VALENCE if q in p)
    segment_list = None
    if segments:
        segment_list = []
        for (start, end, quiet), row in zip(spans, window_proba, strict=True):
            seg = _summary(row, labels)
            segment_list.append(
                SegmentPrediction(
                    start_s=round(start, 3),
                    end_s=round(end, 3),
                    meaning=meanings.get(seg["quadrant"], ""),
                    silent=bool(quiet),
                    **seg,
                )
            )
    return PredictionResult(
        path=path,
        quadrant=summary["quadrant"],
        meaning=meanings.get(summary["quadrant"], ""),
        probabilities=p,
        arousal="high" if p_high >= 0.5 else "low",
        valence="positive" if p_pos >= 0.5 else "negative",
        p_high_arousal=p_high,
        p_positive_valence=p_pos,
        confidence=float(proba.max()),
        duration_s=round(duration_s, 3),
        n_windows=len(spans),
        reliable=reliable,
        warnings=warnings,
        segments=segment_list,
    )


__all__ = [
    "SILENCE_DBFS",
    "PredictionFailure",
    "PredictionResult",
    "RelativePlacement",
    "SegmentPrediction",
    "song_result",
]

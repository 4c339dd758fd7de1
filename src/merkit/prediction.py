"""What a prediction returns: typed, JSON-serialisable results of :mod:`merkit.predict`.

``PredictionResult.model_json_schema()`` gives the JSON schema of ``merkit predict --format json``
items.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
    :mod:`merkit.relative`)."""

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


__all__ = ["PredictionFailure", "PredictionResult", "RelativePlacement", "SegmentPrediction"]

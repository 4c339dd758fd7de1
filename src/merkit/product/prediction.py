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

MIXED_BELOW = 0.5
"""Top probability under which an answer is called mixed, for a model whose directory gives no
threshold of its own (a shipped model's ``calibration.json`` holds one chosen from out-of-fold
predictions: :mod:`merkit.estimators.calibration`)."""

UNSURE_SIDE_BELOW = 0.21
"""For a model with axis models: an answer whose final P(high arousal) or P(positive valence)
lies less than this from 0.5 is flagged unreliable (the song lies between two quadrants). Chosen
on 4QAED leave-one-genre-out (the candidate signal with the highest AUROC for wrong answers,
its threshold flagging 15 % of the held-out songs) and validated once on MUSIFEAST-17:
``benchmarks/results/reliability_signals.md``."""


def unsure_sides(
    quadrant: str,
    p_high: float,
    p_pos: float,
    meanings: Mapping[str, str],
    below: float = UNSURE_SIDE_BELOW,
) -> str | None:
    """A plain-words reason when ``quadrant``'s arousal or valence side is within ``below`` of
    an even chance (``p_high``, ``p_pos`` the final side probabilities), else None."""
    if quadrant not in QUADRANT_MEANINGS:
        return None
    high, pos = quadrant in HIGH_AROUSAL, quadrant in POSITIVE_VALENCE
    unsure = []
    if abs(p_high - 0.5) < below:
        unsure.append(("arousal", f"P(high arousal) {p_high:.2f}", (not high, pos)))
    if abs(p_pos - 0.5) < below:
        unsure.append(("valence", f"P(positive valence) {p_pos:.2f}", (high, not pos)))
    if not unsure:
        return None
    by_sides = {(q in HIGH_AROUSAL, q in POSITIVE_VALENCE): q for q in QUADRANT_MEANINGS}
    others = [by_sides[sides] for _, _, sides in unsure]
    if len(unsure) == 2:
        others.append(by_sides[(not high, not pos)])
    axes = " and ".join(axis for axis, _, _ in unsure)
    shown = ", ".join(text for _, text, _ in unsure)
    named = [f"{q} ({meanings.get(q, '')})" for q in sorted([quadrant, *others])]
    between = ", ".join(named[:-1]) + " and " + named[-1]
    return (
        f"the song lies between the training songs of {between}: its {axes} is close to even "
        f"({shown}): the answer is not reliable"
    )


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
    arousal_score: float = Field(
        description="2 P(high arousal) - 1 of the arousal model, or P(Q1) + P(Q2) - P(Q3) - P(Q4) "
        "for a model without axis models"
    )
    valence_score: float = Field(
        description="2 P(positive valence) - 1 of the valence model, or "
        "P(Q1) + P(Q4) - P(Q2) - P(Q3)"
    )
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
    arousal: Literal["high", "low"] = Field(description="'high' when p_high_arousal >= 0.5")
    valence: Literal["positive", "negative"] = Field(
        description="'positive' when p_positive_valence >= 0.5"
    )
    p_high_arousal: float = Field(
        description="P(high arousal): with axis models, the quadrant and arousal models "
        "combined (merkit.estimators.axes.combine); else P(Q1) + P(Q2)"
    )
    p_positive_valence: float = Field(
        description="P(positive valence): as p_high_arousal; else P(Q1) + P(Q4)"
    )
    confidence: float = Field(description="Probability of the predicted quadrant")
    mixed: bool = Field(
        False,
        description="The song lies between two quadrants: the top probability is below the "
        "model's threshold, or the quadrant disagrees with the arousal/valence sides",
    )
    runner_up: str | None = Field(
        None, description="The second most probable quadrant, when the answer is mixed"
    )
    summary: str = Field(
        "",
        description="The answer in plain words, e.g. 'between Q1 happy/excited and Q3 "
        "sad/melancholic' for a mixed one",
    )
    duration_s: float = Field(description="Length of the audio in seconds")
    n_windows: int = Field(description="Windows the track was cut into")
    reliable: bool = Field(
        description="False when the answer should not be trusted (silence, a constant level, a "
        "steady tone, a quadrant its own arousal/valence answer contradicts, for models with axis "
        "models an arousal or valence side close to even, music unlike the training songs)"
    )
    quadrant_model: str | None = Field(
        None,
        description="The quadrant estimator's own most probable quadrant (argmax of "
        "probabilities), for models with axis models; quadrant follows the axes",
    )
    p_high_arousal_axis: float | None = Field(
        None, description="The arousal model's own P(high arousal), for models with one"
    )
    p_positive_valence_axis: float | None = Field(
        None, description="The valence model's own P(positive valence), for models with one"
    )
    familiarity: float | None = Field(
        None,
        description="Distance to the training songs in the model's input space over its "
        "calibrated threshold: <= 1 like the training music, > 1 unlike it",
    )
    familiar: bool | None = Field(
        None, description="familiarity <= 1 (null for models without a familiarity measure)"
    )
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


def mixed_answer(
    probabilities: Mapping[str, float],
    arousal: str,
    valence: str,
    meanings: Mapping[str, str],
    *,
    mixed_below: float = MIXED_BELOW,
) -> tuple[bool, str | None, str]:
    """Whether an answer is mixed, its runner-up quadrant and the answer in plain words.

    Mixed: the top probability is below ``mixed_below``, or the top quadrant's own sides (Q1 high
    arousal and positive valence, ...) disagree with ``arousal``/``valence`` (the sides the
    probabilities sum to, or a per-axis model's).
    """
    ranked = sorted(probabilities, key=lambda q: -probabilities[q])
    top = ranked[0]
    top_arousal = "high" if top in HIGH_AROUSAL else "low"
    top_valence = "positive" if top in POSITIVE_VALENCE else "negative"
    disagrees = top in QUADRANT_MEANINGS and (top_arousal, top_valence) != (arousal, valence)
    mixed = probabilities[top] < mixed_below or disagrees
    words = f"{top} {meanings.get(top, '')}".strip()
    if not mixed or len(ranked) < 2:
        return False, None, words
    second = ranked[1]
    return True, second, f"between {words} and {second} {meanings.get(second, '')}".strip()


def _summary(probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    probs = {q: float(p) for q, p in zip(labels, probabilities, strict=True)}
    best = labels[int(np.argmax(probabilities))]
    return {"quadrant": best, "probabilities": probs}


def _contradiction(quadrant: str, p_high: float, p_pos: float) -> str:
    """Which side answers (``"arousal"``, ``"valence"``) the quadrant contradicts, joined."""
    sides = []
    if quadrant in QUADRANT_MEANINGS and (quadrant in HIGH_AROUSAL) != (p_high >= 0.5):
        sides.append(f"arousal ({'high' if p_high >= 0.5 else 'low'})")
    if quadrant in QUADRANT_MEANINGS and (quadrant in POSITIVE_VALENCE) != (p_pos >= 0.5):
        sides.append(f"valence ({'positive' if p_pos >= 0.5 else 'negative'})")
    return " and ".join(sides)


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
    window_axes: np.ndarray | None = None,
    rule: str = "joint",
    window_familiarity: np.ndarray | None = None,
    mixed_below: float = MIXED_BELOW,
    unreliable: Sequence[str] = (),
) -> PredictionResult:
    """A track's :class:`PredictionResult` from its windows' probabilities.

    ``spans`` holds each window's (start s, end s, silent); silent windows are left out of the
    average unless every window is silent, and a track whose RMS level ``level_dbfs`` is below
    :data:`SILENCE_DBFS` is flagged unreliable, as is one with ``unreliable`` reasons (e.g. from
    :class:`merkit.audio.signal_checks.SignalCheck`) and an answer whose quadrant lies on the other
    side of its own arousal or valence answer (probabilities spread over opposite quadrants).
    ``window_axes`` (per window ``P(high arousal)``, ``P(positive valence)`` of the axis models)
    are averaged like the probabilities and combined with them by ``rule``
    (:func:`merkit.estimators.axes.combine`), whose quadrant lies on its axes by construction (the
    contradiction check is then not needed);
    an answer whose final arousal or valence is within :data:`UNSURE_SIDE_BELOW` of an even
    chance is flagged unreliable (:func:`unsure_sides`);
    ``window_familiarity`` (per window distance over threshold,
    :class:`merkit.estimators.axes.Familiarity`) gives the track's median, and a track above 1 is
    flagged unreliable.
    :func:`mixed_answer` with ``mixed_below`` says whether the answer is mixed.
    """
    meanings = {**QUADRANT_MEANINGS, **label_meanings}
    warnings: list[str] = list(unreliable)
    reliable = not warnings
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
    sides = None if window_axes is not None else _contradiction(summary["quadrant"], p_high, p_pos)
    if sides:
        reliable = False
        spread = ", ".join(f"{q} {100 * v:.0f} %" for q, v in p.items())
        warnings.append(
            f"the model is unsure: its most probable quadrant {summary['quadrant']} "
            f"({meanings.get(summary['quadrant'], '')}) disagrees with its {sides} answer "
            f"({spread}): the answer is not reliable"
        )
    extra: dict[str, Any] = {}
    quadrant, confidence = summary["quadrant"], float(proba.max())
    if window_axes is not None:
        from merkit.estimators.axes import combine

        axes = np.asarray(window_axes, dtype=np.float64)[use].mean(axis=0)
        codes, final = combine(proba[None], axes[None], rule, labels)  # type: ignore[arg-type]
        quadrant = labels[int(codes[0])]
        p_high, p_pos = float(final[0, 0]), float(final[0, 1])
        confidence = float(p[quadrant])
        extra.update(
            quadrant_model=summary["quadrant"],
            p_high_arousal_axis=float(axes[0]),
            p_positive_valence_axis=float(axes[1]),
        )
        reason = unsure_sides(quadrant, p_high, p_pos, meanings)
        if reason:
            reliable = False
            warnings.append(reason)
    if window_familiarity is not None:
        score = float(np.median(np.asarray(window_familiarity, dtype=np.float64)[use]))
        extra.update(familiarity=score, familiar=bool(score <= 1.0))
        if score > 1.0:
            reliable = False
            warnings.append(
                f"the song is unlike the music the model learned from (its distance to the "
                f"training songs is {score:.1f} times what held-out training songs reach): "
                "the answer is not reliable"
            )
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
    arousal = "high" if p_high >= 0.5 else "low"
    valence = "positive" if p_pos >= 0.5 else "negative"
    mixed, runner_up, words = mixed_answer(p, arousal, valence, meanings, mixed_below=mixed_below)
    return PredictionResult(
        path=path,
        quadrant=quadrant,
        meaning=meanings.get(quadrant, ""),
        probabilities=p,
        arousal=arousal,
        valence=valence,
        p_high_arousal=p_high,
        p_positive_valence=p_pos,
        confidence=confidence,
        mixed=mixed,
        runner_up=runner_up,
        summary=words,
        duration_s=round(duration_s, 3),
        n_windows=len(spans),
        reliable=reliable,
        warnings=warnings,
        segments=segment_list,
        **extra,
    )


__all__ = [
    "MIXED_BELOW",
    "SILENCE_DBFS",
    "UNSURE_SIDE_BELOW",
    "PredictionFailure",
    "PredictionResult",
    "RelativePlacement",
    "SegmentPrediction",
    "mixed_answer",
    "song_result",
    "unsure_sides",
]

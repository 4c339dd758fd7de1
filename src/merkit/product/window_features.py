"""A model's inputs for several windows of a track at once: each window's front end computed once
and shared, each network run once on the whole batch.

Training computes a song's inputs one representation at a time
(:class:`merkit.representations.extract.SongJobs`): each input resamples and peak-normalises the
song, a ``*-canon`` input then runs the canonical front end (:func:`merkit.audio.frontend.
canonical`) and its inner function. The default model's two inputs (``own-features-canon``,
``crnn-tags3-canon``) thus ran the same front end twice, and the three CRNN taggers ran on one
window at a time. Here the predictor plans the computation explicitly:

1. per window, the audio at each input rate (:func:`merkit.audio.decode.conform`) once;
2. per window, the canonical front end once per distinct front-end setting, shared by the inputs
   that read it (an input that may change its audio in place gets a copy);
3. per input, its function on every window of the batch: the representation's ``batch_fn``
   where it has one (the CRNN taggers: one forward pass of each network over the batch), else
   its ``fn`` window by window;
4. each value rounded through the model's storage dtype, as training stored it.

The values equal :class:`~merkit.representations.extract.SongJobs`' up to float rounding of the
batched networks (``tests/test_window_features.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from merkit.audio.windows import Window
from merkit.core.threads import one_blas_thread
from merkit.representations.registry import CANONICAL_FRONT_DEFAULTS, FRONT_END_KEYS


@dataclass(frozen=True)
class InputPlan:
    """How one model input is computed from a window.

    Attributes
    ----------
    name : str
        The input's name in the manifest.
    sr : int
        The rate the window is conformed to.
    front : tuple of (str, value) pairs, or None
        The canonical front end's settings (``None``: the conformed audio itself).
    rep : Representation
        The function run on that audio (a ``*-canon`` input's inner representation).
    params : dict
        Its parameters.
    dtype : str
        The storage dtype values are rounded through.
    """

    name: str
    sr: int
    front: tuple[tuple[str, Any], ...] | None
    rep: Any
    params: dict[str, Any]
    dtype: str


def plan_inputs(inputs: Sequence[Any]) -> list[InputPlan] | None:
    """The plan of a manifest's inputs (``InputSpec``s), or ``None`` where one of them is not a
    representation this registry computes by its own registered function (then the predictor
    uses training's :class:`~merkit.representations.extract.SongJobs` unchanged)."""
    from merkit.representations.registry import REPRESENTATIONS, canonical_representation

    plans = []
    for spec in inputs:
        rep = REPRESENTATIONS.get(spec.name, None)
        if spec.kind != "representation" or spec.sr is None or rep is None:
            return None
        if spec.fn is not None and spec.fn != rep.reference:
            return None
        params = dict(spec.params)
        front: tuple[tuple[str, Any], ...] | None = None
        if rep.fn is canonical_representation:
            inner = REPRESENTATIONS.get(str(params.pop("inner", "")), None)
            if inner is None or inner.fn is canonical_representation:
                return None
            settings = {**CANONICAL_FRONT_DEFAULTS, **{k: params.pop(k) for k in FRONT_END_KEYS
                                                   if k in params}}  # fmt: skip
            front = tuple(sorted(settings.items()))
            rep = inner
        plans.append(
            InputPlan(spec.name, int(spec.sr), front, rep, params, spec.dtype or "float32")
        )
    return plans


@one_blas_thread  # as training's SongJob.value computes (merkit.core.threads)
def batch_features(
    plans: Sequence[InputPlan], windows: Sequence[Window], seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """Every window's inputs, ``{input name: float32 value}`` per window, in window order.

    Parameters
    ----------
    plans : sequence of InputPlan
        From :func:`plan_inputs`.
    windows : sequence of Window
        Windows of one track (the batch).
    seed : int
        The model's seed (a stochastic representation gets the per-window seed training's
        extraction gives it).
    """
    from merkit.audio.decode import conform
    from merkit.audio.frontend import canonical
    from merkit.representations.extract import song_seed

    if not windows:
        return []
    stochastic = any(plan.rep.stochastic for plan in plans)
    seeds = [song_seed(w.key, seed) if stochastic else 0 for w in windows]
    # What each window's audio feeds: the raw conformed audio of a rate, or a front end.
    sources = [(plan.sr, plan.front) for plan in plans]
    audio: list[list[np.ndarray]] = [[] for _ in plans]
    for window in windows:
        waves: dict[int, np.ndarray] = {}
        fronts: dict[tuple[int, Any], np.ndarray] = {}
        readers = {sr: sum(1 for s in set(sources) if s[0] == sr) for sr in {p.sr for p in plans}}
        for i, (sr, front) in enumerate(sources):
            if sr not in waves:
                waves[sr] = conform(window.audio, window.sr, sr)
            if front is None:
                audio[i].append(waves[sr])
                continue
            if (sr, front) not in fronts:
                y = waves[sr] if readers[sr] == 1 else waves[sr].copy()
                fronts[(sr, front)] = canonical(y, sr, **dict(front))
            audio[i].append(fronts[(sr, front)])
    # A function may change its input in place: every use but the last gets its own copy.
    for w in range(len(windows)):
        seen: set[int] = set()
        for i in reversed(range(len(plans))):
            if id(audio[i][w]) in seen:
                audio[i][w] = audio[i][w].copy()
            seen.add(id(audio[i][w]))
    values: list[list[np.ndarray]] = []
    for plan, ys in zip(plans, audio, strict=True):
        fn = plan.rep.batch_fn
        if fn is not None and len(ys) > 1:
            out = fn(ys, plan.sr, seeds=seeds, **plan.params)
        else:
            run = plan.rep.fn
            out = [run(y, plan.sr, seed=s, **plan.params) for y, s in zip(ys, seeds, strict=True)]
        values.append(
            [np.asarray(v).astype(plan.dtype).astype(np.float32) for v in out]  # as stored
        )
    return [{plan.name: values[i][w] for i, plan in enumerate(plans)} for w in range(len(windows))]


SPAN_MARGIN = 4 * 6 * 256
"""Samples of audio kept around a span's crops (4 steps of its first two pooling blocks)."""

GAIN_TOLERANCE_DB = 1.0
"""Consecutive windows whose peaks lie within this many dB of the first's share one CRNN span
(and its one gain); a window alone in its group is computed on its own."""

ONEPASS_COUNTS = {"windows": 0, "exact": 0}
"""Windows :func:`onepass_features` was given, and those it computed on their own (for
benchmarks)."""

ONEPASS_WINDOWS = 8
"""Windows per one-pass span: 8 windows of 30 s at a 15 s hop span 135 s, whose CRNN conv blocks
cost 135 s of audio instead of 8 x 29 s (0.58x); the span's working memory is that of a batch of
four windows."""


def _span(windows: Sequence[Window]) -> tuple[np.ndarray, list[int]] | None:
    """The audio the windows cut from (at their rate) and each window's start in it, or ``None``
    where they are not equal-length, overlapping or touching cuts of one stretch of a track."""
    sr, n = windows[0].sr, len(windows[0].audio)
    if any(w.sr != sr or len(w.audio) != n for w in windows):
        return None
    origin = round(windows[0].start_s * sr)
    starts = [round(w.start_s * sr) - origin for w in windows]
    if any(b <= a or b - a > n for a, b in itertools.pairwise(starts)):
        return None
    span = np.empty(starts[-1] + n, dtype=np.float32)
    for w, s in zip(windows, starts, strict=True):
        span[s : s + n] = w.audio
    # Every window must read back as itself (the rounding of its start placed it right).
    if not all(
        np.array_equal(span[s : s + n], w.audio) for w, s in zip(windows, starts, strict=True)
    ):
        return None
    return span, starts


def _gain(y: np.ndarray, percentile: float, dbfs: float) -> float:
    """The factor :func:`merkit.audio.decode.level_normalize` scales ``y`` by."""
    level = (
        float(np.percentile(np.abs(y), percentile))
        if percentile < 100
        else float(np.max(np.abs(y)))
    )
    return 0.0 if level == 0.0 else 10.0 ** (dbfs / 20.0) / level


@one_blas_thread
def onepass_features(
    plans: Sequence[InputPlan], windows: Sequence[Window], seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """:func:`batch_features` of overlapping windows of one track, the expensive steps done once
    per second of audio instead of once per window (not exact; the default for long tracks only
    where it agrees, see ``benchmarks/results/predict_onepass_agreement.md``).

    1. The windows' span is resampled once per input rate and band-limited once per front end
       (the soxr round trip is linear and time-invariant: a window's slice differs from its own
       round trip only within the filter's few-ms reach of its ends).
    2. A window's level normalisation is a gain applied to its slice (exact); a window whose
       ends the front end would trim goes through :func:`batch_features` on its own (exact).
    3. Inputs without a front end, and front-end inputs other than the CRNN taggers (merkit's
       own features), are computed per window from those slices.
    4. The CRNN taggers' log-mel is computed once over the span, the first conv blocks run once
       over it, and each window's last blocks, GRU and head read the slice nearest its start
       (:func:`merkit.transfer.pooled.crnn_span_outputs`). The span is scaled by one gain, the
       geometric mean of its windows' gains: a window's mel differs from its own by a constant
       number of dB, the log of its gain over that one.
    """
    from merkit.audio.decode import conform
    from merkit.audio.frontend import band_limit
    from merkit.representations.extract import song_seed
    from merkit.transfer.pooled import crnn_conv_batch, crnn_span_outputs
    from merkit.transfer.won_crnn import CROP_SAMPLES, HOP, won_logmel
    from merkit.transfer.won_crnn import SR as CRNN_SR

    if len(windows) < 2:
        ONEPASS_COUNTS["windows"] += len(windows)
        ONEPASS_COUNTS["exact"] += len(windows)
        return batch_features(plans, windows, seed)
    found = _span(windows)
    if found is None:
        return batch_features(plans, windows, seed)
    span, starts = found
    sr, n = windows[0].sr, len(windows[0].audio)
    stochastic = any(plan.rep.stochastic for plan in plans)
    seeds = [song_seed(w.key, seed) if stochastic else 0 for w in windows]
    out: list[dict[str, np.ndarray]] = [{} for _ in windows]
    # Windows the front end would trim: exact, all their inputs at once.
    exact: set[int] = set()
    conformed: dict[int, tuple[np.ndarray, list[int], int]] = {}
    for plan in plans:
        r = plan.sr
        if r not in conformed:
            if (n * r) % sr:
                return batch_features(plans, windows, seed)
            # A window starting between two samples at rate r (a last window anchored at the
            # track's end) is computed on its own.
            exact.update(i for i, s in enumerate(starts) if (s * r) % sr)
            y = conform(span, sr, r, normalize=False)
            conformed[r] = (y, [s * r // sr for s in starts], n * r // sr)
        if plan.front is not None and dict(plan.front).get("trim_db") is not None:
            y, at, m = conformed[r]
            ratio = 10.0 ** (-float(dict(plan.front)["trim_db"]) / 20.0)
            for i, a in enumerate(at):
                w = np.abs(y[a : a + m])
                if w.size < m or min(w[0], w[-1]) < float(w.max()) * ratio:
                    exact.add(i)
    # The span's networks see one gain per group: consecutive windows whose peaks lie within
    # GAIN_TOLERANCE_DB of the group's first; a window alone in its group is computed on its own.
    groups: list[list[int]] = []
    crnn = [p for p in plans if p.front is not None and p.rep.batch_fn is crnn_conv_batch]
    if crnn:
        y, at, m = conformed[crnn[0].sr]
        reference = 0.0
        for i, a in enumerate(at):
            peak = float(np.max(np.abs(y[a : a + m])))
            if i in exact or peak == 0.0:
                exact.add(i)
                continue
            level = 20.0 * np.log10(peak)
            if groups and groups[-1][-1] == i - 1 and abs(level - reference) <= GAIN_TOLERANCE_DB:
                groups[-1].append(i)
            else:
                groups.append([i])
                reference = level
        exact.update(g[0] for g in groups if len(g) == 1)
        groups = [g for g in groups if len(g) > 1]
    rest = [i for i in range(len(windows)) if i not in exact]
    ONEPASS_COUNTS["windows"] += len(windows)
    ONEPASS_COUNTS["exact"] += len(windows) - (len(rest) if len(rest) >= 2 else 0)
    if len(rest) < 2:
        return batch_features(plans, windows, seed)
    if exact:
        for i, value in zip(
            sorted(exact),
            batch_features(plans, [windows[i] for i in sorted(exact)], seed),
            strict=True,
        ):
            out[i] = value
    banded: dict[tuple[int, Any], np.ndarray] = {}
    for plan in plans:
        y, at, m = conformed[plan.sr]
        if plan.front is None:
            ys = [conform(windows[i].audio, sr, plan.sr) for i in rest]  # as batch_features
        else:
            front = dict(plan.front)
            if (plan.sr, plan.front) not in banded:
                band = front.get("band_sr")
                banded[(plan.sr, plan.front)] = (
                    y if band is None else band_limit(y, plan.sr, int(band))
                )
            b = banded[(plan.sr, plan.front)]
            pct, dbfs = float(front["level_percentile"]), float(front["level_dbfs"])
            gains = [_gain(b[at[i] : at[i] + m], pct, dbfs) for i in rest]
            if (
                plan.rep.batch_fn is crnn_conv_batch
                and plan.sr == CRNN_SR
                and m >= CROP_SAMPLES
                and min(gains) > 0.0
            ):
                crop = (m - CROP_SAMPLES) // 2
                params = {k: v for k, v in plan.params.items() if k in
                          ("checkpoints", "output", "log_odds", "precision")}  # fmt: skip
                gain_of = dict(zip(rest, gains, strict=True))
                for group in groups:
                    # A margin of real audio before the first crop and after the last (the
                    # windows hold 0.5 s around their crops), a whole number of pooling steps:
                    # the first window's slice starts on its own first frame, no window's slice
                    # runs past the span's end.
                    margin = min(SPAN_MARGIN, crop)
                    first = at[group[0]] + crop - margin
                    last = at[group[-1]] + crop + CROP_SAMPLES + margin
                    gain = float(np.exp(np.mean(np.log([gain_of[i] for i in group]))))
                    piece = (b[first:last] * np.float32(gain)).astype(np.float32)
                    logmel = won_logmel(piece, None).astype(np.float16).astype(np.float32)
                    values = crnn_span_outputs(
                        logmel, [(at[i] + crop - first) / HOP for i in group], **params
                    )
                    for i, v in zip(group, values, strict=True):
                        out[i][plan.name] = np.asarray(v).astype(plan.dtype).astype(np.float32)
                continue
            ys = [
                (b[at[i] : at[i] + m] * np.float32(g)).astype(np.float32)
                for i, g in zip(rest, gains, strict=True)
            ]
        run = plan.rep.fn
        for i, yy in zip(rest, ys, strict=True):
            v = run(yy, plan.sr, seed=seeds[i], **plan.params)
            out[i][plan.name] = np.asarray(v).astype(plan.dtype).astype(np.float32)
    return [{plan.name: out[w][plan.name] for plan in plans} for w in range(len(windows))]


__all__ = [
    "FRONT_END_KEYS",
    "GAIN_TOLERANCE_DB",
    "ONEPASS_COUNTS",
    "ONEPASS_WINDOWS",
    "InputPlan",
    "batch_features",
    "onepass_features",
    "plan_inputs",
]

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

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from merkit.audio.windows import Window
from merkit.core.threads import one_blas_thread

FRONT_END_KEYS = ("band_sr", "trim_db", "level_percentile", "level_dbfs")
"""Parameters of :func:`merkit.representations.registry.canonical_representation` that set the
front end; the others belong to the inner representation."""


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


def _canonical_defaults() -> dict[str, Any]:
    from merkit.representations.registry import canonical_representation

    signature = inspect.signature(canonical_representation)
    return {
        k: p.default
        for k, p in signature.parameters.items()
        if k in FRONT_END_KEYS and p.default is not inspect.Parameter.empty
    }


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
            settings = {**_canonical_defaults(), **{k: params.pop(k) for k in FRONT_END_KEYS
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


__all__ = ["FRONT_END_KEYS", "InputPlan", "batch_features", "plan_inputs"]

"""Predict the quadrant of any song with a trained model: whole tracks, bounded memory, typed
results.

How a track becomes one answer
------------------------------
1. The file is decoded in blocks (``soundfile.SoundFile.blocks``), mixed to mono and resampled
   block by block with a streaming soxr resampler (HQ, the filter :func:`merkit.audio.load_audio`
   uses), once per sample rate the model's inputs need. Formats libsndfile cannot stream (m4a
   through audioread) are decoded whole with :func:`merkit.audio.load_audio` instead.
2. Windows of the model's window length (the training clips' length, e.g. 30 s) start every hop
   (e.g. 15 s). If more than ``min(1 s, hop/2)`` of the track is left after the last full window, a
   last window ends exactly at the track's end. A track shorter than one window is one window,
   padded the way the representation pads short clips; a track shorter than one second is refused.
3. Each window is peak-normalised *on its own* to −0.1 dBFS. Training clips were peak-normalised
   as whole clips, and a window is the prediction-time counterpart of one clip, so a clip no
   longer than a window gets exactly the input it would have had in training.
4. Window representations are computed as in training (stored parameters, rounded through the
   cache dtype), the estimator runs on small batches of windows, and the track's probabilities are
   the mean over windows. Windows whose raw level is below −60 dBFS RMS are left out of the mean
   unless every window is that quiet.

Only the audio of the windows still to come (about one window plus one hop plus one decoding block
per sample rate) and one batch of window features are held at a time, so memory does not grow with
the track's length.

A track whose raw (pre-normalisation) RMS is below −60 dBFS is silent or nearly so: it still gets an
answer, flagged ``reliable=False`` with a warning.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from merkit.audio import load_audio, peak_normalize
from merkit.errors import AudioError, ConfigError, MerkitError, ModelError
from merkit.export import InputSpec, ModelManifest
from merkit.labels import HIGH_AROUSAL, POSITIVE_VALENCE

SILENCE_DBFS = -60.0
"""Raw RMS level below which audio counts as silent (the answer is flagged unreliable)."""

MIN_DURATION_S = 1.0
"""Shortest audio merkit predicts."""

BLOCK_FRAMES = 1 << 16
"""Frames decoded per block (about 1.5-4 s of audio at common rates)."""

BATCH_WINDOWS = 4
"""Windows whose features are computed before the estimator runs once on them."""

MAX_TAIL_S = 1.0
"""Audio after the last full window that may be left without a window of its own."""


# ---------------------------------------------------------------------------------------------
# Results


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


class PredictionFailure(BaseModel):
    """A file that could not be predicted, with the one-line reason."""

    model_config = ConfigDict(frozen=True)

    path: str
    error: str


# ---------------------------------------------------------------------------------------------
# Streaming windows


@dataclass(frozen=True)
class Window:
    """One window of a track: its span and its raw (not normalised) audio at each sample rate."""

    start_s: float
    end_s: float
    audio: dict[int, np.ndarray]


@dataclass
class TrackStats:
    """Filled while a track streams: length and raw energy (for the silence check)."""

    native_sr: int = 0
    frames: int = 0
    sum_squares: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.frames / self.native_sr if self.native_sr else 0.0

    @property
    def rms_dbfs(self) -> float:
        """Raw RMS level in dBFS (``-inf`` for digital silence)."""
        if self.frames == 0 or self.sum_squares == 0.0:
            return -math.inf
        return 10.0 * math.log10(self.sum_squares / self.frames)


def rms_dbfs(y: np.ndarray) -> float:
    """RMS level of samples in dBFS (full scale = 1.0); ``-inf`` for all zeros or no samples."""
    if y.size == 0:
        return -math.inf
    mean_square = float(np.mean(np.square(y, dtype=np.float64)))
    return -math.inf if mean_square == 0.0 else 10.0 * math.log10(mean_square)


class _Track:
    """The audio at one sample rate, kept only as far back as the windows still to come need."""

    def __init__(self, native_sr: int, sr: int) -> None:
        import soxr

        self.sr = sr
        self.resampler = (
            None
            if sr == native_sr
            else soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
        )
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0  # index in the whole track of buffer[0]

    @property
    def end(self) -> int:
        return self.offset + self.buffer.size

    def push(self, block: np.ndarray, *, last: bool = False) -> None:
        if self.resampler is not None:
            block = self.resampler.resample_chunk(block, last=last)
        if block.size:
            self.buffer = np.concatenate([self.buffer, block.astype(np.float32, copy=False)])

    def take(self, start: int, stop: int) -> np.ndarray:
        return self.buffer[start - self.offset : stop - self.offset].copy()

    def drop_before(self, index: int) -> None:
        cut = index - self.offset
        if cut > 0:
            self.buffer = self.buffer[cut:].copy()  # copy: let the old buffer be freed
            self.offset = index


def _file_blocks(path: Path, fallback_sr: int, stats: TrackStats) -> Iterator[np.ndarray]:
    """Mono float32 blocks of a file at its native rate (sets ``stats.native_sr`` first)."""
    import soundfile as sf

    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        # Not streamable by libsndfile: load_audio either decodes it whole (audioread) or raises
        # the AudioError explaining why it is not audio (missing, empty, unknown format ...).
        y = load_audio(path, sr=fallback_sr, normalize=False)
        yield from _array_blocks(y, fallback_sr, stats)
        return
    with handle:
        stats.native_sr = int(handle.samplerate)
        try:
            for block in handle.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                yield block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioError(
                f"cannot decode audio file '{path}': the file is corrupt or truncated ({exc})"
            ) from None


def _array_blocks(y: np.ndarray, sr: int, stats: TrackStats) -> Iterator[np.ndarray]:
    stats.native_sr = int(sr)
    for start in range(0, y.size, BLOCK_FRAMES):
        yield y[start : start + BLOCK_FRAMES]


def iter_windows(
    blocks: Iterable[np.ndarray],
    stats: TrackStats,
    srs: Sequence[int],
    window_s: float,
    hop_s: float,
    *,
    where: str = "the audio",
) -> Iterator[Window]:
    """Cut a stream of native-rate mono blocks into windows at every rate in ``srs``.

    Parameters
    ----------
    blocks : iterable of np.ndarray
        Mono float32 blocks; ``stats.native_sr`` must be set before the first block is yielded.
    stats : TrackStats
        Updated with the frame count and raw energy as blocks arrive.
    srs : sequence of int
        Sample rates the windows are needed at.
    window_s, hop_s : float
        Window length and hop in seconds.
    where : str
        Names the audio in error messages.

    Yields
    ------
    Window
        In time order; see the module docstring for the placement rule.

    Raises
    ------
    AudioError
        No samples, non-finite samples, or shorter than :data:`MIN_DURATION_S`.
    """
    tracks: dict[int, _Track] = {}
    pending: deque[tuple[float, float, str]] = deque()  # (start_s, end_s, anchored at)
    n_regular = 0

    def ready(final: bool) -> Iterator[Window]:
        while pending:
            start_s, end_s, anchor = pending[0]
            spans = {}
            for sr, track in tracks.items():
                length = round((end_s - start_s) * sr)
                if anchor == "end":
                    stop = track.end
                    start = max(0, stop - length)
                else:
                    start = round(start_s * sr)
                    stop = start + length
                    if final:
                        stop = min(stop, track.end)
                    elif track.end < stop:
                        return  # this rate's resampler has not caught up yet
                spans[sr] = (start, stop)
            pending.popleft()
            yield Window(start_s, end_s, {sr: tracks[sr].take(*spans[sr]) for sr in tracks})
            for sr, track in tracks.items():
                next_start = round((pending[0][0] if pending else n_regular * hop_s) * sr)
                # keep one window before the end too: a last window may end at the track's end
                track.drop_before(min(next_start, track.end - round(window_s * sr)))

    for block in blocks:
        if not tracks:
            tracks = {sr: _Track(stats.native_sr, sr) for sr in sorted(set(srs))}
        if not np.all(np.isfinite(block)):
            raise AudioError(f"{where} contains NaN or infinite samples")
        stats.frames += block.size
        stats.sum_squares += float(np.sum(np.square(block, dtype=np.float64)))
        for track in tracks.values():
            track.push(block)
        while stats.frames >= round((n_regular * hop_s + window_s) * stats.native_sr):
            pending.append((n_regular * hop_s, n_regular * hop_s + window_s, "start"))
            n_regular += 1
        yield from ready(final=False)

    if stats.frames == 0:
        raise AudioError(f"{where} contains no samples")
    if stats.duration_s < MIN_DURATION_S:
        raise AudioError(
            f"{where} is shorter than one second ({stats.duration_s:.2f} s); "
            "merkit needs at least 1 s of audio"
        )
    for track in tracks.values():
        track.push(np.zeros(0, dtype=np.float32), last=True)
    total_s = stats.duration_s
    if n_regular == 0:
        pending.append((0.0, total_s, "start"))  # shorter than one window: the whole track
    else:
        covered = (n_regular - 1) * hop_s + window_s
        if total_s - covered > min(MAX_TAIL_S, hop_s / 2):
            pending.append((total_s - window_s, total_s, "end"))
    yield from ready(final=True)


def expected_windows(duration_s: float, window_s: float, hop_s: float) -> int:
    """How many windows :func:`iter_windows` cuts a track of ``duration_s`` seconds into."""
    if duration_s < window_s:
        return 1
    regular = math.floor((duration_s - window_s) / hop_s + 1e-9) + 1
    covered = (regular - 1) * hop_s + window_s
    return regular + int(duration_s - covered > min(MAX_TAIL_S, hop_s / 2))


# ---------------------------------------------------------------------------------------------
# The predictor


def _stack(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when shapes agree (as ``representations.compute`` returns), else a list."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays


def _summary(probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    probs = {q: float(p) for q, p in zip(labels, probabilities, strict=True)}
    best = labels[int(np.argmax(probabilities))]
    return {"quadrant": best, "probabilities": probs}


class Predictor:
    """A trained model ready to predict songs (from :func:`merkit.load_model`).

    Parameters
    ----------
    manifest : ModelManifest
        What the model needs (inputs, window, labels).
    estimator : fitted estimator
        Has ``predict_proba``.
    model_dir : Path, optional
        Where the model was loaded from (lets :meth:`predict_many` use worker processes).
    batch_size : int
        Windows per estimator call.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        estimator: Any,
        *,
        model_dir: Path | None = None,
        batch_size: int = BATCH_WINDOWS,
    ) -> None:
        self.manifest = manifest
        self.estimator = estimator
        self.model_dir = model_dir
        self.batch_size = max(1, int(batch_size))
        self.labels: tuple[str, ...] = tuple(manifest.labels)
        self._columns = self._column_order()
        self._functions: dict[str, Any] = {}

    def __repr__(self) -> str:
        where = f" from {self.model_dir}" if self.model_dir else ""
        return f"Predictor(method={self.manifest.method!r}{where})"

    # -- properties -------------------------------------------------------------------------

    @property
    def audio_only(self) -> bool:
        """Whether the model can predict a new song from its audio."""
        return self.manifest.audio_only

    @property
    def window_s(self) -> float:
        return self.manifest.window_s

    @property
    def hop_s(self) -> float:
        return self.manifest.hop_s

    @property
    def card(self) -> str | None:
        """The model card text, when the model was loaded from a directory."""
        if self.model_dir is None:
            return None
        from merkit.export import MODEL_CARD

        return (self.model_dir / MODEL_CARD).read_text()

    def _column_order(self) -> np.ndarray:
        """Column of ``predict_proba`` for each label (estimators order columns by ``classes_``)."""
        classes = getattr(self.estimator, "classes_", None)
        if classes is None:
            return np.arange(len(self.labels))
        classes = [int(c) for c in np.asarray(classes)]
        missing = [self.labels[i] for i in range(len(self.labels)) if i not in classes]
        if missing:
            raise ModelError(f"the estimator was never trained on {', '.join(missing)}")
        return np.array([classes.index(i) for i in range(len(self.labels))])

    # -- from inputs ------------------------------------------------------------------------

    def predict_inputs(self, inputs: Mapping[str, Any]) -> np.ndarray:
        """Class probabilities for precomputed inputs (one entry per model input, rows aligned).

        Parameters
        ----------
        inputs : mapping
            ``{input name: array or list of per-song arrays}`` as
            :func:`merkit.protocol.runner.resolve_inputs` returns them.

        Returns
        -------
        np.ndarray
            ``(n, 4)`` float64 probabilities, columns in ``labels`` order.
        """
        names = [spec.name for spec in self.manifest.inputs]
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ConfigError(f"missing model input(s): {', '.join(missing)}")
        features: Any = inputs[names[0]] if len(names) == 1 else {n: inputs[n] for n in names}
        proba = np.asarray(self.estimator.predict_proba(features), dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] != len(self._columns):
            raise ModelError(
                f"the estimator returned probabilities of shape {proba.shape}, "
                f"expected (n, {len(self.labels)})"
            )
        return proba[:, self._columns]

    # -- from audio -------------------------------------------------------------------------

    def _representation(self, spec: InputSpec) -> Any:
        """The function the manifest names (the registry is checked once, when loading)."""
        if spec.name not in self._functions:
            from merkit.representations import Representation, get_representation

            rep = (
                Representation(name=spec.name, fn=spec.fn)
                if spec.fn
                else get_representation(spec.name)
            )
            try:
                self._functions[spec.name] = rep.load_fn()
            except ConfigError as exc:
                raise ModelError(f"model input {spec.name!r}: {exc}") from None
        return self._functions[spec.name]

    def _window_features(self, window: Window) -> dict[str, np.ndarray]:
        features = {}
        for spec in self.manifest.inputs:
            assert spec.sr is not None
            y = peak_normalize(window.audio[spec.sr])
            value = np.asarray(
                self._representation(spec)(y, spec.sr, seed=self.manifest.seed, **spec.params)
            )
            # round through the cache dtype exactly as training inputs were
            features[spec.name] = value.astype(spec.dtype or "float32").astype(np.float32)
        return features

    def _require_audio_model(self) -> None:
        if not self.audio_only:
            tables = [
                s.name.removeprefix("table:") for s in self.manifest.inputs if s.kind == "table"
            ]
            raise ModelError(
                f"model {self.manifest.method!r} needs the feature table(s) "
                f"{', '.join(tables)}, which cannot be computed from audio, so it cannot predict "
                "new songs; train an audio-only method (e.g. svm-own) for that"
            )

    def _window_stream(
        self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None, stats: TrackStats
    ) -> tuple[Iterator[Window], str | None]:
        srs = sorted({int(spec.sr) for spec in self.manifest.inputs if spec.sr is not None})
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise ConfigError("pass sr= (the waveform's sample rate) with a waveform")
            if int(sr) != sr or sr <= 0:
                raise ConfigError(f"sample rate must be a positive integer, got {sr!r}")
            if audio.ndim != 1:
                raise ConfigError(
                    f"expected a mono 1-D waveform, got shape {audio.shape}; mix channels down "
                    "first (e.g. y.mean(axis=0) for librosa's (channels, samples))"
                )
            if not np.issubdtype(audio.dtype, np.floating):
                raise ConfigError(
                    f"expected float samples in [-1, 1], got {audio.dtype}; scale integer PCM "
                    "first (e.g. y / 32768 for int16)"
                )
            y = np.ascontiguousarray(audio, dtype=np.float32)
            blocks = _array_blocks(y, int(sr), stats)
            where, path = "the waveform", None
        elif isinstance(audio, str | os.PathLike):
            path = str(audio)
            blocks = _file_blocks(Path(audio), srs[0], stats)
            where = f"audio file '{path}'"
        else:
            raise ConfigError(
                f"predict() takes a file path or a numpy waveform, not {type(audio).__name__}"
            )
        windows = iter_windows(blocks, stats, srs, self.window_s, self.hop_s, where=where)
        return windows, path

    def predict(
        self,
        audio: str | os.PathLike[str] | np.ndarray,
        sr: int | None = None,
        *,
        segments: bool = False,
    ) -> PredictionResult:
        """Predict the quadrant of one song.

        Parameters
        ----------
        audio : path or np.ndarray
            An audio file (any format merkit decodes, any length of at least 1 s) or a mono
            float waveform.
        sr : int, optional
            The waveform's sample rate (required with a waveform, ignored with a path).
        segments : bool
            Also return the per-window answers (:attr:`PredictionResult.segments`).

        Returns
        -------
        PredictionResult

        Raises
        ------
        AudioError
            The file cannot be decoded, is empty, or is shorter than one second.
        ModelError
            The model needs feature tables (it cannot predict from audio).
        ConfigError
            A waveform without ``sr`` or with more than one dimension.
        """
        self._require_audio_model()
        stats = TrackStats()
        windows, path = self._window_stream(audio, sr, stats)
        first_sr = min(spec.sr or 0 for spec in self.manifest.inputs)
        spans: list[tuple[float, float, bool]] = []
        chunks: list[np.ndarray] = []
        batch: list[dict[str, np.ndarray]] = []

        def flush() -> None:
            if batch:
                stacked = {name: _stack([b[name] for b in batch]) for name in batch[0]}
                chunks.append(self.predict_inputs(stacked))
                batch.clear()

        for window in windows:
            silent = rms_dbfs(window.audio[first_sr]) < SILENCE_DBFS
            spans.append((window.start_s, min(window.end_s, stats.duration_s), silent))
            batch.append(self._window_features(window))
            del window
            if len(batch) >= self.batch_size:
                flush()
        flush()
        window_proba = np.concatenate(chunks)
        return self._result(path, window_proba, spans, stats, segments)

    def _result(
        self,
        path: str | None,
        window_proba: np.ndarray,
        spans: list[tuple[float, float, bool]],
        stats: TrackStats,
        segments: bool,
    ) -> PredictionResult:
        from merkit.labels import QUADRANT_MEANINGS

        meanings = {**QUADRANT_MEANINGS, **self.manifest.label_meanings}
        warnings: list[str] = []
        reliable = True
        level = stats.rms_dbfs
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
        proba = window_proba[use].mean(axis=0)
        proba = proba / proba.sum()
        summary = _summary(proba, self.labels)
        p = summary["probabilities"]
        p_high = sum(p[q] for q in HIGH_AROUSAL if q in p)
        p_pos = sum(p[q] for q in POSITIVE_VALENCE if q in p)
        segment_list = None
        if segments:
            segment_list = []
            for (start, end, quiet), row in zip(spans, window_proba, strict=True):
                seg = _summary(row, self.labels)
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
            duration_s=round(stats.duration_s, 3),
            n_windows=len(spans),
            reliable=reliable,
            warnings=warnings,
            segments=segment_list,
        )

    def predict_many(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        segments: bool = False,
        n_jobs: int = 1,
    ) -> Iterator[PredictionResult | PredictionFailure]:
        """Predict several files, in order; a file that fails gives a :class:`PredictionFailure`.

        Parameters
        ----------
        paths : sequence of path
            Audio files.
        segments : bool
            Include per-window answers.
        n_jobs : int
            Worker processes (each loads the model once); needs a model loaded from a directory,
            otherwise files are predicted in this process.
        """
        self._require_audio_model()
        if n_jobs == 1 or self.model_dir is None or len(paths) < 2:
            for path in paths:
                yield safe_predict(self, path, segments=segments)
            return
        from joblib import Parallel, delayed

        model_dir = str(self.model_dir)
        yield from Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(_predict_in_worker)(model_dir, str(path), segments) for path in paths
        )


def safe_predict(
    predictor: Predictor, path: str | os.PathLike[str], *, segments: bool = False
) -> PredictionResult | PredictionFailure:
    """:meth:`Predictor.predict`, turning a failure into a one-line :class:`PredictionFailure`."""
    try:
        return predictor.predict(path, segments=segments)
    except MerkitError as exc:
        message = str(exc)
    except MemoryError:
        message = f"'{path}': out of memory"
    except Exception as exc:  # a library failing on one odd file must not stop a batch
        message = f"'{path}': unexpected {type(exc).__name__}: {exc}"
    return PredictionFailure(path=str(path), error=message.splitlines()[0] if message else "failed")


@dataclass
class _WorkerModels:
    """Models loaded in a worker process, by directory (loaded once per worker)."""

    loaded: dict[str, Predictor] = field(default_factory=dict)

    def get(self, model_dir: str) -> Predictor:
        if model_dir not in self.loaded:
            from merkit.export import load_model

            # the parent process checked the inputs against its representation registry, which
            # may hold representations registered at run time that a fresh worker lacks
            self.loaded[model_dir] = load_model(model_dir, check_inputs=False)
        return self.loaded[model_dir]


_WORKER_MODELS = _WorkerModels()


def _predict_in_worker(
    model_dir: str, path: str, segments: bool
) -> PredictionResult | PredictionFailure:
    return safe_predict(_WORKER_MODELS.get(model_dir), path, segments=segments)


__all__ = [
    "MIN_DURATION_S",
    "SILENCE_DBFS",
    "PredictionFailure",
    "PredictionResult",
    "Predictor",
    "SegmentPrediction",
    "TrackStats",
    "Window",
    "expected_windows",
    "iter_windows",
    "rms_dbfs",
    "safe_predict",
]

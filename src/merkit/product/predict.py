"""Predict the quadrant of any song with a trained model: whole tracks, bounded memory, typed
results.

How a track becomes one answer
------------------------------
1. The file is decoded by the decoder training uses (:func:`merkit.audio.decode.stream_frames`: one
   path check, so a FIFO, device or socket is refused before it can block and a file that cannot
   be opened is reported with the system's reason), in blocks.
2. The track streams as windows (:mod:`merkit.audio.windows`) of the model's window length (the
   training clips' length, e.g. 30 s) every hop (the manifest's, e.g. 15 s, or the ``hop_s``
   asked for, at most one window), at the file's own rate. A track
   shorter than one window is one window, padded the way the representation pads short clips; a
   track shorter than one second is refused.
3. Each window is a song to training's extraction
   (:class:`merkit.representations.extract.SongJobs`, with the manifest's stored parameters):
   resampled and peak-normalised to −0.1 dBFS *on its own*, as a training clip was as a whole,
   its representations computed and rounded through the cache dtype. A clip no longer than a
   window therefore gets exactly the input it had in training.
4. The estimator runs on small batches of windows, and the track's probabilities are the mean
   over windows. Windows whose raw level is below −60 dBFS RMS are left out of the mean
   unless every window is that quiet; a track that quiet throughout still gets an answer, flagged
   ``reliable=False`` with a warning, as does a constant level (a DC offset) or a steady test
   tone (:mod:`merkit.audio.signal_checks`) and an answer whose quadrant disagrees with its own
   arousal or valence side.

Only the audio of the windows still to come and one batch of window features are held at a time,
so memory does not grow with the track's length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from merkit.audio.signal_checks import SignalCheck
from merkit.audio.windows import (
    MIN_DURATION_S,
    TrackStats,
    Window,
    array_blocks,
    expected_windows,
    file_blocks,
    iter_windows,
    rms_dbfs,
)
from merkit.core.errors import ConfigError, MerkitError, ModelError
from merkit.core.inputs import parse_input
from merkit.core.threads import one_blas_thread
from merkit.estimators.calibration import ProbabilityCalibration
from merkit.product.model_dir import MODEL_CARD, ModelManifest
from merkit.product.model_dir import open_model_dir as _open_model_dir
from merkit.product.prediction import (
    MIXED_BELOW,
    SILENCE_DBFS,
    PredictionFailure,
    PredictionResult,
    SegmentPrediction,
    song_result,
)
from merkit.product.shipped import (
    SHIPPED_MODELS,
    checkpoints_of,
    model_name,
    require_checkpoints,
    resolve_model_dir,
)

BATCH_WINDOWS = 4
"""Windows whose features are computed before the estimator runs once on them."""

EXACT_WINDOWS = True
"""Whether a long track's windows are computed each on its own by default, as training computes
a song (``False``: once per second of audio,
:func:`merkit.product.window_features.onepass_features`; not exact, ~0.84x the CPU:
``benchmarks/results/predict_onepass_agreement.md``)."""


# ---------------------------------------------------------------------------------------------
# The predictor


def _stack(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when shapes agree (as ``merkit.representations.extract.compute`` returns),
    else a list."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays


def _import_function(reference: str) -> Any:
    """The function a manifest names as ``"module:qualname"`` (another than the registry's)."""
    import importlib

    module_name, _, qualname = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"cannot import {reference!r}: {error}") from None
    return target


def checked_precision(value: str | None, name: str = "crnn_precision") -> str | None:
    """``value`` if it is ``None`` or a CRNN precision, else one ConfigError naming the setting
    and the choices."""
    from merkit.transfer.embedders import CRNN_PRECISIONS

    if value is not None and value not in CRNN_PRECISIONS:
        raise ConfigError(f"{name} must be one of {', '.join(CRNN_PRECISIONS)}, not {value!r}")
    return value


MIN_HOP_S = 1.0
"""The shortest window hop accepted: below it the windows multiply with no new audio to hear (a
5-minute track at 0.1 s would be ~3,000 windows, minutes of CPU), which reads as a hang."""


def checked_hop(value: float | None, name: str = "hop_s") -> float | None:
    """``value`` as a float if it is ``None`` or a finite number of seconds of at least
    :data:`MIN_HOP_S`, else one ConfigError naming the setting (checked before anything is
    read)."""
    if value is None:
        return None
    try:
        hop = float(value)
    except (TypeError, ValueError):
        hop = math.nan
    if isinstance(value, bool) or not math.isfinite(hop) or hop <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    if hop < MIN_HOP_S:
        raise ConfigError(
            f"{name} ({hop:g} s) is below {MIN_HOP_S:g} s: the windows would multiply with no "
            "new audio to hear; use a hop of at least 1 s"
        )
    return hop


def hop_within_window(hop: float | None, window_s: float, name: str = "hop_s") -> None:
    """One ConfigError where ``hop`` is longer than the model's window: the windows would leave
    stretches of the track unheard, so it is refused rather than sampled."""
    if hop is not None and hop > window_s:
        raise ConfigError(
            f"{name} ({hop:g} s) is longer than the model's {window_s:g} s window: the windows "
            f"would leave gaps of unheard audio; use a hop of at most {window_s:g} s"
        )


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
    axes, familiarity : AxisModels, Familiarity (merkit.estimators.axes), optional
        A model directory's companions: arousal/valence models, distance to the training songs.
    calibration : ProbabilityCalibration, optional
        The model directory's post-hoc layer (``calibration.json``): a temperature applied to
        every window's probabilities and the threshold below which an answer is mixed.
    exact_windows : bool
        Compute a long track's windows each on its own through training's
        :class:`~merkit.representations.extract.SongJobs` (bit for bit what training computes
        for a song holding that window's samples), instead of once per second of audio
        (:func:`~merkit.product.window_features.onepass_features`; not exact). A track of one
        window is computed exactly either way. ``None`` (default): :data:`EXACT_WINDOWS`.
    crnn_precision : {"float32", "bf16", "winograd"}, optional
        Replaces the ``precision`` the model's CRNN inputs were computed with
        (:class:`~merkit.transfer.embedders.CRNNEmbedding`): ``"winograd"`` costs ~1.3x less CPU
        for the three taggers of the default model on an AVX2 CPU, with window probabilities
        within float rounding of the stored precision's
        (``benchmarks/results/predict_winograd_agreement.md``); ``None`` (default): as stored.
    hop_s : float, optional
        Seconds between the starts of a long track's windows, in place of the manifest's
        ``hop_s`` (e.g. ``window_s``: windows that do not overlap, each second analysed once,
        about half the windows and CPU of the default half-window hop; not the answer the default
        gives: ``benchmarks/results/predict_hop_agreement.md``). At most the window length (a
        longer hop would leave gaps: refused). A track no longer than one window is one window
        whatever the hop, so its answer does not change. ``None`` (default): the manifest's.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        estimator: Any,
        *,
        model_dir: Path | None = None,
        batch_size: int = BATCH_WINDOWS,
        axes: Any = None,
        familiarity: Any = None,
        calibration: ProbabilityCalibration | None = None,
        exact_windows: bool | None = None,
        crnn_precision: str | None = None,
        hop_s: float | None = None,
    ) -> None:
        self.crnn_precision = checked_precision(crnn_precision)
        self.custom_hop_s = checked_hop(hop_s)
        """The hop asked for (``None``: the manifest's)."""
        hop_within_window(self.custom_hop_s, manifest.window_s)
        self.manifest = manifest
        self.estimator = estimator
        self.model_dir = model_dir
        self.axes = axes
        self.familiarity = familiarity
        self.batch_size = max(1, int(batch_size))
        self.calibration = calibration
        self.mixed_below = calibration.mixed_below if calibration else MIXED_BELOW
        self.labels: tuple[str, ...] = tuple(manifest.labels)
        self._columns = self._column_order()
        self._jobs: Any = None  # merkit.representations.extract.SongJobs, built on first use
        self._plan: Any = False  # merkit.product.window_features plans, made on first use
        self.exact_windows = EXACT_WINDOWS if exact_windows is None else bool(exact_windows)

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
        """Seconds between window starts: the ``hop_s`` asked for, else the manifest's."""
        return self.manifest.hop_s if self.custom_hop_s is None else self.custom_hop_s

    @property
    def card(self) -> str | None:
        """The model card text, when the model was loaded from a directory."""
        if self.model_dir is None:
            return None
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
            ``(n, 4)`` float64 probabilities, columns in ``labels`` order (through the model's
            post-hoc calibration layer, when it has one).
        """
        proba = np.asarray(
            self.estimator.predict_proba(self.estimator_input(inputs)), dtype=np.float64
        )
        if proba.ndim != 2 or proba.shape[1] != len(self._columns):
            raise ModelError(
                f"the estimator returned probabilities of shape {proba.shape}, "
                f"expected (n, {len(self.labels)})"
            )
        proba = proba[:, self._columns]
        return self.calibration.apply(proba) if self.calibration else proba

    def predict_axes(self, inputs: Mapping[str, Any]) -> np.ndarray | None:
        """``(n, 2)`` P(high arousal), P(positive valence) for precomputed inputs (or None)."""
        if self.axes is None:
            return None
        return self.axes.predict_proba(self.estimator_input(inputs))

    def familiarity_of(self, inputs: Mapping[str, Any]) -> np.ndarray | None:
        """Each row's distance to the training songs over the calibrated threshold (<= 1:
        familiar), or None for a model without a familiarity measure."""
        if self.familiarity is None:
            return None
        from merkit.estimators.axes import model_space

        return self.familiarity.relative_distance(
            model_space(self.estimator, self.estimator_input(inputs))
        )

    def estimator_input(self, inputs: Mapping[str, Any]) -> Any:
        """``{input name: array}`` as the estimator takes it: the one array, or keyed by role."""
        specs = self.manifest.inputs
        missing = [spec.name for spec in specs if spec.name not in inputs]
        if missing:
            raise ConfigError(f"missing model input(s): {', '.join(missing)}")
        # Several inputs reach the estimator keyed by role (by name in models made before roles).
        if len(specs) == 1:
            return inputs[specs[0].name]
        return {spec.role or spec.name: inputs[spec.name] for spec in specs}

    # -- from audio -------------------------------------------------------------------------

    def window_inputs(
        self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None
    ) -> tuple[dict[str, Any], np.ndarray]:
        """Every window's model inputs for one song (``{input name: stacked}``, as
        :meth:`predict_inputs` takes them) and which windows are silent."""
        self._require_audio_model()
        stats = TrackStats()
        windows, _ = self._window_stream(audio, sr, stats)
        rows = list(self._features(windows, stats))
        features = {name: _stack([f[name] for f, _ in rows]) for name in rows[0][0]}
        return features, np.array([span[2] for _, span in rows])

    def _features(
        self, windows: Iterator[Window], stats: TrackStats
    ) -> Iterator[tuple[dict[str, np.ndarray], tuple[float, float, bool]]]:
        """Each window's inputs and its (start s, end s, silent): window by window through
        training's :meth:`song_jobs`, or with ``exact_windows=False`` in spans of
        :data:`~merkit.product.window_features.ONEPASS_WINDOWS` windows
        (:func:`merkit.product.window_features.onepass_features`)."""
        plans = None if self.exact_windows else self._plans()
        batch: list[Window] = []
        size = self.batch_size
        if plans is not None:
            from merkit.product.window_features import ONEPASS_WINDOWS

            size = max(size, ONEPASS_WINDOWS)

        def spans() -> Iterator[tuple[dict[str, np.ndarray], tuple[float, float, bool]]]:
            if plans is None:
                values = [self._window_features(w) for w in batch]
            else:
                from merkit.product.window_features import onepass_features

                values = onepass_features(plans, batch, self.manifest.seed)
            for window, value in zip(batch, values, strict=True):
                silent = rms_dbfs(window.audio) < SILENCE_DBFS
                yield value, (window.start_s, min(window.end_s, stats.duration_s), silent)
            batch.clear()

        for window in windows:
            batch.append(window)
            if len(batch) >= size:
                yield from spans()
        yield from spans()

    def _plans(self) -> Any:
        """The one-pass plan of the inputs (``None``: they cannot be planned; window by window
        through training's jobs then)."""
        if self._plan is False:
            from merkit.product.window_features import plan_inputs

            self._plan = plan_inputs(self._computed_inputs())
        return self._plan

    def _computed_inputs(self) -> list[Any]:
        """The manifest's inputs as this predictor computes them: with ``crnn_precision`` in
        place of the stored ``precision`` of the inputs that have one (the CRNN taggers)."""
        if self.crnn_precision is None:
            return list(self.manifest.inputs)
        return [
            spec.model_copy(update={"params": {**spec.params, "precision": self.crnn_precision}})
            if "precision" in spec.params
            else spec
            for spec in self.manifest.inputs
        ]

    def song_jobs(self) -> Any:
        """The :class:`merkit.representations.extract.SongJobs` that computes this model's
        inputs for one song (a :class:`merkit.audio.windows.Window` or any audio source), as
        training computed them: the registered function (the manifest must name it), the
        manifest's stored parameters, rate and storage dtype, no cache."""
        if self._jobs is None:
            from dataclasses import replace

            from merkit.representations.cache import NullCache
            from merkit.representations.extract import SongJob, SongJobs
            from merkit.representations.registry import REPRESENTATIONS, Representation

            jobs = []
            for spec in self._computed_inputs():
                assert spec.sr is not None  # audio-only models: every input is a representation
                rep = REPRESENTATIONS.get(spec.name, None)
                if rep is None:  # a worker lacks what its parent registered at run time (checked)
                    try:
                        fn = _import_function(spec.fn or "")
                    except ConfigError as exc:
                        raise ModelError(f"model input {spec.name!r}: {exc}") from None
                    # whether it uses its seed is unknown here: it gets the per-window seed
                    rep = Representation(name=spec.name, fn=fn, stochastic=True)
                elif spec.fn is not None and spec.fn != rep.reference:
                    raise ModelError(
                        f"model input {spec.name!r} names {spec.fn!r}, not {rep.reference!r}"
                    )
                rep = replace(
                    rep, version=spec.version or rep.version, dtype=spec.dtype or "float32"
                )
                jobs.append(
                    SongJob(rep, int(spec.sr), dict(spec.params), NullCache(), self.manifest.seed)
                )
            self._jobs = SongJobs(tuple(jobs))
        return self._jobs

    def _window_features(self, window: Window) -> dict[str, np.ndarray]:
        values = self.song_jobs()(window)
        # float32, as training's extraction stacks the stored (e.g. float16) values
        return {
            spec.name: value.astype(np.float32)
            for spec, (value, _) in zip(self.manifest.inputs, values, strict=True)
        }

    def _require_audio_model(self) -> None:
        if not self.audio_only:
            tables = [parse_input(s.name).name for s in self.manifest.inputs if s.kind == "table"]
            raise ModelError(
                f"model {self.manifest.method!r} needs the feature table(s) "
                f"{', '.join(tables)}, which cannot be computed from audio, so it cannot predict "
                "new songs; train an audio-only method (e.g. svm-own) for that"
            )

    def _window_stream(
        self,
        audio: str | os.PathLike[str] | np.ndarray,
        sr: int | None,
        stats: TrackStats,
        decoded: Iterable[tuple[np.ndarray, int]] | None = None,
    ) -> tuple[Iterator[Window], str | None]:
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise ConfigError("pass sr= (the waveform's sample rate) with a waveform")
            if int(sr) != sr or sr <= 0:
                raise ConfigError(f"sample rate must be a positive integer, got {sr!r}")
            if audio.ndim == 2 and 1 <= min(audio.shape) <= 8:  # stereo: mixed down, as files
                audio = audio.mean(axis=int(np.argmin(audio.shape)))
            if audio.ndim != 1:
                raise ConfigError(
                    f"expected a waveform of shape (samples,), (channels, samples) or (samples, "
                    f"channels) with at most 8 channels, got shape {audio.shape}"
                )
            if not np.issubdtype(audio.dtype, np.floating):
                raise ConfigError(
                    f"expected float samples in [-1, 1], got {audio.dtype}; scale integer PCM "
                    "first (e.g. y / 32768 for int16)"
                )
            y = np.ascontiguousarray(audio, dtype=np.float32)
            blocks = array_blocks(y, int(sr), stats)
            where, path = "the waveform", None
        elif isinstance(audio, str | os.PathLike):
            path = str(audio)
            blocks = file_blocks(Path(audio), stats, decoded)
            where = f"audio file '{path}'"
        else:
            raise ConfigError(
                "predict() takes a file path, a folder, a list of paths or a numpy waveform, "
                f"not {type(audio).__name__}"
            )
        windows = iter_windows(blocks, stats, self.window_s, self.hop_s, where=where)
        return windows, path

    @one_blas_thread  # the BLAS thread count training and every executor use (merkit.core.threads)
    def predict(
        self,
        audio: str | os.PathLike[str] | np.ndarray | Sequence[str | os.PathLike[str]],
        sr: int | None = None,
        *,
        segments: bool = False,
        decoded: Iterable[tuple[np.ndarray, int]] | None = None,
    ) -> Any:
        """Predict the quadrant of one song, or of each song of a list or folder.

        Parameters
        ----------
        audio : path, folder, list of paths or np.ndarray
            An audio file (any format merkit decodes, any length of at least 1 s), a float
            waveform (mono, or channels that are mixed down, as files' are), or a list of files
            and folders (folders are searched recursively for audio files).
        sr : int, optional
            The waveform's sample rate (required with a waveform, ignored with a path).
        segments : bool
            Also return the per-window answers (:attr:`PredictionResult.segments`).
        decoded : iterable of (np.ndarray, int), optional
            With one path: its :func:`merkit.audio.decode.stream_frames` blocks, decoded
            already (:func:`merkit.audio.decode.prefetch_frames`, overlapping the next file's
            decoding with this one's analysis).

        Returns
        -------
        PredictionResult, or list of PredictionResult | PredictionFailure
            One result for one song; for a list or folder, one entry per file in order, a file
            that cannot be predicted being a :class:`PredictionFailure` with its reason (use
            :meth:`predict_many` to get them one at a time as they finish).

        Raises
        ------
        AudioError
            The file cannot be decoded, is empty, or is shorter than one second.
        ModelError
            The model needs feature tables (it cannot predict from audio).
        ConfigError
            A waveform without ``sr`` or with more than one dimension.
        """
        paths = isinstance(audio, list | tuple) and all(
            isinstance(a, str | os.PathLike) for a in audio
        )
        if paths or (isinstance(audio, str | os.PathLike) and os.path.isdir(audio)):
            return list(self.predict_many(audio, segments=segments))
        self._require_audio_model()
        stats = TrackStats()
        windows, path = self._window_stream(audio, sr, stats, decoded)
        check = SignalCheck()  # a constant level or a steady tone is not music: said, not hidden
        windows = check.watch(windows, min(spec.sr or 0 for spec in self.manifest.inputs))
        spans: list[tuple[float, float, bool]] = []
        chunks: list[np.ndarray] = []
        axes: list[np.ndarray] = []
        familiar: list[np.ndarray] = []
        batch: list[dict[str, np.ndarray]] = []

        def flush() -> None:
            if batch:
                stacked = {name: _stack([b[name] for b in batch]) for name in batch[0]}
                chunks.append(self.predict_inputs(stacked))
                if (p_axes := self.predict_axes(stacked)) is not None:
                    axes.append(p_axes)
                if (score := self.familiarity_of(stacked)) is not None:
                    familiar.append(score)
                batch.clear()

        for features, span in self._features(windows, stats):
            spans.append(span)
            batch.append(features)
            if len(batch) >= self.batch_size:
                flush()
        flush()
        return song_result(
            path,
            np.concatenate(chunks),
            spans,
            stats.duration_s,
            stats.rms_dbfs,
            self.labels,
            self.manifest.label_meanings,
            segments=segments,
            mixed_below=self.mixed_below,
            unreliable=check.reasons(),
            window_axes=np.concatenate(axes) if axes else None,
            rule=self.axes.rule if self.axes is not None else "joint",
            window_familiarity=np.concatenate(familiar) if familiar else None,
        )

    def predict_many(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        segments: bool = False,
        n_jobs: int = 1,
        executor: str = "processes",
        ray_address: str | None = None,
    ) -> Iterator[PredictionResult | PredictionFailure]:
        """Predict several files, in input order, yielding each answer as it is ready; a file
        that fails gives a :class:`PredictionFailure`
        (:func:`merkit.product.predict_executors.predict_files`).

        Parameters
        ----------
        paths : path or sequence of path
            Audio files, or folders searched recursively for audio files.
        segments : bool
            Include per-window answers.
        n_jobs : int
            Worker processes (each loads the model once), or the CPUs of a local Ray instance;
            needs a model loaded from a directory, otherwise files are predicted in this process.
        executor : {"processes", "ray"}
            Worker processes on this machine, or Ray tasks (local, or the cluster at
            ``ray_address``); the output is the same as a serial run's.
        """
        from functools import partial

        from merkit.product.predict_executors import predict_files
        from merkit.product.search import Unreadable, expand_folders

        self._require_audio_model()
        items = [
            PredictionFailure(path=i.path, error=i.error) if isinstance(i, Unreadable) else i
            for i in expand_folders([paths] if isinstance(paths, str | os.PathLike) else paths)
        ]
        files = [item for item in items if not isinstance(item, PredictionFailure)]
        done = predict_files(
            self,
            files,
            # the parent checked the inputs against its representation registry, which may hold
            # representations registered at run time that a fresh worker lacks
            load=partial(
                load_model,
                check_inputs=False,
                exact_windows=self.exact_windows,
                crnn_precision=self.crnn_precision,
                hop_s=self.custom_hop_s,
            ),
            run=safe_predict,
            warm_numba=needs_numba(self.manifest),
            segments=segments,
            jobs=n_jobs,
            executor=executor,
            ray_address=ray_address,
        )
        for item in items:  # in the given order, each answer as soon as it is ready
            yield item if isinstance(item, PredictionFailure) else next(done)


def safe_predict(
    predictor: Predictor,
    path: str | os.PathLike[str],
    *,
    segments: bool = False,
    decoded: Iterable[tuple[np.ndarray, int]] | None = None,
) -> PredictionResult | PredictionFailure:
    """:meth:`Predictor.predict`, turning a failure into a one-line :class:`PredictionFailure`."""
    try:
        return predictor.predict(path, segments=segments, decoded=decoded)
    except MerkitError as exc:
        message = str(exc)
    except MemoryError:
        message = f"'{path}': out of memory"
    except Exception as exc:  # a library failing on one odd file must not stop a batch
        message = f"'{path}': unexpected {type(exc).__name__}: {exc}"
    return PredictionFailure(path=str(path), error=message.splitlines()[0] if message else "failed")


def load_model(
    path: Path | str | None = None,
    *,
    check_inputs: bool = True,
    exact_windows: bool | None = None,
    crnn_precision: str | None = None,
    hop_s: float | None = None,
) -> Predictor:
    """Load a model directory for prediction.

    Parameters
    ----------
    path : path, optional
        A directory written by ``merkit train`` (:func:`merkit.product.export.save_model`), or
        the name of a model shipped inside the package (``"default"``, ``"fast"``; see
        :data:`merkit.product.shipped.SHIPPED_MODELS`). ``None`` loads the shipped default.
    check_inputs : bool
        Check that this merkit knows every input representation, in the same version (turned off
        only where that was checked already, e.g. in worker processes).
    exact_windows : bool, optional
        :class:`Predictor`'s setting (``None``: :data:`EXACT_WINDOWS`): ``True`` computes each
        window of a long track on its own, ``False`` once per second of audio (not exact).
    crnn_precision : {"float32", "bf16", "winograd"}, optional
        :class:`Predictor`'s setting: the arithmetic of the CRNN taggers' conv blocks
        (``None``: as the model stored it; ``"winograd"``: less CPU, not bit-identical).
    hop_s : float, optional
        :class:`Predictor`'s setting: seconds between a long track's window starts (``None``: the
        manifest's; at most the window length).

    Returns
    -------
    Predictor

    Raises
    ------
    ModelError
        The directory, its manifest or one of its files is missing, damaged, or from an
        incompatible merkit version, or a pre-trained checkpoint its inputs read is not installed
        (the message names ``merkit models download``); the message says which.
    ConfigError
        ``crnn_precision`` is not a precision, or ``hop_s`` is not a positive number of seconds
        or is longer than the model's window (checked before the estimator is loaded).
    """
    checked_precision(crnn_precision)  # before anything is read
    hop_s = checked_hop(hop_s)
    asked = path
    path = resolve_model_dir(path)
    if hop_s is not None:  # against the window, before the estimator is loaded
        from merkit.product.model_dir import read_manifest

        hop_within_window(hop_s, read_manifest(path).window_s)
    manifest, estimator = _open_model_dir(path, inputs=check_inputs)
    # missing or wrong checkpoints: one error now, not one per song later
    needed = checkpoints_of([spec.params for spec in manifest.inputs])
    if needed:
        # a shipped model by its name however it was asked for (the CLI passes its folder)
        shipped = model_name(path)
        name = shipped if asked is None or shipped in SHIPPED_MODELS else str(asked)
        require_checkpoints(needed, needed_by=f"the model {name!r}")
    from merkit.product.companion_files import load_companions

    companions = load_companions(manifest, path)
    if needs_numba(manifest):
        from merkit.core.numba_cache import ensure_numba_cache

        ensure_numba_cache()  # a corrupt librosa cache is repaired here instead of crashing later
    calibration = ProbabilityCalibration.load(path)
    return Predictor(
        manifest,
        estimator,
        model_dir=path,
        calibration=calibration,
        axes=companions.get("axes"),
        familiarity=companions.get("familiarity"),
        exact_windows=exact_windows,
        crnn_precision=crnn_precision,
        hop_s=hop_s,
    )


def needs_numba(manifest: ModelManifest) -> bool:
    """Whether the model's inputs call librosa's numba code (then its cache is checked)."""
    from merkit.representations.registry import inputs_need_numba

    return inputs_need_numba(manifest.inputs)


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
    "load_model",
    "needs_numba",
    "rms_dbfs",
    "safe_predict",
]

"""Streaming audio windows: a track cut into fixed-length windows, each a song to training's
extraction, in bounded memory.

1. A file is decoded in blocks by merkit's one decoder
   (:func:`merkit.audio.decode.stream_frames`, which also decodes training clips) and mixed to mono
   block by block with :func:`merkit.audio.decode.mixdown` (per frame, so the samples are those a
   whole-file decode gives).
2. Windows of ``window_s`` start every ``hop_s``, cut at the file's own rate. If more than
   ``min(1 s, hop/2)`` of the track is left after the last full window, a last window ends exactly
   at the track's end. A track shorter than one window is one window; a track shorter than one
   second is refused.
3. A :class:`Window` is an audio source (:class:`merkit.datasets.base.AudioSource`): the
   predictor hands it to :class:`merkit.representations.extract.SongJobs`, which resamples,
   peak-normalises and computes its representations as it does for a training clip. A track no
   longer than one window is therefore, sample for sample, the song training would have seen.

Only the audio of the windows still to come (about one window plus one hop plus one decoding block,
at the file's rate) is held at a time, so memory does not grow with the track's length.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from merkit.audio.decode import mixdown, stream_frames
from merkit.core.errors import AudioError

MIN_DURATION_S = 1.0
"""Shortest audio merkit predicts."""

BLOCK_FRAMES = 1 << 16
"""Frames per block of a waveform passed as an array."""

MAX_TAIL_S = 1.0
"""Audio after the last full window that may be left without a window of its own."""


# ---------------------------------------------------------------------------------------------
# Windows


@dataclass(frozen=True)
class Window:
    """One window of a track: its span and its raw (not normalised) mono audio at the track's rate.

    An audio source (``key``, ``description``, ``load``, ``decode``), so training's extraction
    (:class:`merkit.representations.extract.SongJobs`) computes its representations as for a
    training clip.
    """

    start_s: float
    end_s: float
    audio: np.ndarray
    sr: int
    where: str = "the audio"
    whole: bool = False  # the window is the whole track
    _at_rate: dict[int, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def key(self) -> str:
        """Content key of the window's samples (seeds a stochastic representation per window)."""
        digest = hashlib.sha1(np.ascontiguousarray(self.audio).view(np.uint8))
        digest.update(str(self.sr).encode())
        return f"window:{digest.hexdigest()}"

    @property
    def description(self) -> str:
        if self.whole:
            return self.where
        return f"{self.where} at {self.start_s:.2f}-{self.end_s:.2f} s"

    def decode(self) -> tuple[np.ndarray, int]:
        """Mono samples at the track's rate, and that rate (as ``FileSource.decode``)."""
        return self.audio, self.sr

    def resampled(self, sr: int) -> np.ndarray:
        """The raw samples at ``sr`` (:func:`merkit.audio.decode.resample`), resampled once per
        rate and read-only: the signal checks (:mod:`merkit.audio.signal_checks`) and
        :class:`~merkit.representations.extract.SongJobs` read the same array, which a 30 s
        window at 44.1 kHz took 5.1 ms of CPU to resample to 16 kHz, twice, on the Xeon."""
        if sr == self.sr:
            return self.audio
        if sr not in self._at_rate:
            from merkit.audio.decode import resample

            y = np.ascontiguousarray(resample(self.audio, self.sr, sr), dtype=np.float32)
            y.setflags(write=False)
            self._at_rate[sr] = y
        return self._at_rate[sr]

    def load(self, sr: int) -> np.ndarray:
        """Mono float32 at ``sr``, peak-normalised (as ``FileSource.load``)."""
        from merkit.audio.decode import conform

        return conform(self.audio, self.sr, int(sr))


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


class _Buffer:
    """The track's mono audio, kept only as far back as the windows still to come need."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0  # index in the whole track of buffer[0]
        self.end = 0

    def push(self, block: np.ndarray) -> None:
        if block.size:
            self.parts.append(block)
            self.end += block.size

    def _join(self) -> None:
        if self.parts:  # join what arrived since the last window once, not once per block
            self.buffer = np.concatenate([self.buffer, *self.parts])
            self.parts = []

    def take(self, start: int, stop: int) -> np.ndarray:
        self._join()
        return self.buffer[start - self.offset : stop - self.offset].copy()

    def drop_before(self, index: int) -> None:
        cut = index - self.offset
        if cut > 0:
            self._join()
            self.buffer = self.buffer[cut:].copy()  # copy: let the old buffer be freed
            self.offset = index


def file_blocks(
    path: Path, stats: TrackStats, decoded: Iterable[tuple[np.ndarray, int]] | None = None
) -> Iterator[np.ndarray]:
    """Mono float32 blocks of a file at its own rate (sets ``stats.native_sr`` first);
    ``decoded``: the file's :func:`stream_frames` blocks from elsewhere (e.g. prefetched)."""
    for frames, native_sr in stream_frames(path) if decoded is None else decoded:
        stats.native_sr = native_sr
        yield mixdown(frames)


def array_blocks(y: np.ndarray, sr: int, stats: TrackStats) -> Iterator[np.ndarray]:
    stats.native_sr = int(sr)
    for start in range(0, y.size, BLOCK_FRAMES):
        yield y[start : start + BLOCK_FRAMES]


def iter_windows(
    blocks: Iterable[np.ndarray],
    stats: TrackStats,
    window_s: float,
    hop_s: float,
    *,
    where: str = "the audio",
) -> Iterator[Window]:
    """Cut a stream of mono blocks at the track's own rate into windows.

    Parameters
    ----------
    blocks : iterable of np.ndarray
        Mono float32 blocks; ``stats.native_sr`` must be set before the first block is yielded.
    stats : TrackStats
        Updated with the frame count and raw energy as blocks arrive.
    window_s, hop_s : float
        Window length and hop in seconds.
    where : str
        Names the audio in error messages and in the windows' descriptions.

    Yields
    ------
    Window
        In time order; see the module docstring for the placement rule.

    Raises
    ------
    AudioError
        No samples, non-finite samples, or shorter than :data:`MIN_DURATION_S`.
    """
    track = _Buffer()
    pending: deque[tuple[float, float, str]] = deque()  # (start_s, end_s, anchored at)
    n_regular = 0

    def ready(final: bool) -> Iterator[Window]:
        sr = stats.native_sr
        while pending:
            start_s, end_s, anchor = pending[0]
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
                    return  # not decoded that far yet
            pending.popleft()
            whole = start == 0 and final and stop == track.end
            yield Window(start_s, end_s, track.take(start, stop), sr, where, whole)
            next_start = round((pending[0][0] if pending else n_regular * hop_s) * sr)
            # keep one window before the end too: a last window may end at the track's end
            track.drop_before(min(next_start, track.end - round(window_s * sr)))

    for block in blocks:
        if not np.all(np.isfinite(block)):
            raise AudioError(f"{where} contains NaN or infinite samples")
        stats.frames += block.size
        stats.sum_squares += float(np.sum(np.square(block, dtype=np.float64)))
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


__all__ = [
    "BLOCK_FRAMES",
    "MAX_TAIL_S",
    "MIN_DURATION_S",
    "TrackStats",
    "Window",
    "array_blocks",
    "expected_windows",
    "file_blocks",
    "iter_windows",
    "rms_dbfs",
]

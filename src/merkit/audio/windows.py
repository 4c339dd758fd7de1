"""Streaming audio windows: a file or waveform cut into fixed-length windows, bounded memory.

1. A file is decoded in blocks (``soundfile.SoundFile.read``), mixed to mono and resampled block
   by block with a streaming soxr resampler (HQ, the filter :func:`merkit.audio.decode.load_audio`
   uses),
   once per sample rate needed. Formats libsndfile cannot stream (m4a through audioread) are
   decoded whole with :func:`merkit.audio.decode.load_audio` instead.
2. Windows of ``window_s`` start every ``hop_s``. If more than ``min(1 s, hop/2)`` of the track is
   left after the last full window, a last window ends exactly at the track's end. A track shorter
   than one window is one window; a track shorter than one second is refused.

Only the audio of the windows still to come (about one window plus one hop plus one decoding block
per sample rate) is held at a time, so memory does not grow with the track's length.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from merkit.audio.decode import load_audio, quiet_stderr
from merkit.audio.files import check_audio_file
from merkit.core.errors import AudioError

MIN_DURATION_S = 1.0
"""Shortest audio merkit predicts."""

BLOCK_FRAMES = 1 << 16
"""Frames decoded per block (about 1.5-4 s of audio at common rates)."""

MAX_TAIL_S = 1.0
"""Audio after the last full window that may be left without a window of its own."""

MAX_SHORTFALL = 0.02
"""Fraction of a file's declared length that may be missing before it counts as truncated."""


# ---------------------------------------------------------------------------------------------
# Windows


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


def file_blocks(path: Path, fallback_sr: int, stats: TrackStats) -> Iterator[np.ndarray]:
    """Mono float32 blocks of a file at its native rate (sets ``stats.native_sr`` first)."""
    import soundfile as sf

    check_audio_file(path)  # before opening: a FIFO would block the open forever
    try:
        with quiet_stderr():  # mpg123 prints its own diagnostics to fd 2; merkit explains instead
            handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        # Not streamable by libsndfile: load_audio either decodes it whole (audioread) or raises
        # the AudioError explaining why it is not audio (missing, empty, unknown format ...).
        y = load_audio(path, sr=fallback_sr, normalize=False)
        yield from array_blocks(y, fallback_sr, stats)
        return
    with handle:
        stats.native_sr = int(handle.samplerate)
        declared = int(handle.frames)
        decoded = 0
        try:
            # read() until it returns nothing: SoundFile.blocks() ignores a short read and yields
            # its previous buffer again, so a truncated file would be padded with repeated audio
            while True:
                block = handle.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                decoded += block.shape[0]
                yield block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioError(
                f"cannot decode audio file '{path}': the file is corrupt or truncated ({exc})"
            ) from None
        _check_complete(path, declared, decoded, stats.native_sr)


def _check_complete(path: Path, declared: int, decoded: int, sr: int) -> None:
    """Refuse a file whose audio ends well before its header says (a cut download or copy).

    Headers of some formats only estimate the length (MP3 without a Xing/LAME frame count), so
    a shortfall of up to :data:`MAX_SHORTFALL` of the declared length, or 0.5 s, is let through.
    """
    missing = declared - decoded
    if missing > max(MAX_SHORTFALL * declared, 0.5 * sr):
        raise AudioError(
            f"cannot decode audio file '{path}': the file is truncated (its header says "
            f"{declared / sr:.1f} s, only the first {decoded / sr:.1f} s can be decoded)"
        )


def array_blocks(y: np.ndarray, sr: int, stats: TrackStats) -> Iterator[np.ndarray]:
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

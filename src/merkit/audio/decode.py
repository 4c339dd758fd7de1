"""Audio decoding, resampling, peak normalisation and fixed-length cropping (paper §4.1).

Every 16 kHz method of the paper starts from the same waveform: the clip decoded, peak-normalised
to −0.1 dBFS, mixed down to mono, resampled to 16 kHz and cropped to its last 482 000 samples.
:func:`load_audio` does the first four steps with soundfile (libsndfile: wav, flac, ogg/vorbis,
ogg/opus, mp3, aiff, ...) and soxr; :func:`crop_or_pad` does the last one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr

from merkit.audio.files import check_audio_file
from merkit.core.errors import AudioError, ConfigError

PAPER_CROP_SAMPLES = 482_000
"""Clip length the paper's 16 kHz pipelines keep (30.125 s)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding it.

    Attributes
    ----------
    path : Path
        The file.
    duration : float
        Length in seconds.
    sample_rate : int
        Native sample rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Samples per channel.
    format : str
        Container and codec, e.g. ``"OGG/OPUS"``.
    """

    path: Path
    duration: float
    sample_rate: int
    channels: int
    frames: int
    format: str


class _QuietStderr:
    """fd 2 pointed at /dev/null while any thread is inside :func:`quiet_stderr`.

    fd 2 belongs to the whole process: with one save/restore per block, two overlapping blocks in
    two threads (e.g. ``merkit serve`` decoding two uploads) could restore each other's
    /dev/null and silence the process for good. So the first thread in saves and redirects and
    the last one out restores.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: int | None = None

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.saved = None
                try:
                    sys.stderr.flush()
                    saved = os.dup(2)
                except (OSError, ValueError, AttributeError):  # no fd 2 (some embedded hosts)
                    saved = None
                if saved is not None:
                    with open(os.devnull, "wb") as sink:
                        os.dup2(sink.fileno(), 2)
                    self.saved = saved
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.saved is not None:
                os.dup2(self.saved, 2)
                os.close(self.saved)
                self.saved = None


_QUIET = _QuietStderr()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C libraries' messages, e.g. mpg123's) for the block.

    Decoders print their own diagnostics straight to fd 2 before merkit can explain the
    problem in one line; what they print is dropped. Python's ``sys.stderr`` is flushed first.
    Safe to use from several threads at once: fd 2 comes back when the last block ends.
    """
    _QUIET.enter()
    try:
        yield
    finally:
        _QUIET.leave()


def _check_file(path: Path) -> None:
    """Raise :class:`AudioError` for the problems that need no decoder to see."""
    check_audio_file(path)


def _explain(error: Exception) -> str:
    """Turn a libsndfile message into a short reason a user can act on."""
    text = str(error)
    lowered = text.lower()
    # libsndfile reports undecodable mp3 data as "does not exist or is not a regular file" even
    # though the file exists (its mpg123 probe fails); the existence check ran before this.
    if "not recognised" in lowered or "not a regular file" in lowered:
        return "not a recognised audio format"
    if "malformed" in lowered or "error in" in lowered:
        return "the file is corrupt or truncated"
    detail = text.split(":", 1)[-1].strip() if ":" in text else text
    return f"the data is corrupt or in an unsupported format ({detail})"


def _read_with_audioread(path: Path) -> tuple[np.ndarray, int] | None:
    """Decode with audioread's ffmpeg/gstreamer/CoreAudio backends (for m4a and the like).

    Returns ``None`` when audioread or such a backend is missing, or when it fails too.
    """
    try:
        with warnings.catch_warnings():
            # audioread imports stdlib modules (aifc, audioop) deprecated in Python 3.11+.
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioread
            from audioread.rawread import RawAudioFile

            # The raw backend only reads wav/aiff/au, which libsndfile has already rejected.
            backends = [b for b in audioread.available_backends() if b is not RawAudioFile]
    except ImportError:
        return None
    if not backends:
        return None
    try:
        with quiet_stderr():
            return _audioread_decode(audioread, path, backends)
    except Exception:  # any backend failure means "cannot decode": report soundfile's reason
        return None


def _audioread_decode(audioread: Any, path: Path, backends: list[Any]) -> tuple[np.ndarray, int]:
    with audioread.audio_open(str(path), backends=backends) as handle:
        sr, channels = int(handle.samplerate), int(handle.channels)
        raw = b"".join(handle)
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return pcm.reshape(-1, max(channels, 1)), sr


DECODE_BLOCK_FRAMES = 1 << 16
"""Frames :func:`stream_frames` decodes per block (about 1.5-4 s of audio at common rates)."""

MAX_SHORTFALL = 0.02
"""Fraction of a file's declared length that may be missing before it counts as truncated."""


def stream_frames(
    path: str | Path, *, block_frames: int | None = DECODE_BLOCK_FRAMES
) -> Iterator[tuple[np.ndarray, int]]:
    """merkit's one decoder: ``path`` as ``(frames, channels)`` float32 blocks at its own rate.

    Training (:func:`decode_frames`, whole files) and prediction (:mod:`merkit.audio.windows`, long
    tracks in bounded memory) both decode through this function, so they get the same samples:
    the path is checked once (:func:`merkit.audio.files.check_audio_file`, which never blocks on
    a FIFO), libsndfile decodes it (formats it cannot read, such as m4a, are decoded whole by
    audioread when that has a backend), and a file whose audio stops well before its header
    says is refused rather than returned short.

    Parameters
    ----------
    path : str or Path
        The audio file.
    block_frames : int or None
        Frames per block; ``None`` reads the whole file as one block.

    Yields
    ------
    tuple of (np.ndarray, int)
        Each block (at least one frame) and the file's sample rate in Hz.

    Raises
    ------
    AudioError
        The file is missing, not a regular file, empty, not audio, corrupt, truncated or holds
        no samples; the message names the file.
    """
    path = Path(path)
    _check_file(path)
    try:
        with quiet_stderr():  # mpg123 prints its own diagnostics to fd 2; merkit explains instead
            handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        fallback = _read_with_audioread(path)
        if fallback is None:
            raise AudioError(f"cannot decode audio file '{path}': {_explain(error)}") from None
        handle = None
    if handle is None:  # audioread decoded the whole file
        data, native_sr = fallback
        if data.shape[0] == 0:
            raise AudioError(f"audio file '{path}' contains no samples")
        step = data.shape[0] if block_frames is None else max(1, int(block_frames))
        for start in range(0, data.shape[0], step):
            yield data[start : start + step], native_sr
        return
    with handle:
        native_sr, declared, decoded = int(handle.samplerate), int(handle.frames), 0
        frames = -1 if block_frames is None else max(1, int(block_frames))
        # read() until it returns nothing: SoundFile.blocks() ignores a short read and yields
        # its previous buffer again, so a truncated file would be padded with repeated audio
        while True:
            try:
                with quiet_stderr():
                    block = handle.read(frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
                raise AudioError(
                    f"cannot decode audio file '{path}': the file is corrupt or truncated ({exc})"
                ) from None
            if block.shape[0] == 0:
                break
            decoded += block.shape[0]
            yield block, native_sr
    if decoded == 0:
        raise AudioError(f"audio file '{path}' contains no samples")
    _check_complete(path, declared, decoded, native_sr)


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


PREFETCH_BLOCKS = 16
"""Blocks :func:`prefetch_frames` decodes ahead of the consumer (about 24-65 s of audio)."""


def prefetch_frames(
    paths: list[str | Path], *, ahead: int = PREFETCH_BLOCKS
) -> Iterator[Iterator[tuple[np.ndarray, int]]]:
    """:func:`stream_frames` of each path in turn, decoded by a background thread.

    Decoding (libsndfile, soxr-free) releases the GIL, so the thread decodes the next blocks,
    and the next file, while the caller analyses the current ones. At most ``ahead`` blocks wait
    in memory, so memory stays flat in track length. Each yielded iterator gives exactly what
    :func:`stream_frames` gives for that path, and raises its :class:`AudioError` at the same
    point; a file the caller stops reading early is skipped to its end before the next one.

    Parameters
    ----------
    paths : list of path
        Audio files, in order.
    ahead : int
        Decoded blocks held at most (across files).

    Yields
    ------
    Iterator of tuple of (np.ndarray, int)
        One per path, in order: its blocks and native rate; take it before the next.
    """
    import queue

    items: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=max(1, int(ahead)))
    stop = threading.Event()
    done, failed = object(), object()

    def decode_all() -> None:
        for index, path in enumerate(paths):
            try:
                for block in stream_frames(path):
                    if stop.is_set():
                        return
                    items.put((index, block))
                items.put((index, done))
            except BaseException as exc:  # re-raised where the caller reads this file
                items.put((index, (failed, exc)))
            if stop.is_set():
                return

    worker = threading.Thread(target=decode_all, name="merkit-prefetch", daemon=True)
    worker.start()
    finished = [False] * len(paths)

    def blocks(index: int) -> Iterator[tuple[np.ndarray, int]]:
        while True:
            at, item = items.get()
            assert at == index  # files arrive in order, each drained before the next
            if item is done:
                finished[index] = True
                return
            if isinstance(item, tuple) and len(item) == 2 and item[0] is failed:
                finished[index] = True
                raise item[1]
            yield item

    try:
        for index in range(len(paths)):
            yield blocks(index)
            if not finished[index]:  # the caller stopped early (e.g. non-finite samples)
                with contextlib.suppress(Exception):  # its error, if any, is not asked for
                    for _ in blocks(index):
                        pass
    finally:
        stop.set()
        while worker.is_alive():  # unblock a put() waiting on a full queue
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.05)


def peak_normalize(y: np.ndarray, headroom_db: float = 0.1) -> np.ndarray:
    """Scale ``y`` so its largest absolute sample sits ``headroom_db`` dB below full scale.

    This is pydub's ``AudioSegment.normalize`` (default headroom 0.1 dB), which the paper applies
    to every clip.

    Parameters
    ----------
    y : np.ndarray
        Samples in [-1, 1], any shape.
    headroom_db : float
        Distance of the new peak below 0 dBFS, in dB (non-negative).

    Returns
    -------
    np.ndarray
        A float32 copy; all-zero audio stays zero.
    """
    if headroom_db < 0:
        raise ConfigError(f"headroom_db must be >= 0, got {headroom_db}")
    return level_normalize(y, 100.0, -headroom_db)


def level_normalize(y: np.ndarray, percentile: float, target_dbfs: float) -> np.ndarray:
    """Scale ``y`` so the ``percentile``-th percentile of ``|y|`` sits at ``target_dbfs``.

    ``percentile=100`` is peak normalisation. A lower percentile ignores the few highest samples,
    which a lossy codec moves most (a codec's pre-echo and ringing change a song's peak by up to
    1 dB, and so the gain peak normalisation applies; the 99.9th percentile moves a quarter to a
    tenth as much, ``benchmarks/results/4qaed_encoding_agreement.md``). All-zero audio comes back
    unchanged.

    Parameters
    ----------
    y : np.ndarray
        Samples, any shape (the percentile is taken over all of them).
    percentile : float
        In (0, 100].
    target_dbfs : float
        Level of that percentile after scaling, in dB relative to full scale.

    Returns
    -------
    np.ndarray
        A float32 copy of ``y``'s shape; samples may exceed full scale when ``percentile < 100``.
    """
    if not 0 < percentile <= 100:
        raise ConfigError(f"level percentile must lie in (0, 100], got {percentile}")
    y = np.asarray(y, dtype=np.float32)
    magnitude = np.abs(y)
    if not magnitude.size:
        return y.copy()
    level = float(magnitude.max() if percentile == 100 else np.percentile(magnitude, percentile))
    if level == 0.0:
        return y.copy()
    return (y * np.float32(10.0 ** (target_dbfs / 20.0) / level)).astype(np.float32, copy=False)


def resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """Resample a mono signal with soxr's high-quality filter (librosa's default since 0.10).

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(n,)``.
    orig_sr, sr : int
        Source and target rates in Hz.

    Returns
    -------
    np.ndarray
        float32 samples at ``sr`` (the input itself when the rates are equal).
    """
    if orig_sr == sr:
        return np.asarray(y, dtype=np.float32)
    return np.asarray(soxr.resample(y, orig_sr, sr, quality="HQ"), dtype=np.float32)


def load_audio(path: str | Path, sr: int = 16_000, *, normalize: bool = True) -> np.ndarray:
    """Decode an audio file to mono float32 at ``sr``, peak-normalised to −0.1 dBFS.

    Channels are averaged (as ``librosa.load(mono=True)`` does), the signal is resampled with soxr
    HQ, and the peak is set to −0.1 dBFS *after* resampling, so the returned waveform's peak is
    exactly −0.1 dBFS. (The paper normalises before resampling, which leaves the final peak a few
    hundredths of a dB off; the difference is a single gain factor.)

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads (wav, flac, ogg/vorbis, ogg/opus, mp3, aiff, ...); other
        formats (m4a) are tried with audioread when it is installed with an ffmpeg backend.
    sr : int
        Target sample rate in Hz.
    normalize : bool
        Peak-normalise to −0.1 dBFS. All-zero audio stays zero.

    Returns
    -------
    np.ndarray
        Shape ``(n_samples,)``, float32.

    Raises
    ------
    AudioError
        If the file is missing, empty, not audio, corrupt, holds no samples or non-finite samples.
        The message names the file.
    """
    if int(sr) != sr or sr <= 0:
        raise ConfigError(f"sample rate must be a positive integer, got {sr!r}")
    y, native_sr = decode_mono(path)
    return conform(y, native_sr, int(sr), normalize=normalize, overwrite=True)


def decode_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """The first steps of :func:`load_audio`: decode ``path`` and mix it down to mono.

    :func:`decode_frames` followed by :func:`to_mono`.

    Returns
    -------
    tuple of (np.ndarray, int)
        float32 samples at the file's own rate (finite, at least one), and that rate in Hz.
        Pass them to :func:`conform` for a given rate: decoding once serves every rate.

    Raises
    ------
    AudioError
        As :func:`load_audio`.
    """
    data, native_sr = decode_frames(path)
    return to_mono(data, path), native_sr


def decode_frames(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to ``(frames, channels)`` float32 samples at its own rate, and that rate.

    The decoding step of :func:`decode_mono` alone: a pipelined extractor
    (:func:`merkit.representations.extract.pipelined`) decodes in one thread and mixes down in the
    other.

    Raises
    ------
    AudioError
        If the file is missing, empty, not audio, corrupt, truncated or holds no samples; the
        message names the file.
    """
    blocks = list(stream_frames(path, block_frames=None))  # one block: the whole file
    data = blocks[0][0] if len(blocks) == 1 else np.concatenate([b for b, _ in blocks])
    return data, blocks[0][1]


def to_mono(data: np.ndarray, path: str | Path) -> np.ndarray:
    """Mix :func:`decode_frames` output down to mono (:func:`mixdown`) and check it is finite.

    Raises
    ------
    AudioError
        If a sample is NaN or infinite; the message names ``path``.
    """
    y = mixdown(data)
    if not np.isfinite(y).all():
        raise AudioError(f"audio file '{path}' contains NaN or infinite samples")
    return y


def conform(
    y: np.ndarray, orig_sr: int, sr: int, *, normalize: bool = True, overwrite: bool = False
) -> np.ndarray:
    """The last steps of :func:`load_audio`: resample mono ``y`` to ``sr``, peak-normalise.

    Parameters
    ----------
    y : np.ndarray
        Mono float32 samples at ``orig_sr`` (e.g. from :func:`decode_mono`).
    orig_sr, sr : int
        Their rate and the wanted one, in Hz.
    normalize : bool
        Peak-normalise to −0.1 dBFS, as :func:`load_audio` does.
    overwrite : bool
        Whether ``y`` may be normalised in place when no resampling is needed; by default it is
        left unchanged, so one decode can be conformed to several rates.

    Returns
    -------
    np.ndarray
        Shape ``(n_samples,)``, float32, C-contiguous.
    """
    if orig_sr == sr:
        y = np.require(y, np.float32, "C") if overwrite else np.array(y, np.float32, order="C")
    else:
        y = np.ascontiguousarray(resample(y, orig_sr, sr), dtype=np.float32)
    if normalize:
        # In place, on this call's own array: the product peak_normalize computes, in one pass.
        peak = max(float(y.max()), -float(y.min()))
        if peak > 0.0:
            y *= np.float32(10.0 ** (-0.1 / 20.0) / peak)
    return y


def mixdown(data: np.ndarray) -> np.ndarray:
    """Average the channels of ``(frames, channels)`` float32 samples to mono.

    Equal, bit for bit, to ``data.mean(axis=1, dtype=np.float32)`` (what ``librosa.load`` and
    earlier merkit versions compute), but for stereo about 30x faster: numpy reduces a
    length-2 row axis one row at a time, which costs ~20 ms for a 30 s clip at 44.1 kHz.

    Parameters
    ----------
    data : np.ndarray
        Shape ``(frames, channels)``, float32.

    Returns
    -------
    np.ndarray
        Shape ``(frames,)``, float32; a view of ``data`` for one channel.
    """
    if data.ndim != 2:
        raise ValueError(f"mixdown expects (frames, channels) samples, got shape {data.shape}")
    if data.shape[1] == 1:
        return data[:, 0]
    if data.shape[1] == 2:
        # (a + b) / 2 in float32 is exactly what numpy's mean does for two values.
        y = np.add(data[:, 0], data[:, 1], dtype=np.float32)
        y /= np.float32(2.0)
        return y
    return data.mean(axis=1, dtype=np.float32)


def crop_or_pad(
    y: np.ndarray,
    length: int = PAPER_CROP_SAMPLES,
    *,
    keep: Literal["last", "first"] = "last",
) -> np.ndarray:
    """Cut or zero-pad a mono signal to exactly ``length`` samples.

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(n,)``.
    length : int
        Output length. The paper uses 482 000 (30.125 s at 16 kHz).
    keep : {"last", "first"}
        Which end survives when ``y`` is longer. The paper's code keeps the *last* samples (the
        excess is dropped from the start, although a comment there says otherwise).

    Returns
    -------
    np.ndarray
        float32, shape ``(length,)``; zeros are appended at the end when ``y`` is shorter.
    """
    if keep not in ("last", "first"):
        raise ConfigError(f"keep must be 'last' or 'first', got {keep!r}")
    if length <= 0:
        raise ConfigError(f"length must be positive, got {length}")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"crop_or_pad expects a 1-D waveform, got shape {y.shape}")
    if len(y) >= length:
        out = y[len(y) - length :] if keep == "last" else y[:length]
        return np.ascontiguousarray(out)
    return np.concatenate([y, np.zeros(length - len(y), dtype=np.float32)])


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header (duration, rate, channels) without decoding the audio.

    Raises
    ------
    AudioError
        If the file is missing, empty or not a format libsndfile recognises.
    """
    path = Path(path)
    _check_file(path)
    try:
        with quiet_stderr():
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise AudioError(f"cannot read audio file '{path}': {_explain(error)}") from None
    return AudioInfo(
        path=path,
        duration=float(info.duration),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=f"{info.format}/{info.subtype}",
    )

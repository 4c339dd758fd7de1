"""Offline audio augmentation: the Hybrid method's classic transforms and audiomentations copies.

Two families, both made once per song and stored per song (so taking a fold's training rows takes
exactly its training songs' copies):

* **Classic** (paper §3.6; the Hybrid's stage A): time shift, pitch shift, time stretch and power
  shift, the four synthetic versions behind "Hybrid Augmented". The defaults follow the paper's
  text; ``compat=True`` reproduces the authors' code where it differs from the text.
* **audiomentations** (paper §3.6): TFM (``TimeMask`` + a waveform
  ``BandStopFilter``), SB (``SevenBandParametricEQ``) and RG (``Gain``), each alone at ``p=1``,
  with the v0.24–v0.40 defaults pinned explicitly because v0.41 changed ``TimeMask``'s.

Every randomised function draws from ``np.random.default_rng(seed)`` of a per-song seed, so a
song's copies are reproducible and independent of the other songs. The public per-song entry
points have the representation signature ``fn(y, sr, *, seed, **params) -> np.ndarray``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import librosa
import numpy as np

from merkit.core.errors import AudioError, ConfigError

if TYPE_CHECKING:
    import audiomentations as am

    from merkit.representations.logmel import LogMelConfig

N_CLASSIC = 4
"""Number of classic copies per song: time-shifted, pitch-shifted, time-stretched, power-shifted."""

CLASSIC_NAMES: tuple[str, ...] = ("time_shifted", "pitch_shifted", "time_stretched", "db_shifted")
"""Names of the classic copies in output order (the repo's ``_1_`` .. ``_4_`` suffixes)."""

# Direction probabilities of the repo's time shift: "right" (content earlier, end zero-filled),
# "left" (content later, start zero-filled), "both" (a random sign).
_COMPAT_SHIFT_DIRECTIONS = (0.25, 0.5, 0.25)


# --------------------------------------------------------------------------------------------
# Parameter draws (kept apart from the transforms so a test can replay exactly what was drawn)
# --------------------------------------------------------------------------------------------


def draw_shift_samples(
    rng: np.random.Generator, sr: int, max_seconds: float = 5.0, *, compat: bool = False
) -> int:
    """Draw a signed time shift in samples (positive: content moves later).

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness.
    sr : int
        Sample rate in Hz.
    max_seconds : float
        Largest shift in seconds.
    compat : bool
        ``False`` (paper): magnitude uniform in ``[0, max_seconds·sr]``, direction equally likely.
        ``True`` (repo): magnitude uniform in ``[0, max_seconds·sr)``; earlier with p = 1/4,
        later with p = 1/2, and a random sign with p = 1/4 (so earlier 3/8, later 5/8 overall).

    Returns
    -------
    int
        The shift in samples.
    """
    if max_seconds < 0:
        raise ConfigError(f"max_seconds must be >= 0, got {max_seconds}")
    max_samples = round(max_seconds * sr)
    if not compat:
        magnitude = int(rng.integers(0, max_samples, endpoint=True))
        return magnitude if rng.random() < 0.5 else -magnitude
    magnitude = int(rng.integers(0, max_samples)) if max_samples > 0 else 0
    direction = int(rng.choice(3, p=_COMPAT_SHIFT_DIRECTIONS))
    if direction == 0:
        return -magnitude
    if direction == 1:
        return magnitude
    return magnitude if rng.random() < 0.5 else -magnitude


def draw_semitones(
    rng: np.random.Generator, semitones: float = 2.0, *, compat: bool = False
) -> float:
    """Draw the pitch shift in semitones: ``±semitones`` with equal chance (``compat``: always +).

    The repo draws the direction from the wrong option list, so it always shifts up.
    """
    if compat:
        return float(semitones)
    return float(semitones) if rng.random() < 0.5 else -float(semitones)


def draw_stretch_rate(rng: np.random.Generator, rates: Sequence[float] = (0.5, 1.5)) -> float:
    """Draw a time-stretch rate uniformly from ``rates`` (> 1 speeds up, < 1 slows down)."""
    rates = tuple(float(rate) for rate in rates)
    if not rates or any(rate <= 0 for rate in rates):
        raise ConfigError(f"time-stretch rates must be positive numbers, got {rates}")
    return rates[int(rng.integers(len(rates)))]


def draw_power_shift(rng: np.random.Generator, db: float = 10.0) -> float:
    """Draw the power shift in dB: ``±db`` with equal chance."""
    return float(db) if rng.random() < 0.5 else -float(db)


# --------------------------------------------------------------------------------------------
# Classic transforms
# --------------------------------------------------------------------------------------------


def shift_signal(y: np.ndarray, n: int) -> np.ndarray:
    """Move the content of ``y`` by ``n`` samples, zero-filling the part left empty.

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(len,)``.
    n : int
        Positive: content moves later and the start is zero-filled. Negative: content moves
        earlier and the end is zero-filled. ``|n| >= len`` gives silence.

    Returns
    -------
    np.ndarray
        A new array of the same length and dtype (the repo's ``np.roll`` plus zeroing the
        wrapped part).
    """
    y = np.asarray(y)
    out = np.zeros_like(y)
    length = len(y)
    if abs(n) >= length:
        return out
    if n >= 0:
        out[n:] = y[: length - n]
    else:
        out[:n] = y[-n:]
    return out


def time_shift(
    y: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    max_seconds: float = 5.0,
    compat: bool = False,
) -> np.ndarray:
    """Shift the content by a random amount of up to ``max_seconds``, zero-filling the gap.

    The amount and direction are drawn by :func:`draw_shift_samples` (paper: uniform up to 5 s,
    either direction with equal chance; ``compat``: the repo's unequal direction probabilities).

    Returns
    -------
    np.ndarray
        float32, same length as ``y``.
    """
    n = draw_shift_samples(rng, sr, max_seconds, compat=compat)
    return shift_signal(np.asarray(y, dtype=np.float32), n)


def pitch_shift(
    y: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    semitones: float = 2.0,
    compat: bool = False,
) -> np.ndarray:
    """Shift the pitch by ``±semitones`` (equal chance; ``compat``: always up, the repo's bug).

    Uses ``librosa.effects.pitch_shift`` (phase-vocoder stretch + resampling, 12 bins per octave)
    with ``res_type="soxr_hq"``, which is far faster than the old default and transparent here.

    Returns
    -------
    np.ndarray
        float32, same length as ``y``.
    """
    steps = draw_semitones(rng, semitones, compat=compat)
    shifted = librosa.effects.pitch_shift(
        np.asarray(y, dtype=np.float32),
        sr=sr,
        n_steps=steps,
        bins_per_octave=12,
        res_type="soxr_hq",
    )
    return np.asarray(shifted, dtype=np.float32)


def time_stretch(
    y: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    rates: Sequence[float] = (0.5, 1.5),
) -> np.ndarray:
    """Speed up or slow down at a rate drawn from ``rates``, keeping the input length.

    ``librosa.effects.time_stretch`` changes the duration by ``1/rate``; the result is then
    truncated at the end (slower) or zero-padded at the end (faster), as the repo does.
    ``sr`` is unused (the phase vocoder works in samples) but kept for a uniform signature.

    Returns
    -------
    np.ndarray
        float32, same length as ``y``.
    """
    del sr
    rate = draw_stretch_rate(rng, rates)
    y = np.asarray(y, dtype=np.float32)
    stretched = librosa.effects.time_stretch(y, rate=rate)
    return np.asarray(librosa.util.fix_length(stretched, size=len(y)), dtype=np.float32)


def power_shift_db(mel_db: np.ndarray, rng: np.random.Generator, db: float = 10.0) -> np.ndarray:
    """Add ``±db`` (equal chance) to a log-mel in dB, the repo's "power shift".

    The repo applies the shift to the dB mel itself, not to the waveform. A waveform gain of
    ``±db`` before ``power_to_db(ref=1)`` would give the same result except where the per-clip
    ``top_db`` floor and the 0 dB time padding sit (those move here too; they would not with a
    gain). The whole array is shifted, padding rows included.

    Returns
    -------
    np.ndarray
        A new array, same shape, dtype preserved.
    """
    mel_db = np.asarray(mel_db)
    return mel_db + np.asarray(draw_power_shift(rng, db), dtype=mel_db.dtype)


# --------------------------------------------------------------------------------------------
# Log-mel plumbing
# --------------------------------------------------------------------------------------------


def _logmel_config(sr: int, params: dict[str, Any]) -> LogMelConfig:
    """``LogMelConfig(sr=sr, **params)`` (the registry's convention), ConfigError on bad values."""
    # Imported here, not at module level: merkit.representations.registry may register these
    # functions.
    from pydantic import ValidationError

    from merkit.representations.logmel import LogMelConfig

    try:
        return LogMelConfig(**{**params, "sr": sr})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"invalid log-mel parameters: {problems}") from None


def _crop_last(y: np.ndarray, length: int | None) -> np.ndarray:
    """Keep the last ``length`` samples when ``y`` is longer; never pad (the mel pads frames)."""
    from merkit.audio.decode import crop_or_pad

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise AudioError(f"expected a non-empty 1-D waveform, got shape {y.shape}")
    return crop_or_pad(y, length, keep="last") if length is not None and len(y) > length else y


def _song_rngs(seed: int, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one song seed (one per transform).

    Spawning keeps each transform's draws unchanged when another transform is altered or skipped.
    """
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(n)]


def classic_augmented_logmels(
    y: np.ndarray,
    sr: int,
    *,
    seed: int,
    compat: bool = False,
    stretch_rates: Sequence[float] = (0.5, 1.5),
    **logmel_params: Any,
) -> np.ndarray:
    """The four classic augmented log-mels of one song (Hybrid method's stage A, paper §3.6).

    The waveform is first cropped to its last ``crop_samples`` samples (as the repo does), then
    time-shifted, pitch-shifted and time-stretched; the fourth copy is the original's log-mel
    with ±10 dB added (:func:`power_shift_db`). Every log-mel uses the same ``LogMelConfig``
    as the original's.

    Parameters
    ----------
    y : np.ndarray
        Peak-normalised mono waveform, float32.
    sr : int
        Its sample rate (becomes the log-mel config's ``sr``).
    seed : int
        Per-song seed; each transform gets its own generator spawned from it.
    compat : bool
        Reproduce the repo's time-shift directions and always-up pitch shift.
    stretch_rates : sequence of float
        Time-stretch rates drawn from (the paper's 0.5/1.5; e.g. 0.8/1.25 is gentler).
    **logmel_params
        Fields of :class:`~merkit.representations.logmel.LogMelConfig`.

    Returns
    -------
    np.ndarray
        float32, shape ``(4, n_frames, n_mels)`` (``(4, 942, 128)`` by default), in the order of
        :data:`CLASSIC_NAMES`.
    """
    from merkit.representations.logmel import logmel

    cfg = _logmel_config(sr, logmel_params)
    y = _crop_last(y, cfg.crop_samples)
    shift_rng, pitch_rng, stretch_rng, power_rng = _song_rngs(seed, N_CLASSIC)
    copies = [
        logmel(time_shift(y, sr, shift_rng, compat=compat), cfg),
        logmel(pitch_shift(y, sr, pitch_rng, compat=compat), cfg),
        logmel(time_stretch(y, sr, stretch_rng, rates=stretch_rates), cfg),
        power_shift_db(logmel(y, cfg), power_rng),
    ]
    return np.stack(copies).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# audiomentations
# --------------------------------------------------------------------------------------------


def _audiomentations() -> Any:
    """The audiomentations module (the research extra), imported when a copy is made."""
    from merkit.core.versions import require_extra

    return require_extra("audiomentations", needed_by="the tfm, sb, rg and tanh augmentations")


def _tfm() -> am.Compose:
    am = _audiomentations()
    # TimeMask with the pre-0.41 defaults (0-50 % of the clip, hard edges: fade=False is
    # fade_duration=0.0 today); BandStopFilter's defaults have not changed but are pinned too.
    return am.Compose(
        [
            am.TimeMask(min_band_part=0.0, max_band_part=0.5, fade_duration=0.0, p=1.0),
            am.BandStopFilter(
                min_center_freq=200.0,
                max_center_freq=4000.0,
                min_bandwidth_fraction=0.5,
                max_bandwidth_fraction=1.99,
                min_rolloff=12,
                max_rolloff=24,
                zero_phase=False,
                p=1.0,
            ),
        ],
        p=1.0,
    )


def _sb() -> am.Compose:
    am = _audiomentations()
    return am.Compose([am.SevenBandParametricEQ(min_gain_db=-12.0, max_gain_db=12.0, p=1.0)])


def _rg() -> am.Compose:
    am = _audiomentations()
    return am.Compose([am.Gain(min_gain_db=-12.0, max_gain_db=12.0, p=1.0)])


def _tanh() -> am.Compose:
    am = _audiomentations()
    return am.Compose([am.TanhDistortion(min_distortion=0.01, max_distortion=0.7, p=1.0)])


AUGMENTATIONS: dict[str, Callable[[], am.Compose]] = {
    "tfm": _tfm,
    "sb": _sb,
    "rg": _rg,
    "tanh": _tanh,
}
"""Factories of the audiomentations pipelines, each transform at ``p=1`` with its v0.24–v0.40
defaults written out: ``tfm`` (time-frequency masking), ``sb`` (seven-band EQ), ``rg`` (random
gain ±12 dB) and ``tanh`` (tanh distortion, in the repo's list but not in the paper)."""


@contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """Seed Python's ``random`` and NumPy's legacy global RNG, restoring both afterwards.

    audiomentations draws from these global generators, so seeding them from the song seed makes
    a copy reproducible; restoring the previous states keeps the caller's random streams intact.
    Not thread-safe (the state is process-global); parallelise over processes, not threads.

    Parameters
    ----------
    seed : int
        Non-negative song seed; both global seeds are derived from it with ``SeedSequence``.
    """
    py_seed, np_seed = np.random.SeedSequence(seed).generate_state(2)
    py_state = random.getstate()
    np_state = np.random.get_state()
    random.seed(int(py_seed))
    np.random.seed(int(np_seed))
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _check_transform(transform: str) -> Callable[[], am.Compose]:
    try:
        return AUGMENTATIONS[transform]
    except KeyError:
        names = ", ".join(sorted(AUGMENTATIONS))
        raise ConfigError(f"unknown augmentation {transform!r}; choose one of {names}") from None


def audiomentations_copy(y: np.ndarray, sr: int, *, seed: int, transform: str) -> np.ndarray:
    """One augmented copy of a waveform with an audiomentations pipeline (paper §3.6).

    Parameters
    ----------
    y : np.ndarray
        Mono waveform.
    sr : int
        Sample rate in Hz.
    seed : int
        Per-song seed; the global ``random``/``np.random`` states are seeded from it for the call
        and restored afterwards (see :func:`seeded_global_random`).
    transform : str
        A key of :data:`AUGMENTATIONS`.

    Returns
    -------
    np.ndarray
        float32, same length as ``y``.
    """
    factory = _check_transform(transform)
    samples = np.ascontiguousarray(y, dtype=np.float32)  # the Butterworth filters assert float32
    pipeline = factory()
    with seeded_global_random(seed):
        out = pipeline(samples=samples, sample_rate=sr)
    return np.asarray(out, dtype=np.float32)


def augmented_logmel(
    y: np.ndarray, sr: int, *, seed: int, transform: str, **logmel_params: Any
) -> np.ndarray:
    """Log-mel of one audiomentations copy of a song (the paper makes exactly one per transform).

    The waveform is cropped to its last ``crop_samples`` samples *before* augmenting (identical
    for clips of at most 30.125 s, and cheaper); the log-mel then follows the given config.

    Parameters
    ----------
    y : np.ndarray
        Peak-normalised mono waveform.
    sr : int
        Its sample rate (becomes the log-mel config's ``sr``).
    seed : int
        Per-song seed.
    transform : str
        A key of :data:`AUGMENTATIONS` (``"tfm"``, ``"sb"``, ``"rg"``, ``"tanh"``).
    **logmel_params
        Fields of :class:`~merkit.representations.logmel.LogMelConfig`.

    Returns
    -------
    np.ndarray
        float32, shape ``(n_frames, n_mels)`` (``(942, 128)`` by default).
    """
    from merkit.representations.logmel import logmel

    _check_transform(transform)
    cfg = _logmel_config(sr, logmel_params)
    y = _crop_last(y, cfg.crop_samples)
    return np.asarray(
        logmel(audiomentations_copy(y, sr, seed=seed, transform=transform), cfg), dtype=np.float32
    )

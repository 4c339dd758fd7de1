"""A procedurally generated dataset: short pieces of music whose emotion cues follow MER research.

Nothing is stored on disk. Each song is rendered in memory from its ``(seed, index, quadrant)``,
bit-identically every time, so ``merkit benchmark`` has a default dataset that needs no download.

How a clip is made
------------------
Every song draws a hidden *arousal* and *valence* value from a normal distribution centred on its
quadrant (Q1: +A +V, Q2: +A -V, Q3: -A -V, Q4: -A +V). Each musical cue is then a noisy function
of those two values, following the cues the MER literature links to emotion (Gabrielsson &
Lindström 2010; Panda et al. 2018):

* arousal: tempo, note density, articulation (staccato vs legato), attack time, brightness
  (harmonic roll-off), percussion, accompaniment style, dynamics (swells vs steady), reverb;
* valence: mode (major vs minor), dissonance (minor-second / tritone cluster notes), roughness
  (detuned doubling), distortion (for angry songs), chromatic melody notes, register.

Because the hidden values overlap across quadrants and every cue has its own noise, a classifier
can learn the task well but not perfectly, the same way real songs sit near quadrant borders.
Key, timbre, chord progression and melody are random per song.

The musical content (notes, tempo, timbres) is drawn before any sample-rate dependent noise, so a
song rendered at 16 kHz and at 22.05 kHz has the same notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from merkit.audio.decode import peak_normalize
from merkit.core.errors import ConfigError
from merkit.core.labels import HIGH_AROUSAL, POSITIVE_VALENCE, QUADRANTS
from merkit.datasets.base import Dataset, Song

GENERATOR_VERSION = "v1"
"""Part of every :class:`SyntheticSource` key; bump it whenever the generator's output changes."""

PEAK_DBFS = -0.1
"""Peak level of every clip, matching the paper's peak normalisation of real audio."""

AROUSAL_SPREAD = 0.6
"""Standard deviation of a song's hidden arousal around its quadrant's centre (+1 or -1)."""

VALENCE_SPREAD = 0.8
"""Standard deviation of the hidden valence; larger than arousal's, as valence is harder in MER."""

_TABLE_SIZE = 4096  # one wavetable period, read by nearest sample (cheap; jitter <= 1/4096 cycle)
_TABLE_MASK = _TABLE_SIZE - 1  # power of two: "& mask" wraps the phase index
_N_HARMONICS = 14
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord progressions as scale degrees (0 = tonic); the scale decides each chord's quality.
_PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 3, 4, 0),
    (0, 5, 3, 4),
    (0, 3, 0, 4),
    (5, 3, 0, 4),
    (0, 6, 5, 6),
    (0, 2, 3, 4),
)
_NOTES_PER_BEAT = (0.5, 1.0, 2.0, 4.0)


# --------------------------------------------------------------------------------------------
# Cues: what a song sounds like, drawn from its quadrant


@dataclass(frozen=True)
class _Cues:
    """Musical parameters of one song (all independent of the sample rate)."""

    tempo: float  # beats per minute
    beats_per_bar: int
    notes_per_beat: float  # melody density
    gate: float  # sounding fraction of each melody slot: < 0.5 staccato, ~1 legato
    attack: float  # seconds
    release: float  # seconds
    rolloff: float  # harmonic amplitude ~ k ** -rolloff: smaller is brighter
    drums: bool
    drum_level: float
    accompaniment: str  # "pad", "arpeggio" or "stabs"
    swell_depth: float  # slow loudness swells, 0 = steady
    reverb: float  # wet mix
    major: bool
    dissonance: float  # probability that a chord gets a clashing cluster note
    detune_cents: float  # detuned doubling -> beating/roughness
    drive: float  # tanh distortion amount
    chromatic: float  # probability of an out-of-scale melody note
    tonic: int  # pitch class 0..11
    melody_centre: float  # MIDI pitch the melody wanders around
    leap: float  # probability of a melodic leap
    rest: float  # probability of a melodic rest


def _sample_cues(quadrant: str, rng: np.random.Generator) -> _Cues:
    """Draw a song's cues from overlapping per-quadrant distributions."""
    a = rng.normal(1.0 if quadrant in HIGH_AROUSAL else -1.0, AROUSAL_SPREAD)
    v = rng.normal(1.0 if quadrant in POSITIVE_VALENCE else -1.0, VALENCE_SPREAD)

    def noisy(centre: float, scale: float, lo: float, hi: float) -> float:
        return float(np.clip(centre + rng.normal(0.0, scale), lo, hi))

    density = int(np.clip(np.rint(1.5 + 0.9 * a + rng.normal(0.0, 0.6)), 0, 3))
    style = a + rng.normal(0.0, 0.7)
    accompaniment = "pad" if style < -0.4 else ("arpeggio" if style < 0.6 else "stabs")
    return _Cues(
        tempo=noisy(100.0 + 32.0 * a + 6.0 * v, 14.0, 50.0, 190.0),
        beats_per_bar=3 if rng.random() < 0.15 else 4,
        notes_per_beat=_NOTES_PER_BEAT[density],
        gate=noisy(0.7 - 0.22 * a, 0.12, 0.2, 1.0),
        attack=noisy(0.035 - 0.025 * a, 0.015, 0.003, 0.15),
        release=noisy(0.25 - 0.15 * a, 0.08, 0.02, 0.8),
        rolloff=noisy(1.6 - 0.45 * a - 0.15 * v, 0.3, 0.5, 3.0),
        drums=bool(rng.random() < 1.0 / (1.0 + np.exp(-(2.2 * a + 0.3)))),
        drum_level=noisy(0.55 + 0.15 * a, 0.12, 0.15, 1.0),
        accompaniment=accompaniment,
        swell_depth=noisy(0.3 - 0.2 * a, 0.12, 0.0, 0.8),
        reverb=noisy(0.25 - 0.1 * a, 0.08, 0.02, 0.6),
        major=bool(v + rng.normal(0.0, 0.45) > 0.0),
        dissonance=noisy(0.05 - 0.2 * v + 0.12 * a, 0.12, 0.0, 0.8),
        detune_cents=noisy(4.0 - 8.0 * v + 4.0 * a, 5.0, 0.0, 35.0),
        drive=noisy(0.5 * a - 0.6 * v - 0.3, 0.35, 0.0, 2.5),
        chromatic=noisy(0.04 - 0.06 * v, 0.04, 0.0, 0.35),
        tonic=int(rng.integers(12)),
        melody_centre=noisy(71.0 + 4.0 * v + 1.5 * a, 3.0, 58.0, 84.0),
        leap=noisy(0.12 + 0.06 * a, 0.05, 0.0, 0.4),
        rest=noisy(0.15, 0.06, 0.0, 0.4),
    )


# --------------------------------------------------------------------------------------------
# Score: note events


@dataclass(frozen=True)
class _Part:
    """Note events of one instrument: onsets and durations in seconds, MIDI pitch, velocity."""

    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray


def _scale_pitch(degree: np.ndarray, scale: np.ndarray, tonic_midi: int) -> np.ndarray:
    """MIDI pitch of (possibly negative) scale degrees above ``tonic_midi``."""
    octave, step = np.divmod(degree, len(scale))
    return tonic_midi + 12 * octave + scale[step]


def _fold(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Reflect a random walk into ``[lo, hi]`` (a triangle wave), keeping steps small."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _compose(cues: _Cues, rng: np.random.Generator, duration: float) -> dict[str, _Part]:
    """Chords, bass and melody (plus drum hits) covering ``duration`` seconds."""
    beat = 60.0 / cues.tempo
    bar = beat * cues.beats_per_bar
    n_bars = int(np.ceil(duration / bar)) + 1
    scale = _MAJOR if cues.major else _MINOR
    chord_root = 48 + cues.tonic  # C3..B3
    progression = np.array(_PROGRESSIONS[rng.integers(len(_PROGRESSIONS))])
    degrees = progression[np.arange(n_bars) % len(progression)]

    # Chords: diatonic triads; some get a clashing minor second or tritone above the root.
    triads = degrees[:, None] + np.array([0, 2, 4])[None, :]
    chord = _scale_pitch(triads, scale, chord_root).astype(float)
    clash = rng.random(n_bars) < cues.dissonance
    extra = chord[:, 0] + rng.choice([1.0, 6.0, 13.0], size=n_bars)
    bar_start = np.arange(n_bars) * bar
    chord_parts = _accompany(cues, rng, chord, np.where(clash, extra, np.nan), bar_start, beat)

    # Bass: chord roots an octave down, once per bar (calm) or on every beat (energetic).
    hits_per_bar = cues.beats_per_bar if cues.accompaniment == "stabs" else 1
    step = bar / hits_per_bar
    bass_onset = (bar_start[:, None] + step * np.arange(hits_per_bar)[None, :]).ravel()
    bass_pitch = np.repeat(chord[:, 0] - 12.0, hits_per_bar)
    bass = _Part(
        bass_onset,
        np.full(bass_onset.size, step * min(1.0, cues.gate + 0.2)),
        bass_pitch,
        0.8 + 0.1 * rng.standard_normal(bass_onset.size),
    )

    # Melody: a random walk on scale degrees over a rhythmic grid, snapped to chord tones on beats.
    slot = beat / cues.notes_per_beat
    n_slots = int(np.ceil(duration / slot)) + 1
    steps = rng.choice([-2, -1, -1, 0, 1, 1, 2], size=n_slots)
    leaps = rng.random(n_slots) < cues.leap
    steps = np.where(leaps, rng.choice([-5, -4, -3, 3, 4, 5], size=n_slots), steps)
    centre_degree = int(np.rint((cues.melody_centre - chord_root - 12) / 12 * 7))
    walk = _fold(centre_degree + np.cumsum(steps) - steps[0], centre_degree - 6, centre_degree + 6)
    onset = np.arange(n_slots) * slot
    which_bar = np.minimum((onset // bar).astype(int), n_bars - 1)
    on_beat = np.isclose(np.mod(onset, beat), 0.0) | np.isclose(np.mod(onset, beat), beat)
    snap = on_beat & (rng.random(n_slots) < 0.6)
    # nearest chord tone (degree of root, third or fifth) on snapped slots
    tones = degrees[which_bar][:, None] + np.array([0, 2, 4])[None, :]
    delta = np.mod(tones - walk[:, None], 7)
    delta = np.where(delta > 3, delta - 7, delta)
    nearest = walk + delta[np.arange(n_slots), np.argmin(np.abs(delta), axis=1)]
    walk = np.where(snap, nearest, walk)
    pitch = _scale_pitch(walk, scale, chord_root + 12).astype(float)
    pitch += np.where(rng.random(n_slots) < cues.chromatic, rng.choice([-1.0, 1.0], n_slots), 0.0)
    sounding = rng.random(n_slots) >= cues.rest
    accent = np.where(np.isclose(np.mod(onset, bar), 0.0), 0.15, 0.0)
    melody = _Part(
        onset[sounding],
        np.full(int(sounding.sum()), slot * cues.gate),
        pitch[sounding],
        (0.75 + accent + 0.08 * rng.standard_normal(n_slots))[sounding],
    )

    parts = {"bass": bass, "melody": melody, **chord_parts}
    if cues.drums:
        parts.update(_drum_pattern(cues, rng, n_bars, bar, beat))
    return parts


def _accompany(
    cues: _Cues,
    rng: np.random.Generator,
    chord: np.ndarray,
    clash: np.ndarray,
    bar_start: np.ndarray,
    beat: float,
) -> dict[str, _Part]:
    """The chord part in the song's accompaniment style: sustained pad, arpeggio or short stabs."""
    voices = np.concatenate([chord, clash[:, None]], axis=1)  # (bars, 4); NaN = no clash note
    n_voices = voices.shape[1]
    bar = beat * cues.beats_per_bar
    if cues.accompaniment == "pad":
        onset = np.repeat(bar_start, n_voices)
        duration = np.full(onset.size, bar * 0.98)
        pitch = voices.ravel()
    elif cues.accompaniment == "stabs":
        per_bar = cues.beats_per_bar * 2  # eighth-note stabs
        hits = bar_start[:, None] + (beat / 2) * np.arange(per_bar)[None, :]
        onset = np.repeat(hits.ravel(), n_voices)
        duration = np.full(onset.size, beat / 2 * cues.gate)
        pitch = np.repeat(voices, per_bar, axis=0).ravel()
    else:  # arpeggio: chord tones one after another, up and down
        per_bar = cues.beats_per_bar * 2
        order = np.array([0, 1, 2, 1])[np.arange(per_bar) % 4]
        onset = (bar_start[:, None] + (beat / 2) * np.arange(per_bar)[None, :]).ravel()
        duration = np.full(onset.size, beat / 2 * min(1.0, cues.gate + 0.3))
        pitch = (chord[:, order] + 12.0).ravel()
        # the clash note, when present, sounds over the whole bar
        has = ~np.isnan(clash)
        onset = np.concatenate([onset, bar_start[has]])
        duration = np.concatenate([duration, np.full(int(has.sum()), bar * 0.9)])
        pitch = np.concatenate([pitch, clash[has]])
    keep = ~np.isnan(pitch)
    velocity = 0.6 + 0.06 * rng.standard_normal(onset.size)
    return {"chords": _Part(onset[keep], duration[keep], pitch[keep], velocity[keep])}


def _drum_pattern(
    cues: _Cues, rng: np.random.Generator, n_bars: int, bar: float, beat: float
) -> dict[str, _Part]:
    """Kick, snare and hi-hat onsets (pitch unused); busier patterns for faster, denser songs."""
    beats = (np.arange(n_bars)[:, None] * bar + beat * np.arange(cues.beats_per_bar)).ravel()
    beat_in_bar = np.tile(np.arange(cues.beats_per_bar), n_bars)
    four_on_floor = cues.notes_per_beat >= 2 and rng.random() < 0.5
    kick = beats if four_on_floor else beats[beat_in_bar % 2 == 0]
    snare = beats[beat_in_bar % 2 == 1]
    hat_step = beat / (4 if cues.notes_per_beat >= 4 else 2)
    hat = np.arange(int(np.ceil(n_bars * bar / hat_step))) * hat_step

    def part(onsets: np.ndarray, level: float) -> _Part:
        vel = level * cues.drum_level * (1.0 + 0.1 * rng.standard_normal(onsets.size))
        zeros = np.zeros(onsets.size)
        return _Part(onsets, zeros, zeros, vel)

    return {"kick": part(kick, 1.0), "snare": part(snare, 0.7), "hat": part(hat, 0.25)}


# --------------------------------------------------------------------------------------------
# Rendering


def _timbre(rng: np.random.Generator, rolloff: float, n_harmonics: int) -> np.ndarray:
    """Random harmonic amplitudes around a ``k ** -rolloff`` spectrum (an instrument's colour)."""
    k = np.arange(1, n_harmonics + 1)
    amps = k**-rolloff * np.exp(rng.normal(0.0, 0.35, n_harmonics))
    amps[1::2] *= rng.uniform(0.3, 1.0)  # even/odd balance: clarinet-like .. saw-like
    return amps / amps.sum()


def _wavetables(amps: np.ndarray) -> list[np.ndarray]:
    """``tables[h]`` = one period with the first ``h`` harmonics (index 0 unused)."""
    x = 2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
    partials = amps[:, None] * np.sin(np.arange(1, amps.size + 1)[:, None] * x[None, :])
    cumulative = np.cumsum(partials, axis=0).astype(np.float32)
    return [np.zeros(_TABLE_SIZE, np.float32), *cumulative]


def _render_tonal(
    part: _Part,
    tables: list[np.ndarray],
    sr: int,
    n: int,
    phase: np.ndarray,
    *,
    detune: float,
    attack: float,
    release: float,
    sustain: float,
) -> np.ndarray:
    """Sum of the part's notes: wavetable oscillators with ADSR envelopes (one loop per note).

    Harmonics above Nyquist are dropped per note, so no partial aliases.
    """
    out = np.zeros(n, np.float32)
    ratio = 2.0 ** (detune / 1200.0)
    decay = 0.12
    ramp = np.arange(n, dtype=np.float64)  # float64: sample * increment exceeds float32 precision
    for i in range(part.onset.size):
        start = round(part.onset[i] * sr)
        hold = float(part.duration[i])
        length = min(round((hold + release) * sr), n - start)
        if length <= 1:
            continue
        f0 = 440.0 * 2.0 ** ((part.pitch[i] - 69.0) / 12.0)
        n_harm = int(min(len(tables) - 1, 0.45 * sr / (f0 * ratio)))
        if n_harm < 1:
            continue
        table = tables[n_harm]
        a = min(attack, hold * 0.5)
        knots = np.array([0.0, a, a + decay, max(hold, a + decay), hold + release]) * sr
        env = np.interp(ramp[:length], knots, [0.0, 1.0, sustain, sustain, 0.0])
        increment = f0 * _TABLE_SIZE / sr
        offset = phase[i] * _TABLE_SIZE
        wave = table[(ramp[:length] * increment + offset).astype(np.intp) & _TABLE_MASK]
        if detune > 0.0:
            detuned = ramp[:length] * (increment * ratio)
            wave = 0.6 * (wave + table[detuned.astype(np.intp) & _TABLE_MASK])
        out[start : start + length] += (part.velocity[i] * env).astype(np.float32) * wave
    return out


def _drum_sounds(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    """Kick (falling sine sweep), snare (noise + tone) and hi-hat (high-passed noise) samples."""
    t = np.arange(round(0.35 * sr)) / sr
    sweep = 2 * np.pi * (50.0 * t + 100.0 * 0.04 * (1.0 - np.exp(-t / 0.04)))
    kick = np.sin(sweep) * np.exp(-t / 0.09)
    ts = t[: round(0.2 * sr)]
    snare = (0.7 * rng.standard_normal(ts.size) + 0.5 * np.sin(2 * np.pi * 185.0 * ts)) * np.exp(
        -ts / 0.05
    )
    th = t[: round(0.06 * sr)]
    hat = np.diff(rng.standard_normal(th.size + 1)) * np.exp(-th / 0.015) * 0.5
    return {
        name: x.astype(np.float32) for name, x in (("kick", kick), ("snare", snare), ("hat", hat))
    }


def _render(
    cues: _Cues, parts: dict[str, _Part], rng: np.random.Generator, sr: int, n: int
) -> np.ndarray:
    """Mix every part, then apply dynamics, reverb, distortion, noise and peak normalisation."""
    # Timbres and phases come first so they do not depend on the sample rate.
    lead = _wavetables(_timbre(rng, cues.rolloff, _N_HARMONICS))
    keys = _wavetables(_timbre(rng, cues.rolloff + 0.3, _N_HARMONICS))
    low = _wavetables(_timbre(rng, cues.rolloff + 0.8, 6))
    phases = {name: rng.random(part.onset.size) for name, part in parts.items()}
    swell_period, swell_phase = rng.uniform(6.0, 14.0), rng.uniform(0.0, 2 * np.pi)

    mix = 0.5 * _render_tonal(
        parts["melody"], lead, sr, n, phases["melody"], detune=cues.detune_cents,
        attack=cues.attack, release=cues.release, sustain=float(np.clip(cues.gate, 0.3, 0.9)),
    )  # fmt: skip
    mix += 0.22 * _render_tonal(
        parts["chords"], keys, sr, n, phases["chords"], detune=cues.detune_cents,
        attack=cues.attack * (4.0 if cues.accompaniment == "pad" else 1.0),
        release=cues.release * 1.5, sustain=0.7,
    )  # fmt: skip
    mix += 0.45 * _render_tonal(
        parts["bass"], low, sr, n, phases["bass"], detune=0.0,
        attack=0.01, release=0.1, sustain=0.8,
    )  # fmt: skip
    if cues.drums:
        for name, sound in _drum_sounds(rng, sr).items():
            _add_hits(mix, parts[name], 0.6 * sound, sr)

    t = np.arange(n, dtype=np.float32) * np.float32(2 * np.pi / (sr * swell_period))
    mix *= 1.0 - np.float32(cues.swell_depth * 0.5) * (1.0 + np.sin(t + np.float32(swell_phase)))

    # Reverb: convolve with exponentially decaying noise (a diffuse room tail).
    tail = np.arange(round(0.8 * sr), dtype=np.float32) / np.float32(sr)
    impulse = rng.standard_normal(tail.size, dtype=np.float32) * np.exp(-tail / np.float32(0.3))
    impulse *= np.float32(cues.reverb) / np.sqrt(np.sum(impulse**2))
    mix += fftconvolve(mix, impulse)[:n]

    mix /= np.float32(np.max(np.abs(mix)) or 1.0)
    if cues.drive > 0.0:
        gain = 1.0 + 3.0 * cues.drive
        mix = np.tanh(np.float32(gain) * mix) / np.float32(np.tanh(gain))
    mix += np.float32(10 ** (-45 / 20)) * rng.standard_normal(n, dtype=np.float32)
    return peak_normalize(mix, headroom_db=-PEAK_DBFS)


def _add_hits(out: np.ndarray, part: _Part, sound: np.ndarray, sr: int) -> None:
    """Add ``sound`` at each onset of ``part`` scaled by its velocity (in place)."""
    for onset, velocity in zip(part.onset, part.velocity, strict=True):
        start = round(onset * sr)
        if start >= out.size:
            continue
        length = min(sound.size, out.size - start)
        out[start : start + length] += np.float32(velocity) * sound[:length]


def generate_clip(
    quadrant: str, rng: np.random.Generator, sr: int = 16000, duration: float = 30.0
) -> np.ndarray:
    """Render one synthetic song of ``quadrant``.

    Parameters
    ----------
    quadrant : str
        ``"Q1"``..``"Q4"``.
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same clip.
    sr : int
        Sample rate in Hz.
    duration : float
        Length in seconds; the clip has ``round(duration * sr)`` samples.

    Returns
    -------
    numpy.ndarray
        Mono float32 audio peak-normalised to :data:`PEAK_DBFS`.

    Raises
    ------
    ConfigError
        If the quadrant, sample rate or duration is invalid.
    """
    if quadrant not in QUADRANTS:
        raise ConfigError(f"synthetic clip: unknown quadrant {quadrant!r}; expected Q1..Q4")
    if sr < 1000:
        raise ConfigError(f"synthetic clip: sample rate must be at least 1000 Hz, got {sr}")
    if not duration > 0:
        raise ConfigError(f"synthetic clip: duration must be positive, got {duration}")
    n = round(duration * sr)
    cues = _sample_cues(quadrant, rng)
    parts = _compose(cues, rng, duration)
    return _render(cues, parts, rng, sr, n)


# --------------------------------------------------------------------------------------------
# Dataset


@dataclass(frozen=True)
class SyntheticSource:
    """The audio of one synthetic song, generated on demand (implements ``AudioSource``)."""

    seed: int
    index: int
    quadrant: str
    duration: float = 30.0

    def __post_init__(self) -> None:
        if self.quadrant not in QUADRANTS:
            raise ConfigError(f"synthetic song: unknown quadrant {self.quadrant!r}")
        # 30 and 30.0 must give the same key
        object.__setattr__(self, "duration", float(self.duration))

    @property
    def key(self) -> str:
        fields = (GENERATOR_VERSION, self.seed, self.index, self.quadrant, self.duration)
        return "synthetic:" + ":".join(str(f) for f in fields)

    @property
    def description(self) -> str:
        return (
            f"synthetic {self.quadrant} song #{self.index} (seed {self.seed}, {self.duration:g} s)"
        )

    def load(self, sr: int) -> np.ndarray:
        """Generate the clip at ``sr`` Hz (mono float32, peak at :data:`PEAK_DBFS`)."""
        entropy = [self.seed, self.index, QUADRANTS.index(self.quadrant)]
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        return generate_clip(self.quadrant, rng, sr=sr, duration=self.duration)


def load_synthetic(
    root: Path | str | None = None,
    *,
    n_per_quadrant: int = 40,
    seed: int = 0,
    duration: float = 30.0,
) -> Dataset:
    """A balanced synthetic dataset generated in memory (no files).

    Parameters
    ----------
    root : path or None
        Ignored; accepted because every loader shares one signature.
    n_per_quadrant : int
        Songs per quadrant (at least 2).
    seed : int
        Non-negative seed; the same seed always gives the same songs.
    duration : float
        Clip length in seconds (at least 1).

    Returns
    -------
    Dataset
        ``4 * n_per_quadrant`` songs with ids ``SYN{seed:02d}-{i:04d}``; quadrants cycle
        Q1, Q2, Q3, Q4 over ``i``.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    del root
    if isinstance(n_per_quadrant, bool) or not isinstance(n_per_quadrant, int | np.integer):
        raise ConfigError(
            f"synthetic dataset: n_per_quadrant must be an integer, got {n_per_quadrant!r}"
        )
    if n_per_quadrant < 2:
        raise ConfigError(
            f"synthetic dataset: n_per_quadrant must be at least 2, got {n_per_quadrant}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"synthetic dataset: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(duration, int | float) or not duration >= 1.0:
        raise ConfigError(f"synthetic dataset: duration must be at least 1 s, got {duration!r}")
    songs = []
    for i in range(4 * int(n_per_quadrant)):
        quadrant = QUADRANTS[i % 4]
        source = SyntheticSource(int(seed), i, quadrant, float(duration))
        songs.append(Song(f"SYN{seed:02d}-{i:04d}", source, quadrant, group=None))
    return Dataset(name="synthetic", songs=songs)

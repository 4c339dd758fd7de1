"""A synthetic probe of cue sensitivity on piano-like music (issue 33).

This is NOT an emotion dataset. It asks one question: do a model's arousal and valence answers
move with the musical cues that the music-psychology literature ties to them (Gabrielsson &
Lindström 2010, "The role of structure in the musical expression of emotions"), when every piece
is played on the same synthetic piano? Its "labels" are the quadrant of the cue configuration a
piece was rendered with, under the stated mapping:

- high arousal: fast tempo, dense notes, loud (high velocity: louder *and* brighter, as a real
  piano), detached (staccato) articulation; low arousal: slow, sparse, soft, legato;
- positive valence: major mode, consonant diatonic progressions; negative valence: harmonic minor
  with diminished chords (ii°, vii°, vii°7) in the progressions.

Two sets, each piece 30 s at 16 kHz mono:

- ``quadrant``: ``--per-quadrant`` pieces per quadrant, every arousal cue on the quadrant's side
  (drawn within a range) and its mode/progressions on the valence side;
- ``cue-<name>``: one cue varied over a few levels with every other cue fixed at a middle value
  (tempo, note density, loudness, articulation, mode, register); the same ``--per-level`` seeds
  at every level (the same key, progression, voicing and melody), so a level's effect is a
  paired difference.

Nuisance factors vary at random with the seed so that no constant separates the classes: the key
(12 tonics), the register (melody centre within MIDI 60-74 in the quadrant set), the voicing
(inversion, open/close), the accompaniment pattern and the overall level (peak between -12 and
-3 dBFS; merkit's canonical front end normalises the peak anyway, so loudness reaches the model
as dynamics and brightness, as on any mastered recording).

The piano: per note up to 10 inharmonic partials (``f_k = k f0 sqrt(1 + B k^2)``), each with an
exponential decay that is shorter for higher partials and higher notes, brightness rising with
velocity, a 2 ms attack, a short low-passed hammer-noise burst, and a damper release (short when
detached, longer when legato). Audio is written to ``--audio-dir`` (default a temporary folder
outside the repository), never to git.

Prediction uses the product API (:func:`merkit.product.predict.load_model`,
:meth:`Predictor.predict`, :func:`merkit.product.relative.with_relative`) for the shipped
``default`` and ``fast`` models.

Example::

    nice -n 19 python benchmarks/cue_probe.py --audio-dir /tmp/cue_probe \\
        --out benchmarks/results/cue_probe
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
DURATION_S = 30.0
PROBE_VERSION = "1"

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
# progressions as 0-based scale degrees of the chord roots; "7" adds the chord's seventh
MAJOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 1, 4, 0), (0, 3, 0, 4))
MINOR_PROGRESSIONS = (
    (0, 3, 4, 0),
    (0, 1, 4, 0),  # i ii° V i
    (0, 5, 1, 4),  # i VI ii° V
    (0, 6, 0, 4),  # i vii° i V
    (0, 3, 6, 0),  # i iv vii° i
)

# the stated cue mapping: (low, high) ranges per arousal side; valence by mode
AROUSAL_CUES = {
    "high": {"tempo": (120.0, 168.0), "density": (2.0, 4.0), "velocity": (0.7, 0.95),
             "articulation": (0.3, 0.5)},
    "low": {"tempo": (52.0, 80.0), "density": (0.5, 1.0), "velocity": (0.2, 0.42),
            "articulation": (1.0, 1.2)},
}  # fmt: skip
MIDDLE = {"tempo": 96.0, "density": 1.0, "velocity": 0.55, "articulation": 0.8, "register": 67}
CUE_LEVELS: dict[str, tuple[Any, ...]] = {
    "tempo": (56.0, 80.0, 112.0, 152.0),
    "density": (0.5, 1.0, 2.0, 4.0),
    "velocity": (0.25, 0.45, 0.65, 0.9),
    "articulation": (1.15, 0.8, 0.4),  # legato -> detached
    "mode": ("minor", "major"),
    "register": (52, 62, 72, 82),
}
"""Levels of each single-cue set, ordered from the low-arousal / negative end of the mapping
(register has no stated direction: low to high)."""
CUE_AXIS = {"tempo": "arousal", "density": "arousal", "velocity": "arousal",
            "articulation": "arousal", "mode": "valence", "register": None}  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """Everything a piece is rendered from (seed + cues); nuisance factors follow the seed."""

    piece_id: str
    set: str
    seed: int
    tempo: float
    density: float  # melody notes per beat (accompaniment pattern follows it)
    velocity: float
    articulation: float  # sounding length / inter-onset interval (>1 overlaps: legato)
    mode: str
    register: int  # melody centre, MIDI
    quadrant: str | None = None  # label under the stated mapping (quadrant set only)
    level: int | None = None  # index into CUE_LEVELS (single-cue sets)


# ---------------------------------------------------------------------------------------------
# The piano


def _lowpass(x: np.ndarray, alpha: float) -> np.ndarray:
    from scipy.signal import lfilter

    return lfilter([alpha], [1, alpha - 1], x)


def piano_note(
    midi: float, held_s: float, velocity: float, release_s: float, rng: np.random.Generator
) -> np.ndarray:
    """One piano-ish note: inharmonic partials, frequency-dependent decay, hammer noise."""
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    n = int((held_s + release_s) * SR)
    t = np.arange(n) / SR
    inharm = 3e-4 * (f0 / 262) ** 0.5
    tau0 = float(np.clip(3.5 * (262 / f0) ** 0.7, 0.35, 9.0))  # low notes ring longer
    tilt = 2.4 - 1.4 * velocity  # louder = brighter (steeper roll-off when soft)
    out = np.zeros(n)
    for k in range(1, 11):
        fk = k * f0 * np.sqrt(1 + inharm * k * k)
        if fk > 7000:
            break
        amp = k**-tilt * (1 + 0.15 * rng.standard_normal())
        tau = tau0 / (1 + 0.7 * (k - 1))
        out += amp * np.exp(-t / tau) * np.sin(2 * np.pi * fk * t + rng.uniform(0, 2 * np.pi))
    env = np.minimum(1.0, t / 0.002)
    after = t > held_s
    env[after] *= np.exp(-(t[after] - held_s) / max(release_s / 5, 1e-3))  # damper
    out *= env
    m = min(n, int(0.02 * SR))
    noise = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.003 * SR))
    out[:m] += 0.25 * velocity * _lowpass(noise, 0.3 + 0.4 * velocity)
    return out * velocity**1.5


def _chord(scale: tuple[int, ...], root: int, seventh: bool) -> list[int]:
    """Semitones above the tonic of the triad (plus seventh) on scale degree ``root``."""
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return [scale[(root + s) % 7] + 12 * ((root + s) // 7) for s in steps]


def render(piece: Piece) -> np.ndarray:
    """The piece's waveform (float32, 30 s, 16 kHz)."""
    # separate streams: nuisance/score draws stay the same when a cue level changes
    rs = np.random.default_rng([piece.seed, 0])  # structure
    rm = np.random.default_rng([piece.seed, 1])  # melody
    rt = np.random.default_rng([piece.seed, 2])  # timbre jitter
    tonic = int(rs.integers(12))
    minor = piece.mode == "minor"
    scale = HARMONIC_MINOR if minor else MAJOR
    progressions = MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS
    progression = progressions[int(rs.integers(len(progressions)))]
    bass_gap = int(rs.integers(14, 20))
    inversion = int(rs.integers(3))
    open_voicing = bool(rs.random() < 0.5)
    pattern = int(rs.integers(2))
    peak_db = float(rs.uniform(-12, -3))
    beat = 60.0 / piece.tempo
    n_beats = int(np.ceil(DURATION_S / beat)) + 1
    notes: list[tuple[float, float, float, float]] = []  # onset s, ioi s, midi, velocity
    lh_root = piece.register - bass_gap
    for bar in range(0, n_beats, 4):
        degree = progression[(bar // 4) % len(progression)]
        seventh = minor and degree == 6 and rs.random() < 0.5  # vii°7 now and then
        tones = sorted(_chord(scale, degree, seventh))
        tones = tones[inversion % len(tones) :] + [x + 12 for x in tones[: inversion % len(tones)]]
        if open_voicing:
            tones = [tones[0] - 12, *tones[1:]]
        base = 12 * round((lh_root - tonic) / 12) + tonic
        pitches = [base + x for x in tones]
        vel = piece.velocity * 0.8
        if piece.density <= 0.5:  # one block chord a bar
            notes += [(bar * beat, 4 * beat, p, vel) for p in pitches]
        elif piece.density <= 1 or pattern == 0:  # chord on each half bar
            for half in (0, 2):
                notes += [((bar + half) * beat, 2 * beat, p, vel) for p in pitches]
        else:  # broken chord, as many notes a beat as the melody's density
            step = 1.0 / piece.density
            for i in range(int(4 * piece.density)):
                p = pitches[i % len(pitches)] if i % 4 != 3 else pitches[1] + 12
                notes.append(((bar + i * step) * beat, step * beat, p, vel))
    # melody: a random walk on the scale, chord tones on beats
    degree_now = 7 + int(rm.integers(7))
    step = 1.0 / piece.density
    onset = 0.0
    while onset < n_beats:
        chord_root = progression[(int(onset) // 4) % len(progression)]
        degree_now += int(rm.choice((-2, -1, -1, 0, 1, 1, 2)))
        degree_now = int(np.clip(degree_now, 3, 11))
        if abs(onset - round(onset)) < 1e-9:  # on the beat: nearest chord tone
            options = [chord_root + s + 7 * o for s in (0, 2, 4) for o in (0, 1, 2)]
            degree_now = min(options, key=lambda d: abs(d - degree_now))
        rest = rm.random() < 0.08
        if not rest:
            semis = scale[degree_now % 7] + 12 * (degree_now // 7)
            midi = 12 * round((piece.register - 12 - tonic) / 12) + tonic + semis
            accent = 0.1 if abs(onset % 2) < 1e-9 else 0.0
            vel = piece.velocity * (1 + accent) + 0.04 * rm.standard_normal()
            notes.append((onset * beat, step * beat, midi, float(np.clip(vel, 0.05, 1.0))))
        onset += step
    out = np.zeros(int((DURATION_S + 4) * SR))
    legato = piece.articulation >= 1
    for start, ioi, midi, vel in notes:
        if start >= DURATION_S:
            continue
        held = ioi * piece.articulation
        release = 0.5 if legato else 0.06
        wave = piano_note(midi, held, vel, release, rt)
        i = int(start * SR)
        out[i : i + len(wave)] += wave[: len(out) - i]
    out = out[: int(DURATION_S * SR)]
    out *= 10 ** (peak_db / 20) / max(float(np.abs(out).max()), 1e-9)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The probe's pieces


def quadrant_pieces(per_quadrant: int, seed: int = 0) -> list[Piece]:
    """``per_quadrant`` pieces per quadrant, cues drawn on the quadrant's sides."""
    rng = np.random.default_rng([seed, 33])
    pieces = []
    sides = {"Q1": ("high", "major"), "Q2": ("high", "minor"), "Q3": ("low", "minor"),
             "Q4": ("low", "major")}  # fmt: skip
    for q, (arousal, mode) in sides.items():
        for i in range(per_quadrant):
            cues = AROUSAL_CUES[arousal]
            density = float(
                rng.choice(
                    [
                        d
                        for d in (0.5, 1.0, 2.0, 4.0)
                        if cues["density"][0] <= d <= cues["density"][1]
                    ]
                )
            )
            tempo = float(rng.uniform(*cues["tempo"]))
            if density >= 4 and tempo > 140:  # keep it playable: at most ~9 notes a second
                density = 2.0
            pieces.append(
                Piece(
                    piece_id=f"quadrant-{q}-{i:02d}",
                    set="quadrant",
                    seed=int(rng.integers(1 << 30)),
                    tempo=tempo,
                    density=density,
                    velocity=float(rng.uniform(*cues["velocity"])),
                    articulation=float(rng.uniform(*cues["articulation"])),
                    mode=mode,
                    register=int(rng.integers(60, 75)),
                    quadrant=q,
                )
            )
    return pieces


def cue_pieces(per_level: int, seed: int = 0) -> list[Piece]:
    """One set per cue: its levels over the same ``per_level`` seeds, other cues at MIDDLE."""
    rng = np.random.default_rng([seed, 34])
    pieces = []
    for cue, levels in CUE_LEVELS.items():
        seeds = [int(s) for s in rng.integers(1 << 30, size=per_level)]
        for j, s in enumerate(seeds):
            base = Piece(
                piece_id="",
                set=f"cue-{cue}",
                seed=s,
                tempo=MIDDLE["tempo"],
                density=MIDDLE["density"],
                velocity=MIDDLE["velocity"],
                articulation=MIDDLE["articulation"],
                mode="major" if j % 2 == 0 else "minor",
                register=int(MIDDLE["register"]),
            )
            for k, value in enumerate(levels):
                pieces.append(
                    replace(base, piece_id=f"cue-{cue}-{k}-{j:02d}", level=k, **{cue: value})
                )
    return pieces


def mixed_pieces(n: int, seed: int = 0) -> list[Piece]:
    """``n`` pieces whose four arousal cues are drawn each on its own over the whole range of
    both sides (mode at random), so they disagree as in real music; labelled by
    :func:`arousal_index` (above its median = high) and the mode."""
    rng = np.random.default_rng([seed, 35])
    pieces = []
    lo, hi = AROUSAL_CUES["low"], AROUSAL_CUES["high"]
    for i in range(n):
        tempo = float(np.exp(rng.uniform(np.log(lo["tempo"][0]), np.log(hi["tempo"][1]))))
        density = float(rng.choice((0.5, 1.0, 2.0, 4.0)))
        if density >= 4 and tempo > 140:
            density = 2.0
        pieces.append(
            Piece(
                piece_id=f"mixed-{i:03d}",
                set="mixed",
                seed=int(rng.integers(1 << 30)),
                tempo=tempo,
                density=density,
                velocity=float(rng.uniform(lo["velocity"][0], hi["velocity"][1])),
                articulation=float(rng.uniform(hi["articulation"][0], lo["articulation"][1])),
                mode=str(rng.choice(("major", "minor"))),
                register=int(rng.integers(60, 75)),
            )
        )
    index = arousal_index(pieces)
    high = index >= np.median(index)
    return [
        replace(
            p,
            quadrant=("Q1" if p.mode == "major" else "Q2")
            if h
            else ("Q4" if p.mode == "major" else "Q3"),
        )
        for p, h in zip(pieces, high, strict=True)
    ]


def arousal_cues(pieces: list[Piece]) -> np.ndarray:
    """``(n, 4)`` arousal cues, each signed so that larger = higher arousal under the stated
    mapping: log tempo, log2 density, velocity, detachment (minus the articulation ratio)."""
    return np.array(
        [[np.log(p.tempo), np.log2(p.density), p.velocity, -p.articulation] for p in pieces]
    )


def arousal_index(pieces: list[Piece]) -> np.ndarray:
    """The mean of the four standardised arousal cues (the mixed set's arousal score)."""
    cues = arousal_cues(pieces)
    return ((cues - cues.mean(axis=0)) / cues.std(axis=0)).mean(axis=1)


def mixed_summary(pieces: list[Piece], p: np.ndarray) -> dict[str, Any] | None:
    """On the mixed set: side accuracy (absolute and relative), Spearman correlation of the
    arousal log-odds with the cue index, and the standardised coefficients of a least-squares
    fit of each axis' log-odds on the four arousal cues and the mode (which cue moves which
    axis when all vary at once)."""
    from scipy.stats import spearmanr

    rows = [i for i, x in enumerate(pieces) if x.set == "mixed"]
    if not rows:
        return None
    mixed = [pieces[i] for i in rows]
    y = [x.quadrant for x in mixed]
    cues = arousal_cues(mixed)
    design = np.column_stack([cues, [x.mode == "major" for x in mixed]]).astype(float)
    design = (design - design.mean(axis=0)) / design.std(axis=0)
    design = np.column_stack([np.ones(len(rows)), design])
    out: dict[str, Any] = {
        "n": len(rows),
        "absolute": side_accuracy(y, p[rows]),
        "relative": relative_side_accuracy(y, p[rows]),
        "spearman_arousal_vs_cue_index": float(
            spearmanr(logit(p[rows, 0]), arousal_index(mixed)).statistic
        ),
        "spearman_valence_vs_major": float(
            spearmanr(logit(p[rows, 1]), [x.mode == "major" for x in mixed]).statistic
        ),
    }
    names = ("tempo", "density", "velocity", "detachment", "major")
    for k, axis in enumerate(AXES):
        coef, *_ = np.linalg.lstsq(design, logit(p[rows, k]), rcond=None)
        out[f"{axis}_coefficients"] = dict(zip(names, coef[1:].round(3).tolist(), strict=True))
    return out


def render_all(pieces: list[Piece], audio_dir: Path) -> list[Path]:
    """Write each piece as a 16-bit WAV under ``audio_dir`` (kept when already there)."""
    import soundfile as sf

    folder = audio_dir / f"v{PROBE_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for piece in pieces:
        path = folder / f"{piece.piece_id}.wav"
        if not path.is_file():
            tmp = path.with_suffix(".tmp.wav")
            sf.write(tmp, render(piece), SR, subtype="PCM_16")
            tmp.replace(path)
        paths.append(path)
    return paths


def probe_dataset(pieces: list[Piece], paths: list[Path]) -> Any:
    """A merkit :class:`Dataset` of the pieces (quadrant: the label under the stated mapping,
    or Q1 as a placeholder for single-cue pieces), so ``resolve_inputs`` caches their inputs."""
    from merkit.datasets.base import Dataset, FileSource, Song

    songs = [
        Song(p.piece_id, FileSource(path), p.quadrant or "Q1")
        for p, path in zip(pieces, paths, strict=True)
    ]
    return Dataset("cue-probe", songs)


def probe_inputs(pieces: list[Piece], paths: list[Path], names: list[str]) -> dict[str, Any]:
    """The pieces' model inputs (``resolve_inputs``, cached), rows in ``pieces``' order (a
    :class:`Dataset` sorts its songs by id)."""
    from merkit.protocol.runner import resolve_inputs

    dataset = probe_dataset(pieces, paths)
    arrays = resolve_inputs(dataset, names, progress=False)
    row = {song_id: i for i, song_id in enumerate(dataset.song_ids)}
    order = np.array([row[p.piece_id] for p in pieces])
    return {name: np.asarray(arrays[name])[order] for name in names}


def build(args: argparse.Namespace) -> tuple[list[Piece], list[Path]]:
    pieces = (
        quadrant_pieces(args.per_quadrant) + cue_pieces(args.per_level) + mixed_pieces(args.mixed)
    )
    started = time.perf_counter()
    paths = render_all(pieces, args.audio_dir)
    print(f"{len(pieces)} pieces ready in {time.perf_counter() - started:.0f} s", flush=True)
    return pieces, paths


# ---------------------------------------------------------------------------------------------
# Scores (shared with benchmarks/axis_robust.py)

AXES = ("arousal", "valence")


def side_targets(quadrants: list[str]) -> dict[str, np.ndarray]:
    """1 = high arousal / positive valence (Q1, Q2 / Q1, Q4)."""
    q = np.asarray(quadrants)
    return {"arousal": np.isin(q, ["Q1", "Q2"]).astype(int),
            "valence": np.isin(q, ["Q1", "Q4"]).astype(int)}  # fmt: skip


def side_accuracy(quadrants: list[str], p: np.ndarray) -> dict[str, float]:
    """Accuracy of ``p[:, 0] >= .5`` (high arousal) and ``p[:, 1] >= .5`` (positive valence)."""
    t = side_targets(quadrants)
    return {a: float(((p[:, i] >= 0.5) == (t[a] == 1)).mean()) for i, a in enumerate(AXES)}


def relative_side_accuracy(quadrants: list[str], p: np.ndarray) -> dict[str, float]:
    """As :func:`side_accuracy` after each axis is placed against the collection's median
    (``merkit.product.relative.robust_standardize``, >= 0 = high / positive)."""
    from merkit.product.relative import robust_standardize

    t = side_targets(quadrants)
    return {
        a: float(((robust_standardize(2 * p[:, i] - 1) >= 0) == (t[a] == 1)).mean())
        for i, a in enumerate(AXES)
    }


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, clipped at 1e-6 so a saturated probability still orders."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def cue_response(pieces: list[Piece], p: np.ndarray) -> dict[str, Any]:
    """Per single-cue set: mean axis probabilities per level, and the paired change from its
    first to its last level in log-odds (a probability near 0 or 1 hides a moving score): mean,
    std over seeds, fraction of seeds that moved up; and the same change in probability."""
    out: dict[str, Any] = {}
    for cue, levels in CUE_LEVELS.items():
        rows = [i for i, x in enumerate(pieces) if x.set == f"cue-{cue}"]
        if not rows:
            continue
        by = {(pieces[i].level, pieces[i].seed): i for i in rows}
        seeds = sorted({pieces[i].seed for i in rows})
        entry: dict[str, Any] = {"levels": [str(v) for v in levels], "n_seeds": len(seeds)}
        for k, axis in enumerate(AXES):
            table = np.array([[p[by[(lv, s)], k] for s in seeds] for lv in range(len(levels))])
            diff = table[-1] - table[0]
            dlog = logit(table[-1]) - logit(table[0])
            entry[axis] = {
                "mean_per_level": table.mean(axis=1).round(4).tolist(),
                "mean_logit_per_level": logit(table).mean(axis=1).round(3).tolist(),
                "delta": float(diff.mean()),
                "delta_logit": float(dlog.mean()),
                "delta_logit_std": float(dlog.std(ddof=1)) if len(dlog) > 1 else 0.0,
                "up_fraction": float((dlog > 0).mean()),
            }
        out[cue] = entry
    return out


# ---------------------------------------------------------------------------------------------
# Product predictions


def predict_model(
    name: str, pieces: list[Piece], paths: list[Path], known: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The model's answer for every piece (those in ``known``, by piece id, are kept)."""
    from merkit.product.predict import load_model

    known = known or {}
    predictor = load_model(name)
    rows = []
    started = time.perf_counter()
    for i, (piece, path) in enumerate(zip(pieces, paths, strict=True)):
        if piece.piece_id in known:
            rows.append(known[piece.piece_id])
            continue
        r = predictor.predict(path)
        rows.append(
            {
                "piece_id": piece.piece_id,
                "quadrant": r.quadrant,
                "probabilities": r.probabilities,
                "p_high_arousal": r.p_high_arousal,
                "p_positive_valence": r.p_positive_valence,
                "p_high_arousal_axis": r.p_high_arousal_axis,
                "p_positive_valence_axis": r.p_positive_valence_axis,
                "familiarity": r.familiarity,
                "familiar": r.familiar,
                "reliable": r.reliable,
                "quadrant_model": r.quadrant_model,
            }
        )
        if i % 25 == 0:
            print(f"{name}: {i + 1}/{len(paths)} {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def summarise_model(pieces: list[Piece], rows: list[dict[str, Any]]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, f1_score

    from merkit.core.labels import QUADRANTS
    from merkit.product.relative import relative_placements

    quad = [i for i, p in enumerate(pieces) if p.set == "quadrant"]
    y = [pieces[i].quadrant for i in quad]
    pred = [rows[i]["quadrant"] for i in quad]
    final = np.array([[rows[i]["p_high_arousal"], rows[i]["p_positive_valence"]] for i in quad])
    has_axes = rows[0]["p_high_arousal_axis"] is not None
    # what `merkit predict --relative` does (merkit.product.relative.with_relative) over the set
    proba = np.array([[rows[i]["probabilities"][q] for q in QUADRANTS] for i in quad])
    own_axes = (
        np.array(
            [[rows[i]["p_high_arousal_axis"], rows[i]["p_positive_valence_axis"]] for i in quad]
        )
        if has_axes
        else None
    )
    rel = [type("R", (), {"relative": r}) for r in relative_placements(proba, axes=own_axes)]
    rel_pred = [r.relative.quadrant for r in rel]
    rel_scores = np.array([[r.relative.relative_arousal, r.relative.relative_valence] for r in rel])
    t = side_targets(y)
    out: dict[str, Any] = {
        "n": len(quad),
        "absolute": {
            "macro_f1": float(f1_score(y, pred, average="macro", labels=list(QUADRANTS))),
            "confusion": confusion_matrix(y, pred, labels=list(QUADRANTS)).tolist(),
            "answered": {q: pred.count(q) for q in QUADRANTS},
            "sides_final": side_accuracy(y, final),
        },
        "relative": {
            "macro_f1": float(f1_score(y, rel_pred, average="macro", labels=list(QUADRANTS))),
            "confusion": confusion_matrix(y, rel_pred, labels=list(QUADRANTS)).tolist(),
            "sides": {
                a: float(((rel_scores[:, i] >= 0) == (t[a] == 1)).mean())
                for i, a in enumerate(AXES)
            },
        },
        "flagged_unfamiliar": (
            float(np.mean([rows[i]["familiar"] is False for i in quad]))
            if rows[0]["familiar"] is not None
            else None
        ),
        "unreliable": float(np.mean([not rows[i]["reliable"] for i in quad])),
    }
    all_final = np.array([[r["p_high_arousal"], r["p_positive_valence"]] for r in rows])
    out["cue_response_final"] = cue_response(pieces, all_final)
    out["mixed_final"] = mixed_summary(pieces, all_final)
    if has_axes:
        own = np.array([[rows[i]["p_high_arousal_axis"], rows[i]["p_positive_valence_axis"]]
                        for i in quad])  # fmt: skip
        out["absolute"]["sides_axis_models"] = side_accuracy(y, own)
        out["relative"]["sides_axis_models"] = relative_side_accuracy(y, own)
        all_own = np.array([[r["p_high_arousal_axis"], r["p_positive_valence_axis"]]
                            for r in rows])  # fmt: skip
        out["cue_response_axis_models"] = cue_response(pieces, all_own)
        out["mixed_axis_models"] = mixed_summary(pieces, all_own)
    fam = [r["familiarity"] for r in rows]
    if fam[0] is not None:
        out["flagged_all_pieces"] = float(np.mean([f > 1 for f in fam]))
        out["familiarity_median"] = float(np.median(fam))
    return out


# ---------------------------------------------------------------------------------------------
# Report


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


STATEMENT = (
    "**This is a synthetic probe of cue sensitivity, not an emotion dataset.** Every piece is "
    'played on one synthetic additive piano; its "label" is the quadrant of the cue '
    "configuration it was rendered with under the stated mapping (Gabrielsson & Lindström): high "
    "arousal = fast tempo, dense notes, loud (high velocity), detached; low arousal = slow, "
    "sparse, soft, legato; positive valence = major mode with consonant diatonic progressions; "
    "negative valence = harmonic minor with diminished chords. No listener rated these pieces. "
    "A model that follows the cues scores well here; a model that answers by instrument or "
    'recording ("piano = calm") cannot, since every piece is the same instrument. Nuisance '
    "factors vary at random: key, register (quadrant set: melody centre MIDI 60-74), voicing, "
    "accompaniment pattern and overall level (peak -12 to -3 dBFS; merkit's canonical front "
    "end normalises the peak, so loudness reaches the models as dynamics and brightness)."
)


def cue_table(title: str, resp: dict[str, Any]) -> list[str]:
    """Markdown of :func:`cue_response`."""
    lines = [
        f"{title}",
        "",
        "| cue (levels, low → high end) | stated axis | P(high arousal) per level | Δ arousal "
        "log-odds, last − first (± sd; % seeds up) [Δ P] | P(positive valence) per level | "
        "Δ valence log-odds [Δ P] |",
        "|---|---|---|---|---|---|",
    ]
    for cue, e in resp.items():
        cells = []
        for axis in AXES:
            a = e[axis]
            cells.append(" / ".join(f"{v:.3f}" for v in a["mean_per_level"]))
            cells.append(
                f"{a['delta_logit']:+.2f} ± {a['delta_logit_std']:.2f} "
                f"({100 * a['up_fraction']:.0f} %) [{a['delta']:+.3f}]"
            )
        lines.append(
            f"| {cue} ({', '.join(e['levels'])}) | {CUE_AXIS[cue] or '—'} | "
            + " | ".join(cells)
            + " |"
        )
    return [*lines, ""]


def mixed_table(title: str, summaries: dict[str, dict[str, Any] | None]) -> list[str]:
    """Markdown of :func:`mixed_summary` results, one row each."""
    rows = {k: v for k, v in summaries.items() if v}
    if not rows:
        return []
    n = next(iter(rows.values()))["n"]
    lines = [
        title.format(n=n),
        "",
        "| scores | arousal side % abs / rel | valence side % abs / rel | Spearman ρ arousal "
        "log-odds vs cue index | ρ valence vs major | arousal log-odds per sd of tempo, "
        "density, velocity, detachment, major | valence log-odds per sd of the same |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for label, m in rows.items():
        coefs = [
            " / ".join(f"{v:+.2f}" for v in m[f"{axis}_coefficients"].values()) for axis in AXES
        ]
        lines.append(
            f"| {label} | {100 * m['absolute']['arousal']:.1f} / "
            f"{100 * m['relative']['arousal']:.1f} | {100 * m['absolute']['valence']:.1f} / "
            f"{100 * m['relative']['valence']:.1f} | {m['spearman_arousal_vs_cue_index']:+.3f} | "
            f"{m['spearman_valence_vs_major']:+.3f} | {coefs[0]} | {coefs[1]} |"
        )
    return [*lines, ""]


MIXED_NOTE = (
    "Mixed-cue set: tempo (log-uniform 52-168 bpm), density (0.5/1/2/4 notes a beat), velocity "
    "(0.2-0.95) and articulation (0.3-1.2) drawn each on its own, mode at random; its arousal "
    "label is the mean of the four standardised cues above/below its median, so the cues "
    "disagree as in real music. Coefficients: least squares of the model's log-odds on the "
    "standardised cues (which cue moves which axis when all vary at once); relative = each axis "
    "placed against the mixed set's median."
)


def write_markdown(path: Path, state: dict[str, Any]) -> None:
    from _common import footer
    from merkit.core.labels import QUADRANTS

    meta = state["meta"]
    lines = [
        "# cue_probe: do the shipped models follow musical cues on piano-like music?",
        "",
        STATEMENT,
        "",
        f"Generated by `benchmarks/cue_probe.py` at {meta['updated']}.",
        "",
        *[f"Command: `{c}`" for c in meta.get("commands", [meta.get("command")])],
        "",
        f"Pieces: {meta['pieces']}. Single-cue sets: {meta['per_level']} seeds per level, other "
        f"cues at {MIDDLE} (mode alternating major/minor over the seeds, fixed across levels).",
        "",
        "Axis scores are P(high arousal) and P(positive valence): *final* = the product's answer "
        "(`p_high_arousal` / `p_positive_valence`, for `default` its quadrant and axis models "
        "combined by the `joint` rule; for `fast` the sums of its quadrant probabilities); "
        "*axis models* = the companion logistic models' own probabilities "
        "(`p_*_axis`). Relative = `merkit predict --relative` over the 120-piece quadrant set "
        "(each axis standardised on the collection's median).",
        "",
    ]
    for name, s in state.get("models", {}).items():
        a, r = s["absolute"], s["relative"]
        lines += [
            f"## `{name}` on the quadrant set ({s['n']} pieces)",
            "",
            "| | macro F1 % | arousal side % (final) | valence side % (final) | arousal side % "
            "(axis models) | valence side % (axis models) |",
            "|---|---:|---:|---:|---:|---:|",
            f"| absolute | {pct(a['macro_f1'])} | {pct(a['sides_final']['arousal'])} | "
            f"{pct(a['sides_final']['valence'])} | "
            f"{pct(a.get('sides_axis_models', {}).get('arousal'))} | "
            f"{pct(a.get('sides_axis_models', {}).get('valence'))} |",
            f"| relative | {pct(r['macro_f1'])} | {pct(r['sides']['arousal'])} | "
            f"{pct(r['sides']['valence'])} | "
            f"{pct(r.get('sides_axis_models', {}).get('arousal'))} | "
            f"{pct(r.get('sides_axis_models', {}).get('valence'))} |",
            "",
            "Relative 'final' sides are those of `--relative` (built from the axis models when the "
            "model has them, else from the quadrant probabilities).",
            "",
            "Answers (absolute): "
            + ", ".join(f"{q} {n}" for q, n in a["answered"].items())
            + f". Flagged unfamiliar: {pct(s['flagged_unfamiliar'])} % of the quadrant set"
            + (
                f", {pct(s['flagged_all_pieces'])} % of all pieces (median familiarity "
                f"{s['familiarity_median']:.2f})"
                if "flagged_all_pieces" in s
                else ""
            )
            + f"; answered unreliable: {pct(s['unreliable'])} %.",
            "",
            "| true \\ answered (absolute) | " + " | ".join(QUADRANTS) + " |",
            "|---|" + "---:|" * 4,
            *[
                f"| {q} | " + " | ".join(str(v) for v in row) + " |"
                for q, row in zip(QUADRANTS, a["confusion"], strict=True)
            ],
            "",
            "| true \\ answered (relative) | " + " | ".join(QUADRANTS) + " |",
            "|---|" + "---:|" * 4,
            *[
                f"| {q} | " + " | ".join(str(v) for v in row) + " |"
                for q, row in zip(QUADRANTS, r["confusion"], strict=True)
            ],
            "",
        ]
        lines += cue_table(f"### `{name}`: single-cue sets, final axis scores",
                           s["cue_response_final"])  # fmt: skip
        if "cue_response_axis_models" in s:
            lines += cue_table(f"### `{name}`: single-cue sets, axis models' own probabilities",
                               s["cue_response_axis_models"])  # fmt: skip
        lines += mixed_table(
            f"### `{name}`: mixed-cue set ({{n}} pieces)",
            {"final": s.get("mixed_final"), "axis models": s.get("mixed_axis_models")},
        )
        if s.get("mixed_final"):
            lines += [MIXED_NOTE, ""]
    if "check" in state:
        lines += check_table(state["check"])
    lines += footer(meta["machine"], meta["versions"], meta.get("notes", []))
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    import tempfile

    parser.add_argument("--audio-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "merkit-cue-probe")  # fmt: skip
    parser.add_argument("--per-quadrant", type=int, default=30)
    parser.add_argument("--per-level", type=int, default=8)
    parser.add_argument("--mixed", type=int, default=64, help="pieces of the mixed-cue set")


CHECK_FEATURES = (
    "rhythm.tempo",
    "rhythm.onset_rate",
    "articulation.event_density",
    "articulation.decay_time.mean",
    "dynamics.rms_db.std",
    "dynamics.range_db",
    "timbre.spectral_centroid.mean",
    "tonality.mode_major_minus_minor",
    "harmony.dissonance.mean",
)
"""Own features read back from the probe's audio (the manipulation check)."""


def manipulation_check(pieces: list[Piece], paths: list[Path]) -> dict[str, Any]:
    """Mean of :data:`CHECK_FEATURES` (merkit's ``own-features-canon``) per quadrant of the
    quadrant set and per level of each single-cue set: did each cue reach the audio?"""
    from merkit.features.own import OWN_FEATURE_NAMES

    own = probe_inputs(pieces, paths, ["own-features-canon"])["own-features-canon"]
    cols = [OWN_FEATURE_NAMES.index(f) for f in CHECK_FEATURES]
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pieces):
        if p.set == "mixed":  # no levels; its cues are checked through the other sets
            continue
        key = f"quadrant {p.quadrant}" if p.set == "quadrant" else f"{p.set} level {p.level}"
        groups.setdefault(key, []).append(i)
    return {
        key: [float(v) for v in own[rows][:, cols].mean(axis=0)] for key, rows in groups.items()
    }


def check_table(check: dict[str, Any]) -> list[str]:
    lines = [
        "## Manipulation check: merkit's own features of the probe's audio (group means)",
        "",
        "| group | " + " | ".join(f"`{f}`" for f in CHECK_FEATURES) + " |",
        "|---|" + "---:|" * len(CHECK_FEATURES),
    ]
    for key, values in check.items():
        label = key
        if " level " in key:
            cue, level = key.removeprefix("cue-").split(" level ")
            label = f"{cue} = {CUE_LEVELS[cue][int(level)]}"
        lines.append(f"| {label} | " + " | ".join(f"{v:.3g}" for v in values) + " |")
    return [*lines, ""]


def main() -> None:
    from _common import command_line, machine, timestamp, versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_probe_arguments(parser)
    parser.add_argument("--models", default="default,fast")
    parser.add_argument("--parts", default="predict,check", help="predict, check")
    parser.add_argument("--out", type=Path, required=True, help="results path without suffix")
    args = parser.parse_args()
    parts = args.parts.split(",")
    pieces, paths = build(args)
    json_path = args.out.with_suffix(".json")
    state: dict[str, Any] = json.loads(json_path.read_text()) if json_path.is_file() else {}
    meta = state.setdefault("meta", {})
    commands = meta.setdefault("commands", [meta.pop("command")] if "command" in meta else [])
    if command_line() not in commands:
        commands.append(command_line())
    meta.update(
        machine=machine(),
        versions=versions(),
        pieces=f"{len(pieces)} ({sum(p.set == 'quadrant' for p in pieces)} in the quadrant set, "
        f"{args.per_quadrant} per quadrant)",
        per_level=args.per_level,
        probe_version=PROBE_VERSION,
    )
    # answers stored by an earlier run, keyed by piece id (rows of runs before ids were stored
    # are in that run's piece order)
    old_ids = [p["piece_id"] for p in state.get("pieces", [])]
    known = {
        name: {r.get("piece_id", pid): {**r, "piece_id": r.get("piece_id", pid)}
               for r, pid in zip(rows, old_ids, strict=False)}
        for name, rows in state.get("predictions", {}).items()
    }  # fmt: skip
    state["pieces"] = [asdict(p) for p in pieces]
    if "predict" in parts:
        state.setdefault("seconds", {})
        state["predictions"] = {}
        for name in args.models.split(","):
            started = time.perf_counter()
            state["predictions"][name] = predict_model(name, pieces, paths, known.get(name))
            state["seconds"][name] = round(time.perf_counter() - started, 1)
    else:
        state["predictions"] = {
            name: [rows[p.piece_id] for p in pieces if p.piece_id in rows]
            for name, rows in known.items()
        }
    # the summaries are recomputed from the stored answers on every run
    state["models"] = {
        name: summarise_model(pieces, rows) for name, rows in state.get("predictions", {}).items()
    }
    if "check" in parts:
        state["check"] = manipulation_check(pieces, paths)
    meta["updated"] = timestamp()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(state, indent=1))
    write_markdown(args.out, state)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

"""MUSIFEAST-17 (van der Walle, Wu, Margulis & Jakubowski 2025): 356 instrumental 30-s clips.

A normed music stimulus set: 356 clips of commercially released instrumental music across 17
genres, each rated by UK and US listeners for perceived valence and arousal ("energy level") on
1-5 Likert scales (1 very negative / very low energy, 5 very positive / very high energy; see
``data/README_M17_data_description.pdf``). Published at https://github.com/HazelvdW/MUSIFEAST-17
(and https://osf.io/5ebz2); paper: Behavior Research Methods 57(7), 2025,
https://doi.org/10.3758/s13428-025-02724-0. Licence: the normative data are CC0 1.0; the clips
are shared "under fair dealing / fair use for non-commercial academic research".

Layout of the repository, as read here::

    ROOT/stimuli/<CLIP_NAME>.mp3             (e.g. Jazz_HIGH_03.mp3; 356 files)
    ROOT/data/MUSIFEAST17_all.csv           (CLIP_NAME, GENRE, ARTIST, valence_M, arousal_M, ...)

(``MUSIFEAST17_all.csv`` may also sit directly in ``ROOT``.)

Quadrants are **derived**, not published: by the signs of the mean ratings around the scale
midpoint 3 (arousal >= 3 and valence >= 3: Q1; arousal >= 3, valence < 3: Q2; both < 3: Q3;
arousal < 3, valence >= 3: Q4). A mean exactly at 3 counts as the high side. The clips are
unevenly spread (of the 335 kept: Q1 187, Q2 14, Q3 27, Q4 107), so macro scores on this set
rest on few Q2/Q3 songs.

The ``Video game`` genre (21 clips) is left out by default (``exclude_genres``): video-game music
is kept out of merkit's training and test data on purpose, because a held-out judging collection
is made of video-game pieces. Songs are grouped by artist (``ARTIST``), so one artist's clips stay
on one side of every split. Arousal and valence are stored rescaled to 0-1, ``(mean - 1) / 4``,
like MERGE's values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from merkit.core.errors import DataError
from merkit.datasets._scan import Problems, read_text_csv, require_dir, scan_audio
from merkit.datasets.base import DATASETS, Dataset, FileSource, Song

NORMS = "MUSIFEAST17_all.csv"
AUDIO_DIR = "stimuli"
COLUMNS = ("CLIP_NAME", "GENRE", "ARTIST", "valence_M", "arousal_M")
SCALE = (1.0, 5.0)
"""The Likert scale of ``valence_M`` and ``arousal_M``."""
MIDPOINT = 3.0
EXCLUDED_GENRES: tuple[str, ...] = ("Video game",)


def quadrant_of(arousal: float, valence: float, midpoint: float = MIDPOINT) -> str:
    """Q1..Q4 from the signs of (arousal - midpoint) and (valence - midpoint); 0 is high."""
    if arousal >= midpoint:
        return "Q1" if valence >= midpoint else "Q2"
    return "Q4" if valence >= midpoint else "Q3"


def find_norms(base: Path) -> Path:
    """``data/MUSIFEAST17_all.csv`` (or ``MUSIFEAST17_all.csv``) under ``base``.

    Raises
    ------
    DataError
        Neither exists.
    """
    for path in (base / "data" / NORMS, base / NORMS):
        if path.is_file():
            return path
    raise DataError(
        f"no {NORMS} in {base / 'data'} or {base}: is this the MUSIFEAST-17 repository "
        "(github.com/HazelvdW/MUSIFEAST-17)?"
    )


def _rating(value: object, column: str, row: int, clip: str, problems: Problems) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    low, high = SCALE
    if not math.isfinite(number) or not low <= number <= high:
        problems.error(
            f"{NORMS} row {row} (clip {clip}): {column} {value!r} is not a number in "
            f"{low:g}-{high:g}"
        )
        return None
    return number


@DATASETS.register("musifeast17")
def load_musifeast17(
    root: Path | str | None,
    *,
    collect: Problems | None = None,
    name: str = "musifeast17",
    exclude_genres: Sequence[str] = EXCLUDED_GENRES,
) -> Dataset:
    """Load MUSIFEAST-17: each clip with its quadrant from the mean ratings' signs around 3.

    Parameters
    ----------
    root : path
        The MUSIFEAST-17 repository folder (``stimuli/`` and ``data/``).
    collect : Problems, optional
        Append problems here instead of raising (``merkit data check`` lists them all).
    name : str
        Dataset name.
    exclude_genres : sequence of str
        ``GENRE`` values left out (default: ``Video game``, see the module docstring).

    Raises
    ------
    DataError
        Listing every problem: the table or a column of it missing (named), a rating that is not
        a number on the 1-5 scale (file, row, clip and column named), a clip without audio.
    """
    base = require_dir(root, "musifeast17")
    problems = collect if collect is not None else Problems(f"musifeast17 dataset at {base}")
    norms = find_norms(base)
    try:
        frame = read_text_csv(norms, problems, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {norms}: {exc}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{norms} has no {', '.join(missing)} column (found: "
            f"{', '.join(map(str, frame.columns))})"
        )
    audio_dir = base / AUDIO_DIR
    if not audio_dir.is_dir():
        raise DataError(f"no {AUDIO_DIR}/ folder of clips in {base}")
    files = scan_audio(audio_dir, problems)
    excluded = {g.strip().lower() for g in exclude_genres}
    songs: dict[str, Song] = {}
    left_out = 0
    for index, record in enumerate(frame.to_dict("records")):
        row = index + 2  # the header is row 1
        clip = str(record["CLIP_NAME"]).strip()
        if not clip:
            problems.error(f"{norms.name} row {row}: empty CLIP_NAME")
            continue
        if str(record["GENRE"]).strip().lower() in excluded:
            left_out += 1
            continue
        arousal = _rating(record["arousal_M"], "arousal_M", row, clip, problems)
        valence = _rating(record["valence_M"], "valence_M", row, clip, problems)
        if arousal is None or valence is None:
            continue
        if clip in songs:
            problems.error(f"{norms.name} row {row}: clip {clip} is listed twice")
            continue
        if clip not in files:
            if clip not in problems.rejected:
                problems.error(f"clip {clip} ({norms.name} row {row}) has no audio in {audio_dir}")
            continue
        low, high = SCALE
        songs[clip] = Song(
            clip,
            FileSource(files[clip]),
            quadrant_of(arousal, valence),
            group=str(record["ARTIST"]).strip() or None,
            arousal=(arousal - low) / (high - low),
            valence=(valence - low) / (high - low),
        )
    if left_out:
        problems.warn(
            f"{left_out} clip(s) of genre(s) {', '.join(sorted(exclude_genres))} left out "
            "(exclude_genres)"
        )
    listed = set(frame["CLIP_NAME"].str.strip())
    unlisted = sorted(set(files) - listed)
    if unlisted:
        problems.warn(
            f"{len(unlisted)} audio file(s) in {audio_dir} have no row in {norms.name} and are "
            "ignored: " + ", ".join(unlisted[:10])
        )
    if collect is None:
        problems.raise_if_any()
    if not songs:
        raise DataError(f"no usable clips in {base}")
    return Dataset(name=name, songs=list(songs.values()), root=base)


__all__ = ["MIDPOINT", "SCALE", "find_norms", "load_musifeast17", "quadrant_of"]

"""MERGE (Louro et al. 2024), the public successor of the paper's New-4QAED: the audio archives.

Layout of ``MERGE_Audio_Complete`` (3554 clips) and ``MERGE_Audio_Balanced`` (3232), as
published on Zenodo (record 13939205)::

    ROOT/Q1/<Song>.mp3 ... ROOT/Q4/<Song>.mp3
    ROOT/merge_audio_complete_metadata.csv    (Song, Quadrant, Artist, Title, ...)
    ROOT/merge_audio_complete_av_values.csv   (Song, Arousal, Valence; both in [0, 1])
    ROOT/tvt_dataframes/tvt_70_15_15/tvt_70_15_15_{train,validate,test}_audio_complete.csv
    ROOT/tvt_dataframes/tvt_40_30_30/...                                   (Song, Quadrant)

(``balanced`` in place of ``complete`` in the Balanced archive). ``ROOT`` may also be the folder
holding one ``MERGE_Audio_*`` archive.

What is assumed, because the archive ships no schema: the column names above were read from
public code that loads the archives (the id column ``Song``; ``Quadrant``; ``Arousal`` and
``Valence``). To be tolerant of variants seen in the wild, a split folder may be named
``tvt_70_15_15``, ``tvt_701515`` or ``tvt-70-15-15`` (any separators), split tables are found
by ``train`` / ``validat`` (or ``val``) / ``test`` in their names, preferring the audio tables of
the archive's own kind over lyrics/bimodal ones, and the id column may be ``Song``, ``SongID`` or
``IDSong`` (any case).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pandas as pd

from merkit.core.errors import DataError
from merkit.core.labels import normalize_quadrant
from merkit.datasets._scan import Problems, require_dir
from merkit.datasets.base import Dataset
from merkit.datasets.fourqaed import load_4qaed

SPLIT_DIR = re.compile(r"tvt[\W_]*(\d\d)[\W_]*(\d\d)[\W_]*(\d\d)", re.IGNORECASE)
ID_NAMES = ("song", "songid", "idsong", "song_id", "id")
PART_WORDS = {"train": ("train",), "validate": ("validat", "val"), "test": ("test",)}


def find_archive(root: Path) -> tuple[Path, str]:
    """The archive folder under ``root`` and its kind (``complete``/``balanced``).

    Raises
    ------
    DataError
        No ``merge_audio_*_metadata.csv``, or several archives to choose from.
    """
    metadata = sorted(root.glob("merge_audio_*_metadata.csv"))
    if not metadata:
        archives = sorted(p for p in root.glob("MERGE_Audio_*") if p.is_dir())
        if len(archives) > 1:
            names = ", ".join(p.name for p in archives)
            raise DataError(f"{root} holds several MERGE archives ({names}); pass one as --root")
        if archives:
            return find_archive(archives[0])
        raise DataError(
            f"no merge_audio_<kind>_metadata.csv in {root}: is this a MERGE_Audio_Complete or "
            "MERGE_Audio_Balanced folder?"
        )
    if len(metadata) > 1:
        names = ", ".join(p.name for p in metadata)
        raise DataError(f"{root} holds several MERGE metadata files ({names}); keep one")
    kind = metadata[0].name.removeprefix("merge_audio_").removesuffix("_metadata.csv")
    return root, kind


def _id_column(frame: pd.DataFrame, path: Path) -> str:
    for column in frame.columns:
        if str(column).strip().lower().replace(" ", "") in ID_NAMES:
            return str(column)
    raise DataError(
        f"{path} has no song id column (expected Song, SongID or IDSong; found "
        f"{', '.join(map(str, frame.columns))})"
    )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_av_values(path: Path, problems: Problems) -> dict[str, tuple[float, float]]:
    """Song id -> (arousal, valence) from ``merge_audio_*_av_values.csv``."""
    frame = _read_csv(path)
    column = _id_column(frame, path)
    lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    missing = [name for name in ("arousal", "valence") if name not in lower]
    if missing:
        raise DataError(f"{path} has no {' or '.join(missing)} column")
    values: dict[str, tuple[float, float]] = {}
    for row, (song, arousal, valence) in enumerate(
        zip(frame[column], frame[lower["arousal"]], frame[lower["valence"]], strict=True)
    ):
        try:
            values[song.strip()] = (float(arousal), float(valence))
        except ValueError:
            problems.error(
                f"{path.name} row {row + 2} (song {song}): arousal/valence "
                f"{arousal!r}/{valence!r} are not numbers"
            )
    return values


def _split_tables(tvt: Path, kind: str) -> dict[str, dict[str, Path]]:
    """Split name -> part -> CSV, from file or folder names under ``tvt_dataframes``."""
    candidates: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(tvt.rglob("*.csv")):
        match = SPLIT_DIR.search(path.name) or SPLIT_DIR.search(path.parent.name)
        if match is None:
            continue
        name = "-".join(match.groups())
        stem = path.stem.lower()
        rest = SPLIT_DIR.sub("", stem)
        for part, words in PART_WORDS.items():
            if any(re.search(rf"(^|[\W_]){word}", rest) for word in words):
                candidates.setdefault((name, part), []).append(path)
                break
    tables: dict[str, dict[str, Path]] = {}
    for (name, part), paths in candidates.items():
        # Prefer the audio tables of this archive's kind over lyrics/bimodal or the other kind.
        def score(p: Path) -> tuple[bool, bool]:
            stem = p.stem.lower()
            audio = "audio" in stem or ("lyrics" not in stem and "bimodal" not in stem)
            return audio, kind in stem

        tables.setdefault(name, {})[part] = max(paths, key=score)
    return tables


def read_splits(
    root: Path, kind: str, labels: dict[str, str], problems: Problems
) -> dict[str, dict[str, list[str]]]:
    """The published splits under ``root/tvt_dataframes`` (none: an empty dict and a note)."""
    tvt = next(
        (p for p in root.iterdir() if p.is_dir() and p.name.lower() == "tvt_dataframes"), None
    )
    if tvt is None:
        problems.warn(f"no tvt_dataframes folder in {root}: only K-fold protocols are available")
        return {}
    splits: dict[str, dict[str, list[str]]] = {}
    for name, parts in sorted(_split_tables(tvt, kind).items()):
        absent = [p for p in ("train", "validate", "test") if p not in parts]
        if absent:
            problems.error(f"split tvt-{name} in {tvt} has no {' or '.join(absent)} table")
            continue
        splits[name] = {}
        for part in PART_WORDS:
            path = parts[part]
            frame = _read_csv(path)
            column = _id_column(frame, path)
            quadrant_column = next((c for c in frame.columns if c.lower() == "quadrant"), None)
            ids = [s.strip() for s in frame[column]]
            for row, song in enumerate(ids):
                if song not in labels:
                    problems.error(f"{path.name} row {row + 2}: song {song} is not in the dataset")
                elif quadrant_column is not None:
                    stated = normalize_quadrant(frame[quadrant_column].iloc[row], path.name)
                    if stated != labels[song]:
                        problems.error(
                            f"label conflict for {song}: {path.name} says {stated}, "
                            f"the metadata says {labels[song]}"
                        )
            splits[name][part] = ids
        seen: dict[str, str] = {}
        for part, ids in splits[name].items():
            for song in ids:
                if seen.setdefault(song, part) != part:
                    problems.error(f"split tvt-{name} puts song {song} in {seen[song]} and {part}")
        problems.warn(
            f"split tvt-{name}: "
            + ", ".join(f"{part} {len(ids)}" for part, ids in splits[name].items())
        )
    return splits


def load_merge(
    root: Path | str | None,
    *,
    collect: Problems | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a MERGE audio archive: songs with quadrant, arousal and valence, and its splits.

    Parameters
    ----------
    root : path
        ``MERGE_Audio_Complete`` / ``MERGE_Audio_Balanced``, or the folder holding one.
    collect : Problems, optional
        Append problems here instead of raising (``merkit data check`` lists them all).
    name : str, optional
        Dataset name (default ``merge-complete`` / ``merge-balanced``).

    Raises
    ------
    DataError
        Listing every problem: missing or unlabelled audio, label conflicts, bad split tables.
    """
    base, kind = find_archive(require_dir(root, "merge"))
    name = name or f"merge-{kind}"
    problems = collect if collect is not None else Problems(f"merge dataset at {base}")
    metadata = f"merge_audio_{kind}_metadata.csv"
    dataset = load_4qaed(base, name=name, collect=problems, label_files=(metadata,))
    dataset.missing_tables = {}  # MERGE ships no top100 table; only audio inputs apply
    av_path = base / f"merge_audio_{kind}_av_values.csv"
    if av_path.is_file():
        values = read_av_values(av_path, problems)
        missing = [s.song_id for s in dataset.songs if s.song_id not in values]
        if missing:
            problems.warn(f"{len(missing)} song(s) have no arousal/valence in {av_path.name}")
        dataset.songs = [
            replace(s, arousal=values[s.song_id][0], valence=values[s.song_id][1])
            if s.song_id in values
            else s
            for s in dataset.songs
        ]
    else:
        problems.warn(f"no {av_path.name} in {base}: songs have no arousal/valence values")
    labels = {s.song_id: s.quadrant for s in dataset.songs}
    dataset.splits = read_splits(base, kind, labels, problems)
    if collect is None:
        problems.raise_if_any()
    return dataset


__all__ = ["find_archive", "load_merge", "read_av_values", "read_splits"]
